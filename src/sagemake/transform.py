"""Batch transform: a model's predictions for every line of every file in a folder, as SageMaker's
CreateTransformJob gives them, on this machine or on SageMaker.

Usage: scripts/transform.py INPUT [JOB]   (JOB: a training job; default the newest fetched model, or on
                                           SageMaker the latest job)

One request in CreateTransformJob's shape is built for both (SplitType Line,
AssembleWith Line, text/csv in and out, MaxPayloadInMB, BatchStrategy and
MaxConcurrentTransforms from the TRANSFORM_* settings); where its input and
output are is the only thing that differs, and the place gives it.

ENV=local: the fetched model (MODELS_DIR/<job>/) is served by the same runtime
as `make serve` (the job's image in the engine, else a process), with the
variables SageMaker gives a transform container (SAGEMAKER_BATCH=true,
SAGEMAKER_MAX_PAYLOAD_IN_MB, SAGEMAKER_BATCH_STRATEGY,
SAGEMAKER_MAX_CONCURRENT_TRANSFORMS). Each input file's lines are sent in
order: MultiRecord, as many lines as fit in MaxPayloadInMB a request;
SingleRecord, one line a request; up to MaxConcurrentTransforms requests at
once. Blank lines carry no record and are skipped. The answers, each ending in
a newline, make <file>.out, in JOBS_DIR/<transform job>/output/ with the input's
folders; the record (DescribeTransformJob's shape) is transform.json beside it,
the server's log transform.log.

Any other ENV: the input is uploaded to s3://S3_BUCKET/S3_PREFIX/transform/
<transform job>/input/, the training job's SageMaker model made (tagged) unless
sagemake made it already, the transform job created and followed, and the .out
files downloaded into the same local folder.

Exit status: 0 Completed, 1 the transform failed (a payload refused, the
server gone), 2 bad input (INPUT missing or empty, no fetched model, a job not
Completed), 3 AWS.
"""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from sagemake import jsonfile
from sagemake.aws.api import call, failure, plain
from sagemake.cli import Exit, JobFailed, UserError, run, say
from sagemake.config import Config, resolve, s3_uri
from sagemake.contract import serve as serving
from sagemake.executors import Executor, for_config
from sagemake.jobs.training import job_name, job_named

STRATEGIES = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}  # the request's: the container's
OUT = ".out"  # SageMaker names each output <input file><OUT>
RECORD = "transform.json"
REQUEST = "transform-request.json"
LOG = "transform.log"
OUTPUT = "output"
NAME_PART = "batch"  # <project>-batch-<time><random>: a transform job's name, never taken for a training job's
TERMINAL = ("Completed", "Failed", "Stopped")
REQUEST_SECONDS = 600  # SageMaker's default InvocationsTimeoutInSeconds for a transform
MB = serving.MB


class TransformFailed(JobFailed):
    """The transform ran and did not complete."""


# --- the request -----------------------------------------------------------------------------------------------


def input_files(folder: Path, given: str) -> list[Path]:
    """Every file under INPUT (hidden ones aside), in order; INPUT missing or empty is bad input."""
    if not given:
        raise UserError("INPUT is required: make transform INPUT=<folder of .csv files> [JOB=<job>]")
    if not folder.is_dir():
        raise UserError(f"INPUT={given} is not a folder: give the folder that holds the files to transform")
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files or not any(p.stat().st_size for p in files):
        raise UserError(f"INPUT={given} holds no data: put the rows to transform there, one per line")
    return files


def transform_request(config: Config, name: str, model: str, input_uri: str, output_uri: str) -> dict:
    """The CreateTransformJob request: the place (local or SageMaker) gives input_uri and output_uri."""
    return {
        "TransformJobName": name,
        "ModelName": model,
        "MaxConcurrentTransforms": config.int("TRANSFORM_MAX_CONCURRENT"),
        "MaxPayloadInMB": config.int("TRANSFORM_MAX_PAYLOAD_MB"),
        "BatchStrategy": config["TRANSFORM_BATCH_STRATEGY"],
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": serving.CSV,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": serving.CSV, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": config["TRANSFORM_INSTANCE_TYPE"] or config["INSTANCE_TYPE"],
                               "InstanceCount": 1},
        "Tags": [{"Key": "sagemake:project", "Value": config["PROJECT_NAME"]},
                 {"Key": "sagemake:job", "Value": model}, {"Key": "sagemake:env", "Value": config.env}],
    }


