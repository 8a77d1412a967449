"""python -m sagemake TARGET [ARGUMENTS]: what each make target runs (sagemake/targets/TARGET.py's main).

`make help` lists the targets with their Summary lines; `python -m sagemake TARGET --help` prints one's usage.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

from sagemake import debug
from sagemake.cli import Exit, UserError, interrupted_by_signals


def run(main, argv: list[str]) -> None:
    """Run main(argv); -h or --help prints the docstring of main's module instead. Bad input, a failed job and an
    AWS error end as one line on stderr, prefixed with the tool's name, and their own exit status (Exit). Ctrl-C,
    SIGTERM and SIGHUP take one path: local work stops, a remote job is left running with how to find it again (or
    stopped, where its results would be lost), scratch is cleaned, and the exit status is 130.

    DEBUG=1 traces what the command does (each AWS call, each command it runs), DEBUG=2 adds botocore's own
    debug log; credentials are masked in the trace and in the one-line error (sagemake.debug says how).
    """
    if argv[:1] in (["-h"], ["--help"]):
        print(sys.modules[main.__module__].__doc__.strip())
        sys.exit(Exit.OK)
    debug.enable()
    try:
        with interrupted_by_signals():  # SIGTERM (a CI run cancelled) and SIGHUP (a closed terminal) as Ctrl-C
            code = main(argv)
    except UserError as err:
        print(f"sagemake: {debug.mask(str(err))}", file=sys.stderr)  # an AWS message can quote a signed request
        code = err.status
    except KeyboardInterrupt:
        code = Exit.INTERRUPTED
    except BrokenPipeError:  # what reads stdout has gone (`make jobs | head`): nothing is left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = Exit.OK
    sys.exit(int(code))


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
