"""Summary: remove local job and processing folders but the KEEP newest of each (default 5) and any running

Usage: make clean-jobs [KEEP=5]   (python -m sagemake clean-jobs [KEEP])

The data copies that only removed jobs read go too; a running job, the KEEP
newest, and a copy a running processing job reads are never removed.
"""

from __future__ import annotations

import sys

from sagemake.cli import Exit, UserError, run
from sagemake.config import resolve
from sagemake.executors import for_config


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make clean-jobs [KEEP=<count>]")
    if argv and not argv[0].isdigit():
        raise UserError(f"KEEP={argv[0]!r} is not a count of jobs: give a number, e.g. KEEP=5")
    for_config(resolve()).prune(int(argv[0]) if argv else 5)
    return Exit.OK


if __name__ == "__main__":
    run(main, sys.argv[1:])
