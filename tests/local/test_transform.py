"""Batch transform as SageMaker runs it: `make transform` on this machine (a process, and the job's image in a real
container where an engine answers), checked line by line against the model's own predictions; the request the
same for both places; on SageMaker (the emulator) the model, the transform job, the upload and the download.
"""

import json
import math
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import test_serve
from conftest import sagemake
from emulator import ROLE, backend, client, make_bucket, model_archive, settings
from test_serve import FLAGS, Reference, make, no_engine, read_csv_predictions

from sagemake.config import resolve
from sagemake.executors.local.transform import LocalTransforms
from sagemake.executors.sagemaker.transform import SageMakerTransforms
from sagemake.jobs import ran
from sagemake.jobs.transform import TransformFailed, batch_environment, payloads, transform_request
from sagemake.pricing import TABLE, TRANSFORM, money, rate
from sagemake.targets.transform import transform

ROWS_A, ROWS_B = 7000, 9000
# test_serve's fixtures: its trained project (the session's), the engine and the image (this module's).
project, engine, image = test_serve.project, test_serve.engine, test_serve.image


@pytest.fixture(scope="module")
def reference(project) -> Reference:
    return Reference(*project)


@pytest.fixture(scope="module")
def inputs(reference, tmp_path_factory) -> tuple[Path, dict[str, list[list[str]]]]:
    """Two files of several thousand rows (the validation rows over and over, one folder down for the second),
    with a blank line, which carries no record."""
    folder = tmp_path_factory.mktemp("transform input")
    cells = reference.cells
    files = {"a.csv": [cells[i % len(cells)] for i in range(ROWS_A)],
             "part/b.csv": [cells[(7 * i) % len(cells)] for i in range(ROWS_B)]}
    for name, rows in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        lines = [",".join(row) for row in rows]
        lines.insert(10, "")
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder, files


def expected_lines(reference: Reference, rows: list[list[str]]) -> list[dict]:
    """The model's own predictions (joblib, not our server) for each row."""
    index = {tuple(cells): i for i, cells in enumerate(reference.cells)}
    labels, probabilities = reference.labels, reference.probabilities
    return [{"label": labels[index[tuple(row)]], "probability": probabilities[index[tuple(row)]]} for row in rows]


def the_transform(result) -> str:
    (name,) = set(re.findall(r"transform (\S+-batch-\S+): Completed", result.stderr)) or {None}
    assert name, result.stderr
    return name


def check_outputs(repo: Path, name: str, inputs, reference) -> dict:
    folder, files = inputs
    output = repo / "jobs" / name / "output"
    assert sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()) == \
        sorted(f"{n}.out" for n in files)
    for file, rows in files.items():
        got = read_csv_predictions((output / f"{file}.out").read_bytes())
        assert len(got) == len(rows), file
        assert got == expected_lines(reference, rows), file
    return json.loads((repo / "jobs" / name / "transform.json").read_text())


def posts(repo: Path, name: str) -> int:
    return (repo / "jobs" / name / "transform.log").read_text().count('"POST /invocations')


