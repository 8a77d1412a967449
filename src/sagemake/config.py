"""The one config resolver: defaults < .env < .env.<ENV> < the shell's environment.

Python imports `resolve()`; bash reads the same values through `--export`
(scripts/lib/common.sh), so nothing else parses .env files.

Usage: python -m sagemake.config [--export]
"""

from __future__ import annotations

import io
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from sagemake.cli import UserError, run

ROOT = Path(__file__).resolve().parents[2]

# Every setting with its default; .env.example documents each one.
DEFAULTS = {
    "PROJECT_NAME": "sagemake-example",
    "AWS_REGION": "",
    "SAGEMAKER_ROLE_ARN": "",
    "S3_BUCKET": "",
    "ECR_REPOSITORY": "",
    "S3_PREFIX": "",
    "IMAGE_REGISTRY": "",
    "DATA_DIR": "data",
    "CHANNELS": "",
    "HP": "",
    "JOB_ENV": "",
    "INSTANCE_TYPE": "ml.m5.large",
    "INSTANCE_COUNT": "1",
    "VOLUME_SIZE_GB": "30",
    "MAX_RUNTIME_SECONDS": "3600",
    "INPUT_MODES": "",
    "DATA_DISTRIBUTION": "",
    "USE_SPOT": "false",
    "MAX_WAIT_SECONDS": "0",
    "CHECKPOINT_S3_URI": "",
    "SPOT_DRILL_SECONDS": "0",
    "KEEP_ALIVE_SECONDS": "0",
    "SUBNETS": "",
    "SECURITY_GROUP_IDS": "",
    "POLL_SECONDS": "10",
    "METRICS": "",
    "PRIMARY_METRIC": "",
    "CODE_MODE": "image",
    "DOCKERFILE": "",
    "BUILD_CONTEXT": ".",
    "TRAINING_IMAGE": "",
    "CONTAINER_ENTRYPOINT": "",
    "CONTAINER_ARGUMENTS": "",
    "PRIVATE_DEPS": "",
    "CONTAINER_ENGINE": "docker",
    "CONTAINER_BUILD_FLAGS": "",
    "CONTAINER_RUN_FLAGS": "",
    "LOCAL_RUNTIME": "auto",
    "STOP_GRACE_SECONDS": "120",
    "JOBS_DIR": "jobs",
    "MODELS_DIR": "models",
    "SERVE_PORT": "8080",
    "TRANSFORM_BATCH_STRATEGY": "MultiRecord",
    "TRANSFORM_MAX_PAYLOAD_MB": "6",
    "TRANSFORM_MAX_CONCURRENT": "1",
    "TRANSFORM_INSTANCE_TYPE": "",
    "ENDPOINT_NAME": "",
    "ENDPOINT_INSTANCE_TYPE": "",
    "ENDPOINT_INSTANCE_COUNT": "1",
    "RAW_DIR": "raw",
    "PREPROCESS_ARGS": "",
    "PROCESSING_INSTANCE_TYPE": "",
    "TUNE_RANGES": "",
    "TUNE_OBJECTIVE": "",
    "TUNE_OBJECTIVE_TYPE": "",
    "TUNE_MAX_JOBS": "10",
    "TUNE_PARALLEL": "1",
    "TUNE_STRATEGY": "Bayesian",
    "TUNE_SEED": "0",
    "TUNE_EARLY_STOPPING": "Off",
}
AWS_REQUIRED = ("PROJECT_NAME", "AWS_REGION", "SAGEMAKER_ROLE_ARN", "S3_BUCKET", "ECR_REPOSITORY")
OWN_DOCKERFILES = {"image": "docker/Dockerfile", "script": "docker/Dockerfile.script"}  # by CODE_MODE
DEFAULT_ENV = "local"
CLOUD_ENV = "prod"  # known without a .env.prod file, so .env alone can configure it
FIX = "edit .env (see .env.example) or pass it as make VAR=value"

_ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PROJECT = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
PROJECT_LIMIT = 32  # <project>-<7-character commit>-<YYYYmmdd-HHMMSS-mmm> stays within SageMaker's 63 characters
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z][a-z0-9-]*\.[0-9]*(nano|micro|small|medium|large|xlarge|metal)$")
_ENDPOINT = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_URL_CREDENTIAL = re.compile(r"^[a-z+]+://[^/@]*@")
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_INTEGERS = {  # name: (lowest, highest)
    "INSTANCE_COUNT": (1, 100),
    "VOLUME_SIZE_GB": (1, 16384),
    "MAX_RUNTIME_SECONDS": (1, 28 * 24 * 3600),
    "STOP_GRACE_SECONDS": (0, 3600),
    "MAX_WAIT_SECONDS": (0, 28 * 24 * 3600),
    "SPOT_DRILL_SECONDS": (0, 28 * 24 * 3600),
    "KEEP_ALIVE_SECONDS": (0, 3600),  # SageMaker keeps a warm pool at most an hour after each job
    "POLL_SECONDS": (1, 600),
    "SERVE_PORT": (1, 65535),
    "TRANSFORM_MAX_PAYLOAD_MB": (1, 100),  # CreateTransformJob's MaxPayloadInMB
    "TRANSFORM_MAX_CONCURRENT": (1, 64),
    "ENDPOINT_INSTANCE_COUNT": (1, 100),
    "TUNE_MAX_JOBS": (1, 500),  # SageMaker's MaxNumberOfTrainingJobs
    "TUNE_PARALLEL": (1, 100),  # MaxParallelTrainingJobs
    "TUNE_SEED": (0, 2**32 - 1),
}
_CHOICES = {
    "CONTAINER_ENGINE": ("docker", "podman"),
    "LOCAL_RUNTIME": ("auto", "container", "process"),
    "USE_SPOT": ("true", "false"),
    "CODE_MODE": ("image", "script"),
    "TRANSFORM_BATCH_STRATEGY": ("MultiRecord", "SingleRecord"),
    "TUNE_STRATEGY": ("Bayesian", "Random"),
    "TUNE_OBJECTIVE_TYPE": ("", "Maximize", "Minimize"),
    "TUNE_EARLY_STOPPING": ("Off", "Auto"),
}


