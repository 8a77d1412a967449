"""Summary: print every setting in force for ENV and where it came from

Usage: make config [ENV=...]   (python -m sagemake config [--export | --example | --docs])

Layers: defaults < .env < .env.<ENV> < the shell's environment and the make
command line. An unknown setting is refused with a suggestion.
"""

from __future__ import annotations

import sys

from sagemake import config
from sagemake.cli import run


def main(argv: list[str]) -> int:
    return config.main(argv)


if __name__ == "__main__":
    run(main, sys.argv[1:])
