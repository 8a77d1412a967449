"""Summary: batch transform: predictions for every line of the files in INPUT=<folder>, as <file>.out (JOB=...)

Usage: make transform INPUT=<folder> [JOB=<job>] [ENV=...]   (python -m sagemake transform INPUT [JOB])

One CreateTransformJob request for both places: locally the fetched model is
served as `make serve` serves it, with the batch variables, and each file's
lines are sent as SageMaker sends them (MultiRecord or SingleRecord, at most
TRANSFORM_MAX_PAYLOAD_MB a request, TRANSFORM_MAX_CONCURRENT at once); on
SageMaker the inputs are uploaded, the job created and followed, and the .out
files downloaded. Either way they land in JOBS_DIR/<transform>/output/, and
what the job cost on SageMaker (locally: would have) is said at batch
transform's rate. Each input file and its .out are captured for `make drift` (CAPTURE_PERCENT).
Exit status: 0 done, 1 the transform failed, 2 bad input, 3 an AWS error, 130 interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path

from sagemake.capture import CAPTURE, capturing
from sagemake.cli import Exit, UserError, say
from sagemake.config import Config, resolve
from sagemake.contract import serve as serving
from sagemake.executors import Executor, for_config
from sagemake.jobs import ran
from sagemake.jobs.endpoint import CONTENT_TYPES
from sagemake.jobs.training import job_name, job_named
from sagemake.jobs.transform import (
    NAME_PART,
    OUT,
    RECORD,
    TransformFailed,
    input_files,
    output_folder,
    transform_request,
)
from sagemake.pricing import TRANSFORM, used_line
from sagemake.tracking import Tracker


def transform(config: Config, executor: Executor, given: str, job: str | None) -> dict:
    folder = Path(given)
    files = input_files(folder, given)
    place = executor.transforms()
    model = place.model(job)
    name = job_name(config["PROJECT_NAME"], NAME_PART)
    request = transform_request(config, name, model, place.input_uri(folder, name), place.output_uri(name))
    tracker = Tracker(config)  # says a run the last writer could not write
    try:
        record = place.run(request, folder, files)
    except (TransformFailed, KeyboardInterrupt):  # a run too, as the record it left says it ended
        saved = output_folder(config, name).parent / RECORD
        tracker.ended(lambda: json.loads(saved.read_text()), "TransformJobStatus",
                      lambda ended: tracker.transform(executor, ended, len(files), place.provenance()))
        raise
    from sagemake.deployments import record as write_record

    provenance = place.provenance()
    write_record(config, "transform", transform=name, job=model, **provenance,
                 output=str(output_folder(config, name)))
    captured(config, model, folder, files, output_folder(config, name))
    say(f"transform {name}: Completed: {len(files)} .out file(s) in {output_folder(config, name)}")
    resources = record["TransformResources"]
    say(f"transform {name}: " + used_line(TRANSFORM, resources["InstanceType"], resources["InstanceCount"],
                                          ran(record, "Transform"), executor.prices()))
    tracker.transform(executor, record, len(files), provenance)
    return record


def captured(config: Config, model: str, folder: Path, files: list[Path], outputs: Path) -> None:
    """Each input file and its .out file captured as one request and its answer of the model (CAPTURE_PERCENT), so
    `make drift` counts what was transformed."""
    capture = capturing(config, config.path("MODELS_DIR") / model, "transform")
    if capture is None:
        return
    with capture:
        for path in files:
            out = outputs / f"{path.relative_to(folder)}{OUT}"
            kind = CONTENT_TYPES.get(path.suffix.lower(), serving.CSV)
            capture.add(path.read_bytes(), kind, out.read_bytes() if out.is_file() else b"", kind)
    say(f"transform: {capture.count} of {len(files)} input file(s) captured for `make drift` "
        f"({config['MODELS_DIR']}/{model}/{CAPTURE}/)")


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        raise UserError("INPUT is required: make transform INPUT=<folder of .csv files> [JOB=<job>]")
    config = resolve()
    transform(config, for_config(config), argv[0], job_named(argv[1]) if argv[1:] else None)
    return Exit.OK