@dataclass(frozen=True)
class Config:
    env: str
    root: Path
    values: dict
    sources: dict
    aws: dict  # AWS_* variables from the files (AWS_PROFILE, ...), for boto3 and the aws CLI

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def int(self, key: str) -> int:
        return int(self.values[key])

    def path(self, key: str) -> Path:
        return self.root / self.values[key]

    def words(self, key: str) -> list[str]:
        return self.values[key].split()

    @property
    def dockerfile(self) -> Path:
        """DOCKERFILE, or sagemake's own: docker/Dockerfile (docker/Dockerfile.script with CODE_MODE=script)."""
        return self.root / (self.values["DOCKERFILE"] or OWN_DOCKERFILES[self.values["CODE_MODE"]])

    @property
    def sagemake_image(self) -> bool:
        """Whether the image is sagemake's own, running src/trainer/ under sagemake's contract (not a user's
        Dockerfile or prebuilt image): only then do the trainer's schema, metrics and data step apply, and can
        a local job run as a process."""
        own = {self.root / path for path in OWN_DOCKERFILES.values()}
        return not self.values["TRAINING_IMAGE"] and self.dockerfile in own


def s3_uri(config: Config, *parts: str) -> str:
    """s3://S3_BUCKET/S3_PREFIX/<parts>; S3_PREFIX defaults to PROJECT_NAME."""
    prefix = config["S3_PREFIX"].strip("/") or config["PROJECT_NAME"]
    return "/".join([f"s3://{config['S3_BUCKET']}", prefix, *parts])


def channel_uri(config: Config, channel: str) -> str:
    """Where `make upload` puts a data channel, and a job reads it from."""
    return s3_uri(config, "data", channel) + "/"


def resolve(env: str | None = None, root: Path = ROOT, environ=None) -> Config:
    """Resolve every setting for ENV; all problems are reported in one UserError."""
    environ = os.environ if environ is None else environ
    env = env or environ.get("ENV") or DEFAULT_ENV
    problems: list[str] = []
    values = dict(DEFAULTS)
    sources = {key: "default" for key in DEFAULTS}

    aws: dict[str, str] = {}
    layers = [root / ".env"]
    if not _ENV_NAME.match(env):
        problems.append(f"ENV '{env}' is not a valid name: use lower-case letters, digits, '-' or '_'")
    elif env != DEFAULT_ENV:
        env_file = root / f".env.{env}"
        if env_file.exists() or env == CLOUD_ENV:
            layers.append(env_file)
        else:
            problems.append(f"unknown ENV '{env}': use ENV={DEFAULT_ENV}, ENV={CLOUD_ENV}, or create .env.{env}")
    for layer in layers:
        for key, value in _read(layer, problems).items():
            if key in DEFAULTS:
                values[key], sources[key] = value, layer.name
            elif key in CREDENTIALS:
                problems.append(f"{layer.name}: {key} is a credential, and files in a project get copied and "
                                "committed: remove it and use the standard AWS chain (aws configure or AWS_PROFILE, "
                                "aws sso login, or an assumed role)")
            elif key.startswith("AWS_"):
                aws[key] = value
            else:
                problems.append(f"{layer.name}: unknown setting {key} (see .env.example for the names)")
    for key in DEFAULTS:
        if key in environ:
            values[key], sources[key] = environ[key], "environment"

    problems += _check(env, values)
    if problems:
        raise UserError(f"{len(problems)} config problem(s): " + "; ".join(problems))
    aws = {key: value for key, value in aws.items() if key not in environ}  # the shell's own win
    if environ is os.environ:
        os.environ.update(aws)
    return Config(env=env, root=root, values=values, sources=sources, aws=aws)


