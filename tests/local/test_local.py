"""The local executor, run for real: a training program under the /opt/ml contract.

The program here stands in for a user's `train` so that each behaviour of the
executor (stop, kill, failure, crash) can be produced on demand; the example
model itself runs through the executor in test_fetch.py and the bats suites.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, sagemake

from sagemake.archive import pack, tree, unpack
from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.executors.local.executor import LocalExecutor
from sagemake.executors.local.runtimes import ContainerRuntime, ProcessRuntime, cpu_shares, toolkit_environment

PROGRAM = """
import json, os, signal, sys, time
from pathlib import Path
base = Path(os.environ["SAGEMAKER_BASE_DIR"])
mode = json.loads((base / "input/config/hyperparameters.json").read_text()).get("mode", "ok")
if mode == "silent":
    sys.exit(3)
(base / "model/env.json").write_text(json.dumps(dict(os.environ)))
(base / "model/seen.txt").write_text((base / "input/data/train/rows.csv").read_text())
if mode == "cpus":
    print(json.dumps({"host": json.loads((base / "input/config/resourceconfig.json").read_text())["current_host"],
                      "affinity": sorted(os.sched_getaffinity(0)), "count": os.cpu_count()}), flush=True)
if mode == "write-input":
    try:
        with (base / "input/data/train/rows.csv").open("a") as rows:
            rows.write("9,9\\n")
    except PermissionError:  # read-only, unless the job runs as root
        pass
(base / "output/data/extra.txt").write_text("kept")
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("loss=0.5", flush=True)
print("loss=0.25", flush=True)
if mode in ("sleep", "ignore-term"):
    print("sleeping", flush=True)
    for _ in range(6000):  # ten minutes: every test stops it well before
        time.sleep(0.1)
if mode == "fail":
    (base / "output/failure").write_text("bad data in row 7\\n")
    sys.exit(255)
if mode == "crash":
    sys.exit(3)
