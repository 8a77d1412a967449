#!/usr/bin/env python3
# The run_sagemaker step: see src/sagemake/run_sagemaker.py (or run with --help).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sagemake.cli import run  # noqa: E402
from sagemake.run_sagemaker import main  # noqa: E402

if __name__ == "__main__":
    run(main, "run_sagemaker")
