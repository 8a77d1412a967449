"""Tuning: ranges and objective checked against the trainer's schema, the CreateHyperParameterTuningJob request,
and a real local tuning run (optuna choosing, every trial a normal local job under the process runtime)."""

import json
import os
import signal
import statistics
import subprocess
import threading
import time

import pytest
from conftest import ROOT, copy_repo, in_process, sagemake, sigint_as_a_terminal_gives_it

from sagemake.cli import AwsError, UserError
from sagemake.config import resolve
from sagemake.executors.local.executor import LocalExecutor
from sagemake.jobs.training import final_metrics as metrics
from sagemake.jobs.training import metric_series
from sagemake.jobs.training import plan as training_plan
from sagemake.jobs.tuning import LEADERBOARD, PLOT, RECORD, objective, plan
from sagemake.models import fetch
from sagemake.pricing import Price
from sagemake.targets.jobs import list_jobs
from sagemake.targets.tune import tune

RANGES = "learning_rate=0.02:0.5:log max_depth=1:4 subsample=0.5:1"
STATIC = "n_estimators=20"


def settings(example_data, tmp_path, **more):
    return {"DATA_DIR": str(example_data), "JOBS_DIR": str(tmp_path / "jobs"), "MODELS_DIR": str(tmp_path / "models"),
            "LOCAL_RUNTIME": "process", "HP": STATIC, "TUNE_RANGES": RANGES, "STOP_GRACE_SECONDS": "5", **more}


