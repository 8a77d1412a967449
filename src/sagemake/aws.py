"""Training jobs on SageMaker, through boto3: submit, follow, logs, stop, list.

Clients come from the standard AWS chain (profile, SSO, environment, assumed
role) and take their endpoint from AWS_ENDPOINT_URL* when it is set; nothing
here knows about tests. Records are DescribeTrainingJob answers with their
times as ISO 8601 strings, the same shape the local executor writes.
"""

from __future__ import annotations

import collections
import re
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound

from sagemake import sourcedir
from sagemake.cli import UserError, say
from sagemake.config import Config
from sagemake.request import TAG_PREFIX

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = ("Completed", "Failed", "Stopped")
LAST_LINES = 20
LOST_CONTACT = 5  # failed polls in a row before following gives up (the job itself goes on)


def session(config: Config) -> boto3.Session:
    try:
        return boto3.Session(region_name=config["AWS_REGION"])
    except BotoCoreError as err:  # an AWS_PROFILE that does not exist, say
        raise UserError(explain(err)) from None


def explain(err: Exception) -> str:
    """An AWS error as one line that says what to do."""
    if isinstance(err, NoCredentialsError):
        return "no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE"
    if isinstance(err, ProfileNotFound):
        return f"AWS profile '{err.kwargs.get('profile')}' not found: fix AWS_PROFILE, or `aws configure --profile` it"
    if isinstance(err, NoRegionError):
        return "no AWS region: set AWS_REGION in .env"
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        message = err.response.get("Error", {}).get("Message", "")
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            return f"AWS credentials have expired ({code}): renew them (`aws sso login`, or assume the role again)"
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return f"AWS denied {err.operation_name} ({message}): grant it to your credentials"
        return f"AWS {err.operation_name} failed: {code}: {message}"
    return f"AWS call failed: {err}"


def call(function, **kwargs):
    """Call an AWS API; any AWS error becomes a UserError that says what to do."""
    try:
        return function(**kwargs)
    except (BotoCoreError, ClientError) as err:
        raise UserError(explain(err)) from None


def account_id(aws: boto3.Session) -> str:
    return call(aws.client("sts").get_caller_identity)["Account"]


def registry(config: Config, aws: boto3.Session) -> str:
    """IMAGE_REGISTRY, or the account's ECR registry in AWS_REGION."""
    return config["IMAGE_REGISTRY"] or f"{account_id(aws)}.dkr.ecr.{config['AWS_REGION']}.amazonaws.com"


def bucket_region(aws: boto3.Session, bucket: str) -> str:
    try:
        answer = aws.client("s3").get_bucket_location(Bucket=bucket)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
            raise UserError(f"bucket {bucket} does not exist: create it in your region or fix S3_BUCKET") from None
        raise UserError(explain(err)) from None
    except BotoCoreError as err:
        raise UserError(explain(err)) from None
    location = answer.get("LocationConstraint") or "us-east-1"
    return "eu-west-1" if location == "EU" else location


def check_bucket(config: Config, aws: boto3.Session) -> None:
    """A SageMaker job cannot read a bucket in another region: refuse before anything is sent."""
    bucket, region = config["S3_BUCKET"], config["AWS_REGION"]
    found = bucket_region(aws, bucket)
    if found != region:
        raise UserError(f"bucket {bucket} is in {found}, not in AWS_REGION={region}: "
                        f"use a bucket in {region}, or set AWS_REGION={found}")


def console_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{name}"


def logs_url(region: str, name: str) -> str:
    group = LOG_GROUP.replace("/", "$252F")
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#logsV2:log-groups/log-group/{group}$3FlogStreamNameFilter$3D{name}")


