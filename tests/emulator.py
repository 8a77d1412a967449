"""AWS for the tests: moto's server on 127.0.0.1, reached over real HTTP by boto3.

Where moto cannot act like SageMaker (it completes every job at once, runs no
container, writes no logs and no model), a driver plays SageMaker's part in
moto's own state: it holds the new job InProgress, walks it through its
statuses, writes its CloudWatch logs and its outputs. `SageMakerDriver` plays a
training job, `TrainingDriver` one for real (the fixture trainer run, its
checkpoints saved to and restored from S3), `ProcessingDriver` a processing job
(running its step for real) and `TuningDriver` a tuning job with its trials.

moto takes a second Create* of a name already taken and overwrites the first;
SageMaker refuses it, with the error below (`refuse_taken_names`, put in place
for every test against the emulator), so a lost answer to a create (the server
acted, the client never heard, botocore retried) is met as on SageMaker. moto
also answers DescribeTrainingJob with MetricDefinitions of its own (`test:dcg`)
where SageMaker answers the request's (`keep_metric_definitions`, likewise).
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
    from conftest import ROOT, sagemake  # the session's project: the fixture trainer is part of the image's content

    return subprocess.run([*sagemake(ROOT), "image"], env={**os.environ, **env}, capture_output=True, text=True,
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


# What SageMaker answers to a Create* whose name is taken, for each kind sagemake creates: the backend's method,
# its name argument, where moto keeps that kind, the error code and its message. Jobs are refused as
# ResourceInUse, models, endpoint configurations and endpoints as ValidationException "Cannot create already
# existing ..." (SageMaker's own words, as its API answers them).
TAKEN = {
    "create_training_job": ("training_job_name", "training_jobs", "ResourceInUse",
                            "Training job names must be unique within an AWS account and region, and a training job "
                            "with this name already exists ({arn})"),
    "create_processing_job": ("processing_job_name", "processing_jobs", "ResourceInUse",
                              "Processing job names must be unique within an AWS account and region, and a "
                              "processing job with this name already exists ({arn})"),
    "create_transform_job": ("transform_job_name", "transform_jobs", "ResourceInUse",
                             "Transform job names must be unique within an AWS account and region, and a transform "
                             "job with this name already exists ({arn})"),
    "create_hyper_parameter_tuning_job": ("hyper_parameter_tuning_job_name", "hyper_parameter_tuning_jobs",
                                          "ResourceInUse", "Hyperparameter tuning job names must be unique within "
                                          "an AWS account and region, and a tuning job with this name already exists "
                                          "({arn})"),
    "create_model": ("model_name", "_models", "ValidationException", 'Cannot create already existing model "{arn}".'),
    "create_endpoint_config": ("endpoint_config_name", "endpoint_configs", "ValidationException",
                               'Cannot create already existing endpoint configuration "{arn}".'),
    "create_endpoint": ("endpoint_name", "endpoints", "ValidationException",
                        'Cannot create already existing endpoint "{arn}".'),
}


def refuse_taken_names():
    """moto refuses a Create* of a taken name as SageMaker does (TAKEN); returns what puts moto back."""
    from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
    from moto.sagemaker.models import SageMakerModelBackend

    errors = {"ResourceInUse": ResourceInUseException, "ValidationException": ValidationError}
    originals = {method: getattr(SageMakerModelBackend, method) for method in TAKEN}

    def refusing(method):
        argument, kept, code, message = TAKEN[method]
        create = originals[method]

        def unique(backend, *args, **kwargs):
            found = getattr(backend, kept).get(kwargs.get(argument))
            if found is not None:
                arn = getattr(found, "endpoint_config_arn", None) or found.arn  # moto's config arn is a tuple
                raise errors[code](message.format(arn=arn))
            return create(backend, *args, **kwargs)

        return unique

    for method in TAKEN:
        setattr(SageMakerModelBackend, method, refusing(method))
    return lambda: [setattr(SageMakerModelBackend, m, f) for m, f in originals.items()]


def keep_mlflow_config():
    """moto drops CreateTrainingJob's MlflowConfig: it is kept on the job here, so DescribeTrainingJob answers it as
    SageMaker does; returns what puts moto back."""
    from moto.sagemaker.responses import SageMakerResponse

    original = SageMakerResponse.create_training_job

    def keeping(response):
        answer = original(response)
        given = response._get_param("MlflowConfig")
        if given:
            response.sagemaker_backend.training_jobs[response._get_param("TrainingJobName")].mlflow_config = given
        return answer

    SageMakerResponse.create_training_job = keeping
    return lambda: setattr(SageMakerResponse, "create_training_job", original)


def keep_metric_definitions():
    """moto's training job keeps the MetricDefinitions it was created with, as SageMaker's does (moto puts a sample
    of its own in their place, in the request's own dict); returns what puts moto back."""
    import copy

    from moto.sagemaker.models import FakeTrainingJob

    original = FakeTrainingJob.__init__

    def as_sent(job, *args, algorithm_specification, **kwargs):
        sent = copy.deepcopy(algorithm_specification)
        original(job, *args, algorithm_specification=algorithm_specification, **kwargs)
        job.algorithm_specification = sent

    FakeTrainingJob.__init__ = as_sent
    return lambda: setattr(FakeTrainingJob, "__init__", original)


def download_folder(s3, uri: str, target: Path) -> None:
    """Every object below the S3 folder uri into target, by its key below it (SageMaker's File mode)."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    target.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            (target / item["Key"][len(prefix):]).parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target / item["Key"][len(prefix):]))


def upload_folder(s3, folder: Path, uri: str) -> None:
    """Every file of folder to the S3 folder uri, by its path below folder."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}".lstrip("/"))


