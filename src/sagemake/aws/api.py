"""AWS through boto3: the session, every AWS error as one line (explain, call), S3 and ECR helpers.

Clients come from the standard AWS chain (profile, SSO, environment, assumed
role) and take their endpoint from AWS_ENDPOINT_URL* when it is set; nothing
here knows about tests.

Retries: every call gets AWS_MAX_ATTEMPTS attempts, however many calls failed
before it. botocore's standard mode cannot promise that: each client has a
retry quota (500 tokens, 14 taken by each retry of a network error or a 5xx,
given back only by successes) that a transfer of many files through one client
drains under a bad network, and from then on a call is tried once. botocore
offers no setting for its size (the quota is made in
botocore.retries.standard.register_retry_handler with a fixed capacity),
adaptive mode registers the same quota under its rate limiter, and a retry of
our own around whole-file transfers would leave every other call of a drained
client with one attempt. Legacy mode is botocore's supported mode without a
quota: it retries the same faults (connection errors, timeouts, 500, 502, 503,
504, throttling), with a random backoff that doubles (at most a minute before
the 8th attempt), up to AWS_MAX_ATTEMPTS. A storm of retries is what the quota
prevents; a command ends at its first call that fails every attempt, and the
sync starts no new file after a failure, so one command's retries stay bounded
by the files under way.
"""

from __future__ import annotations

import base64
import os
import tempfile
from datetime import datetime
from pathlib import Path

import boto3
from boto3.exceptions import Boto3Error, RetriesExceededError, S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as NetworkError

from sagemake import sourcedir
from sagemake.aws.s3 import split
from sagemake.cli import AwsError, JobFailed, Progress, UserError, say
from sagemake.config import Config

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
RETRIES = {"AWS_RETRY_MODE": "legacy", "AWS_MAX_ATTEMPTS": "8"}  # legacy: no retry quota (see above)
ERRORS = (BotoCoreError, ClientError, Boto3Error)  # what boto3 raises: `except ERRORS as err: raise failure(err)`
NETWORK = (NetworkError, HTTPClientError)  # refused, reset, closed, timed out, cut off in the middle of an answer
THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestLimitExceeded",
             "TooManyRequestsException", "SlowDown", "ProvisionedThroughputExceededException"}


class AwsUnavailable(AwsError):
    """AWS could not be reached, or answered only with its own faults (5xx, throttling), on every attempt:
    nothing is wrong with the request, so the same command run again later carries on."""


def session(config: Config) -> boto3.Session:
    """The standard chain's session. Every call retries transient faults with backoff (botocore's legacy mode,
    8 attempts each, no shared quota) unless AWS_RETRY_MODE or AWS_MAX_ATTEMPTS say otherwise; a call that still
    fails on the network raises AwsUnavailable, from whichever client, thread or transfer it came."""
    for name, value in RETRIES.items():
        os.environ.setdefault(name, value)
    try:
        aws = boto3.Session(region_name=config["AWS_REGION"])
    except BotoCoreError as err:  # an AWS_PROFILE that does not exist, say
        raise failure(err) from None
    aws.events.register("after-call-error", _failed_call, unique_id="sagemake-one-line")
    return aws


def _failed_call(exception: Exception, event_name: str, context: dict | None = None, **_) -> None:
    """botocore's after-call-error: a request that failed without an answer on its last attempt (the network, or
    signing it). Made one line here, so that no client, paginator or transfer thread lets a traceback through."""
    if isinstance(exception, BotoCoreError):
        _, service, operation = (event_name.split(".", 2) + ["", ""])[:3]
        attempts = ((context or {}).get("retries") or {}).get("attempt")
        raise failure(exception, f"{service} {operation}".strip(), attempts) from None


def failure(err: Exception, operation: str | None = None, attempts: int | None = None) -> AwsError:
    """The one place an exception from boto3 becomes the one-line error a command ends with (exit status 3):
    AwsUnavailable when the network or AWS itself failed every attempt, AwsError otherwise."""
    if isinstance(err, AwsError):
        return err
    err = _underlying(err)
    kind = AwsUnavailable if transient(err) else AwsError
    return kind(explain(err, operation, attempts))


def _underlying(err: Exception) -> Exception:
    """boto3's transfers wrap what failed: S3UploadFailedError around a ClientError, RetriesExceededError around
    the last network error of a download."""
    if isinstance(err, RetriesExceededError) and isinstance(err.last_exception, Exception):
        return err.last_exception
    if isinstance(err, S3UploadFailedError) and isinstance(err.__context__, ClientError):
        return err.__context__
    return err


def transient(err: Exception) -> bool:
    """A fault of the network or of AWS, not of the request: worth the same command again later."""
    if isinstance(err, NETWORK):
        return True
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or err.response.get("Error", {}).get("Code") in THROTTLED
    return False


