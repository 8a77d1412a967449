"""Summary: stop a running SageMaker job (JOB=...)

Usage: make stop JOB=<job> ENV=prod   (python -m sagemake stop JOB)

SageMaker sends the job SIGTERM, then SIGKILL after 120 s. A local job stops
with Ctrl-C in the terminal that runs it.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.jobs.training import job_named


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make stop JOB=<job>")
    for_config(resolve()).stop(job_named(argv[0]) if argv else None)
    return Exit.OK

