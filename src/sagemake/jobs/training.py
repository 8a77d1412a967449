"""The one CreateTrainingJob request, built from config; every executor takes it as it is.

Where things live (the image, the channels, the output, the code) is the
executor's answer: nothing here knows where a job runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import secrets
import shlex
import string
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from sagemake import data, jsonfile, sourcedir
from sagemake.cli import UserError
from sagemake.config import Config
from sagemake.contract import layout
from sagemake.data import channels

TAG_PREFIX = "sagemake:"
CHECKPOINT_FROM_TAG = "checkpoint-from"  # the job whose checkpoints a job started from (CHECKPOINT_FROM)
SAGEMAKE_IMAGE_TAG = "sagemake-image"  # "true" when the job ran sagemake's own image: what may serve its model
NO_GIT = "nogit"
METRIC_VALUE = r"([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|nan|[-+]?inf)"
# A metric's name stands alone: `rmse` does not match `val_rmse=`, `train:rmse=` or `rmse.std=`.
METRIC_START = r"(?:^|[^\w:./-])"
ENVIRONMENT = re.compile(r"[A-Z][A-Z0-9_]*")  # SM_NUM_CPUS=2 and the like: the toolkit prints its environment
METRIC_LINE = re.compile(r"^\s*([A-Za-z_][\w:./-]*)=" + METRIC_VALUE + r"\s*$")
# SageMaker's limits on CreateTrainingJob's HyperParameters.
MAX_HYPERPARAMETERS, MAX_KEY, MAX_VALUE = 100, 256, 2500
RESERVED_PREFIX = "sagemaker_"
JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # SageMaker's pattern for training job names
HYPERPARAMETER_CACHE = "build/hyperparameters.json"
TRAINER = "trainer"  # the package in src/ that sagemake's image runs: the part a user replaces
INPUT_MODES = ("File", "FastFile")  # Pipe streams from S3: no local twin, so it is refused before paying
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")  # S3DataDistributionType: every file on every host, or a share
DIRECTIONS = {"max": "Maximize", "min": "Minimize"}  # a metric's direction: name:max or name:min


def experiment_name(config: Config) -> str:
    """The MLflow experiment a job's run goes to (and its MlflowConfig names): MLFLOW_EXPERIMENT, or the project."""
    return config["MLFLOW_EXPERIMENT"] or config["PROJECT_NAME"]


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


def job_name(project: str, sha: str, now: datetime | None = None, tail: str | None = None) -> str:
    """<project>-<git sha>-<UTC yymmdd-HHMMSS-milliseconds><5 random characters>: sortable by time, unique
    even when many start in the same millisecond on many machines, at most 63 characters (PROJECT_NAME <= 32)."""
    now = now or datetime.now(timezone.utc)
    tail = tail or "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    return f"{project}-{sha}-{now:%y%m%d-%H%M%S}-{now.microsecond // 1000:03d}{tail}"


def tuning_name(project: str, now: datetime | None = None) -> str:
    """<project, cut to 16>-<UTC yymmddHHMMSS><3 random>: SageMaker allows tuning job names of 32 characters, and
    names each trial <tuning job>-<3 digits>-<8 hex digits>."""
    now = now or datetime.now(timezone.utc)
    tail = f"{now:%y%m%d%H%M%S}" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(3))
    return f"{tuning_head(project)}-{tail}"


def tuning_head(project: str) -> str:
    """What a tuning job's name (and so each of its trials') starts with: PROJECT_NAME, cut to fit 32."""
    return project[:16].rstrip("-")


def tuning_pattern(project: str) -> str:
    """This project's tuning job names, as tuning_name makes them (a regular expression)."""
    return rf"{re.escape(tuning_head(project))}-\d{{12}}[0-9a-z]{{3}}"


def names_pattern(project: str) -> re.Pattern:
    """This project's training job names: <project>-<sha>-<yymmdd-HHMMSS-ms><5 random> (and the earlier
    <project>-<sha>-<yyyymmdd-HHMMSS-ms>), and its tuning jobs' trials <tuning job>-<3 digits>-<8 hex>."""
    return re.compile(rf"{re.escape(project)}-[0-9a-z]+-(\d{{6}}-\d{{6}}-\d{{3}}[0-9a-z]{{5}}|\d{{8}}-\d{{6}}-\d{{3}})"
                      rf"|{tuning_pattern(project)}-\d{{3}}-[0-9a-f]{{8}}")


