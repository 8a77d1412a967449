"""Hyperparameter tuning: the CreateHyperParameterTuningJob request (ranges and objective checked against the
trainer's schema), a trial's CreateTrainingJob, and the leaderboard read from a tuning record.
"""

from __future__ import annotations

import copy
import math
import re
import secrets
import types
import typing
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import UserError
from sagemake.config import Config
from sagemake.jobs.training import (
    DIRECTIONS,
    TAG_PREFIX,
    declared_metrics,
    metric_word,
    parse_pairs,
    primary_metric,
    project_trainer,
    tuning_name,
)
from sagemake.jobs.training import plan as training_plan

TUNING_TAG = "tuning"  # sagemake:tuning=<tuning run> on every trial (and on the SageMaker tuning job)


RECORD = "tuning.json"


LEADERBOARD = "leaderboard.csv"


PLOT = "tuning.png"


SUFFIXES = {kind: suffix for suffix, kind in DIRECTIONS.items()}  # Maximize: max, Minimize: min


RANGE_KINDS = ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges")


def ranges(config: Config) -> dict:
    """TUNE_RANGES as SageMaker's ParameterRanges, each checked against the trainer's schema (sagemake's image):
    the field exists, its type takes the values, and both ends lie inside its ge/le/gt/lt bounds."""
    given = parse_pairs(config["TUNE_RANGES"], "TUNE_RANGES")
    if not given:
        raise UserError("TUNE_RANGES is empty: give the ranges to search, e.g. "
                        "TUNE_RANGES='learning_rate=0.01:0.3:log max_depth=2:8'")
    schema = _schema(config) if config.sagemake_image else None
    static = parse_pairs(config["HP"], "HP")
    found = {kind: [] for kind in RANGE_KINDS}
    for name, text in given.items():
        where = f"TUNE_RANGES {name}={text}"
        if schema is not None and name not in schema.model_fields:
            raise UserError(f"{where}: {name} is not a hyperparameter of the trainer (known: "
                            f"{', '.join(schema.model_fields)})")
        if name in static:
            raise UserError(f"{where}: {name} is also set in HP={static[name]}: tune it or set it, not both")
        if "|" in text:
            values = text.split("|")
            if len(set(values)) != len(values) or "" in values:
                raise UserError(f"{where}: a categorical range is distinct non-empty values a|b|c")
            for value in values:
                _check_value(schema, name, value, where)
            found["CategoricalParameterRanges"].append({"Name": name, "Values": values})
            continue
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise UserError(f"{where}: write low:high, low:high:log (logarithmic) or a|b|c (categorical)")
        low, high = parts[0], parts[1]
        kind = _kind(schema, name, low, high, where)
        for end in (low, high):
            _check_value(schema, name, end, where)
        if float(low) >= float(high):
            raise UserError(f"{where}: the low end must be below the high end")
        if len(parts) == 3 and float(low) <= 0:
            raise UserError(f"{where}: a logarithmic range must start above 0")
        found[kind].append({"Name": name, "MinValue": low, "MaxValue": high,
                            "ScalingType": "Logarithmic" if len(parts) == 3 else "Linear"})
    return {kind: entries for kind, entries in found.items() if entries}


def _schema(config: Config):
    return project_trainer(config, "hyperparameters").Hyperparameters  # pydantic: only here


def _kind(schema, name: str, low: str, high: str, where: str) -> str:
    """Integer when the field is an int (both ends must be whole numbers), else Continuous."""
    try:
        numbers = [float(low), float(high)]
    except ValueError:
        raise UserError(f"{where}: {low}:{high} is not a numeric range (a text field takes a|b|c)") from None
    if not all(math.isfinite(n) for n in numbers):
        raise UserError(f"{where}: the ends must be finite numbers")
    annotation = _without_none(schema.model_fields[name].annotation) if schema is not None else None
    integers = all(re.fullmatch(r"[-+]?\d+", end) for end in (low, high))
    if annotation is int:
        if not integers:
            raise UserError(f"{where}: {name} is an integer: give whole numbers, e.g. {name}=2:8")
        return "IntegerParameterRanges"
    if annotation not in (None, float):
        typed = annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
        raise UserError(f"{where}: {name} is typed {typed}: a numeric range does not fit it (a categorical range "
                        "a|b|c does)")
    return "IntegerParameterRanges" if annotation is None and integers else "ContinuousParameterRanges"


def _without_none(annotation):
    """Optional[X] (X | None) as X: a value a range gives is never None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _check_value(schema, name: str, value: str, where: str) -> None:
    """The schema's verdict on one value (type and bounds), as the job itself would give it."""
    if schema is None:
        return
    from sagemake.contract.train import TrainingError, parse_hyperparameters

    try:
        parse_hyperparameters({name: value}, schema)
    except TrainingError as err:
        raise UserError(f"{where}: {value} is refused by the trainer's schema: {err}") from None


