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
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import ROOT, copy_repo, in_process, sagemake
from emulator import ProcessingDriver, backend, client, make_bucket, register_image, repository_image
from emulator import settings as aws_settings
from test_container import ENGINE, FLAGS, built_project, containers, engine  # noqa: F401 (fixtures)

import trainer.raw
from sagemake import pricing
from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.data import channels
from sagemake.executors import for_config
from sagemake.executors.local.executor import LocalExecutor
from sagemake.executors.local.processing import LocalProcessing
from sagemake.jobs.processing import CHANNELS, NAME_PART, ProcessingFailed, duration, processing_request
from sagemake.jobs.training import job_name, plan
from sagemake.price_list import commercial_regions, table_from
from sagemake.pricing import PROCESSING, TRAINING, money
from sagemake.targets.jobs import list_jobs
from sagemake.targets.preprocess import preprocess


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
    request = processing_request(config, "p-1", "img:1", ["python3", "-m", "x"], ["--seed", "3"],
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
        processing_request(config, "p-1", "img:1", [], [], {"raw": "s3://b/d/"}, {"train": "s3://b/d/train"})


def test_preprocess_as_a_process_writes_clean_split_channels_and_is_not_run_again_unchanged(tmp_path, monkeypatch,
                                                                                           capfd):
    as_process(monkeypatch)
    config, executor = local(tmp_path)
    record = preprocess(config, executor)
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
    series = json.loads((job / "metrics.json").read_text())  # its name=value lines, each with its step and time
    assert [(p["Step"], p["Value"]) for p in series["preprocess:dropped_duplicates"]] == [(0, 9)]
    (train_rows,) = series["preprocess:train_rows"]
    assert record["ProcessingStartTime"] <= train_rows["Timestamp"] <= record["ProcessingEndTime"]

    capfd.readouterr()
    again = preprocess(config, executor)
    assert "not run again" in capfd.readouterr().err and again["job"] == job.name
    assert len(list((tmp_path / "jobs").glob("*/processing.json"))) == 1

    with (tmp_path / "raw/breast_cancer.csv").open("a") as handle:  # a changed raw file runs it again
        handle.write(",".join(["1"] * 30) + ",1,late row\n")
    rerun = preprocess(config, executor)
    assert rerun["ProcessingJobStatus"] == "Completed" and rerun["ProcessingJobName"] != job.name
    assert len(list((tmp_path / "jobs").glob("*/processing.json"))) == 2
    check_channels(tmp_path / "data", tmp_path / "raw")
    monkeypatch.setenv("PREPROCESS_ARGS", "--seed 7")  # other arguments: another key
    config = resolve(root=ROOT, environ={**settings(tmp_path), "PREPROCESS_ARGS": "--seed 7"})
    assert preprocess(config, executor)["AppSpecification"]["ContainerArguments"] == ["--seed", "7"]


def test_an_install_cut_off_midway_is_completed_by_the_next_run_and_one_cut_off_before_leaves_data_as_it_was(
        tmp_path, monkeypatch, capfd):
    """Installs are whole or absent: outputs staged first, then a pending stamp, then the swap. Cut off while
    staging (Ctrl-C during a download), DATA_DIR is untouched; cut off midway through the swap, the next run
    completes it (no job run again) and trains never see new train/ beside old validation/."""
    from sagemake.targets import preprocess as target

    as_process(monkeypatch)
    config, executor = local(tmp_path)
    first = preprocess(config, executor)
    data = tmp_path / "data"
    before = {c: (data / c / f"{c}.csv").read_bytes() for c in ("train", "validation")}
    with (tmp_path / "raw/breast_cancer.csv").open("a") as handle:  # a new run, other outputs
        handle.write(",".join(["1"] * 30) + ",1,late row\n")

    download = LocalProcessing.download
    def cut_off_in_download(self, request, output, target_folder):  # noqa: E306
        if output == "validation":
            raise KeyboardInterrupt
        download(self, request, output, target_folder)

    monkeypatch.setattr(LocalProcessing, "download", cut_off_in_download)
    with pytest.raises(KeyboardInterrupt):
        preprocess(config, executor)
    assert {c: (data / c / f"{c}.csv").read_bytes() for c in before} == before  # as it was
    assert not (data / target.STAGING).exists()  # no partial outputs left behind
    assert json.loads((data / ".preprocessed.json").read_text())["job"] == first["ProcessingJobName"]
    assert not (data / target.STAGING).exists()  # nothing staged left behind
    monkeypatch.setattr(LocalProcessing, "download", download)

    renamed = []
    rename = Path.rename
    def cut_off_in_swap(self, target_path):  # noqa: E306
        if self.parent.name == target.STAGING:  # the swap's renames: the second one is cut off
            if renamed:
                raise KeyboardInterrupt
            renamed.append(self.name)
        return rename(self, target_path)

    monkeypatch.setattr(Path, "rename", cut_off_in_swap)
    with pytest.raises(KeyboardInterrupt):
        preprocess(config, executor)
    monkeypatch.setattr(Path, "rename", rename)
    pending = json.loads((data / target.PENDING).read_text())
    assert renamed == ["train"] and (data / target.STAGING / "validation").is_dir()  # half swapped, as a crash would
    assert (data / target.STAGING / ".old-validation").is_dir() and not (data / "validation").exists()  # moved aside
    with pytest.raises(UserError, match=r"an install of `make preprocess`'s outputs into .*/data/ was cut off: run "
                                        r"`make preprocess` to complete it \(no job runs again\)"):
        channels(config)  # nothing trains on the two runs' mix meanwhile
    jobs = len(list((tmp_path / "jobs").glob("*/processing.json")))
    capfd.readouterr()
    done = preprocess(config, executor)
    err = capfd.readouterr().err
    assert f"completed the install of job {pending['job']}'s outputs, which was cut off" in err
    assert "not run again" in err
    assert done["job"] == pending["job"] and len(list((tmp_path / "jobs").glob("*/processing.json"))) == jobs
    assert not (data / target.PENDING).exists() and not (data / target.STAGING).exists()
    check_channels(data, tmp_path / "raw")  # both channels of the same run


def test_the_swap_holds_ctrl_c_only_for_its_renames_never_while_an_old_channel_is_removed(tmp_path, monkeypatch):
    """A large old channel takes a while to remove: that happens after the swap, Ctrl-C working, not within it."""
    from sagemake.executors.local import channels as local
    from sagemake.targets import preprocess as target

    data = tmp_path / "data"
    for channel in CHANNELS:
        for folder, text in ((data / channel, "old\n"), (data / target.STAGING / channel, "new\n")):
            folder.mkdir(parents=True)
            (folder / f"{channel}.csv").write_text(text)
    (data / target.PENDING).write_text(json.dumps({"job": "j", "channels": {c: "digest" for c in CHANNELS}}))
    interrupt, removed = signal.getsignal(signal.SIGINT), []
    remove = local.remove
    def watched(folder):  # noqa: E306
        removed.append((folder.name, signal.getsignal(signal.SIGINT) is interrupt))
        remove(folder)

    monkeypatch.setattr(local, "remove", watched)
    assert target.complete_install(data)["job"] == "j"
    assert removed == [(target.STAGING, True)]  # the old channels with the staging, once the swap is done
    assert {c: (data / c / f"{c}.csv").read_text() for c in CHANNELS} == {c: "new\n" for c in CHANNELS}
    assert sorted(p.name for p in data.iterdir()) == sorted([*CHANNELS, target.STAMP])


def test_a_failing_step_is_a_failed_record_with_its_reason(tmp_path, monkeypatch):
    as_process(monkeypatch)
    config, executor = local(tmp_path, PREPROCESS_ARGS="--label diagnosis")
    with pytest.raises(ProcessingFailed, match="Failed: AlgorithmError: .*exited with code 1"):
        preprocess(config, executor)
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "jobs").glob("*/processing.json")]
    assert record["ProcessingJobStatus"] == "Failed" and "no label column 'diagnosis'" in record["ExitMessage"]
    assert not (tmp_path / "data/train").exists()


