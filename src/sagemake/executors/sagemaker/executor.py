"""The SageMaker executor: jobs on Amazon SageMaker through boto3, answering as the local one does.

Records are DescribeTrainingJob answers with their times as ISO 8601 strings,
the shape the local executor writes. Channels are synced to
s3://S3_BUCKET/S3_PREFIX/data/<channel>/, the image pushed to ECR (or
IMAGE_REGISTRY), and everything a paid job needs is checked before it starts.
"""

from __future__ import annotations

import difflib
import re
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import boto3

from sagemake import sourcedir
from sagemake.aws import api as cloud
from sagemake.aws.api import (
    AwsUnavailable,
    call,
    console_url,
    create,
    logs_url,
    plain,
    session,
)
from sagemake.aws.logs import LogReader
from sagemake.aws.s3 import split
from sagemake.cli import AwsError, UserError, say
from sagemake.clock import elapsed
from sagemake.config import Config, channel_uri, s3_uri
from sagemake.executors.interface import Executor
from sagemake.image import Engine
from sagemake.image import check as image_check
from sagemake.jobs import DIGEST_TAG, request_digest
from sagemake.jobs.training import (
    METRIC_LINE,
    TAG_PREFIX,
    metric_definitions,
    metric_points,
    metric_warnings,
    names_pattern,
    printed_metrics,
    tuning_head,
)
from sagemake.pricing import Prices

TERMINAL = ("Completed", "Failed", "Stopped")
MANIFESTS = ("application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json",
             "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")