def objective(config: Config) -> dict:
    """HyperParameterTuningJobObjective: TUNE_OBJECTIVE (default PRIMARY_METRIC), a declared metric, and its
    direction as declared (name:max or name:min, in METRICS or in TUNE_OBJECTIVE), never guessed."""
    declared = declared_metrics(config)
    name, stated = metric_word(config["TUNE_OBJECTIVE"]) if config["TUNE_OBJECTIVE"] else (primary_metric(config),
                                                                                          None)
    where = "METRICS" if config["METRICS"] else "src/trainer/metrics.py"
    if not name or name not in declared:
        raise UserError(f"TUNE_OBJECTIVE={name!r} is not a declared metric: use one of "
                        f"{', '.join(declared) or '(none: declare them with METRICS)'}")
    if stated and declared[name] and stated != declared[name]:
        raise UserError(f"TUNE_OBJECTIVE={config['TUNE_OBJECTIVE']} contradicts {where}, which declares "
                        f"{name}:{SUFFIXES[declared[name]]}: keep one")
    kind = stated or declared[name]
    if kind is None:
        raise UserError(f"the tuning objective {name} has no declared direction: declare it {name}:max or {name}:min "
                        f"in {where}, or set TUNE_OBJECTIVE={name}:max (or :min)")
    return {"Type": kind, "MetricName": name}


def plan(config: Config, executor) -> dict:
    """The CreateHyperParameterTuningJob request: the training job definition from the training request (the
    same image, channels, metric definitions, resources), its static hyperparameters less the tuned ones."""
    if config["CHECKPOINT_FROM"]:
        raise UserError(f"CHECKPOINT_FROM={config['CHECKPOINT_FROM']} starts one training job (make train) from "
                        "another's checkpoints; a tuning run's trials start afresh: leave it out")
    limits = {"MaxNumberOfTrainingJobs": config.int("TUNE_MAX_JOBS"),
              "MaxParallelTrainingJobs": config.int("TUNE_PARALLEL")}
    if limits["MaxParallelTrainingJobs"] > limits["MaxNumberOfTrainingJobs"]:
        raise UserError(f"TUNE_PARALLEL={limits['MaxParallelTrainingJobs']} is more than "
                        f"TUNE_MAX_JOBS={limits['MaxNumberOfTrainingJobs']}: at most TUNE_MAX_JOBS trials can run")
    parameter_ranges = ranges(config)
    goal = objective(config)
    training = training_plan(config, executor)
    if "ContainerEntrypoint" in training["AlgorithmSpecification"] or \
            "ContainerArguments" in training["AlgorithmSpecification"]:
        raise UserError("CONTAINER_ENTRYPOINT/CONTAINER_ARGUMENTS: a tuning job's definition has no entrypoint "
                        "(HyperParameterAlgorithmSpecification): start `train` from the image's own")
    tuned = {entry["Name"] for kind in parameter_ranges.values() for entry in kind}
    name = tuning_name(config["PROJECT_NAME"])
    algorithm = {key: training["AlgorithmSpecification"][key]
                 for key in ("TrainingImage", "TrainingInputMode", "MetricDefinitions")}
    definition = {
        "StaticHyperParameters": {k: v for k, v in training["HyperParameters"].items() if k not in tuned},
        "AlgorithmSpecification": algorithm,
        **{key: training[key] for key in ("RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig",
                                          "StoppingCondition", "EnableManagedSpotTraining", "VpcConfig",
                                          "Environment") if training.get(key)},
    }
    if "CheckpointConfig" in training:  # per tuning run: SageMaker adds each trial's name below it
        definition["CheckpointConfig"] = {**training["CheckpointConfig"],
                                          "S3Uri": executor.checkpoint_uri(name, own=True)}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": config["TUNE_STRATEGY"],
            "HyperParameterTuningJobObjective": goal,
            "ResourceLimits": limits,
            "ParameterRanges": parameter_ranges,
            "TrainingJobEarlyStoppingType": config["TUNE_EARLY_STOPPING"],
        },
        "TrainingJobDefinition": definition,
        "Tags": [*training["Tags"], {"Key": TAG_PREFIX + TUNING_TAG, "Value": name}],
    }


def trial_number(name: str) -> int:
    """A trial's number, from its name (<tuning job>-<3 digits>-<8 hex>, on SageMaker as here): the order the run
    started it in."""
    return int(name.rsplit("-", 2)[-2])


