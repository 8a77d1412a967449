"""Summary: run the trainer's data step (src/trainer/data.py) to write the channels under DATA_DIR

Usage: make data   (python -m sagemake data)

It runs main(DATA_DIR) of src/trainer/data.py with the job's Python (the
image's requirements). `make train` runs it only when DATA_DIR holds nothing
yet; your own channels in DATA_DIR are never filled or overwritten by sagemake.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.job_python import data_step


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make data")
    data_step(resolve())
    return Exit.OK

