"""Processing and tuning jobs on SageMaker as a user runs them (`make preprocess ENV=prod`, `make tune ENV=prod`),
against moto's server, with the emulator's drivers playing SageMaker's part for real."""

import json
import os
import signal
import subprocess
import threading

import pytest
from conftest import ROOT, sigint_as_a_terminal_gives_it
from emulator import (
    ACCOUNT,
    REGION,
    ROLE,
    ProcessingDriver,
    TuningDriver,
    client,
    make_bucket,
    register_image,
    repository_image,
)
from emulator import settings as aws_settings
from test_processing import check_channels

import trainer.raw
from sagemake.pricing import cost, money

PREFIX = "s3://train-bucket/sagemake-example"  # S3_PREFIX's default: the example's PROJECT_NAME


def environment(tmp_path, **extra) -> dict:
    return {**os.environ, "ENV": "prod", "RAW_DIR": str(tmp_path / "raw"), "DATA_DIR": str(tmp_path / "data"),
            "MODELS_DIR": str(tmp_path / "models"), **aws_settings(), **extra}


def make(target, tmp_path, **extra):
    return subprocess.run(["make", "-s", target], cwd=ROOT, env=environment(tmp_path, **extra), capture_output=True,
                          text=True, timeout=300)


def in_ecr() -> str:
    """The image the scripts compute, put in the emulator's ECR as a push would (no engine needed)."""
    image = repository_image({"ENV": "prod", **aws_settings()})
    register_image(image)
    return image


# How a command is interrupted: Ctrl-C in its terminal, a CI runner cancelling it, its terminal closed; each reaches
# the whole process group, and each takes the same path.
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def interrupted(tmp_path, target: str, started: str, signum: int = signal.SIGINT, **extra) -> str:
    """`make <target>` stopped by signum (to its process group, as a terminal sends it) once its stderr says
    `started`; its stderr."""
    process = subprocess.Popen(["make", "-s", target], cwd=ROOT, env=environment(tmp_path, **extra),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=sigint_as_a_terminal_gives_it)
    lines, running = [], threading.Event()

    def read():
        for line in process.stderr:
            lines.append(line)
            if started in line:
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert running.wait(120), "".join(lines)
        os.killpg(process.pid, signum)
        assert process.wait(60) == -signum  # make ends by the signal, as a terminal sees it
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(10)
    return "".join(lines)


def processing_jobs() -> list[dict]:
    sagemaker = client("sagemaker")
    return [sagemaker.describe_processing_job(ProcessingJobName=s["ProcessingJobName"])
            for s in sagemaker.list_processing_jobs()["ProcessingJobSummaries"]]