def job_named(name: str, setting: str = "JOB") -> str:
    """A job's name as a user gives it (JOB, or TUNING for a tuning job): a SageMaker name, never a path. Every name
    a user gives that becomes a folder under JOBS_DIR or MODELS_DIR passes here first."""
    if not JOB_NAME.fullmatch(name):
        listed = "make tune-jobs` shows the latest" if setting == "TUNING" else "make jobs` lists it"
        raise UserError(f"{setting}={name!r} is not a job name (1-63 letters, digits or '-'): give the name alone, "
                        f"as `{listed}")
    return name


def parse_pairs(text: str, setting: str) -> dict[str, str]:
    """'key=value key2="a b"' into a dict; a word without '=', or a key given twice, is a UserError naming the
    setting (the last of two would win unseen)."""
    pairs = {}
    for word in words(text, setting):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise UserError(f"{setting}: '{word}' is not key=value: write {setting}='key=value key2=value2'")
        if key in pairs:
            raise UserError(f"{setting}: {key} is given twice ({key}={pairs[key]} and {key}={value}): keep one")
        pairs[key] = value
    return pairs


def words(text: str, setting: str) -> list[str]:
    """Shell words, quotes honoured."""
    try:
        return shlex.split(text)
    except ValueError as err:
        raise UserError(f"{setting} cannot be read ({err}): quote values like {setting}='key=\"a b\"'") from None


def hyperparameters(config: Config) -> dict[str, str]:
    """HP as SageMaker's strings: checked by the trainer's schema with sagemake's image, as given otherwise."""
    given = parse_pairs(config["HP"], "HP")
    reserved = sorted(key for key in given if key.startswith(RESERVED_PREFIX))
    if reserved:
        raise UserError(f"hyperparameter {', '.join(reserved)}: names starting with '{RESERVED_PREFIX}' are "
                        "SageMaker's own (its toolkit reads them and hides them from your code): rename it")
    values = _validated(config, given) if config.sagemake_image else given
    check_limits(values)
    return values


def _validated(config: Config, given: dict[str, str]) -> dict[str, str]:
    """The trainer's schema applied to HP. Importing pydantic costs a third of a second, so an answer is kept
    (build/hyperparameters.json) for the same HP, schema and contract: a re-run checks nothing twice."""
    schema = config.root / "src/trainer/hyperparameters.py"
    key = hashlib.sha256(json.dumps(given, sort_keys=True).encode() + b"\0" + sourcedir.digest(
        [("schema", schema), *sourcedir.contract(config.root)]).encode()).hexdigest()
    cache = config.root / HYPERPARAMETER_CACHE
    known = jsonfile.read(cache, {})
    if key in known:
        return known[key]
    from sagemake.contract.train import TrainingError, as_strings, parse_hyperparameters  # pydantic: only here
    Hyperparameters = project_trainer(config, "hyperparameters").Hyperparameters  # noqa: N806 (a class)

    try:
        values = as_strings(parse_hyperparameters(given, Hyperparameters))
    except TrainingError as err:
        raise UserError(f"{err}: fix HP='key=value ...'") from None
    jsonfile.write(cache, {**dict(list(known.items())[-20:]), key: values}, indent=None)
    return values


def check_limits(values: dict[str, str]) -> None:
    """SageMaker refuses more than 100 hyperparameters, keys over 256 and values over 2,500 characters."""
    if len(values) > MAX_HYPERPARAMETERS:
        raise UserError(f"{len(values)} hyperparameters: SageMaker takes at most {MAX_HYPERPARAMETERS}: "
                        "pass fewer (a list or a file in a channel can hold the rest)")
    for key, value in values.items():
        if len(key) > MAX_KEY:
            raise UserError(f"hyperparameter name {key[:40]}... has {len(key)} characters: SageMaker takes at most "
                            f"{MAX_KEY}: shorten it")
        if len(value) > MAX_VALUE:
            raise UserError(f"hyperparameter {key} has a value of {len(value)} characters: SageMaker takes at most "
                            f"{MAX_VALUE}: put long values in a file in a data channel")


