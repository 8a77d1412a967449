"""Summary: print the training image's URI, tagged by content (where jobs would take it from)

Usage: make image [ENV=...]   (python -m sagemake image)
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make image")
    print(for_config(resolve()).image())
    return Exit.OK

