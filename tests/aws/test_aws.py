"""The production path against moto's server: real boto3 calls over HTTP on 127.0.0.1."""

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request

import boto3
import pytest
from conftest import ROOT, copy_repo, sagemake
from emulator import (
    ACCOUNT,
    REGION,
    ROLE,
    SageMakerDriver,
    backend,
    client,
    make_bucket,
    register_image,
    repository_image,
    settings,
)

from sagemake import sourcedir
from sagemake.aws.sync import sync
from sagemake.cli import AwsError, Exit, JobFailed, UserError
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.executors.sagemaker.executor import SageMakerExecutor
from sagemake.jobs.training import plan
from sagemake.models import fetch
from sagemake.targets.jobs import list_jobs
from sagemake.targets.train import train


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A user's checkout of this repository (no .env, no git): the image tag and the code come from its files."""
    return copy_repo(tmp_path_factory.mktemp("checkout"))


def prod_config(root, data, folder, **extra):
    """ENV=prod for the checkout at root, with DATA_DIR=data and the jobs and models under folder."""
    return resolve(root=root, environ={"ENV": "prod", "DATA_DIR": str(data), "MODELS_DIR": str(folder / "models"),
                                       "JOBS_DIR": str(folder / "jobs"), **settings(**extra)})


def submit(config) -> dict:
    """Plan the job and hand it to SageMaker, as `make train` does once the image and the data are there."""
    executor = SageMakerExecutor(config)
    return executor.run(plan(config, executor))


@pytest.fixture
def ready(aws, checkout, tmp_path, example_data):
    """Bucket made, data uploaded, image in ECR: what `make build upload` leave behind."""
    config = prod_config(checkout, example_data, tmp_path)
    make_bucket()
    sync(config)
    register_image(SageMakerExecutor(config).image())
    return config


def test_for_config_picks_the_sagemaker_executor_for_an_aws_env(aws, checkout, tmp_path, example_data):
    executor = for_config(prod_config(checkout, example_data, tmp_path))
    assert isinstance(executor, SageMakerExecutor) and executor.name == "sagemaker"
    assert executor.where() == f"on SageMaker in {REGION}" and executor.env_flag() == " ENV=prod"