def plain(value):
    """A boto3 answer with its datetimes as ISO 8601 strings, like a local record."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class SageMakerJobs:
    """This project's training jobs on SageMaker, answering like LocalJobs."""

    def __init__(self, config: Config, aws: boto3.Session | None = None):
        self.config = config
        self.region = config["AWS_REGION"]
        self.aws = aws or session(config)
        try:
            self.sagemaker = self.aws.client("sagemaker")
            self.logs = self.aws.client("logs")
        except BotoCoreError as err:
            raise UserError(explain(err)) from None

    def describe(self, name: str) -> dict:
        try:
            return plain(self.sagemaker.describe_training_job(TrainingJobName=name))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ValidationException":
                raise UserError(f"no SageMaker job named '{name}' in {self.region}: "
                                f"`make jobs ENV={self.config.env}` lists them") from None
            raise UserError(explain(err)) from None
        except BotoCoreError as err:
            raise UserError(explain(err)) from None

    def tags(self, name: str) -> dict[str, str]:
        arn = self.describe(name)["TrainingJobArn"]
        found = call(self.sagemaker.list_tags, ResourceArn=arn).get("Tags", [])
        return {t["Key"][len(TAG_PREFIX):]: t["Value"] for t in found if t["Key"].startswith(TAG_PREFIX)}

    def names(self, limit: int = 10) -> list[str]:
        """This project's jobs, newest first."""
        answer = call(self.sagemaker.list_training_jobs, NameContains=f"{self.config['PROJECT_NAME']}-",
                      SortBy="CreationTime", SortOrder="Descending", MaxResults=100)
        summaries = sorted(answer["TrainingJobSummaries"], key=lambda s: s["CreationTime"], reverse=True)
        ours = re.compile(rf"{re.escape(self.config['PROJECT_NAME'])}-[0-9a-z]+-\d{{8}}-\d{{6}}-\d{{3}}")
        return [s["TrainingJobName"] for s in summaries if ours.fullmatch(s["TrainingJobName"])][:limit]

    def latest(self) -> str:
        names = self.names(1)
        if not names:
            raise UserError(f"no jobs of {self.config['PROJECT_NAME']} on SageMaker in {self.region} yet: "
                            f"run `make train ENV={self.config.env}` first")
        return names[0]

    def submit(self, request: dict) -> None:
        call(self.sagemaker.create_training_job, **request)
        say(f"job {request['TrainingJobName']}: submitted to SageMaker in {self.region}")
        say(f"  console: {console_url(self.region, request['TrainingJobName'])}")

    def stop(self, name: str) -> None:
        status = self.describe(name)["TrainingJobStatus"]
        if status in TERMINAL:
            raise UserError(f"job {name} is {status} already: nothing to stop")
        call(self.sagemaker.stop_training_job, TrainingJobName=name)
        say(f"job {name}: stop requested (SageMaker sends SIGTERM, then SIGKILL after 120 s)")

    def follow(self, name: str, show_logs: bool = True) -> dict:
        """Follow a job to its end: status transitions with elapsed time, and every instance's log."""
        poll = self.config.int("POLL_SECONDS")
        started = time.monotonic()
        seen_transitions = 0
        tail: collections.deque = collections.deque(maxlen=LAST_LINES)
        reader = LogReader(self.logs, name)
        failures = 0
        try:
            while True:
                try:
                    record = self.describe(name)
                    lines = reader.new_lines() if show_logs else []
                    failures = 0
                except UserError as err:  # a network blip or expiring credentials must not lose the job
                    failures += 1
                    if failures >= LOST_CONTACT:
                        raise UserError(f"lost contact with job {name} ({err}); it keeps running on SageMaker: "
                                        f"make logs ENV={self.config.env} JOB={name}, then make fetch") from None
                    say(f"job {name}: {err}; trying again in {poll} s")
                    time.sleep(poll)
                    continue
                transitions = record.get("SecondaryStatusTransitions", [])
                for transition in transitions[seen_transitions:]:
                    elapsed = _clock(time.monotonic() - started)
                    say(f"job {name}: [{elapsed}] {record['TrainingJobStatus']} / {transition['Status']}: "
                        f"{transition.get('StatusMessage', '')}")
                seen_transitions = len(transitions)
                for line in lines:
                    tail.append(line)
                    print(line, flush=True)
                if record["TrainingJobStatus"] in TERMINAL:
                    break
                time.sleep(poll)
        except KeyboardInterrupt:
            say(f"job {name} keeps running on SageMaker. Follow it again: make logs ENV={self.config.env} JOB={name}; "
                f"stop it: make stop ENV={self.config.env} JOB={name}")
            raise
        self._summarise(record, list(tail))
        return record

    def _summarise(self, record: dict, tail: list[str]) -> None:
        name, status = record["TrainingJobName"], record["TrainingJobStatus"]
        billable, training = record.get("BillableTimeInSeconds"), record.get("TrainingTimeInSeconds")
        if billable is not None and training:
            saved = f", {100 * (1 - billable / training):.0f}% saved by spot" if billable < training else ""
            say(f"job {name}: {status}: billable {billable} s of {training} s training{saved}")
        if status == "Completed":
            return
        print(f"job {name} {status}: {record.get('FailureReason', record.get('SecondaryStatus', ''))}",
              file=sys.stderr)
        if tail:
            print(f"last {len(tail)} log lines:", file=sys.stderr)
            for line in tail:
                print(f"  {line}", file=sys.stderr)
        print(f"console: {console_url(self.region, name)}", file=sys.stderr)
        print(f"logs:    {logs_url(self.region, name)}", file=sys.stderr)

    def print_log(self, name: str) -> None:
        """A job's log from every instance; while the job runs, keep following it."""
        record = self.describe(name)
        if record["TrainingJobStatus"] in TERMINAL:
            for line in LogReader(self.logs, name).new_lines():
                print(line, flush=True)
        else:
            self.follow(name)


