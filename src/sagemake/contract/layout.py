"""SageMaker's /opt/ml layout, named once: the host side (local executor) and the
container side (the contract in the image) both take their paths from here.

Standard library only: this module is copied into the image.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR_VARIABLE = "SAGEMAKER_BASE_DIR"  # the training toolkit lets this move the root
DEFAULT_BASE_DIR = "/opt/ml"

# What SageMaker mounts into a training container: the rest of /opt/ml belongs to the image.
MOUNTED = ("input", "model", "output", "checkpoints")
CODE = "code"  # script mode: sagemaker_submit_directory is unpacked here

CONFIG_DIR = "input/config"
DATA_DIR = "input/data"
MODEL_DIR = "model"
OUTPUT_DIR = "output"
OUTPUT_DATA_DIR = "output/data"
CHECKPOINT_DIR = "checkpoints"
HYPERPARAMETERS = f"{CONFIG_DIR}/hyperparameters.json"
RESOURCE_CONFIG = f"{CONFIG_DIR}/resourceconfig.json"
INPUT_DATA_CONFIG = f"{CONFIG_DIR}/inputdataconfig.json"
FAILURE = f"{OUTPUT_DIR}/failure"
FAILURE_LIMIT = 1024  # SageMaker keeps this many characters of output/failure as FailureReason

MODEL_ARCHIVE = "model.tar.gz"  # model/ as SageMaker uploads it: <S3OutputPath>/<job>/output/model.tar.gz
OUTPUT_ARCHIVE = "output.tar.gz"  # output/data/, beside it


def base_dir() -> Path:
    """The root as the running code sees it."""
    return Path(os.environ.get(BASE_DIR_VARIABLE, DEFAULT_BASE_DIR))


def channel_dir(base: Path, channel: str) -> Path:
    return base / DATA_DIR / channel

# A processing job (CreateProcessingJob): no train/serve argument, its inputs and outputs under processing/,
# its own config beside them. The root moves with SAGEMAKER_BASE_DIR too (a local process runs under a folder).
PROCESSING_INPUT_DIR = "processing/input"  # each ProcessingInput's S3Input.LocalPath: <root>/processing/input/<name>
PROCESSING_OUTPUT_DIR = "processing/output"  # each ProcessingOutput's S3Output.LocalPath
PROCESSING_CONFIG_DIR = "config"
PROCESSING_JOB_CONFIG = f"{PROCESSING_CONFIG_DIR}/processingjobconfig.json"
PROCESSING_RESOURCE_CONFIG = f"{PROCESSING_CONFIG_DIR}/resourceconfig.json"


def processing_input(base: Path, name: str) -> Path:
    return base / PROCESSING_INPUT_DIR / name


def processing_output(base: Path, name: str) -> Path:
    return base / PROCESSING_OUTPUT_DIR / name
