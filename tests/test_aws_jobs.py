"""Processing and tuning jobs on SageMaker as a user runs them (`make preprocess ENV=prod`, `make tune ENV=prod`),
against moto's server, with the emulator's drivers playing SageMaker's part for real."""

import json
import os
import signal
import subprocess
import threading

from conftest import ROOT
from emulator import ACCOUNT, REGION, ROLE, ProcessingDriver, client, make_bucket, register_image, repository_image
from emulator import settings as aws_settings
from test_processing import check_channels

import trainer.raw

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


def test_ctrl_c_stops_the_processing_job_on_sagemaker(aws, tmp_path):
    make_bucket()
    in_ecr()
    trainer.raw.main(tmp_path / "raw")
    with ProcessingDriver(tmp_path / "sagemaker", start_seconds=120):
        process = subprocess.Popen(["make", "-s", "preprocess"], cwd=ROOT, env=environment(tmp_path),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        lines, running = [], threading.Event()

        def read():
            for line in process.stderr:
                lines.append(line)
                if "] InProgress" in line:
                    running.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert running.wait(120), "".join(lines)
            os.killpg(process.pid, signal.SIGINT)
            assert process.wait(60) == -signal.SIGINT  # make ends by the signal, as a terminal sees it
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        reader.join(10)
    (job,) = processing_jobs()
    assert job["ProcessingJobStatus"] == "Stopped"
    assert f"processing {job['ProcessingJobName']}: stop requested (Ctrl-C)" in "".join(lines)
    assert not (tmp_path / "data").exists()

