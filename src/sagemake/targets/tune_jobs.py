"""Summary: the leaderboard of the latest tuning run (TUNING=<name> for another)

Usage: make tune-jobs [TUNING=<tuning run>] [ENV=...]   (python -m sagemake tune-jobs [TUNING])

Trials sorted by the objective, best first and starred: the tuned
hyperparameters, the objective, duration, cost and status.
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sagemake.cli import AwsError, Exit, UserError, print_table, say
from sagemake.config import resolve
from sagemake.executors import Executor, for_config
from sagemake.jobs.training import job_named
from sagemake.jobs.tuning import LEADERBOARD
from sagemake.pricing import Prices, ledger_entry, money

ASKERS = 8  # trials' records asked at once: hundreds of trials are not hundreds of calls one after another


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make tune-jobs [TUNING=<tuning run>]")
    config = resolve()
    executor = for_config(config)
    place = executor.tuning()
    name = job_named(argv[0], "TUNING") if argv else place.latest()
    if name is None:
        raise UserError(f"no tuning run of {config['PROJECT_NAME']} yet ({executor.where()}): `make tune"
                        f"{executor.env_flag()}` starts one")
    record = place.record(name)
    header, rows = leaderboard(record, executor, executor.prices())
    print_table([header, *rows])
    reason = record.get("FailureReason")
    say(f"tuning {name}: {record['HyperParameterTuningJobStatus']}{f': {reason}' if reason else ''}")
    return Exit.OK


def leaderboard(record: dict, executor: Executor, prices: Prices) -> tuple[list[str], list[list[str]]]:
    """Trials sorted by the objective (best first, unscored last): hyperparameters, objective, duration, what it
    cost, status. Duration and cost are each ended trial's own record's (DescribeTrainingJob: TrainingTimeInSeconds,
    and the bill of `make jobs`, from BillableTimeInSeconds; a local trial's record holds what SageMaker would bill);
    a running trial, or one whose record is gone, has neither. The records are asked ASKERS at a time."""
    goal = record["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    summaries = record.get("TrainingJobSummaries", [])
    params = sorted({k for s in summaries for k in s.get("TunedHyperParameters", {})})
    sign = 1 if goal["Type"] == "Minimize" else -1
    best = record.get("BestTrainingJob", {}).get("TrainingJobName")

    def key(summary):
        value = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
        return (value is None, sign * value if value is not None else 0, summary["TrainingJobName"])

    ordered = sorted(summaries, key=key)
    pool = ThreadPoolExecutor(ASKERS)
    try:
        trials = list(pool.map(lambda summary: _trial(executor, summary), ordered))
    finally:  # an AWS error or Ctrl-C: the records not asked yet never are
        pool.shutdown(cancel_futures=True)
    rows = []
    for summary, trial in zip(ordered, trials, strict=True):
        value = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
        seconds, spent = _bill(trial, prices)
        rows.append([summary["TrainingJobName"] + (" *" if summary["TrainingJobName"] == best else ""),
                     *(summary.get("TunedHyperParameters", {}).get(p, "") for p in params),
                     "" if value is None else f"{value:.6g}", seconds, spent, summary["TrainingJobStatus"]])
    return ["TRIAL", *params, goal["MetricName"], "DURATION", "COST", "STATUS"], rows


def _trial(executor: Executor, summary: dict) -> dict | None:
    """An ended trial's own record (DescribeTrainingJob); None for a running trial, or one whose record is gone."""
    if summary["TrainingJobStatus"] == "InProgress":
        return None
    try:
        return executor.describe(summary["TrainingJobName"])
    except AwsError:  # AWS could not answer: said, not taken for a record that is gone
        raise
    except UserError:  # its record is gone (a local trial's folder removed by make clean-jobs)
        return None


def _bill(trial: dict | None, prices: Prices) -> tuple[str, str]:
    """An ended trial's training time and cost, as its own record says them; ("", "") when it has none."""
    if trial is None:
        return "", ""
    entry = ledger_entry(trial, prices)
    if trial.get("TrainingTimeInSeconds") is None or entry.billable is None:  # ended before it trained
        return "", ""
    return f"{trial['TrainingTimeInSeconds']}s", money(entry.cost)


def write_leaderboard(header: list[str], rows: list[list[str]], folder: Path) -> Path:
    path = folder / LEADERBOARD
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", *header[1:]])
        writer.writerows([[row[0].removesuffix(" *"), *row[1:]] for row in rows])
    return path
