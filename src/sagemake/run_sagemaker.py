"""Builds the training job request from config and runs it, locally or on SageMaker.

Usage: scripts/run_sagemaker.py COMMAND
  plan              print the CreateTrainingJob request as JSON; submits nothing
  submit [--fetch]  submit the job, follow it to its end, then (--fetch) fetch its model
  jobs [N]          the N most recent jobs (default 10): name, status, duration, main metric
  logs [JOB]        a job's log, followed while it runs (default: the latest job)
  stop JOB          stop a running job on SageMaker
  image             the training image's URI, tagged by content

ENV=local (the default) runs jobs on your machine; any other ENV on SageMaker.
Everything is checked before a job starts: config, hyperparameters, data
channels and, on AWS, credentials, the bucket's region, the image and the data.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from sagemake import sourcedir
from sagemake.cli import UserError, run, say
from sagemake.config import Config, resolve
from sagemake.fetch_model import fetch, jobs_for, metrics
from sagemake.local import LocalJobs, choose_runtime, uri_path
from sagemake.request import build_request, check_channels, git_state, image_uri, job_name, s3_uri
from trainer.metrics import METRICS


def plan(config: Config, aws=None) -> dict:
    """The request, after every check that can be made before anything is sent."""
    if config.local and config.int("INSTANCE_COUNT") != 1:
        raise UserError("the local executor runs one instance: set INSTANCE_COUNT=1 for ENV=local")
    if config["PRIMARY_METRIC"] not in METRICS:
        raise UserError(f"PRIMARY_METRIC={config['PRIMARY_METRIC']!r} is not a metric of the trainer: "
                        f"use one of {', '.join(METRICS)}")
    channels = check_channels(config)
    git = git_state(config.root)
    name = job_name(config["PROJECT_NAME"], git[0])
    code = (sourcedir.tag(config.root), sourcedir.ARCHIVE) if config["CODE_MODE"] == "script" else None
    if config.local:
        image = image_uri(config)
        channel_uris = {channel: folder.as_uri() for channel, folder in channels.items()}
        output_uri = config.path("JOBS_DIR").as_uri()
        code_uri = config.path("JOBS_DIR").joinpath("code", *code).as_uri() if code else None
    else:
        from sagemake import aws as cloud

        image = image_uri(config, cloud.registry(config, aws or cloud.session(config)))
        channel_uris = {channel: s3_uri(config, "data", channel) + "/" for channel in channels}
        output_uri = s3_uri(config, "output")
        code_uri = s3_uri(config, "code", *code) if code else None
    return build_request(config, name, image, channel_uris, output_uri, git, code_uri)


def submit(config: Config, then_fetch: bool) -> int:
    if config.local:
        request = plan(config)
        name = request["TrainingJobName"]
        runtime, why = choose_runtime(config["LOCAL_RUNTIME"], config["CONTAINER_ENGINE"],
                                      request["AlgorithmSpecification"]["TrainingImage"],
                                      config.words("CONTAINER_RUN_FLAGS"))
        say(f"job {name}: runtime {why}")
        if sourcedir.DIRECTORY_KEY in request["HyperParameters"]:
            sourcedir.write(config.root, uri_path(request["HyperParameters"][sourcedir.DIRECTORY_KEY]))
        record = LocalJobs(config.path("JOBS_DIR")).run(request, runtime, config.int("STOP_GRACE_SECONDS"))
    else:
        from sagemake import aws as cloud

        jobs = cloud.SageMakerJobs(config)
        cloud.check_bucket(config, jobs.aws)
        request = plan(config, jobs.aws)
        name = request["TrainingJobName"]
        cloud.check_inputs(config, jobs.aws, request)
        if sourcedir.DIRECTORY_KEY in request["HyperParameters"]:
            cloud.upload_code(jobs.aws, config.root, request["HyperParameters"][sourcedir.DIRECTORY_KEY])
        jobs.submit(request)
        try:
            record = jobs.follow(name)
        except KeyboardInterrupt:
            return 130
    status = record["TrainingJobStatus"]
    if status != "Completed":
        reason = record.get("FailureReason") or record["SecondaryStatus"]
        raise UserError(f"job {name} {status}: {reason} (log: `make logs ENV={config.env} JOB={name}`)")
    if then_fetch:
        fetch(config, name)
    return 0


def list_jobs(config: Config, limit: int) -> int:
    jobs = jobs_for(config)
    primary = config["PRIMARY_METRIC"]
    rows = [("JOB", "STATUS", "DURATION", primary)]
    for name in jobs.names(limit):
        record = jobs.describe(name)
        seconds = record.get("TrainingTimeInSeconds")
        if seconds is None:  # still running, or ended before training (then its last change is its end)
            running = record["TrainingJobStatus"] == "InProgress"
            end = time.time() if running else datetime.fromisoformat(record["LastModifiedTime"]).timestamp()
            seconds = round(end - datetime.fromisoformat(record["CreationTime"]).timestamp())
        value = metrics(record).get(primary)
        rows.append((name, record["TrainingJobStatus"], f"{seconds}s", "-" if value is None else f"{value:.4f}"))
    if len(rows) == 1:
        say(f"no jobs of {config['PROJECT_NAME']} yet (ENV={config.env}): `make train` runs one")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def show_image(config: Config) -> str:
    if config.local:
        return image_uri(config)
    from sagemake import aws as cloud

    return image_uri(config, cloud.registry(config, cloud.session(config)))


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
        jobs = jobs_for(resolve())
        name = args[0] if args else jobs.latest()
        jobs.describe(name)
        try:
            jobs.print_log(name)
        except KeyboardInterrupt:
            return 130
        return 0
    if command == "stop":
        config = resolve()
        if config.local:
            raise UserError("local jobs stop with Ctrl-C in the terminal that runs them; `make stop` is for SageMaker")
        if len(args) != 1:
            raise UserError("which job? make stop ENV=... JOB=<job name> (`make jobs` lists them)")
        jobs_for(config).stop(args[0])
        return 0
    if command == "image" and not args:
        print(show_image(resolve()))
        return 0
    raise UserError(f"unknown command {' '.join(argv)!r}: see `scripts/run_sagemaker.py --help`")


if __name__ == "__main__":
    run(main, "run_sagemaker")