def _read(path: Path, problems: list[str]) -> dict:
    """The file's settings; a line python-dotenv cannot read is a problem naming the line (never its text,
    which may hold a secret), not a setting silently left at its default."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"cannot read {path.name} ({err.__class__.__name__}): check its permissions and encoding")
        return {}
    unreadable = [str(binding.original.line) for binding in parse_stream(io.StringIO(text)) if binding.error]
    if unreadable:
        problems.append(f"{path.name}: line {', '.join(unreadable)} cannot be read: check its quotes "
                        "(KEY=value, or KEY='a value with spaces')")
    return {k: v or "" for k, v in dotenv_values(stream=io.StringIO(text)).items()}


def _check(env: str, values: dict) -> list[str]:
    problems = []
    if not _PROJECT.match(values["PROJECT_NAME"]) or len(values["PROJECT_NAME"]) > PROJECT_LIMIT:
        problems.append(f"PROJECT_NAME must be 1-{PROJECT_LIMIT} letters, digits or '-' (it starts every job name, "
                        "which SageMaker limits to 63 characters)")
    for key in ("INSTANCE_TYPE", "TRANSFORM_INSTANCE_TYPE", "ENDPOINT_INSTANCE_TYPE", "PROCESSING_INSTANCE_TYPE"):
        if (values[key] or key == "INSTANCE_TYPE") and not _INSTANCE_TYPE.match(values[key]):
            problems.append(f"{key}={values[key]!r} is not a SageMaker instance type: use "
                            "ml.<family>.<size>, e.g. ml.m5.large")
    if values["ENDPOINT_NAME"] and not _ENDPOINT.match(values["ENDPOINT_NAME"]):
        problems.append(f"ENDPOINT_NAME={values['ENDPOINT_NAME']!r} is not a SageMaker endpoint name: use 1-63 "
                        "letters, digits or '-'")
    for dep in values["PRIVATE_DEPS"].split():
        if _URL_CREDENTIAL.match(dep):
            problems.append(f"PRIVATE_DEPS: {_URL_CREDENTIAL.sub('', dep).split('@')[0]} is written with a user or "
                            "token in its URL, which would reach files and logs: remove it and set GIT_HTTPS_TOKEN "
                            "in the environment instead")
    for key, (low, high) in _INTEGERS.items():
        text = values[key]
        if not (text.isdigit() and low <= int(text) <= high):
            problems.append(f"{key}={text!r} must be a whole number from {low} to {high}")
    for key, choices in _CHOICES.items():
        if values[key] not in choices:
            problems.append(f"{key}={values[key]!r} must be one of: {', '.join(choices)}")
    if values["USE_SPOT"] == "true" and values["KEEP_ALIVE_SECONDS"] not in ("", "0"):
        problems.append(f"KEEP_ALIVE_SECONDS={values['KEEP_ALIVE_SECONDS']} with USE_SPOT=true: SageMaker keeps no "
                        "warm pool for spot jobs: use one or the other (KEEP_ALIVE_SECONDS=0, or USE_SPOT=false)")
    if values["TRAINING_IMAGE"] and values["DOCKERFILE"]:
        problems.append("TRAINING_IMAGE and DOCKERFILE are both set: use a prebuilt image or a Dockerfile, not both")
    if env != DEFAULT_ENV:
        missing = [key for key in AWS_REQUIRED if not values[key]]
        if missing:
            problems.append(f"{', '.join(missing)} required for ENV={env}: {FIX}")
        if values["USE_SPOT"] == "true":
            if not values["CHECKPOINT_S3_URI"].startswith("s3://"):
                problems.append("USE_SPOT=true needs CHECKPOINT_S3_URI=s3://... so an interrupted job can resume")
            wait, runtime = values["MAX_WAIT_SECONDS"], values["MAX_RUNTIME_SECONDS"]
            if wait.isdigit() and runtime.isdigit() and int(wait) < int(runtime):
                problems.append(f"USE_SPOT=true needs MAX_WAIT_SECONDS >= MAX_RUNTIME_SECONDS ({wait} < {runtime})")
        if values["SPOT_DRILL_SECONDS"] not in ("", "0"):
            problems.append("SPOT_DRILL_SECONDS interrupts local jobs only: on SageMaker, USE_SPOT=true "
                            "(with CHECKPOINT_S3_URI) gives real interruptions")
        if bool(values["SUBNETS"].split()) != bool(values["SECURITY_GROUP_IDS"].split()):
            problems.append("a VPC needs both SUBNETS and SECURITY_GROUP_IDS (or neither)")
        arn = values["SAGEMAKER_ROLE_ARN"]
        if arn and not _ROLE_ARN.match(arn):
            problems.append(
                f"SAGEMAKER_ROLE_ARN={arn!r} is not an IAM role ARN: use arn:aws:iam::<12-digit account>:role/<name>"
            )
    return problems


def main(argv: list[str]) -> int:
    config = resolve()
    if argv[:1] == ["--export"]:
        print(f"export ENV={shlex.quote(config.env)}")
        for key, value in {**config.aws, **config.values}.items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if argv:
        raise UserError(f"unknown argument {argv[0]!r}: usage: python -m sagemake.config [--export]")
    width = max(map(len, DEFAULTS))
    print(f"# ENV={config.env}")
    for key, value in config.values.items():
        print(f"{key:<{width}} = {value!r:<40} # {config.sources[key]}")
    return 0


if __name__ == "__main__":
    run(main, "config")