def project_trainer(config: Config, module: str):
    """A module of the project's own trainer package, src/trainer/<module>.py, imported from the project's folder
    and not from sys.path: the tool's Python may serve several checkouts (and its own src/ is not the project's).
    A trainer of another checkout imported earlier is replaced, every module of it."""
    package = config.root / "src" / TRAINER
    if not (package / "__init__.py").is_file():
        raise UserError(f"no trainer package in {package.relative_to(config.root)}/: put your model there (see the "
                        "example's), or use your own image (DOCKERFILE or TRAINING_IMAGE)")
    loaded = sys.modules.get(TRAINER)
    if loaded is None or Path(list(loaded.__path__)[0]).resolve() != package.resolve():
        for name in [name for name in sys.modules if name == TRAINER or name.startswith(f"{TRAINER}.")]:
            del sys.modules[name]
        spec = importlib.util.spec_from_file_location(TRAINER, package / "__init__.py",
                                                      submodule_search_locations=[str(package)])
        found = importlib.util.module_from_spec(spec)
        sys.modules[TRAINER] = found
        spec.loader.exec_module(found)
    return importlib.import_module(f"{TRAINER}.{module}")


def metric_word(word: str) -> tuple[str, str | None]:
    """A metric as declared: 'name', or 'name:max' / 'name:min' with its direction, ('name', 'Maximize' or
    'Minimize' or None). The suffix is read off the end, so SageMaker's names keep their colons
    ('validation:auc:max')."""
    name, _, suffix = word.rpartition(":")
    if name and suffix in DIRECTIONS:
        return name, DIRECTIONS[suffix]
    return word, None


def declared_metrics(config: Config) -> dict[str, str | None]:
    """The declared metrics and their directions: METRICS, else the trainer's (src/trainer/metrics.py) with
    sagemake's image."""
    if config["METRICS"]:
        words = config.words("METRICS")
    elif config.sagemake_image:
        words = list(project_trainer(config, "metrics").METRICS)
    else:
        words = []
    return dict(metric_word(word) for word in words)


def metrics(config: Config) -> list[str]:
    """The declared metrics' names."""
    return list(declared_metrics(config))


def primary_metric(config: Config) -> str | None:
    """PRIMARY_METRIC, which must be declared; by default the first declared metric."""
    declared = metrics(config)
    chosen = config["PRIMARY_METRIC"]
    if chosen and chosen not in declared:
        raise UserError(f"PRIMARY_METRIC={chosen!r} is not a declared metric: use one of "
                        f"{', '.join(declared) or '(none: declare them with METRICS)'}")
    return chosen or (declared[0] if declared else None)


def main_metric(record: dict, chosen: str = "") -> str | None:
    """The metric the ledger shows for a job, from its own record: chosen (PRIMARY_METRIC) when the job declared it,
    else the first it declared (its MetricDefinitions, in the order declared), else the first it reported."""
    declared = [d["Name"] for d in record.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])]
    declared = declared or list(final_metrics(record))
    return chosen if chosen in declared else next(iter(declared), None)


def metric_columns(records: list[dict], chosen: str = "") -> list[str]:
    """The ledger's metric columns (`make jobs`, `make report`): each job's main metric, once, in the jobs' order."""
    return list(dict.fromkeys(metric for metric in (main_metric(record, chosen) for record in records) if metric))


def metric_definitions(names: list[str]) -> list[dict]:
    """Regexes matching the `name=value` lines a job prints, the name standing alone."""
    return [{"Name": name, "Regex": METRIC_START + re.escape(name) + "=" + METRIC_VALUE} for name in names]


def metric_points(definitions: list[dict], lines: list[str], stamps: list[str | None] | None = None
                  ) -> dict[str, list[dict]]:
    """The one place a log's lines become metrics: each definition applied to each line, as SageMaker does, giving
    every metric its series {name: [{"Step", "Value", "Timestamp"}]} in the order printed. Step counts a metric's
    values from 0 (the step early stopping reports); Timestamp is when its line was printed (stamps[i] for
    lines[i], ISO 8601), left out where the log kept no times."""
    found = {}
    for definition in definitions:
        pattern, points = re.compile(definition["Regex"]), []
        for index, line in enumerate(lines):
            for match in pattern.finditer(line):
                try:
                    value = float(match.group(1) if pattern.groups else match.group(0))
                except ValueError:  # a user's regex that matched something else: no metric, as on SageMaker
                    continue
                point = {"Step": len(points), "Value": value}
                if stamps and stamps[index]:
                    point["Timestamp"] = stamps[index]
                points.append(point)
        if points:
            found[definition["Name"]] = points
    return found