def test_a_step_that_writes_nothing_to_an_output_is_refused_and_installs_nothing(tmp_path):
    """A step that completes but leaves an output empty (here: validation) would install a channel of nothing:
    `make preprocess` refuses in one line naming the output, and DATA_DIR is left as it was, the other output too."""
    repo = copy_repo(tmp_path / "my project")
    step = repo / "src/trainer/preprocess.py"
    written = '        write(base / "output" / channel / f"{channel}.csv", features, args.label, x, y)\n'
    assert written in step.read_text()
    step.write_text(step.read_text().replace(written, '        if channel == "train":\n    ' + written))
    trainer.raw.main(tmp_path / "raw")
    env = {**os.environ, **settings(tmp_path), "LOCAL_RUNTIME": "process"}
    done = subprocess.run([*sagemake(repo), "preprocess"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stderr
    (name,) = [p.name for p in (tmp_path / "jobs").iterdir() if p.name.startswith("sagemake-example-proc-")]
    assert done.stderr.splitlines()[-1] == (
        f"sagemake: processing {name} wrote nothing to its output validation: src/trainer/preprocess.py must write "
        "/opt/ml/processing/output/validation/")
    data = tmp_path / "data"
    assert not data.exists() or list(data.iterdir()) == []  # no train/ either, no stamp, no staging left


def test_bad_input_is_one_line_before_anything_runs(tmp_path, monkeypatch):
    as_process(monkeypatch)
    config, executor = local(tmp_path, RAW_DIR=str(tmp_path / "data/train/raw"))
    with pytest.raises(UserError, match=r"processing output train \(.*/data/train\) collides with its input RAW_DIR"):
        preprocess(config, executor)
    config, executor = local(tmp_path, TRAINING_IMAGE="byo-plain:1")
    with pytest.raises(UserError, match="TRAINING_IMAGE=byo-plain:1 cannot run the preprocessing step"):
        preprocess(config, executor)
    (tmp_path / "data/validation").mkdir(parents=True)
    (tmp_path / "data/validation/mine.csv").write_text("a,b\n")
    config, executor = local(tmp_path)
    with pytest.raises(UserError, match="validation/ hold files that preprocessing did not write"):
        preprocess(config, executor)
    assert (tmp_path / "data/validation/mine.csv").read_text() == "a,b\n"
    assert not (tmp_path / "jobs").exists()


def test_max_runtime_stops_a_process_job(tmp_path, monkeypatch):
    as_process(monkeypatch)
    config, executor = local(tmp_path, MAX_RUNTIME_SECONDS="1")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/a.csv").write_text("x\n1\n")
    place = LocalProcessing(executor)
    request = processing_request(
        config, "p-slow", "img:1", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
        [], {"raw": (tmp_path / "raw").as_uri()}, {"out": place.output_uri("p-slow", "out")})
    record = place.run(request)
    assert record["ProcessingJobStatus"] == "Stopped"
    assert record["ExitMessage"] == "MaxRuntimeInSeconds=1 reached"


# --- processing jobs in `make jobs` and `make clean-jobs`, and a dead executor's record settled ---------------------

HOLD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from sagemake.executors.local.processing import LocalProcessing
from sagemake.jobs.processing import NAME_PART, ProcessingFailed, duration, processing_request
from sagemake.targets.preprocess import preprocess
from sagemake.config import resolve
from sagemake.data import channels
from sagemake.executors.local.executor import LocalExecutor
from sagemake.executors.local.runtimes import ProcessRuntime
root, environ, request = Path(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
place = LocalProcessing(LocalExecutor(resolve(root=root, environ=environ)))
place.run(request, ProcessRuntime(root, Path(sys.executable)))
"""


def step_request(config, executor, code: str, name: str | None = None) -> dict:
    """A processing job of this project's name (unless given) whose step is a Python one-liner, on a small RAW_DIR."""
    raw = config.path("RAW_DIR")
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "a.csv").write_text("x\n1\n")
    name = name or job_name(config["PROJECT_NAME"], NAME_PART)
    place = LocalProcessing(executor)
    return processing_request(config, name, "img:1", [sys.executable, "-c", code], [],
                                         {"raw": raw.as_uri()}, {"out": place.output_uri(name, "out")})


def holding(tmp_path, config, executor):
    """A processing job that runs on (its step sleeps) in an executor of its own, once its record says so:
    (the executor's process, the job's name)."""
    request = step_request(config, executor, "import time; print('holding', flush=True); time.sleep(600)")
    name = request["ProcessingJobName"]
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(ROOT / "src"), str(config.root),
                                json.dumps(settings(tmp_path)), json.dumps(request)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    record, deadline = None, time.monotonic() + 60
    while not (record and "ProcessingStartTime" in record) and time.monotonic() < deadline:
        time.sleep(0.1)
        record = LocalProcessing(executor).describe(name)
    assert record and record["LocalExecutor"]["Pid"] == process.pid, record
    return process, name


def table(out: str) -> list[list[str]]:
    """The processing jobs' table of `make jobs`: its rows split into cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("PROCESSING JOB"))
    return [line.split() for line in lines[start:]]


def test_make_jobs_lists_this_projects_processing_jobs_after_the_ledger_with_their_cost(tmp_path, monkeypatch,
                                                                                       capfd, example_data):
    as_process(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the table's prices, whatever is cached
    # a table whose us-east-1 processing rate for ml.m5.large is not training's
    offered = table_from([ROOT / "tests/fixtures/prices/offer.json"], ["ml.m5.large"], commercial_regions())
    monkeypatch.setattr(pricing, "TABLE", offered)
    rate = offered.hourly("us-east-1", PROCESSING, "ml.m5.large")
    assert rate > 10 * offered.hourly("us-east-1", TRAINING, "ml.m5.large")
    config, executor = local(tmp_path)
    capfd.readouterr()
    list_jobs(config, executor, 10)
    assert "no jobs of sagemake-example yet" in capfd.readouterr().err

    preprocessed = preprocess(config, executor)  # on ml.m5.large
    unpriced, _ = local(tmp_path, PROCESSING_INSTANCE_TYPE="ml.p4d.24xlarge")  # not in the table
    place = LocalProcessing(executor)
    failed = place.run(step_request(unpriced, executor, "import time; time.sleep(1.2); raise SystemExit(3)"))
    place.run(step_request(config, executor, "print('done')", name="other-proc-261122-000000-000abcde"))
    capfd.readouterr()
    list_jobs(config, executor, 10)
    out, err = capfd.readouterr()
    assert "no training jobs of sagemake-example yet" in err
    seconds = duration(preprocessed)
    assert table(out) == [
        ["PROCESSING", "JOB", "STATUS", "DURATION", "COST"],
        [failed["ProcessingJobName"], "Failed", f"{duration(failed)}s", "unknown"],  # never $0
        [preprocessed["ProcessingJobName"], "Completed", f"{seconds}s", money(rate * seconds / 3600)]]
    assert duration(failed) >= 1 and seconds >= 1
    assert err.splitlines()[-1].startswith("==> jobs: what they would have cost on SageMaker")

    trained = LocalExecutor(resolve(root=ROOT, environ={**settings(tmp_path), "DATA_DIR": str(example_data),
                                                        "HP": "n_estimators=5"}))
    request = plan(trained.config, trained)
    trained.run(request, in_process())
    capfd.readouterr()
    list_jobs(config, executor, 1)  # the same limit for both tables
    lines = capfd.readouterr().out.splitlines()
    assert lines[0].startswith("JOB ") and lines[1].split()[0] == request["TrainingJobName"]
    assert lines[2].startswith("TOTAL") and lines[3] == ""
    assert table("\n".join(lines))[1:] == [[failed["ProcessingJobName"], "Failed",
                                            f"{duration(failed)}s", "unknown"]]


def test_a_killed_make_preprocess_is_settled_failed_naming_its_executor(tmp_path):
    """kill -9 of `python -m sagemake preprocess` while its step runs (a checkout whose step is slow): `make jobs`
    shows the job Failed, naming the executor's pid, and the record says so from then on."""
    repo = copy_repo(tmp_path / "my project")
    step = repo / "src/trainer/preprocess.py"
    step.write_text(step.read_text().replace(
        "from __future__ import annotations\n",
        "from __future__ import annotations\nimport time\nprint('slow step', flush=True)\ntime.sleep(600)\n", 1))
    trainer.raw.main(tmp_path / "raw")
    env = {**os.environ, **settings(tmp_path), "LOCAL_RUNTIME": "process"}
    executor = subprocess.Popen([*sagemake(repo), "preprocess"], cwd=repo, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        said = []
        for line in executor.stderr:
            said.append(line)
            if ": InProgress" in line:
                break
        assert said and ": InProgress" in said[-1], "".join(said)
        (name,) = [p.name for p in (tmp_path / "jobs").iterdir() if p.name.startswith("sagemake-example-proc-")]
        path = tmp_path / "jobs" / name / "processing.json"
        assert json.loads(path.read_text())["ProcessingJobStatus"] == "InProgress"
    finally:
        executor.send_signal(signal.SIGKILL)
        executor.communicate()
    listed = subprocess.run([*sagemake(repo), "jobs"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert table(listed.stdout)[1][:2] == [name, "Failed"]
    record = json.loads(path.read_text())
    assert record["ProcessingJobStatus"] == "Failed" and "ProcessingEndTime" in record
    assert record["FailureReason"] == (f"ClientError: the executor (pid {executor.pid}) ended without ending the job, "
                                       "which was stopped with it: see processing.log")
    config, local_executor = local(tmp_path, root=repo)
    assert LocalProcessing(local_executor).describe(name) == record  # settled once, read as it is


def test_clean_jobs_keeps_the_newest_processing_jobs_and_a_running_one_and_the_copy_it_reads(tmp_path, monkeypatch,
                                                                                            capfd):
    as_process(monkeypatch)
    config, executor = local(tmp_path)
    place = LocalProcessing(executor)
    old = place.run(step_request(config, executor, "print('old')"))["ProcessingJobName"]
    process, running = holding(tmp_path, config, executor)
    try:
        newest = place.run(step_request(config, executor, "print('newest')"))["ProcessingJobName"]
        (copy,) = place.describe(running)["LocalChannels"].values()
        capfd.readouterr()
        executor.prune(1)
        assert place.names(None) == [newest, running] and not (tmp_path / "jobs" / old).exists()
        assert (tmp_path / "jobs/.channels" / copy).is_dir()  # the running job reads it
        assert ("clean-jobs: removed 0 job folder(s), 1 processing job folder(s) and the data copies only they read"
                in capfd.readouterr().err)
    finally:
        process.send_signal(signal.SIGKILL)  # its executor dies: the job is settled on the next read
        process.wait()
    executor.prune(1)
    assert place.names(None) == [newest] and not (tmp_path / "jobs" / running).exists()
    assert not (tmp_path / "jobs/.channels" / copy).exists()
    err = capfd.readouterr().err
    assert "removed 0 job folder(s), 1 processing job folder(s)" in err
    assert "kept the 0 newest or running job(s) and 1 processing job(s)" in err


def test_make_jobs_env_prod_lists_this_projects_processing_jobs_on_sagemaker(aws, price_list, tmp_path):
    """One processing job run by `make preprocess ENV=prod` (moto keeps no ProcessingResources: its cost is unknown),
    one newer with its instances as SageMaker describes them, and other projects' jobs, which are not listed."""
    make_bucket()
    environ = {**os.environ, "ENV": "prod", "RAW_DIR": str(tmp_path / "raw"), "DATA_DIR": str(tmp_path / "data"),
               **aws_settings()}
    register_image(repository_image(environ))
    trainer.raw.main(tmp_path / "raw")
    with ProcessingDriver(tmp_path / "sagemaker"):
        done = subprocess.run(["make", "-s", "preprocess"], cwd=ROOT, env=environ, capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr
    sagemaker = client("sagemaker")
    (first,) = [s["ProcessingJobName"] for s in sagemaker.list_processing_jobs()["ProcessingJobSummaries"]]
    config = resolve(root=ROOT, environ=environ)
    request = sagemaker.describe_processing_job(ProcessingJobName=first)
    created = {}
    for name in (job_name("sagemake-example", "proc"), "other-proc-261122-000000-000abcde",
                 "sagemake-example-v2-proc-261122-000000-000abcde",  # NameContains finds neither, nor...
                 "my-sagemake-example-proc-261122-000000-000abcde"):  # ...this one's: it ends with PROJECT_NAME
        created[name] = {"ProcessingJobName": name, "RoleArn": request["RoleArn"],
                         "AppSpecification": request["AppSpecification"],
                         "ProcessingInputs": request["ProcessingInputs"],
                         "ProcessingOutputConfig": request["ProcessingOutputConfig"],
                         "ProcessingResources": {"ClusterConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.xlarge",
                                                                   "VolumeSizeInGB": 30}},
                         "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
        sagemaker.create_processing_job(**created[name])
        job = backend().processing_jobs[name]  # as SageMaker describes a job that ran 30 minutes on 2 instances
        job.processing_resources = created[name]["ProcessingResources"]
        job.processing_start_time = job.creation_time
        job.processing_end_time = job.creation_time + timedelta(seconds=1800)
    second = next(iter(created))
    price_list.prices[("EU (Frankfurt)", "EUC1-Processing:ml.m5.xlarge")] = "0.3330000000"  # the stand-in's own
    listed = subprocess.run(["make", "-s", "jobs"], cwd=ROOT, env=environ, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    seconds = duration(for_config(config).processing().describe(first))
    # ml.m5.xlarge at processing's $0.333/h in the region (not training's $0.274) x 2 instances x 1800 s -> $0.33
    assert table(listed.stdout) == [["PROCESSING", "JOB", "STATUS", "DURATION", "COST"],
                                    [second, "Completed", "1800s", "$0.33"],
                                    [first, "Completed", f"{seconds}s", "unknown"]]
    assert [r[1]["Filters"][1]["Value"] for r in price_list.requests] == ["EUC1-Processing:ml.m5.xlarge"]
    assert "no training jobs of sagemake-example yet (on SageMaker in" in listed.stderr


# --- in a real container -----------------------------------------------------------------------------------------


def test_make_preprocess_in_a_container_has_sagemakers_processing_mounts(built_project):  # noqa: F811
    repo, env = built_project
    done = subprocess.run([*sagemake(repo), "preprocess"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "runtime container (docker" in done.stderr
    (folder,) = (repo / "jobs").glob("*/processing.json")
    record = json.loads(folder.read_text())
    assert record["ProcessingJobStatus"] == "Completed" and record["LocalRuntime"] == "container"
    check_channels(repo / "data", repo / "raw")
    config = json.loads((folder.parent / "ml/config/processingjobconfig.json").read_text())
    assert config["ProcessingInputs"][0]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/raw"


def test_the_container_sees_exactly_the_mounts_and_dies_with_its_executor(built_project, tmp_path):  # noqa: F811
    """A processing container that lists what it sees, then waits; kill -9 of the executor removes it."""
    repo, env = built_project
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
from sagemake.data import channels
from sagemake.executors.local.executor import LocalExecutor
from sagemake.executors.local.processing import LocalProcessing
from sagemake.jobs.processing import NAME_PART, ProcessingFailed, duration, processing_request
from sagemake.targets.preprocess import preprocess
from pathlib import Path
config = resolve(root=Path({str(repo)!r}), environ={{**{settings(tmp_path)!r}, "CONTAINER_RUN_FLAGS": {FLAGS!r},
                                              "LOCAL_RUNTIME": "container"}})
executor = LocalExecutor(config)
place = LocalProcessing(executor)
request = processing_request(config, "p-look", executor.image(), ["python3", "-c", {look!r}], [],
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
