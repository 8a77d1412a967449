"""Summary: print a job's log, following it while it runs (JOB=..., default latest)

Usage: make logs [JOB=<job>] [ENV=...]   (python -m sagemake logs [JOB])
"""

from __future__ import annotations

import sys

from sagemake.cli import Exit, UserError, run, say
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.jobs.training import job_named


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make logs [JOB=<job>]")
    executor = for_config(resolve())
    name = job_named(argv[0]) if argv else executor.latest()
    executor.describe(name)
    try:
        printed = executor.print_log(name)
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    if not printed:  # said, so that an empty answer is not taken for a log still to come; not an error of the command
        record = executor.describe(name)
        reason = record.get("FailureReason")
        say(f"job {name} has no log: it is {record['TrainingJobStatus']}{f': {reason}' if reason else ''}")
    return Exit.OK


if __name__ == "__main__":
    run(main, sys.argv[1:])
