"""Summary: tune hyperparameters over TUNE_RANGES: TUNE_MAX_JOBS trials, TUNE_PARALLEL at a time; fetch the best

Usage: make tune [ENV=...]   (python -m sagemake tune)

One CreateHyperParameterTuningJob request (what `make tune-plan` prints), run
where ENV says. Locally: TUNE_MAX_JOBS trials, TUNE_PARALLEL at a time, each a
normal local job, chosen by optuna (TPE for Bayesian, seeded); on SageMaker:
the tuning job, followed (Ctrl-C leaves it running). Then the best trial's
model is fetched. Settings: TUNE_RANGES ('learning_rate=0.01:0.3:log
max_depth=2:8 loss=a|b'), TUNE_OBJECTIVE (default PRIMARY_METRIC, its
direction declared: name:max or name:min), TUNE_MAX_JOBS,
TUNE_PARALLEL, TUNE_STRATEGY (Bayesian or Random), TUNE_SEED,
TUNE_EARLY_STOPPING; the other hyperparameters come from HP.
Either way the run keeps JOBS_DIR/<tuning run>/: tuning.json
(DescribeHyperParameterTuningJob's shape, with the trials' summaries),
leaderboard.csv (with each trial's cost) and tuning.png, and the run is an MLflow run
with each trial a run nested under it.
Exit status: 0 done, 1 no trial completed, 2 bad input, 3 an AWS error, 130 interrupted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from sagemake.cli import Exit, JobFailed, UserError, print_table, say
from sagemake.config import Config, resolve
from sagemake.executors import Executor, for_config
from sagemake.job_python import ensure_channels
from sagemake.jobs.training import data_tags
from sagemake.jobs.tuning import LEADERBOARD, PLOT, RECORD, importance, plan, trial_number
from sagemake.models import fetch
from sagemake.targets.tune_jobs import leaderboard, write_leaderboard
from sagemake.tracking import Tracker

PLOTTER = Path(__file__).parents[1] / "tune_plot.py"  # run with the job's Python, which has matplotlib


def write_plot(config: Config, record: dict, folder: Path) -> Path | None:
    """tuning.png: the objective over trials and against the most important hyperparameter, drawn by the job's
    Python (it has matplotlib; the tool does not carry it); skipped, saying why, when that Python lacks it."""
    name, why = importance(record)
    goal = record["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    scales = {e["Name"]: e.get("ScalingType", "Linear")
              for kind in record["HyperParameterTuningJobConfig"]["ParameterRanges"].values() for e in kind}
    trials = [{"name": s["TrainingJobName"], "number": trial_number(s["TrainingJobName"]),
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
        say(f"tuning: no plot ({last}): matplotlib comes from docker/requirements-sagemake.txt")
        return None
    return path


def tune(config: Config, executor: Executor, runtime=None) -> tuple[Path, dict]:
    """The whole run where ENV says: checks, the search, the record, the leaderboard and plot, the best model
    fetched. Returns the run's folder (JOBS_DIR/<tuning run>/) and its record; KeyboardInterrupt after the record
    is kept."""
    tags = data_tags(config, ensure_channels(config))
    request = plan(config, executor)
    name = request["HyperParameterTuningJobName"]
    executor.ensure_image()
    folder = config.path("JOBS_DIR") / name
    tracker = Tracker(config)  # says a run the last writer could not write
    try:
        record = executor.tuning().run(request, tags, runtime)
    except KeyboardInterrupt:
        if (folder / RECORD).is_file():
            finish(config, executor, folder)
            tracker.ended(lambda: executor.tuning().record(name), "HyperParameterTuningJobStatus",
                          lambda ended: tracker.tuning(executor, ended, folder))
        raise
    if (folder / RECORD).is_file():
        finish(config, executor, folder)
    best = record.get("BestTrainingJob")
    goal = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    if record["HyperParameterTuningJobStatus"] != "Completed" or not best:
        tracker.tuning(executor, record, folder)
        why = record.get("FailureReason") or f"no trial completed with {goal['MetricName']}"
        raise JobFailed(f"tuning {name} {record['HyperParameterTuningJobStatus']}: {why}: see {folder / LEADERBOARD} "
                        f"and `make logs{executor.env_flag()} JOB=<trial>`")
    say(f"tuning {name}: best trial {best['TrainingJobName']} "
        f"{goal['MetricName']}={best['FinalHyperParameterTuningJobObjectiveMetric']['Value']:.6g}")
    tracker.tuning(executor, record, folder, fetch(config, executor, best["TrainingJobName"]))
    return folder, record


def finish(config: Config, executor: Executor, folder: Path) -> None:
    """The leaderboard printed and written beside the run, and the plot."""
    record = json.loads((folder / RECORD).read_text())
    if not record.get("TrainingJobSummaries"):
        return
    prices = executor.prices()
    header, rows = leaderboard(record, executor, prices)
    print_table([header, *rows])
    written = [write_leaderboard(header, rows, folder)]
    plot = write_plot(config, record, folder)
    if plot:
        written.append(plot)
    say(f"tuning {record['HyperParameterTuningJobName']}: {', '.join(str(p) for p in written)}")


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make tune")
    config = resolve()
    try:
        tune(config, for_config(config))
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    return Exit.OK