def test_the_request_is_typed_from_the_schema_and_built_from_the_training_request(example_data, tmp_path):
    config = resolve(root=ROOT, environ=settings(example_data, tmp_path, TUNE_MAX_JOBS="6", TUNE_PARALLEL="2",
                                                 TUNE_RANGES=RANGES + " target=target|label"))
    executor = LocalExecutor(config)
    request = plan(config, executor)
    job = request["HyperParameterTuningJobConfig"]
    assert job["ParameterRanges"] == {
        "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "4", "ScalingType": "Linear"}],
        "ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0.02", "MaxValue": "0.5", "ScalingType": "Logarithmic"},
            {"Name": "subsample", "MinValue": "0.5", "MaxValue": "1", "ScalingType": "Linear"}],
        "CategoricalParameterRanges": [{"Name": "target", "Values": ["target", "label"]}],
    }
    assert job["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    assert job["Strategy"] == "Bayesian"
    assert job["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:roc_auc"}
    assert len(request["HyperParameterTuningJobName"]) <= 32
    training = training_plan(config, executor)
    definition = request["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {"n_estimators": "20", "seed": "0"}  # less the tuned ones
    assert definition["AlgorithmSpecification"] == {k: training["AlgorithmSpecification"][k] for k in
                                                    ("TrainingImage", "TrainingInputMode", "MetricDefinitions")}
    assert definition["InputDataConfig"] == training["InputDataConfig"]
    assert {"Key": "sagemake:tuning", "Value": request["HyperParameterTuningJobName"]} in request["Tags"]


@pytest.mark.parametrize("more, expected", [
    ({}, {"Type": "Maximize", "MetricName": "validation:roc_auc"}),  # src/trainer/metrics.py: validation:roc_auc:max
    ({"TUNE_OBJECTIVE": "validation:nll"}, {"Type": "Minimize", "MetricName": "validation:nll"}),  # :min there
    ({"METRICS": "nll:min acc:max"}, {"Type": "Minimize", "MetricName": "nll"}),
    ({"METRICS": "val_auc:max nll:min", "TUNE_OBJECTIVE": "nll"}, {"Type": "Minimize", "MetricName": "nll"}),
    ({"METRICS": "nll acc", "TUNE_OBJECTIVE": "nll:min"}, {"Type": "Minimize", "MetricName": "nll"}),
    ({"METRICS": "loss acc", "TUNE_OBJECTIVE": "loss:max"}, {"Type": "Maximize", "MetricName": "loss"}),
])
def test_the_objective_direction_is_the_declared_one_never_guessed(more, expected, example_data, tmp_path):
    assert objective(resolve(root=ROOT, environ=settings(example_data, tmp_path, **more))) == expected


@pytest.mark.parametrize("more, said", [
    ({"TUNE_RANGES": "learning_rate=0.01:2"}, "learning_rate"),  # le=1
    ({"TUNE_RANGES": "max_depth=0:4"}, "max_depth"),  # ge=1
    ({"TUNE_RANGES": "max_depth=1.5:4"}, "integer"),
    ({"TUNE_RANGES": "max_depth=a|b"}, "max_depth"),
    ({"TUNE_RANGES": "depth=1:3"}, "not a hyperparameter"),
    ({"TUNE_OBJECTIVE": "validation:nope"}, "not a declared metric"),
    ({"TUNE_MAX_JOBS": "2", "TUNE_PARALLEL": "3"}, "TUNE_PARALLEL=3 is more than TUNE_MAX_JOBS=2"),
    ({"TUNE_RANGES": "learning_rate=0:0.5:log"}, "learning_rate"),
    ({"METRICS": "nll acc"}, "the tuning objective nll has no declared direction: declare it nll:max or nll:min in "
                             "METRICS, or set TUNE_OBJECTIVE=nll:max (or :min)"),
    ({"METRICS": "validation:logloss rmse"}, "validation:logloss has no declared direction"),  # a name says nothing
    ({"METRICS": "nll:min acc:max", "TUNE_OBJECTIVE": "nll:max"},
     "TUNE_OBJECTIVE=nll:max contradicts METRICS, which declares nll:min: keep one"),
    ({"CHECKPOINT_FROM": "sagemake-example-1a2b3c4-261122-101500-123k3x9q"},
     "starts one training job (make train) from another's checkpoints; a tuning run's trials start afresh"),
])
def test_bad_input_is_one_line_and_exit_2(more, said, example_data, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNE_")}
    done = subprocess.run([*sagemake(ROOT), "tune-plan"], capture_output=True, text=True,
                          env={**env, **settings(example_data, tmp_path, **more)})
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and said in done.stderr, done.stderr


def test_make_tune_refuses_an_objective_without_a_direction_before_anything_runs(example_data, tmp_path):
    """METRICS='nll acc': nll was maximized (its name says nothing), the worst trial starred and fetched; now the
    run is refused in one line naming the fix, and nothing is trained."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNE_")}
    done = subprocess.run([*sagemake(ROOT), "tune"], capture_output=True, text=True,
                          env={**env, **settings(example_data, tmp_path, METRICS="nll acc")})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == ("sagemake: the tuning objective nll has no declared direction: declare "
                                            "it nll:max or nll:min in METRICS, or set TUNE_OBJECTIVE=nll:max (or :min)")
    assert not (tmp_path / "jobs").exists() and not (tmp_path / "models").exists()


def test_a_minimized_objective_stars_fetches_and_sorts_its_lowest_trial(example_data, tmp_path, capsys):
    """validation:nll:min (src/trainer/metrics.py): the best trial is the lowest, first in the leaderboard and
    starred there and in `make jobs`, and its model is the one fetched."""
    config = resolve(root=ROOT, environ=settings(example_data, tmp_path, TUNE_MAX_JOBS="4", TUNE_PARALLEL="2",
                                                 TUNE_OBJECTIVE="validation:nll"))
    executor = LocalExecutor(config)
    folder, record = tune(config, executor)
    assert record["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize", "MetricName": "validation:nll"}
    values = {t["TrainingJobName"]: metrics(executor.describe(t["TrainingJobName"]))["validation:nll"]
              for t in record["TrainingJobSummaries"]}
    assert len(set(values.values())) == 4
    lowest = min(values, key=values.get)
    assert record["BestTrainingJob"]["TrainingJobName"] == lowest
    rows = [row.split(",") for row in (folder / LEADERBOARD).read_text().splitlines()[1:]]
    assert [row[0] for row in rows] == sorted(values, key=values.get)  # best (lowest) first
    out = capsys.readouterr().out
    assert f"{lowest} *" in out and sum(" *" in line for line in out.splitlines()) == 1
    assert (tmp_path / "models" / lowest / "manifest.json").is_file()
    assert [p.name for p in (tmp_path / "models").iterdir()] == [lowest]
    list_jobs(config, executor, 10)
    assert f"{lowest} *" in capsys.readouterr().out


OPTIONAL_FIELDS = """
    clip_target: Optional[float] = Field(None, gt=0, le=1, description="clip the target (None: never)")
    min_leaf: int | None = Field(None, ge=1, description="rows per leaf (None: the library's default)")
    label: Optional[str] = Field(None, description="another label column")
"""


@pytest.mark.parametrize("ranges, expected", [
    ("clip_target=0.1:0.9", {"ContinuousParameterRanges": [
        {"Name": "clip_target", "MinValue": "0.1", "MaxValue": "0.9", "ScalingType": "Linear"}]}),
    ("min_leaf=1:20", {"IntegerParameterRanges": [
        {"Name": "min_leaf", "MinValue": "1", "MaxValue": "20", "ScalingType": "Linear"}]}),
])
def test_an_optional_hyperparameter_takes_the_range_of_its_type(ranges, expected, example_data, tmp_path):
    """Optional[float] and int | None are a float and an int to a range (a range never gives None); a range that
    breaks the type's own bounds is still refused."""
    repo = copy_repo(tmp_path / "my project")
    schema = repo / "src/trainer/hyperparameters.py"
    schema.write_text("from typing import Optional\n" + schema.read_text() + OPTIONAL_FIELDS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNE_")}
    done = subprocess.run([*sagemake(repo), "tune-plan"], capture_output=True, text=True,
                          env={**env, **settings(example_data, tmp_path, TUNE_RANGES=ranges)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["HyperParameterTuningJobConfig"]["ParameterRanges"] == expected

    name = ranges.split("=")[0]
    wider = {"clip_target": "0.1:2", "min_leaf": "0:20"}[name]
    refused = subprocess.run([*sagemake(repo), "tune-plan"], capture_output=True, text=True,
                             env={**env, **settings(example_data, tmp_path, TUNE_RANGES=f"{name}={wider}")})
    assert refused.returncode == 2 and "refused by the trainer's schema" in refused.stderr, refused.stderr

    text = subprocess.run([*sagemake(repo), "tune-plan"], capture_output=True, text=True,
                          env={**env, **settings(example_data, tmp_path, TUNE_RANGES="label=1:3")})
    assert text.returncode == 2
    assert text.stderr == ("sagemake: TUNE_RANGES label=1:3: label is typed str: a numeric range does not fit it (a "
                           "categorical range a|b|c does)\n")


def test_a_local_tuning_run_of_6_trials_2_at_a_time(example_data, tmp_path, capsys):
    environ = settings(example_data, tmp_path, TUNE_MAX_JOBS="6", TUNE_PARALLEL="2")
    config = resolve(root=ROOT, environ=environ)
    executor = LocalExecutor(config)
    baseline = executor.run(training_plan(config, executor))  # the default values of the tuned hyperparameters
    capsys.readouterr()
    folder, record = tune(config, executor)
    name = record["HyperParameterTuningJobName"]
    trials = record["TrainingJobSummaries"]
    out = capsys.readouterr().out
    assert_labelled(executor, trials, out)  # trials side by side: each line says whose it is
    assert len(trials) == 6 and record["HyperParameterTuningJobStatus"] == "Completed"
    assert record["TrainingJobStatusCounters"]["Completed"] == 6 and record["ObjectiveStatusCounters"]["Succeeded"] == 6
    goal = "validation:roc_auc"
    values = {}
    for trial in trials:  # each a normal local job: its folder, its record, its metrics, its tag
        job = executor.describe(trial["TrainingJobName"])
        assert job["TrainingJobStatus"] == "Completed"
        assert (executor.folder(trial["TrainingJobName"]) / "train.log").is_file()
        assert executor.tags(trial["TrainingJobName"])["tuning"] == name
        static = {"n_estimators": "20", "target": "target", "seed": "0"}
        assert job["HyperParameters"] == {**static, **trial["TunedHyperParameters"]}
        values[trial["TrainingJobName"]] = metrics(job)[goal]
    assert len({json.dumps(t["TunedHyperParameters"], sort_keys=True) for t in trials}) == 6
    assert set(values) <= set(executor.names(None))  # `make jobs` lists them
    best = record["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values.values())
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] >= metrics(baseline)[goal]
    manifest = json.loads((tmp_path / "models" / best["TrainingJobName"] / "manifest.json").read_text())
    assert manifest["tuning_job"] == name and manifest["hyperparameters"]["max_depth"] == \
        best["TunedHyperParameters"]["max_depth"]
    rows = (folder / LEADERBOARD).read_text().splitlines()
    assert rows[0].split(",") == ["trial", "learning_rate", "max_depth", "subsample", goal, "DURATION", "COST",
                                  "STATUS"]
    assert all(row.split(",")[6].startswith("$") for row in rows[1:])  # what each would have cost on SageMaker
    for row in rows[1:]:  # each trial's duration is its own record's training time
        assert row.split(",")[5] == f"{executor.describe(row.split(',')[0])['TrainingTimeInSeconds']}s", row
    scores = [float(row.split(",")[4]) for row in rows[1:]]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)
    assert (folder / PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((folder / RECORD).read_text()) == record
    assert best["TrainingJobName"] + " *" in out  # the leaderboard, the best marked
    assert fetch(config, executor).name == best["TrainingJobName"]  # `make fetch` after a run: its best trial
    assert "is a trial of tuning run" in capsys.readouterr().err or executor.latest() == best["TrainingJobName"]
    list_jobs(config, executor, 10)  # `make jobs`: the trials among the jobs, the best marked
    listed = capsys.readouterr()
    assert f"{best['TrainingJobName']} *" in listed.out
    assert f"* the best trial of its tuning run (`make tune-jobs TUNING={name}` shows the run)" in listed.err
    assert sum(line.split()[0] in values for line in listed.out.splitlines() if line.strip()) == 6
    logs = subprocess.run([*sagemake(ROOT), "logs", name], capture_output=True, text=True,
                          env={**os.environ, **environ})  # `make logs JOB=<tuning run>`: its trials' logs
    assert logs.returncode == 0, logs.stderr
    assert_labelled(executor, trials, logs.stdout)
    assert logs.stderr.splitlines()[-1] == f"==> tuning {name}: Completed: 6 trial(s)"


def assert_labelled(executor, trials: list[dict], out: str) -> None:
    """Every line of each trial's log is in out after its trial's label ([trial-<number>]), and none without it."""
    shown = out.splitlines()
    for trial in trials:
        number = int(trial["TrainingJobName"].split("-")[-2])
        lines = (executor.folder(trial["TrainingJobName"]) / "train.log").read_text().splitlines()
        assert lines and all(f"[trial-{number}] {line}" in shown for line in lines), (number, lines, out)
    assert not [line for line in shown if line.startswith(("hyperparameters:", "validation:"))], out


def test_ctrl_c_stops_the_running_trials_and_keeps_the_record(example_data, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNE_")}
    environ = settings(example_data, tmp_path, TUNE_MAX_JOBS="4", TUNE_PARALLEL="2", HP="n_estimators=3000")
    process = subprocess.Popen([*sagemake(ROOT), "tune"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_a_terminal_gives_it,
                               env={**env, **environ})
    jobs = tmp_path / "jobs"
    while len([p for p in jobs.glob("*/job.json") if json.loads(p.read_text())["SecondaryStatus"] == "Training"]) < 2:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    record = json.loads(next(jobs.glob(f"*/{RECORD}")).read_text())
    assert record["HyperParameterTuningJobStatus"] == "Stopped"
    assert record["TrainingJobStatusCounters"]["Stopped"] == 2 and len(record["TrainingJobSummaries"]) == 2
    assert all(json.loads(p.read_text())["TrainingJobStatus"] == "Stopped" for p in jobs.glob("*/job.json"))


def test_kill_9_of_make_tune_settles_its_record_and_its_trials_failed(example_data, tmp_path):
    """A tuning run whose executor is killed (kill -9, a crash): its trials end with it (their guards), and the next
    read of the run (make tune-jobs, make jobs, make fetch) finds it Failed, naming the executor, not InProgress."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNE_")}
    environ = settings(example_data, tmp_path, TUNE_MAX_JOBS="4", TUNE_PARALLEL="2", HP="n_estimators=3000")
    process = subprocess.Popen([*sagemake(ROOT), "tune"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env={**env, **environ})
    jobs = tmp_path / "jobs"
    while len([p for p in jobs.glob("*/job.json") if json.loads(p.read_text())["SecondaryStatus"] == "Training"]) < 2:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.2)
    process.kill()
    process.wait(timeout=60)
    (path,) = jobs.glob(f"*/{RECORD}")
    assert json.loads(path.read_text())["HyperParameterTuningJobStatus"] == "InProgress"  # as the kill left it
    config = resolve(root=ROOT, environ=environ)
    record = LocalExecutor(config).tuning().record(path.parent.name)
    assert record["HyperParameterTuningJobStatus"] == "Failed" and "HyperParameterTuningEndTime" in record
    assert record["FailureReason"].startswith(f"ClientError: the executor (pid {process.pid}) ended without ending")
    # Settled once, and saved; each trial's status is read from its own record (ended by its guard by then, or not).
    saved = json.loads(path.read_text())
    assert {**saved, "TrainingJobSummaries": None} == {**record, "TrainingJobSummaries": None}
    deadline = time.monotonic() + 60  # each trial's guard stops it with the executor (SIGTERM, then the grace)
    while any(LocalExecutor(config).describe(p.parent.name)["TrainingJobStatus"] == "InProgress"
              for p in jobs.glob("*/job.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {LocalExecutor(config).describe(p.parent.name)["TrainingJobStatus"] for p in jobs.glob("*/job.json")} \
        == {"Failed"}
    listed = subprocess.run([*sagemake(ROOT), "tune-jobs"], capture_output=True, text=True, env={**env, **environ})
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[-1] for line in listed.stdout.splitlines()[1:]] == ["Failed", "Failed"]  # not InProgress
    assert f"tuning {path.parent.name}: Failed: ClientError: the executor (pid {process.pid}) ended" in listed.stderr


@pytest.mark.parametrize("goal, better", [("validation:roc_auc", max), ("validation:nll", min)])
def test_early_stopping_stops_the_trials_worse_than_the_median_at_a_step(goal, better, example_data, tmp_path,
                                                                         capsys):
    """TUNE_EARLY_STOPPING=Auto: each trial's objective, printed after every 50 rounds, is reported as it comes; a
    trial whose best so far is worse than the median of the completed earlier trials at that step is stopped:
    below it for roc_auc (:max), above it for nll (:min)."""
    config = resolve(root=ROOT, environ=settings(
        example_data, tmp_path, TUNE_MAX_JOBS="4", TUNE_PARALLEL="1", TUNE_STRATEGY="Random", TUNE_SEED="3",
        TUNE_RANGES="learning_rate=0.001:0.5:log", HP="n_estimators=2000", TUNE_EARLY_STOPPING="Auto",
        TUNE_OBJECTIVE=goal))
    executor = LocalExecutor(config)
    assert plan(config, executor)["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] == "Auto"
    _, record = tune(config, executor)
    definition = {"Name": goal, "Regex": next(
        d["Regex"] for d in record["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
        if d["Name"] == goal)}
    series, completed = {}, []
    stopped = [t["TrainingJobName"] for t in record["TrainingJobSummaries"] if t["TrainingJobStatus"] == "Stopped"]
    assert stopped, capsys.readouterr().err  # the seeded search meets a hopeless trial
    for trial in record["TrainingJobSummaries"]:  # in the order they ran, one at a time
        name = trial["TrainingJobName"]
        series[name] = metric_series(definition, (executor.folder(name) / "train.log").read_text().splitlines())
        if name in stopped:
            assert record["TrainingJobStatusCounters"]["Stopped"] == len(stopped)
            medians = [statistics.median(series[c][step] for c in completed) for step in range(len(series[name]))]
            assert any(better(series[name][:step + 1]) != median and better(better(series[name][:step + 1]), median)
                       == median for step, median in enumerate(medians)), (name, series)  # its best is worse
            assert len(series[name]) < 40  # stopped before its 2,000 rounds
        else:
            assert trial["TrainingJobStatus"] == "Completed" and len(series[name]) == 40  # 39 steps, then the end
            completed.append(name)
    assert record["BestTrainingJob"]["TrainingJobName"] in completed
    assert f"stopped early: {goal}=" in capsys.readouterr().err


def test_a_read_that_brings_many_steps_judges_each_of_them(example_data, tmp_path):
    """The log is read once a second: a trial whose lines for steps 1 to 5 arrive in one read is stopped at the first
    step where it was worse than the median, though its best by step 5 is better than the median there."""
    import optuna

    from sagemake.executors.local.tuning import LocalTuning, pruner

    config = resolve(root=ROOT, environ=settings(example_data, tmp_path, TUNE_EARLY_STOPPING="Auto"))
    executor = LocalExecutor(config)
    study = optuna.create_study(direction="minimize", pruner=pruner(config, 3))
    earlier = study.ask()
    for step, value in enumerate([0.5, 0.4, 0.3, 0.2, 0.15]):
        earlier.report(value, step)
    study.tell(earlier, 0.15)
    tuning = LocalTuning.__new__(LocalTuning)
    tuning.executor, tuning.goal = executor, {"MetricName": "validation:nll", "Type": "Minimize"}
    tuning.objective = {"Name": "validation:nll", "Regex": r"validation:nll=([0-9.]+)"}
    entry = {"name": "late-starter", "trial": study.ask(), "reported": 0, "pruned": None}
    executor.log_path(entry["name"]).parent.mkdir(parents=True)
    executor.log_path(entry["name"]).write_text("".join(f"validation:nll={v}\n" for v in (0.6, 0.3, 0.2, 0.1, 0.05)))
    tuning._prune(entry)
    assert entry["pruned"] == ("validation:nll=0.6 at step 1 is worse than the median of the earlier trials there")
    assert entry["name"] in executor.stop_jobs and entry["reported"] == 1


SLOW_EXIT = """
import atexit
import time

atexit.register(time.sleep, 2)  # a logger flushing at exit: the process ends seconds after its last metric
"""


def test_a_trial_that_finished_is_never_stopped_early(example_data, tmp_path, capsys):
    """Early stopping judged a trial on its final line (printed once it had trained, its model written) while its
    process was still ending, and stopped it: Stopped, its objective blank in `make tune-jobs` and shown in `make
    jobs`. A trial that finished completes, and its objective is the same in every listing. With 20 rounds the
    fixture prints no line as it trains: the final one is all the pruner sees."""
    repo = copy_repo(tmp_path / "my project")
    with (repo / "src/trainer/train.py").open("a") as handle:
        handle.write(SLOW_EXIT)
    config = resolve(root=repo, environ=settings(
        example_data, tmp_path, TUNE_MAX_JOBS="3", TUNE_PARALLEL="1", TUNE_STRATEGY="Random", TUNE_SEED="1",
        TUNE_RANGES="learning_rate=0.001|0.5", TUNE_EARLY_STOPPING="Auto"))
    executor = LocalExecutor(config)
    _, record = tune(config, executor, in_process(repo))
    said = capsys.readouterr()
    assert ": asked to stop: stopping it" in said.err  # the pruner did judge a finished trial hopeless
    assert "stopped early" not in said.err
    goal = "validation:roc_auc"
    for trial in record["TrainingJobSummaries"]:
        job = executor.describe(trial["TrainingJobName"])
        assert trial["TrainingJobStatus"] == job["TrainingJobStatus"] == "Completed", trial
        assert trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == metrics(job)[goal]
    shown = subprocess.run([*sagemake(repo), "tune-jobs"], capture_output=True, text=True,
                           env={**os.environ, **settings(example_data, tmp_path)})
    listed = subprocess.run([*sagemake(repo), "jobs"], capture_output=True, text=True,
                            env={**os.environ, **settings(example_data, tmp_path)})
    for trial in record["TrainingJobSummaries"]:  # each listing in its own precision: 6 digits, 4 decimals
        value = trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        for listing, written in ((shown.stdout, f"{value:.6g}"), (listed.stdout, f"{value:.4f}")):
            (line,) = [line for line in listing.splitlines() if line.startswith(trial["TrainingJobName"])]
            assert f" {written} " in f"{line} ", (line, written)


@pytest.mark.parametrize("given", ["../outside", "../../x", "/tmp/x", "run/.."])
def test_a_tuning_name_given_by_a_user_is_never_a_path(given, example_data, tmp_path):
    """TUNING names a run under JOBS_DIR: a name that would reach outside it (here, where a run's record is waiting
    to be read) is refused in one line before any file is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "jobs").mkdir()
    (outside / RECORD).write_text(json.dumps({
        "HyperParameterTuningJobName": "outside", "HyperParameterTuningJobStatus": "Completed",
        "HyperParameterTuningJobConfig": {"HyperParameterTuningJobObjective": {"Type": "Maximize",
                                                                                "MetricName": "validation:roc_auc"}},
        "TrainingJobDefinition": {"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}},
        "TrainingJobSummaries": []}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNE_")}
    done = subprocess.run([*sagemake(ROOT), "tune-jobs", given], capture_output=True, text=True,
                          env={**env, **settings(example_data, tmp_path)})
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr == (f"sagemake: TUNING={given!r} is not a job name (1-63 letters, digits or '-'): give the "
                           "name alone, as `make tune-jobs` shows the latest\n")


class Trials:
    """DescribeTrainingJob for tune-jobs: each record answered only once another trial's is being asked too (asked
    one at a time, the first waits out the barrier and fails); `gone` has no record, `denied` is AWS refusing."""

    def __init__(self):
        self.together = threading.Barrier(2, timeout=5)

    def describe(self, name):
        if name == "gone":
            raise UserError(f"no local job named '{name}'")
        if name == "denied":
            raise AwsError("AWS denied DescribeTrainingJob")
        self.together.wait()
        return {"TrainingJobName": name, "TrainingTimeInSeconds": 60,
                "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}


class Hourly:
    def hourly(self, instance_type, kind):
        return Price(instance_type, "us-east-1", 0.6, "test")


def test_tune_jobs_asks_the_trials_records_together_in_the_leaderboards_order():
    from sagemake.targets.tune_jobs import leaderboard

    def summary(name, status, value=None):
        return {"TrainingJobName": name, "TrainingJobStatus": status, "TunedHyperParameters": {"max_depth": "3"},
                **({"FinalHyperParameterTuningJobObjectiveMetric": {"Value": value}} if value is not None else {})}

    record = {"HyperParameterTuningJobConfig": {"HyperParameterTuningJobObjective": {"Type": "Minimize",
                                                                                    "MetricName": "nll"}},
              "TrainingJobSummaries": [summary("b", "Completed", 0.2), summary("gone", "Failed"),
                                       summary("a", "Completed", 0.1), summary("c", "InProgress")]}
    header, rows = leaderboard(record, Trials(), Hourly())
    assert header == ["TRIAL", "max_depth", "nll", "DURATION", "COST", "STATUS"]
    assert rows == [["a", "3", "0.1", "60s", "$0.01", "Completed"], ["b", "3", "0.2", "60s", "$0.01", "Completed"],
                    ["c", "3", "", "", "", "InProgress"], ["gone", "3", "", "", "", "Failed"]]
    record["TrainingJobSummaries"].append(summary("denied", "Failed"))
    with pytest.raises(AwsError, match="AWS denied"):
        leaderboard(record, Trials(), Hourly())
