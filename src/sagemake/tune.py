"""Hyperparameter tuning: one CreateHyperParameterTuningJob request, run locally with optuna or on SageMaker.

Usage: scripts/tune.py COMMAND
  plan          print the CreateHyperParameterTuningJob request as JSON; submits nothing
  run           the tuning run where ENV says, then the best trial's model fetched. Locally: TUNE_MAX_JOBS trials,
                TUNE_PARALLEL at a time, each a normal local job, chosen by optuna (TPE for Bayesian, seeded);
                on SageMaker: the tuning job, followed (Ctrl-C leaves it running)
  jobs [NAME]   the leaderboard of a tuning run (default: the latest), where ENV says

Settings: TUNE_RANGES ('learning_rate=0.01:0.3:log max_depth=2:8 loss=a|b'), TUNE_OBJECTIVE (default
PRIMARY_METRIC), TUNE_OBJECTIVE_TYPE (default: inferred from the name), TUNE_MAX_JOBS, TUNE_PARALLEL,
TUNE_STRATEGY (Bayesian or Random), TUNE_SEED; the other hyperparameters come from HP.
Either way the run keeps JOBS_DIR/<tuning run>/: tuning.json (DescribeHyperParameterTuningJob's shape, with
ListTrainingJobsForHyperParameterTuningJob's TrainingJobSummaries; on SageMaker a copy as last followed),
leaderboard.csv (with each trial's cost: on SageMaker, or what a local trial would have cost there) and tuning.png.
Exit status: 0 done, 1 no trial completed, 2 bad input, 3 an AWS error, 130 interrupted.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import re
import secrets
import subprocess
import sys
import tempfile
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import ThreadPoolExecutor as Pool
from datetime import datetime, timezone
from pathlib import Path

from sagemake import data, jsonfile
from sagemake.cli import Exit, JobFailed, UserError, run, say
from sagemake.config import Config, resolve
from sagemake.executors import Executor, for_config
from sagemake.fetch_model import fetch, metrics
from sagemake.jobs.training import (
    TAG_PREFIX,
    metric_series,
    parse_pairs,
    primary_metric,
    tuning_head,
    tuning_name,
    tuning_pattern,
    words,
)
from sagemake.jobs.training import metrics as declared_metrics
from sagemake.jobs.training import plan as training_plan
from sagemake.pricing import Prices, cost, money

TUNING_TAG = "tuning"  # sagemake:tuning=<tuning run> on every trial (and on the SageMaker tuning job)
RECORD = "tuning.json"
LEADERBOARD = "leaderboard.csv"
PLOT = "tuning.png"
PLOTTER = Path(__file__).with_name("tune_plot.py")  # run with the job's Python, which has matplotlib
MINIMIZED = re.compile(r"(loss|error|err|rmse|mse|mae|mape|logloss|deviance|perplexity)$", re.IGNORECASE)
ARN = "arn:aws:sagemaker:local:000000000000:hyper-parameter-tuning-job/"
RANGE_KINDS = ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges")
TERMINAL = ("Completed", "Failed", "Stopped")


# --- ranges and objective, checked before anything runs ---

def ranges(config: Config) -> dict:
    """TUNE_RANGES as SageMaker's ParameterRanges, each checked against the trainer's schema (sagemake's image):
    the field exists, its type takes the values, and both ends lie inside its ge/le/gt/lt bounds."""
    given = parse_pairs(config["TUNE_RANGES"], "TUNE_RANGES")
    if not given:
        raise UserError("TUNE_RANGES is empty: give the ranges to search, e.g. "
                        "TUNE_RANGES='learning_rate=0.01:0.3:log max_depth=2:8'")
    schema = _schema() if config.sagemake_image else None
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


def _schema():
    from trainer.hyperparameters import Hyperparameters  # pydantic: only here

    return Hyperparameters


def _kind(schema, name: str, low: str, high: str, where: str) -> str:
    """Integer when the field is an int (both ends must be whole numbers), else Continuous."""
    try:
        numbers = [float(low), float(high)]
    except ValueError:
        raise UserError(f"{where}: {low}:{high} is not a numeric range (a text field takes a|b|c)") from None
    if not all(math.isfinite(n) for n in numbers):
        raise UserError(f"{where}: the ends must be finite numbers")
    annotation = schema.model_fields[name].annotation if schema is not None else None
    integers = all(re.fullmatch(r"[-+]?\d+", end) for end in (low, high))
    if annotation is int:
        if not integers:
            raise UserError(f"{where}: {name} is an integer: give whole numbers, e.g. {name}=2:8")
        return "IntegerParameterRanges"
    if annotation not in (None, float):
        raise UserError(f"{where}: {name} is a {getattr(annotation, '__name__', annotation)}: a numeric range "
                        f"does not fit it (a categorical range a|b|c does)")
    return "IntegerParameterRanges" if annotation is None and integers else "ContinuousParameterRanges"


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
    """HyperParameterTuningJobObjective: TUNE_OBJECTIVE (default PRIMARY_METRIC), a declared metric; its Type
    from TUNE_OBJECTIVE_TYPE or its name."""
    declared = declared_metrics(config)
    name = config["TUNE_OBJECTIVE"] or primary_metric(config)
    if not name or name not in declared:
        raise UserError(f"TUNE_OBJECTIVE={name!r} is not a declared metric: use one of "
                        f"{', '.join(declared) or '(none: declare them with METRICS)'}")
    kind = config["TUNE_OBJECTIVE_TYPE"] or ("Minimize" if MINIMIZED.search(name.split(":")[-1]) else "Maximize")
    return {"Type": kind, "MetricName": name}


def plan(config: Config, executor: Executor) -> dict:
    """The CreateHyperParameterTuningJob request: the training job definition from the training request (the
    same image, channels, metric definitions, resources), its static hyperparameters less the tuned ones."""
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
                                          "S3Uri": executor.checkpoint_uri(name)}
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


# --- a trial: a normal training job ---

def trial_request(config: Config, executor: Executor, tuning: dict, number: int, values: dict[str, str],
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


def sampler(config: Config, trials: int):
    """Bayesian: optuna's TPE, its random start-up shortened to a third of the budget (its default of 10 would
    make a small run all random), with constant liar so parallel trials are not asked the same point twice."""
    import optuna

    seed = config.int("TUNE_SEED")
    if config["TUNE_STRATEGY"] == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, trials // 3)),
                                      constant_liar=True)


def pruner(config: Config, trials: int):
    """TUNE_EARLY_STOPPING=Auto: optuna's median rule, SageMaker's Auto rule too: a trial whose objective at a step
    is worse than the median of the earlier trials' at that step is stopped. The first third of the trials (at
    least one) run to the end, so the median has something behind it."""
    import optuna

    if config["TUNE_EARLY_STOPPING"] == "Off":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=max(1, trials // 3), n_warmup_steps=0)


def as_string(value) -> str:
    """A suggested value as SageMaker's string hyperparameter."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class LocalTuning:
    """The search through the local executor: TUNE_PARALLEL trials at a time, each in a thread of its own
    running LocalExecutor.run (signal handlers are the main thread's; a stop reaches trials through
    executor.stopping), optuna asked and told from this thread only."""

    def __init__(self, config: Config, executor, tuning: dict, runtime=None):
        self.config, self.executor, self.tuning, self.runtime = config, executor, tuning, runtime
        self.name = tuning["HyperParameterTuningJobName"]
        self.folder = executor.jobs_dir / self.name
        job = tuning["HyperParameterTuningJobConfig"]
        self.goal = job["HyperParameterTuningJobObjective"]
        self.limits = job["ResourceLimits"]
        self.created = _now()
        self.trials: list[dict] = []  # {"number", "name", "params", "record"}
        self.status = "InProgress"

    def run(self, data_tags: list[dict]) -> str:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        total, parallel = self.limits["MaxNumberOfTrainingJobs"], self.limits["MaxParallelTrainingJobs"]
        direction = "minimize" if self.goal["Type"] == "Minimize" else "maximize"
        study = optuna.create_study(direction=direction, sampler=sampler(self.config, total),
                                    pruner=pruner(self.config, total), study_name=self.name)
        definitions = self.tuning["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
        self.objective = next(d for d in definitions if d["Name"] == self.goal["MetricName"])
        space = distributions(self.tuning["HyperParameterTuningJobConfig"]["ParameterRanges"])
        self.folder.mkdir(parents=True)
        (self.folder / "request.json").write_text(json.dumps(self.tuning, indent=2) + "\n")
        self.save()
        say(f"tuning {self.name}: {total} trials, {parallel} at a time, {self.goal['Type']} "
            f"{self.goal['MetricName']} ({self.config['TUNE_STRATEGY']}: optuna {type(study.sampler).__name__})")
        pending: dict = {}
        with Pool(max_workers=parallel, thread_name_prefix="trial") as pool:
            try:
                while len(self.trials) < total or pending:
                    while len(self.trials) < total and len(pending) < parallel:
                        trial = study.ask(space)
                        values = {k: as_string(v) for k, v in trial.params.items()}
                        request = trial_request(self.config, self.executor, self.tuning, len(self.trials) + 1,
                                                values, data_tags)
                        entry = {"number": trial.number, "name": request["TrainingJobName"], "params": values,
                                 "record": None, "trial": trial, "reported": 0, "pruned": False}
                        self.trials.append(entry)
                        say(f"tuning {self.name}: trial {len(self.trials)}/{total} {entry['name']}: "
                            + " ".join(f"{k}={v}" for k, v in values.items()))
                        pending[pool.submit(self._run_trial, request)] = entry
                        self.save()
                    done, _ = wait(pending, timeout=1, return_when=FIRST_COMPLETED)
                    for future in done:
                        self._told(study, pending.pop(future), future)
                    for entry in pending.values():
                        self._prune(entry)
            except KeyboardInterrupt:
                self.status = "Stopping"
                say(f"tuning {self.name}: interrupted: stopping the {len(pending)} running trial(s) "
                    f"(SIGTERM, then SIGKILL after {self.config['STOP_GRACE_SECONDS']} s); the record is kept")
                self.executor.stopping.set()
                self.save()
                while pending:
                    try:
                        done, _ = wait(pending, timeout=1, return_when=FIRST_COMPLETED)
                    except KeyboardInterrupt:
                        continue  # the trials are stopping already; they end within the grace
                    for future in done:
                        self._told(study, pending.pop(future), future)
                self.status = "Stopped"
                self.save()
                raise
        self.status = "Completed" if self.best() else "Failed"
        self.save()
        return self.status

    def _prune(self, entry: dict) -> None:
        """Report a running trial's new objective values (its log's lines, in order, step by step) and stop it when
        the pruner says it is hopeless: it ends Stopped, as SageMaker's early stopping leaves a trial."""
        from sagemake.executors.local import LOG

        if entry["pruned"]:
            return
        log = self.executor.folder(entry["name"]) / LOG
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            return
        values = metric_series(self.objective, lines)
        trial = entry["trial"]
        for step in range(entry["reported"], len(values)):
            if math.isfinite(values[step]):
                trial.report(values[step], step)
        if len(values) > entry["reported"] and trial.should_prune():
            entry["pruned"] = True
            say(f"tuning {self.name}: trial {entry['name']}: stopped early: {self.goal['MetricName']}="
                f"{values[-1]:.6g} at step {len(values)} is worse than the median of the earlier trials there")
            self.executor.stop_jobs.add(entry["name"])
        entry["reported"] = len(values)

    def _run_trial(self, request: dict) -> dict:
        if self.runtime is not None:
            return self.executor.run(request, self.runtime)
        return self.executor.run(request)

    def _told(self, study, entry: dict, future) -> None:
        import optuna

        try:
            record = future.result()
        except Exception as err:  # a trial that could not start: its own failure, not the run's
            say(f"tuning {self.name}: trial {entry['name']} could not run: {err}")
            study.tell(entry["trial"], state=optuna.trial.TrialState.FAIL)
            entry["record"] = {"TrainingJobName": entry["name"], "TrainingJobStatus": "Failed",
                               "FailureReason": f"ClientError: {err}"}
            self.save()
            return
        entry["record"] = record
        value = metrics(record).get(self.goal["MetricName"])
        if entry["pruned"]:
            study.tell(entry["trial"], state=optuna.trial.TrialState.PRUNED)
        elif record["TrainingJobStatus"] == "Completed" and value is not None and math.isfinite(value):
            study.tell(entry["trial"], value)
        else:
            study.tell(entry["trial"], state=optuna.trial.TrialState.FAIL)
        self.save()

    def best(self) -> dict | None:
        scored = [t for t in self.trials if _objective(t, self.goal) is not None]
        if not scored:
            return None
        sign = 1 if self.goal["Type"] == "Minimize" else -1
        return min(scored, key=lambda t: (sign * _objective(t, self.goal), t["number"]))

    def summaries(self) -> list[dict]:
        """ListTrainingJobsForHyperParameterTuningJob's TrainingJobSummaries."""
        found = []
        for trial in self.trials:
            record = trial["record"] or {"TrainingJobStatus": "InProgress"}
            summary = {
                "TrainingJobName": trial["name"],
                "TrainingJobArn": record.get("TrainingJobArn", ""),
                "TuningJobName": self.name,
                "CreationTime": record.get("CreationTime"),
                "TrainingStartTime": record.get("TrainingStartTime"),
                "TrainingEndTime": record.get("TrainingEndTime"),
                "TrainingJobStatus": record["TrainingJobStatus"],
                "TunedHyperParameters": trial["params"],
            }
            if record.get("FailureReason"):
                summary["FailureReason"] = record["FailureReason"]
            value = _objective(trial, self.goal)
            if value is not None:
                summary["FinalHyperParameterTuningJobObjectiveMetric"] = {**self.goal, "Value": value}
                summary["ObjectiveStatus"] = "Succeeded"
            else:
                summary["ObjectiveStatus"] = "Pending" if trial["record"] is None else "Failed"
            found.append({k: v for k, v in summary.items() if v is not None})
        return found

    def save(self) -> None:
        """tuning.json in DescribeHyperParameterTuningJob's shape, replaced whole."""
        summaries = self.summaries()
        statuses = [s["TrainingJobStatus"] for s in summaries]
        objectives = [s["ObjectiveStatus"] for s in summaries]
        record = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobArn": ARN + self.name,
            "HyperParameterTuningJobConfig": self.tuning["HyperParameterTuningJobConfig"],
            "TrainingJobDefinition": self.tuning["TrainingJobDefinition"],
            "HyperParameterTuningJobStatus": self.status,
            "CreationTime": self.created,
            "LastModifiedTime": _now(),
            "TrainingJobStatusCounters": {
                "Completed": statuses.count("Completed"), "InProgress": statuses.count("InProgress"),
                "RetryableError": 0, "NonRetryableError": statuses.count("Failed"),
                "Stopped": statuses.count("Stopped")},
            "ObjectiveStatusCounters": {"Succeeded": objectives.count("Succeeded"),
                                        "Pending": objectives.count("Pending"), "Failed": objectives.count("Failed")},
            "Tags": self.tuning["Tags"],
            "TrainingJobSummaries": summaries,  # ListTrainingJobsForHyperParameterTuningJob's, kept here locally
        }
        if self.status in ("Completed", "Stopped", "Failed"):
            record["HyperParameterTuningEndTime"] = record["LastModifiedTime"]
        best = self.best()
        if best:
            record["BestTrainingJob"] = next(s for s in summaries if s["TrainingJobName"] == best["name"])
        save(self.folder, record)