def test_make_transform_as_a_process_gives_the_models_own_predictions_line_by_line(project, reference, inputs,
                                                                                   tmp_path):
    repo, job = project
    folder, files = inputs
    result = make(repo, "transform", f"INPUT={folder}", env={**no_engine(tmp_path), "TRANSFORM_MAX_PAYLOAD_MB": "1",
                                                             "TRANSFORM_MAX_CONCURRENT": "3",
                                                             "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    name = the_transform(result)
    record = check_outputs(repo, name, inputs, reference)
    assert record["TransformJobStatus"] == "Completed" and record["ModelName"] == job
    assert (record["BatchStrategy"], record["MaxPayloadInMB"], record["MaxConcurrentTransforms"]) == \
        ("MultiRecord", 1, 3)
    assert record["TransformInput"]["SplitType"] == "Line" and record["TransformOutput"]["AssembleWith"] == "Line"
    assert record["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == folder.resolve().as_uri() + "/"
    assert record["CreationTime"] <= record["TransformStartTime"] <= record["TransformEndTime"]
    # The server took SageMaker's batch variables, and its 1 MB limit held every payload: several a file.
    log = (repo / "jobs" / name / "transform.log").read_text()
    assert "serve: batch transform: payloads up to 1 MB, MULTI_RECORD, 3 concurrent transform(s)" in log
    least = sum(math.ceil((folder / f).stat().st_size / 2**20) for f in files)
    assert least >= 4 and least <= posts(repo, name) <= least + len(files), log
    assert "runtime process" in result.stderr
    # What it would have cost on SageMaker: batch transform's price, which the shipped table may not have.
    said = f"transform {name}: would have cost on SageMaker: 1 x ml.m5.large for {ran(record, 'Transform')} s"
    hourly = TABLE.hourly("us-east-1", TRANSFORM, "ml.m5.large")
    if hourly is None:
        assert f"{said}: unknown (prices for us-east-1: unknown: the shipped table of {TABLE.date} has no batch " \
               "transform price for ml.m5.large in us-east-1)" in result.stderr
    else:
        assert f"{said} at {rate(hourly)}/h of batch transform = " in result.stderr
    # The deployment record has it, and `make endpoints` shows it.
    manifest = json.loads((repo / "models" / job / "manifest.json").read_text())
    (entry,) = [json.loads(line) for line in (repo / "models/deployments.jsonl").read_text().splitlines()
                if json.loads(line).get("transform") == name]
    assert (entry["event"], entry["job"], entry["sha256"], entry["image"]) == \
        ("transform", job, manifest["artifact"]["sha256"], manifest["image"])
    listed = make(repo, "endpoints")
    assert listed.returncode == 0, listed.stderr
    (row,) = [line.split() for line in listed.stdout.splitlines() if line.startswith(name)]
    assert row[1:7] == ["local", "transform", "-", "-", job, manifest["artifact"]["sha256"][:12]]  # no instances
    # And it is an MLflow run, naming the model it served.
    from mlflow.tracking import MlflowClient

    from sagemake.config import resolve
    from sagemake.tracking import drain

    drain(resolve(root=repo, environ={}))  # its run written, as `make ui` does before reading
    client = MlflowClient(f"sqlite:///{repo / 'build/mlflow/mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("sagemake-example").experiment_id],
                                f"attributes.run_name = '{name}'")
    assert run.info.status == "FINISHED" and run.data.metrics["files"] == len(files)
    assert (run.data.tags["sagemake.model_job"], run.data.tags["sagemake.model_sha256"]) == \
        (job, manifest["artifact"]["sha256"])
    assert run.data.params["job.batch_strategy"] == "MultiRecord" and run.data.params["job.max_concurrent"] == "3"


def test_single_record_sends_one_line_a_request_in_order(project, reference, tmp_path):
    repo, _ = project
    rows = reference.cells[:40]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("".join(",".join(r) + "\n" for r in rows))
    result = make(repo, "transform", f"INPUT={tmp_path / 'in'}",
                  env={**no_engine(tmp_path), "TRANSFORM_BATCH_STRATEGY": "SingleRecord",
                       "TRANSFORM_MAX_CONCURRENT": "4"})
    assert result.returncode == 0, result.stderr
    name = the_transform(result)
    check_outputs(repo, name, (tmp_path / "in", {"rows.csv": rows}), reference)
    assert posts(repo, name) == len(rows)
    assert "SINGLE_RECORD, 4 concurrent" in (repo / "jobs" / name / "transform.log").read_text()


def test_make_transform_in_the_jobs_image(project, reference, inputs, image):
    repo, _ = project
    folder, _ = inputs
    result = make(repo, "transform", f"INPUT={folder}", env={"CONTAINER_RUN_FLAGS": FLAGS})
    assert result.returncode == 0, result.stderr
    assert f"runtime container (docker, image {image})" in result.stderr
    name = the_transform(result)
    check_outputs(repo, name, inputs, reference)
    assert "serve: batch transform: payloads up to 6 MB, MULTI_RECORD, 1 concurrent" in \
        (repo / "jobs" / name / "transform.log").read_text()


def test_bad_input_is_one_line(project, reference, tmp_path):
    repo, job = project
    env = no_engine(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "r.csv").write_text(",".join(reference.cells[0]) + "\n")
    for args, extra, sentence in (
        ((), {}, "sagemake: INPUT is required: make transform INPUT=<folder of .csv files> [JOB=<job>]"),
        ((f"INPUT={tmp_path}/none",), {}, f"sagemake: INPUT={tmp_path}/none is not a folder"),
        ((f"INPUT={tmp_path}/empty",), {}, f"sagemake: INPUT={tmp_path}/empty holds no data"),
        ((f"INPUT={tmp_path}/rows",), {"MODELS_DIR": str(tmp_path / "no models")},
         f"sagemake: no fetched model in {tmp_path}/no models/: run `make fetch` (the latest job, "),
        ((f"INPUT={tmp_path}/rows", "JOB=sagemake-example-nope"), {},
         "sagemake: no fetched model of job sagemake-example-nope in models/, and no local job named "
         "'sagemake-example-nope' in jobs/: "),
        ((f"INPUT={tmp_path}/rows",), {"TRANSFORM_BATCH_STRATEGY": "Everything"},
         "1 config problem(s): TRANSFORM_BATCH_STRATEGY='Everything' must be one of: MultiRecord, SingleRecord"),
    ):
        result = make(repo, "transform", *args, env={**env, **extra})
        assert result.returncode != 0, args
        assert sentence in result.stderr, (args, result.stderr)
    result = script(repo, str(tmp_path / "empty"), env=env)
    assert result.returncode == 2 and "holds no data" in result.stderr


def script(repo: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    """The transform target itself, whose exit status says more than make's 2."""
    return subprocess.run([*sagemake(repo), "transform", *args], cwd=repo, text=True,
                          capture_output=True, env={**os.environ, "VENV": sys.prefix, **env}, timeout=600)


def test_a_refused_payload_fails_the_transform_naming_the_lines(project, reference, tmp_path):
    repo, _ = project
    (tmp_path / "in").mkdir()
    good = ",".join(reference.cells[0])
    (tmp_path / "in" / "rows.csv").write_text(f"{good}\n{good}\n1,2,3\n")
    result = script(repo, str(tmp_path / "in"), env={**no_engine(tmp_path), "TRANSFORM_BATCH_STRATEGY": "SingleRecord"})
    assert result.returncode == 1, result.stderr
    assert "rows.csv lines 3-3: the model server answered 400: line 1 has 3 values; the model takes 30" \
        in result.stderr
    (name,) = re.findall(r"transform (\S+-batch-\S+) Failed", result.stderr)
    record = json.loads((repo / "jobs" / name / "transform.json").read_text())
    assert record["TransformJobStatus"] == "Failed" and "lines 3-3" in record["FailureReason"]
    assert not list((repo / "jobs" / name / "output").rglob("*.out"))  # no half output passes for a whole one


def test_a_file_that_starts_with_a_header_line_is_refused_before_anything_runs(project, reference, tmp_path):
    """A header and three rows: every line goes to the model as a record on SageMaker; sagemake's server took the
    header for one and answered three lines for four. Refused, naming the file and the fix."""
    repo, _ = project
    folder = tmp_path / "in"
    folder.mkdir()
    rows = [",".join(reference.features)] + [",".join(cells) for cells in reference.cells[:3]]
    (folder / "rows.csv").write_text("\n".join(rows) + "\n")
    jobs = set((repo / "jobs").iterdir())
    result = script(repo, str(folder), env=no_engine(tmp_path))
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("sagemake:")] == [
        f"sagemake: INPUT={folder}: rows.csv starts with a header line ({rows[0][:60]!r}), which SageMaker's batch "
        "transform would send as a record: remove that line (tail -n +2)"]
    assert set((repo / "jobs").iterdir()) == jobs  # nothing ran
    assert (folder / "rows.csv").read_text() == "\n".join(rows) + "\n"


def test_one_request_builder_for_both_places(tmp_path, monkeypatch):
    env = {**settings(), "ENV": "prod", "JOBS_DIR": str(tmp_path)}
    config = resolve(env="prod", environ=env)

    class Local(LocalTransforms):
        def __init__(self):
            self.config = config

    class Remote(SageMakerTransforms):
        def __init__(self):
            self.config = config

    requests = []
    for place in (Local(), Remote()):
        uris = place.input_uri(tmp_path, "p-batch-1"), place.output_uri("p-batch-1")
        requests.append(transform_request(config, "p-batch-1", "job-1", *uris))
    local, remote = requests
    assert remote["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == \
        "s3://train-bucket/sagemake-example/transform/p-batch-1/input/"
    assert remote["TransformOutput"]["S3OutputPath"] == "s3://train-bucket/sagemake-example/transform/p-batch-1/output"
    for request in requests:
        request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] = "?"
        request["TransformOutput"]["S3OutputPath"] = "?"
    assert local == remote
    assert batch_environment(local) == {
        "SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "6", "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "1"}


def test_payloads_fill_the_limit_with_whole_lines(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(b"aaaa\nbbbb\n\ncccc\ndddd")  # 5 bytes a line; a blank line; no newline at the end
    assert list(payloads(path, 10, single=False)) == [(1, 2, b"aaaa\nbbbb\n"), (4, 5, b"cccc\ndddd\n")]
    assert list(payloads(path, 14, single=False)) == [(1, 2, b"aaaa\nbbbb\n"), (4, 5, b"cccc\ndddd\n")]
    assert list(payloads(path, 15, single=False)) == [(1, 4, b"aaaa\nbbbb\ncccc\n"), (5, 5, b"dddd\n")]
    assert [p[:2] for p in payloads(path, 100, single=True)] == [(1, 1), (2, 2), (4, 4), (5, 5)]
    with pytest.raises(TransformFailed, match="rows.csv line 1 is 5 bytes, over MaxPayloadInMB"):
        list(payloads(path, 4, single=False))


# --- on SageMaker (the emulator) -------------------------------------------------------------------------------


def test_transform_on_sagemaker_makes_the_model_runs_the_job_and_downloads_the_outputs(aws, price_list, tmp_path,
                                                                                       monkeypatch, capsys):
    from sagemake.executors.sagemaker.executor import SageMakerExecutor

    make_bucket()
    s3, sagemaker = client("s3"), client("sagemaker")
    job = "sagemake-example-abc1234-261202-101500-123k3x9q"
    uri = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/train-image:t1"
    model_uri = f"s3://train-bucket/sagemake-example/output/{job}/output/model.tar.gz"
    s3.put_object(Bucket="train-bucket", Key=model_uri[len("s3://train-bucket/"):],
                  Body=model_archive({"model.joblib": b"m"}))
    sagemaker.create_training_job(
        TrainingJobName=job, RoleArn=ROLE, AlgorithmSpecification={"TrainingImage": uri, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://train-bucket/sagemake-example/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 60})
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("1,2\n3,4\n")
    (folder / "sub" / "b.csv").write_text("5,6\n")
    env = {**settings(), "ENV": "prod", "JOBS_DIR": str(tmp_path / "jobs"), "TRANSFORM_BATCH_STRATEGY": "SingleRecord"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = resolve(env="prod")
    # SageMaker writes <input key>.out; the emulator writes nothing, so the test puts them where the job names: one
    # line per input line, or (short) one line fewer for a.csv.
    created, short = [], []
    original = type(backend()).create_transform_job

    def writes_outputs(self, *args, **kwargs):
        answer = original(self, *args, **kwargs)
        (job_record,) = [j for j in self.transform_jobs.values() if j.transform_job_name not in created]
        created.append(job_record.transform_job_name)
        out = job_record.transform_output["S3OutputPath"][len("s3://train-bucket/"):]
        for key, lines in (("a.csv.out", 2 - len(short)), ("sub/b.csv.out", 1)):
            s3.put_object(Bucket="train-bucket", Key=f"{out}/{key}", Body=f"predictions of {key}\n".encode() * lines)
        return answer

    monkeypatch.setattr(type(backend()), "create_transform_job", writes_outputs)
    price_list.prices[("EU (Frankfurt)", "EUC1-Tsform:ml.m5.large")] = "0.6180000000"  # the stand-in's own figure
    record = transform(config, SageMakerExecutor(config), str(folder), job)
    name = record["TransformJobName"]
    assert record["TransformJobStatus"] == "Completed" and record["ModelName"] == job
    # What it cost, at batch transform's rate (not training's) in the job's region, for the time it ran.
    resources, seconds = record["TransformResources"], ran(record, "Transform")
    assert (resources["InstanceType"], resources["InstanceCount"]) == ("ml.m5.large", 1)
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "cost on SageMaker" in line]
    assert line == (
        f"==> transform {name}: cost on SageMaker: 1 x ml.m5.large for {seconds} s at $0.618/h of batch transform = "
        f"{money(0.618 * seconds / 3600)} (prices for eu-central-1: AWS Price List API, {date.today().isoformat()})")
    assert [r[1]["Filters"][1]["Value"] for r in price_list.requests] == ["EUC1-Tsform:ml.m5.large"]
    described = sagemaker.describe_transform_job(TransformJobName=name)
    assert described["BatchStrategy"] == "SingleRecord" and described["TransformInput"]["SplitType"] == "Line"
    model = sagemaker.describe_model(ModelName=job)
    assert {k: model["PrimaryContainer"].get(k) for k in ("Image", "ModelDataUrl")} == \
        {"Image": uri, "ModelDataUrl": model_uri}
    assert model["ExecutionRoleArn"] == ROLE
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]}
    assert tags["sagemake:project"] == "sagemake-example" and tags["sagemake:job"] == job
    uploaded = s3.list_objects_v2(Bucket="train-bucket", Prefix=f"sagemake-example/transform/{name}/input/")
    assert sorted(o["Key"].rsplit("/input/", 1)[1] for o in uploaded["Contents"]) == ["a.csv", "sub/b.csv"]
    out = tmp_path / "jobs" / name / "output"
    assert (out / "a.csv.out").read_text() == "predictions of a.csv.out\n" * 2
    assert (out / "sub" / "b.csv.out").read_text() == "predictions of sub/b.csv.out\n"
    # A second transform of the same job reuses the model sagemake made.
    transform(config, SageMakerExecutor(config), str(folder), job)
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [job]
    # Outputs fewer than the inputs' lines fail the transform, naming the file (SageMaker said Completed).
    short.append(True)
    with pytest.raises(TransformFailed, match=r"^a.csv: 2 record\(s\) in, 1 line\(s\) out: the model must answer"):
        transform(config, SageMakerExecutor(config), str(folder), job)
    # A model of that name that is not sagemake's is refused, not reused.
    sagemaker.delete_model(ModelName=job)
    sagemaker.create_model(ModelName=job, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": uri})
    from sagemake.cli import UserError

    with pytest.raises(UserError, match=f"a SageMaker model named {job} exists and is not sagemake's"):
        transform(config, SageMakerExecutor(config), str(folder), job)