def test_plan_carries_every_configured_field(aws, checkout, tmp_path, example_data):
    config = prod_config(checkout, example_data, tmp_path, USE_SPOT="true", MAX_WAIT_SECONDS="7200",
                         CHECKPOINT_S3_URI="s3://train-bucket/checkpoints", SUBNETS="subnet-1 subnet-2",
                         SECURITY_GROUP_IDS="sg-1", INPUT_MODES="train=FastFile", JOB_ENV="MODE=full",
                         INSTANCE_TYPE="ml.g5.xlarge", INSTANCE_COUNT="2", VOLUME_SIZE_GB="100", S3_PREFIX="team/churn")
    request = plan(config, SageMakerExecutor(config))
    spec = request["AlgorithmSpecification"]
    assert spec["TrainingImage"].startswith(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/train-image:")
    assert [d["Name"] for d in spec["MetricDefinitions"]][:2] == ["validation:roc_auc", "validation:accuracy"]
    assert request["RoleArn"] == ROLE
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://train-bucket/team/churn/data/train/"
    assert (channels["train"]["InputMode"], channels["validation"]["InputMode"]) == ("FastFile", "File")
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://train-bucket/team/churn/output"}
    assert request["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert request["EnableManagedSpotTraining"] is True
    # CHECKPOINT_S3_URI as given (as a folder): the next job given it starts from what this one leaves there.
    assert request["CheckpointConfig"] == {"S3Uri": "s3://train-bucket/checkpoints/",
                                           "LocalPath": "/opt/ml/checkpoints"}
    assert request["VpcConfig"] == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
    assert request["Environment"] == {"MODE": "full"}
    assert {t["Key"]: t["Value"] for t in request["Tags"]}["sagemake:env"] == "prod"


def test_a_warm_pool_is_asked_for_in_the_request_sagemaker_receives(ready, tmp_path):
    config = prod_config(ready.root, ready["DATA_DIR"], tmp_path, KEEP_ALIVE_SECONDS="1800", INSTANCE_COUNT="2")
    executor = SageMakerExecutor(config)
    request = plan(config, executor)
    assert request["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 30,
                                         "KeepAlivePeriodInSeconds": 1800}
    executor.submit(request)
    sent = client("sagemaker").describe_training_job(TrainingJobName=request["TrainingJobName"])
    assert sent["ResourceConfig"] == request["ResourceConfig"]
    assert "KeepAlivePeriodInSeconds" not in plan(ready, executor)["ResourceConfig"]  # 0, the default: none


def test_sagemaker_receives_the_request_as_planned(ready, tmp_path):
    config = prod_config(ready.root, ready["DATA_DIR"], tmp_path, USE_SPOT="true", MAX_WAIT_SECONDS="7200",
                         CHECKPOINT_S3_URI="s3://train-bucket/checkpoints", SUBNETS="subnet-1",
                         SECURITY_GROUP_IDS="sg-1 sg-2", HP="max_depth=4", INSTANCE_COUNT="3",
                         DATA_DISTRIBUTION="train=ShardedByS3Key")
    executor = SageMakerExecutor(config)
    request = plan(config, executor)
    assert request["ResourceConfig"]["InstanceCount"] == 3
    assert {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
            for c in request["InputDataConfig"]} == {"train": "ShardedByS3Key", "validation": "FullyReplicated"}
    executor.submit(request)
    sent = client("sagemaker").describe_training_job(TrainingJobName=request["TrainingJobName"])
    # moto keeps neither Environment nor MetricDefinitions (it writes its own): the plan test covers those.
    for field in ("RoleArn", "HyperParameters", "InputDataConfig", "OutputDataConfig", "ResourceConfig",
                  "StoppingCondition", "VpcConfig", "EnableManagedSpotTraining", "CheckpointConfig"):
        assert sent[field] == request[field], field
    assert sent["AlgorithmSpecification"]["TrainingImage"] == request["AlgorithmSpecification"]["TrainingImage"]
    tags = client("sagemaker").list_tags(ResourceArn=sent["TrainingJobArn"])["Tags"]
    assert sorted(tags, key=lambda t: t["Key"]) == sorted(request["Tags"], key=lambda t: t["Key"])


def test_train_follows_to_completed_with_every_stream_then_fetches(ready, trained_model, capsys):
    executor = SageMakerExecutor(ready)
    with SageMakerDriver(model=trained_model):
        assert train(ready, executor) == Exit.OK
    out, err = capsys.readouterr()
    name = executor.latest()
    assert f"build: {executor.image()} is in ECR already: nothing to build or push" in err
    assert "upload: train: 0 uploaded (0.0 MB), 1 unchanged" in err
    for status in ("Starting", "Downloading", "Training", "Uploading", "Completed"):
        assert f"/ {status}:" in err, status
    assert f"job {name}: [0:00:0" in err  # elapsed time on each transition
    assert "[algo-1-1700000000] epoch 1" in out and "[algo-1-1700000000] epoch 2" in out
    assert "[algo-2-1700000000] worker ready" in out
    assert "billable 100 s of 400 s training, 75% saved by spot" in err
    manifest = json.loads((ready.path("MODELS_DIR") / name / "manifest.json").read_text())
    assert manifest["status"] == "Completed" and manifest["region"] == REGION
    assert manifest["executor"] == "sagemaker" and manifest["runtime"] == "sagemaker"
    assert manifest["image_digest"].startswith("sha256:")
    assert manifest["artifact"]["uri"] == f"s3://train-bucket/sagemake-example/output/{name}/output/model.tar.gz"
    assert manifest["metrics"] == {"validation:roc_auc": 0.987654}
    assert manifest["data"]["train"]["uri"] == "s3://train-bucket/sagemake-example/data/train/"
    assert manifest["data"]["train"]["files"] == 1
    assert (ready.path("MODELS_DIR") / name / "model.joblib").is_file()


TRACEBACK = """Exception during training: the labels hold NaN
Traceback (most recent call last):
  File "/opt/program/train", line 40, in fit
    raise ValueError("the labels hold NaN")
ValueError: the labels hold NaN"""


def test_a_failed_job_says_why_once_with_its_links(ready, capsys):
    """An image that writes its traceback to output/failure and prints it: the traceback was printed in the log, in
    the record's reason after it, in the last log lines once more, and in the final line. It is in the log alone; the
    final line says the reason's first line and where the log is."""
    executor = SageMakerExecutor(ready)
    with SageMakerDriver(outcome="Failed", failure=TRACEBACK):
        with pytest.raises(JobFailed) as failed:
            train(ready, executor)
    assert failed.value.status == Exit.JOB_FAILED
    out, err = capsys.readouterr()
    name = executor.latest()
    assert str(failed.value) == (f"job {name} Failed: AlgorithmError: Exception during training: the labels hold NaN "
                                 f"[5 lines in all] (log: `make logs ENV=prod JOB={name}`)")
    said = out + err + str(failed.value)
    assert said.count('raise ValueError("the labels hold NaN")') == 1 and said.count("Traceback") == 1, said
    assert '[algo-1-1700000000]     raise ValueError("the labels hold NaN")' in out  # the log's own line
    assert f"console: https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#/jobs/{name}" in err
    assert f"logs:    https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}" in err
    with pytest.raises(UserError, match=rf"job {name} is Failed: AlgorithmError"):
        fetch(ready, executor, name)
    assert not (ready.path("MODELS_DIR") / name).exists()


def test_jobs_lists_this_projects_jobs_newest_first(ready, tmp_path, capsys):
    other = prod_config(ready.root, ready["DATA_DIR"], tmp_path, PROJECT_NAME="other")
    executor = SageMakerExecutor(ready)
    sagemaker = client("sagemaker")
    for stranger in ("other-abc1234-261122-000000-000abcde", "sagemake-example-v2-abc1234-261122-000000-000abcde",
                     "sagemake-example-v2-abc1234-20261122-000000-000"):  # the name shape before the random tail
        sagemaker.create_training_job(**{**plan(ready, executor), "TrainingJobName": stranger})
    first = plan(ready, executor)
    executor.submit(first)
    time.sleep(0.01)
    second = plan(ready, executor)
    executor.submit(second)
    capsys.readouterr()
    assert list_jobs(ready, executor, 10) == Exit.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["JOB", "STATUS", "DURATION", "BILLABLE", "COST", "SPOT", "SAVED",
                                "validation:roc_auc"]  # the first declared metric
    assert [line.split()[0] for line in lines[1:]] == [second["TrainingJobName"], first["TrainingJobName"], "TOTAL"]
    assert SageMakerExecutor(other).names() == ["other-abc1234-261122-000000-000abcde"]


def test_jobs_of_a_project_without_any(ready, capsys):
    assert list_jobs(ready, SageMakerExecutor(ready), 10) == Exit.OK
    assert f"no jobs of sagemake-example yet (on SageMaker in {REGION})" in capsys.readouterr().err
    with pytest.raises(UserError, match=rf"no jobs of sagemake-example yet \(on SageMaker in {REGION}\): "
                                        r"run `make train ENV=prod` first"):
        SageMakerExecutor(ready).latest()


def test_sync_uploads_only_what_changed_and_mirrors_the_folder(aws, checkout, tmp_path):
    data = tmp_path / "data"
    for channel in ("train", "validation"):
        (data / channel).mkdir(parents=True)
        (data / channel / "a.csv").write_text(f"{channel} a\n")
        (data / channel / "b.csv").write_text(f"{channel} b\n")
    config = prod_config(checkout, data, tmp_path)
    make_bucket()
    assert sync(config) == {"train": (2, 0, 0, 16), "validation": (2, 0, 0, 26)}
    assert sync(config) == {"train": (0, 2, 0, 0), "validation": (0, 2, 0, 0)}
    (data / "train/a.csv").write_text("train a, changed\n")
    (data / "train/b.csv").unlink()
    (data / "train/sub").mkdir()
    (data / "train/sub/c.csv").write_text("c\n")
    assert sync(config)["train"] == (2, 0, 1, 19)
    listing = client("s3").list_objects_v2(Bucket="train-bucket", Prefix="sagemake-example/data/train/")
    assert sorted(o["Key"] for o in listing["Contents"]) == [
        "sagemake-example/data/train/a.csv", "sagemake-example/data/train/sub/c.csv"]


def test_a_bucket_in_another_region_is_refused_before_anything_is_sent(aws, checkout, tmp_path, example_data):
    make_bucket("far-bucket", "us-west-2")
    config = prod_config(checkout, example_data, tmp_path, S3_BUCKET="far-bucket")
    with pytest.raises(UserError, match=rf"bucket far-bucket is in us-west-2, not in AWS_REGION={REGION}"):
        SageMakerExecutor(config).sync_data()
    with pytest.raises(UserError, match="bucket far-bucket is in us-west-2"):
        submit(config)
    assert "Contents" not in boto3.client("s3", region_name="us-west-2").list_objects_v2(Bucket="far-bucket")
    assert client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_a_missing_bucket_is_named(aws, checkout, tmp_path, example_data):
    with pytest.raises(UserError, match="bucket train-bucket does not exist: create it in your region or fix S3_"):
        sync(prod_config(checkout, example_data, tmp_path))


def test_no_credentials_is_one_clear_line(aws, checkout, tmp_path, example_data, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    config = prod_config(checkout, example_data, tmp_path)
    with pytest.raises(AwsError, match=r"^no AWS credentials found: run `aws configure` or `aws sso login`") as error:
        plan(config, SageMakerExecutor(config))
    assert error.value.status == Exit.AWS_ERROR


@pytest.mark.parametrize("extra, message", [
    ({"USE_SPOT": "true", "MAX_WAIT_SECONDS": "7200"}, "USE_SPOT=true needs CHECKPOINT_S3_URI=s3://"),
    ({"USE_SPOT": "true", "MAX_WAIT_SECONDS": "60", "CHECKPOINT_S3_URI": "s3://b/c"},
     r"USE_SPOT=true needs MAX_WAIT_SECONDS >= MAX_RUNTIME_SECONDS \(60 < 3600\)"),
    ({"SAGEMAKER_ROLE_ARN": "arn:aws:iam::12:role/x"}, "is not an IAM role ARN"),
    ({"SUBNETS": "subnet-1"}, "a VPC needs both SUBNETS and SECURITY_GROUP_IDS"),
    ({"USE_SPOT": "true", "MAX_WAIT_SECONDS": "7200", "CHECKPOINT_S3_URI": "s3://b/c", "KEEP_ALIVE_SECONDS": "600"},
     r"^1 config problem\(s\): KEEP_ALIVE_SECONDS=600 with USE_SPOT=true: SageMaker keeps no warm pool for spot jobs"),
    ({"KEEP_ALIVE_SECONDS": "3601"}, r"^1 config problem\(s\): KEEP_ALIVE_SECONDS='3601' must be a whole number from 0 "
                                     "to 3600$"),
])
def test_settings_that_would_fail_on_sagemaker_are_refused(checkout, tmp_path, example_data, extra, message):
    with pytest.raises(UserError, match=message):
        prod_config(checkout, example_data, tmp_path, **extra)


def test_submit_refuses_an_image_not_in_ecr_or_data_not_uploaded(aws, checkout, tmp_path, example_data):
    config = prod_config(checkout, example_data, tmp_path)
    make_bucket()
    with pytest.raises(UserError, match=r"image .*/train-image:[0-9a-f]{12} is not in ECR: run `make build ENV=prod`"):
        submit(config)
    register_image(SageMakerExecutor(config).image())
    with pytest.raises(UserError, match=r"channel train has no data at s3://train-bucket/sagemake-example/data/train/"):
        submit(config)
    assert client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_a_training_image_must_be_in_ecr(aws, checkout, tmp_path, example_data):
    make_bucket()
    elsewhere = prod_config(checkout, example_data, tmp_path, TRAINING_IMAGE="docker.io/library/python:3.11-slim")
    with pytest.raises(UserError, match=r"image docker.io/library/python:3.11-slim is not in an ECR registry"):
        submit(elsewhere)
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/theirs:v1"
    missing = prod_config(checkout, example_data, tmp_path, TRAINING_IMAGE=image)
    with pytest.raises(UserError, match=rf"image {image} is not in ECR: set TRAINING_IMAGE to an image that is there"):
        SageMakerExecutor(missing).ensure_image()
    register_image(image)
    SageMakerExecutor(missing).ensure_image()  # used as it is: nothing built, nothing pushed
    assert client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_fetch_of_a_completed_job_without_its_model_is_named(ready):
    executor = SageMakerExecutor(ready)
    request = plan(ready, executor)
    client("sagemaker").create_training_job(**request)  # moto completes it at once, with no model.tar.gz
    with pytest.raises(UserError, match=rf"nothing at s3://train-bucket/sagemake-example/output/"
                                        rf"{request['TrainingJobName']}/output/model.tar.gz: the job wrote none"):
        fetch(ready, executor, request["TrainingJobName"])


def test_logs_and_stop_of_an_unknown_job(ready):
    executor = SageMakerExecutor(ready)
    for action in (executor.print_log, executor.stop, lambda name: fetch(ready, executor, name)):
        with pytest.raises(UserError, match=rf"no SageMaker job named 'ghost' in {REGION}: `make jobs ENV=prod`"):
            action("ghost")
    request = plan(ready, executor)
    client("sagemaker").create_training_job(**request)
    name = request["TrainingJobName"]
    with pytest.raises(UserError, match=rf"no SageMaker job named '{name}x' in {REGION}: did you mean {name}\? "):
        executor.print_log(name + "x")  # a name pasted with one character too many


def test_logs_of_a_job_that_wrote_none_say_so_with_its_status(ready, tmp_path):
    """A job that ended before its first line (here: its image could not be pulled) has no log in CloudWatch:
    `make logs` says so in one line, with its status and why, instead of printing nothing."""
    request = plan(ready, SageMakerExecutor(ready))
    name = request["TrainingJobName"]
    client("sagemaker").create_training_job(**request)
    job = backend().training_jobs[name]
    job.training_job_status, job.failure_reason = "Failed", "ClientError: the image could not be pulled"
    env = {**os.environ, "ENV": "prod", "DATA_DIR": ready["DATA_DIR"], "MODELS_DIR": str(tmp_path / "models"),
           "JOBS_DIR": str(tmp_path / "jobs"), **settings()}
    done = subprocess.run([*sagemake(ready.root), "logs", name], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == Exit.OK, done.stderr
    assert done.stdout == ""
    assert done.stderr == f"==> job {name} has no log: it is Failed: ClientError: the image could not be pulled\n"


def test_stop_of_a_finished_job_is_refused(ready):
    executor = SageMakerExecutor(ready)
    request = plan(ready, executor)
    client("sagemaker").create_training_job(**request)
    with pytest.raises(UserError, match="is Completed already: nothing to stop"):
        executor.stop(request["TrainingJobName"])


def run_target(target, config_env, path_prefix, cwd):
    env = {**os.environ, **config_env, "PATH": f"{path_prefix}:{os.environ['PATH']}"}
    return subprocess.run([*sagemake(ROOT), target], env=env, cwd=cwd, capture_output=True, text=True)


# A stand-in for the container engine: it records each call's arguments (and a login's stdin), knows the images
# it built, and answers `image inspect` (with --format: no ENTRYPOINT) for those alone.
ENGINE_STUB = """#!/bin/sh
printf '%s\\n' "$*" >>"{calls}"
case "$1" in
  build)
    while [ $# -gt 0 ]; do if [ "$1" = -t ]; then printf '%s\\n' "$2" >>"{built}"; fi; shift; done ;;
  image)
    for image; do :; done
    grep -qxF "$image" "{built}" 2>/dev/null || exit 1
    if [ "$3" = --format ]; then echo null; fi ;;
  tag)
    printf '%s\\n' "$3" >>"{built}" ;;
  login)
    cat >"{password}" ;;
esac
exit 0
"""


def test_build_and_push_creates_the_repository_once_and_skips_a_pushed_tag(aws, tmp_path):
    """ECR is real (moto); the container engine is a stand-in that records its exact calls."""
    engine = tmp_path / "bin"
    engine.mkdir()
    calls, built, password = tmp_path / "calls", tmp_path / "built", tmp_path / "password"
    (engine / "docker").write_text(ENGINE_STUB.format(calls=calls, built=built, password=password))
    (engine / "docker").chmod(0o755)
    env = {"ENV": "prod", **settings(CONTAINER_BUILD_FLAGS="--network host", CONTAINER_RUN_FLAGS="--network host")}
    image = repository_image(env)
    ecr = client("ecr")

    first = run_target("build", env, engine, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "creating ECR repository train-image" in first.stderr
    assert calls.read_text().splitlines() == engine_calls(image)
    # The password is ECR's, and it went through stdin, not argv.
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert password.read_text() == base64.b64decode(token).decode().partition(":")[2] != ""
    assert password.read_text() not in calls.read_text()
    assert repositories() == ["train-image"]
    assert ecr.describe_images(repositoryName="train-image")["imageDetails"] == []  # only a push puts one there

    # Another repository that exists already is used as it is.
    ecr.create_repository(repositoryName="existing-repo")
    calls.unlink()
    elsewhere = {**env, "ECR_REPOSITORY": "existing-repo"}
    existing = run_target("build", elsewhere, engine, tmp_path)
    assert existing.returncode == 0, existing.stderr
    assert "creating ECR repository" not in existing.stderr
    assert calls.read_text().splitlines() == engine_calls(repository_image(elsewhere))
    assert repositories() == ["existing-repo", "train-image"]

    # An image the engine has already (built, its push failed, say) took its tag once checked: it is pushed as it is.
    calls.unlink()
    kept = run_target("build", env, engine, tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert calls.read_text().splitlines() == [*engine_calls(image)[:2], *engine_calls(image)[-2:]]

    register_image(image)  # what the push did in a real ECR
    calls.unlink()
    again = run_target("build", env, engine, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{image} is in ECR already: nothing to build or push" in again.stderr
    assert not calls.exists()  # the engine is not even asked
    assert repositories() == ["existing-repo", "train-image"]


def engine_calls(image: str) -> list[str]:
    """What building and pushing IMAGE asks of the engine, in order."""
    return [
        "info",
        f"image inspect --format {{{{json .Config}}}} {image}",  # there already? (its labels too)
        "buildx version",  # which builder reads the .dockerignore files
        f"build --network host -f {ROOT}/docker/Dockerfile -t {image}-unchecked {ROOT}",
        f"image inspect --format {{{{json .Config.Entrypoint}}}} {image}-unchecked",  # no ENTRYPOINT: `train` on PATH?
        f"run --rm --network host --entrypoint sh {image}-unchecked -c command -v train",
        f"run --rm --network host --entrypoint python {image}-unchecked -m sagemake.contract.imports "
        "/opt/program/src/trainer",  # every module the trainer imports is in the image
        f"tag {image}-unchecked {image}",  # its content tag, once it is shown to start
        f"rmi {image}-unchecked",
        f"login --username AWS --password-stdin {image.split('/')[0]}",
        f"push {image}",
    ]


def repositories() -> list[str]:
    return sorted(r["repositoryName"] for r in client("ecr").describe_repositories()["repositories"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
def test_ctrl_c_while_following_leaves_the_job_running(ready, signum):
    """Ctrl-C, SIGTERM (a CI runner cancelling) and SIGHUP (a closed terminal) each leave the paid job running, say
    how to follow or stop it, and exit 130."""
    env = {**os.environ, "ENV": "prod", "DATA_DIR": ready["DATA_DIR"], **settings()}
    register_image(repository_image(env))  # the scripts hash this repository's files (the same content: the same tag)
    with SageMakerDriver(step_seconds=30) as driver:
        # Ctrl-C reaches the follower as from a terminal however pytest was started: a shell that runs it in the
        # background (`pytest &`, nohup) ignores SIGINT, which a child inherits through exec and then never sees. A
        # handler, unlike SIG_IGN, is reset to the default on exec (no preexec_fn: moto's threads are running).
        ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            follower = subprocess.Popen([*sagemake(ROOT), "train"], cwd=ready.root, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_DFL if ignored is None else ignored)
        try:
            for line in follower.stderr:
                if "/ Downloading:" in line:
                    break
            follower.send_signal(signum)
            _, err = follower.communicate(timeout=30)
        finally:
            if follower.poll() is None:  # it did not stop: nothing is left following the job
                follower.kill()
                follower.communicate()
        assert follower.returncode == Exit.INTERRUPTED
        name = driver.job.training_job_name
        assert f"job {name} keeps running on SageMaker. Follow it again: make logs ENV=prod JOB={name}" in err
        assert f"stop it: make stop ENV=prod JOB={name}" in err
        assert client("sagemaker").describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress"
        # Run again while it runs: no second paid job by surprise.
        again = subprocess.run([*sagemake(ROOT), "train"], cwd=ready.root, env=env, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 2, again.stderr
        assert again.stderr.strip().splitlines()[-1] == (
            f"sagemake: {name} is InProgress on SageMaker with this same request: follow it (make logs ENV=prod "
            f"JOB={name}), or set ALLOW_DUPLICATE=true to start another")
        assert len(client("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == 1


def test_script_mode_uploads_the_code_once_and_names_it_in_the_request(aws, checkout, tmp_path, example_data,
                                                                        trained_model, capsys):
    config = prod_config(checkout, example_data, tmp_path, CODE_MODE="script")
    make_bucket()
    sync(config)
    executor = SageMakerExecutor(config)
    request = plan(config, executor)
    assert request["AlgorithmSpecification"]["TrainingImage"] != SageMakerExecutor(
        prod_config(checkout, example_data, tmp_path)).image()  # the toolkit's image, not the one with the code
    register_image(request["AlgorithmSpecification"]["TrainingImage"])
    code = f"s3://train-bucket/sagemake-example/code/{sourcedir.tag(checkout)}/sourcedir.tar.gz"
    assert request["HyperParameters"]["sagemaker_submit_directory"] == code
    assert request["HyperParameters"]["sagemaker_program"] == "train"
    for _ in range(2):
        with SageMakerDriver(model=trained_model):
            assert submit(config)["TrainingJobStatus"] == "Completed"
    err = capsys.readouterr().err
    assert err.count(f"code: uploaded {code}") == 1
    assert f"code: {code} is there already: nothing to upload" in err
    body = client("s3").get_object(Bucket="train-bucket", Key=code.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert "train" in tar.getnames() and "trainer/train.py" in tar.getnames()


def engine_on_path(folder, answers: bool) -> str:
    """PATH with a `docker` first that answers (exit 0) or not: whether an engine is there to build is the point."""
    folder.mkdir(exist_ok=True)
    (folder / "docker").write_text(f"#!/bin/sh\nexit {0 if answers else 1}\n")
    (folder / "docker").chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def doctor(checkout, path, **extra):
    """`make doctor ENV=prod` as its recipe runs it, in the checkout."""
    env = {**os.environ, "ENV": "prod", "PATH": path, **settings(**extra)}
    return subprocess.run([*sagemake(checkout), "doctor"], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=120)


def test_doctor_checks_the_training_image_is_in_ecr_or_can_be_built(aws, checkout, tmp_path, example_data,
                                                                       monkeypatch):
    make_bucket()
    image = SageMakerExecutor(prod_config(checkout, example_data, tmp_path)).image()
    no_engine = engine_on_path(tmp_path / "silent", answers=False)

    absent = doctor(checkout, no_engine)
    assert absent.returncode == Exit.BAD_INPUT, absent.stderr
    assert (f"FAIL  training image: image {image} is not in ECR and no docker engine is reachable to build it: start "
            "docker (or set CONTAINER_ENGINE), or run `make build ENV=prod` on a machine with one") in absent.stderr
    assert "doctor: 1 check(s) failed for ENV=prod" in absent.stderr

    monkeypatch.setenv("PATH", engine_on_path(tmp_path / "engine", answers=True))
    assert SageMakerExecutor(prod_config(checkout, example_data, tmp_path)).image_available() == \
        f"{image} is not in ECR yet: `make build ENV=prod` builds it with docker"

    register_image(image)  # pushed: no engine is needed any more
    present = doctor(checkout, no_engine)
    assert present.returncode == Exit.OK, present.stderr
    assert f"ok    training image: {image} is in ECR" in present.stdout
    assert "warn  container engine: docker is installed but no engine answers" in present.stderr


def test_doctor_checks_a_training_image_is_in_ecr(aws, checkout, tmp_path, example_data, monkeypatch):
    make_bucket()
    monkeypatch.setenv("PATH", engine_on_path(tmp_path / "engine", answers=True))  # an engine does not help here
    theirs = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/theirs:v1"
    config = prod_config(checkout, example_data, tmp_path, TRAINING_IMAGE=theirs)
    with pytest.raises(UserError, match=rf"^image {theirs} is not in ECR: set TRAINING_IMAGE to an image that is"):
        SageMakerExecutor(config).image_available()
    register_image(theirs)
    assert SageMakerExecutor(config).image_available() == f"{theirs} is in ECR"
    elsewhere = prod_config(checkout, example_data, tmp_path, TRAINING_IMAGE="docker.io/library/python:3.11-slim")
    with pytest.raises(UserError, match=r"python:3.11-slim is not in an ECR registry, where SageMaker pulls images"):
        SageMakerExecutor(elsewhere).image_available()


@pytest.fixture
def registry(tmp_path):
    """A real registry (Debian's docker-registry) on 127.0.0.1, empty: IMAGE_REGISTRY for a test."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if not binary:
        pytest.skip("no docker-registry here (Debian's docker-registry package)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "registry.yml").write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    server = subprocess.Popen([binary, "serve", str(tmp_path / "registry.yml")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    host = f"127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield host
    finally:
        server.terminate()
        server.wait(timeout=30)


def push_manifest(host: str, repository: str, tag: str) -> None:
    """What a push leaves in a registry: a config blob and a manifest naming it (no layers needed)."""
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}'
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    upload = urllib.request.urlopen(urllib.request.Request(f"http://{host}/v2/{repository}/blobs/uploads/",
                                                           method="POST", data=b""))
    location = upload.headers["Location"]
    location = location if location.startswith("http") else f"http://{host}{location}"
    urllib.request.urlopen(urllib.request.Request(f"{location}{'&' if '?' in location else '?'}digest={digest}",
                                                  method="PUT", data=config,
                                                  headers={"Content-Type": "application/octet-stream"})).close()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                           "digest": digest}, "layers": []}
    urllib.request.urlopen(urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{tag}", method="PUT",
                                                  data=json.dumps(manifest).encode(),
                                                  headers={"Content-Type": manifest["mediaType"]})).close()


def test_doctor_asks_another_registry_for_the_image(aws, checkout, tmp_path, example_data, registry, monkeypatch):
    make_bucket()
    monkeypatch.setenv("PATH", engine_on_path(tmp_path / "silent", answers=False))
    image = f"{registry}/team/train:v1"
    config = prod_config(checkout, example_data, tmp_path, IMAGE_REGISTRY=registry, TRAINING_IMAGE=image)
    with pytest.raises(UserError, match=rf"^image {image} is not in {registry}: push it, or set TRAINING_IMAGE"):
        SageMakerExecutor(config).image_available()
    push_manifest(registry, "team/train", "v1")
    assert SageMakerExecutor(config).image_available() == f"{image} is in {registry}"

    built = prod_config(checkout, example_data, tmp_path, IMAGE_REGISTRY=registry)  # the content tag, not there
    with pytest.raises(UserError, match=rf"^image {registry}/train-image:[0-9a-f]{{12}} is not in {registry} and no "
                                        "docker engine is reachable to build it"):
        SageMakerExecutor(built).image_available()