class Driver:
    """What the drivers share: entering patches moto (`_patch`, which returns what puts it back), a thread plays
    the next job of the driver's kind once it is created (`_run`), and leaving ends the play where it is, puts moto
    back and raises what went wrong in the play. A driver reaches the emulator at `endpoint` (default:
    AWS_ENDPOINT_URL), being on SageMaker's side of any network."""

    WAIT = 120  # seconds the play waits for its job to be created

    def __init__(self, endpoint=None):
        self.endpoint, self.job = endpoint, None
        self.error: BaseException | None = None
        self.halt = threading.Event()  # set on exit: the play ends where it is

    def __enter__(self):
        self._restore = self._patch()
        self.thread = threading.Thread(target=self._play, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.thread.join(timeout=self.WAIT)
        self._restore()
        if self.error:
            raise self.error

    def _play(self):
        try:
            deadline = time.monotonic() + self.WAIT
            while self.job is None and time.monotonic() < deadline and not self.halt.wait(0.05):
                pass
            if self.job is not None:
                self._run(self.job)
        except BaseException as err:  # noqa: BLE001 - reported to the test in __exit__
            self.error = err


class SageMakerDriver(Driver):
    """Plays SageMaker for the next job created: statuses, logs on two instances, model, outcome."""

    def __init__(self, outcome="Completed", model: bytes | None = None, step_seconds=1.2, endpoint=None,
                 failure: str = ""):
        super().__init__(endpoint)
        self.outcome, self.model, self.step, self.failure = outcome, model, step_seconds, failure

    def _patch(self):
        from moto.sagemaker.models import FakeTrainingJob

        driver, original = self, FakeTrainingJob.__init__

        def held_in_progress(job, *args, **kwargs):
            asked = list(kwargs["algorithm_specification"].get("MetricDefinitions", []))
            original(job, *args, **kwargs)
            job.algorithm_specification["MetricDefinitions"] = asked  # moto puts a sample of its own there
            job.training_job_status, job.secondary_status = "InProgress", "Starting"
            job.training_end_time = None
            del job.final_metric_data_list
            driver.job = job

        FakeTrainingJob.__init__ = held_in_progress
        return lambda: setattr(FakeTrainingJob, "__init__", original)

    def _run(self, job):
        name = job.training_job_name
        logs, streams = self._streams(name, 2)
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
            if self.failure:  # as an image that writes its traceback to output/failure prints it too
                self._log(logs, streams[0], self.failure.splitlines())
            job.failure_reason = "AlgorithmError: " + (self.failure or "label column 'label' not found")
        self._transition(job, "Uploading" if self.outcome == "Completed" else self.outcome, "Finishing")
        job.training_end_time = datetime.now(timezone.utc)
        self._transition(job, self.outcome, "Job ended")
        job.training_job_status = self.outcome

    @staticmethod
    def _transition(job, status, message):
        now = datetime.now(timezone.utc)
        job.secondary_status_transitions[-1]["EndTime"] = now
        job.secondary_status_transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        job.secondary_status = status

    def _streams(self, job: str, hosts: int):
        """The job's CloudWatch log streams, one per instance, as SageMaker names them."""
        logs = client("logs", self.endpoint)
        try:
            logs.create_log_group(logGroupName=LOG_GROUP)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        streams = [f"{job}/algo-{number}-1700000000" for number in range(1, hosts + 1)]
        for stream in streams:
            logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        return logs, streams

    @staticmethod
    def _log(logs, stream, lines):
        now = int(time.time() * 1000)
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                            logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)])


