#!/usr/bin/env python3
# The preprocessing step, a SageMaker processing job: see src/sagemake/processing.py.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sagemake.cli import script  # noqa: E402

script("processing")
