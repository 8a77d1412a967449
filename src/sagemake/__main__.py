"""python -m sagemake TARGET [ARGUMENTS]: what each make target runs (sagemake/targets/TARGET.py's main).

`make help` lists the targets with their Summary lines; `python -m sagemake TARGET --help` prints one's usage.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from sagemake.cli import Exit, run


def main() -> None:
    folder = str(Path(__file__).with_name("targets"))
    known = sorted(module.name.replace("_", "-") for module in pkgutil.iter_modules([folder]))
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in known:
        said = f"unknown target {name!r}" if name else "usage: python -m sagemake TARGET [ARGUMENTS]"
        print(f"sagemake: {said}: one of {', '.join(known)} (`make help` says what each does)", file=sys.stderr)
        sys.exit(Exit.BAD_INPUT)
    try:
        module = importlib.import_module(f"sagemake.targets.{name.replace('-', '_')}")
    except KeyboardInterrupt:  # Ctrl-C as the command starts: the same quiet end as later on
        sys.exit(Exit.INTERRUPTED)
    run(module.main, sys.argv[2:])


if __name__ == "__main__":
    main()