class LogReader:
    """New lines of every CloudWatch stream of a job (one per instance), each prefixed with its stream."""

    def __init__(self, logs, job: str):
        self.logs, self.job = logs, job
        self.tokens: dict[str, str | None] = {}

    def new_lines(self) -> list[str]:
        lines = []
        try:
            streams = self.logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self.job}/")
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []  # no log group before the first job writes to it
            raise UserError(explain(err)) from None
        except BotoCoreError as err:
            raise UserError(explain(err)) from None
        for stream in sorted(s["logStreamName"] for s in streams.get("logStreams", [])):
            host = stream[len(self.job) + 1:]
            while True:
                kwargs = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
                if self.tokens.get(stream):
                    kwargs["nextToken"] = self.tokens[stream]
                answer = call(self.logs.get_log_events, **kwargs)
                lines += [f"[{host}] {event['message'].rstrip()}" for event in answer.get("events", [])]
                token = answer.get("nextForwardToken")
                if not answer.get("events") or token == self.tokens.get(stream):
                    self.tokens[stream] = token
                    break
                self.tokens[stream] = token
        return lines


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def check_inputs(config: Config, aws: boto3.Session, request: dict) -> None:
    """The image and every channel's data must be in place before a paid job starts."""
    image = request["AlgorithmSpecification"]["TrainingImage"]
    if not config["IMAGE_REGISTRY"] and image_digest(aws, image) is None:
        raise UserError(f"image {image} is not in ECR: run `make build ENV={config.env}` first")
    s3 = aws.client("s3")
    for channel in request["InputDataConfig"]:
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not call(s3.list_objects_v2, Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"):
            raise UserError(f"channel {channel['ChannelName']} has no data at {uri}: "
                            f"run `make upload ENV={config.env}` first")


def image_digest(aws: boto3.Session, image: str) -> str | None:
    """The ECR digest of <registry>/<repository>:<tag>, or None when that tag is not there."""
    repository, _, tag = image.split("/", 1)[1].rpartition(":")
    try:
        answer = aws.client("ecr").describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return None
        raise UserError(explain(err)) from None
    except BotoCoreError as err:
        raise UserError(explain(err)) from None
    details = answer.get("imageDetails", [])
    return details[0].get("imageDigest") if details else None


def download(aws: boto3.Session, uri: str, path) -> None:
    """Download s3://bucket/key to path, showing progress."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    s3 = aws.client("s3")
    try:
        size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            raise UserError(f"no model at {uri}: the job wrote none, or it was deleted") from None
        raise UserError(explain(err)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress(f"download {uri}", size)
    try:
        s3.download_file(bucket, key, str(path), Callback=progress)
    except (BotoCoreError, ClientError) as err:
        raise UserError(explain(err)) from None
    progress.done()


class Progress:
    """Bytes moved so far, on one line of stderr (rewritten in place on a terminal)."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.moved, self.shown = label, total, 0, -1
        self.terminal = sys.stderr.isatty()
        self.lock = threading.Lock()

    def __call__(self, count: int) -> None:
        with self.lock:  # boto3 calls this from its transfer threads
            self.moved += count
        percent = 100 * self.moved // self.total if self.total else 100
        if self.terminal and percent != self.shown:
            self.shown = percent
            print(f"\r==> {self.label}: {percent}% of {_size(self.total)}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        prefix = "\r" if self.terminal else ""
        print(f"{prefix}==> {self.label}: {_size(self.moved)} done", file=sys.stderr, flush=True)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def upload_code(aws: boto3.Session, root: Path, uri: str) -> None:
    """Script mode: sourcedir.tar.gz to its content-named place in S3, unless it is there already."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    s3 = aws.client("s3")
    try:
        s3.head_object(Bucket=bucket, Key=key)
        say(f"code: {uri} is there already: nothing to upload")
        return
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise UserError(explain(err)) from None
    with tempfile.TemporaryDirectory() as scratch:
        archive = sourcedir.write(root, Path(scratch) / sourcedir.ARCHIVE)
        call(s3.upload_file, Filename=str(archive), Bucket=bucket, Key=key)
        say(f"code: uploaded {uri} ({archive.stat().st_size / 1e3:.0f} kB)")