def batch_environment(request: dict) -> dict[str, str]:
    """What SageMaker sets in a transform's container, from the request."""
    return {"SAGEMAKER_BATCH": "true", serving.PAYLOAD_VARIABLE: str(request["MaxPayloadInMB"]),
            serving.STRATEGY_VARIABLE: STRATEGIES[request["BatchStrategy"]],
            serving.CONCURRENCY_VARIABLE: str(request["MaxConcurrentTransforms"])}


def output_folder(config: Config, name: str) -> Path:
    """Where the .out files land on this machine, wherever the transform ran."""
    return config.path("JOBS_DIR") / name / OUTPUT


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --- payloads as SageMaker makes them --------------------------------------------------------------------------


def payloads(path: Path, limit: int, single: bool):
    """(first line number, last line number, body) for one file's lines: one line a body (SingleRecord), or as
    many whole lines as fit in limit bytes (MultiRecord). A line over the limit is a TransformFailed."""
    lines, size, first, last = [], 0, 0, 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                line += b"\n"
            if len(line) > limit:
                raise TransformFailed(f"{path.name} line {number} is {len(line):,} bytes, over MaxPayloadInMB "
                                      f"({limit // MB} MB): raise TRANSFORM_MAX_PAYLOAD_MB or split the record")
            if lines and (single or size + len(line) > limit):
                yield first, last, b"".join(lines)
                lines, size = [], 0
            if not lines:
                first = number
            lines.append(line)
            size += len(line)
            last = number
    if lines:
        yield first, last, b"".join(lines)


class Client:
    """POST /invocations to a model server, one kept-alive connection per thread."""

    def __init__(self, url: str):
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.local = threading.local()

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile is opened again once
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = self.local.connection = http.client.HTTPConnection(self.host, self.port,
                                                                                timeout=REQUEST_SECONDS)
            try:
                connection.request("POST", "/invocations", body, {"Content-Type": serving.CSV,
                                                                   "Accept": serving.CSV})
                answer = connection.getresponse()
                return answer.status, answer.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
            except OSError as err:
                connection.close()
                self.local.connection = None
                raise TransformFailed(f"the model server did not answer ({err})") from None
        raise AssertionError("unreachable")


def transform_file(client: Client, path: Path, relative: str, destination: Path, request: dict) -> int:
    """path's lines through the server into destination, in order; the count of requests sent."""
    limit, single = request["MaxPayloadInMB"] * MB, request["BatchStrategy"] == "SingleRecord"
    window = max(1, request["MaxConcurrentTransforms"])
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    sent = 0

    def send(item):
        first, last, body = item
        status, answer = client.post(body)
        if status != 200:
            sentence = answer.decode(errors="replace").strip()[:300]
            raise TransformFailed(f"{relative} lines {first}-{last}: the model server answered {status}: {sentence}")
        return answer if answer.endswith(b"\n") or not answer else answer + b"\n"  # AssembleWith Line

    with partial.open("wb") as out, ThreadPoolExecutor(window) as pool:
        pending: collections.deque = collections.deque()
        try:
            for item in payloads(path, limit, single):
                pending.append(pool.submit(send, item))
                sent += 1
                while len(pending) >= 2 * window:  # bounded: a large file is never all in memory
                    out.write(pending.popleft().result())
            while pending:
                out.write(pending.popleft().result())
        except BaseException:
            for future in pending:
                future.cancel()
            partial.unlink(missing_ok=True)
            raise
    partial.replace(destination)
    return sent


# --- where transforms run --------------------------------------------------------------------------------------


