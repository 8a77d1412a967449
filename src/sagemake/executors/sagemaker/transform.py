"""Transform jobs on SageMaker: the training job's SageMaker model, the inputs uploaded, the job created and
followed, its .out files downloaded and each checked to answer every record of its input.
"""

from __future__ import annotations

from pathlib import Path

from sagemake.aws.api import call, check_bucket, create, download_prefix, plain
from sagemake.aws.s3 import split
from sagemake.cli import say
from sagemake.clock import elapsed
from sagemake.config import s3_uri
from sagemake.executors.interface import Executor
from sagemake.jobs import TERMINAL
from sagemake.jobs.transform import OUT, OUTPUT, TransformFailed, check_answered, output_folder, save


class SageMakerTransforms:
    """The training job's SageMaker model, a transform job on SageMaker, its .out files downloaded."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config

    def model(self, job: str | None) -> str:
        from sagemake.executors.sagemaker.endpoint import ensure_model

        record = self.executor.completed(job or self.executor.latest(), "serve")
        self._record = record
        self._ensure = lambda: ensure_model(self.executor, record)
        return record["TrainingJobName"]

    def provenance(self) -> dict:
        from sagemake.executors.sagemaker.endpoint import model_sha256

        return {"sha256": model_sha256(self.config, self.executor, self._record),
                "image": self._record["AlgorithmSpecification"]["TrainingImage"]}

    def input_uri(self, folder: Path, name: str) -> str:
        return s3_uri(self.config, "transform", name, "input") + "/"

    def output_uri(self, name: str) -> str:
        return s3_uri(self.config, "transform", name, OUTPUT)

    def run(self, request: dict, folder: Path, files: list[Path]) -> dict:
        executor, name = self.executor, request["TransformJobName"]
        aws, sagemaker = executor.aws, executor.sagemaker
        check_bucket(self.config, aws)
        self._ensure()
        s3 = aws.client("s3")
        bucket, prefix = split(request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
        for path in files:
            call(s3.upload_file, Filename=str(path), Bucket=bucket, Key=prefix + path.relative_to(folder).as_posix())
        say(f"transform {name}: uploaded {len(files)} file(s) to s3://{bucket}/{prefix}")
        create(sagemaker.create_transform_job, lambda: call(sagemaker.describe_transform_job, on={
            "ValidationException": None}, TransformJobName=name) is not None, f"transform {name}", **request)
        say(f"transform {name}: submitted to SageMaker in {executor.region}")
        record = self.follow(name)
        local = output_folder(self.config, name)
        local.mkdir(parents=True, exist_ok=True)
        save(local.parent, record)
        if record["TransformJobStatus"] != "Completed":
            raise TransformFailed(f"transform {name} {record['TransformJobStatus']}: "
                                  f"{record.get('FailureReason') or 'no reason given'}")
        count = download_prefix(s3, request["TransformOutput"]["S3OutputPath"], local, f"transform {name}")
        say(f"transform {name}: downloaded {count} output file(s)")
        for path in files:
            relative = path.relative_to(folder).as_posix()
            check_answered(path, local / f"{relative}{OUT}", relative)
        return record

    def follow(self, name: str) -> dict:
        seen = None
        ask = lambda: plain(call(self.executor.sagemaker.describe_transform_job, TransformJobName=name))  # noqa: E731
        for record, seconds in self.executor.watch(f"transform {name}", ask, "see it in the console"):
            status = record["TransformJobStatus"]
            if status != seen:
                say(f"transform {name}: [{elapsed(seconds)}] {status}")
                seen = status
            if status in TERMINAL:
                return record
