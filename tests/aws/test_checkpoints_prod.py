"""Checkpoints outlive jobs on SageMaker (the emulator, a driver running the fixture trainer for real): a job given
CHECKPOINT_FROM starts from the other's checkpoints, copied within S3 into its own CHECKPOINT_S3_URI, used as given;
a job given the same CHECKPOINT_S3_URI starts from what it holds; every bad CHECKPOINT_FROM is one line before
anything is built, uploaded or submitted."""

import json
import os
import re
import subprocess

import pytest
from conftest import ROOT, sagemake
from emulator import (
    REGION,
    ROLE,
    TrainingDriver,
    backend,
    client,
    make_bucket,
    register_image,
    repository_image,
    settings,
)

from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.executors.sagemaker.executor import SageMakerExecutor
from sagemake.jobs.training import plan

HP = "n_estimators=300 learning_rate=0.05"  # 6 steps of 50 rounds: saved after the first, then every 5 s
CHECKPOINTS = "s3://train-bucket/checkpoints"


def environment(tmp_path, example_data, **extra) -> dict:
    return {**os.environ, "ENV": "prod", "DATA_DIR": str(example_data), "MODELS_DIR": str(tmp_path / "models"),
            "HP": HP, **settings(), **extra}


def train(tmp_path, example_data, **extra) -> tuple[subprocess.CompletedProcess, str]:
    """`make train ENV=prod` played for real by the driver: the result and the job's name."""
    with TrainingDriver(tmp_path / "sagemaker") as driver:
        done = subprocess.run([*sagemake(ROOT), "train"], env=environment(tmp_path, example_data, **extra),
                              capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return done, driver.job.training_job_name


def keys(prefix: str) -> dict[str, str]:
    """The objects below a prefix of the bucket: key -> ETag."""
    found = client("s3").list_objects_v2(Bucket="train-bucket", Prefix=prefix).get("Contents", [])
    return {item["Key"]: item["ETag"] for item in found}


@pytest.fixture
def ready(aws):
    make_bucket()
    register_image(repository_image({"ENV": "prod", **settings()}))


def test_a_job_starts_from_another_jobs_checkpoints_copied_within_s3_or_from_the_same_uri(ready, tmp_path,
                                                                                          example_data):
    first, first_job = train(tmp_path, example_data, CHECKPOINT_S3_URI=f"{CHECKPOINTS}/first")
    sagemaker = client("sagemaker")
    described = sagemaker.describe_training_job(TrainingJobName=first_job)
    assert described["CheckpointConfig"] == {"S3Uri": f"{CHECKPOINTS}/first/", "LocalPath": "/opt/ml/checkpoints"}
    saved = keys("checkpoints/first/")
    assert list(saved) == ["checkpoints/first/checkpoint.joblib"]  # what the trainer saved, kept in S3

    second, second_job = train(tmp_path, example_data, CHECKPOINT_S3_URI=f"{CHECKPOINTS}/second",
                               CHECKPOINT_FROM=first_job)
    assert (f"job {second_job}: starts from the checkpoints of job {first_job}: 1 file(s) copied from "
            f"{CHECKPOINTS}/first/ to {CHECKPOINTS}/second/") in second.stderr
    described = sagemaker.describe_training_job(TrainingJobName=second_job)
    assert described["CheckpointConfig"]["S3Uri"] == f"{CHECKPOINTS}/second/"
    tags = sagemaker.list_tags(ResourceArn=described["TrainingJobArn"])["Tags"]
    assert {"Key": "sagemake:checkpoint-from", "Value": first_job} in tags
    resumed = re.search(r"resumed from the checkpoint at round (\d+) of 300", second.stdout)
    assert resumed and int(resumed.group(1)) >= 50  # its training carried on from the first's state
    assert keys("checkpoints/first/") == saved  # the first job's checkpoints are as it left them
    manifests = {job: json.loads((tmp_path / "models" / job / "manifest.json").read_text())
                 for job in (first_job, second_job)}
    assert manifests[second_job]["checkpoint_from"] == first_job
    assert manifests[second_job]["metrics"] == manifests[first_job]["metrics"]  # the same model

    # CHECKPOINT_S3_URI as given: a job given the first's place starts from what it holds, as SageMaker users resume.
    third, third_job = train(tmp_path, example_data, CHECKPOINT_S3_URI=f"{CHECKPOINTS}/first/")
    assert f"job {third_job}: {CHECKPOINTS}/first/ holds 1 checkpoint file(s): the job starts from them" in third.stderr
    assert re.search(r"resumed from the checkpoint at round \d+ of 300", third.stdout)
    assert sagemaker.describe_training_job(TrainingJobName=third_job)["CheckpointConfig"]["S3Uri"] == \
        f"{CHECKPOINTS}/first/"
    # The first's place holds the third's state now: the first's checkpoints are gone, whichever place is asked for.
    for into in (f"{CHECKPOINTS}/first", f"{CHECKPOINTS}/fourth"):
        config = resolve(root=ROOT, environ={**environment(tmp_path, example_data), "CHECKPOINT_FROM": first_job,
                                             "CHECKPOINT_S3_URI": into})
        with pytest.raises(UserError, match=rf"^CHECKPOINT_FROM={first_job}: {CHECKPOINTS}/first/ holds what job "
                                            rf"{third_job} left there, .*: CHECKPOINT_FROM={third_job} carries on"):
            plan(config, SageMakerExecutor(config))

    # Named into a place that holds other checkpoints: refused, never mixed. (What the second job saved may equal
    # the third's, when both saved their last round: another run's file makes the place someone else's.)
    client("s3").put_object(Bucket="train-bucket", Key="checkpoints/second/another-run.joblib", Body=b"not yours")
    config = resolve(root=ROOT, environ={**environment(tmp_path, example_data), "CHECKPOINT_FROM": third_job,
                                         "CHECKPOINT_S3_URI": f"{CHECKPOINTS}/second"})
    with pytest.raises(UserError, match=rf"^CHECKPOINT_FROM={third_job}: {CHECKPOINTS}/second/, where the new job "
                                        rf"keeps its checkpoints, holds \d other file\(s\) already"):
        plan(config, SageMakerExecutor(config))


def test_a_bad_checkpoint_from_is_one_line_before_anything_is_built_uploaded_or_submitted(ready, tmp_path,
                                                                                          example_data):
    refused = subprocess.run([*sagemake(ROOT), "train"], capture_output=True, text=True, timeout=300,
                             env=environment(tmp_path, example_data, CHECKPOINT_FROM="nope",
                                             CHECKPOINT_S3_URI=CHECKPOINTS))
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1] == (f"sagemake: CHECKPOINT_FROM=nope: no SageMaker job named 'nope' in "
                                               f"{REGION}: `make jobs ENV=prod` lists them")
    assert "build:" not in refused.stderr and "upload:" not in refused.stderr
    assert client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert keys("") == {}  # nothing uploaded

    def job(name, status, checkpoints=None):
        """A job of the project in SageMaker's records, as moto keeps one."""
        backend().create_training_job(
            training_job_name=name, hyper_parameters={}, algorithm_specification={
                "TrainingImage": "img", "TrainingInputMode": "File"}, role_arn=ROLE, input_data_config=[],
            output_data_config={"S3OutputPath": "s3://train-bucket/output"}, resource_config={
                "InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}, vpc_config=None,
            stopping_condition={"MaxRuntimeInSeconds": 60}, tags=[], enable_network_isolation=False,
            enable_inter_container_traffic_encryption=False, enable_managed_spot_training=False,
            checkpoint_config={"S3Uri": checkpoints} if checkpoints else None, debug_hook_config=None,
            debug_rule_configurations=None, tensor_board_output_config=None, experiment_config=None)
        backend().training_jobs[name].training_job_status = status

    job("running", "InProgress", f"{CHECKPOINTS}/running")
    job("stopping", "Stopping", f"{CHECKPOINTS}/stopping")
    job("none-kept", "Completed")
    job("empty", "Stopped", f"{CHECKPOINTS}/empty")
    client("s3").put_object(Bucket="train-bucket", Key="checkpoints/empty2/checkpoint.joblib", Body=b"state")
    job("sibling", "Completed", f"{CHECKPOINTS}/empty2")  # a prefix's sibling (empty2/) is not its folder (empty/)

    def planned(source, **extra):
        config = resolve(root=ROOT, environ={**environment(tmp_path, example_data), "CHECKPOINT_FROM": source,
                                             "CHECKPOINT_S3_URI": f"{CHECKPOINTS}/new", **extra})
        return plan(config, SageMakerExecutor(config))

    for source, status in (("running", "InProgress"), ("stopping", "Stopping")):
        with pytest.raises(UserError, match=rf"^CHECKPOINT_FROM={source}: the job is {status}, its checkpoints "
                                            rf"still changing: wait for it to end, or stop it \(make stop ENV=prod "
                                            rf"JOB={source}\)$"):
            planned(source)
    with pytest.raises(UserError, match=r"^CHECKPOINT_FROM=none-kept: the job kept no checkpoints \(it ran without "
                                        r"CHECKPOINT_S3_URI\): name a job that had one$"):
        planned("none-kept")
    with pytest.raises(UserError, match=rf"^CHECKPOINT_FROM=empty: nothing at {CHECKPOINTS}/empty, where the job kept "
                                        r"its checkpoints"):
        planned("empty")
    with pytest.raises(UserError, match=r"^CHECKPOINT_FROM=sibling: jobs on SageMaker in eu-central-1 keep "
                                        r"checkpoints only with CHECKPOINT_S3_URI: set CHECKPOINT_S3_URI="):
        planned("sibling", CHECKPOINT_S3_URI="")
    request = planned("sibling")  # its checkpoints found, the new place empty: the request names where it starts
    assert {"Key": "sagemake:checkpoint-from", "Value": "sibling"} in request["Tags"]
    assert request["CheckpointConfig"]["S3Uri"] == f"{CHECKPOINTS}/new/"
    assert keys("checkpoints/new/") == {}  # a plan copies nothing
    # A place holding a copy of that job's files (a run cut short after the copy, before the job) is taken again.
    client("s3").put_object(Bucket="train-bucket", Key="checkpoints/new/checkpoint.joblib", Body=b"state")
    assert planned("sibling")["CheckpointConfig"]["S3Uri"] == f"{CHECKPOINTS}/new/"
    # A place holding a newer checkpoint of the same size (a fixed-size one, as torch saves) is no copy cut short.
    job("first", "Completed", f"{CHECKPOINTS}/first")
    client("s3").put_object(Bucket="train-bucket", Key="checkpoints/first/model.pt", Body=b"epoch-03")
    client("s3").put_object(Bucket="train-bucket", Key="checkpoints/second/model.pt", Body=b"epoch-09")
    config = resolve(root=ROOT, environ={**environment(tmp_path, example_data), "CHECKPOINT_FROM": "first",
                                         "CHECKPOINT_S3_URI": f"{CHECKPOINTS}/second"})
    request = {"TrainingJobName": "third", "CheckpointConfig": {"S3Uri": f"{CHECKPOINTS}/second/"},
               "Tags": [{"Key": "sagemake:checkpoint-from", "Value": "first"}]}
    with pytest.raises(UserError, match=rf"^CHECKPOINT_FROM=first: {CHECKPOINTS}/second/, where the new job keeps its "
                                        r"checkpoints, holds 1 other file\(s\) already"):
        SageMakerExecutor(config).start_checkpoints(request)
    assert client("s3").get_object(Bucket="train-bucket", Key="checkpoints/second/model.pt")["Body"].read() == (
        b"epoch-09")