"""


class Jobs:
    """A local executor whose process runtime runs PROGRAM in place of docker/train."""

    def __init__(self, root):
        self.executor = LocalExecutor(resolve(root=root, environ={"JOBS_DIR": "my jobs"}))
        self.jobs_dir = self.executor.jobs_dir

    def run(self, request, runtime, grace_seconds):
        self.executor.config.values["STOP_GRACE_SECONDS"] = str(grace_seconds)
        return self.executor.run(request, runtime)

    def __getattr__(self, name):
        return getattr(self.executor, name)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker/train").write_text(PROGRAM)
    data = tmp_path / "my data" / "train"
    data.mkdir(parents=True)
    (data / "rows.csv").write_text("x,y\n1,0\n")
    jobs = Jobs(tmp_path)
    runtime = ProcessRuntime(tmp_path, Path(sys.executable))

    def request(name="job-1", mode="ok", max_runtime=60):
        return {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": "img:tag",
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=([0-9.]+)"}],
            },
            "HyperParameters": {"mode": mode, "depth": "3"},
            "InputDataConfig": [{
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data.as_uri()}},
                "InputMode": "File",
            }],
            "OutputDataConfig": {"S3OutputPath": jobs.jobs_dir.as_uri()},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
            "Environment": {"MODE": "test"},
        }

    return jobs, runtime, request


def members(archive):
    with tarfile.open(archive) as tar:
        return sorted(tar.getnames())


def test_each_host_of_several_runs_on_its_own_share_of_the_cores(setup, capfd):
    jobs, runtime, request = setup
    two = request(mode="cpus")
    two["ResourceConfig"]["InstanceCount"] = 2
    assert jobs.run(two, runtime, grace_seconds=5)["TrainingJobStatus"] == "Completed"
    seen = {}
    for line in capfd.readouterr().out.splitlines():
        host, _, text = line.partition("] ")
        if text.startswith("{"):
            seen[host.lstrip("[")] = json.loads(text)
    shares = cpu_shares(["algo-1", "algo-2"])
    assert {host: s["affinity"] for host, s in seen.items()} == shares
    assert {host: s["count"] for host, s in seen.items()} == {host: len(cores) for host, cores in shares.items()}
    one = request(name="job-2", mode="cpus")
    jobs.run(one, runtime, grace_seconds=5)
    alone = json.loads(next(line for line in capfd.readouterr().out.splitlines() if line.startswith("{")))
    assert alone["affinity"] == sorted(os.sched_getaffinity(0))  # one host has the whole machine


def test_hosts_share_the_cores_in_blocks_or_take_turns_when_more_than_cores():
    hosts = [f"algo-{n}" for n in range(1, 5)]
    assert cpu_shares(hosts[:1], [0, 1]) == {"algo-1": [0, 1]}
    assert cpu_shares(hosts[:2], [0, 1]) == {"algo-1": [0], "algo-2": [1]}
    assert cpu_shares(hosts, [0, 1]) == {"algo-1": [0], "algo-2": [1], "algo-3": [0], "algo-4": [1]}
    assert cpu_shares(hosts[:3], list(range(8))) == {"algo-1": [0, 1, 2], "algo-2": [3, 4, 5], "algo-3": [6, 7]}
    assert cpu_shares(hosts[:2], [2, 5, 7]) == {"algo-1": [2, 5], "algo-2": [7]}


def test_completed_job_answers_like_describe_training_job(setup, capfd):
    jobs, runtime, request = setup
    record = jobs.run(request(), runtime, grace_seconds=5)
    assert record == jobs.describe("job-1")
    assert record["TrainingJobStatus"] == "Completed" and record["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in record["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all("EndTime" in t for t in record["SecondaryStatusTransitions"][:-1])
    assert record["FinalMetricDataList"][0]["MetricName"] == "loss"
    assert record["FinalMetricDataList"][0]["Value"] == 0.25  # the last match, as SageMaker reports
    assert isinstance(record["TrainingTimeInSeconds"], int)
    folder = jobs.folder("job-1")
    model = folder / "output/model.tar.gz"
    assert record["ModelArtifacts"] == {"S3ModelArtifacts": model.as_uri()}
    assert members(model) == ["env.json", "seen.txt"]
    assert members(folder / "output/output.tar.gz") == ["extra.txt"]
    assert json.loads((folder / "request.json").read_text())["TrainingJobName"] == "job-1"
    assert "loss=0.25" in (folder / "train.log").read_text()
    assert "loss=0.25" in capfd.readouterr().out  # streamed to the terminal as well


def test_every_metric_value_is_kept_with_its_step_and_when_it_was_printed(setup):
    jobs, runtime, request = setup
    record = jobs.run(request(), runtime, grace_seconds=5)
    series = jobs.metric_series("job-1")
    assert [(p["Step"], p["Value"]) for p in series["loss"]] == [(0, 0.5), (1, 0.25)]
    first, last = (p["Timestamp"] for p in series["loss"])
    assert record["CreationTime"] <= first <= last <= record["TrainingEndTime"]
    assert record["FinalMetricDataList"] == [{"MetricName": "loss", "Value": 0.25, "Timestamp": last}]
    (jobs.folder("job-1") / "metrics.json").unlink()  # a job from before metrics.json: its log, without times
    assert jobs.metric_series("job-1") == {"loss": [{"Step": 0, "Value": 0.5}, {"Step": 1, "Value": 0.25}]}


def test_the_contract_environment_and_tree(setup):
    jobs, runtime, request = setup
    jobs.run(request(), runtime, grace_seconds=5)
    tree = jobs.folder("job-1") / "ml"
    env = json.loads((tree / "model/env.json").read_text())
    assert env["TRAINING_JOB_NAME"] == "job-1"
    assert env["TRAINING_JOB_ARN"].endswith(":training-job/job-1")
    assert env["MODE"] == "test"
    assert env["PYTHONUNBUFFERED"] == "1"  # a long job's output shows as it comes
    # No SM_* variables: on SageMaker only the training toolkit inside an image sets them.
    assert not [name for name in env if name.startswith("SM_")]
    assert "AWS_SECRET_ACCESS_KEY" not in env and env["HOME"] == str(jobs.folder("job-1") / "home")
    assert (tree / "model/seen.txt").read_text() == "x,y\n1,0\n"
    assert sorted(p.name for p in tree.iterdir()) == ["checkpoints", "input", "model", "output"]
    resource = json.loads((tree / "input/config/resourceconfig.json").read_text())
    assert (resource["current_host"], resource["hosts"]) == ("algo-1", ["algo-1"])
    assert json.loads((tree / "input/config/inputdataconfig.json").read_text())["train"]["TrainingInputMode"] == "File"
    assert json.loads((tree / "input/config/hyperparameters.json").read_text()) == {"mode": "ok", "depth": "3"}


def test_script_mode_processes_get_the_toolkits_variables(setup):
    jobs, runtime, request = setup
    tree = jobs.jobs_dir / "job-1/ml"
    env = toolkit_environment(request(), str(tree), 2)
    assert env["SM_MODEL_DIR"] == f"{tree}/model"
    assert env["SM_CHANNELS"] == '["train"]'
    assert env["SM_CHANNEL_TRAIN"] == f"{tree}/input/data/train"
    assert env["SM_HPS"] == '{"depth":3,"mode":"ok"}'
    assert (env["SM_HP_DEPTH"], env["SM_HP_MODE"]) == ("3", "ok")
    assert env["SM_USER_ARGS"] == '["--depth","3","--mode","ok"]'
    assert env["SM_CURRENT_HOST"] == "algo-1" and env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_OUTPUT_DATA_DIR"] == f"{tree}/output/data"
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "job-1"


def test_record_says_in_progress_while_training(setup):
    jobs, runtime, request = setup
    worker = threading.Thread(target=jobs.run, args=(request(mode="sleep", max_runtime=3), runtime, 5))
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            record = jobs.describe("job-1")
        except UserError:
            record = {}
        if record.get("SecondaryStatus") == "Training":
            break
        time.sleep(0.05)
    assert record["TrainingJobStatus"] == "InProgress"
    worker.join()


def test_max_runtime_stops_the_job_with_sigterm(setup):
    jobs, runtime, request = setup
    started = time.monotonic()
    record = jobs.run(request(mode="sleep", max_runtime=1), runtime, grace_seconds=30)
    assert time.monotonic() - started < 15  # the program obeyed SIGTERM well before the grace ran out
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "ModelArtifacts" in record  # a stopped job keeps what it saved


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(setup):
    jobs, runtime, request = setup
    started = time.monotonic()
    record = jobs.run(request(mode="ignore-term", max_runtime=1), runtime, grace_seconds=1)
    assert time.monotonic() - started < 15
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "sleeping" in (jobs.folder("job-1") / "train.log").read_text()


def test_failure_file_becomes_the_failure_reason(setup):
    jobs, runtime, request = setup
    record = jobs.run(request(mode="fail"), runtime, grace_seconds=5)
    assert record["TrainingJobStatus"] == "Failed"
    assert record["FailureReason"] == "AlgorithmError: bad data in row 7"
    assert "ModelArtifacts" not in record
    assert (jobs.folder("job-1") / "ml/output/failure").is_file()  # the job folder is kept


def test_a_crash_without_failure_file_still_says_why(setup):
    jobs, runtime, request = setup
    record = jobs.run(request(mode="crash"), runtime, grace_seconds=5)
    assert record["FailureReason"] == "AlgorithmError: train exited with code 3"


def test_logs_of_a_job_that_wrote_nothing_say_so_with_its_status(setup):
    jobs, runtime, request = setup
    jobs.run(request(mode="silent"), runtime, grace_seconds=5)
    done = subprocess.run([*sagemake(ROOT), "logs", "job-1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "JOBS_DIR": str(jobs.jobs_dir.resolve())})
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == "==> job job-1 has no log: it is Failed: AlgorithmError: train exited with code 3\n"


def test_job_names_are_unique_and_existing_jobs_untouched(setup):
    jobs, runtime, request = setup
    jobs.run(request(), runtime, grace_seconds=5)
    before = (jobs.folder("job-1") / "job.json").read_text()
    with pytest.raises(UserError, match="job job-1 exists already"):
        jobs.run(request(), runtime, grace_seconds=5)
    assert (jobs.folder("job-1") / "job.json").read_text() == before


def test_jobs_are_listed_newest_first_and_unknown_ones_refused(setup):
    jobs, runtime, request = setup
    with pytest.raises(UserError, match=r"no jobs of sagemake-example yet \(locally, in my jobs/\): run `make train`"):
        jobs.latest()
    jobs.run(request("job-a"), runtime, grace_seconds=5)
    jobs.run(request("job-b"), runtime, grace_seconds=5)
    assert jobs.names() == ["job-b", "job-a"] and jobs.latest() == "job-b"
    with pytest.raises(UserError, match="no local job named 'job-c'"):
        jobs.describe("job-c")


def test_pack_is_byte_reproducible(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub/b.bin").write_bytes(b"\0\1")
    pack(tree(folder), tmp_path / "one.tar.gz")
    time.sleep(1.1)
    (folder / "a.txt").touch()
    pack(tree(folder), tmp_path / "two.tar.gz")
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()
    assert members(tmp_path / "one.tar.gz") == ["a.txt", "sub", "sub/b.bin"]


def test_container_command_mounts_what_sagemaker_mounts_and_passes_variables_by_name(setup):
    jobs, _, request = setup
    runtime = ContainerRuntime("docker", "img:tag", ["--network", "host"])
    job = request()
    job["Environment"] = {"SECRET_TOKEN": "s3cr3t"}
    tree = jobs.jobs_dir / "job-1/ml"
    copy = jobs.jobs_dir / ".channels/0123abcd"
    command, env = runtime.command(job, tree, {"train": copy})
    assert command == ["docker", "run", "--rm", "--name", "job-1",
                       "-v", f"{tree}/input:/opt/ml/input", "-v", f"{tree}/model:/opt/ml/model",
                       "-v", f"{tree}/output:/opt/ml/output", "-v", f"{tree}/checkpoints:/opt/ml/checkpoints",
                       "-v", f"{copy}:/opt/ml/input/data/train:ro",
                       "--add-host", "algo-1:127.0.0.1", "--network", "host",
                       "-e", "SECRET_TOKEN", "-e", "TRAINING_JOB_ARN", "-e", "TRAINING_JOB_NAME", "img:tag", "train"]
    assert env["SECRET_TOKEN"] == "s3cr3t"  # the value travels in the environment, never on the command line
    job["AlgorithmSpecification"].update(ContainerEntrypoint=["python3", "-m", "mine"], ContainerArguments=["--x"])
    command, _ = runtime.command(job, tree, {})
    assert command[-6:] == ["--entrypoint", "python3", "img:tag", "-m", "mine", "--x"]


def test_runtime_choice(tmp_path):
    def executor(**settings):
        return LocalExecutor(resolve(root=ROOT, environ=settings))

    request = {"AlgorithmSpecification": {"TrainingImage": "no-such-image:tag"}}
    runtime, why = executor().runtime(request)
    assert runtime.name == "process" and why == "no docker engine with the image"
    assert executor(LOCAL_RUNTIME="process").runtime(request)[0].name == "process"
    with pytest.raises(UserError, match="docker has no image no-such-image:tag: start the engine and run `make build`"):
        executor(LOCAL_RUNTIME="container").runtime(request)
    with pytest.raises(UserError, match=r"docker has no image no-such-image:tag \(DOCKERFILE=x/Dockerfile runs only"):
        executor(DOCKERFILE="x/Dockerfile").runtime(request)
    with pytest.raises(UserError, match="LOCAL_RUNTIME=process runs only sagemake's own images"):
        executor(LOCAL_RUNTIME="process", TRAINING_IMAGE="theirs:1").runtime(request)
    with pytest.raises(UserError, match=r"\(TRAINING_IMAGE=theirs:1 runs only in a container\): start the engine and "
                                        "pull or build it$"):  # `make build` builds no prebuilt image
        executor(TRAINING_IMAGE="theirs:1").runtime(request)


def test_unpack_refuses_members_outside_the_folder_even_without_extraction_filters(tmp_path, monkeypatch):
    evil = tmp_path / "evil.tar.gz"
    (tmp_path / "payload").write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(tmp_path / "payload", arcname="../outside.txt")
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(UserError, match="refusing '../outside.txt'"):
        unpack(evil, tmp_path / "into")
    assert not (tmp_path / "outside.txt").exists()


def test_sigterm_to_the_executor_stops_the_job_and_ends_its_record(tmp_path, example_data):
    env = {**os.environ, "DATA_DIR": str(example_data), "JOBS_DIR": str(tmp_path / "jobs"), "LOCAL_RUNTIME": "process",
           "HP": "n_estimators=5000 learning_rate=0.001", "MODELS_DIR": str(tmp_path / "models")}
    executor = subprocess.Popen([*sagemake(ROOT), "train"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    for line in executor.stderr:
        if "/ Training:" in line:
            break
    time.sleep(1)
    executor.send_signal(signal.SIGTERM)
    _, err = executor.communicate(timeout=60)
    assert executor.returncode == 130, err  # as Ctrl-C ends a command
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "jobs").glob("*/job.json")]
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "Stopped")


# --- whatever ends the executor, the training ends with it and the record settles ---
DRIVER = """
import json, sys
from pathlib import Path
from sagemake.config import resolve
from sagemake.executors.local.executor import LocalExecutor
from sagemake.executors.local.runtimes import ProcessRuntime
root, request, grace = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
executor = LocalExecutor(resolve(root=root, environ={"JOBS_DIR": "my jobs", "STOP_GRACE_SECONDS": grace}))
try:
    record = executor.run(request, ProcessRuntime(root, Path(sys.executable)))
