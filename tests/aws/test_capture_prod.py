"""Data capture and drift on SageMaker, against the emulator: the endpoint configuration a deploy makes captures as
CAPTURE_PERCENT says (read back from the emulator), and `make drift ENV=prod` reads capture files from the emulator's
S3, in SageMaker's key layout, against a model's baseline; an empty prefix and a bucket in another region are one
line each.
"""

import csv
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from conftest import ROOT
from emulator import client, make_bucket
from test_deploy import JOBS, executor, prod, recorded_invocations  # noqa: F401 (fixtures)

from sagemake import baseline, capture
from sagemake.config import resolve
from sagemake.deployments import history
from sagemake.executors.sagemaker.endpoint import deploy

pytestmark = pytest.mark.slow  # `make drift` runs in its own virtualenv, made once (a minute or two)


def deployed(monkeypatch, percent: str) -> tuple:
    """make deploy ENV=prod with CAPTURE_PERCENT=percent: (its config, its record, the endpoint configuration)."""
    monkeypatch.setenv("CAPTURE_PERCENT", percent)
    config = resolve(env="prod")
    entry = deploy(config, executor(config), JOBS[0])
    sagemaker = client("sagemaker")
    name = sagemaker.describe_endpoint(EndpointName="sagemake-example")["EndpointConfigName"]
    return config, entry, sagemaker.describe_endpoint_config(EndpointConfigName=name)


def test_deploy_sets_the_endpoint_configs_data_capture_and_records_where(prod, monkeypatch, price_list):  # noqa: F811
    config, entry, configuration = deployed(monkeypatch, "30")
    found = configuration["DataCaptureConfig"]
    assert found == {"EnableCapture": True, "InitialSamplingPercentage": 30,
                     "DestinationS3Uri": "s3://train-bucket/sagemake-example/capture",
                     "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                     "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                                  "JsonContentTypes": ["application/json",
                                                                       "application/jsonlines"]}}
    where = "s3://train-bucket/sagemake-example/capture/sagemake-example/AllTraffic/"
    assert entry["capture"] == where and history(config)[-1]["capture"] == where


def test_deploy_with_capture_off_asks_for_none(prod, monkeypatch, price_list):  # noqa: F811
    _, entry, configuration = deployed(monkeypatch, "0")
    assert not configuration.get("DataCaptureConfig")
    assert entry["capture"] is None


JOB = "sagemake-example-abc1234-261208-101500-123k3x9q"


@pytest.fixture
def fetched_model(aws, example_data, tmp_path, monkeypatch):
    """A fetched model (its manifest) with the baseline of the fixture trainer's train channel, ENV=prod settings."""
    folder = tmp_path / "models" / JOB
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"job_name": JOB, "created": "2026-12-08T10:15:00+00:00"}))
    kind, files = baseline.channel_files(example_data / "train")
    found = baseline.profile(baseline.records(kind, files), "target")
    (folder / "baseline.json").write_text(json.dumps({"job": JOB, "channel": "train", "format": kind, **found}))
    make_bucket()
    env = {"ENV": "prod", "AWS_REGION": "eu-central-1", "S3_BUCKET": "train-bucket",
           "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sagemaker-train", "ECR_REPOSITORY": "train-image",
           "MODELS_DIR": str(tmp_path / "models"), "DRIFT_THRESHOLD": "10"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return found


def validation_rows(example_data, shift: float = 1.0, shifted: int = 0) -> list[str]:
    """The validation channel's rows without the label, as CSV lines; the first `shifted` features times shift."""
    with (example_data / "validation/validation.csv").open(newline="") as handle:
        header, *lines = list(csv.reader(handle))
    label = header.index("target")
    rows = []
    for line in lines:
        cells = [float(c) for i, c in enumerate(line) if i != label]
        rows.append(",".join(f"{v * shift if i < shifted else v:g}" for i, v in enumerate(cells)))
    return rows


def put_capture(rows: list[str], hour: str = "2026/12/08/10", name: str = "capture.jsonl") -> str:
    """Capture files as an endpoint writes them: <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl, ten rows
    a request."""
    when = datetime(*(int(p) for p in hour.split("/")), 12, tzinfo=timezone.utc)
    lines = [json.dumps(capture.event(("\n".join(rows[i:i + 10]) + "\n").encode(), "text/csv", b"0\n", "text/csv",
                                      when)) for i in range(0, len(rows), 10)]
    key = f"sagemake-example/capture/sagemake-example/AllTraffic/{hour}/{name}"
    client("s3").put_object(Bucket="train-bucket", Key=key, Body="\n".join(lines).encode())
    return key


def make_drift(drift_python, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(drift_python), "-m", "sagemake", "drift", *args], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=600)


