"""How every command ends: bad input becomes one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys


class UserError(Exception):
    """Input that cannot work; the message names the problem and the fix."""


def say(message: str) -> None:
    """Progress for a person: on stderr, so stdout stays for data (plan JSON, logs)."""
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(main, prog: str) -> None:
    """Run main(argv); -h or --help prints the docstring of main's module instead."""
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(sys.modules[main.__module__].__doc__.strip())
        sys.exit(0)
    try:
        code = main(sys.argv[1:])
    except UserError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
