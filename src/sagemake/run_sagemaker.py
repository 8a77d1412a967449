"""Builds the training job request from config and runs it where ENV says: locally or on SageMaker.

Usage: scripts/run_sagemaker.py COMMAND
  train             data (only when a channel is missing), image, upload, then the job, followed; then its model
  data              run the trainer's data step (src/trainer/data.py) into DATA_DIR
  build             make the training image available where jobs run (built and pushed unless it is there)
  upload            sync the channels to where jobs read them (S3 for AWS; nothing locally)
  plan              print the CreateTrainingJob request as JSON; submits nothing
  jobs [N]          the N most recent jobs (default 10): name, status, duration, main metric
  logs [JOB]        a job's log, followed while it runs (default: the latest job)
  stop JOB          stop a running job on SageMaker
  clean-jobs [KEEP] remove local job folders but the KEEP newest (default 5) and any running one, and the
                    data copies only they read
  image             the training image's URI, tagged by content

ENV=local (the default) runs jobs on your machine; any other ENV on SageMaker.
Everything is checked before a job starts: config, hyperparameters, data
channels and, on AWS, credentials, the bucket's region, the image and the data.
Exit status: 0 done, 1 the job failed or stopped, 2 bad input, 3 an AWS error,
130 interrupted.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from sagemake import data
from sagemake.cli import Exit, JobFailed, UserError, run, say
from sagemake.config import Config, resolve
from sagemake.executors import Executor, for_config
from sagemake.fetch_model import fetch, metrics
from sagemake.request import TAG_PREFIX, job_named, plan, primary_metric


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
    primary = primary_metric(config) or "METRIC"
    rows = [("JOB", "STATUS", "DURATION", primary)]
    for name in executor.names(limit):
        record = executor.describe(name)
        seconds = record.get("TrainingTimeInSeconds")
        if seconds is None:  # still running, or ended before training (then its last change is its end)
            running = record["TrainingJobStatus"] == "InProgress"
            end = time.time() if running else datetime.fromisoformat(record["LastModifiedTime"]).timestamp()
            seconds = round(end - datetime.fromisoformat(record["CreationTime"]).timestamp())
        value = metrics(record).get(primary)
        rows.append((name, record["TrainingJobStatus"], f"{seconds}s", "-" if value is None else f"{value:.4f}"))
    if len(rows) == 1:
        say(f"no jobs of {config['PROJECT_NAME']} yet ({executor.where()}): `make train` runs one")
        return Exit.OK
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return Exit.OK


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "data" and not args:
        data.run_step(resolve())
        return Exit.OK
    config = resolve()
    executor = for_config(config)
    if command == "train" and not args:
        return train(config, executor)
    if command == "plan" and not args:
        print(json.dumps(plan(config, executor), indent=2))
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