except KeyboardInterrupt:  # the job ended Stopped first, as the interface says
    record = executor.describe(request["TrainingJobName"])
    print("interrupted")
print(record["TrainingJobStatus"], record["SecondaryStatus"])
"""


def executor_process(jobs, request, grace):
    """An executor of its own, its job started and training: SIGINT works even if this test's SIGINT is ignored."""
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(jobs.config.root), json.dumps(request), str(grace)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in process.stdout:
        if line.startswith("sleeping"):
            return process
    raise AssertionError(f"the job never started training: {process.stderr.read()}")


def training_processes(name):
    """Processes of this machine that run the job: they have its TRAINING_JOB_NAME."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"\0TRAINING_JOB_NAME={name}\0".encode() in b"\0" + environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            pass
    return found


@pytest.fixture
def started():
    """Executors started by a test, and their jobs' training processes, stopped by pid however the test ends."""
    names, processes = [], []

    def start(jobs, request, grace):
        names.append(request["TrainingJobName"])
        processes.append(executor_process(jobs, request, grace))
        return processes[-1]

    yield start
    for process in processes:
        process.kill()
        process.communicate()
    for pid in (pid for name in names for pid in training_processes(name)):
        os.kill(pid, signal.SIGKILL)


def until_gone(name, seconds):
    deadline = time.monotonic() + seconds
    while training_processes(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    return training_processes(name)


@pytest.mark.parametrize("mode", ["sleep", "ignore-term"])
def test_kill_9_of_the_executor_ends_the_training_and_the_record_settles(setup, started, mode):
    jobs, _, request = setup
    name = f"killed-{mode}"
    executor = started(jobs, request(name, mode=mode), grace=2)
    assert training_processes(name)
    executor.kill()
    executor.communicate()
    assert until_gone(name, 2 + 5) == []  # within the grace (SIGKILL for a job that ignores SIGTERM), plus 5 s
    record = jobs.describe(name)
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Failed", "Failed")
    assert f"the executor (pid {executor.pid}) ended during Training" in record["FailureReason"]
    assert jobs.describe(name) == record  # settled once, on disk
    assert json.loads((jobs.folder(name) / "job.json").read_text())["TrainingJobStatus"] == "Failed"
    jobs.print_log(name)  # returns: nothing waits on the dead job


def test_a_record_whose_executor_runs_is_left_in_progress(setup, started):
    jobs, _, request = setup
    executor = started(jobs, request("alive", mode="sleep"), grace=2)
    assert jobs.describe("alive")["TrainingJobStatus"] == "InProgress"
    executor.terminate()
    executor.communicate()
    assert until_gone("alive", 2 + 5) == []


def test_a_closed_terminal_stops_the_job(setup, started):
    jobs, _, request = setup
    executor = started(jobs, request("hung-up", mode="sleep"), grace=2)
    executor.send_signal(signal.SIGHUP)
    out, _ = executor.communicate(timeout=60)
    assert out.split()[-3:] == ["interrupted", "Stopped", "Stopped"]
    assert training_processes("hung-up") == []


def test_a_second_ctrl_c_kills_at_once_and_the_first_waits_the_grace(setup, started):
    jobs, _, request = setup
    executor = started(jobs, request("impatient", mode="ignore-term"), grace=600)
    executor.send_signal(signal.SIGINT)
    time.sleep(1)
    assert executor.poll() is None and training_processes("impatient")  # the grace runs: SIGTERM is ignored
    executor.send_signal(signal.SIGINT)
    out, err = executor.communicate(timeout=60)  # far less than the 600 s grace
    assert "Ctrl-C again to kill it now" in err
    assert out.split()[-3:] == ["interrupted", "Stopped", "Stopped"]
    assert training_processes("impatient") == []


# --- channels: one read-only copy per content, shared by the jobs that read it ---
def test_jobs_on_the_same_data_share_one_read_only_copy(setup):
    jobs, runtime, request = setup
    data = jobs.config.root / "my data/train"
    for name in ("first", "second"):
        assert jobs.run(request(name), runtime, 5)["TrainingJobStatus"] == "Completed"
    rows = [jobs.folder(name) / "ml/input/data/train/rows.csv" for name in ("first", "second")]
    assert rows[0].stat().st_ino == rows[1].stat().st_ino != (data / "rows.csv").stat().st_ino
    assert rows[0].stat().st_mode & 0o777 == 0o444 and (data / "rows.csv").stat().st_mode & 0o200
    (copy,) = [p for p in (jobs.jobs_dir / ".channels").iterdir() if p.is_dir()]
    assert jobs.describe("second")["LocalChannels"] == {"train": copy.name}
    (data / "rows.csv").write_text("x,y\n2,1\n")  # new data, a new copy; the old one stays for the old jobs
    jobs.run(request("third"), runtime, 5)
    assert (jobs.folder("third") / "ml/model/seen.txt").read_text() == "x,y\n2,1\n"
    assert rows[0].read_text() == "x,y\n1,0\n"
    assert len([p for p in (jobs.jobs_dir / ".channels").iterdir() if p.is_dir()]) == 2


def test_a_job_that_writes_into_its_input_spoils_nothing(setup, capfd):
    jobs, runtime, request = setup
    assert jobs.run(request("writer", mode="write-input"), runtime, 5)["TrainingJobStatus"] == "Completed"
    jobs.run(request("reader"), runtime, 5)
    assert (jobs.folder("reader") / "ml/model/seen.txt").read_text() == "x,y\n1,0\n"
    assert (jobs.config.root / "my data/train/rows.csv").read_text() == "x,y\n1,0\n"
    if os.geteuid() == 0:  # root writes through file modes: the copy it changed was set aside
        assert "the job wrote into its input channel train" in capfd.readouterr().err


def test_a_change_behind_a_link_in_a_channel_reaches_the_next_job(setup):
    """A folder linked into the channel from elsewhere in DATA_DIR is in the job's copy, as in the channel's digest
    and in S3: a change behind the link is a new digest, so the next job reads the new content."""
    jobs, runtime, request = setup
    shared = jobs.config.root / "my data/.shared"
    shared.mkdir()
    (shared / "more.csv").write_text("x,y\n5,0\n")
    (jobs.config.root / "my data/train/more").symlink_to(shared)
    jobs.run(request("before"), runtime, 5)
    (shared / "more.csv").write_text("x,y\n6,1\n")
    jobs.run(request("after"), runtime, 5)
    for name, rows in (("before", "x,y\n5,0\n"), ("after", "x,y\n6,1\n")):
        assert (jobs.folder(name) / "ml/input/data/train/more/more.csv").read_text() == rows
    assert jobs.describe("before")["LocalChannels"] != jobs.describe("after")["LocalChannels"]


def test_clean_jobs_keeps_the_newest_and_the_running_and_their_data(setup, started, capfd):
    jobs, runtime, request = setup
    rows = jobs.config.root / "my data/train/rows.csv"
    running = None
    for index in range(4):
        rows.write_text(f"x,y\n{index},0\n")  # each job its own data, so its own copy
        jobs.run(request(f"old-{index}"), runtime, 5)
        if index == 1:  # a job that runs on, older than the last two
            running = started(jobs, request("running", mode="sleep"), grace=2)
    with pytest.raises(UserError, match="KEEP=0: keep at least the newest job"):
        jobs.prune(0)
    jobs.prune(1)
    assert jobs.names(None) == ["old-3", "running"]
    assert "removed 3 job folder(s)" in capfd.readouterr().err
    copies = sorted(p.name for p in (jobs.jobs_dir / ".channels").iterdir() if p.is_dir())
    assert copies == sorted({*jobs.describe("old-3")["LocalChannels"].values(),
                             *jobs.describe("running")["LocalChannels"].values()})
    assert (jobs.folder("running") / "ml/input/data/train/rows.csv").read_text() == "x,y\n1,0\n"
    running.terminate()
    running.communicate()
    jobs.prune(1)
    assert jobs.names(None) == ["old-3"]  # the newest by creation, though "running" ended last
    assert len([p for p in (jobs.jobs_dir / ".channels").iterdir() if p.is_dir()]) == 1


def test_a_spot_drill_interrupts_the_job_which_resumes_from_its_checkpoint_to_the_same_model(tmp_path, example_data):
    def train(**extra):
        env = {**os.environ, "DATA_DIR": str(example_data), "JOBS_DIR": str(tmp_path / "jobs"),
               "MODELS_DIR": str(tmp_path / "models"), "LOCAL_RUNTIME": "process",
               "HP": "n_estimators=1000 learning_rate=0.01", **extra}
        done = subprocess.run([*sagemake(ROOT), "train"], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    plain = train()
    (plain_job,) = [path.name for path in (tmp_path / "jobs").iterdir() if path.name in plain.stderr]
    seconds = json.loads((tmp_path / "jobs" / plain_job / "job.json").read_text())["TrainingTimeInSeconds"]
    drilled = train(SPOT_DRILL_SECONDS=str(max(2, seconds // 2)))  # halfway, however fast this machine trains
    assert "spot drill: stopping it (SIGTERM" in drilled.stderr
    models = {}
    for path in (tmp_path / "models").glob("*/manifest.json"):
        manifest = json.loads(path.read_text())
        models[manifest["job_name"]] = manifest
    assert plain_job in models
    (drilled_job,) = [name for name in models if name in drilled.stderr]
    record = json.loads((tmp_path / "jobs" / drilled_job / "job.json").read_text())
    statuses = [t["Status"] for t in record["SecondaryStatusTransitions"]]
    assert statuses[statuses.index("Interrupted"):] == ["Interrupted", "Restarting", "Training", "Uploading",
                                                        "Completed"]
    assert record["CheckpointConfig"]["S3Uri"].endswith(f"/jobs/checkpoints/{drilled_job}")  # outside its folder
    log = (tmp_path / "jobs" / drilled_job / "train.log").read_text()
    assert "train: stopped by SIGTERM" in log
    resumed = re.search(r"resumed from the checkpoint at round (\d+) of 1000", log)
    assert resumed and int(resumed.group(1)) >= 50  # it did not start again from nothing
    assert models[drilled_job]["metrics"] == models[plain_job]["metrics"]  # the same predictions, to the last digit


def test_large_archives_show_progress_and_small_ones_do_not(tmp_path, capfd, monkeypatch):
    from sagemake.cli import Progress

    big, small = tmp_path / "big", tmp_path / "small"
    big.mkdir()
    small.mkdir()
    (big / "weights.bin").write_bytes(os.urandom(21_000_000))  # random: the archive stays as large
    (small / "weights.bin").write_bytes(b"0" * 1000)
    monkeypatch.setattr(Progress, "QUIET_SECONDS", 0)  # off a terminal: a line each time, not every 10 s
    pack(tree(big), tmp_path / "big.tar.gz", "pack model.tar.gz")
    unpack(tmp_path / "big.tar.gz", tmp_path / "out", "unpack model.tar.gz")
    pack(tree(small), tmp_path / "small.tar.gz", "pack small.tar.gz")
    err = capfd.readouterr().err
    assert "==> pack model.tar.gz: 21.0 MB done" in err and "==> pack model.tar.gz: 100% of 21.0 MB" in err
    assert "==> unpack model.tar.gz: 21.0 MB done" in err
    assert "small" not in err
    assert (tmp_path / "out/weights.bin").read_bytes() == (big / "weights.bin").read_bytes()


def test_clean_jobs_keeps_the_data_copy_a_running_processing_job_reads(setup):
    jobs, runtime, request = setup
    jobs.run(request("old"), runtime, 5)
    (copy,) = jobs.describe("old")["LocalChannels"].values()
    processing = jobs.jobs_dir / "preprocess-1"
    processing.mkdir()
    (processing / "processing.json").write_text(json.dumps({"ProcessingJobStatus": "InProgress",
                                                            "LocalChannels": {"raw": copy}}))
    jobs.run(request("new"), runtime, 5)
    ((jobs.config.root / "my data/train/rows.csv")).write_text("x,y\n5,5\n")  # the newest job's data differs
    jobs.run(request("newest"), runtime, 5)
    jobs.prune(1)
    assert (jobs.jobs_dir / ".channels" / copy).is_dir()  # read by the running processing job
    (processing / "processing.json").write_text(json.dumps({"ProcessingJobStatus": "Completed",
                                                            "LocalChannels": {"raw": copy}}))
    jobs.prune(1)
    assert not (jobs.jobs_dir / ".channels" / copy).exists()


def test_checkpoint_from_a_running_job_or_one_that_kept_none_is_refused_in_one_line(setup, started):
    from sagemake.jobs.training import seeded_from

    jobs, runtime, request = setup
    kept = {"CheckpointConfig": {"S3Uri": jobs.checkpoint_uri("job-1"), "LocalPath": "/opt/ml/checkpoints"}}
    jobs.run({**request(), **kept}, runtime, 5)  # its program writes nothing to /opt/ml/checkpoints
    place = jobs.jobs_dir / "checkpoints" / "job-1"
    assert (jobs.folder("job-1") / "ml/checkpoints").resolve() == place and place.is_dir()
    started(jobs, request("running", mode="sleep"), grace=2)

    def seeded(source):
        jobs.config.values["CHECKPOINT_FROM"] = source
        new = {**request("job-2"), "Tags": [], "CheckpointConfig": {"S3Uri": jobs.checkpoint_uri("job-2")}}
        seeded_from(jobs.config, jobs.executor, new)

    with pytest.raises(UserError, match=r"^CHECKPOINT_FROM=running: the job is still running, its checkpoints still "
                                        r"changing: wait for it to end, or stop it \(Ctrl-C in its terminal\)$"):
        seeded("running")
    with pytest.raises(UserError, match=r"^CHECKPOINT_FROM=job-1: the job kept no checkpoints \(its trainer wrote "
                                        r"nothing to /opt/ml/checkpoints\): name a job that did$"):
        seeded("job-1")
    with pytest.raises(UserError, match=r"^CHECKPOINT_FROM='\.\./job-1' is not a job name"):
        seeded("../job-1")
    assert sorted(p.name for p in (jobs.jobs_dir / "checkpoints").iterdir()) == ["job-1"]  # nothing made for job-2
