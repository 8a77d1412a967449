"""Preprocessing as a SageMaker processing job: the request, run locally as a process and in a real container
(mounts, config files, outputs), the cache of unchanged preprocessing, each bad input, and the guard.

The container cases are skipped without an engine unless REQUIRE_CONTAINER_TESTS=1 (see test_container.py).
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, copy_repo, in_process
from test_container import ENGINE, FLAGS, engine  # noqa: F401 (a fixture)

from sagemake import processing
from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.executors.local import LocalExecutor


def settings(tmp: Path, **extra) -> dict:
    return {"JOBS_DIR": str(tmp / "jobs"), "DATA_DIR": str(tmp / "data"), "RAW_DIR": str(tmp / "raw"),
            "STOP_GRACE_SECONDS": "3", **extra}


def local(tmp: Path, root: Path = ROOT, **extra):
    config = resolve(root=root, environ=settings(tmp, **extra))
    return config, LocalExecutor(config)


def as_process(monkeypatch):
    """This test run's Python as the job's (it has the image's requirements): no virtualenv to make."""
    monkeypatch.setattr(LocalExecutor, "runtime_for", lambda self, image: (in_process(self.config.root), "test"))


def rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        header, *lines = list(csv.reader(handle))
    return header, lines


def check_channels(data: Path, raw: Path) -> None:
    """The outputs' content: the raw rows with a value in every column, once each, split in two, no text column."""
    raw_header, raw_rows = rows(raw / "breast_cancer.csv")
    complete = {tuple(r[:-1]) for r in raw_rows if all(c not in ("", "NA") for c in r[:-1])}
    header, train = rows(data / "train/train.csv")
    assert rows(data / "validation/validation.csv")[0] == header == raw_header[:-1]  # 'note' dropped
    validation = rows(data / "validation/validation.csv")[1]
    got = [tuple(r) for r in train + validation]
    assert len(got) == len(set(got)) == len(complete)  # no duplicates, none missing, nothing invented
    assert {tuple(f"{float(c):.6g}" for c in r) for r in complete} == set(got)
    assert abs(len(validation) / len(got) - 0.2) < 0.01


def test_the_request_names_the_processing_layout_and_takes_every_uri_from_the_place(tmp_path):
    config, _ = local(tmp_path, SAGEMAKER_ROLE_ARN="", JOB_ENV="A=1")
    request = processing.processing_request(config, "p-1", "img:1", ["python3", "-m", "x"], ["--seed", "3"],
                                            {"raw": "s3://b/raw/"}, {"train": "s3://b/out/train"})
    assert request["AppSpecification"] == {"ImageUri": "img:1", "ContainerEntrypoint": ["python3", "-m", "x"],
                                           "ContainerArguments": ["--seed", "3"]}
    assert request["ProcessingInputs"][0]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/raw"
    assert request["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://b/raw/"
    assert request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"] == {
        "S3Uri": "s3://b/out/train", "LocalPath": "/opt/ml/processing/output/train", "S3UploadMode": "EndOfJob"}
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.large"
    assert request["Environment"] == {"A": "1"} and "RoleArn" not in request
    with pytest.raises(UserError, match="processing output train .* collides with input raw"):
        processing.processing_request(config, "p-1", "img:1", [], [], {"raw": "s3://b/d/"}, {"train": "s3://b/d/train"})


def test_preprocess_as_a_process_writes_clean_split_channels_and_is_not_run_again_unchanged(tmp_path, monkeypatch,
                                                                                           capfd):
    as_process(monkeypatch)
    config, executor = local(tmp_path)
    record = processing.preprocess(config, executor)
    assert record["ProcessingJobStatus"] == "Completed"
    assert {"ProcessingStartTime", "ProcessingEndTime", "ProcessingJobArn"} <= set(record)
    job = tmp_path / "jobs" / record["ProcessingJobName"]
    assert json.loads((job / "processing.json").read_text()) == record
    tree = job / "ml"
    assert json.loads((tree / "config/processingjobconfig.json").read_text())["ProcessingJobName"] == job.name
    assert json.loads((tree / "config/resourceconfig.json").read_text())["current_host"] == "algo-1"
    assert (tree / "processing/input/raw").resolve().parent.name == ".channels"  # the shared read-only copy
    check_channels(tmp_path / "data", tmp_path / "raw")
    assert "dropped 6 with a missing value, 9 duplicates, text column(s) note" in (job / "processing.log").read_text()

    capfd.readouterr()
    again = processing.preprocess(config, executor)
    assert "not run again" in capfd.readouterr().err and again["job"] == job.name
    assert len(list((tmp_path / "jobs").glob("*/processing.json"))) == 1

    with (tmp_path / "raw/breast_cancer.csv").open("a") as handle:  # a changed raw file runs it again
        handle.write(",".join(["1"] * 30) + ",1,late row\n")
    rerun = processing.preprocess(config, executor)
    assert rerun["ProcessingJobStatus"] == "Completed" and rerun["ProcessingJobName"] != job.name
    assert len(list((tmp_path / "jobs").glob("*/processing.json"))) == 2
    check_channels(tmp_path / "data", tmp_path / "raw")
    monkeypatch.setenv("PREPROCESS_ARGS", "--seed 7")  # other arguments: another key
    config = resolve(root=ROOT, environ={**settings(tmp_path), "PREPROCESS_ARGS": "--seed 7"})
    assert processing.preprocess(config, executor)["AppSpecification"]["ContainerArguments"] == ["--seed", "7"]


def test_a_failing_step_is_a_failed_record_with_its_reason(tmp_path, monkeypatch):
    as_process(monkeypatch)
    config, executor = local(tmp_path, PREPROCESS_ARGS="--label diagnosis")
    with pytest.raises(processing.ProcessingFailed, match="Failed: AlgorithmError: .*exited with code 1"):
        processing.preprocess(config, executor)
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "jobs").glob("*/processing.json")]
    assert record["ProcessingJobStatus"] == "Failed" and "no label column 'diagnosis'" in record["ExitMessage"]
    assert not (tmp_path / "data/train").exists()