class TrainingDriver(SageMakerDriver):
    """Plays SageMaker for the next training job created, for real, as ProcessingDriver does a processing job: an
    /opt/ml tree of its own with the config files, each channel downloaded and, with a CheckpointConfig, what its
    S3Uri holds in checkpoints/; the image's `train` run (docker/train of the session's project by this Python, the
    fixture trainer in it), its lines sent to CloudWatch; then checkpoints/ saved back to S3Uri, model/ and
    output/data/ packed to the job's artefacts, its metrics (the contract's metrics.json) as FinalMetricDataList, and
    the job Completed or Failed by the exit status."""

    def __init__(self, scratch: Path, endpoint=None):
        super().__init__(endpoint=endpoint)
        self.scratch = scratch

    def _run(self, job):
        import sys

        from conftest import ROOT as root  # the session's project, with the fixture trainer
        s3, logs = client("s3", self.endpoint), client("logs", self.endpoint)
        try:
            logs.create_log_group(logGroupName=LOG_GROUP)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        name = job.training_job_name
        stream = f"{name}/algo-1-1700000000"
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        self._transition(job, "Downloading", "Downloading input data")
        base = self.scratch / name
        (base / "input/config").mkdir(parents=True)
        (base / "input/config/hyperparameters.json").write_text(json.dumps(job.hyper_parameters))
        (base / "input/config/inputdataconfig.json").write_text(json.dumps({
            c["ChannelName"]: {"TrainingInputMode": c.get("InputMode", "File"), "RecordWrapperType": "None",
                               "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"]}
            for c in job.input_data_config}))
        (base / "input/config/resourceconfig.json").write_text(json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
        for channel in job.input_data_config:
            download_folder(s3, channel["DataSource"]["S3DataSource"]["S3Uri"],
                            base / "input/data" / channel["ChannelName"])
        for folder in ("model", "output/data", "checkpoints"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        checkpoints = (job.checkpoint_config or {}).get("S3Uri")
        if checkpoints:  # what the place holds when the job starts is what /opt/ml/checkpoints holds
            download_folder(s3, checkpoints, base / "checkpoints")
        self._transition(job, "Training", "Training image download completed. Training in progress.")
        done = subprocess.run([sys.executable, str(root / "docker/train")], capture_output=True, text=True,
                              env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONPATH": str(root / "src"),
                                   "TRAINING_JOB_NAME": name})
        self._log(logs, stream, (done.stdout + done.stderr).splitlines())
        if checkpoints:
            upload_folder(s3, base / "checkpoints", checkpoints)
        outcome = "Completed" if done.returncode == 0 else "Failed"
        bucket, _, key = job.model_artifacts["S3ModelArtifacts"][len("s3://"):].partition("/")
        for folder, archive in (("model", key), ("output/data", key.rsplit("/", 1)[0] + "/output.tar.gz")):
            files = {p.relative_to(base / folder).as_posix(): p.read_bytes()
                     for p in sorted((base / folder).rglob("*")) if p.is_file()}
            s3.put_object(Bucket=bucket, Key=archive, Body=model_archive(files))
        metrics = base / "output/data/metrics.json"
        now = datetime.now(timezone.utc)
        job.final_metric_data_list = [{"MetricName": metric, "Value": value, "Timestamp": now} for metric, value
                                      in (json.loads(metrics.read_text()).items() if metrics.is_file() else ())]
        job.training_time_in_seconds = job.billable_time_in_seconds = 60
        if outcome == "Failed":
            job.failure_reason = "AlgorithmError: " + (base / "output/failure").read_text().strip()
        self._transition(job, "Uploading", "Uploading generated training model")
        job.training_end_time = now
        self._transition(job, outcome, "Job ended")
        job.training_job_status = outcome


class ProcessingDriver(Driver):
    """Plays SageMaker for the next processing job created, for real: it downloads the job's S3 inputs, runs its
    ContainerEntrypoint and ContainerArguments with this Python from the checkout's src/ (what sagemake's image
    holds) under SageMaker's processing paths, streams the output to CloudWatch, uploads each output and ends the
    job Completed or Failed by the exit status. StopProcessingJob ends the process.

    `start_seconds` is how long the instance takes to start (a StopProcessingJob then ends the job before it
    runs)."""

    GROUP = "/aws/sagemaker/ProcessingJobs"

    def __init__(self, scratch: Path, endpoint=None, start_seconds=0.0):
        super().__init__(endpoint)
        self.scratch, self.start = scratch, start_seconds

    def _patch(self):
        from moto.sagemaker.models import FakeProcessingJob

        driver, original = self, FakeProcessingJob.__init__

        def held_in_progress(job, *args, **kwargs):
            original(job, *args, **kwargs)
            job.processing_job_status, job.processing_end_time = "InProgress", None
            driver.job = job

        FakeProcessingJob.__init__ = held_in_progress
        return lambda: setattr(FakeProcessingJob, "__init__", original)

    def _run(self, job):
        import sys

        from conftest import ROOT as root  # the session's project, with the fixture trainer
        s3, logs = client("s3", self.endpoint), client("logs", self.endpoint)
        try:
            logs.create_log_group(logGroupName=self.GROUP)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        stream = f"{job.processing_job_name}/algo-1-1700000000"
        logs.create_log_stream(logGroupName=self.GROUP, logStreamName=stream)
        started = time.monotonic()
        while time.monotonic() - started < self.start:  # StopProcessingJob ends it here; the end of the play too
            if job.processing_job_status != "InProgress" or self.halt.wait(0.1):
                return
        base = self.scratch / job.processing_job_name
        for entry in job.processing_inputs:
            local = entry["S3Input"]["LocalPath"].removeprefix("/opt/ml/")
            download_folder(s3, entry["S3Input"]["S3Uri"], base / local)
        outputs = job.processing_output_config["Outputs"]
        for entry in outputs:
            (base / entry["S3Output"]["LocalPath"].removeprefix("/opt/ml/")).mkdir(parents=True)
        spec = job.app_specification
        command = [sys.executable, *spec["ContainerEntrypoint"][1:], *spec.get("ContainerArguments", [])]
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONPATH": str(root / "src"),
               "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, env=env, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        sent = 0
        while process.poll() is None:
            if job.processing_job_status != "InProgress" or self.halt.wait(0.2):  # StopProcessingJob, or the end
                process.terminate()
                process.wait()
                return
            sent = self._log(logs, stream, lines, sent)
        reader.join()
        self._log(logs, stream, lines, sent)
        if process.returncode == 0:
            for entry in outputs:
                local = entry["S3Output"]["LocalPath"].removeprefix("/opt/ml/")
                upload_folder(s3, base / local, entry["S3Output"]["S3Uri"])
            job.processing_job_status = "Completed"
        else:
            job.failure_reason = "AlgorithmError: See job logs for more information"
            job.exit_message = "".join(lines[-3:])
            job.processing_job_status = "Failed"
        job.processing_end_time = datetime.now(timezone.utc)

    def _log(self, logs, stream, lines, sent):
        fresh = [line.rstrip("\n") for line in lines[sent:]]
        if fresh:
            now = int(time.time() * 1000)
            logs.put_log_events(logGroupName=self.GROUP, logStreamName=stream,
                                logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(fresh)])
        return sent + len(fresh)


