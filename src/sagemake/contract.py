"""The container side of SageMaker's training contract; docker/train runs main().

Reads /opt/ml (or $SAGEMAKER_BASE_DIR): hyperparameters.json (all strings)
into the trainer's validated Hyperparameters, and the channels named in
inputdataconfig.json from input/data/<channel>/. Writes the model to model/,
metrics to output/data/metrics.json and as `name=value` log lines. Any error
writes a one-sentence reason to output/failure and exits 255; SIGTERM (a stop,
MaxRuntime, a spot interruption) stops the training cleanly.

Imports only the standard library and pydantic: it runs inside the image.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from pydantic import ValidationError

BASE_DIR_VARIABLE = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"
RESERVED_PREFIX = "sagemaker_"  # SageMaker's own hyperparameters, not the model's
FAILURE_EXIT = 255
STOPPED_EXIT = 128 + signal.SIGTERM
FAILURE_LIMIT = 1024  # SageMaker keeps this many characters as FailureReason


class Stopped(BaseException):
    """SIGTERM arrived: SageMaker is stopping the job (not an Exception, so training code cannot swallow it)."""


class TrainingError(Exception):
    """Input the training cannot use; the message is the job's failure reason."""


def base_dir() -> Path:
    return Path(os.environ.get(BASE_DIR_VARIABLE, DEFAULT_BASE_DIR))


def describe_validation_error(err: ValidationError) -> str:
    """One line naming each bad hyperparameter, what is wrong and what was given."""
    parts = []
    for problem in err.errors():
        field = ".".join(str(p) for p in problem["loc"]) or "hyperparameters"
        if problem["type"] == "extra_forbidden":
            parts.append(f"unknown hyperparameter '{field}'")
        else:
            parts.append(f"hyperparameter {field}={problem.get('input')!r}: {problem['msg'].lower()}")
    return "; ".join(parts)


def parse_hyperparameters(raw: dict, model):
    """Validate SageMaker's string hyperparameters with the trainer's model."""
    own = {key: value for key, value in raw.items() if not key.startswith(RESERVED_PREFIX)}
    try:
        return model(**own)
    except ValidationError as err:
        names = ", ".join(model.model_fields)
        raise TrainingError(f"{describe_validation_error(err)} (known: {names})") from None


def read_channels(base: Path) -> dict[str, Path]:
    config = json.loads((base / "input/config/inputdataconfig.json").read_text())
    channels = {}
    for name in config:
        folder = base / "input/data" / name
        if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
            raise TrainingError(f"channel '{name}' is empty: put its files in input/data/{name}/")
        channels[name] = folder
    return channels


def write_failure(base: Path, reason: str) -> None:
    failure = base / "output/failure"
    failure.parent.mkdir(parents=True, exist_ok=True)
    failure.write_text(reason[:FAILURE_LIMIT] + "\n")


def _on_sigterm(signum, frame):
    raise Stopped()


def main() -> int:
    # Imported here so that the host can use this module's helpers without the model's dependencies.
    from trainer.hyperparameters import Hyperparameters
    from trainer.train import train

    signal.signal(signal.SIGTERM, _on_sigterm)
    base = base_dir()
    try:
        raw = json.loads((base / "input/config/hyperparameters.json").read_text())
        hyperparameters = parse_hyperparameters(raw, Hyperparameters)
        print(f"hyperparameters: {hyperparameters.model_dump_json()}", flush=True)
        channels = read_channels(base)
        output_data = base / "output/data"
        output_data.mkdir(parents=True, exist_ok=True)
        metrics = train(hyperparameters, channels, base / "model", output_data)
        (output_data / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        for name, value in sorted(metrics.items()):
            print(f"{name}={value:.6f}", flush=True)
        return 0
    except Stopped:
        write_failure(base, "Training stopped by SIGTERM before it finished.")
        print("train: stopped by SIGTERM", file=sys.stderr, flush=True)
        return STOPPED_EXIT
    except Exception as err:  # every failure must reach output/failure
        if not isinstance(err, TrainingError):
            traceback.print_exc()
        reason = str(err) if isinstance(err, TrainingError) else f"{type(err).__name__}: {err}"
        write_failure(base, reason)
        print(f"train: failed: {reason}", file=sys.stderr, flush=True)
        return FAILURE_EXIT
