"""Tuning jobs on SageMaker: created from the same request, followed to their end (each trial as it starts and
ends, the best so far) with a copy of the record in JOBS_DIR/<tuning job>/. Ctrl-C leaves the job running.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sagemake.aws.api import call, console_url, create, plain
from sagemake.cli import UserError, say
from sagemake.executors.interface import Executor
from sagemake.jobs import TERMINAL, reason_line
from sagemake.jobs.training import (
    tuning_head,
    tuning_pattern,
)
from sagemake.jobs.tuning import save, unknown_run


class SageMakerTunings:
    """Tuning jobs on SageMaker: created from the same request, followed to their end (each trial as it starts and
    ends, the best so far) with a copy of the record in JOBS_DIR/<tuning job>/. Ctrl-C leaves the job running."""

    def __init__(self, executor: Executor):
        self.executor, self.config = executor, executor.config

    def run(self, request: dict, data_tags: list[dict], runtime=None) -> dict:
        executor, name = self.executor, request["HyperParameterTuningJobName"]
        definition = request["TrainingJobDefinition"]
        executor.sync_data()
        executor.ready(definition["AlgorithmSpecification"]["TrainingImage"], definition["InputDataConfig"],
                       definition["StaticHyperParameters"])
        request = {**request, "Tags": [*request["Tags"], *data_tags]}  # SageMaker puts them on every trial
        executor.refuse_duplicate("HyperParameterTuningJob", request, "make tune-jobs ENV={env} TUNING={name}")
        folder = self.config.path("JOBS_DIR") / name
        folder.mkdir(parents=True)
        (folder / "request.json").write_text(json.dumps(request, indent=2) + "\n")
        create(executor.sagemaker.create_hyper_parameter_tuning_job, lambda: self.record(name)["TrainingJobDefinition"]
               == request["TrainingJobDefinition"], f"tuning {name}", **request)
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
        sagemaker = self.executor.sagemaker
        missing = dict.fromkeys(("ResourceNotFound", "ValidationException"))
        record = call(sagemaker.describe_hyper_parameter_tuning_job, on=missing, HyperParameterTuningJobName=name)
        if record is None:
            raise UserError(f"no SageMaker tuning job named '{name}' in {self.executor.region}: "
                            f"{unknown_run(self.latest(), self.executor.env_flag())}")
        record = plain(record)
        pages = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=name)
        record["TrainingJobSummaries"] = call(lambda: [plain(summary) for page in pages
                                                       for summary in page["TrainingJobSummaries"]])
        return record

    def names(self, limit: int) -> list[str]:
        """This project's tuning jobs, newest first."""
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
                    said = f" {reason_line(trial.get('FailureReason', ''))}" if value is None else \
                        f" objective {value:.6g}"
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