def explain(err: Exception, operation: str | None = None, attempts: int | None = None) -> str:
    """An AWS error as one line that says what to do (operation and attempts, when known, for a network error)."""
    err = _underlying(err)
    if isinstance(err, NETWORK):
        said = " ".join(str(err).split()).rstrip(".")
        tried = f", {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
        where = f" ({operation}{tried})" if operation else ""
        return (f"cannot reach AWS{where}: {said}: check the network (and AWS_ENDPOINT_URL, if set), "
                "then run the same command again")
    if isinstance(err, NoCredentialsError):
        return "no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE"
    if isinstance(err, ProfileNotFound):
        return f"AWS profile '{err.kwargs.get('profile')}' not found: fix AWS_PROFILE, or `aws configure --profile` it"
    if isinstance(err, NoRegionError):
        return "no AWS region: set AWS_REGION in .env"
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        message = " ".join(err.response.get("Error", {}).get("Message", "").split())  # one line, whatever AWS sent
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            return f"AWS credentials have expired ({code}): renew them (`aws sso login`, or assume the role again)"
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return f"AWS denied {err.operation_name} ({message}): grant it to your credentials"
        if transient(err):
            tries = retried(err) + 1
            return (f"AWS {err.operation_name} failed {tries} time{'s' if tries != 1 else ''} ({code}: {message}): "
                    "AWS is failing or throttling: run the same command again later")
        return f"AWS {err.operation_name} failed: {code}: {message}"
    return f"AWS call failed: {' '.join(str(err).split())}"


def retried(err: Exception) -> int:
    """How many times botocore retried the call that raised err (0: the first attempt's answer)."""
    return getattr(err, "response", {}).get("ResponseMetadata", {}).get("RetryAttempts", 0)


def error_code(err: Exception) -> str:
    """AWS's code for a refusal (NoSuchKey, RepositoryNotFoundException, ...); "" for any other failure."""
    return err.response.get("Error", {}).get("Code", "") if isinstance(err, ClientError) else ""


def call(function, on: dict | None = None, **kwargs):
    """Call an AWS API. A refusal whose code is in `on` answers on[code] instead: a value is returned, an
    exception (a UserError that says what to do) raised; any other AWS error becomes a UserError that says what
    to do. The one place that catches what boto3 raises, with create() below."""
    try:
        return function(**kwargs)
    except ERRORS as err:
        answer = (on or {}).get(error_code(err), _NO_ANSWER)
        if answer is _NO_ANSWER:
            raise failure(err) from None
        if isinstance(answer, BaseException):
            raise answer from None
        return answer


_NO_ANSWER = object()
TAKEN = ("ResourceInUse", "ResourceInUseException", "ValidationException")  # a name in use, as each API says it


def create(function, ours, what: str, **request) -> None:
    """A Create* call that survives a lost answer, for every kind (jobs, models, endpoint configs, endpoints).

    None of them is idempotent: when an attempt created the resource but its answer was lost, botocore's retry
    hears that the name is taken. Then ours() is asked (the resource as described now, compared with the
    request): it is this one when it was a retry and ours() says so; a name taken by anything else stays an error.
    When the last attempt failed on the network or on AWS's side, an earlier one (or that one) may still have
    created it: ours() is asked too, and the command goes on with what SageMaker made instead of leaving it
    running unfollowed; a failure of that question leaves the call's own failure.
    """
    try:
        function(**request)
    except (*ERRORS, AwsUnavailable) as err:
        if not (retried(err) and error_code(err) in TAKEN and ours() or unanswered(err) and _made(ours)):
            raise failure(err) from None
        say(f"{what}: an attempt whose answer was lost created it")


def unanswered(err: Exception) -> bool:
    """A call that ended without AWS's answer to the request itself: the network, or AWS's own fault."""
    return isinstance(err, AwsUnavailable) or transient(err)


def _made(ours) -> bool:
    try:
        return ours()
    except UserError:  # not found, or AWS still unreachable
        return False


def account_id(aws: boto3.Session) -> str:
    return call(aws.client("sts").get_caller_identity)["Account"]


def registry(config: Config, aws: boto3.Session) -> str:
    """IMAGE_REGISTRY, or the account's ECR registry in AWS_REGION."""
    return config["IMAGE_REGISTRY"] or f"{account_id(aws)}.dkr.ecr.{config['AWS_REGION']}.amazonaws.com"


def bucket_region(aws: boto3.Session, bucket: str, s3=None) -> str:
    gone = UserError(f"bucket {bucket} does not exist: create it in your region or fix S3_BUCKET")
    answer = call((s3 or aws.client("s3")).get_bucket_location, on=dict.fromkeys(("NoSuchBucket", "404"), gone),
                  Bucket=bucket)
    location = answer.get("LocationConstraint") or "us-east-1"
    return "eu-west-1" if location == "EU" else location


def check_bucket(config: Config, aws: boto3.Session, s3=None) -> None:
    """A SageMaker job cannot read a bucket in another region: refuse before anything is sent (asked with the s3
    client given, if any: a client costs a tenth of a second to make)."""
    bucket, region = config["S3_BUCKET"], config["AWS_REGION"]
    found = bucket_region(aws, bucket, s3)
    if found != region:
        raise UserError(f"bucket {bucket} is in {found}, not in AWS_REGION={region}: "
                        f"use a bucket in {region}, or set AWS_REGION={found}")


