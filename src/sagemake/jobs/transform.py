"""Batch transform: the CreateTransformJob request (the place gives the model and the URIs), its names, and the
payloads SageMaker makes of each input file (MultiRecord or SingleRecord, at most MaxPayloadInMB each).

SageMaker splits an input file at each newline (SplitType Line) and sends every line as a record: it knows no
header. A file whose first line names columns is refused before anything runs (the model would be asked to predict
the header, and sagemake's server would drop it, one output short); and every .out file must hold one line per
record of its input, in order, wherever the transform ran, or the transform fails naming the file.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import JobFailed, UserError
from sagemake.config import Config
from sagemake.contract import serve as serving

STRATEGIES = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}  # the request's: the container's


OUT = ".out"  # SageMaker names each output <input file><OUT>


RECORD = "transform.json"


REQUEST = "transform-request.json"


LOG = "transform.log"


OUTPUT = "output"


NAME_PART = "batch"  # <project>-batch-<time><random>: a transform job's name, never taken for a training job's


REQUEST_SECONDS = 600  # SageMaker's default InvocationsTimeoutInSeconds for a transform


MB = serving.MB


class TransformFailed(JobFailed):
    """The transform ran and did not complete."""


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
    for path in files:
        first = header(path)
        if first is not None:
            raise UserError(f"INPUT={given}: {path.relative_to(folder)} starts with a header line ({first[:60]!r}), "
                            "which SageMaker's batch transform would send as a record: remove that line (tail -n +2)")
    return files


def header(path: Path) -> str | None:
    """The file's first line when it names columns: a cell that is not a number above a number in the next line.
    Lines of text (a text model's) are no header: only a line unlike the rows below it is. An empty cell is a
    missing value, never a name."""
    with path.open("rb") as handle:
        lines = [line.decode("utf-8-sig", errors="replace").strip() for line in
                 itertools.islice((line for line in handle if line.strip()), 2)]
    if len(lines) < 2:
        return None
    try:
        names, values = csv.reader(lines)
    except csv.Error:
        return None  # not CSV: the model's to read
    below = zip(names, values, strict=False)
    return lines[0] if any(a.strip() and not serving.numeric(a) and serving.numeric(b) for a, b in below) else None


def records(path: Path) -> int:
    """The records SageMaker makes of an input file: its lines that are not blank (payloads' lines). An output's
    lines are counted the same way: AssembleWith Line may add a newline after a response that ends in one."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def check_answered(source: Path, output: Path, relative: str) -> None:
    """One line out per record in: a transform's outputs are never silently fewer (or more) than its inputs."""
    sent = records(source)
    answered = records(output) if output.is_file() else 0
    if answered != sent:
        raise TransformFailed(f"{relative}: {sent} record(s) in, {answered} line(s) out: the model must answer "
                              "each record with one line, in order")


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


def save(folder: Path, record: dict) -> None:
    """transform.json, replaced whole."""
    jsonfile.write(folder / RECORD, record)