# --- where tuning runs ---

class LocalTunings:
    """Tuning runs on this machine: the search above, each run's record in JOBS_DIR/<tuning run>/."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config

    def run(self, request: dict, data_tags: list[dict], runtime=None) -> dict:
        LocalTuning(self.config, self.executor, request, runtime).run(data_tags)
        return self.record(request["HyperParameterTuningJobName"])

    def record(self, name: str) -> dict:
        path = self.config.path("JOBS_DIR") / name / RECORD
        if not path.is_file():
            raise UserError(f"no local tuning run {name} in {self.config['JOBS_DIR']}/: `make tune-jobs` shows the "
                            "latest")
        return json.loads(path.read_text())

    def best_trials(self) -> set[str]:
        """The best trial of each local tuning run."""
        jobs = self.config.path("JOBS_DIR")
        found = set()
        for path in jobs.glob(f"*/{RECORD}") if jobs.is_dir() else ():
            try:
                found.add(json.loads(path.read_text())["BestTrainingJob"]["TrainingJobName"])
            except (OSError, ValueError, KeyError, TypeError):  # a run without a best trial yet
                pass
        return found

    def latest(self) -> str | None:
        jobs = self.config.path("JOBS_DIR")
        found = [p.parent for p in jobs.glob(f"*/{RECORD}")] if jobs.is_dir() else []
        return max(found, key=lambda p: json.loads((p / RECORD).read_text())["CreationTime"]).name if found else None


class SageMakerTunings:
    """Tuning jobs on SageMaker: created from the same request, followed to their end (each trial as it starts and
    ends, the best so far) with a copy of the record in JOBS_DIR/<tuning job>/. Ctrl-C leaves the job running."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config

    def run(self, request: dict, data_tags: list[dict], runtime=None) -> dict:
        from sagemake.aws.api import ERRORS, console_url, error_code, failure, retried

        executor, name = self.executor, request["HyperParameterTuningJobName"]
        definition = request["TrainingJobDefinition"]
        executor.sync_data()
        executor.ready(definition["AlgorithmSpecification"]["TrainingImage"], definition["InputDataConfig"],
                       definition["StaticHyperParameters"])
        request = {**request, "Tags": [*request["Tags"], *data_tags]}  # SageMaker puts them on every trial
        folder = self.config.path("JOBS_DIR") / name
        folder.mkdir(parents=True)
        (folder / "request.json").write_text(json.dumps(request, indent=2) + "\n")
        try:
            executor.sagemaker.create_hyper_parameter_tuning_job(**request)
        except ERRORS as err:  # a retry hearing the name is taken met what its lost first attempt created
            if not (retried(err) and error_code(err) == "ResourceInUse"):
                raise failure(err) from None
        console = console_url(executor.region, name, "hyper-tuning-jobs")
        try:
            say(f"tuning {name}: submitted to SageMaker in {executor.region}: "
                f"{request['HyperParameterTuningJobConfig']['ResourceLimits']['MaxNumberOfTrainingJobs']} trials")
            say(f"  console: {console}")
            return self.follow(name, folder)
        except KeyboardInterrupt:
            say(f"tuning {name} keeps running on SageMaker: `make tune-jobs{executor.env_flag()} TUNING={name}` "
                f"shows its trials; stop it in the console: {console}")
            raise

    def record(self, name: str) -> dict:
        """DescribeHyperParameterTuningJob's answer with ListTrainingJobsForHyperParameterTuningJob's
        TrainingJobSummaries, as the local record holds them."""
        from sagemake.aws.api import ERRORS, error_code, failure, plain

        sagemaker = self.executor.sagemaker
        try:
            record = plain(sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name))
            pages = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
                HyperParameterTuningJobName=name)
            record["TrainingJobSummaries"] = [plain(s) for page in pages for s in page["TrainingJobSummaries"]]
        except ERRORS as err:
            if error_code(err) in ("ResourceNotFound", "ValidationException"):
                raise UserError(f"no SageMaker tuning job named '{name}' in {self.executor.region}: "
                                f"`make tune-jobs{self.executor.env_flag()}` shows the latest") from None
            raise failure(err) from None
        return record

    def names(self, limit: int) -> list[str]:
        """This project's tuning jobs, newest first."""
        from sagemake.aws.api import call

        head = tuning_head(self.config["PROJECT_NAME"])
        answer = call(self.executor.sagemaker.list_hyper_parameter_tuning_jobs, NameContains=f"{head}-",
                      SortBy="CreationTime", SortOrder="Descending", MaxResults=100)
        ours = re.compile(tuning_pattern(self.config["PROJECT_NAME"]))
        found = sorted((s for s in answer["HyperParameterTuningJobSummaries"]
                        if ours.fullmatch(s["HyperParameterTuningJobName"])),
                       key=lambda s: s["CreationTime"], reverse=True)
        return [s["HyperParameterTuningJobName"] for s in found[:limit]]

    def latest(self) -> str | None:
        found = self.names(1)
        return found[0] if found else None

    def best_trials(self, runs: int = 10) -> set[str]:
        """The best trial of each of the newest tuning jobs (DescribeHyperParameterTuningJob's BestTrainingJob)."""
        from sagemake.aws.api import call

        found = set()
        for name in self.names(runs):
            record = call(self.executor.sagemaker.describe_hyper_parameter_tuning_job,
                          HyperParameterTuningJobName=name)
            if record.get("BestTrainingJob"):
                found.add(record["BestTrainingJob"]["TrainingJobName"])
        return found

    def follow(self, name: str, folder: Path) -> dict:
        """Each trial as it starts (its hyperparameters) and ends (its objective), the best so far, to the end."""
        seen, best = {}, None
        for record, _ in self.executor.watch(f"tuning {name}", lambda: self.record(name),
                                             f"make tune-jobs{self.executor.env_flag()} TUNING={name}"):
            save(folder, record)
            for trial in sorted(record["TrainingJobSummaries"], key=lambda s: s.get("CreationTime", "")):
                trial_name, status = trial["TrainingJobName"], trial["TrainingJobStatus"]
                if trial_name not in seen:
                    say(f"tuning {name}: trial {trial_name}: " + " ".join(
                        f"{k}={v}" for k, v in sorted(trial.get("TunedHyperParameters", {}).items())))
                if status != seen.get(trial_name, "InProgress"):
                    value = trial.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
                    said = f" {trial.get('FailureReason', '')}" if value is None else f" objective {value:.6g}"
                    say(f"tuning {name}: trial {trial_name}: {status}{said.rstrip()}")
                seen[trial_name] = status
            leader = record.get("BestTrainingJob") or {}
            if leader.get("TrainingJobName") not in (None, best):
                best = leader["TrainingJobName"]
                value = leader["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
                say(f"tuning {name}: best so far {best} ({value:.6g})")
            if record["HyperParameterTuningJobStatus"] in TERMINAL:
                say(f"tuning {name}: {record['HyperParameterTuningJobStatus']}")
                return record


def tunings_for(executor: Executor):
    """The place of the executor: the one choice, made from the executor that ENV chose."""
    return {"local": LocalTunings, "sagemaker": SageMakerTunings}[executor.kind](executor)


def _objective(trial: dict, goal: dict) -> float | None:
    record = trial["record"]
    if not record or record.get("TrainingJobStatus") != "Completed":
        return None
    value = metrics(record).get(goal["MetricName"])
    return value if value is not None and math.isfinite(value) else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --- the leaderboard ---

def leaderboard(record: dict, prices: Prices) -> tuple[list[str], list[list[str]]]:
    """Trials sorted by the objective (best first, unscored last): hyperparameters, objective, duration, what its
    instances cost for that time (on SageMaker; for a local trial, what they would have), status."""
    goal = record["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    summaries = record.get("TrainingJobSummaries", [])
    params = sorted({k for s in summaries for k in s.get("TunedHyperParameters", {})})
    sign = 1 if goal["Type"] == "Minimize" else -1
    best = record.get("BestTrainingJob", {}).get("TrainingJobName")

    def key(summary):
        value = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
        return (value is None, sign * value if value is not None else 0, summary["TrainingJobName"])

    resources = record["TrainingJobDefinition"]["ResourceConfig"]
    hourly = prices.hourly(resources["InstanceType"]).hourly
    rows = []
    for summary in sorted(summaries, key=key):
        value = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
        seconds = _seconds(summary)
        rows.append([summary["TrainingJobName"] + (" *" if summary["TrainingJobName"] == best else ""),
                     *(summary.get("TunedHyperParameters", {}).get(p, "") for p in params),
                     "" if value is None else f"{value:.6g}", "" if seconds is None else f"{seconds:.1f}s",
                     "" if seconds is None else money(cost(hourly, seconds, resources["InstanceCount"])),
                     summary["TrainingJobStatus"]])
    return ["TRIAL", *params, goal["MetricName"], "DURATION", "COST", "STATUS"], rows


def _seconds(summary: dict) -> float | None:
    start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
    if not (start and end):
        return None
    return datetime.fromisoformat(str(end)).timestamp() - datetime.fromisoformat(str(start)).timestamp()


def print_leaderboard(record: dict, prices: Prices) -> None:
    header, rows = leaderboard(record, prices)
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    sys.stdout.flush()


def write_leaderboard(record: dict, folder: Path, prices: Prices) -> Path:
    header, rows = leaderboard(record, prices)
    path = folder / LEADERBOARD
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", *header[1:]])
        writer.writerows([[row[0].removesuffix(" *"), *row[1:]] for row in rows])
    return path


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


def write_plot(config: Config, record: dict, folder: Path) -> Path | None:
    """tuning.png: the objective over trials and against the most important hyperparameter, drawn by the job's
    Python (it has matplotlib; the tool does not carry it); skipped, saying why, when that Python lacks it."""
    name, why = importance(record)
    goal = record["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    scales = {e["Name"]: e.get("ScalingType", "Linear")
              for kind in record["HyperParameterTuningJobConfig"]["ParameterRanges"].values() for e in kind}
    trials = [{"name": s["TrainingJobName"], "created": s.get("CreationTime", ""),
               "value": s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
               "params": s["TunedHyperParameters"]}
              for s in record.get("TrainingJobSummaries", []) if "FinalHyperParameterTuningJobObjectiveMetric" in s]
    if not trials:
        return None
    from sagemake.job_python import job_python

    try:
        python = job_python(config) if config.sagemake_image else Path(sys.executable)
    except UserError as err:
        say(f"tuning: no plot: the job's Python is not available ({err})")
        return None
    spec = {"objective": goal, "trials": trials, "parameter": name, "why": why,
            "log": scales.get(name) == "Logarithmic", "title": record["HyperParameterTuningJobName"]}
    path = folder / PLOT
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=folder, delete=False) as handle:
        json.dump(spec, handle)
    try:
        done = subprocess.run([str(python), str(PLOTTER), handle.name, str(path)], capture_output=True, text=True,
                              check=False)
    finally:
        Path(handle.name).unlink()
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        say(f"tuning: no plot ({last}): matplotlib comes from docker/requirements.txt")
        return None
    return path


# --- commands ---

def data_tags(config: Config) -> list[dict]:
    """The data tags `make train` puts on a job, so each trial's manifest describes its data."""
    folders = data.ensure(config)
    return [{"Key": f"{TAG_PREFIX}data:{channel}", "Value": " ".join(f"{k}={v}" for k, v in s.items())}
            for channel, s in data.summary(config, folders).items()]


def tune(config: Config, executor: Executor, runtime=None) -> tuple[Path, dict]:
    """The whole run where ENV says: checks, the search, the record, the leaderboard and plot, the best model
    fetched. Returns the run's folder (JOBS_DIR/<tuning run>/) and its record; KeyboardInterrupt after the record
    is kept."""
    tags = data_tags(config)
    request = plan(config, executor)
    name = request["HyperParameterTuningJobName"]
    executor.ensure_image()
    folder = config.path("JOBS_DIR") / name
    try:
        record = tunings_for(executor).run(request, tags, runtime)
    finally:
        if (folder / RECORD).is_file():
            finish(config, executor, folder)
    best = record.get("BestTrainingJob")
    goal = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    if record["HyperParameterTuningJobStatus"] != "Completed" or not best:
        why = record.get("FailureReason") or f"no trial completed with {goal['MetricName']}"
        raise JobFailed(f"tuning {name} {record['HyperParameterTuningJobStatus']}: {why}: see {folder / LEADERBOARD} "
                        f"and `make logs{executor.env_flag()} JOB=<trial>`")
    say(f"tuning {name}: best trial {best['TrainingJobName']} "
        f"{goal['MetricName']}={best['FinalHyperParameterTuningJobObjectiveMetric']['Value']:.6g}")
    fetch(config, executor, best["TrainingJobName"])
    return folder, record


def finish(config: Config, executor: Executor, folder: Path) -> None:
    """The leaderboard printed and written beside the run, and the plot."""
    record = json.loads((folder / RECORD).read_text())
    if not record.get("TrainingJobSummaries"):
        return
    prices = executor.prices()
    print_leaderboard(record, prices)
    written = [write_leaderboard(record, folder, prices)]
    plot = write_plot(config, record, folder)
    if plot:
        written.append(plot)
    say(f"tuning {record['HyperParameterTuningJobName']}: {', '.join(str(p) for p in written)}")


def save(folder: Path, record: dict) -> None:
    """tuning.json, replaced whole."""
    jsonfile.write(folder / RECORD, record)


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    config = resolve()
    executor = for_config(config)
    if command == "plan" and not args:
        print(json.dumps(plan(config, executor), indent=2))
        return Exit.OK
    if command == "run" and not args:
        try:
            tune(config, executor)
        except KeyboardInterrupt:
            return Exit.INTERRUPTED
        return Exit.OK
    if command == "jobs" and len(args) <= 1:
        place = tunings_for(executor)
        name = words(args[0], "TUNING")[0] if args else place.latest()
        if name is None:
            raise UserError(f"no tuning run of {config['PROJECT_NAME']} yet ({executor.where()}): `make tune"
                            f"{executor.env_flag()}` starts one")
        print_leaderboard(place.record(name), executor.prices())
        return Exit.OK
    raise UserError(f"unknown command {' '.join(argv)!r}: see `scripts/tune.py --help`")


if __name__ == "__main__":
    run(main, "tune")
