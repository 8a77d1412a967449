"""`make train ENV=prod` tracked in SageMaker's managed MLflow, named by its ARN: the request carries MlflowConfig (read
back from the emulator), and the run is written through AWS's sagemaker-mlflow plugin to an MLflow server the test
starts on 127.0.0.1 (the plugin's SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT stands for SageMaker's MLflow endpoint); and
`make preprocess ENV=prod`, a run whose metric series are read from the job's CloudWatch log. Each read once the queue
of pending runs is written (drain, as `make ui` does)."""

import json
import os
import subprocess

from conftest import ROOT, mlflow_server
from emulator import (
    ACCOUNT,
    REGION,
    ProcessingDriver,
    SageMakerDriver,
    client,
    make_bucket,
    register_image,
    repository_image,
    settings,
)
from mlflow.tracking import MlflowClient

import trainer.raw
from sagemake.config import resolve
from sagemake.tracking import drain, queue_folder

ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/team"


def test_a_job_on_sagemaker_is_linked_to_its_run_and_tracked_in_the_managed_mlflow(aws, tmp_path, trained_model,
                                                                                    monkeypatch):
    make_bucket()
    env = {"ENV": "prod", **settings(), "MLFLOW_TRACKING_URI": ARN, "MLFLOW_EXPERIMENT": "team-models"}
    image = repository_image(env)
    register_image(image)
    # As SageMaker's MLflow keeps them, artefacts go to S3 (the emulator's), written by the client.
    with mlflow_server(tmp_path, "--default-artifact-root", "s3://train-bucket/mlflow", "--no-serve-artifacts") as url:
        with SageMakerDriver(model=trained_model):
            done = subprocess.run(["make", "-s", "train"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                                  env={**os.environ, **env, "DATA_DIR": str(tmp_path / "data"),
                                       "MODELS_DIR": str(tmp_path / "models"), "SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT": url})
        assert done.returncode == 0, done.stderr
        (job,) = [p.name for p in (tmp_path / "models").iterdir()]
        described = client("sagemaker").describe_training_job(TrainingJobName=job)
        assert described["MlflowConfig"] == {"MlflowResourceArn": ARN, "MlflowExperimentName": "team-models",
                                             "MlflowRunName": job}

        monkeypatch.setenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", url)  # the reader's writer reaches the server so
        config = resolve(root=ROOT, environ={"MLFLOW_TRACKING_URI": ARN})
        drain(config)
        tracked = MlflowClient(url)
        experiment = tracked.get_experiment_by_name("team-models")
        (run,) = tracked.search_runs([experiment.experiment_id], f"attributes.run_name = '{job}'")
        manifest = json.loads((tmp_path / "models" / job / "manifest.json").read_text())
        assert f"tracking: job {job} is written as a run of experiment team-models in {ARN}" in done.stderr
        assert f"job {job} is run {run.info.run_id} of experiment team-models" in \
            (queue_folder(config) / "writer.log").read_text()
        assert run.info.status == "FINISHED"
        assert run.data.tags["sagemake.arn"] == described["TrainingJobArn"] and run.data.tags["sagemake.env"] == "prod"
        assert run.data.tags["sagemake.billable_seconds"] == "100"  # SageMaker's, not the 400 s of training
        assert run.data.tags["sagemake.image"] == image and run.data.tags["sagemake.image_digest"] == \
            manifest["image_digest"]
        assert run.data.params["job.instance_type"] == "ml.m5.large"
        # The series, read from the job's CloudWatch streams with their times: two values on algo-1.
        history = tracked.get_metric_history(run.info.run_id, "validation:roc_auc")
        assert [(m.step, m.value) for m in history] == [(0, 0.912345), (1, 0.987654)]
        assert history[0].timestamp <= history[1].timestamp
        assert "manifest.json" in {a.path for a in tracked.list_artifacts(run.info.run_id)}


def test_a_processing_job_on_sagemaker_is_a_run_with_the_series_its_cloudwatch_log_printed(aws, tmp_path):
    make_bucket()
    register_image(repository_image({"ENV": "prod", **settings()}))
    trainer.raw.main(tmp_path / "raw")
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with ProcessingDriver(tmp_path / "sagemaker"):
        done = subprocess.run(["make", "-s", "preprocess"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "ENV": "prod", **settings(), "RAW_DIR": str(tmp_path / "raw"),
                                   "DATA_DIR": str(tmp_path / "data"), "MLFLOW_TRACKING_URI": store})
    assert done.returncode == 0, done.stderr
    stamp = json.loads((tmp_path / "data/.preprocessed.json").read_text())
    (job,) = client("sagemaker").list_processing_jobs()["ProcessingJobSummaries"]
    assert job["ProcessingJobName"] == stamp["job"]
    drain(resolve(root=ROOT, environ={"MLFLOW_TRACKING_URI": store}))
    tracked = MlflowClient(store)
    (run,) = tracked.search_runs([tracked.get_experiment_by_name("sagemake-example").experiment_id],
                                 f"attributes.run_name = '{stamp['job']}'")
    assert run.info.status == "FINISHED" and run.data.tags["sagemake.env"] == "prod"
    assert run.data.tags["sagemake.arn"] == job["ProcessingJobArn"]
    # Every `name=value` line of the job's CloudWatch stream, with the time CloudWatch gave it.
    printed = dict(line.split("] ", 1)[1].split("=") for line in done.stdout.splitlines()
                   if line.startswith("[algo-1-1700000000] preprocess:") and "=" in line)
    assert set(printed) == {"preprocess:dropped_missing", "preprocess:dropped_duplicates", "preprocess:train_rows",
                            "preprocess:validation_rows"}
    assert {name: run.data.metrics[name] for name in printed} == {k: float(v) for k, v in printed.items()}
    history = tracked.get_metric_history(run.info.run_id, "preprocess:train_rows")
    assert [m.step for m in history] == [0] and history[0].timestamp > 0