def test_bad_input_is_one_line_before_anything_runs(tmp_path, monkeypatch):
    as_process(monkeypatch)
    config, executor = local(tmp_path, RAW_DIR=str(tmp_path / "data/train/raw"))
    with pytest.raises(UserError, match=r"processing output train \(.*/data/train\) collides with its input RAW_DIR"):
        processing.preprocess(config, executor)
    config, executor = local(tmp_path, TRAINING_IMAGE="byo-plain:1")
    with pytest.raises(UserError, match="TRAINING_IMAGE=byo-plain:1 cannot run the preprocessing step"):
        processing.preprocess(config, executor)
    (tmp_path / "data/validation").mkdir(parents=True)
    (tmp_path / "data/validation/mine.csv").write_text("a,b\n")
    config, executor = local(tmp_path)
    with pytest.raises(UserError, match="validation/ hold files that preprocessing did not write"):
        processing.preprocess(config, executor)
    assert (tmp_path / "data/validation/mine.csv").read_text() == "a,b\n"
    assert not (tmp_path / "jobs").exists()


def test_max_runtime_stops_a_process_job(tmp_path, monkeypatch):
    as_process(monkeypatch)
    config, executor = local(tmp_path, MAX_RUNTIME_SECONDS="1")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/a.csv").write_text("x\n1\n")
    place = processing.LocalProcessing(executor)
    request = processing.processing_request(
        config, "p-slow", "img:1", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
        [], {"raw": (tmp_path / "raw").as_uri()}, {"out": place.output_uri("p-slow", "out")})
    record = place.run(request)
    assert record["ProcessingJobStatus"] == "Stopped"
    assert record["ExitMessage"] == "MaxRuntimeInSeconds=1 reached"


