"""Processing: the CreateProcessingJob request (the place gives the image and every URI), its names, its record
(DescribeProcessingJob's shape) and the cache key of a preprocessing run.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import JobFailed, UserError
from sagemake.clock import now
from sagemake.config import Config
from sagemake.contract import layout
from sagemake.jobs import ran

INPUT = "raw"  # the input's name: /opt/ml/processing/input/raw


CHANNELS = ("train", "validation")  # the outputs: what src/trainer/preprocess.py writes


STEP = "src/trainer/preprocess.py"


RAW_STEP = "src/trainer/raw.py"


ENTRYPOINT = ["python3", "-m", "trainer.preprocess"]


NAME_PART = "proc"  # <project>-proc-<time><random>: never taken for a training job's name


RECORD = "processing.json"


REQUEST = "processing-request.json"


LOG = "processing.log"


MESSAGE_LIMIT = 1024  # ExitMessage and FailureReason, as SageMaker keeps them


class ProcessingFailed(JobFailed):
    """The processing job ran and did not complete."""


def overlaps(one: str, other: str) -> bool:
    """Whether two folders (URIs or paths) are the same or one holds the other."""
    one, other = one.rstrip("/") + "/", other.rstrip("/") + "/"
    return one.startswith(other) or other.startswith(one)


def check_collisions(inputs: dict[str, str], outputs: dict[str, str]) -> None:
    """An output written where an input is read would change the input under the job: refused."""
    for output, target in outputs.items():
        for name, source in inputs.items():
            if overlaps(source, target):
                raise UserError(f"processing output {output} ({target}) collides with input {name} ({source}): "
                                "write the outputs elsewhere")


def processing_request(config: Config, name: str, image: str, entrypoint: list[str], arguments: list[str],
                       inputs: dict[str, str], outputs: dict[str, str]) -> dict:
    """The CreateProcessingJob request: the place (local or SageMaker) gives the image and every URI."""
    check_collisions(inputs, outputs)
    base = Path(layout.DEFAULT_BASE_DIR)
    request = {
        "ProcessingJobName": name,
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1,
            "InstanceType": config["PROCESSING_INSTANCE_TYPE"] or config["INSTANCE_TYPE"],
            "VolumeSizeInGB": config.int("VOLUME_SIZE_GB")}},
        "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": entrypoint,
                             **({"ContainerArguments": arguments} if arguments else {})},  # SageMaker: none, or 1+
        "ProcessingInputs": [
            {"InputName": input_name, "AppManaged": False,
             "S3Input": {"S3Uri": uri, "LocalPath": str(layout.processing_input(base, input_name)),
                         "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated",
                         "S3CompressionType": "None"}}
            for input_name, uri in inputs.items()],
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": output, "AppManaged": False,
             "S3Output": {"S3Uri": uri, "LocalPath": str(layout.processing_output(base, output)),
                          "S3UploadMode": "EndOfJob"}}
            for output, uri in outputs.items()]},
        "StoppingCondition": {"MaxRuntimeInSeconds": config.int("MAX_RUNTIME_SECONDS")},
        "Environment": dict(sorted(_pairs(config["JOB_ENV"]).items())),
        "Tags": [{"Key": "sagemake:project", "Value": config["PROJECT_NAME"]},
                 {"Key": "sagemake:env", "Value": config.env}],
    }
    if config["SAGEMAKER_ROLE_ARN"]:
        request["RoleArn"] = config["SAGEMAKER_ROLE_ARN"]
    return request


def _pairs(text: str) -> dict[str, str]:
    from sagemake.jobs.training import parse_pairs

    return parse_pairs(text, "JOB_ENV")


def names_pattern(project: str) -> re.Pattern:
    """This project's processing job names, as job_name(PROJECT_NAME, NAME_PART) makes them:
    <project>-proc-<yymmdd-HHMMSS>-<milliseconds><5 random>."""
    return re.compile(rf"{re.escape(project)}-{NAME_PART}-\d{{6}}-\d{{6}}-\d{{3}}[0-9a-z]{{5}}")


def duration(record: dict) -> int:
    """Seconds a DescribeProcessingJob record ran (sagemake.jobs.ran)."""
    return ran(record, "Processing")


def new_record(request: dict, arn: str) -> dict:
    """DescribeProcessingJob's answer as the job starts."""
    record = {key: value for key, value in request.items() if key != "Tags"}
    stamp = now()
    record.update({"ProcessingJobArn": arn, "ProcessingJobStatus": "InProgress", "CreationTime": stamp,
                   "LastModifiedTime": stamp})
    return record


def record_config(request: dict) -> dict:
    """processingjobconfig.json: the job's own description, as SageMaker writes it into the container."""
    return {key: value for key, value in request.items() if key != "Tags"}


def code_digest(root: Path) -> str:
    """What the step runs: the step and the container side it imports; their content is in the cache key."""
    from sagemake import sourcedir

    return sourcedir.digest([(STEP, root / STEP), *sourcedir.contract(root)])


def cache_key(raw_digest: str, code: str, arguments: list[str], image_runs_it: str) -> str:
    """What names the outputs: the same raw data, code and arguments give the same channels."""
    text = json.dumps({"raw": raw_digest, "code": code, "arguments": arguments, "entrypoint": image_runs_it})
    return hashlib.sha256(text.encode()).hexdigest()


def save(folder: Path, record: dict) -> None:
    """processing.json, replaced whole."""
    jsonfile.write(folder / RECORD, record)