class TuningDriver(Driver):
    """Plays SageMaker for the next hyperparameter tuning job created (moto completes it at once with a made-up
    best): it holds the job InProgress and runs its trials as SageMaker would, MaxParallelTrainingJobs at a time up
    to MaxNumberOfTrainingJobs. Each trial is a training job in moto, named <tuning job>-<3 digits>-<8 hex>, with the
    definition's fields and static hyperparameters plus values drawn from the ranges (seeded), the tuning job's
    tags, its objective reported by `score(hyperparameters)` and `model` put at its S3ModelArtifacts (the trials
    numbered in `failing` fail instead). It answers
    ListTrainingJobsForHyperParameterTuningJob, which moto lacks, and keeps the counters and BestTrainingJob."""

    def __init__(self, model: bytes, score, step_seconds=0.5, failing=(), endpoint=None):
        super().__init__(endpoint)
        self.model, self.score, self.step, self.failing = model, score, step_seconds, failing
        self.trials: list[dict] = []  # the summaries, as ListTrainingJobsForHyperParameterTuningJob gives them

    def _patch(self):
        from moto.core.responses import ActionResult
        from moto.sagemaker.models import HyperParameterTuningJob
        from moto.sagemaker.responses import SageMakerResponse

        driver = self
        original, describe = HyperParameterTuningJob.__init__, HyperParameterTuningJob.describe

        def held_in_progress(job, *args, **kwargs):
            original(job, *args, **kwargs)
            job.hyper_parameter_tuning_job_status, job.hyper_parameter_tuning_end_time = "InProgress", None
            job.best_training_job = job.OverallBestTrainingJob = job.tuning_job_completion_details = None
            job.consumed_resources, job.failure_reason = None, None
            driver._count(job)
            driver.job = job

        def without_nones(job):
            return {k: v for k, v in describe(job).items() if v is not None}

        def list_trials(response):
            name = response._get_param("HyperParameterTuningJobName")
            return ActionResult({"TrainingJobSummaries": [t for t in driver.trials if t["TuningJobName"] == name]})

        HyperParameterTuningJob.__init__, HyperParameterTuningJob.describe = held_in_progress, without_nones
        SageMakerResponse.list_training_jobs_for_hyper_parameter_tuning_job = list_trials

        def restore():
            HyperParameterTuningJob.__init__, HyperParameterTuningJob.describe = original, describe
            del SageMakerResponse.list_training_jobs_for_hyper_parameter_tuning_job

        return restore

    def _run(self, job):
        import random
        import secrets

        config, definition = job.hyper_parameter_tuning_job_config, job.training_job_definition
        limits, goal = config["ResourceLimits"], config["HyperParameterTuningJobObjective"]
        draw = random.Random(0)
        number = 0
        while number < limits["MaxNumberOfTrainingJobs"]:
            batch = []
            for _ in range(min(limits["MaxParallelTrainingJobs"], limits["MaxNumberOfTrainingJobs"] - number)):
                number += 1
                values = self._values(config["ParameterRanges"], draw)
                name = f"{job.hyper_parameter_tuning_job_name}-{number:03d}-{secrets.token_hex(4)}"
                batch.append((number, values, self._start(job, name, values, definition)))
            if self.halt.wait(self.step):
                return
            for trial_number, values, trial in batch:
                self._end(job, trial, values, goal, trial_number in self.failing)
            self._count(job)
        job.hyper_parameter_tuning_job_status = "Completed"
        job.hyper_parameter_tuning_end_time = datetime.now(timezone.utc)

    @staticmethod
    def _values(ranges, draw) -> dict[str, str]:
        values = {}
        for entry in ranges.get("IntegerParameterRanges", []):
            values[entry["Name"]] = str(draw.randint(int(entry["MinValue"]), int(entry["MaxValue"])))
        for entry in ranges.get("ContinuousParameterRanges", []):
            low, high = float(entry["MinValue"]), float(entry["MaxValue"])
            values[entry["Name"]] = repr(round(draw.uniform(low, high), 6))
        for entry in ranges.get("CategoricalParameterRanges", []):
            values[entry["Name"]] = draw.choice(entry["Values"])
        return values

    def _start(self, job, name, values, definition):
        import copy

        definition = copy.deepcopy(definition)  # moto rewrites a training job's MetricDefinitions in place
        trial = backend().create_training_job(
            training_job_name=name, hyper_parameters={**definition["StaticHyperParameters"], **values},
            algorithm_specification=definition["AlgorithmSpecification"], role_arn=definition["RoleArn"],
            input_data_config=definition["InputDataConfig"], output_data_config=definition["OutputDataConfig"],
            resource_config=definition["ResourceConfig"], vpc_config=definition.get("VpcConfig"),
            stopping_condition=definition["StoppingCondition"], tags=job.tags,
            enable_network_isolation=False, enable_inter_container_traffic_encryption=False,
            enable_managed_spot_training=definition.get("EnableManagedSpotTraining", False),
            checkpoint_config=definition.get("CheckpointConfig"), debug_hook_config=None,
            debug_rule_configurations=None, tensor_board_output_config=None, experiment_config=None)
        trial.training_job_status, trial.training_end_time = "InProgress", None
        del trial.final_metric_data_list
        logs, (stream,) = SageMakerDriver._streams(self, name, 1)
        SageMakerDriver._log(logs, stream, [f"training {name} with {json.dumps(values, sort_keys=True)}"])
        now = datetime.now(timezone.utc)
        self.trials.append({"TrainingJobName": name, "TrainingJobArn": trial.arn,
                            "TuningJobName": job.hyper_parameter_tuning_job_name, "CreationTime": now,
                            "TrainingStartTime": now, "TrainingJobStatus": "InProgress",
                            "TunedHyperParameters": values, "ObjectiveStatus": "Pending"})
        return trial

    def _end(self, job, trial, values, goal, fails):
        summary = next(t for t in self.trials if t["TrainingJobName"] == trial.training_job_name)
        now = datetime.now(timezone.utc)
        trial.training_end_time = summary["TrainingEndTime"] = now
        trial.training_time_in_seconds = trial.billable_time_in_seconds = 60
        if fails:
            trial.training_job_status = summary["TrainingJobStatus"] = "Failed"
            trial.failure_reason = summary["FailureReason"] = "AlgorithmError: the trial failed"
            summary["ObjectiveStatus"] = "Failed"
            return
        value = self.score(values)
        bucket, _, key = trial.model_artifacts["S3ModelArtifacts"][len("s3://"):].partition("/")
        client("s3", self.endpoint).put_object(Bucket=bucket, Key=key, Body=self.model)
        trial.final_metric_data_list = [{"MetricName": goal["MetricName"], "Value": value, "Timestamp": now}]
        trial.training_job_status = summary["TrainingJobStatus"] = "Completed"
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {**goal, "Value": value}
        summary["ObjectiveStatus"] = "Succeeded"
        sign = 1 if goal["Type"] == "Minimize" else -1
        scored = [t for t in self.trials if "FinalHyperParameterTuningJobObjectiveMetric" in t]
        job.best_training_job = min(scored, key=lambda t: sign * t["FinalHyperParameterTuningJobObjectiveMetric"][
            "Value"])

    def _count(self, job):
        statuses = [t["TrainingJobStatus"] for t in self.trials if t["TuningJobName"] ==
                    job.hyper_parameter_tuning_job_name]
        objectives = [t["ObjectiveStatus"] for t in self.trials if t["TuningJobName"] ==
                      job.hyper_parameter_tuning_job_name]
        job.training_job_status_counters = {
            "Completed": statuses.count("Completed"), "InProgress": statuses.count("InProgress"),
            "RetryableError": 0, "NonRetryableError": statuses.count("Failed"), "Stopped": 0}
        job.objective_status_counters = {"Succeeded": objectives.count("Succeeded"),
                                         "Pending": objectives.count("Pending"), "Failed": objectives.count("Failed")}
