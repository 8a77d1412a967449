"""Transform jobs on SageMaker: the training job's SageMaker model, the inputs uploaded, the job created and
followed, its .out files downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path

from sagemake.aws.api import call, failure, plain
from sagemake.cli import say
from sagemake.config import s3_uri
from sagemake.executors.interface import Executor
from sagemake.jobs import TERMINAL
from sagemake.jobs.transform import OUTPUT, TransformFailed, output_folder, save


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
        from sagemake.aws.api import check_bucket

        executor, name = self.executor, request["TransformJobName"]
        aws, sagemaker = executor.aws, executor.sagemaker
        check_bucket(self.config, aws)
        self._ensure()
        s3 = aws.client("s3")
        bucket, _, prefix = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"][5:].partition("/")
        for path in files:
            call(s3.upload_file, Filename=str(path), Bucket=bucket, Key=prefix + path.relative_to(folder).as_posix())
        say(f"transform {name}: uploaded {len(files)} file(s) to s3://{bucket}/{prefix}")
        call(sagemaker.create_transform_job, **request)
        say(f"transform {name}: submitted to SageMaker in {executor.region}")
        record = self.follow(name)
        local = output_folder(self.config, name)
        local.mkdir(parents=True, exist_ok=True)
        save(local.parent, record)
        if record["TransformJobStatus"] != "Completed":
            raise TransformFailed(f"transform {name} {record['TransformJobStatus']}: "
                                  f"{record.get('FailureReason') or 'no reason given'}")
        out_bucket, _, out_prefix = request["TransformOutput"]["S3OutputPath"][5:].partition("/")
        out_prefix = out_prefix.rstrip("/") + "/"
        count = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=out_bucket, Prefix=out_prefix):
            for item in page.get("Contents", []):
                target = local / item["Key"][len(out_prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                call(s3.download_file, Bucket=out_bucket, Key=item["Key"], Filename=str(target))
                count += 1
        say(f"transform {name}: downloaded {count} output file(s)")
        return record

    def follow(self, name: str) -> dict:
        poll, seen = self.config.int("POLL_SECONDS"), None
        while True:
            try:
                record = plain(self.executor.sagemaker.describe_transform_job(TransformJobName=name))
            except Exception as err:  # noqa: BLE001 - every boto3 error is one line
                raise failure(err) from None
            status = record["TransformJobStatus"]
            if status != seen:
                say(f"transform {name}: {status}")
                seen = status
            if status in TERMINAL:
                return record
            time.sleep(poll)