LOST_CONTACT = 5  # failed polls in a row before following gives up (the job itself goes on)
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class SageMakerExecutor(Executor):
    """This project's training jobs on SageMaker in AWS_REGION."""

    name = "sagemaker"

    def __init__(self, config: Config, aws: boto3.Session | None = None):
        super().__init__(config)
        self.region = config["AWS_REGION"]
        self.aws = aws or session(config)
        self._registry: str | None = None

    # Each client is made on first use: one takes a tenth of a second or more, and `make upload` needs neither.
    @cached_property
    def sagemaker(self):
        return self._client("sagemaker")

    @cached_property
    def logs(self):
        return self._client("logs")

    @cached_property
    def autoscaling(self):
        return self._client("application-autoscaling")

    @cached_property
    def service_quotas(self):
        return self._client("service-quotas")

    def _client(self, service: str):
        return call(self.aws.client, service_name=service)

    def where(self) -> str:
        return f"on SageMaker in {self.region}"

    def prices(self) -> Prices:
        """SageMaker's prices in AWS_REGION: the Price List API's (cached), else the shipped table."""
        return Prices(self.region, self.aws)

    # --- where things are ---
    def registry(self) -> str:
        if self._registry is None:
            self._registry = cloud.registry(self.config, self.aws)
        return self._registry

    def image_for(self, tag: str) -> str:
        return f"{self.registry()}/{self.config['ECR_REPOSITORY']}:{tag}"

    def channel_uri(self, channel: str) -> str:
        return channel_uri(self.config, channel)

    def output_uri(self) -> str:
        return s3_uri(self.config, "output")

    def code_uri(self, digest: str) -> str:
        return s3_uri(self.config, "code", digest, sourcedir.ARCHIVE)

    def checkpoint_uri(self, job: str, own: bool = False) -> str | None:
        """CHECKPOINT_S3_URI as given, as a folder: every job with it starts from what the last left there (a spot
        job SageMaker starts again is the same job, so it resumes either way); a tuning run's in a folder below it."""
        given = self.config["CHECKPOINT_S3_URI"].rstrip("/")
        if not given:
            return None
        return f"{given}/{job}/" if own else f"{given}/"

    def checkpoints_of(self, job: str) -> str:
        try:
            record = self.describe(job)
        except AwsError:
            raise
        except UserError as err:
            raise UserError(f"CHECKPOINT_FROM={job}: {err}") from None
        status = record["TrainingJobStatus"]
        if status not in TERMINAL:
            raise UserError(f"CHECKPOINT_FROM={job}: the job is {status}, its checkpoints still changing: wait for it "
                            f"to end, or stop it (make stop ENV={self.config.env} JOB={job})")
        uri = record.get("CheckpointConfig", {}).get("S3Uri")
        if not uri:
            raise UserError(f"CHECKPOINT_FROM={job}: the job kept no checkpoints (it ran without CHECKPOINT_S3_URI): "
                            "name a job that had one")
        if not self.checkpoint_files(uri):
            raise UserError(f"CHECKPOINT_FROM={job}: nothing at {uri}, where the job kept its checkpoints (its "
                            "trainer wrote none to /opt/ml/checkpoints, or they were deleted): name another job")
        later = self.last_job_at(uri, record)
        if later:
            raise UserError(f"CHECKPOINT_FROM={job}: {uri} holds what job {later} left there, which ran with the same "
                            f"CHECKPOINT_S3_URI after it: CHECKPOINT_FROM={later} carries on from that state")
        return uri

    def last_job_at(self, uri: str, record: dict) -> str | None:
        """The newest of this project's jobs created after the one described by record whose checkpoints went to the
        same place: what that place holds is that job's state now, no longer the first's."""
        newer, token = [], {}
        while True:
            page = call(self.sagemaker.list_training_jobs, NameContains=f"{tuning_head(self.config['PROJECT_NAME'])}-",
                        CreationTimeAfter=record["CreationTime"], MaxResults=100, **token)
            newer += page["TrainingJobSummaries"]
            if not page.get("NextToken"):
                break
            token = {"NextToken": page["NextToken"]}
        for summary in sorted(newer, key=lambda s: s["CreationTime"], reverse=True):
            name = summary["TrainingJobName"]
            if name != record["TrainingJobName"] and self.describe(name).get(
                    "CheckpointConfig", {}).get("S3Uri", "").rstrip("/") == uri.rstrip("/"):
                return name
        return None

    def checkpoint_files(self, uri: str) -> dict[str, str]:
        """Each object's ETag, the digest S3 keeps of its content (a copy within S3 keeps it)."""
        _, prefix, found = cloud.objects(self.aws.client("s3"), uri)
        return {item["Key"][len(prefix):]: item["ETag"] for item in found}

    def copy_checkpoints(self, source: str, into: str) -> int:
        return cloud.copy_prefix(self.aws.client("s3"), source, into)

    # --- before a job ---
    def ensure_image(self) -> None:
        """The image in ECR (the repository created when missing) or in IMAGE_REGISTRY: built and pushed
        unless its tag is there already. TRAINING_IMAGE is used as it is, and must be there."""
        config, image = self.config, self.image()
        if config["TRAINING_IMAGE"]:
            self.check_image(image)
            say(f"build: TRAINING_IMAGE {image} is used as it is")
            return
        engine = Engine(config)
        if not config["IMAGE_REGISTRY"]:
            if cloud.image_digest(self.aws, image) is not None:
                say(f"build: {image} is in ECR already: nothing to build or push")
                return
            cloud.ensure_repository(self.aws, config["ECR_REPOSITORY"])
        if not engine.reachable():
            raise UserError(f"no {engine.name} engine is reachable: start it (or set CONTAINER_ENGINE) "
                            "to build the image")
        if not engine.has(image):  # a tag in the engine names an image checked when it was built
            engine.build(image)
        if not config["IMAGE_REGISTRY"]:
            engine.login(self.registry(), *cloud.ecr_credentials(self.aws))
        engine.push(image)

    def check_image(self, image: str) -> None:
        """SageMaker pulls from ECR: the image must be there before a paid job starts."""
        host = image.split("/", 1)[0]
        if self.config["IMAGE_REGISTRY"] and host == self.config["IMAGE_REGISTRY"]:
            return  # another registry: no API to ask, its login is the user's
        if not ECR_HOST.match(host):
            raise UserError(f"image {image} is not in an ECR registry, where SageMaker pulls images from: push it to "
                            f"{self.registry()}/<repository> and set TRAINING_IMAGE to that")
        if cloud.image_digest(self.aws, image) is None:
            hint = "set TRAINING_IMAGE to an image that is there" if self.config["TRAINING_IMAGE"] else \
                f"run `make build ENV={self.config.env}` first"
            raise UserError(f"image {image} is not in ECR: {hint}")

    def sync_data(self) -> None:
        from sagemake.aws.sync import sync

        sync(self.config, self.aws)

    def checks(self) -> list[tuple[str, object]]:
        config, aws = self.config, self.aws

        def credentials():
            identity = call(aws.client("sts").get_caller_identity)
            return f"account {identity['Account']} as {identity['Arn']}"

        def bucket():
            cloud.check_bucket(config, aws)
            return f"s3://{config['S3_BUCKET']} is in {config['AWS_REGION']}"

        def repository():
            answer = call(aws.client("ecr").describe_repositories, on={"RepositoryNotFoundException": None},
                          repositoryNames=[config["ECR_REPOSITORY"]])
            if answer is None:
                return f"{config['ECR_REPOSITORY']} does not exist yet: `make build ENV={config.env}` creates it"
            return answer["repositories"][0]["repositoryUri"]

        return [("settings", lambda: "every required setting present, role ARN well formed"),
                ("credentials", credentials), ("bucket", bucket), ("ECR repository", repository),
                ("training image", self.image_available), ("container engine", lambda: image_check(config))]

    def image_available(self) -> str:
        """`make doctor`: the image a job would run is where SageMaker pulls it from, or an engine is there to build
        it (the content tag is looked up; TRAINING_IMAGE must be there already)."""
        config, image = self.config, self.image()
        other = config["IMAGE_REGISTRY"] and image.split("/", 1)[0] == config["IMAGE_REGISTRY"]
        where = config["IMAGE_REGISTRY"] if other else "ECR"
        if other:
            found = registry_has(image)
            if found is None:
                return f"{image}: {where} asks for a login to look, so it is not checked (the engine's login is yours)"
        elif config["TRAINING_IMAGE"]:
            self.check_image(image)
            found = True
        else:
            found = cloud.image_digest(self.aws, image) is not None
        if found:
            return f"{image} is in {where}"
        if config["TRAINING_IMAGE"]:
            raise UserError(f"image {image} is not in {where}: push it, or set TRAINING_IMAGE to an image that is")
        engine = Engine(config)
        if engine.reachable():
            return f"{image} is not in {where} yet: `make build ENV={config.env}` builds it with {engine.name}"
        raise UserError(f"image {image} is not in {where} and no {engine.name} engine is reachable to build it: start "
                        f"{engine.name} (or set CONTAINER_ENGINE), or run `make build ENV={config.env}` on a machine "
                        "with one")

    # --- jobs ---
    def run(self, request: dict) -> dict:
        """Check what a paid job needs, upload the code (script mode), submit, follow. Ctrl-C leaves it running."""
        self.ready(request["AlgorithmSpecification"]["TrainingImage"], request["InputDataConfig"],
                   request["HyperParameters"])
        self.refuse_duplicate("TrainingJob", request, "make logs ENV={env} JOB={name}")
        self.start_checkpoints(request)
        self.submit(request)
        return self.follow(request["TrainingJobName"], definitions=request["AlgorithmSpecification"].get(
            "MetricDefinitions", []))

    def refuse_duplicate(self, kind: str, request: dict, follow: str) -> None:
        """No second paid job by surprise: a <kind> (TrainingJob, ProcessingJob, HyperParameterTuningJob) of this
        project InProgress with this request's digest refuses the submit in one line, naming it and how to follow
        it; ALLOW_DUPLICATE=true submits anyway. The digest goes on the request as a tag, for the next to find."""
        digest = request_digest(request, request[f"{kind}Name"])
        request["Tags"] = [*request["Tags"], {"Key": DIGEST_TAG, "Value": digest}]
        if self.config.flag("ALLOW_DUPLICATE"):
            return
        listing = {"TrainingJob": self.sagemaker.list_training_jobs,
                   "ProcessingJob": self.sagemaker.list_processing_jobs,
                   "HyperParameterTuningJob": self.sagemaker.list_hyper_parameter_tuning_jobs}[kind]
        found = call(listing, StatusEquals="InProgress", NameContains=self.config["PROJECT_NAME"], MaxResults=100)
        for summary in found.get(f"{kind}Summaries", []):
            tags = call(self.sagemaker.list_tags, ResourceArn=summary[f"{kind}Arn"]).get("Tags", [])
            if {"Key": DIGEST_TAG, "Value": digest} in tags:
                running = summary[f"{kind}Name"]
                raise UserError(f"{running} is InProgress on SageMaker with this same request: follow it "
                                f"({follow.format(name=running, env=self.config.env)}), or set ALLOW_DUPLICATE=true "
                                "to start another")

    def ready(self, image: str, channels: list[dict], hyperparameters: dict) -> None:
        """What a paid training job needs before it is created: the bucket, the image in ECR, data in every channel,
        and, in script mode, the code uploaded (a tuning job's trials need the same)."""
        cloud.check_bucket(self.config, self.aws)
        self.check_image(image)
        s3 = self.aws.client("s3")
        for channel in channels:
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, prefix = split(uri)
            if not call(s3.list_objects_v2, Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"):
                raise UserError(f"channel {channel['ChannelName']} has no data at {uri}: "
                                f"run `make upload ENV={self.config.env}` first")
        code = hyperparameters.get(sourcedir.DIRECTORY_KEY)
        if code:
            cloud.upload_code(self.aws, self.config.root, code)

    def watch(self, what: str, ask, hint: str):
        """ask()'s answers, one each POLL_SECONDS, for as long as the caller reads them, each with the seconds since
        the first: the one poll loop of every kind. A failed ask (a network blip, expiring credentials) is tried
        again: LOST_CONTACT failures in a row give up, saying `hint` (the job itself goes on)."""
        poll, failures, started = self.config.int("POLL_SECONDS"), 0, time.monotonic()
        while True:
            try:
                answer = ask()
            except UserError as err:
                failures += 1
                if failures >= LOST_CONTACT:
                    raise AwsUnavailable(f"lost contact with {what} ({err}); it keeps running on SageMaker: "
                                         f"{hint}") from None
                say(f"{what}: {err}; trying again in {poll} s")
                time.sleep(poll)
                continue
            failures = 0
            yield answer, time.monotonic() - started
            time.sleep(poll)

    def describe(self, name: str) -> dict:
        answer = call(self.sagemaker.describe_training_job, on={"ValidationException": None}, TrainingJobName=name)
        if answer is None:
            near = difflib.get_close_matches(name, self.names(limit=100), n=1)
            listed = f"`make jobs ENV={self.config.env}` lists them"
            raise UserError(f"no SageMaker job named '{name}' in {self.region}: "
                            + (f"did you mean {near[0]}? ({listed})" if near else listed))
        return plain(answer)

    def tags(self, name: str) -> dict[str, str]:
        arn = self.describe(name)["TrainingJobArn"]
        found = call(self.sagemaker.list_tags, ResourceArn=arn).get("Tags", [])
        return {t["Key"][len(TAG_PREFIX):]: t["Value"] for t in found if t["Key"].startswith(TAG_PREFIX)}

    def names(self, limit: int = 10) -> list[str]:
        """This project's jobs, its tuning jobs' trials among them, newest first."""
        project = self.config["PROJECT_NAME"]
        answer = call(self.sagemaker.list_training_jobs, NameContains=f"{tuning_head(project)}-",
                      SortBy="CreationTime", SortOrder="Descending", MaxResults=100)
        summaries = sorted(answer["TrainingJobSummaries"], key=lambda s: s["CreationTime"], reverse=True)
        ours = names_pattern(project)
        return [s["TrainingJobName"] for s in summaries if ours.fullmatch(s["TrainingJobName"])][:limit]

    def metric_series(self, name: str) -> dict[str, list[dict]]:
        """The job's metric definitions applied to every instance's CloudWatch log, in the order CloudWatch timed
        the lines, each value with that time."""
        definitions = self.describe(name)["AlgorithmSpecification"].get("MetricDefinitions", [])
        return self.logged_series(name, cloud.LOG_GROUP, definitions)

    def logged_series(self, name: str, group: str, definitions: list[dict] | None) -> dict[str, list[dict]]:
        """The metric series of a job's CloudWatch log (every instance's, in the order CloudWatch timed the lines, each
        value with that time); definitions None: every `name=value` line printed is a metric (a processing job's,
        which declares none)."""
        events = sorted(LogReader(self.logs, name, group).new_events(), key=lambda event: event[0])
        stamps = [datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")
                  for ms, _ in events]
        lines = [line.split("] ", 1)[-1] for _, line in events]
        if definitions is None:
            definitions = metric_definitions(printed_metrics(lines))
        return metric_points(definitions, lines, stamps)

    def submit(self, request: dict) -> None:
        name = request["TrainingJobName"]

        def ours() -> bool:  # names are unique to the millisecond: the job found is this one if it is the one asked
            found = self.describe(name)
            return all(found.get(field) == request.get(field) for field in ("RoleArn", "HyperParameters")) and \
                found["AlgorithmSpecification"]["TrainingImage"] == request["AlgorithmSpecification"]["TrainingImage"]

        create(self.sagemaker.create_training_job, ours, f"job {name}", **request)
        try:
            say(f"job {name}: submitted to SageMaker in {self.region}")
            say(f"  console: {console_url(self.region, name)}")
        except KeyboardInterrupt:
            self._left_running(name)
            raise

    def _left_running(self, name: str) -> None:
        """What Ctrl-C (or SIGTERM, SIGHUP) says from the moment a job is submitted: it goes on, and how to reach it."""
        say(f"job {name} keeps running on SageMaker. Follow it again: make logs ENV={self.config.env} JOB={name}; "
            f"stop it: make stop ENV={self.config.env} JOB={name}")

    def stop(self, name: str | None) -> None:
        if not name:
            raise UserError(f"which job? make stop{self.env_flag()} JOB=<job name> (`make jobs{self.env_flag()}` "
                            "lists them)")
        status = self.describe(name)["TrainingJobStatus"]
        if status in TERMINAL:
            raise UserError(f"job {name} is {status} already: nothing to stop")
        call(self.sagemaker.stop_training_job, TrainingJobName=name)
        say(f"job {name}: stop requested (SageMaker sends SIGTERM, then SIGKILL after 120 s)")

    def follow(self, name: str, definitions: list[dict] | None = None, label: str = "") -> dict:
        """Follow a job to its end: status transitions with elapsed time, and every instance's log (each line after
        label)."""
        seen_transitions = 0
        printed: list[str] = []  # the `name=value` lines, for the metric warnings
        pool_checked = False
        try:
            reader = LogReader(self.logs, name)
            for (record, lines), seconds in self.watch(
                    f"job {name}", lambda: (self.describe(name), reader.new_lines()),
                    f"make logs ENV={self.config.env} JOB={name}, then make fetch ENV={self.config.env} JOB={name}"):
                transitions = record.get("SecondaryStatusTransitions", [])
                for transition in transitions[seen_transitions:]:
                    say(f"job {name}: [{elapsed(seconds)}] {record['TrainingJobStatus']} / {transition['Status']}: "
                        f"{transition.get('StatusMessage', '')}")
                seen_transitions = len(transitions)
                if not pool_checked and record.get("SecondaryStatus") not in ("Pending", "Starting"):
                    pool_checked = True  # a warm pool is taken as the job starts: asked once, past Starting
                    self._say_reused_pool(name)
                for line in lines:
                    print(label + line, flush=True)
                    message = line.split("] ", 1)[-1]
                    if METRIC_LINE.match(message):
                        printed.append(message)
                if record["TrainingJobStatus"] in TERMINAL:
                    break
        except KeyboardInterrupt:
            self._left_running(name)
            raise
        if definitions is not None and record["TrainingJobStatus"] == "Completed":
            found = {m["MetricName"]: m["Value"] for m in record.get("FinalMetricDataList", [])}
            for warning in metric_warnings(definitions, found, printed):
                say(f"job {name}: warning: {warning}")
        self._summarise(record)
        return record

    def _say_reused_pool(self, name: str) -> None:
        """Say when the job started on the warm pool another job kept: that job's WarmPoolStatus is Reused, naming
        this one (ListTrainingJobs filtered by WarmPoolStatusEquals). Only words: a failure here changes nothing."""
        try:
            answer = call(self.sagemaker.list_training_jobs, WarmPoolStatusEquals="Reused", SortBy="CreationTime",
                          SortOrder="Descending", MaxResults=100)
        except UserError:
            return
        for summary in answer.get("TrainingJobSummaries", []):
            if (summary.get("WarmPoolStatus") or {}).get("ReusedByJob") == name:
                say(f"job {name}: started on the warm pool of job {summary['TrainingJobName']} (reused: no new "
                    "instances to wait for)")
                return

    def _summarise(self, record: dict) -> None:
        name, status = record["TrainingJobName"], record["TrainingJobStatus"]
        billable, training = record.get("BillableTimeInSeconds"), record.get("TrainingTimeInSeconds")
        if billable is not None and training:
            saved = f", {100 * (1 - billable / training):.0f}% saved by spot" if billable < training else ""
            say(f"job {name}: {status}: billable {billable} s of {training} s training{saved}")
        pool = record.get("WarmPoolStatus") or {}
        if pool.get("Status") == "Available":
            keep = record.get("ResourceConfig", {}).get("KeepAlivePeriodInSeconds")
            say(f"job {name}: its instances stay warm{f' for {keep} s' if keep else ''} (warm pool Available, billed "
                "while kept): the next job with the same instance type and count, volume, role and VPC starts on them")
        if status == "Completed":
            return
        # Its reason is said once, by what ends the command; its log, just followed, is above.
        print(f"console: {console_url(self.region, name)}", file=sys.stderr)
        print(f"logs:    {logs_url(self.region, name)}", file=sys.stderr)

    # --- the other kinds ---
    def processing(self):
        from sagemake.executors.sagemaker.processing import SageMakerProcessing

        return SageMakerProcessing(self)

    def tuning(self):
        from sagemake.executors.sagemaker.tuning import SageMakerTunings

        return SageMakerTunings(self)

    def transforms(self):
        from sagemake.executors.sagemaker.transform import SageMakerTransforms

        return SageMakerTransforms(self)

    def endpoints(self):
        from sagemake.executors.sagemaker.endpoint import SageMakerEndpoints

        return SageMakerEndpoints(self)

    # --- after a job ---
    def artifact(self, uri: str, scratch: Path) -> Path:
        path = scratch / uri.rsplit("/", 1)[-1]
        cloud.download(self.aws, uri, path)
        return path

    def captured(self, model: Path, start) -> tuple[str, list[tuple[str, str]]]:
        """The endpoint's capture files in S3 (SageMaker's key layout: <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/),
        from the bucket in AWS_REGION."""
        from sagemake.capture import in_span
        from sagemake.jobs.endpoint import CAPTURE, VARIANT, endpoint_name

        s3 = self.aws.client("s3")
        cloud.check_bucket(self.config, self.aws, s3)
        uri = f"{s3_uri(self.config, CAPTURE)}/{endpoint_name(self.config)}/{VARIANT}/"
        bucket, prefix, items = cloud.objects(s3, uri)
        keys = sorted(item["Key"] for item in items if in_span(item["Key"][len(prefix):], start))
        if not keys:
            raise UserError(f"no capture files in {uri}{' in that span' if start else ''}: `make "
                            f"deploy{self.env_flag()}` with CAPTURE_PERCENT above 0 makes the endpoint capture, and "
                            "its requests are written there within minutes; or compare rows of a file: FILE=rows.csv")
        return uri, [(f"s3://{bucket}/{key}", call(s3.get_object, Bucket=bucket, Key=key)["Body"].read().decode())
                     for key in keys]

    def provenance(self, record: dict) -> dict:
        details = {"region": self.region, "billable_seconds": record.get("BillableTimeInSeconds")}
        if not self.config["IMAGE_REGISTRY"]:
            details["image_digest"] = cloud.image_digest(self.aws, record["AlgorithmSpecification"]["TrainingImage"])
        return details

    def print_log(self, name: str, label: str = "") -> bool:
        """A job's log from every instance; while the job runs, keep following it (its statuses said as they come,
        taken as having something to print)."""
        record = self.describe(name)
        if record["TrainingJobStatus"] not in TERMINAL:
            self.follow(name, label=label)
            return True
        lines = LogReader(self.logs, name).new_lines()
        for line in lines:
            print(label + line, flush=True)
        return bool(lines)


def registry_has(image: str) -> bool | None:
    """Whether a registry other than ECR holds <registry>/<repository>:<tag>, asked anonymously through the
    registry API (over HTTP for a registry on this machine, as engines do); None when it wants a login first."""
    host, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    local = host.split(":")[0] in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")
    request = urllib.request.Request(f"{'http' if local else 'https'}://{host}/v2/{repository}/manifests/{tag}",
                                     method="HEAD", headers={"Accept": ", ".join(MANIFESTS)})
    try:
        with urllib.request.urlopen(request, timeout=30):
            return True
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            return None
        if err.code == 404:
            return False
        raise UserError(f"registry {host} answered {err.code} {err.reason} for {image}: check IMAGE_REGISTRY") from None
    except (OSError, ValueError) as err:
        raise UserError(f"registry {host} cannot be reached ({err}): check IMAGE_REGISTRY and the network") from None
