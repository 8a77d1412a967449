"""The one CreateTrainingJob request, built from config; both executors take it."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from sagemake import sourcedir
from sagemake.cli import UserError
from sagemake.config import Config
from trainer.metrics import METRICS

# What each Dockerfile puts into its image: the tag is a hash of these. In script
# mode the code travels beside the image (sagemake.sourcedir), so it is not here.
IMAGE_INPUTS = {
    "image": ("docker/Dockerfile", "docker/requirements.txt", "docker/train", "src/trainer",
              "src/sagemake/__init__.py", "src/sagemake/contract.py"),
    "script": ("docker/Dockerfile.script", "docker/requirements.txt", "docker/requirements-toolkit.txt"),
}
TAG_PREFIX = "sagemake:"
NO_GIT = "nogit"
METRIC_VALUE = r"([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|nan|[-+]?inf)"


def git_state(root: Path) -> tuple[str, bool]:
    """(short commit, whether the tree has uncommitted changes); NO_GIT outside a repository."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return NO_GIT, False
        return head.stdout.strip()[:7], bool(git("status", "--porcelain").stdout.strip())
    except OSError:  # no git installed
        return NO_GIT, False


def job_name(project: str, sha: str, now: datetime | None = None) -> str:
    """<project>-<git sha>-<UTC timestamp with milliseconds>: unique, sortable, at most 63 characters."""
    now = now or datetime.now(timezone.utc)
    return f"{project}-{sha}-{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"


def image_tag(root: Path, private_deps: str = "", code_mode: str = "image") -> str:
    """A hash of every file that goes into the image and of the pinned private dependencies."""
    digest = hashlib.sha256(private_deps.encode() + b"\0")
    for top in IMAGE_INPUTS[code_mode]:
        for path in sorted([root / top, *(root / top).rglob("*")]):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def image_uri(config: Config, registry: str | None = None) -> str:
    """Local: <project>:<tag>; AWS: <registry>/<ECR_REPOSITORY>:<tag>."""
    tag = image_tag(config.root, config["PRIVATE_DEPS"], config["CODE_MODE"])
    if registry is None:
        return f"{config['PROJECT_NAME'].lower()}:{tag}"
    return f"{registry}/{config['ECR_REPOSITORY']}:{tag}"


def s3_uri(config: Config, *parts: str) -> str:
    """s3://S3_BUCKET/S3_PREFIX/<parts>; S3_PREFIX defaults to PROJECT_NAME."""
    prefix = config["S3_PREFIX"].strip("/") or config["PROJECT_NAME"]
    return "/".join([f"s3://{config['S3_BUCKET']}", prefix, *parts])


def parse_pairs(text: str, setting: str) -> dict[str, str]:
    """'key=value key2="a b"' into a dict; a word without '=' is a UserError naming the setting."""
    pairs = {}
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise UserError(f"{setting} cannot be read ({err}): quote values like {setting}='key=\"a b\"'") from None
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise UserError(f"{setting}: '{word}' is not key=value: write {setting}='key=value key2=value2'")
        pairs[key] = value
    return pairs


def hyperparameters(config: Config) -> dict[str, str]:
    """HP validated by the trainer's own model, every value as SageMaker's string."""
    from sagemake.contract import TrainingError, parse_hyperparameters  # pydantic: only when a request is built
    from trainer.hyperparameters import Hyperparameters

    try:
        validated = parse_hyperparameters(parse_pairs(config["HP"], "HP"), Hyperparameters)
    except TrainingError as err:
        raise UserError(f"{err}: fix HP='key=value ...'") from None
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in validated.model_dump().items()}


def metric_definitions() -> list[dict]:
    """Regexes matching the `name=value` lines the container prints."""
    return [{"Name": name, "Regex": f"{re.escape(name)}={METRIC_VALUE}"} for name in METRICS]


def check_channels(config: Config) -> dict[str, Path]:
    """Every configured channel must be a folder with at least one file, before anything starts."""
    channels, problems = {}, []
    for name in config.words("CHANNELS"):
        folder = config.path("DATA_DIR") / name
        if not folder.is_dir():
            problems.append(
                f"data channel '{name}' is missing: create {config['DATA_DIR']}/{name}/ (or run `make data`)")
        elif not any(p.is_file() for p in folder.rglob("*")):
            problems.append(f"data channel '{name}' is empty: put its files in {config['DATA_DIR']}/{name}/")
        channels[name] = folder
    if problems:
        raise UserError("; ".join(problems))
    return channels


INPUT_MODES = ("File", "FastFile", "Pipe")


def input_modes(config: Config) -> dict[str, str]:
    """Each channel's input mode: File unless INPUT_MODES names another."""
    channels = config.words("CHANNELS")
    modes = dict.fromkeys(channels, "File")
    for channel, mode in parse_pairs(config["INPUT_MODES"], "INPUT_MODES").items():
        if channel not in modes:
            raise UserError(
                f"INPUT_MODES names '{channel}', which is not in CHANNELS: use one of {', '.join(channels)}")
        if mode not in INPUT_MODES:
            raise UserError(f"INPUT_MODES: '{mode}' for {channel} is not an input mode: use {', '.join(INPUT_MODES)}")
        modes[channel] = mode
    return modes


def build_request(config: Config, name: str, image: str, channel_uris: dict[str, str], output_uri: str,
                  git: tuple[str, bool], code_uri: str | None = None) -> dict:
    """The CreateTrainingJob request; code_uri (script mode) is where sourcedir.tar.gz will be."""
    modes = input_modes(config)
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "HyperParameters": hyperparameters(config),
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": modes[channel],
            }
            for channel, uri in channel_uris.items()
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": config["INSTANCE_TYPE"],
            "InstanceCount": config.int("INSTANCE_COUNT"),
            "VolumeSizeInGB": config.int("VOLUME_SIZE_GB"),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": config.int("MAX_RUNTIME_SECONDS")},
        "Environment": parse_pairs(config["JOB_ENV"], "JOB_ENV"),
        "Tags": [
            {"Key": f"{TAG_PREFIX}project", "Value": config["PROJECT_NAME"]},
            {"Key": f"{TAG_PREFIX}git-sha", "Value": git[0]},
            {"Key": f"{TAG_PREFIX}git-dirty", "Value": json.dumps(git[1])},
            {"Key": f"{TAG_PREFIX}env", "Value": config.env},
        ],
    }
    if code_uri:
        request["HyperParameters"].update({sourcedir.PROGRAM_KEY: sourcedir.PROGRAM, sourcedir.DIRECTORY_KEY: code_uri})
    if config["SAGEMAKER_ROLE_ARN"]:
        request["RoleArn"] = config["SAGEMAKER_ROLE_ARN"]
    if config["USE_SPOT"] == "true":
        request["EnableManagedSpotTraining"] = True
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = config.int("MAX_WAIT_SECONDS")
        request["CheckpointConfig"] = {"S3Uri": config["CHECKPOINT_S3_URI"]}
    if config["SUBNETS"]:
        request["VpcConfig"] = {
            "Subnets": config.words("SUBNETS"),
            "SecurityGroupIds": config.words("SECURITY_GROUP_IDS"),
        }
    return request


def tags(request: dict) -> dict[str, str]:
    """This tool's tags, without their prefix: project, git-sha, git-dirty, env."""
    return {t["Key"][len(TAG_PREFIX):]: t["Value"] for t in request.get("Tags", []) if t["Key"].startswith(TAG_PREFIX)}
