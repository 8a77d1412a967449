"""`make train ENV=prod` and `make doctor ENV=prod` as a user runs them, against moto's server."""

import contextlib
import json
import os
import pty
import select
import subprocess
import urllib.request

import pytest
from conftest import ROOT
from emulator import REGION, SageMakerDriver, client, make_bucket, register_image, repository_image, settings

from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.executors.sagemaker.executor import SageMakerExecutor
from sagemake.image import check as engine
from sagemake.jobs.training import plan


def environment(env, tmp_path):
    return {**os.environ, "ENV": "prod", "DATA_DIR": str(tmp_path / "data"), "MODELS_DIR": str(tmp_path / "models"),
            **settings(), **env}


def make(target, env, tmp_path):
    return subprocess.run(["make", "-s", target], cwd=ROOT, env=environment(env, tmp_path), capture_output=True,
                          text=True, timeout=300)


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
    # Every value of a metric, from the CloudWatch log, each with its step and the time CloudWatch gave its line.
    series = SageMakerExecutor(resolve(root=ROOT, environ={"ENV": "prod", **settings()})).metric_series(job)
    first, second = series["validation:roc_auc"]
    assert (first["Step"], first["Value"], second["Step"], second["Value"]) == (0, 0.912345, 1, 0.987654)
    assert manifest["created"] < first["Timestamp"] < second["Timestamp"]
    # The report reads the same from SageMaker: the job, its billable seconds and its learning curve.
    reported = make("report", {}, tmp_path)
    assert reported.returncode == 0, reported.stderr
    page = (ROOT / "build/report.html").read_text()
    (ROOT / "build/report.html").unlink()
    assert f"<td>{job}</td><td>Completed</td>" in page and "<td class=n>100s</td>" in page
    assert '"y":[0.912345,0.987654]' in page.replace(" ", "")

    # A second run with nothing changed uploads nothing and builds nothing.
    with SageMakerDriver(model=trained_model):
        again = make("train", {}, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "has channels train, validation: used as they are" in again.stderr  # the data step does not run again
    assert "upload: train: 0 uploaded (0.0 MB), 1 unchanged" in again.stderr
    assert "nothing to build or push" in again.stderr
    assert len(client("sagemaker").list_training_jobs()["TrainingJobSummaries"]) == 2


def test_make_doctor_env_prod(aws, tmp_path):
    image = repository_image({"ENV": "prod", **settings()})
    register_image(image)  # pushed earlier: no engine is needed (a missing image is tested in test_aws.py)
    missing = make("doctor", {}, tmp_path)
    assert missing.returncode != 0
    assert "ok    credentials: account 123456789012" in missing.stdout
    assert "FAIL  bucket: bucket train-bucket does not exist" in missing.stderr
    assert "doctor: 1 check(s) failed for ENV=prod" in missing.stderr

    make_bucket()
    ready = make("doctor", {}, tmp_path)
    assert ready.returncode == 0, ready.stderr
    assert f"ok    bucket: s3://train-bucket is in {REGION}" in ready.stdout
    assert f"ok    ECR repository: {image.rsplit(':', 1)[0]}" in ready.stdout
    assert f"ok    training image: {image} is in ECR" in ready.stdout
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



def expired_token(code: str) -> Exception:
    """What AWS answers a request signed with credentials that have expired (an SSO session's, an assumed role's),
    as moto raises it from a service; code is the service's own name for it."""
    from moto.core.exceptions import ServiceException

    class ExpiredToken(ServiceException):  # not in moto: moto writes it in the protocol of the service raising it
        pass

    return ExpiredToken(code, "The security token included in the request is expired")


@pytest.mark.filterwarnings("ignore:Exception\\(ExpiredToken\\)")  # moto: STS's model has no ExpiredToken shape
def test_make_doctor_says_when_the_credentials_have_expired(aws, tmp_path, monkeypatch):
    from moto.sts.models import STSBackend

    def expired(*_, **__):
        raise expired_token("ExpiredToken")  # STS's code for it

    monkeypatch.setattr(STSBackend, "get_caller_identity", expired)
    make_bucket()
    result = make("doctor", {}, tmp_path)
    assert result.returncode != 0
    assert ("FAIL  credentials: AWS credentials have expired (ExpiredToken): renew them (`aws sso login`, or assume "
            "the role again)") in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


@pytest.mark.filterwarnings("ignore:Exception\\(ExpiredToken\\)")  # moto: SageMaker's model has no such shape
def test_make_train_env_prod_follows_the_job_through_a_failed_poll(aws, tmp_path, example_data, trained_model,
                                                                    monkeypatch):
    """Credentials that expire while a job runs fail a poll (botocore does not retry that); once they are renewed,
    following carries on to the end, and the model is fetched."""
    from moto.sagemaker.models import SageMakerModelBackend

    describe, failed = SageMakerModelBackend.describe_training_job, []

    def first_poll_fails(backend, name):
        if name in backend.training_jobs and not failed:  # the first poll of the job, once it exists
            failed.append(name)
            raise expired_token("ExpiredTokenException")  # SageMaker's code for it
        return describe(backend, name)

    monkeypatch.setattr(SageMakerModelBackend, "describe_training_job", first_poll_fails)
    make_bucket()
    register_image(repository_image({"ENV": "prod", **settings()}))
    with SageMakerDriver(model=trained_model):
        result = make("train", {"DATA_DIR": str(example_data)}, tmp_path)
    assert result.returncode == 0, result.stderr
    (name,) = failed
    lines = result.stderr.splitlines()
    retry = lines.index(f"==> job {name}: AWS credentials have expired (ExpiredTokenException): renew them "
                        "(`aws sso login`, or assume the role again); trying again in 1 s")
    assert [line for line in lines if "trying again" in line] == [lines[retry]]  # one failed poll, said once
    assert any(line.endswith("Completed / Completed: Job ended") for line in lines[retry:])
    for line in ("[algo-1-1700000000] epoch 1", "[algo-1-1700000000] validation:roc_auc=0.912345",
                 "[algo-2-1700000000] worker ready", "[algo-1-1700000000] epoch 2",
                 "[algo-1-1700000000] validation:roc_auc=0.987654"):
        assert result.stdout.count(line) == 1, line  # nothing lost, nothing twice
    manifest = json.loads((tmp_path / "models" / name / "manifest.json").read_text())
    assert manifest["status"] == "Completed" and manifest["job_name"] == name


def stoppable(monkeypatch) -> list[str]:
    """StopTrainingJob, which moto lacks, played as SageMaker does it: an InProgress job becomes Stopping (then, once
    its container has exited, Stopped); a job in any other status is refused. Returns the jobs stopped, in order."""
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    stopped: list[str] = []

    def stop_training_job(response):
        name = response._get_param("TrainingJobName")
        job = response.sagemaker_backend.training_jobs.get(name)
        if job is None:
            raise ValidationError(f"Requested resource not found: training job {name}")
        if job.training_job_status != "InProgress":
            raise ValidationError(f"The request was rejected because the training job is in status "
                                  f"{job.training_job_status}.")
        job.training_job_status = "Stopping"
        SageMakerDriver._transition(job, "Stopping", "Stopping the training job")
        stopped.append(name)
        return EmptyResult()

    monkeypatch.setattr(SageMakerResponse, "stop_training_job", stop_training_job, raising=False)
    return stopped


def test_make_stop_env_prod_stops_a_running_job(aws, tmp_path, example_data, monkeypatch):
    stopped = stoppable(monkeypatch)
    config = resolve(root=ROOT, environ={"ENV": "prod", "DATA_DIR": str(example_data), **settings()})
    request = plan(config, SageMakerExecutor(config))
    name = request["TrainingJobName"]
    with SageMakerDriver(step_seconds=30):  # held in Downloading: running, far from its end
        client("sagemaker").create_training_job(**request)
        result = make("stop", {"JOB": name}, tmp_path)
        record = client("sagemaker").describe_training_job(TrainingJobName=name)
    assert result.returncode == 0, result.stderr
    assert f"==> job {name}: stop requested (SageMaker sends SIGTERM, then SIGKILL after 120 s)" in \
        result.stderr.splitlines()
    assert stopped == [name]  # StopTrainingJob reached SageMaker, once
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopping", "Stopping")


def on_a_terminal(command: list[str], env: dict) -> tuple[int, str]:
    """Run command with its stderr on a pseudo-terminal, as from an interactive shell: its exit status and what the
    terminal received (the terminal driver makes each \\n a \\r\\n)."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=slave)
    finally:
        os.close(slave)
    received = b""
    try:
        while select.select([master], [], [], 300)[0]:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: the last writer has closed the terminal
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
        if process.poll() is None:  # silent for 300 s: not left behind
            process.kill()
        process.wait()
    return process.returncode, received.decode()


def test_make_upload_env_prod_shows_its_progress(aws, tmp_path):
    for channel, sizes in {"train": [100_000] * 3, "validation": [200_000]}.items():
        (tmp_path / "data" / channel).mkdir(parents=True)
        for number, size in enumerate(sizes):
            (tmp_path / "data" / channel / f"part-{number}.csv").write_bytes(os.urandom(size))
    make_bucket()
    uri = "s3://train-bucket/sagemake-example/data"
    result = make("upload", {}, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert f"==> upload {uri}/train/: 0.3 MB done" in lines
    assert f"==> upload {uri}/validation/: 0.2 MB done" in lines
    assert f"==> upload: train: 3 uploaded (0.3 MB), 0 unchanged, 0 deleted -> {uri}/train/" in lines
    assert "%" not in result.stderr  # not a terminal: no line rewritten in place

    # On a terminal the line is rewritten in place as the bytes go, of what is sent only (not the unchanged files).
    # One file of each channel changes, or the re-sync would find its manifest true and move nothing.
    for channel, size in (("train", 100_000), ("validation", 200_000)):
        (tmp_path / "data" / channel / "part-0.csv").write_bytes(os.urandom(size))
    status, shown = on_a_terminal(["make", "-s", "upload"], environment({}, tmp_path))
    assert status == 0, shown
    for channel, size in (("train", "0.1 MB"), ("validation", "0.2 MB")):
        assert f"\r==> upload {uri}/{channel}/: 100% of {size}" in shown
        assert f"\r==> upload {uri}/{channel}/: {size} done\r\n" in shown


@contextlib.contextmanager
def iam_enforced(endpoint: str):
    """moto checks every request against IAM meanwhile, as AWS does: the signature, the access key, its policies."""
    def checking_from(count: bytes):
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count, method="POST",
                                                      headers={"Content-Type": "text/plain"})).read()

    checking_from(b"0")
    try:
        yield
    finally:
        checking_from(b"inf")


def test_make_upload_env_prod_says_what_aws_denied(aws, tmp_path):
    iam = client("iam")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="no-writes-to-the-data", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},
                      {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::train-bucket/*"}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    make_bucket()
    (tmp_path / "data/train").mkdir(parents=True)
    (tmp_path / "data/train/a.csv").write_text("x,y\n1,2\n")
    with iam_enforced(aws):
        result = make("upload", {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                                 "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}, tmp_path)
    assert result.returncode != 0 and result.stderr.endswith("] Error 3\n")  # Exit.AWS_ERROR, as make saw it
    assert "sagemake: AWS denied PutObject (Access Denied): grant it to your credentials" in \
        result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert "Contents" not in client("s3").list_objects_v2(Bucket="train-bucket")