# --- in a real container -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(engine, tmp_path_factory):  # noqa: F811
    """A copy of the repository with its image built in the engine."""
    repo = copy_repo(tmp_path_factory.mktemp("processing") / "my project")
    env = {**os.environ, "LOCAL_RUNTIME": "container", "CONTAINER_BUILD_FLAGS": FLAGS, "CONTAINER_RUN_FLAGS": FLAGS,
           "VENV": str(ROOT / ".venv")}  # this checkout's virtualenv: none is made for the copy
    built = subprocess.run(["make", "-s", "build"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    return repo, env


def containers(name):
    listed = subprocess.run([ENGINE, "ps", "--all", "--quiet", "--filter", f"name=^{name}$"], capture_output=True,
                            text=True, check=True)
    return listed.stdout.split()


def test_make_preprocess_in_a_container_has_sagemakers_processing_mounts(project):
    repo, env = project
    done = subprocess.run([sys.executable, str(repo / "scripts/preprocess.py")], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "runtime container (docker" in done.stderr
    (folder,) = (repo / "jobs").glob("*/processing.json")
    record = json.loads(folder.read_text())
    assert record["ProcessingJobStatus"] == "Completed" and record["LocalRuntime"] == "container"
    check_channels(repo / "data", repo / "raw")
    config = json.loads((folder.parent / "ml/config/processingjobconfig.json").read_text())
    assert config["ProcessingInputs"][0]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/raw"


def test_the_container_sees_exactly_the_mounts_and_dies_with_its_executor(project, tmp_path):
    """A processing container that lists what it sees, then waits; kill -9 of the executor removes it."""
    repo, env = project
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/a.csv").write_text("x\n1\n")
    look = ("import json, os, pathlib, time; p = pathlib.Path('/opt/ml');"
            "print('SEEN', json.dumps(sorted(str(f) for f in p.rglob('*'))), flush=True);"
            "pathlib.Path('/opt/ml/processing/output/out/ok.txt').write_text('written');"
            "print('WRITABLE', os.access('/opt/ml/processing/input/raw', os.W_OK), flush=True); time.sleep(600)")
    driver = f"""
import sys
sys.path.insert(0, {str(repo / 'src')!r})
from sagemake.config import resolve
from sagemake.executors.local import LocalExecutor
from sagemake import processing
from pathlib import Path
config = resolve(root=Path({str(repo)!r}), environ={{**{settings(tmp_path)!r}, "CONTAINER_RUN_FLAGS": {FLAGS!r},
                                              "LOCAL_RUNTIME": "container"}})
executor = LocalExecutor(config)
place = processing.LocalProcessing(executor)
request = processing.processing_request(config, "p-look", executor.image(), ["python3", "-c", {look!r}], [],
    {{"raw": {(tmp_path / 'raw').as_uri()!r}}}, {{"out": place.output_uri("p-look", "out")}})
place.run(request)
"""
    executor = subprocess.Popen([sys.executable, "-c", driver], cwd=repo, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        seen = writable = None
        said = []
        for line in executor.stdout:
            said.append(line)
            if line.startswith("SEEN "):
                seen = json.loads(line[5:])
            if line.startswith("WRITABLE "):
                writable = line.split()[1]
                break
        assert containers("p-look"), "".join(said)
        inspected = json.loads(subprocess.run([ENGINE, "inspect", "p-look"], capture_output=True, text=True,
                                              check=True).stdout)[0]
    finally:
        executor.send_signal(signal.SIGKILL)
        executor.communicate()
    mounts = {m["Destination"]: m["RW"] for m in inspected["Mounts"]}
    assert mounts == {"/opt/ml/config": True, "/opt/ml/processing/input/raw": False,
                      "/opt/ml/processing/output/out": True}
    assert inspected["Config"]["Entrypoint"] == ["python3"] and inspected["Config"]["Cmd"][0] == "-c"
    assert {"/opt/ml/config/processingjobconfig.json", "/opt/ml/config/resourceconfig.json",
            "/opt/ml/processing/input/raw/a.csv"} <= set(seen)
    assert writable == "False"
    assert (tmp_path / "jobs/p-look/output/out/ok.txt").read_text() == "written"
    deadline = time.monotonic() + 3 + 10  # the grace, then the guard's rm --force
    while containers("p-look") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers("p-look") == []
