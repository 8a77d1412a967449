"""The one config resolver: defaults < .env < .env.<ENV> < the shell's environment.

Every setting is one row of SETTINGS: its default, kind, checks, the targets it applies to and its doc.
Python imports `resolve()`; bash reads the same values through `--export` (scripts/lib/common.sh), so nothing
else parses .env files; .env.example and docs/settings.md are printed from the table (a test compares them).

Usage: python -m sagemake config [--export | --example | --docs]   (`make config` without them)
"""

from __future__ import annotations

import difflib
import io
import os
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from sagemake.cli import UserError


def project_root(start: Path) -> Path | None:
    """The project a command runs for: the folder (start or the nearest above it) that holds src/sagemake/, as
    make runs every target there; None when there is none. Not where the package was imported from: one
    virtualenv can serve several checkouts."""
    return next((folder for folder in (start, *start.parents) if (folder / "src" / "sagemake").is_dir()), None)


ROOT = project_root(Path.cwd().resolve())  # None outside a project: resolve() says so

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
_MLFLOW_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:(mlflow-tracking-server|mlflow-app)/[\w.-]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
# Names make's command line may carry that are neither settings nor parameters, passed on through the environment:
# make's own variables, a token prepare.sh reads, the model server's overrides (README, Serving), what the container
# engine and a local job's threads read. AWS_* (boto3, the aws CLI) are passed too. Anything else is a typo.
PASSED_ON = ("MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKEFILES", "MAKE", "MAKELEVEL", "SHELL", "VPATH",
             "GIT_HTTPS_TOKEN", "SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_MODEL_SERVER_TIMEOUT", "DOCKER_HOST",
             "CONTAINER_HOST", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TMPDIR")
_COMMAND_LINE = "make command line"
# Settings sagemake no longer reads, each with what replaced it: one still given is told that, not "unknown".
REMOVED = {"TUNE_OBJECTIVE_TYPE": "declare the direction as TUNE_OBJECTIVE=<metric>:max or :min (or in METRICS)"}


@dataclass(frozen=True)
class Setting:
    """One setting, or one make parameter, and all that is known of it."""

    name: str
    default: str
    kind: str  # str, int, number, bool, choice, path, words, instance_type; parameter: make's command line, not .env
    doc: str  # one line
    choices: tuple[str, ...] = ()
    low: int | None = None  # int's bounds
    high: int | None = None
    applies: tuple[str, ...] = ("all",)  # job kinds (KINDS) or make targets
    section: str = ""
    detail: str = ""  # the rest of what a user needs, after doc
    example: str = ""  # a value that resolves (a test sees to it)


KINDS = ("training", "tuning", "processing", "transform", "endpoint")  # the jobs a setting can shape
_TRAINING = ("training", "tuning")  # a tuning run's trials are training jobs
_JOBS = (*KINDS, "serve", "predict")
_IMAGE = ("build", "training", "tuning", "processing", "serve", "predict", "transform")
_DAYS_28 = 28 * 24 * 3600  # SageMaker's longest MaxRuntimeInSeconds and MaxWaitTimeInSeconds
_THE_PROJECT, _AWS, _DATA, _JOB = "The project", "AWS (required for any ENV but local)", "Data", "The job"
_BUILD, _LOCAL, _SERVING = "The image", "Containers and local jobs", "Serving"
_TRANSFORM, _ENDPOINTS = "Batch transform (make transform)", "Endpoints (make deploy / undeploy, ENV other than local)"
_PREPROCESS = "Preprocessing (make preprocess: a SageMaker processing job)"
_TUNING, _PARAMETERS = "Hyperparameter tuning (make tune)", "Command parameters"
_TRACKING = "Tracking (MLflow: every job a run; make ui)"
_TRACKED = (*KINDS[:4], "ui")  # the kinds written as runs, and the target that shows them
LOCAL_STORE = "sqlite:///build/mlflow/mlflow.db"  # MLFLOW_TRACKING_URI's default: a file in the project, no server
_MONITORING = "Data capture and drift (make serve / predict / transform / deploy, make drift)"

SETTINGS = (
    Setting("PROJECT_NAME", "sagemake-example", "str", "Starts every job name (<project>-<git sha>-<time>) and "
            "names the local image.", detail=f"1-{PROJECT_LIMIT} letters, digits or '-'.", section=_THE_PROJECT),
    Setting("AWS_REGION", "", "str", "Region of the training jobs; the S3 bucket must be in this region too.",
            section=_AWS),
    Setting("SAGEMAKER_ROLE_ARN", "", "str", "IAM role SageMaker assumes to run the job: "
            "arn:aws:iam::<account>:role/<name>", section=_AWS),
    Setting("S3_BUCKET", "", "str", "Bucket for the data channels and the trained models.", section=_AWS),
    Setting("ECR_REPOSITORY", "", "str", "ECR repository for the training image (created by `make build` when "
            "missing).", applies=_IMAGE, section=_AWS),
    Setting("S3_PREFIX", "", "str", "Folder in the bucket; empty: PROJECT_NAME.", section=_AWS,
            detail="Data goes to s3://S3_BUCKET/S3_PREFIX/data/<channel>/, models to "
            "s3://S3_BUCKET/S3_PREFIX/output/."),
    Setting("IMAGE_REGISTRY", "", "str", "Registry the image is pushed to and pulled from.", applies=_IMAGE,
            section=_AWS, detail="Empty: the account's ECR registry, <account>.dkr.ecr.<AWS_REGION>.amazonaws.com "
            "(repository created, login done). Another registry: log in to it yourself; no ECR call is made."),
    Setting("DATA_DIR", "data", "path", "Folder holding one subfolder per channel.",
            applies=("data", "upload", *_TRAINING, "processing"), section=_DATA,
            detail="`make train` uses it as it is; only when it is absent or holds nothing (hidden files aside) does "
            "it run the trainer's data step first (src/trainer/data.py, which writes the example's train/ and "
            "validation/). A channel missing or empty among yours is refused, never filled."),
    Setting("CHANNELS", "", "words", "Channels given to the job, each from DATA_DIR/<channel>/; each must hold "
            "files.", applies=("upload", *_TRAINING, "processing"), section=_DATA,
            detail="Empty: every folder in DATA_DIR.", example="training"),
    Setting("HP", "", "words", "Hyperparameters as key=value words.", applies=_TRAINING, section=_JOB,
            detail="With sagemake's image they are checked against src/trainer/hyperparameters.py before the job "
            "starts; with your own image they are passed as they are. A list: HP='features=bmi,bp' (or JSON; "
            "one value is a list of one). An Optional set back to None: HP='clip=None' (or 'clip='). A key given "
            "twice is refused. At most 100, names up to 256 and values up to 2,500 characters, no sagemaker_* names.",
            example="n_estimators=200 learning_rate=0.05"),
    Setting("JOB_ENV", "", "words", "Environment variables for the training container, as key=value words.",
            applies=(*_TRAINING, "processing"), section=_JOB),
    Setting("INSTANCE_TYPE", "ml.m5.large", "instance_type", "Instance type of the job: ml.<family>.<size>.",
            applies=KINDS, section=_JOB, detail="Also the instance type of transforms, endpoints and processing "
            "jobs unless TRANSFORM_, ENDPOINT_ or PROCESSING_INSTANCE_TYPE says otherwise."),
    Setting("INSTANCE_COUNT", "1", "int", "Number of instances of the job.", low=1, high=100, applies=_TRAINING,
            section=_JOB, detail="Local jobs run as many hosts (README: Several hosts)."),
    Setting("VOLUME_SIZE_GB", "30", "int", "Disk size (GB) of each instance of the job.", low=1, high=16384,
            applies=(*_TRAINING, "processing"), section=_JOB),
    Setting("MAX_RUNTIME_SECONDS", "3600", "int", "The job is stopped after this many seconds (SageMaker's "
            "MaxRuntimeInSeconds).", low=1, high=_DAYS_28, applies=(*_TRAINING, "processing"), section=_JOB),
    Setting("INPUT_MODES", "", "words", "Input mode per channel, as channel=mode words (File or FastFile); "
            "channels not named use File.", applies=_TRAINING, section=_JOB,
            detail="Pipe is refused: it has no local twin.", example="train=FastFile"),
    Setting("DATA_DISTRIBUTION", "", "words", "With INSTANCE_COUNT > 1, how each channel reaches the hosts, as "
            "channel=type words.", applies=_TRAINING, section=_JOB,
            detail="FullyReplicated (the default: every file on every host) or ShardedByS3Key (each host its own "
            "share of the files).", example="train=ShardedByS3Key"),
    Setting("USE_SPOT", "false", "bool", "Managed spot training: true or false.", choices=("true", "false"),
            applies=_TRAINING, section=_JOB, detail="true needs MAX_WAIT_SECONDS >= MAX_RUNTIME_SECONDS and "
            "CHECKPOINT_S3_URI; not with KEEP_ALIVE_SECONDS."),
    Setting("ALLOW_DUPLICATE", "false", "bool", "true: submit a job on SageMaker even when one of this project "
            "with the same request is InProgress (refused by default).", choices=("true", "false"),
            applies=("training", "tuning", "processing"), section=_JOB,
            detail="The request's digest (all but its name, with its data) is a tag of every job sagemake submits; "
            "a re-run after a killed command would otherwise start a second paid job."),
    Setting("MAX_WAIT_SECONDS", "0", "int", "With USE_SPOT=true: seconds to wait for capacity and run, at least "
            "MAX_RUNTIME_SECONDS.", low=0, high=_DAYS_28, applies=_TRAINING, section=_JOB),
    Setting("CHECKPOINT_S3_URI", "", "str", "The S3 folder a job on SageMaker saves /opt/ml/checkpoints to, used "
            "as given: a job starts from what it holds; needed with USE_SPOT=true.", applies=_TRAINING,
            section=_JOB, detail="A spot job SageMaker starts again after an interruption resumes from it, and so "
            "does a new job given the same folder: a new folder starts afresh. A tuning run's trials keep theirs "
            "in CHECKPOINT_S3_URI/<tuning run>/. Locally every job keeps its checkpoints in "
            "JOBS_DIR/checkpoints/<job>/, which `make clean-jobs` keeps.",
            example="s3://my-bucket/checkpoints/churn-v2/"),
    Setting("CHECKPOINT_FROM", "", "str", "A job (its name) whose checkpoints this job starts from: copied into "
            "its /opt/ml/checkpoints before it starts.", applies=("training",), section=_JOB,
            detail="The job must have ended (Completed, Stopped or Failed) and kept checkpoints. On SageMaker they "
            "are copied within S3 into CHECKPOINT_S3_URI, which must be empty or be that job's own folder (then "
            "nothing is copied). Recorded as the job's tag checkpoint-from and in the model's manifest. Not with "
            "make tune.", example="sagemake-example-1a2b3c4-261122-101500-123k3x9q"),
    Setting("SPOT_DRILL_SECONDS", "0", "int", "Local jobs only: interrupt the job this many seconds in, as a spot "
            "interruption does, then start it again on its checkpoints; 0: no drill.", low=0, high=_DAYS_28,
            applies=_TRAINING, section=_JOB, detail="The interruption is SIGTERM, the grace, SIGKILL."),
    Setting("KEEP_ALIVE_SECONDS", "0", "int", "A warm pool: SageMaker keeps the job's instances this many seconds "
            "after it ends (at most 3600; 0: none).", low=0, high=3600, applies=_TRAINING, section=_JOB,
            detail="The next job that matches them (same instance type and count, volume, role, VPC) starts on "
            "them at once. The kept time is billed. Not with USE_SPOT=true. Local jobs have nothing to keep."),
    Setting("SUBNETS", "", "words", "Run the job in your VPC: subnet IDs, as words (SECURITY_GROUP_IDS too: both "
            "or neither).", applies=_TRAINING, section=_JOB),
    Setting("SECURITY_GROUP_IDS", "", "words", "Run the job in your VPC: security group IDs, as words (SUBNETS "
            "too: both or neither).", applies=_TRAINING, section=_JOB),
    Setting("POLL_SECONDS", "10", "int", "Seconds between status checks while a SageMaker job is followed.", low=1,
            high=600, applies=KINDS, section=_JOB),
    Setting("METRICS", "", "words", "The metrics the job prints as name=value lines, as words; name:max or "
            "name:min declares which way is better (tuning needs it for its objective).",
            applies=_TRAINING, section=_JOB, example="rmse:min mae:min r2:max",
            detail="Empty: those of src/trainer/metrics.py with sagemake's image. Set it for your own image. A name "
            "matches only standing alone (rmse is not train_rmse). The direction is never guessed from a name."),
    Setting("PRIMARY_METRIC", "", "str", "The metric `make jobs` shows; empty: the first declared metric.",
            applies=(*_TRAINING, "jobs"), section=_JOB, detail="`make jobs` reads each job's metrics from its own "
            "record: a job that declared none of this name shows the first it declared."),
    Setting("DOCKERFILE", "", "path", "Your own Dockerfile (relative to this folder).", applies=_IMAGE,
            section=_BUILD, detail="Empty: docker/Dockerfile (docker/Dockerfile.script with CODE_MODE=script). The "
            "image tag is a hash of the build context as the engine receives it (.dockerignore applies), the "
            "Dockerfile and the build flags that change the result. Not with TRAINING_IMAGE."),
    Setting("BUILD_CONTEXT", ".", "path", "The build context of the Dockerfile (relative to this folder).",
            applies=_IMAGE, section=_BUILD),
    Setting("TRAINING_IMAGE", "", "str", "A prebuilt image used as it is, nothing built.", applies=_IMAGE,
            section=_BUILD, detail="For AWS it must be in ECR (or IMAGE_REGISTRY) already.",
            example="123456789012.dkr.ecr.eu-west-1.amazonaws.com/train:1.4"),
    Setting("CONTAINER_ENTRYPOINT", "", "words", "What the container runs (AlgorithmSpecification."
            "ContainerEntrypoint), as words; empty: the image's own, started with `train`.", applies=_TRAINING,
            section=_BUILD),
    Setting("CONTAINER_ARGUMENTS", "", "words", "The entrypoint's arguments (AlgorithmSpecification."
            "ContainerArguments), as words; empty: the image's own, started with `train`.", applies=_TRAINING,
            section=_BUILD),
    Setting("CODE_MODE", "image", "choice", "How the code reaches the job: image or script.",
            choices=("image", "script"), applies=("build", *_TRAINING), section=_BUILD,
            detail="image (bring your own: docker/Dockerfile copies it into the image, `train` runs it) or script "
            "(docker/Dockerfile.script holds SageMaker's training toolkit, and the code travels beside it as "
            "sourcedir.tar.gz, so a code-only change needs no new image)."),
    Setting("PRIVATE_DEPS", "", "words", "Private Python dependencies: git URLs pinned to a tag or a full "
            "40-character commit hash, as URL@REF words.", applies=("prepare", "build"), section=_BUILD,
            detail="Built into wheels outside the image by scripts/prepare.sh. SSH uses your agent or keys; for "
            "HTTPS set GIT_HTTPS_TOKEN in the environment (never in this file, nor in the URL).",
            example="git@github.com:acme/features.git@v1.4.0"),
    Setting("CONTAINER_ENGINE", "docker", "choice", "Container engine for building and running the image: docker "
            "or podman.", choices=("docker", "podman"), applies=_IMAGE, section=_LOCAL),
    Setting("CONTAINER_BUILD_FLAGS", "", "words", "Extra words for the engine's `build`, e.g. --network host.",
            applies=("build",), section=_LOCAL),
    Setting("CONTAINER_RUN_FLAGS", "", "words", "Extra words for the engine's `run`, e.g. --network host.",
            applies=_JOBS, section=_LOCAL),
    Setting("LOCAL_RUNTIME", "auto", "choice", "How local jobs run: auto, container or process.",
            choices=("auto", "container", "process"), applies=_JOBS, section=_LOCAL,
            detail="auto: the image when the engine has it, else a local process under the same contract; "
            "container: the image, or an error; process: a local process."),
    Setting("STOP_GRACE_SECONDS", "120", "int", "Seconds between SIGTERM and SIGKILL when a local job is stopped "
            "(SageMaker: 120).", low=0, high=3600, applies=(*_TRAINING, "processing"), section=_LOCAL),
    Setting("JOBS_DIR", "jobs", "path", "Where local jobs keep their folders (record, log, /opt/ml tree, "
            "artefacts).", applies=(*KINDS, "jobs", "logs", "stop", "clean-jobs"), section=_LOCAL),
    Setting("MODELS_DIR", "models", "path", "Where fetched models go: MODELS_DIR/<job name>/ with manifest.json.",
            applies=("fetch", "serve", "predict", "transform", "endpoint", "drift", "baseline"), section=_LOCAL),
    Setting("MAX_MODEL_BYTES", "0", "int", "Most bytes a fetched model.tar.gz (or output.tar.gz) may unpack to; "
            "0: 100 times the archive, at least 1 GB.", low=0, high=2**62, applies=("fetch",), section=_LOCAL,
            detail="An archive past it (a decompression bomb, or a model far larger than expected) is refused before "
            "it fills the disk, and nothing is fetched."),
    Setting("SERVE_PORT", "8080", "int", "Port of `make serve` on this machine (SageMaker's own is 8080); `make "
            "predict` takes a free port of its own.", low=1, high=65535, applies=("serve",), section=_SERVING),
    Setting("TRANSFORM_BATCH_STRATEGY", "MultiRecord", "choice", "How records reach the model: MultiRecord or "
            "SingleRecord.", choices=("MultiRecord", "SingleRecord"), applies=("transform",), section=_TRANSFORM,
            detail="MultiRecord: as many lines as fit in TRANSFORM_MAX_PAYLOAD_MB a request; SingleRecord: one "
            "line a request."),
    Setting("TRANSFORM_MAX_PAYLOAD_MB", "6", "int", "MaxPayloadInMB: the largest request, 1-100 (the server "
            "refuses more).", low=1, high=100, applies=("transform",), section=_TRANSFORM),
    Setting("TRANSFORM_MAX_CONCURRENT", "1", "int", "MaxConcurrentTransforms: requests in flight at once.", low=1,
            high=64, applies=("transform",), section=_TRANSFORM),
    Setting("TRANSFORM_INSTANCE_TYPE", "", "instance_type", "Instance type of a transform on SageMaker (empty: "
            "INSTANCE_TYPE).", applies=("transform",), section=_TRANSFORM),
    Setting("ENDPOINT_NAME", "", "str", "The endpoint's name, 1-63 letters, digits or '-' (empty: PROJECT_NAME).",
            applies=("endpoint",), section=_ENDPOINTS, detail="One that exists and is not sagemake's is refused."),
    Setting("ENDPOINT_INSTANCE_TYPE", "", "instance_type", "Instance type behind the endpoint (empty: "
            "INSTANCE_TYPE).", applies=("endpoint",), section=_ENDPOINTS),
    Setting("ENDPOINT_INSTANCE_COUNT", "1", "int", "Number of instances behind the endpoint.", low=1, high=100,
            applies=("endpoint",), section=_ENDPOINTS),
    Setting("ENDPOINT_MAX_INSTANCES", "0", "int", "Autoscaling: the most instances behind the endpoint (0, or "
            "ENDPOINT_INSTANCE_COUNT: no autoscaling).", low=0, high=100, applies=("endpoint",), section=_ENDPOINTS,
            detail="Above ENDPOINT_INSTANCE_COUNT, `make deploy` registers the endpoint with Application Auto "
            "Scaling, from ENDPOINT_INSTANCE_COUNT up to this many instances, with a target-tracking policy on "
            "ENDPOINT_TARGET_INVOCATIONS; the price per hour at this many is said first, and more than the "
            "account's quota for the instance type is refused. A deploy without it removes an earlier "
            "registration. Local serving does not scale."),
    Setting("ENDPOINT_TARGET_INVOCATIONS", "70", "number", "Autoscaling: the invocations per instance per minute "
            "that the endpoint scales to keep (SageMakerVariantInvocationsPerInstance).", applies=("endpoint",),
            section=_ENDPOINTS, detail="Measure what one instance of your model serves well under load, and set "
            "it below that."),
    Setting("RAW_DIR", "raw", "path", "Folder of raw data, the processing job's input "
            "(/opt/ml/processing/input/raw).", applies=("processing",), section=_PREPROCESS,
            detail="When it is missing or empty, the example's raw data step (src/trainer/raw.py) writes it. The "
            "job's outputs become DATA_DIR/train/ and DATA_DIR/validation/."),
    Setting("PREPROCESS_ARGS", "", "words", "Arguments for src/trainer/preprocess.py, as words (its "
            "ContainerArguments).", applies=("processing",), section=_PREPROCESS,
            example="--validation-share 0.25 --seed 7"),
    Setting("PROCESSING_INSTANCE_TYPE", "", "instance_type", "Instance type of the processing job on SageMaker "
            "(empty: INSTANCE_TYPE).", applies=("processing",), section=_PREPROCESS),
    Setting("TUNE_RANGES", "", "words", "The ranges searched, as name=range words, checked against the trainer's "
            "schema.", applies=("tuning",), section=_TUNING,
            detail="low:high (Integer when the field is an int, else Continuous; an Optional field counts as its "
            "type), low:high:log (Logarithmic scaling, low > 0), or a|b|c (Categorical). The other hyperparameters "
            "come from HP.",
            example="learning_rate=0.01:0.3:log max_depth=2:8 subsample=0.5:1"),
    Setting("TUNE_OBJECTIVE", "", "str", "The metric optimised: a declared metric (empty: PRIMARY_METRIC), "
            "maximized or minimized as declared (name:max or name:min).", applies=("tuning",), section=_TUNING,
            detail="Its direction comes from METRICS (or src/trainer/metrics.py), or is given here (nll:min); an "
            "objective with none is refused before anything runs.", example="validation:nll:min"),
    Setting("TUNE_MAX_JOBS", "10", "int", "How many trials in all (SageMaker's MaxNumberOfTrainingJobs).", low=1,
            high=500, applies=("tuning",), section=_TUNING),
    Setting("TUNE_PARALLEL", "1", "int", "How many trials at once (MaxParallelTrainingJobs), at most "
            "TUNE_MAX_JOBS.", low=1, high=100, applies=("tuning",), section=_TUNING),
    Setting("TUNE_STRATEGY", "Bayesian", "choice", "Bayesian (locally: optuna's TPE sampler) or Random.",
            choices=("Bayesian", "Random"), applies=("tuning",), section=_TUNING),
    Setting("TUNE_SEED", "0", "int", "Seeds the local search.", low=0, high=2**32 - 1, applies=("tuning",),
            section=_TUNING),
    Setting("TUNE_EARLY_STOPPING", "Off", "choice", "Auto stops a trial whose objective, as it trains, is worse than "
            "the median of the earlier trials at the same step; Off: every trial ends.", choices=("Off", "Auto"),
            applies=("tuning",), section=_TUNING, detail="SageMaker's TrainingJobEarlyStoppingType; locally "
            "optuna's median pruner on the objective lines the trial prints."),
    Setting("TRACKING", "true", "bool", "Write every job (training, tuning trials under their tuning run, "
            "processing, transform) as an MLflow run: true or false.", choices=("true", "false"), applies=_TRACKED,
            section=_TRACKING, detail="Written on this machine from what the job left (its record, its log's "
            "name=value lines, its manifest and plots), whatever its image. A store that cannot be reached is said "
            "in one line; the job itself runs all the same."),
    Setting("MLFLOW_TRACKING_URI", LOCAL_STORE, "str", "Where runs go: a SQLite file in the project (the "
            "default; no server), a team's tracking server (http(s)://...), or SageMaker's managed MLflow by its "
            "ARN.", applies=_TRACKED, section=_TRACKING,
            detail="A relative sqlite:/// path is from this folder, and its artefacts go beside it (artifacts/). An "
            "ARN (arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name> or .../mlflow-app/<id>) is "
            "reached through AWS's sagemaker-mlflow plugin, signed with your AWS credentials, and a training job on "
            "SageMaker names it in its MlflowConfig. MLflow's file store (./mlruns) is not taken.",
            example="https://mlflow.example.com"),
    Setting("MLFLOW_EXPERIMENT", "", "str", "The MLflow experiment runs go to; empty: PROJECT_NAME.",
            applies=_TRACKED, section=_TRACKING),
    Setting("CAPTURE_PERCENT", "100", "int", "The share of requests (and their answers) captured, in percent; 0: "
            "no capture.", low=0, high=100, applies=("serve", "predict", "transform", "endpoint"),
            section=_MONITORING, detail="In SageMaker's data capture format: locally in MODELS_DIR/<job>/capture/, "
            "on an endpoint (its DataCaptureConfig) in s3://S3_BUCKET/S3_PREFIX/capture/<endpoint>/AllTraffic/. "
            "`make drift` compares them with the training data.", example="20"),
    Setting("DRIFT_THRESHOLD", "50", "int", "`make drift` exits 4 when at least this percent of the features drift.",
            low=1, high=100, applies=("drift",), section=_MONITORING),
    # Not settings: what make's command line passes to one command (the Makefile exports them).
    Setting("ENV", "local", "parameter", "Where jobs run: local (no AWS needed), prod, or any name with a "
            ".env.<name> file; any but local runs on SageMaker.", section=_PARAMETERS),
    Setting("JOB", "", "parameter", "A job name; empty: the latest job (stop needs one).",
            applies=("fetch", "logs", "stop", "serve", "predict", "transform", "deploy", "drift", "baseline"),
            section=_PARAMETERS),
    Setting("JOBS", "", "parameter", "Two or more job names, as words: the jobs `make compare` sets side by side.",
            applies=("compare",), section=_PARAMETERS),
    Setting("KEEP", "5", "parameter", "How many of the newest local job and processing job folders to keep "
            "(and any running one).", applies=("clean-jobs",), section=_PARAMETERS),
    Setting("CHECKPOINTS", "keep", "parameter", "keep: the checkpoints of removed jobs stay in "
            "JOBS_DIR/checkpoints/ for CHECKPOINT_FROM; delete: they go with their jobs.", applies=("clean-jobs",),
            section=_PARAMETERS),
    Setting("TUNING", "", "parameter", "A tuning run's name; empty: the latest.", applies=("tune-jobs",),
            section=_PARAMETERS),
    Setting("FILE", "", "parameter", "Rows to predict, .csv or .json as /invocations takes them (`make drift`: "
            "rows to compare with the training data instead of the captured ones).", applies=("predict", "drift"),
            section=_PARAMETERS),
    Setting("SINCE", "", "parameter", "`make drift` takes the requests captured in this span before now: 30m, "
            "12h, 1d; empty: all.", applies=("drift",), section=_PARAMETERS),
    Setting("INPUT", "", "parameter", "A folder of files to transform, one row a line; each gets <file>.out.",
            applies=("transform",), section=_PARAMETERS),
    Setting("VENV", ".venv", "parameter", "The virtualenv `make setup` makes and every target runs in.",
            section=_PARAMETERS),
    Setting("PYTHON", "python3", "parameter", "The Python `make setup` makes VENV with.", applies=("setup",),
            section=_PARAMETERS),
    Setting("DEBUG", "", "parameter", "1 traces what each step does (credentials masked); 2 adds botocore's debug "
            "log; empty or 0: off.", section=_PARAMETERS),
)
_ROWS = {row.name: row for row in SETTINGS}
DEFAULTS = {row.name: row.default for row in SETTINGS if row.kind != "parameter"}


@dataclass(frozen=True)
class Config:
    env: str
    root: Path
    values: dict  # strings, as bash reads them through --export; typed() and the methods below type them
    sources: dict
    aws: dict  # AWS_* variables from the files (AWS_PROFILE, ...), for boto3 and the aws CLI

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def typed(self, key: str):
        """The value as its row's kind says: int, float, bool, Path (from the root), a list of words, or str."""
        text, kind = self.values[key], _ROWS[key].kind
        kinds = {"int": int, "number": float, "bool": "true".__eq__, "path": self.root.joinpath, "words": str.split}
        return kinds.get(kind, str)(text)

    def int(self, key: str) -> int:
        return self._typed(key, "int")

    def number(self, key: str) -> float:
        return self._typed(key, "number")

    def flag(self, key: str) -> bool:
        return self._typed(key, "bool")

    def path(self, key: str) -> Path:
        return self._typed(key, "path")

    def words(self, key: str) -> list[str]:
        return self._typed(key, "words")

    def _typed(self, key: str, kind: str):
        if _ROWS[key].kind != kind:  # a caller's mistake, not a user's: the table says what each setting is
            raise TypeError(f"{key} is a {_ROWS[key].kind} setting, not {kind}")
        return self.typed(key)

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


def resolve(env: str | None = None, root: Path | None = None, environ=None) -> Config:
    """Resolve every setting for ENV (of the project at root, default the one the command runs in); all problems
    are reported in one UserError."""
    root = root or ROOT
    if root is None:
        raise UserError(f"no sagemake project in {Path.cwd()} or above it (no src/sagemake/): run the command in "
                        "your checkout (cd into it), or make there")
    environ = os.environ if environ is None else environ
    env = env or environ.get("ENV") or DEFAULT_ENV
    problems: list[str] = []
    values = dict(DEFAULTS)
    sources = {key: "default" for key in DEFAULTS}

    aws: dict[str, str] = {}
    unknown: list[tuple[str, str, str]] = []  # (where, name, value): told once HP is known, for its hint
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
                unknown.append((layer.name, key, value))
    for key in DEFAULTS:
        if key in environ:
            values[key], sources[key] = environ[key], "environment"
    for key, value in command_line(environ.get("MAKEFLAGS", "")):
        if key not in _ROWS and key not in PASSED_ON and not key.startswith("AWS_"):
            unknown.append((_COMMAND_LINE, key, value))

    problems += _unknown(unknown, values["HP"]) + _check(env, values)
    if problems:
        raise UserError(f"{len(problems)} config problem(s): " + "; ".join(problems))
    aws = {key: value for key, value in aws.items() if key not in environ}  # the shell's own win
    if environ is os.environ:
        os.environ.update(aws)
    return Config(env=env, root=root, values=values, sources=sources, aws=aws)


def command_line(makeflags: str) -> list[tuple[str, str]]:
    """The variables given on make's command line, in their order. GNU make 4 puts them in MAKEFLAGS after a `--`
    word, the last given first, a space or backslash in them escaped with a backslash and `$` doubled:
    `s --no-print-directory -- max_depth=4 HP=n_estimators=300\\ subsample=0.5`."""
    words, word, escaped = [], "", False
    for char in makeflags + " ":
        if escaped or char not in " \\":
            word, escaped = word + char, False
        elif char == "\\":
            escaped = True
        elif word:
            words, word = [*words, word], ""
    given = words[words.index("--") + 1:] if "--" in words else []
    pairs = [assignment.partition("=") for assignment in reversed(given)]
    return [(name.rstrip(":+?!"), value.replace("$$", "$")) for name, _, value in pairs]  # X:=1, X+=1, X?=1


def _unknown(unknown: list[tuple[str, str, str]], hp: str) -> list[str]:
    """One line for each unknown name, with the name meant when there is one; lower-case words are
    hyperparameters that lost their quotes (make HP=a=1 b=2), so they get HP's hint together."""
    problems, stray = [], {}
    for where, key, value in unknown:
        near = _near(key) if key == key.upper() else None
        if key in REMOVED:
            problems.append(f"{where}: {key} was removed: {REMOVED[key]}")
        elif key in _ROWS:
            problems.append(f"{where}: {key} is a command parameter, not a setting: pass it as make ... {key}=...")
        elif key.upper() in _ROWS or near:
            problems.append(f"{where}: unknown setting {key}: did you mean {near or key.upper()}?")
        elif key != key.upper():
            stray.setdefault(where, []).append((key, value))
        else:
            problems.append(f"{where}: unknown setting {key}: see .env.example or docs/settings.md for the names")
    for where, pairs in stray.items():
        words = " ".join([hp, *(f"{key}={value}" for key, value in pairs)]).strip()
        quoted = f"'{words}'" if "'" not in words else shlex.quote(words)
        problems.append(f"{where}: unknown setting {', '.join(key for key, _ in pairs)}: did you mean HP={quoted}?")
    return problems


def _near(key: str) -> str | None:
    """The name meant, when one is close (difflib's ratio, as get_close_matches); one the key begins counts a little
    closer, as a name cut short is a common slip: MAX_RUNTIME is MAX_RUNTIME_SECONDS, not LOCAL_RUNTIME."""
    score = {name: difflib.SequenceMatcher(None, key, name).ratio() + 0.1 * name.startswith(key) for name in _ROWS}
    best = max(score, key=score.get)
    return best if score[best] >= 0.6 else None


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
    for row in SETTINGS:
        key, text = row.name, values.get(row.name, "")
        if row.kind == "instance_type" and (text or row.default) and not _INSTANCE_TYPE.match(text):
            problems.append(f"{key}={text!r} is not a SageMaker instance type: use "
                            "ml.<family>.<size>, e.g. ml.m5.large")
        elif row.kind == "int" and not (text.isdigit() and row.low <= int(text) <= row.high):
            problems.append(f"{key}={text!r} must be a whole number from {row.low} to {row.high}")
        elif row.kind == "number" and not _positive(text):
            problems.append(f"{key}={text!r} must be a number above 0, e.g. {row.default}")
        elif row.choices and text not in row.choices:
            problems.append(f"{key}={text!r} must be one of: {', '.join(row.choices)}")
    most, count = values["ENDPOINT_MAX_INSTANCES"], values["ENDPOINT_INSTANCE_COUNT"]
    if most.isdigit() and count.isdigit() and 0 < int(most) < int(count):
        problems.append(f"ENDPOINT_MAX_INSTANCES={most} is below ENDPOINT_INSTANCE_COUNT={count}: set it to "
                        f"{count} or more to scale, or to 0 for no autoscaling")
    if values["ENDPOINT_NAME"] and not _ENDPOINT.match(values["ENDPOINT_NAME"]):
        problems.append(f"ENDPOINT_NAME={values['ENDPOINT_NAME']!r} is not a SageMaker endpoint name: use 1-63 "
                        "letters, digits or '-'")
    for dep in values["PRIVATE_DEPS"].split():
        if _URL_CREDENTIAL.match(dep):
            problems.append(f"PRIVATE_DEPS: {_URL_CREDENTIAL.sub('', dep).split('@')[0]} is written with a user or "
                            "token in its URL, which would reach files and logs: remove it and set GIT_HTTPS_TOKEN "
                            "in the environment instead")
    if values["USE_SPOT"] == "true" and values["KEEP_ALIVE_SECONDS"] not in ("", "0"):
        problems.append(f"KEEP_ALIVE_SECONDS={values['KEEP_ALIVE_SECONDS']} with USE_SPOT=true: SageMaker keeps no "
                        "warm pool for spot jobs: use one or the other (KEEP_ALIVE_SECONDS=0, or USE_SPOT=false)")
    if values["TRACKING"] == "true":  # a store that is not used is no problem
        problems += _tracking_problems(values["MLFLOW_TRACKING_URI"])
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


def _tracking_problems(uri: str) -> list[str]:
    """A store MLflow can write to: an ARN must name a managed MLflow (a tracking server or an MLflow App), and
    MLflow's file store, which it no longer takes, is refused for a SQLite file."""
    if uri.startswith("arn:"):
        if not _MLFLOW_ARN.match(uri):
            return [f"MLFLOW_TRACKING_URI={uri!r} is neither a SageMaker MLflow tracking server nor an MLflow App: use "
                    "arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name> or .../mlflow-app/<id>"]
    elif not re.match(r"^[a-z][a-z0-9+.-]*:", uri) or uri.startswith("file:"):
        return [f"MLFLOW_TRACKING_URI={uri!r} is a folder, MLflow's file store, which it no longer takes: use a "
                f"SQLite file ({LOCAL_STORE}) or a server's URL"]
    return []


def _positive(text: str) -> bool:
    """A finite decimal number above 0 (no inf, nan or exponent games: what a person writes)."""
    return re.fullmatch(r"\d+(\.\d+)?|\.\d+", text) is not None and float(text) > 0


def _sections(parameters: bool) -> dict[str, list[Setting]]:
    sections: dict[str, list[Setting]] = {}
    for row in SETTINGS:
        if (row.kind == "parameter") == parameters:
            sections.setdefault(row.section, []).append(row)
    return sections


def _assignment(name: str, value: str) -> str:
    return f"{name}='{value}'" if re.search(r"[\s'\"#$]", value) else f"{name}={value}"


def example() -> str:
    """.env.example, from the table."""
    lines = [
        "# sagemake settings. Copy to .env and edit; .env stays out of git.",
        "# Resolution: these defaults < .env < .env.<ENV> < the shell's environment",
        "# (make VAR=value counts as environment). `make config` shows what is in force.",
        "# Nothing secret belongs here: AWS credentials come from the standard chain",
        "# (profile, SSO, environment variables, an assumed role).",
        "# Printed from the table in src/sagemake/config.py (python -m sagemake config",
        "# --example): change it there. docs/settings.md says the same, with each type.",
    ]
    for section, rows in _sections(parameters=False).items():
        lines += ["", f"# --- {section} ".ljust(80, "-")]
        for row in rows:
            text = " ".join(filter(None, [row.doc, row.detail]))
            lines += textwrap.wrap(text, 80, initial_indent="# ", subsequent_indent="# ", break_long_words=False,
                                   break_on_hyphens=False)
            if row.example:
                lines.append(f"# Example: {_assignment(row.name, row.example)}")
            lines.append(_assignment(row.name, row.default))
    return "\n".join(lines) + "\n"


def _kind(row: Setting) -> str:
    if row.kind == "int":
        return f"whole number, {row.low}-{row.high}"
    if row.kind == "number":
        return "number above 0"
    if row.choices:
        return " or ".join(f"`{choice}`" if choice else "empty" for choice in row.choices)
    return {"str": "text", "instance_type": "instance type, `ml.<family>.<size>`"}.get(row.kind, row.kind)


def docs() -> str:
    """docs/settings.md, from the table."""
    def cell(text: str) -> str:  # a | ends a cell; <name> would be taken for HTML
        return text.replace("|", "\\|").replace("<", "&lt;")

    def table(rows: list[Setting], parameters: bool) -> list[str]:
        head = ["| name | default | type | applies to | meaning |", "|---|---|---|---|---|"]
        if parameters:
            head = ["| name | default | applies to | meaning |", "|---|---|---|---|"]
        lines = []
        for row in rows:
            meaning = " ".join(filter(None, [row.doc, row.detail]))
            if row.example:
                meaning += f" Example: `{_assignment(row.name, row.example)}`."
            cells = [f"`{row.name}`", f"`{row.default}`" if row.default else "", *([] if parameters else
                     [_kind(row)]), ", ".join(row.applies), meaning]
            lines.append("| " + " | ".join(cell(text) for text in cells) + " |")
        return head + lines

    lines = [
        "# Settings",
        "",
        "Printed by `python -m sagemake config --docs` from the table in `src/sagemake/config.py`, as `.env.example`",
        "is (`--example`); a test compares both files with the table, so change the table and print them again.",
        "",
        "Values resolve in this order, later winning: the defaults, `.env`, `.env.<ENV>`, then the environment;",
        "a setting given on the make command line (`make train INSTANCE_TYPE=ml.m5.xlarge`) counts as environment.",
        "`make config` shows each value and where it came from.",
        "A value out of its type or range stops every target with one line that lists every problem (exit 2).",
        "",
        "A name that is neither a setting nor a command parameter is refused, in a settings file or on the make",
        "command line, with the name meant when one is close (`INSTANCE_TYPES`: did you mean `INSTANCE_TYPE`?).",
        "A lower-case word on the command line is a hyperparameter that lost its quotes:",
        "an unquoted HP (make plan HP=n_estimators=300 max_depth=4, where make takes max_depth=4 for a setting",
        "of its own) is told `did you mean HP='n_estimators=300 max_depth=4'?`.",
        *textwrap.wrap("The command line also passes on `AWS_*` (for boto3 and the aws CLI) and "
                       + ", ".join(f"`{name}`" for name in PASSED_ON) + ".", 110),
        "",
        "\"Applies to\" names job kinds (" + ", ".join(KINDS) + ") and make targets; `all` is every target.",
    ]
    for section, rows in _sections(parameters=False).items():
        lines += ["", f"## {section}", "", *table(rows, parameters=False)]
    for section, rows in _sections(parameters=True).items():
        lines += ["", f"## {section}", "", "Given on make's command line for one command (`make fetch JOB=<job>`), "
                  "never in `.env`.", "", *table(rows, parameters=True)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv in (["--example"], ["--docs"]):  # the table alone: no .env is read
        print(example() if argv == ["--example"] else docs(), end="")
        return 0
    config = resolve()
    if argv[:1] == ["--export"]:
        print(f"export ENV={shlex.quote(config.env)}")
        for key, value in {**config.aws, **config.values}.items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if argv:
        raise UserError(f"unknown argument {argv[0]!r}: usage: python -m sagemake config "
                        "[--export | --example | --docs]")
    width = max(map(len, DEFAULTS))
    print(f"# ENV={config.env}")
    for key, value in config.values.items():
        print(f"{key:<{width}} = {value!r:<40} # {config.sources[key]}")
    return 0

