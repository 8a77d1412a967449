#!/usr/bin/env python3
# The tune step: see src/sagemake/tune.py (or run with --help).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sagemake.cli import script  # noqa: E402

script("tune")
