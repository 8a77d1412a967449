"""The example model end to end through the local executor, then fetched with its manifest."""

import json
import time

import pytest
from conftest import ROOT, in_process

from sagemake import sourcedir
from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.executors.local import LocalExecutor
from sagemake.fetch_model import fetch as fetch_model
from sagemake.request import plan


@pytest.fixture
def config(tmp_path, example_data):
    return resolve(root=ROOT, environ={"DATA_DIR": str(example_data), "HP": "n_estimators=25",
                                       "JOBS_DIR": str(tmp_path / "jobs"), "MODELS_DIR": str(tmp_path / "models")})


def train(config):
    executor = LocalExecutor(config)
    request = plan(config, executor)
    record = executor.run(request, in_process())
    return request["TrainingJobName"], record


def fetch(config, name=None):
    return fetch_model(config, LocalExecutor(config), name)


def test_fetch_extracts_the_model_and_writes_the_manifest(config):
    name, record = train(config)
    assert record["TrainingJobStatus"] == "Completed"
    folder = fetch(config)  # the latest job
    assert folder == config.path("MODELS_DIR") / name
    assert sorted(p.name for p in folder.iterdir()) == [
        "features.json", "manifest.json", "model.joblib", "output", "pr.png", "roc.png"]
    assert json.loads((folder / "output/metrics.json").read_text()) == {  # what the job wrote to output/data/
        m["MetricName"]: pytest.approx(m["Value"], abs=1e-6) for m in record["FinalMetricDataList"]}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["job_name"] == name and manifest["status"] == "Completed"
    assert manifest["env"] == "local" and manifest["executor"] == "local"
    assert manifest["project"] == "sagemake-example"
    assert manifest["image"] == record["AlgorithmSpecification"]["TrainingImage"]
    assert manifest["image"].startswith("sagemake-example:") and manifest["runtime"] == "process"
    assert manifest["hyperparameters"]["n_estimators"] == "25"
    assert set(manifest["metrics"]) >= {"validation:accuracy", "validation:f1", "validation:roc_auc"}
    assert manifest["metrics"]["validation:roc_auc"] > 0.95
    assert len(manifest["artifact"]["sha256"]) == 64


def test_same_inputs_give_the_same_model_bytes(config):
    first, _ = train(config)
    time.sleep(0.01)
    second, _ = train(config)
    digests = {json.loads((fetch(config, name) / "manifest.json").read_text())["artifact"]["sha256"]
               for name in (first, second)}
    assert len(digests) == 1


def test_only_a_completed_job_is_fetched(config):
    name, _ = train(resolve(root=config.root, environ={**config.values, "HP": "target=nope"}))
    with pytest.raises(UserError, match=rf"job {name} is Failed: AlgorithmError: ValueError: label column 'nope'"):
        fetch(config, name)
    assert not (config.path("MODELS_DIR") / name).exists()


def test_a_missing_artefact_is_named(config):
    name, record = train(config)
    (config.path("JOBS_DIR") / name / "output/model.tar.gz").unlink()
    with pytest.raises(UserError, match=r"model.tar.gz is missing: run the job again"):
        fetch(config, name)


def test_refetch_replaces_the_folder_whole(config):
    name, _ = train(config)
    folder = fetch(config, name)
    (folder / "stale.txt").write_text("from before")
    fetch(config, name)
    assert not (folder / "stale.txt").exists()
    assert (folder / "model.joblib").is_file()


def test_script_mode_ships_the_code_beside_the_image(tmp_path, example_data):
    config = resolve(root=ROOT, environ={"DATA_DIR": str(example_data), "HP": "n_estimators=15",
                                         "CODE_MODE": "script", "JOBS_DIR": str(tmp_path / "jobs"),
                                         "MODELS_DIR": str(tmp_path / "models")})
    executor = LocalExecutor(config)
    request = plan(config, executor)
    hps = request["HyperParameters"]
    code = config.path("JOBS_DIR") / "code" / sourcedir.tag(ROOT) / "sourcedir.tar.gz"
    assert (hps["sagemaker_program"], hps["sagemaker_submit_directory"]) == ("train", code.as_uri())
    record = executor.run(request, in_process())
    assert record["TrainingJobStatus"] == "Completed", record.get("FailureReason")
    tree = config.path("JOBS_DIR") / request["TrainingJobName"] / "ml"
    assert sorted(p.name for p in (tree / "code").iterdir()) == ["sagemake", "train", "trainer"]
    sent = json.loads((tree / "input/config/hyperparameters.json").read_text())
    assert sent["sagemaker_submit_directory"] == f"{tree}/code"  # where the toolkit finds the code
    assert "hyperparameters: {\"n_estimators\":15" in (tree.parent / "train.log").read_text()
    assert fetch(config, request["TrainingJobName"]).joinpath("model.joblib").is_file()
