"""Tuning on this machine: optuna chooses each trial (TPE for Bayesian, seeded), each trial is a local training job,
TUNE_PARALLEL at a time; the run's record in DescribeHyperParameterTuningJob's shape.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import ThreadPoolExecutor as Pool

from sagemake.cli import UserError, say
from sagemake.clock import now as _now
from sagemake.config import Config
from sagemake.executors.interface import Executor
from sagemake.executors.local import records
from sagemake.executors.local.guarded import process_identity
from sagemake.jobs import reason_line
from sagemake.jobs.training import (
    final_metrics,
    metric_series,
)
from sagemake.jobs.tuning import RECORD, as_string, distributions, save, trial_label, trial_request, unknown_run

ARN = "arn:aws:sagemaker:local:000000000000:hyper-parameter-tuning-job/"


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
        self.owner = process_identity(os.getpid())

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
                                 "record": None, "trial": trial, "reported": 0, "pruned": None}
                        self.trials.append(entry)
                        say(f"tuning {self.name}: trial {len(self.trials)}/{total} {entry['name']}: "
                            + " ".join(f"{k}={v}" for k, v in values.items()))
                        # Trials that run side by side have their log lines told apart, as hosts do.
                        label = trial_label(entry["name"]) if parallel > 1 else ""
                        pending[pool.submit(self._run_trial, request, label)] = entry
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
        if entry["pruned"]:
            return
        log = self.executor.log_path(entry["name"])
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            return
        values = metric_series(self.objective, lines)
        trial = entry["trial"]
        for step in range(entry["reported"], len(values)):  # judged at each step, however many lines one read brings
            entry["reported"] = step + 1
            if not math.isfinite(values[step]):
                continue
            trial.report(values[step], step)
            if trial.should_prune():
                entry["pruned"] = (f"{self.goal['MetricName']}={values[step]:.6g} at step {step + 1} is worse than "
                                   "the median of the earlier trials there")
                self.executor.stop_jobs.add(entry["name"])
                return

    def _run_trial(self, request: dict, label: str) -> dict:
        return self.executor.run(request, self.runtime, label)

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
        value = final_metrics(record).get(self.goal["MetricName"])
        if record["TrainingJobStatus"] == "Completed" and value is not None and math.isfinite(value):
            study.tell(entry["trial"], value)  # one that finished before its early stop reached it too
        elif entry["pruned"] and record["TrainingJobStatus"] == "Stopped":
            say(f"tuning {self.name}: trial {entry['name']}: stopped early: {entry['pruned']}")
            study.tell(entry["trial"], state=optuna.trial.TrialState.PRUNED)
        else:
            if record.get("FailureReason"):  # its one line: the trial's log, above, has the rest
                say(f"tuning {self.name}: trial {entry['name']}: {record['TrainingJobStatus']}: "
                    f"{reason_line(record['FailureReason'])}")
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
            "LocalExecutor": self.owner,  # a run whose executor is gone is settled when read (records.py)
        }
        if self.status in ("Completed", "Stopped", "Failed"):
            record["HyperParameterTuningEndTime"] = record["LastModifiedTime"]
        best = self.best()
        if best:
            record["BestTrainingJob"] = next(s for s in summaries if s["TrainingJobName"] == best["name"])
        save(self.folder, record)


class LocalTunings:
    """Tuning runs on this machine: the search above, each run's record in JOBS_DIR/<tuning run>/."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config

    def run(self, request: dict, data_tags: list[dict], runtime=None) -> dict:
        LocalTuning(self.config, self.executor, request, runtime).run(data_tags)
        return self.record(request["HyperParameterTuningJobName"])

    def record(self, name: str) -> dict:
        """tuning.json; a run whose executor is gone is settled first (records.py), and the trials it last saw
        running are read from their own records (settled with it), as ListTrainingJobsForHyperParameterTuningJob
        would answer now."""
        found = records.read(self.config.path("JOBS_DIR") / name / RECORD)
        if found is None:
            raise UserError(f"no local tuning run {name} in {self.config['JOBS_DIR']}/: {unknown_run(self.latest())}")
        if found["HyperParameterTuningJobStatus"] != "InProgress":
            for summary in found.get("TrainingJobSummaries", []):
                if summary["TrainingJobStatus"] == "InProgress":
                    try:
                        summary["TrainingJobStatus"] = self.executor.describe(summary["TrainingJobName"])[
                            "TrainingJobStatus"]
                    except UserError:  # its folder is gone (make clean-jobs): as it was last seen
                        pass
        return found

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

    def names(self, limit: int) -> list[str]:
        """The local tuning runs, newest first."""
        return records.names(self.config.path("JOBS_DIR"), RECORD, limit=limit)

    def latest(self) -> str | None:
        found = self.names(1)
        return found[0] if found else None


def _objective(trial: dict, goal: dict) -> float | None:
    record = trial["record"]
    if not record or record.get("TrainingJobStatus") != "Completed":
        return None
    value = final_metrics(record).get(goal["MetricName"])
    return value if value is not None and math.isfinite(value) else None
