"""The production path against moto's server: real boto3 and aws CLI calls over HTTP on 127.0.0.1."""

import io
import json
import os
import signal
import subprocess
import tarfile
import time

import boto3
import pytest
from conftest import ROOT
from emulator import (
    ACCOUNT,
    REGION,
    ROLE,
    SageMakerDriver,
    client,
    make_bucket,
    register_image,
    repository_image,
    settings,
)

from sagemake import aws as cloud
from sagemake import sourcedir
from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.fetch_model import fetch
from sagemake.run_sagemaker import list_jobs, plan, submit
from sagemake.upload_data import sync


def prod_config(root, data, **extra):
    return resolve(root=root, environ={"ENV": "prod", "DATA_DIR": str(data), **settings(**extra)})


@pytest.fixture
def ready(aws, tmp_path, example_data):
    """Bucket made, data uploaded, image in ECR: what `make build upload` leave behind."""
    config = prod_config(tmp_path, example_data)
    make_bucket()
    sync(config)
    register_image(plan(config)["AlgorithmSpecification"]["TrainingImage"])
    return config


def test_plan_carries_every_configured_field(aws, tmp_path, example_data):
    config = prod_config(tmp_path, example_data, USE_SPOT="true", MAX_WAIT_SECONDS="7200",
                         CHECKPOINT_S3_URI="s3://train-bucket/checkpoints", SUBNETS="subnet-1 subnet-2",
                         SECURITY_GROUP_IDS="sg-1", INPUT_MODES="train=FastFile", JOB_ENV="MODE=full",
                         INSTANCE_TYPE="ml.g5.xlarge", INSTANCE_COUNT="2", VOLUME_SIZE_GB="100", S3_PREFIX="team/churn")
    request = plan(config)
    spec = request["AlgorithmSpecification"]
    assert spec["TrainingImage"].startswith(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/train-image:")
    assert [d["Name"] for d in spec["MetricDefinitions"]][:2] == ["train:accuracy", "validation:accuracy"]
    assert request["RoleArn"] == ROLE
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://train-bucket/team/churn/data/train/"
    assert (channels["train"]["InputMode"], channels["validation"]["InputMode"]) == ("FastFile", "File")
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://train-bucket/team/churn/output"}
    assert request["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert request["EnableManagedSpotTraining"] is True
    assert request["CheckpointConfig"] == {"S3Uri": "s3://train-bucket/checkpoints"}
    assert request["VpcConfig"] == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
    assert request["Environment"] == {"MODE": "full"}
    assert {t["Key"]: t["Value"] for t in request["Tags"]}["sagemake:env"] == "prod"


def test_sagemaker_receives_the_request_as_planned(ready):
    config = prod_config(ready.root, ready["DATA_DIR"], USE_SPOT="true", MAX_WAIT_SECONDS="7200",
                         CHECKPOINT_S3_URI="s3://train-bucket/checkpoints", SUBNETS="subnet-1",
                         SECURITY_GROUP_IDS="sg-1 sg-2", HP="max_depth=4")
    request = plan(config)
    cloud.SageMakerJobs(config).submit(request)
    sent = client("sagemaker").describe_training_job(TrainingJobName=request["TrainingJobName"])
    # moto keeps neither Environment nor MetricDefinitions (it writes its own): the plan test covers those.
    for field in ("RoleArn", "HyperParameters", "InputDataConfig", "OutputDataConfig", "ResourceConfig",
                  "StoppingCondition", "VpcConfig", "EnableManagedSpotTraining", "CheckpointConfig"):
        assert sent[field] == request[field], field
    assert sent["AlgorithmSpecification"]["TrainingImage"] == request["AlgorithmSpecification"]["TrainingImage"]
    tags = client("sagemaker").list_tags(ResourceArn=sent["TrainingJobArn"])["Tags"]
    assert sorted(tags, key=lambda t: t["Key"]) == sorted(request["Tags"], key=lambda t: t["Key"])


def test_train_follows_to_completed_with_every_stream_then_fetches(ready, trained_model, capsys):
    with SageMakerDriver(model=trained_model):
        assert submit(ready, then_fetch=True) == 0
    out, err = capsys.readouterr()
    name = cloud.SageMakerJobs(ready).latest()
    for status in ("Starting", "Downloading", "Training", "Uploading", "Completed"):
        assert f"/ {status}:" in err, status
    assert f"job {name}: [0:00:0" in err  # elapsed time on each transition
    assert "[algo-1-1700000000] epoch 1" in out and "[algo-1-1700000000] epoch 2" in out
    assert "[algo-2-1700000000] worker ready" in out
    assert "billable 100 s of 400 s training, 75% saved by spot" in err
    manifest = json.loads((ready.path("MODELS_DIR") / name / "manifest.json").read_text())
    assert manifest["status"] == "Completed" and manifest["region"] == REGION
    assert manifest["image_digest"].startswith("sha256:")
    assert manifest["artifact"]["uri"] == f"s3://train-bucket/sagemake-example/output/{name}/output/model.tar.gz"
    assert manifest["metrics"] == {"validation:roc_auc": 0.987654}
    assert (ready.path("MODELS_DIR") / name / "model.joblib").is_file()


def test_a_failed_job_says_why_with_its_last_lines_and_links(ready, capsys):
    with SageMakerDriver(outcome="Failed"):
        with pytest.raises(UserError, match=r"Failed: AlgorithmError: label column 'label' not found"):
            submit(ready, then_fetch=True)
    err = capsys.readouterr().err
    name = cloud.SageMakerJobs(ready).latest()
    assert "last 5 log lines:" in err and "[algo-1-1700000000] epoch 2" in err
    assert f"console: https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#/jobs/{name}" in err
    assert f"logs:    https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}" in err
    with pytest.raises(UserError, match=rf"job {name} is Failed: AlgorithmError"):
        fetch(ready, name)


def test_jobs_lists_this_projects_jobs_newest_first(ready, trained_model, capsys):
    other = prod_config(ready.root, ready["DATA_DIR"], PROJECT_NAME="other")
    sagemaker = client("sagemaker")
    for stranger in ("other-abc1234-20261122-000000-000", "sagemake-example-v2-abc1234-20261122-000000-000"):
        sagemaker.create_training_job(**{**plan(ready), "TrainingJobName": stranger})
    first = plan(ready)
    cloud.SageMakerJobs(ready).submit(first)
    time.sleep(0.01)
    second = plan(ready)
    cloud.SageMakerJobs(ready).submit(second)
    capsys.readouterr()
    list_jobs(ready, 10)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["JOB", "STATUS", "DURATION", "validation:roc_auc"]
    assert [line.split()[0] for line in lines[1:]] == [second["TrainingJobName"], first["TrainingJobName"]]
    assert cloud.SageMakerJobs(other).names() == ["other-abc1234-20261122-000000-000"]


def test_sync_uploads_only_what_changed_and_mirrors_the_folder(aws, tmp_path, example_data):
    data = tmp_path / "data"
    for channel in ("train", "validation"):
        (data / channel).mkdir(parents=True)
        (data / channel / "a.csv").write_text(f"{channel} a\n")
        (data / channel / "b.csv").write_text(f"{channel} b\n")
    config = prod_config(tmp_path, data)
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


def test_a_bucket_in_another_region_is_refused_before_anything_is_sent(aws, tmp_path, example_data):
    make_bucket("far-bucket", "us-west-2")
    config = prod_config(tmp_path, example_data, S3_BUCKET="far-bucket")
    with pytest.raises(UserError, match=rf"bucket far-bucket is in us-west-2, not in AWS_REGION={REGION}"):
        sync(config)
    with pytest.raises(UserError, match="bucket far-bucket is in us-west-2"):
        submit(config, then_fetch=False)
    assert "Contents" not in boto3.client("s3", region_name="us-west-2").list_objects_v2(Bucket="far-bucket")
    assert client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_a_missing_bucket_is_named(aws, tmp_path, example_data):
    with pytest.raises(UserError, match="bucket train-bucket does not exist: create it in your region or fix S3_"):
        sync(prod_config(tmp_path, example_data))


def test_no_credentials_is_one_clear_line(aws, tmp_path, example_data, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(UserError, match=r"^no AWS credentials found: run `aws configure` or `aws sso login`"):
        plan(prod_config(tmp_path, example_data))


@pytest.mark.parametrize("extra, message", [
    ({"USE_SPOT": "true", "MAX_WAIT_SECONDS": "7200"}, "USE_SPOT=true needs CHECKPOINT_S3_URI=s3://"),
    ({"USE_SPOT": "true", "MAX_WAIT_SECONDS": "60", "CHECKPOINT_S3_URI": "s3://b/c"},
     r"USE_SPOT=true needs MAX_WAIT_SECONDS >= MAX_RUNTIME_SECONDS \(60 < 3600\)"),
    ({"SAGEMAKER_ROLE_ARN": "arn:aws:iam::12:role/x"}, "is not an IAM role ARN"),
    ({"SUBNETS": "subnet-1"}, "a VPC needs both SUBNETS and SECURITY_GROUP_IDS"),
])
def test_settings_that_would_fail_on_sagemaker_are_refused(tmp_path, example_data, extra, message):
    with pytest.raises(UserError, match=message):
        prod_config(tmp_path, example_data, **extra)


def test_submit_refuses_an_image_not_in_ecr_or_data_not_uploaded(aws, tmp_path, example_data):
    config = prod_config(tmp_path, example_data)
    make_bucket()
    with pytest.raises(UserError, match=r"image .*/train-image:[0-9a-f]{12} is not in ECR: run `make build ENV=prod`"):
        submit(config, then_fetch=False)
    register_image(plan(config)["AlgorithmSpecification"]["TrainingImage"])
    with pytest.raises(UserError, match=r"channel train has no data at s3://train-bucket/sagemake-example/data/train/"):
        submit(config, then_fetch=False)
    assert client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_fetch_of_a_completed_job_without_its_model_is_named(ready):
    request = plan(ready)
    client("sagemaker").create_training_job(**request)  # moto completes it at once, with no model.tar.gz
    with pytest.raises(UserError, match=rf"no model at s3://train-bucket/sagemake-example/output/{request['TrainingJobName']}/output/model.tar.gz"):
        fetch(ready, request["TrainingJobName"])


def test_logs_and_stop_of_an_unknown_job(ready):
    jobs = cloud.SageMakerJobs(ready)
    for action in (jobs.print_log, jobs.stop, lambda name: fetch(ready, name)):
        with pytest.raises(UserError, match=rf"no SageMaker job named 'ghost' in {REGION}"):
            action("ghost")


def test_stop_of_a_finished_job_is_refused(ready):
    request = plan(ready)
    client("sagemaker").create_training_job(**request)
    with pytest.raises(UserError, match="is Completed already: nothing to stop"):
        cloud.SageMakerJobs(ready).stop(request["TrainingJobName"])


def run_script(script, config_env, path_prefix, cwd):
    env = {**os.environ, **config_env, "PATH": f"{path_prefix}:{os.environ['PATH']}"}
    return subprocess.run([str(ROOT / "scripts" / script)], env=env, cwd=cwd, capture_output=True, text=True)


def test_build_and_push_creates_the_repository_once_and_skips_a_pushed_tag(aws, tmp_path):
    """ECR is real (moto); the container engine is a stand-in that records its exact calls."""
    engine = tmp_path / "bin"
    engine.mkdir()
    calls = tmp_path / "calls"
    (engine / "docker").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{calls}"\n'
                                   'if [ "$1" = login ]; then cat >"' + str(tmp_path / "password") + '"; fi\n')
    (engine / "docker").chmod(0o755)
    env = {"ENV": "prod", **settings(CONTAINER_BUILD_FLAGS="--network host")}
    image = repository_image(env)
    registry = image.split("/")[0]

    first = run_script("build_and_push_image.sh", env, engine, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "creating ECR repository train-image" in first.stderr
    assert calls.read_text().splitlines() == [
        "info",
        f"build --network host -f {ROOT}/docker/Dockerfile -t {image} {ROOT}",
        f"run --rm --entrypoint sh {image} -c command -v train",
        f"login --username AWS --password-stdin {registry}",
        f"push {image}",
    ]
    assert (tmp_path / "password").read_text().strip()  # the password went through stdin, not argv
    assert [r["repositoryName"] for r in client("ecr").describe_repositories()["repositories"]] == ["train-image"]

    # Another repository that exists already is used as it is.
    client("ecr").create_repository(repositoryName="existing-repo")
    calls.unlink()
    existing = run_script("build_and_push_image.sh", {**env, "ECR_REPOSITORY": "existing-repo"}, engine, tmp_path)
    assert existing.returncode == 0, existing.stderr
    assert "creating ECR repository" not in existing.stderr
    assert [line.split()[0] for line in calls.read_text().splitlines()] == ["info", "build", "run", "login", "push"]

    register_image(image)  # what the push did in a real ECR
    calls.unlink()
    again = run_script("build_and_push_image.sh", env, engine, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{image} is in ECR already: nothing to build or push" in again.stderr
    assert not calls.exists()


def test_ctrl_c_while_following_leaves_the_job_running(ready):
    env = {**os.environ, "ENV": "prod", "DATA_DIR": ready["DATA_DIR"], **settings()}
    register_image(repository_image(env))  # the scripts hash this repository's files, not the test root's
    with SageMakerDriver(step_seconds=30) as driver:
        follower = subprocess.Popen([str(ROOT / "scripts/run_sagemaker.py"), "submit"], cwd=ready.root, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in follower.stderr:
            if "/ Downloading:" in line:
                break
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == 130
        name = driver.job.training_job_name
        assert f"job {name} keeps running on SageMaker. Follow it again: make logs ENV=prod JOB={name}" in err
        assert f"stop it: make stop ENV=prod JOB={name}" in err
        assert client("sagemaker").describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress"


def test_script_mode_uploads_the_code_once_and_names_it_in_the_request(aws, tmp_path, example_data, trained_model,
                                                                        capsys):
    config = resolve(root=ROOT, environ={"ENV": "prod", "DATA_DIR": str(example_data), "CODE_MODE": "script",
                                         "MODELS_DIR": str(tmp_path / "models"), **settings()})
    make_bucket()
    sync(config)
    request = plan(config)
    register_image(request["AlgorithmSpecification"]["TrainingImage"])
    code = f"s3://train-bucket/sagemake-example/code/{sourcedir.tag(ROOT)}/sourcedir.tar.gz"
    assert request["HyperParameters"]["sagemaker_submit_directory"] == code
    assert request["HyperParameters"]["sagemaker_program"] == "train"
    for _ in range(2):
        with SageMakerDriver(model=trained_model):
            assert submit(config, then_fetch=False) == 0
    err = capsys.readouterr().err
    assert err.count(f"code: uploaded {code}") == 1
    assert f"code: {code} is there already: nothing to upload" in err
    body = client("s3").get_object(Bucket="train-bucket", Key=code.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert "train" in tar.getnames() and "trainer/train.py" in tar.getnames()
