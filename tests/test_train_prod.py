"""`make train ENV=prod` and `make doctor ENV=prod` as a user runs them, against moto's server."""

import json
import os
import subprocess

import pytest
from conftest import ROOT
from emulator import REGION, SageMakerDriver, client, make_bucket, register_image, repository_image, settings

from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.image import check as engine


def make(target, env, tmp_path):
    everything = {**os.environ, "ENV": "prod", "DATA_DIR": str(tmp_path / "data"),
                  "MODELS_DIR": str(tmp_path / "models"), **settings(), **env}
    return subprocess.run(["make", "-s", target], cwd=ROOT, env=everything, capture_output=True, text=True,
                          timeout=300)


def test_make_train_env_prod_end_to_end(aws, tmp_path, trained_model):
    make_bucket()
    image = repository_image({"ENV": "prod", **settings()})
    register_image(image)  # pushed earlier: no container engine is needed for this run
    with SageMakerDriver(model=trained_model):
        result = make("train", {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no data channels" in result.stderr and "running the data step" in result.stderr
    assert f"build: {image} is in ECR already: nothing to build or push" in result.stderr
    assert "upload: train: 1 uploaded" in result.stderr
    assert "[algo-2-1700000000] worker ready" in result.stdout
    assert "Completed / Completed" in result.stderr
    (job,) = [p.name for p in (tmp_path / "models").iterdir()]
    manifest = json.loads((tmp_path / "models" / job / "manifest.json").read_text())
    assert manifest["status"] == "Completed" and manifest["image"] == image and manifest["region"] == REGION

    # A second run with nothing changed uploads nothing and builds nothing.
    with SageMakerDriver(model=trained_model):
        again = make("train", {}, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "has channels train, validation: used as they are" in again.stderr  # the data step does not run again
    assert "upload: train: 0 uploaded (0.0 MB), 1 unchanged" in again.stderr
    assert "nothing to build or push" in again.stderr
    assert len(client("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == 2


def test_make_doctor_env_prod(aws, tmp_path):
    missing = make("doctor", {}, tmp_path)
    assert missing.returncode != 0
    assert "ok    credentials: account 123456789012" in missing.stdout
    assert "FAIL  bucket: bucket train-bucket does not exist" in missing.stderr
    assert "doctor: 1 check(s) failed for ENV=prod" in missing.stderr

    make_bucket()
    ready = make("doctor", {}, tmp_path)
    assert ready.returncode == 0, ready.stderr
    assert f"ok    bucket: s3://train-bucket is in {REGION}" in ready.stdout
    assert "ok    ECR repository: train-image does not exist yet: `make build ENV=prod` creates it" in ready.stdout
    assert "doctor: ENV=prod is ready to train" in ready.stdout

    # The engine is needed only to build a new image: without one the doctor warns, and still passes.
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "docker").write_text("#!/bin/sh\nexit 1\n")
    (stub / "docker").chmod(0o755)
    silent = make("doctor", {"PATH": f"{stub}:{os.environ['PATH']}"}, tmp_path)
    assert silent.returncode == 0, silent.stderr
    assert "warn  container engine: docker is installed but no engine answers: start it" in silent.stderr


def test_doctor_tells_an_engine_not_installed_from_one_not_started(tmp_path, monkeypatch):
    config = resolve(environ={"ENV": "prod", "CONTAINER_ENGINE": "podman", **settings()})
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="^podman is not installed: install it to build images, or set CONTAINER_ENGI"):
        engine(config)
    (tmp_path / "podman").write_text("#!/bin/sh\nexit 125\n")
    (tmp_path / "podman").chmod(0o755)
    with pytest.raises(UserError, match="^podman is installed but no engine answers: start it"):
        engine(config)


def test_make_doctor_with_missing_settings_lists_them(tmp_path):
    result = make("doctor", {"S3_BUCKET": "", "SAGEMAKER_ROLE_ARN": ""}, tmp_path)
    assert result.returncode != 0
    assert "SAGEMAKER_ROLE_ARN, S3_BUCKET required for ENV=prod" in result.stderr
