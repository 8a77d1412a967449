"""Real-time endpoints and their SageMaker model: the names, tags and request parts of CreateModel,
CreateEndpointConfig and CreateEndpoint, and the layout of a fetched model's folder (MODELS_DIR/<job>/).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sagemake.cli import UserError
from sagemake.config import Config
from sagemake.contract import serve as serving
from sagemake.jobs.training import TAG_PREFIX

PROJECT_TAG = f"{TAG_PREFIX}project"


JOB_TAG = f"{TAG_PREFIX}job"


def hosting_tags(config, job: str) -> list[dict]:
    """The tags of everything sagemake makes for hosting: project, training job, ENV."""
    return [{"Key": PROJECT_TAG, "Value": config["PROJECT_NAME"]}, {"Key": JOB_TAG, "Value": job},
            {"Key": f"{TAG_PREFIX}env", "Value": config.env}]


VARIANT = "AllTraffic"


SMOKE_ROWS = 3


CONFIG_PART = "config"  # <project>-config-<time><random>: each deploy's endpoint configuration


WAIT_LIMIT_SECONDS = 3600  # SageMaker gives up on an endpoint that cannot start well before this


def endpoint_name(config: Config) -> str:
    return config["ENDPOINT_NAME"] or config["PROJECT_NAME"]


def smoke_rows(config: Config, hyperparameters: dict) -> bytes | None:
    """A few rows of the validation channel's first file, as CSV without the label (the job's `target`, else a
    column named target) and without the header; None when there is no validation channel."""
    folder = config.path("DATA_DIR") / "validation"
    files = sorted(p for p in folder.rglob("*.csv") if p.is_file()) if folder.is_dir() else []
    if not files:
        return None
    with files[0].open(newline="") as handle:
        lines = list(csv.reader(handle))[:SMOKE_ROWS + 1]
    header = lines[0]
    label = hyperparameters.get("target", "target")
    if label in header:
        keep = [i for i, name in enumerate(header) if name != label]
        rows = [[line[i] for i in keep] for line in lines[1:]]
    else:
        rows = lines[:SMOKE_ROWS]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


CONTENT_TYPES = {".csv": serving.CSV, ".json": serving.JSON}  # a file of rows, by its suffix, as /invocations takes it


def request_body(file: str) -> tuple[bytes, str]:
    """(body, content type) of a FILE of rows, sent or compared as a request to the model."""
    path = Path(file)
    kind = CONTENT_TYPES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"FILE={file} is neither .csv nor .json: give rows as /invocations takes them")
    if not path.is_file():
        raise UserError(f"FILE={file} does not exist")
    return path.read_bytes(), kind


MANIFEST = "manifest.json"


OUTPUT = "output"  # MODELS_DIR/<job>/output/: the job's /opt/ml/output/data/
BASELINE = "baseline.json"  # MODELS_DIR/<job>/baseline.json: the training data's profile, what drift is measured from
CAPTURE = "capture"  # MODELS_DIR/<job>/capture/: the requests captured while it was served
DRIFT = "drift"  # MODELS_DIR/<job>/drift/: `make drift`'s reports
FETCHED = (MANIFEST, OUTPUT, BASELINE, CAPTURE, DRIFT)  # what sagemake keeps beside a model's own files
KEPT = (CAPTURE, DRIFT)  # what a fetch of the model again keeps: it was gathered since, not fetched


def sagemake_image(manifest: dict) -> bool:
    """Whether the model's image is sagemake's own (so a process can stand in for it), as its training job recorded
    it; a manifest from before that record says so only of a job that ran as a process."""
    return manifest.get("sagemake_image", manifest.get("runtime") == "process")