def metric_values(definitions: list[dict], lines: list[str]) -> dict[str, float]:
    """Each metric's last value in the log lines: its final value, as SageMaker keeps it."""
    return {name: points[-1]["Value"] for name, points in metric_points(definitions, lines).items()}


def metric_series(definition: dict, lines: list[str]) -> list[float]:
    """Every value of one metric in the log lines, in order."""
    return [point["Value"] for point in metric_points([definition], lines).get(definition["Name"], [])]


def printed_metrics(lines: list[str]) -> list[str]:
    """The names of the `name=value` lines printed (a toolkit's environment, SM_NUM_CPUS=2 and the like, aside), in
    the order first printed: the metrics of a job that declares none (a processing job's)."""
    return list(dict.fromkeys(m.group(1) for line in lines
                              if (m := METRIC_LINE.match(line)) and not ENVIRONMENT.fullmatch(m.group(1))))


def metric_warnings(definitions: list[dict], found: dict, lines: list[str]) -> list[str]:
    """Declared metrics the job never printed, and `name=value` lines whose name is not declared."""
    declared = {d["Name"] for d in definitions}
    warnings = []
    missing = sorted(declared - set(found))
    if missing:
        warnings.append(f"declared metric(s) {', '.join(missing)} never printed as name=<number>: "
                        "fix METRICS (or src/trainer/metrics.py), or print them")
    undeclared = sorted(set(printed_metrics(lines)) - declared)
    if undeclared:
        warnings.append(f"printed but not declared, so not recorded: {', '.join(undeclared)}: "
                        "add them to METRICS (or src/trainer/metrics.py) to keep them")
    return warnings


def per_channel(config: Config, setting: str, names: list[str], allowed: tuple[str, ...]) -> dict[str, str]:
    """A per-channel setting ('train=FastFile ...'): each channel's value, the first allowed one unless named."""
    values = dict.fromkeys(names, allowed[0])
    for channel, value in parse_pairs(config[setting], setting).items():
        if channel not in values:
            raise UserError(f"{setting} names '{channel}', which is not a channel: use one of {', '.join(names)}")
        if value not in allowed:
            raise UserError(f"{setting}: '{value}' for {channel} is not supported: use {' or '.join(allowed)}")
        values[channel] = value
    return values


def data_tags(config: Config, folders: dict[str, Path]) -> list[dict]:
    """A job's data tags: each channel's digest, files and bytes, so the manifest of its model says which data made
    it."""
    return [{"Key": f"{TAG_PREFIX}data:{channel}", "Value": " ".join(f"{k}={v}" for k, v in found.items())}
            for channel, found in data.summary(config, folders).items()]


