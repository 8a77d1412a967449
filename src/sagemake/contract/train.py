"""The container side of SageMaker's training contract; docker/train runs main().

Reads /opt/ml (or $SAGEMAKER_BASE_DIR, see sagemake.contract.layout): hyperparameters.json
(all strings) into the trainer's validated Hyperparameters, and the channels
named in inputdataconfig.json from input/data/<channel>/. Writes the model to
model/, metrics to output/data/metrics.json and as `name=value` log lines. Any
error writes a one-sentence reason to output/failure and exits 255; SIGTERM (a
stop, MaxRuntime, a spot interruption) stops the training cleanly.

Imports only the standard library and pydantic: it runs inside the image.
"""

from __future__ import annotations

import inspect
import json
import signal
import sys
import traceback
import types
import typing
from pathlib import Path

from sagemake.contract import layout

RESERVED_PREFIX = "sagemaker_"  # SageMaker's own hyperparameters, not the model's
FAILURE_EXIT = 255
STOPPED_EXIT = 128 + signal.SIGTERM
NONE = ("None", "")  # an Optional hyperparameter given so is None: HP='cap=None' or HP='cap='


class Stopped(BaseException):
    """SIGTERM arrived: SageMaker is stopping the job (not an Exception, so training code cannot swallow it)."""


class TrainingError(Exception):
    """Input the training cannot use; the message is the job's failure reason."""


def describe_validation_error(err) -> str:
    """One line naming each bad hyperparameter, what is wrong and what was given."""
    parts = []
    for problem in err.errors():
        field = ".".join(str(p) for p in problem["loc"]) or "hyperparameters"
        if problem["type"] == "extra_forbidden":
            parts.append(f"unknown hyperparameter '{field}'")
        else:
            parts.append(f"hyperparameter {field}={problem.get('input')!r}: {problem['msg'].lower()}")
    return "; ".join(parts)


def _decoded(model, key: str, value):
    """SageMaker's strings back into what the field holds: None for an Optional field given None (or nothing:
    HP='cap=None' or 'cap='); lists and dicts from JSON text as sagemake sends them, or for a list, comma-separated
    words as a shell writes them (HP='features=bmi,bp'); a single value for a list is a list of one (HP='hidden=16')."""
    field = model.model_fields.get(key)
    if not isinstance(value, str) or field is None:
        return value
    union = typing.get_origin(field.annotation) in (typing.Union, types.UnionType)  # Optional[...] and X | None
    members = typing.get_args(field.annotation) if union else (field.annotation,)
    if value in NONE and type(None) in members:
        return None
    kinds = {typing.get_origin(t) or t for t in members}
    sequence = bool(kinds & {list, tuple, set})
    if not sequence and dict not in kinds:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value.split(",") if sequence else value
    return [decoded] if sequence and not isinstance(decoded, (list, dict)) and decoded is not None else decoded


def parse_hyperparameters(raw: dict, model):
    """Validate SageMaker's string hyperparameters with the trainer's model."""
    from pydantic import ValidationError

    own = {key: _decoded(model, key, value) for key, value in raw.items() if not key.startswith(RESERVED_PREFIX)}
    try:
        return model(**own)
    except ValidationError as err:
        names = ", ".join(model.model_fields)
        raise TrainingError(f"{describe_validation_error(err)} (known: {names})") from None


def as_strings(hyperparameters) -> dict[str, str]:
    """A validated model as SageMaker's strings: text as it is, None given on purpose as None (it may not be the
    field's default), anything else as JSON; a None nobody gave (a default) left out."""
    given = hyperparameters.model_fields_set
    return {key: NONE[0] if value is None else value if isinstance(value, str) else json.dumps(value)
            for key, value in hyperparameters.model_dump(mode="json").items() if value is not None or key in given}


def read_channels(base: Path) -> dict[str, Path]:
    config = json.loads((base / layout.INPUT_DATA_CONFIG).read_text())
    channels = {}
    for name in config:
        folder = layout.channel_dir(base, name)
        if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
            raise TrainingError(f"channel '{name}' is empty: put its files in {layout.DATA_DIR}/{name}/")
        channels[name] = folder
    return channels


def write_failure(base: Path, reason: str) -> None:
    failure = base / layout.FAILURE
    failure.parent.mkdir(parents=True, exist_ok=True)
    failure.write_text(reason[:layout.FAILURE_LIMIT] + "\n")


def _on_sigterm(signum, frame):
    raise Stopped()


def main() -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    base = layout.base_dir()
    try:
        # Imported here so that the host can use this module's helpers without the model's dependencies.
        from trainer.hyperparameters import Hyperparameters
        from trainer.train import train

        raw = json.loads((base / layout.HYPERPARAMETERS).read_text())
        hyperparameters = parse_hyperparameters(raw, Hyperparameters)
        print(f"hyperparameters: {hyperparameters.model_dump_json()}", flush=True)
        channels = read_channels(base)
        output_data = base / layout.OUTPUT_DATA_DIR
        output_data.mkdir(parents=True, exist_ok=True)
        checkpoints = base / layout.CHECKPOINT_DIR  # there with a CheckpointConfig
        resumable = "checkpoint_dir" in inspect.signature(train).parameters and checkpoints.is_dir()
        extra = {"checkpoint_dir": checkpoints} if resumable else {}
        metrics = train(hyperparameters, channels, base / layout.MODEL_DIR, output_data, **extra)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # trained: a stop that comes now (a late early stop) is moot
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
        if isinstance(err, ModuleNotFoundError):
            reason += ": the image lacks it; add it to docker/requirements.txt"
        write_failure(base, reason)
        print(f"train: failed: {reason}", file=sys.stderr, flush=True)
        return FAILURE_EXIT