def test_make_preprocess_env_prod_runs_a_processing_job_and_installs_what_it_wrote(aws, tmp_path):
    make_bucket()
    image = in_ecr()
    trainer.raw.main(tmp_path / "raw")
    with ProcessingDriver(tmp_path / "sagemaker"):
        result = make("preprocess", tmp_path)
    assert result.returncode == 0, result.stderr
    check_channels(tmp_path / "data", tmp_path / "raw")  # what the job wrote in S3, downloaded whole

    (job,) = processing_jobs()
    name = job["ProcessingJobName"]
    assert job["ProcessingJobStatus"] == "Completed" and job["RoleArn"] == ROLE
    assert job["ProcessingJobArn"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{name}"
    assert job["AppSpecification"] == {"ImageUri": image,
                                       "ContainerEntrypoint": ["python3", "-m", "trainer.preprocess"]}
    (raw,) = job["ProcessingInputs"]
    digest = json.loads((tmp_path / "data/.preprocessed.json").read_text())["raw"]
    assert raw["S3Input"]["S3Uri"] == f"{PREFIX}/processing/input/raw/{digest}/"
    assert raw["S3Input"]["LocalPath"] == "/opt/ml/processing/input/raw"
    assert {o["OutputName"]: o["S3Output"]["S3Uri"] for o in job["ProcessingOutputConfig"]["Outputs"]} == {
        c: f"{PREFIX}/processing/output/{name}/{c}/" for c in ("train", "validation")}
    assert "processing: input raw: 1 uploaded" in result.stderr.replace(f"processing {name}: ", "processing: ")
    assert f"#/processing-jobs/{name}" in result.stderr
    assert f"processing {name}: [0:00:00] InProgress" in result.stderr
    assert f"processing {name}: " in result.stderr and "] Completed" in result.stderr
    assert "[algo-1-1700000000] preprocess:" in result.stdout  # the job's own log, from CloudWatch

    # Unchanged: no job. Other arguments: a new job on the raw data uploaded already.
    again = make("preprocess", tmp_path)
    assert again.returncode == 0 and "unchanged" in again.stderr and len(processing_jobs()) == 1
    with ProcessingDriver(tmp_path / "sagemaker"):
        other = make("preprocess", tmp_path, PREPROCESS_ARGS="--seed 7")
    assert other.returncode == 0, other.stderr
    assert "0 uploaded (0.0 MB), 1 there already" in other.stderr and len(processing_jobs()) == 2
    check_channels(tmp_path / "data", tmp_path / "raw")


def test_a_processing_job_that_fails_on_sagemaker_says_why_and_leaves_the_channels(aws, tmp_path):
    make_bucket()
    in_ecr()
    trainer.raw.main(tmp_path / "raw")
    with ProcessingDriver(tmp_path / "sagemaker"):
        result = make("preprocess", tmp_path, PREPROCESS_ARGS="--label outcome")
    assert result.returncode == 2 and "preprocess] Error 1" in result.stderr  # make's status; the script's: 1
    (job,) = processing_jobs()
    assert job["ProcessingJobStatus"] == "Failed"
    assert (f"processing {job['ProcessingJobName']} Failed: AlgorithmError: See job logs for more information "
            "(last line: preprocess: no label column 'outcome' in the raw data") in result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_ctrl_c_stops_the_processing_job_on_sagemaker(aws, tmp_path, signum):
    make_bucket()
    in_ecr()
    trainer.raw.main(tmp_path / "raw")
    with ProcessingDriver(tmp_path / "sagemaker", start_seconds=120):
        said = interrupted(tmp_path, "preprocess", "] InProgress", signum)
    (job,) = processing_jobs()
    assert job["ProcessingJobStatus"] == "Stopped", said
    assert f"processing {job['ProcessingJobName']}: stop requested (interrupted)" in said
    assert not (tmp_path / "data").exists()



def test_a_killed_make_preprocess_env_prod_is_not_run_again_while_its_job_runs(aws, tmp_path):
    """kill -9 (nothing can stop the job then): the processing job runs on, and the same command run again refuses
    in one line instead of paying for a second one; ALLOW_DUPLICATE=true starts it all the same."""
    make_bucket()
    in_ecr()
    trainer.raw.main(tmp_path / "raw")
    with ProcessingDriver(tmp_path / "sagemaker", start_seconds=120):
        interrupted(tmp_path, "preprocess", "] InProgress", signal.SIGKILL)
        (job,) = processing_jobs()
        assert job["ProcessingJobStatus"] == "InProgress"
        again = make("preprocess", tmp_path)
    assert again.returncode == 2, again.stderr
    assert (f"sagemake: {job['ProcessingJobName']} is InProgress on SageMaker with this same request: follow it (make "
            "jobs ENV=prod lists it), or set ALLOW_DUPLICATE=true to start another") in again.stderr, again.stderr
    assert len(processing_jobs()) == 1
    with ProcessingDriver(tmp_path / "sagemaker"):
        forced = make("preprocess", tmp_path, ALLOW_DUPLICATE="true")
    assert forced.returncode == 0, forced.stderr
    assert len(processing_jobs()) == 2


# --- tuning ---

RANGES = "learning_rate=0.02:0.5:log max_depth=1:4"
TUNING = {"TUNE_RANGES": RANGES, "TUNE_MAX_JOBS": "4", "TUNE_PARALLEL": "2", "HP": "n_estimators=20"}


def score(values: dict) -> float:
    """The objective the emulated trials report: deeper trees and faster learning score higher."""
    return round(0.9 + 0.02 * int(values["max_depth"]) + float(values["learning_rate"]) / 100, 6)


def test_make_tune_env_prod_runs_a_tuning_job_follows_its_trials_and_fetches_the_best(aws, tmp_path, example_data,
                                                                                      trained_model):
    make_bucket()
    image = in_ecr()
    with TuningDriver(trained_model, score, failing={3}) as driver:
        result = make("tune", tmp_path, DATA_DIR=str(example_data), JOBS_DIR=str(tmp_path / "jobs"), **TUNING)
        shown = make("tune-jobs", tmp_path, JOBS_DIR=str(tmp_path / "jobs"))
        listed = make("jobs", tmp_path)  # the trials are this project's jobs
        sagemaker = client("sagemaker")
        (summary,) = sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
        name = summary["HyperParameterTuningJobName"]
        logs = make("logs", tmp_path, JOB=name)  # the tuning job's trials' logs, each line after its trial's label
    assert result.returncode == 0, result.stderr
    sent = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert sent["HyperParameterTuningJobConfig"] == {
        "Strategy": "Bayesian", "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:roc_auc"},
        "ParameterRanges": {
            "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "4",
                                        "ScalingType": "Linear"}],
            "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.02", "MaxValue": "0.5",
                                           "ScalingType": "Logarithmic"}]},
        "TrainingJobEarlyStoppingType": "Off"}
    definition = sent["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["TrainingImage"] == image and definition["RoleArn"] == ROLE
    assert "validation:roc_auc" in [m["Name"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]]
    assert definition["StaticHyperParameters"]["n_estimators"] == "20"
    assert not {"learning_rate", "max_depth"} & set(definition["StaticHyperParameters"])
    assert {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in definition["InputDataConfig"]} == {
        c: f"{PREFIX}/data/{c}/" for c in ("train", "validation")}  # synced before the job was created
    assert "upload: train: 1 uploaded" in result.stderr

    # Followed: each trial as it started and ended, the best so far; the best trial's model fetched.
    trials = driver.trials
    assert len(trials) == 4 and [t["TrainingJobStatus"] for t in trials].count("Failed") == 1
    for trial in trials:
        assert f"tuning {name}: trial {trial['TrainingJobName']}: learning_rate=" in result.stderr
    assert f"trial {trials[2]['TrainingJobName']}: Failed AlgorithmError: the trial failed" in result.stderr
    best = max((t for t in trials if t["TrainingJobStatus"] == "Completed"),
               key=lambda t: score(t["TunedHyperParameters"]))
    assert f"tuning {name}: best trial {best['TrainingJobName']} validation:roc_auc=" in result.stderr
    manifest = json.loads((tmp_path / "models" / best["TrainingJobName"] / "manifest.json").read_text())
    assert manifest["tuning_job"] == name  # SageMaker put the tuning job's tags on its trials
    assert manifest["hyperparameters"]["max_depth"] == best["TunedHyperParameters"]["max_depth"]
    assert manifest["status"] == "Completed" and manifest["region"] == REGION

    # The leaderboard, beside a copy of the record: best first, the failed trial last, each with its cost.
    folder = tmp_path / "jobs" / name
    assert json.loads((folder / "tuning.json").read_text())["HyperParameterTuningJobStatus"] == "Completed"
    rows = [row.split(",") for row in (folder / "leaderboard.csv").read_text().splitlines()]
    assert rows[0] == ["trial", "learning_rate", "max_depth", "validation:roc_auc", "DURATION", "COST", "STATUS"]
    assert rows[1][0] == best["TrainingJobName"] and rows[-1][-1] == "Failed" and rows[-1][3] == ""
    assert [float(r[3]) for r in rows[1:-1]] == sorted((float(r[3]) for r in rows[1:-1]), reverse=True)
    # Each trial's duration and cost are its training job's: 60 s of training, billed, at ml.m5.large's $0.137/h.
    assert {(r[4], r[5]) for r in rows[1:]} == {("60s", money(cost(0.137, 60, 1)))}, rows
    assert (folder / "tuning.png").is_file()

    assert shown.returncode == 0 and f"{best['TrainingJobName']} *" in shown.stdout
    assert all(t["TrainingJobName"] in listed.stdout for t in trials), listed.stdout + listed.stderr
    assert f"{best['TrainingJobName']} *" in listed.stdout  # the best marked
    assert f"* the best trial of its tuning run (`make tune-jobs ENV=prod TUNING={name}` shows the run)" in \
        listed.stderr
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == [
        f"[trial-{number}] [algo-1-1700000000] training {t['TrainingJobName']} with "
        f"{json.dumps(t['TunedHyperParameters'], sort_keys=True)}" for number, t in enumerate(trials, start=1)]

    # Tracked from this machine (a tuning job's request has no MlflowConfig): the run, its trials nested under it.
    from mlflow.tracking import MlflowClient

    from sagemake.config import resolve
    from sagemake.tracking import drain

    drain(resolve(root=ROOT, environ={}))  # the pending runs written, as `make ui` does before reading
    store = MlflowClient(f"sqlite:///{ROOT / 'build/mlflow/mlflow.db'}")
    experiment = store.get_experiment_by_name("sagemake-example").experiment_id
    (parent,) = store.search_runs([experiment], f"attributes.run_name = '{name}'")
    assert parent.info.status == "FINISHED" and parent.data.tags["sagemake.best_trial"] == best["TrainingJobName"]
    nested = store.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {run.info.run_name: run.info.status for run in nested} == {
        t["TrainingJobName"]: "FAILED" if t["TrainingJobStatus"] == "Failed" else "FINISHED" for t in trials}


def test_the_declared_direction_reaches_sagemaker_and_decides_the_best_trial(aws, tmp_path, example_data,
                                                                              trained_model):
    """METRICS='nll:min acc:max': SageMaker is asked to Minimize nll, and the lowest trial is the best one, first in
    the leaderboard, starred and fetched. Without a direction (METRICS='nll acc') nothing is uploaded or created."""
    make_bucket()
    in_ecr()
    refused = make("tune", tmp_path, DATA_DIR=str(example_data), JOBS_DIR=str(tmp_path / "jobs"), **TUNING,
                   METRICS="nll acc")
    assert refused.returncode == 2 and refused.stderr.splitlines()[-2] == (
        "sagemake: the tuning objective nll has no declared direction: declare it nll:max or nll:min in METRICS, "
        "or set TUNE_OBJECTIVE=nll:max (or :min)"), refused.stderr
    sagemaker = client("sagemaker")
    assert sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []
    assert "Contents" not in client("s3").list_objects_v2(Bucket="train-bucket")  # nothing synced

    with TuningDriver(trained_model, score) as driver:
        result = make("tune", tmp_path, DATA_DIR=str(example_data), JOBS_DIR=str(tmp_path / "jobs"), **TUNING,
                      METRICS="nll:min acc:max")
        shown = make("tune-jobs", tmp_path, JOBS_DIR=str(tmp_path / "jobs"))
    assert result.returncode == 0, result.stderr
    (summary,) = sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    name = summary["HyperParameterTuningJobName"]
    sent = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert sent["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] == {"Type": "Minimize",
                                                                                         "MetricName": "nll"}
    assert [m["Name"] for m in sent["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]] == [
        "nll", "acc"]
    lowest = min(driver.trials, key=lambda t: score(t["TunedHyperParameters"]))["TrainingJobName"]
    assert len({score(t["TunedHyperParameters"]) for t in driver.trials}) == 4
    assert f"tuning {name}: best trial {lowest} nll=" in result.stderr
    assert [p.name for p in (tmp_path / "models").iterdir()] == [lowest]
    rows = [row.split(",") for row in (tmp_path / "jobs" / name / "leaderboard.csv").read_text().splitlines()[1:]]
    assert rows[0][0] == lowest and [float(r[3]) for r in rows] == sorted(float(r[3]) for r in rows)
    assert shown.returncode == 0 and f"{lowest} *" in shown.stdout


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_ctrl_c_leaves_the_tuning_job_running_on_sagemaker(aws, tmp_path, example_data, trained_model, signum):
    make_bucket()
    in_ecr()
    with TuningDriver(trained_model, score, step_seconds=600) as driver:
        said = interrupted(tmp_path, "tune", ": trial ", signum, DATA_DIR=str(example_data),
                           JOBS_DIR=str(tmp_path / "jobs"), **TUNING)
        (summary,) = client("sagemaker").list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
        name = summary["HyperParameterTuningJobName"]
        assert summary["HyperParameterTuningJobStatus"] == "InProgress" and len(driver.trials) == 2
        assert f"tuning {name} keeps running on SageMaker: `make tune-jobs ENV=prod TUNING={name}`" in said
        shown = make("tune-jobs", tmp_path, TUNING=name)
        again = make("tune", tmp_path, DATA_DIR=str(example_data), JOBS_DIR=str(tmp_path / "jobs"), **TUNING)
    assert again.returncode == 2 and (
        f"sagemake: {name} is InProgress on SageMaker with this same request: follow it (make tune-jobs ENV=prod "
        f"TUNING={name}), or set ALLOW_DUPLICATE=true to start another") in again.stderr, again.stderr
    assert len(client("sagemaker").list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]) == 1
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[-1] for line in shown.stdout.splitlines()[1:]] == ["InProgress", "InProgress"]