class LocalTransforms:
    """The fetched model served on this machine, as `make serve` serves it, with the batch variables."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config

    def model(self, job: str | None) -> str:
        from sagemake.serve_model import fetched  # the manifest's check: no fetched model is named with its fetch

        self.folder, self.manifest = fetched(self.config, job)
        return self.manifest["job_name"]

    def provenance(self) -> dict:
        return {"sha256": self.manifest["artifact"]["sha256"], "image": self.manifest["image"]}

    def input_uri(self, folder: Path, name: str) -> str:
        return folder.resolve().as_uri() + "/"

    def output_uri(self, name: str) -> str:
        return output_folder(self.config, name).resolve().as_uri()

    def run(self, request: dict, folder: Path, files: list[Path]) -> dict:
        from sagemake.serve_model import free_port, start

        name = request["TransformJobName"]
        output = _path(request["TransformOutput"]["S3OutputPath"])
        job = output.parent
        output.mkdir(parents=True)
        (job / REQUEST).write_text(json.dumps(request, indent=2) + "\n")
        record = {key: value for key, value in request.items() if key != "Tags"}
        record.update({"TransformJobArn": f"arn:aws:sagemaker:local:000000000000:transform-job/{name}",
                       "TransformJobStatus": "InProgress", "CreationTime": now(), "LastModifiedTime": now()})
        _save(job, record)
        say(f"transform {name}: {len(files)} file(s) from {folder} with the model of {request['ModelName']}")
        log = job / LOG
        try:
            with log.open("wb") as handle:
                server = start(self.config, self.folder, self.manifest, free_port(), output=handle, log=log,
                               environment=batch_environment(request))
                record["TransformStartTime"] = now()
                try:
                    client = Client(server.url)
                    for path in files:
                        relative = path.relative_to(folder).as_posix()
                        count = transform_file(client, path, relative, output / f"{relative}{OUT}", request)
                        say(f"transform {name}: {relative}: {count} request(s) -> {relative}{OUT}")
                finally:
                    code = server.stop()
            if code != 0:
                raise TransformFailed(f"the model server exited {code} when stopped: see {log}")
        except KeyboardInterrupt:
            self._end(job, record, "Stopped", "stopped by Ctrl-C")
            raise
        except UserError as err:
            self._end(job, record, "Failed", str(err))
            raise TransformFailed(f"transform {name} Failed: {err} (log: {log})") from None
        self._end(job, record, "Completed", None)
        return record

    @staticmethod
    def _end(job: Path, record: dict, status: str, reason: str | None) -> None:
        record.update({"TransformJobStatus": status, "TransformEndTime": now(), "LastModifiedTime": now()})
        if reason:
            record["FailureReason"] = reason
        _save(job, record)


class SageMakerTransforms:
    """The training job's SageMaker model, a transform job on SageMaker, its .out files downloaded."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config

    def model(self, job: str | None) -> str:
        from sagemake.hosting import completed_job, ensure_model

        record = completed_job(self.executor, job or self.executor.latest())
        self._record = record
        self._ensure = lambda: ensure_model(self.executor, record)
        return record["TrainingJobName"]

    def provenance(self) -> dict:
        from sagemake.deploy import model_sha256

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
        _save(local.parent, record)
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


def _path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise UserError(f"{uri} is not a file:// URI: a local transform writes local folders only")
    return Path(unquote(parsed.path))


def _save(folder: Path, record: dict) -> None:
    jsonfile.write(folder / RECORD, record)


def transforms_for(executor: Executor):
    """The place of the executor: the one choice, made from the executor that ENV chose."""
    return {"local": LocalTransforms, "sagemaker": SageMakerTransforms}[executor.kind](executor)


def transform(config: Config, executor: Executor, given: str, job: str | None) -> dict:
    folder = Path(given)
    files = input_files(folder, given)
    place = transforms_for(executor)
    model = place.model(job)
    name = job_name(config["PROJECT_NAME"], NAME_PART)
    request = transform_request(config, name, model, place.input_uri(folder, name), place.output_uri(name))
    record = place.run(request, folder, files)
    from sagemake.deploy import record as write_record

    write_record(config, "transform", transform=name, job=model, **place.provenance(),
                 output=str(output_folder(config, name)))
    say(f"transform {name}: Completed: {len(files)} .out file(s) in {output_folder(config, name)}")
    return record


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        raise UserError("usage: transform.py INPUT [JOB]")
    config = resolve()
    transform(config, for_config(config), argv[0], job_named(argv[1]) if argv[1:] else None)
    return Exit.OK


if __name__ == "__main__":
    run(main, "transform")
