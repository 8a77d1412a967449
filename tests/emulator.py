"""AWS for the tests: moto's server on 127.0.0.1, reached over real HTTP by boto3.

Where moto cannot act like SageMaker (it completes every job at once, runs no
container, writes no logs and no model), `SageMakerDriver` plays SageMaker's
part in moto's own state: it holds new jobs InProgress, walks them through
their statuses, writes their CloudWatch logs and puts their model in S3.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import boto3

ACCOUNT = "123456789012"
REGION = "eu-central-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-train"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def settings(bucket="train-bucket", repository="train-image", **extra) -> dict:
    return {"AWS_REGION": REGION, "SAGEMAKER_ROLE_ARN": ROLE, "S3_BUCKET": bucket, "ECR_REPOSITORY": repository,
            "POLL_SECONDS": "1", **extra}


def client(service, endpoint_url=None):
    """A client of the emulator: at AWS_ENDPOINT_URL, or at endpoint_url (past a proxy the code under test uses)."""
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url)


def make_bucket(name="train-bucket", region=REGION):
    boto3.client("s3", region_name=region).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})


def register_image(image: str) -> None:
    """Put IMAGE (<registry>/<repository>:<tag>) into moto's ECR, as a push would."""
    repository, _, tag = image.split("/", 1)[1].rpartition(":")
    ecr = client("ecr")
    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": "sha256:" + "0" * 64, "size": 1,
                           "mediaType": "application/vnd.docker.container.image.v1+json"},
                "layers": []}
    try:
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    except ecr.exceptions.ImageAlreadyExistsException:  # pushed already: the same content has the same tag
        pass


def repository_image(env: dict) -> str:
    """The image URI the scripts compute for this repository with these settings."""
    script = Path(__file__).resolve().parents[1] / "scripts/run_sagemaker.py"
    return subprocess.run([str(script), "image"], env={**os.environ, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


def model_archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def backend():
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION]


class SageMakerDriver:
    """Plays SageMaker for the next job created: statuses, logs on two instances, model, outcome.

    As SageMaker does (and moto does not), it refuses a job name that is taken (ResourceInUse). It reaches the
    emulator at `endpoint` (default: AWS_ENDPOINT_URL), being on SageMaker's side of any network."""

    def __init__(self, outcome="Completed", model: bytes | None = None, step_seconds=1.2, endpoint=None):
        self.outcome, self.model, self.step, self.endpoint = outcome, model, step_seconds, endpoint
        self.job = None
        self.error: BaseException | None = None
        self.halt = threading.Event()  # set on exit: the play ends where it is
        self._original = None
        self._create = None

    def __enter__(self):
        from moto.sagemaker.exceptions import ResourceInUseException
        from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend

        driver = self
        self._original = original = FakeTrainingJob.__init__
        self._create = create = SageMakerModelBackend.create_training_job

        def unique_names(backend, *args, **kwargs):
            name = kwargs.get("training_job_name", args[0] if args else None)
            if name in backend.training_jobs:
                raise ResourceInUseException(
                    "Training job names must be unique within an AWS account and region, and a training job with "
                    f"this name already exists ({backend.training_jobs[name].arn})")
            return create(backend, *args, **kwargs)

        SageMakerModelBackend.create_training_job = unique_names

        def held_in_progress(job, *args, **kwargs):
            original(job, *args, **kwargs)
            job.training_job_status, job.secondary_status = "InProgress", "Starting"
            job.training_end_time = None
            del job.final_metric_data_list
            driver.job = job

        FakeTrainingJob.__init__ = held_in_progress
        self.thread = threading.Thread(target=self._play, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend

        self.halt.set()
        self.thread.join(timeout=60)
        FakeTrainingJob.__init__ = self._original
        SageMakerModelBackend.create_training_job = self._create
        if self.error:
            raise self.error

    def _play(self):
        try:
            deadline = time.monotonic() + 60
            while self.job is None and time.monotonic() < deadline and not self.halt.wait(0.05):
                pass
            if self.job is None:
                return
            job, logs = self.job, client("logs", self.endpoint)
            name = job.training_job_name
            try:
                logs.create_log_group(logGroupName=LOG_GROUP)
            except logs.exceptions.ResourceAlreadyExistsException:
                pass
            streams = [f"{name}/algo-1-1700000000", f"{name}/algo-2-1700000000"]
            for stream in streams:
                logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
            self._transition(job, "Downloading", "Downloading input data")
            if self.halt.wait(self.step):
                return
            self._transition(job, "Training", "Training image download completed. Training in progress.")
            self._log(logs, streams[0], ["epoch 1", "validation:roc_auc=0.912345"])
            self._log(logs, streams[1], ["worker ready"])
            if self.halt.wait(self.step):
                return
            self._log(logs, streams[0], ["epoch 2", "validation:roc_auc=0.987654"])
            if self.model is not None:
                bucket, _, key = job.model_artifacts["S3ModelArtifacts"][len("s3://"):].partition("/")
                client("s3", self.endpoint).put_object(Bucket=bucket, Key=key, Body=self.model)
            job.training_time_in_seconds, job.billable_time_in_seconds = 400, 100
            job.final_metric_data_list = [{"MetricName": "validation:roc_auc", "Value": 0.987654,
                                           "Timestamp": datetime.now(timezone.utc)}]
            if self.outcome == "Failed":
                job.failure_reason = "AlgorithmError: label column 'label' not found"
            self._transition(job, "Uploading" if self.outcome == "Completed" else self.outcome, "Finishing")
            job.training_end_time = datetime.now(timezone.utc)
            self._transition(job, self.outcome, "Job ended")
            job.training_job_status = self.outcome
        except BaseException as err:  # noqa: BLE001 - reported to the test in __exit__
            self.error = err

    @staticmethod
    def _transition(job, status, message):
        now = datetime.now(timezone.utc)
        job.secondary_status_transitions[-1]["EndTime"] = now
        job.secondary_status_transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        job.secondary_status = status

    @staticmethod
    def _log(logs, stream, lines):
        now = int(time.time() * 1000)
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                            logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)])
