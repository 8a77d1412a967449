"""Builds the training job request from config and runs it.

Usage: scripts/run_sagemaker.py COMMAND
  plan              print the CreateTrainingJob request as JSON; sends nothing
  submit [--fetch]  submit the job, follow it to its end, then (--fetch) fetch its model
  jobs [N]          the N most recent jobs (default 10): name, status, duration, main metric
  logs [JOB]        a job's log (default: the latest job)
  image             the training image's URI, tagged by content

Everything is checked before a job starts: config, hyperparameters, data channels.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

from sagemake.cli import UserError, run, say
from sagemake.config import Config, resolve
from sagemake.fetch_model import fetch, metrics
from sagemake.local import LocalJobs, choose_runtime
from sagemake.request import build_request, check_channels, git_state, image_uri, job_name
from trainer.metrics import METRICS


def plan(config: Config) -> dict:
    """The request, after every check that can be made before anything is sent."""
    if not config.local:
        raise UserError(f"ENV={config.env}: submitting to SageMaker is not available yet; use ENV=local")
    if config.int("INSTANCE_COUNT") != 1:
        raise UserError("the local executor runs one instance: set INSTANCE_COUNT=1 for ENV=local")
    if config["PRIMARY_METRIC"] not in METRICS:
        raise UserError(f"PRIMARY_METRIC={config['PRIMARY_METRIC']!r} is not a metric of the trainer: "
                        f"use one of {', '.join(METRICS)}")
    channels = check_channels(config)
    git = git_state(config.root)
    return build_request(
        config,
        name=job_name(config["PROJECT_NAME"], git[0]),
        image=image_uri(config),
        channel_uris={name: folder.as_uri() for name, folder in channels.items()},
        output_uri=config.path("JOBS_DIR").as_uri(),
        git=git,
    )


def submit(config: Config, then_fetch: bool) -> int:
    request = plan(config)
    name = request["TrainingJobName"]
    runtime, why = choose_runtime(config["LOCAL_RUNTIME"], config["CONTAINER_ENGINE"],
                                  request["AlgorithmSpecification"]["TrainingImage"], [])
    say(f"job {name}: runtime {why}")
    record = LocalJobs(config.path("JOBS_DIR")).run(request, runtime, config.int("STOP_GRACE_SECONDS"))
    status = record["TrainingJobStatus"]
    if status != "Completed":
        reason = record.get("FailureReason") or record["SecondaryStatus"]
        raise UserError(f"job {name} {status}: {reason} (log: `make logs JOB={name}`, job folder kept)")
    if then_fetch:
        fetch(config, name)
    return 0


def list_jobs(config: Config, limit: int) -> int:
    jobs = LocalJobs(config.path("JOBS_DIR"))
    primary = config["PRIMARY_METRIC"]
    rows = [("JOB", "STATUS", "DURATION", primary)]
    for name in jobs.names()[:limit]:
        record = jobs.describe(name)
        seconds = record.get("TrainingTimeInSeconds")
        if seconds is None:  # still running
            seconds = round(time.time() - datetime.fromisoformat(record["CreationTime"]).timestamp())
        value = metrics(record).get(primary)
        rows.append((name, record["TrainingJobStatus"], f"{seconds}s", "-" if value is None else f"{value:.4f}"))
    if len(rows) == 1:
        say(f"no jobs yet in {jobs.jobs_dir}: `make train` runs one")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def show_log(config: Config, name: str | None) -> int:
    """Print the job's log; while the job runs, keep following it."""
    jobs = LocalJobs(config.path("JOBS_DIR"))
    name = name or jobs.latest()
    path = jobs.log(name)
    offset = 0
    while True:
        running = jobs.describe(name)["TrainingJobStatus"] == "InProgress"
        if path.is_file():
            with path.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
            offset += len(chunk)
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        if not running:
            return 0
        time.sleep(1)


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "plan" and not args:
        print(json.dumps(plan(resolve()), indent=2))
        return 0
    if command == "submit" and args in ([], ["--fetch"]):
        return submit(resolve(), then_fetch=bool(args))
    if command == "jobs" and (not args or (len(args) == 1 and args[0].isdigit())):
        return list_jobs(resolve(), int(args[0]) if args else 10)
    if command == "logs" and len(args) <= 1:
        return show_log(resolve(), args[0] if args else None)
    if command == "image" and not args:
        print(image_uri(resolve()))
        return 0
    if command in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    raise UserError(f"unknown command {' '.join(argv)!r}: see `scripts/run_sagemaker.py --help`")


if __name__ == "__main__":
    run(main, "run_sagemaker")
