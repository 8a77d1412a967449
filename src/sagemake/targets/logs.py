"""Summary: print a job's log, following it while it runs (JOB=..., default latest; a tuning run: its trials')

Usage: make logs [JOB=<job or tuning run>] [ENV=...]   (python -m sagemake logs [JOB])

A tuning run's trials are printed one after another, each line after its
trial's label ([trial-3]), until the run ends.
"""

from __future__ import annotations

import time

from sagemake.cli import AwsError, Exit, UserError, say
from sagemake.config import resolve
from sagemake.executors import Executor, for_config
from sagemake.jobs.training import job_named
from sagemake.jobs.tuning import trial_label

RUNNING = ("InProgress", "Stopping")  # a tuning run's statuses while trials may still start


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make logs [JOB=<job or tuning run>]")
    config = resolve()
    executor = for_config(config)
    name = job_named(argv[0]) if argv else executor.latest()
    try:
        executor.describe(name)
    except AwsError:
        raise
    except UserError as unknown:  # no such job: it may be a tuning run
        try:
            executor.tuning().record(name)
        except AwsError:
            raise
        except UserError:
            raise unknown from None
        return _interrupted(lambda: print_trials(executor, name, config.int("POLL_SECONDS")))
    return _interrupted(lambda: print_log(executor, name))


def _interrupted(show) -> int:
    try:
        show()
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    return Exit.OK


def print_log(executor: Executor, name: str) -> None:
    if not executor.print_log(name):  # said, so that an empty answer is not taken for a log still to come
        record = executor.describe(name)
        reason = record.get("FailureReason")
        say(f"job {name} has no log: it is {record['TrainingJobStatus']}{f': {reason}' if reason else ''}")


def print_trials(executor: Executor, name: str, poll: int) -> None:
    """A tuning run's trials' logs, in the order they started, each line after its trial's label; a running trial is
    followed to its end, and trials that start later are waited for until the run ends."""
    shown: set[str] = set()
    while True:
        record = executor.tuning().record(name)
        new = sorted(s["TrainingJobName"] for s in record.get("TrainingJobSummaries", [])
                     if s["TrainingJobName"] not in shown)
        for trial in new:
            shown.add(trial)
            try:
                executor.print_log(trial, trial_label(trial))
            except AwsError:
                raise
            except UserError:  # its folder is gone (make clean-jobs)
                say(f"tuning {name}: trial {trial}: its record is gone: no log")
        if not new and record["HyperParameterTuningJobStatus"] not in RUNNING:
            say(f"tuning {name}: {record['HyperParameterTuningJobStatus']}: {len(shown)} trial(s)")
            return
        if not new:
            time.sleep(poll)

