"""Batch transform on this machine: the fetched model served as `make serve` serves it, with the batch variables,
and each file's payloads sent as SageMaker sends them; the record in DescribeTransformJob's shape.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sagemake.cli import UserError, say
from sagemake.clock import now
from sagemake.contract import serve as serving
from sagemake.executors.interface import Executor
from sagemake.executors.local.guarded import process_identity, uri_path
from sagemake.jobs.transform import (
    LOG,
    MB,
    OUT,
    REQUEST,
    REQUEST_SECONDS,
    TransformFailed,
    batch_environment,
    check_answered,
    output_folder,
    payloads,
    save,
)


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
    try:
        check_answered(path, partial, relative)
    except TransformFailed:
        partial.unlink()
        raise
    partial.replace(destination)
    return sent


class LocalTransforms:
    """The fetched model served on this machine, as `make serve` serves it, with the batch variables."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config

    def model(self, job: str | None) -> str:
        from sagemake.models import fetched  # no fetched model: what would fetch it, when that works

        self.folder, self.manifest = fetched(self.config, job, lambda: self.executor)
        return self.manifest["job_name"]

    def provenance(self) -> dict:
        return {"sha256": self.manifest["artifact"]["sha256"], "image": self.manifest["image"]}

    def input_uri(self, folder: Path, name: str) -> str:
        return folder.resolve().as_uri() + "/"

    def output_uri(self, name: str) -> str:
        return output_folder(self.config, name).resolve().as_uri()

    def run(self, request: dict, folder: Path, files: list[Path]) -> dict:
        from sagemake.executors.local.serving import Serving

        name = request["TransformJobName"]
        output = uri_path(request["TransformOutput"]["S3OutputPath"])
        job = output.parent
        output.mkdir(parents=True)
        (job / REQUEST).write_text(json.dumps(request, indent=2) + "\n")
        record = {key: value for key, value in request.items() if key != "Tags"}
        record.update({"TransformJobArn": f"arn:aws:sagemaker:local:000000000000:transform-job/{name}",
                       "TransformJobStatus": "InProgress", "CreationTime": now(), "LastModifiedTime": now(),
                       "LocalExecutor": process_identity(os.getpid()), "LocalLog": LOG})  # settled if it dies
        save(job, record)
        say(f"transform {name}: {len(files)} file(s) from {folder} with the model of {request['ModelName']}")
        log = job / LOG
        try:
            with log.open("wb") as handle, Serving(self.config, self.folder, self.manifest, output=handle, log=log,
                                                   environment=batch_environment(request)) as server:
                record["TransformStartTime"] = now()
                client = Client(server.url)
                for path in files:
                    relative = path.relative_to(folder).as_posix()
                    count = transform_file(client, path, relative, output / f"{relative}{OUT}", request)
                    say(f"transform {name}: {relative}: {count} request(s) -> {relative}{OUT}")
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
        save(job, record)

