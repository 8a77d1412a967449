"""Builds the training job request from config and runs it where ENV says: locally or on SageMaker.

Usage: scripts/run_sagemaker.py COMMAND
  train             data (only when a channel is missing), image, upload, then the job, followed; then its model
  data              run the trainer's data step (src/trainer/data.py) into DATA_DIR
  build             make the training image available where jobs run (built and pushed unless it is there)
  upload            sync the channels to where jobs read them (S3 for AWS; nothing locally)
  plan              print the CreateTrainingJob request as JSON; submits nothing
  jobs [N]          the ledger of the N most recent jobs (default 10): status, duration, billable seconds, $,
                    spot savings, main metric, warm pool; a total; then the N most recent processing jobs
                    (`make preprocess`): status, duration, $
  logs [JOB]        a job's log, followed while it runs (default: the latest job)
  stop JOB          stop a running job on SageMaker
  clean-jobs [KEEP] remove local job folders but the KEEP newest (default 5) and any running one, the same for
                    processing job folders, and the data copies only they read
  image             the training image's URI, tagged by content

ENV=local (the default) runs jobs on your machine; any other ENV on SageMaker.
Everything is checked before a job starts: config, hyperparameters, data
channels and, on AWS, credentials, the bucket's region, the image and the data.
Exit status: 0 done, 1 the job failed or stopped, 2 bad input, 3 an AWS error,
130 interrupted.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

from sagemake import data
from sagemake.aws import unchanged
from sagemake.cli import Exit, JobFailed, UserError, run, say
from sagemake.config import DEFAULT_ENV, Config, resolve
from sagemake.executors import Executor, for_config
from sagemake.fetch_model import fetch, metrics
from sagemake.jobs.training import TAG_PREFIX, job_named, plan, primary_metric
from sagemake.pricing import Prices, cost, ledger_entry, money, plan_line


def train(config: Config, executor: Executor) -> int:
    """The whole pipeline in one process: each step with nothing to do costs next to nothing, and the request
    is built (every check made) before anything is built, pushed or uploaded."""
    folders = data.ensure(config)
    request = plan(config, executor)
    executor.ensure_image()
    executor.sync_data()
    request["Tags"] += [{"Key": f"{TAG_PREFIX}data:{channel}", "Value": " ".join(f"{k}={v}" for k, v in s.items())}
                        for channel, s in data.summary(config, folders).items()]
    name = request["TrainingJobName"]
    try:
        record = executor.run(request)
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    status = record["TrainingJobStatus"]
    if status != "Completed":
        reason = record.get("FailureReason") or record["SecondaryStatus"]
        raise JobFailed(f"job {name} {status}: {reason} (log: `make logs{executor.env_flag()} JOB={name}`)")
    fetch(config, executor, name)
    return Exit.OK


def list_jobs(config: Config, executor: Executor, limit: int) -> int:
    """The ledger: each job's status, duration, billable seconds, $ and spot savings, main metric (and its warm
    pool when it has one), then the totals; then this project's processing jobs, each with its status, duration and
    $ (none: nothing more); where the prices came from on stderr."""
    primary = primary_metric(config) or "METRIC"
    prices = executor.prices()
    rows, pools = [], []
    billable, spent, saved, unknown, unsaved = 0, 0.0, 0.0, 0, 0
    for name in executor.names(limit):
        record = executor.describe(name)
        seconds = record.get("TrainingTimeInSeconds")
        if seconds is None:  # still running, or ended before training (then its last change is its end)
            running = record["TrainingJobStatus"] == "InProgress"
            end = time.time() if running else datetime.fromisoformat(record["LastModifiedTime"]).timestamp()
            seconds = round(end - datetime.fromisoformat(record["CreationTime"]).timestamp())
        value = metrics(record).get(primary)
        entry = ledger_entry(record, prices)
        billable += entry.billable or 0
        spent += entry.cost or 0
        saved += entry.saved or 0
        unknown += entry.billable is not None and not entry.known
        unsaved += entry.saved_unknown
        rows.append([name, record["TrainingJobStatus"], f"{seconds}s", _seconds(entry.billable),
                     money(entry.cost) if entry.billable is not None else "-",
                     money(entry.saved) if entry.saved is not None else "unknown" if entry.saved_unknown else "-",
                     "-" if value is None else f"{value:.4f}"])
        pools.append(_pool(record.get("WarmPoolStatus")))
    from sagemake.tune import tunings_for  # here: `make upload` runs this module and needs neither

    best = tunings_for(executor).best_trials()
    rows = [[row[0] + (" *" if row[0] in best else ""), *row[1:]] for row in rows]
    processed = _processing_rows(executor, limit, prices)
    if not rows:
        which = "training jobs" if processed else "jobs"
        say(f"no {which} of {config['PROJECT_NAME']} yet ({executor.where()}): `make train` runs one")
        if not processed:
            return Exit.OK
    else:
        header = ["JOB", "STATUS", "DURATION", "BILLABLE", "COST", "SPOT SAVED", primary]
        total = ["TOTAL", "", "", _seconds(billable), money(spent) + (f" + {unknown} unknown" if unknown else ""),
                 money(saved) + (f" + {unsaved} unknown" if unsaved else ""), ""]
        if any(pools):  # a column only when a job has a warm pool
            header.append("WARM POOL")
            rows = [row + [pool or "-"] for row, pool in zip(rows, pools, strict=True)]
            total.append("")
        _print_table([header, *rows, total])
    if processed:
        if rows:
            print()
        _print_table([["PROCESSING JOB", "STATUS", "DURATION", "COST"], *processed])
    sys.stdout.flush()  # the table before the words on stderr, where both reach one terminal or file
    if any(row[0].endswith(" *") for row in rows):
        say("jobs: * the best trial of its tuning run (`make tune-jobs` shows the run)")
    would = "what they would have cost on SageMaker (their instance type and count, for their duration); " \
        if prices.hypothetical else ""
    say(f"jobs: {would}{prices.sources()}")
    return Exit.OK


def _processing_rows(executor: Executor, limit: int, prices: Prices) -> list[list[str]]:
    """This project's processing jobs where the executor runs them, newest first: name, status, duration, and
    what it cost (or, locally, would have) on SageMaker for its instance type and count for that duration."""
    from sagemake.processing import duration, processing_for

    place = processing_for(executor)
    rows = []
    for name in place.names(limit):
        record = place.describe(name)  # a local one whose executor is gone is settled first
        if record is None:  # removed meanwhile
            continue
        cluster = record.get("ProcessingResources", {}).get("ClusterConfig", {})
        seconds = duration(record)
        hourly = prices.hourly(cluster["InstanceType"]).hourly if cluster.get("InstanceType") else None
        rows.append([name, record["ProcessingJobStatus"], f"{seconds}s",
                     money(cost(hourly, seconds, cluster.get("InstanceCount", 1)))])
    return rows


def _print_table(table: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _seconds(value: int | None) -> str:
    return "-" if value is None else f"{value}s"


def _pool(status: dict | None) -> str:
    """WarmPoolStatus in a few words: its status, the seconds it kept the instances, the job that took it."""
    if not status:
        return ""
    words = [status["Status"]]
    if status.get("ResourceRetainedBillableTimeInSeconds") is not None:
        words.append(f"{status['ResourceRetainedBillableTimeInSeconds']}s kept")
    if status.get("ReusedByJob"):
        words.append(f"by {status['ReusedByJob']}")
    return " ".join(words)


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "data" and not args:
        data.run_step(resolve())
        return Exit.OK
    config = resolve()
    if command == "upload" and not args and config.env != DEFAULT_ENV and unchanged.everywhere(config):
        return Exit.OK  # nothing to upload, found without loading boto3 (unchanged.py)
    executor = for_config(config)
    if command == "train" and not args:
        return train(config, executor)
    if command == "plan" and not args:
        request = plan(config, executor)
        print(json.dumps(request, indent=2))
        say(plan_line(request, executor.prices()))
        return Exit.OK
    if command == "build" and not args:
        executor.ensure_image()
        return Exit.OK
    if command == "upload" and not args:
        executor.sync_data()
        return Exit.OK
    if command == "jobs" and (not args or (len(args) == 1 and args[0].isdigit())):
        return list_jobs(config, executor, int(args[0]) if args else 10)
    if command == "logs" and len(args) <= 1:
        name = job_named(args[0]) if args else executor.latest()
        executor.describe(name)
        try:
            executor.print_log(name)
        except KeyboardInterrupt:
            return Exit.INTERRUPTED
        return Exit.OK
    if command == "stop" and len(args) <= 1:
        executor.stop(job_named(args[0]) if args else None)
        return Exit.OK
    if command == "clean-jobs" and len(args) <= 1:
        if args and not args[0].isdigit():
            raise UserError(f"KEEP={args[0]!r} is not a count of jobs: give a number, e.g. KEEP=5")
        executor.prune(int(args[0]) if args else 5)
        return Exit.OK
    if command == "image" and not args:
        print(executor.image())
        return Exit.OK
    raise UserError(f"unknown command {' '.join(argv)!r}: see `scripts/run_sagemaker.py --help`")


if __name__ == "__main__":
    run(main, "run_sagemaker")