def console_url(region: str, name: str, page: str = "jobs") -> str:
    """The job's page in the SageMaker console (page: jobs, processing-jobs, hyper-tuning-jobs)."""
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{page}/{name}"


def logs_url(region: str, name: str, group: str = LOG_GROUP) -> str:
    group = group.replace("/", "$252F")
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


def image_digest(aws: boto3.Session, image: str) -> str | None:
    """The ECR digest of <registry>/<repository>:<tag>, or None when that tag is not there."""
    repository, _, tag = image.split("/", 1)[1].rpartition(":")
    answer = call(aws.client("ecr").describe_images, on=dict.fromkeys(
        ("ImageNotFoundException", "RepositoryNotFoundException"), {}), repositoryName=repository,
        imageIds=[{"imageTag": tag}])
    details = answer.get("imageDetails", [])
    return details[0].get("imageDigest") if details else None


def ensure_repository(aws: boto3.Session, name: str) -> None:
    """The ECR repository, created when missing."""
    ecr = aws.client("ecr")
    if call(ecr.describe_repositories, on={"RepositoryNotFoundException": None}, repositoryNames=[name]):
        return
    say(f"build: creating ECR repository {name}")
    # there already: made meanwhile, or by an attempt whose answer was lost
    call(ecr.create_repository, on={"RepositoryAlreadyExistsException": None}, repositoryName=name)


def ecr_credentials(aws: boto3.Session) -> tuple[str, str]:
    """(user name, password) for the engine's login to the account's ECR registry."""
    token = call(aws.client("ecr").get_authorization_token)["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


def download(aws: boto3.Session, uri: str, path) -> None:
    """Download s3://bucket/key to path, showing progress."""
    bucket, key = split(uri)
    s3 = aws.client("s3")
    gone = UserError(f"nothing at {uri}: the job wrote none, or it was deleted")
    size = call(s3.head_object, on=dict.fromkeys(("404", "NoSuchKey"), gone), Bucket=bucket, Key=key)["ContentLength"]
    path.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress(f"download {uri}", size)
    call(s3.download_file, Bucket=bucket, Key=key, Filename=str(path), Callback=progress)
    progress.done()


def upload_code(aws: boto3.Session, root: Path, uri: str) -> None:
    """Script mode: sourcedir.tar.gz to its content-named place in S3, unless it is there already."""
    bucket, key = split(uri)
    s3 = aws.client("s3")
    if call(s3.head_object, on=dict.fromkeys(("404", "NoSuchKey"), None), Bucket=bucket, Key=key):
        say(f"code: {uri} is there already: nothing to upload")
        return
    with tempfile.TemporaryDirectory() as scratch:
        archive = sourcedir.write(root, Path(scratch) / sourcedir.ARCHIVE)
        call(s3.upload_file, Filename=str(archive), Bucket=bucket, Key=key)
        say(f"code: uploaded {uri} ({archive.stat().st_size / 1e3:.0f} kB)")


def folder(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of the folder uri: the prefix ends with '/' (s3://b/ck is the folder ck/, never ck2/ beside
    it), or is empty for the whole bucket."""
    bucket, key = split(uri)
    return bucket, key.rstrip("/") + "/" if key.strip("/") else ""


def objects(s3, uri: str) -> tuple[str, str, list[dict]]:
    """(bucket, prefix, objects) of the folder uri: every object below it, its folder markers left out."""
    bucket, prefix = folder(uri)
    pages = call(lambda: list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)))
    found = [item for page in pages for item in page.get("Contents", [])]
    return bucket, prefix, [item for item in found if not item["Key"].endswith("/")]


def copy_prefix(s3, source: str, into: str) -> int:
    """Every object of the folder source copied into the folder into, by its key below source, within S3 (nothing
    passes through this machine; large objects in parts). Returns the count copied."""
    bucket, prefix, items = objects(s3, source)
    target_bucket, target_prefix = folder(into)
    for item in items:
        call(s3.copy, CopySource={"Bucket": bucket, "Key": item["Key"]}, Bucket=target_bucket,
             Key=target_prefix + item["Key"][len(prefix):])
    return len(items)


def download_prefix(s3, uri: str, target: Path, what: str) -> int:
    """Every object under the prefix uri into target, by its key below the prefix; folder markers skipped. A key
    that would land outside target (../, an absolute path) fails the download before anything is written. Returns
    the count of files written."""
    bucket, prefix, items = objects(s3, uri)
    root = target.resolve()
    paths = []
    for item in items:
        path = (root / item["Key"][len(prefix):]).resolve()
        if not path.is_relative_to(root) or path == root:
            raise JobFailed(f"{what}: the object s3://{bucket}/{item['Key']} would land outside {target}: not taken")
        paths.append(path)
    target.mkdir(parents=True, exist_ok=True)
    for item, path in zip(items, paths, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        call(s3.download_file, Bucket=bucket, Key=item["Key"], Filename=str(path))
    return len(items)