def plan(config: Config, executor) -> dict:
    """The request, after every check that can be made before anything is sent."""
    found = channels(config)
    git = git_state(config.root)
    name = job_name(config["PROJECT_NAME"], git[0])
    declared = metrics(config)
    primary_metric(config)
    modes = per_channel(config, "INPUT_MODES", list(found), INPUT_MODES)
    distributions = per_channel(config, "DATA_DISTRIBUTION", list(found), DISTRIBUTIONS)
    algorithm = {"TrainingImage": executor.image(), "TrainingInputMode": "File",
                 "MetricDefinitions": metric_definitions(declared)}
    if config["CONTAINER_ENTRYPOINT"]:
        algorithm["ContainerEntrypoint"] = words(config["CONTAINER_ENTRYPOINT"], "CONTAINER_ENTRYPOINT")
    if config["CONTAINER_ARGUMENTS"]:
        algorithm["ContainerArguments"] = words(config["CONTAINER_ARGUMENTS"], "CONTAINER_ARGUMENTS")
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": algorithm,
        "HyperParameters": hyperparameters(config),
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": executor.channel_uri(channel),
                        "S3DataDistributionType": distributions[channel],
                    }
                },
                "InputMode": modes[channel],
            }
            for channel in found
        ],
        "OutputDataConfig": {"S3OutputPath": executor.output_uri()},
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
            {"Key": f"{TAG_PREFIX}{SAGEMAKE_IMAGE_TAG}", "Value": json.dumps(config.sagemake_image)},
        ],
    }
    if config["CODE_MODE"] == "script":
        code = {sourcedir.PROGRAM_KEY: sourcedir.PROGRAM,
                sourcedir.DIRECTORY_KEY: executor.code_uri(sourcedir.tag(config.root))}
        request["HyperParameters"].update(code)
        check_limits(request["HyperParameters"])
    if config["SAGEMAKER_ROLE_ARN"]:
        request["RoleArn"] = config["SAGEMAKER_ROLE_ARN"]
    if config.flag("TRACKING") and config["MLFLOW_TRACKING_URI"].startswith("arn:"):  # SageMaker's managed MLflow
        request["MlflowConfig"] = {"MlflowResourceArn": config["MLFLOW_TRACKING_URI"],
                                   "MlflowExperimentName": experiment_name(config), "MlflowRunName": name}
    if config["USE_SPOT"] == "true":
        request["EnableManagedSpotTraining"] = True
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = config.int("MAX_WAIT_SECONDS")
    checkpoints = executor.checkpoint_uri(name)
    if checkpoints:
        request["CheckpointConfig"] = {"S3Uri": checkpoints,
                                       "LocalPath": f"{layout.DEFAULT_BASE_DIR}/{layout.CHECKPOINT_DIR}"}
    if config["CHECKPOINT_FROM"]:
        seeded_from(config, executor, request)
    if config.int("KEEP_ALIVE_SECONDS"):
        request["ResourceConfig"]["KeepAlivePeriodInSeconds"] = config.int("KEEP_ALIVE_SECONDS")
    if config["SUBNETS"]:
        request["VpcConfig"] = {
            "Subnets": config.words("SUBNETS"),
            "SecurityGroupIds": config.words("SECURITY_GROUP_IDS"),
        }
    return request


def seeded_from(config: Config, executor, request: dict) -> None:
    """CHECKPOINT_FROM=<job>: the request tagged with the job it starts from, once the executor has found that job's
    checkpoints and a place for the new job's that holds no others (nothing is copied yet: `make plan` and the
    checks before paying come here too)."""
    source = job_named(config["CHECKPOINT_FROM"], "CHECKPOINT_FROM")
    if "CheckpointConfig" not in request:
        raise UserError(f"CHECKPOINT_FROM={source}: jobs {executor.where()} keep checkpoints only with "
                        "CHECKPOINT_S3_URI: set CHECKPOINT_S3_URI=s3://<bucket>/<prefix>/ for the new job's")
    request["Tags"].append({"Key": TAG_PREFIX + CHECKPOINT_FROM_TAG, "Value": source})
    executor.start_checkpoints(request, copy=False)


def tags(request: dict) -> dict[str, str]:
    """This tool's tags, without their prefix: project, git-sha, git-dirty, env, sagemake-image."""
    return {t["Key"][len(TAG_PREFIX):]: t["Value"] for t in request.get("Tags", []) if t["Key"].startswith(TAG_PREFIX)}


def duration(record: dict) -> int:
    """Seconds a DescribeTrainingJob record says the job took: TrainingTimeInSeconds once it has one; before (still
    running, or ended before training) from its creation to now, or to its last change when it ended."""
    seconds = record.get("TrainingTimeInSeconds")
    if seconds is not None:
        return seconds
    running = record["TrainingJobStatus"] == "InProgress"
    end = time.time() if running else datetime.fromisoformat(record["LastModifiedTime"]).timestamp()
    return round(end - datetime.fromisoformat(record["CreationTime"]).timestamp())


def final_metrics(record: dict) -> dict[str, float]:
    """A DescribeTrainingJob record's FinalMetricDataList as {name: value}."""
    return {m["MetricName"]: m["Value"] for m in record.get("FinalMetricDataList", [])}