def trial_request(config: Config, executor, tuning: dict, number: int, values: dict[str, str],
                  data_tags: list[dict]) -> dict:
    """CreateTrainingJob for trial `number`, named as SageMaker names a tuning job's children
    (<tuning job>-<3 digits>-<8 characters>), tagged with its tuning run."""
    definition = tuning["TrainingJobDefinition"]
    name = f"{tuning['HyperParameterTuningJobName']}-{number:03d}-{secrets.token_hex(4)}"
    request = {
        "TrainingJobName": name,
        **copy.deepcopy({k: v for k, v in definition.items() if k != "StaticHyperParameters"}),
        "HyperParameters": {**definition["StaticHyperParameters"], **values},
        "Tags": [*copy.deepcopy(tuning["Tags"]), *data_tags],
    }
    request.setdefault("Environment", {})
    if "CheckpointConfig" in request:
        request["CheckpointConfig"]["S3Uri"] = executor.checkpoint_uri(name)
    return request


TRIAL_NAME = re.compile(r"^(?P<run>.+)-(?P<number>\d{3})-[0-9a-f]{8}$")  # as trial_request names them


def run_of(trial: str) -> str | None:
    """The tuning run a trial's name belongs to; None for a name that is not a trial's."""
    found = TRIAL_NAME.match(trial)
    return found["run"] if found else None


def unknown_run(latest: str | None, env_flag: str = "") -> str:
    """What to do when a tuning run named is not there: the latest, when there is one; else how to start one."""
    if latest:
        return f"the latest is {latest} (`make tune-jobs{env_flag}` shows it)"
    return f"there is none yet: `make tune{env_flag}` starts one"


def trial_label(trial: str) -> str:
    """What starts each line of a trial's log where several trials' lines meet: [trial-<number>], as hosts get
    [algo-<number>]."""
    found = TRIAL_NAME.match(trial)
    return f"[trial-{int(found['number'])}] " if found else f"[{trial}] "


def distributions(parameter_ranges: dict) -> dict:
    """ParameterRanges as optuna's distributions."""
    import optuna

    found = {}
    for entry in parameter_ranges.get("IntegerParameterRanges", []):
        found[entry["Name"]] = optuna.distributions.IntDistribution(
            int(entry["MinValue"]), int(entry["MaxValue"]), log=entry["ScalingType"] == "Logarithmic")
    for entry in parameter_ranges.get("ContinuousParameterRanges", []):
        found[entry["Name"]] = optuna.distributions.FloatDistribution(
            float(entry["MinValue"]), float(entry["MaxValue"]), log=entry["ScalingType"] == "Logarithmic")
    for entry in parameter_ranges.get("CategoricalParameterRanges", []):
        found[entry["Name"]] = optuna.distributions.CategoricalDistribution(entry["Values"])
    return found


def as_string(value) -> str:
    """A suggested value as SageMaker's string hyperparameter."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def importance(record: dict) -> tuple[str | None, str]:
    """The most important tuned hyperparameter: optuna's PED-ANOVA (numpy only; fANOVA would need
    scikit-learn in the tool) over the scored trials, else the largest absolute Spearman rank correlation."""
    goal = record["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    scored = [s for s in record.get("TrainingJobSummaries", []) if "FinalHyperParameterTuningJobObjectiveMetric" in s]
    space = distributions(record["HyperParameterTuningJobConfig"]["ParameterRanges"])
    if len(space) == 1:
        return next(iter(space)), "the only tuned hyperparameter"
    if len(scored) < 3:
        return None, "fewer than 3 scored trials"
    try:
        import warnings

        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction="minimize" if goal["Type"] == "Minimize" else "maximize")
            for s in scored:
                params = {k: _typed(space[k], v) for k, v in s["TunedHyperParameters"].items()}
                value = s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
                study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=value))
            found = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        if found and max(found.values()) > 0:
            return max(found, key=found.get), "optuna's PED-ANOVA importance"
    except (ValueError, RuntimeError, ZeroDivisionError):
        pass
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in scored]
    correlations = {}
    for name in space:
        column = [s["TunedHyperParameters"][name] for s in scored]
        try:
            column = [float(v) for v in column]
        except ValueError:  # categorical text: rank by its order in the range
            order = list(space[name].choices)
            column = [float(order.index(v)) for v in column]
        correlations[name] = abs(_spearman(column, values))
    return max(correlations, key=correlations.get), "the largest rank correlation with the objective"


def _typed(distribution, value: str):
    """A tuned value's string back as the distribution's type."""
    import optuna

    if isinstance(distribution, optuna.distributions.IntDistribution):
        return int(value)
    if isinstance(distribution, optuna.distributions.FloatDistribution):
        return float(value)
    return value


def _spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        result = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                result[order[k]] = (i + j) / 2
            i = j + 1
        return result

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    spread = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / spread if spread else 0.0


def save(folder: Path, record: dict) -> None:
    """tuning.json, replaced whole."""
    jsonfile.write(folder / RECORD, record)
