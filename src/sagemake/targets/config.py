"""Summary: print every setting in force for ENV and where it came from

Usage: make config [ENV=...]   (python -m sagemake config [--export | --example | --docs])

Layers: defaults < .env < .env.<ENV> < the shell's environment and the make
command line. An unknown setting is refused with a suggestion.
"""

from __future__ import annotations

from sagemake import config


def main(argv: list[str]) -> int:
    return config.main(argv)