def test_make_drift_env_prod_reads_the_endpoints_capture_files_in_s3(fetched_model, example_data, drift_python):
    put_capture(validation_rows(example_data))
    same = make_drift(drift_python, "", "", JOB)
    assert same.returncode == 0, same.stdout + same.stderr
    assert (f"drift: 114 row(s) from s3://train-bucket/sagemake-example/capture/sagemake-example/AllTraffic/ "
            f"against {fetched_model['rows']} training row(s)") in same.stderr
    assert ": no drift; report " in same.stdout
    put_capture(validation_rows(example_data, shift=3.0, shifted=8), hour="2026/12/08/11", name="later.jsonl")
    both = make_drift(drift_python, "", "", JOB)  # the unshifted hour and the shifted one
    assert both.returncode == 4, both.stdout + both.stderr
    assert "drift: 228 row(s)" in both.stderr and ": DRIFT; report " in both.stdout


def test_since_keeps_the_hours_of_the_span(fetched_model, example_data, drift_python):
    now = datetime.now(timezone.utc)
    put_capture(validation_rows(example_data), hour="2026/01/01/00")
    put_capture(validation_rows(example_data, shift=3.0, shifted=8), hour=now.strftime("%Y/%m/%d/%H"))
    recent = make_drift(drift_python, "", "2h", JOB)
    assert recent.returncode == 4, recent.stdout + recent.stderr
    assert "drift: 114 row(s)" in recent.stderr
    lines = [line for line in recent.stdout.splitlines() if line.startswith("drift: ") and "(threshold" in line]
    assert len(lines) >= 2 and all(" p_value " in line or "distance" in line for line in lines)


def test_an_empty_capture_prefix_says_how_to_capture(fetched_model, drift_python):
    done = make_drift(drift_python, "", "", JOB)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "sagemake: no capture files in s3://train-bucket/sagemake-example/capture/sagemake-example/AllTraffic/: "
        "`make deploy ENV=prod` with CAPTURE_PERCENT above 0 makes the endpoint capture, and its requests are "
        "written there within minutes; or compare rows of a file: FILE=rows.csv")


def test_a_capture_bucket_in_another_region_is_refused(fetched_model, example_data, drift_python, monkeypatch):
    boto3.client("s3", region_name="us-west-2").create_bucket(
        Bucket="far-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    monkeypatch.setenv("S3_BUCKET", "far-bucket")
    done = make_drift(drift_python, "", "", JOB)
    assert done.returncode == 2
    assert "bucket far-bucket is in us-west-2, not in AWS_REGION=eu-central-1" in done.stderr


def test_without_job_env_prod_compares_the_endpoints_model_and_what_it_captured_since(fetched_model, example_data,
                                                                                      drift_python):
    """No JOB: the job the endpoint serves (its configuration's model), and only the requests captured since the
    endpoint took it; earlier hours were another model's (here: shifted rows)."""
    sagemaker = client("sagemaker")
    sagemaker.create_model(ModelName=JOB, ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker-train",
                           PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/x:1"})
    sagemaker.create_endpoint_config(EndpointConfigName="config-1", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": JOB, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName="sagemake-example", EndpointConfigName="config-1")
    took = sagemaker.describe_endpoint(EndpointName="sagemake-example")["LastModifiedTime"].astimezone(timezone.utc)
    before, after = (f"{moment:%Y/%m/%d/%H}" for moment in (took - timedelta(hours=2), took + timedelta(hours=2)))
    put_capture(validation_rows(example_data, shift=3.0, shifted=8), hour=before, name="before.jsonl")
    put_capture(validation_rows(example_data), hour=after, name="after.jsonl")
    done = make_drift(drift_python, "", "", "")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"drift: endpoint sagemake-example serves the model of {JOB} since " in done.stderr
    assert "drift: 114 row(s)" in done.stderr and ": no drift; report " in done.stdout


def test_what_make_transform_env_prod_captured_here_is_compared_too(fetched_model, example_data, drift_python,
                                                                    tmp_path):
    """A batch transform on SageMaker captures its input files on this machine (MODELS_DIR/<job>/capture/), where
    the endpoint's captures are in S3: make drift ENV=prod reads both."""
    when = datetime(2026, 12, 8, 10, 12, tzinfo=timezone.utc)
    rows = validation_rows(example_data)
    folder = tmp_path / "models" / JOB / "capture/2026/12/08/10"
    folder.mkdir(parents=True)
    (folder / "transform-1.jsonl").write_text(json.dumps(capture.event(
        ("\n".join(rows) + "\n").encode(), "text/csv", b"0\n", "text/csv", when)) + "\n")
    done = make_drift(drift_python, "", "", JOB)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"drift: 114 row(s) from s3://train-bucket/sagemake-example/capture/sagemake-example/AllTraffic/ and "
            f"{tmp_path / 'models' / JOB / 'capture'}/ against") in done.stderr
