"""Data capture: each sampled request to a model and its answer, one JSON line in SageMaker's data capture format.

An endpoint with a DataCaptureConfig writes JSON lines files under
<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/; each line is one request:

  {"captureData": {"endpointInput":  {"observedContentType": ..., "mode": "INPUT",  "data": ..., "encoding": ...},
                   "endpointOutput": {"observedContentType": ..., "mode": "OUTPUT", "data": ..., "encoding": ...}},
   "eventMetadata": {"eventId": <uuid>, "inferenceTime": "yyyy-mm-ddThh:mm:ssZ"},
   "eventVersion": "0"}

data is the body as text when its content type is CSV or JSON (encoding CSV or JSON), else base64 (BASE64).
`make serve`, `make predict` and `make transform` write the same lines, in the same hourly folders, under the
served model's folder: MODELS_DIR/<job>/capture/yyyy/mm/dd/hh/<command>-<pid>-<start>.jsonl. Sampling is
CAPTURE_PERCENT (0: off). Writing happens on a thread of its own, so a request never waits for the disk.

Imports the standard library alone: every serving command has it on its path.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import random
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sagemake.cli import UserError
from sagemake.config import Config, s3_uri
from sagemake.jobs.endpoint import CAPTURE

EVENT_VERSION = "0"
INPUT, OUTPUT = "INPUT", "OUTPUT"
CSV_TYPES = ("text/csv",)  # CaptureContentTypeHeader's CsvContentTypes: captured as text
JSON_TYPES = ("application/json", "application/jsonlines")  # ... JsonContentTypes
HOUR_FOLDERS = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+\.jsonl$")  # SageMaker's key layout
SINCE = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def data_capture(config: Config) -> dict | None:
    """The endpoint configuration's DataCaptureConfig: both directions, CAPTURE_PERCENT of the requests, CSV and
    JSON kept as text, to s3://S3_BUCKET/S3_PREFIX/capture/ (SageMaker adds <endpoint>/<variant>/yyyy/mm/dd/hh/);
    None when CAPTURE_PERCENT is 0."""
    percent = config.int("CAPTURE_PERCENT")
    if not percent:
        return None
    return {"EnableCapture": True, "InitialSamplingPercentage": percent, "DestinationS3Uri": s3_uri(config, CAPTURE),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": list(CSV_TYPES), "JsonContentTypes": list(JSON_TYPES)}}


def encode(body: bytes, content_type: str) -> tuple[str, str]:
    """(data, encoding) of a body as SageMaker captures it: CSV and JSON bodies as their text, anything else (or
    text that is not UTF-8) as base64."""
    media = content_type.split(";")[0].strip().lower()
    kind = "CSV" if media in CSV_TYPES else "JSON" if media in JSON_TYPES else "BASE64"
    if kind != "BASE64":
        try:
            return body.decode("utf-8"), kind
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), "BASE64"


def decode(part: dict) -> bytes:
    """The body a captured endpointInput or endpointOutput holds."""
    data = part.get("data", "")
    return base64.b64decode(data) if part.get("encoding") == "BASE64" else data.encode("utf-8")


def event(request: bytes, request_type: str, answer: bytes, answer_type: str, when: datetime) -> dict:
    """One captured request and its answer, as SageMaker writes it."""

    def side(body: bytes, content_type: str, mode: str) -> dict:
        data, encoding = encode(body, content_type)
        return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}

    return {"captureData": {"endpointInput": side(request, request_type, INPUT),
                            "endpointOutput": side(answer, answer_type, OUTPUT)},
            "eventMetadata": {"eventId": str(uuid.uuid4()),
                              "inferenceTime": when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": EVENT_VERSION}


def hour_folder(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y/%m/%d/%H")


class Capture:
    """`with Capture(folder, percent, command) as capture:` capture.add(...) for each answered request; a thread of
    its own appends the sampled ones to folder/yyyy/mm/dd/hh/<command>-<pid>-<start>.jsonl, so a request waits for
    no disk; the block's end writes what is left."""

    def __init__(self, folder: Path, percent: int, command: str):
        self.folder, self.percent = folder, percent
        started = datetime.now(timezone.utc)
        self.name = f"{command}-{os.getpid()}-{started.strftime('%Y%m%dT%H%M%S%f')}.jsonl"
        self.count = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="capture", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        return self.percent >= 100 or random.random() * 100 < self.percent

    def add(self, request: bytes, request_type: str, answer: bytes, answer_type: str) -> None:
        """Captures this request and its answer when it is sampled; returns at once."""
        if self.sampled():
            self._queue.put((request, request_type, answer, answer_type, datetime.now(timezone.utc)))

    def _write(self) -> None:
        handle, hour = None, None
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                line = json.dumps(event(*item), separators=(",", ":")) + "\n"
                if hour_folder(item[-1]) != hour:
                    if handle:
                        handle.close()
                    hour = hour_folder(item[-1])
                    path = self.folder / hour / self.name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    handle = path.open("a", encoding="utf-8")
                handle.write(line)
                self.count += 1
                if self._queue.empty():  # a burst is written in one go; a quiet moment flushes it
                    handle.flush()
        finally:
            if handle:
                handle.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def capturing(config: Config, model_folder: Path, command: str) -> Capture | None:
    """The capture of a command that serves the model in model_folder; None when CAPTURE_PERCENT is 0."""
    percent = config.int("CAPTURE_PERCENT")
    return Capture(model_folder / CAPTURE, percent, command) if percent else None


def since(text: str, now: datetime | None = None) -> datetime | None:
    """SINCE (30m, 12h, 1d) as the moment it names; empty: None (all of it)."""
    if not text:
        return None
    found = SINCE.match(text.strip())
    if not found:
        raise UserError(f"SINCE={text} is not a span: give minutes, hours or days, as 30m, 12h or 1d")
    return (now or datetime.now(timezone.utc)) - timedelta(**{UNITS[found[2]]: int(found[1])})


def in_span(name: str, start: datetime | None) -> bool:
    """Whether a capture file (named by its key or path, in SageMaker's hourly layout) may hold requests since
    start: its hour ends after start."""
    found = HOUR_FOLDERS.search(name)
    if found is None:
        return False
    if start is None:
        return True
    hour = datetime(*(int(part) for part in found.groups()), tzinfo=timezone.utc)
    return hour + timedelta(hours=1) > start


def events(name: str, text: str, start: datetime | None) -> Iterator[dict]:
    """The captured requests of one capture file since start; a line that is no capture record is one line naming
    the file."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            when = datetime.strptime(record["eventMetadata"]["inferenceTime"][:19], "%Y-%m-%dT%H:%M:%S")
            record["captureData"]["endpointInput"]["data"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{name}, line {number}, is not a data capture record: move that file out of the "
                            "capture folder") from None
        if start is None or when.replace(tzinfo=timezone.utc) >= start:
            yield record
