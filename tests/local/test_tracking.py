"""Every job an MLflow run: `make train`, `make tune` and `make preprocess` in a copy of the checkout (the fixture
trainer, a git repository of its own), each read back from the local SQLite store with MLflow's own client once the
queue of pending runs is written (drain, as `make ui` does); the queue's writer killed, two commands at once, and an
unreachable server."""

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_repo, sagemake, sigint_as_a_terminal_gives_it, tool_venv
from mlflow.tracking import MlflowClient

from sagemake.config import resolve
from sagemake.tracking import drain, pending

STORE = "build/mlflow/mlflow.db"
QUEUE = "build/mlflow/queue"


def make(repo: Path, *words: str, **env) -> subprocess.CompletedProcess:
    done = subprocess.run(["make", "-s", *words], cwd=repo, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process", **env})
    return done


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A user's checkout in git, its last commit followed by an uncommitted change (a dirty tree)."""
    repo = copy_repo(tmp_path_factory.mktemp("tracked") / "my project")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "start")
    (repo / "notes.txt").write_text("not committed\n")
    return repo


def store(repo: Path) -> MlflowClient:
    """The project's store, its pending runs written first."""
    drain(resolve(root=repo, environ={}))
    return MlflowClient(f"sqlite:///{repo / STORE}")


def held(queue: Path):
    """The queue's writer lock, held (no writer writes while it is), or waited for."""
    queue.mkdir(parents=True, exist_ok=True)
    lock = open(queue / "writer.lock", "a")  # noqa: SIM115 - closed by the caller
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def run_of(client: MlflowClient, name: str):
    experiment = client.get_experiment_by_name("sagemake-example")
    (found,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
    return found


def test_make_train_is_a_run_with_its_params_metric_series_tags_and_artefacts(project):
    done = make(project, "train", "HP=n_estimators=150 max_depth=2", PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 0, done.stderr
    (job,) = [p.name for p in (project / "models").iterdir()]
    assert f"tracking: job {job} is written as a run " in done.stderr and "(`make ui` shows it)" in done.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "sagemake.tracking" in loaded  # the command's profile is there (the writer's is in its log)
    assert not {name for name in loaded if name.split(".")[0] == "mlflow"}
    manifest = json.loads((project / "models" / job / "manifest.json").read_text())
    record = json.loads((project / "jobs" / job / "job.json").read_text())
    client = store(project)
    run = run_of(client, job)

    assert run.info.status == "FINISHED" and run.info.run_name == job
    assert run.data.params["n_estimators"] == "150" and run.data.params["max_depth"] == "2"
    assert run.data.params["job.instance_type"] == "ml.m5.large" and run.data.params["job.instance_count"] == "1"
    assert run.data.params["job.image"] == manifest["image"] and run.data.params["job.spot"] == "false"

    tags = run.data.tags
    assert tags["sagemake.job"] == job and tags["sagemake.arn"] == record["TrainingJobArn"]
    assert tags["sagemake.env"] == "local" and tags["sagemake.status"] == "Completed"
    assert tags["sagemake.git_commit"] == git(project, "rev-parse", "--short=7", "HEAD") == manifest["git_sha"]
    assert tags["sagemake.git_dirty"] == "true"
    assert {c: tags[f"sagemake.data.{c}"] for c in manifest["data"]} == \
        {c: found["digest"] for c, found in manifest["data"].items()}
    assert tags["sagemake.image"] == manifest["image"]
    assert tags["sagemake.billable_seconds"] == str(record["BillableTimeInSeconds"])
    assert float(tags["sagemake.cost_usd"]) > 0

    # The objective as the job printed it, step by step (150 rounds: a line after each step of 50 but the last, then
    # the final value), each with the time it came; the last is the final value the record keeps.
    history = client.get_metric_history(run.info.run_id, "validation:roc_auc")
    assert [m.step for m in history] == [0, 1, 2]
    assert [m.timestamp for m in history] == sorted(m.timestamp for m in history)
    assert history[-1].value == manifest["metrics"]["validation:roc_auc"]
    assert run.data.metrics["train:accuracy"] == manifest["metrics"]["train:accuracy"]

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"manifest.json", "roc.png", "pr.png"} <= artifacts
    kept = Path(client.download_artifacts(run.info.run_id, "manifest.json", str(project / "build")))
    assert json.loads(kept.read_text())["artifact"]["sha256"] == manifest["artifact"]["sha256"]


def test_make_tune_is_a_run_with_each_trial_nested_under_it(project):
    done = make(project, "tune", "TUNE_RANGES=max_depth=2:4", "TUNE_MAX_JOBS=2", "HP=n_estimators=100")
    assert done.returncode == 0, done.stderr
    (tuning,) = [p.parent.name for p in (project / "jobs").glob("*/tuning.json")]
    record = json.loads((project / "jobs" / tuning / "tuning.json").read_text())
    client = store(project)
    parent = run_of(client, tuning)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["max_depth"] == "2:4" and parent.data.params["job.max_jobs"] == "2"
    assert parent.data.params["job.objective"] == "Maximize validation:roc_auc"
    best = record["BestTrainingJob"]["TrainingJobName"]
    assert parent.data.tags["sagemake.best_trial"] == best
    assert {"leaderboard.csv", "tuning.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    objective = client.get_metric_history(parent.info.run_id, "validation:roc_auc")
    assert [m.step for m in objective] == [1, 2]  # the objective over the trials, in the order they started
    first = run_of(client, record["TrainingJobSummaries"][0]["TrainingJobName"])
    digests = {key: value for key, value in first.data.tags.items() if key.startswith("sagemake.data.")}
    assert sorted(digests) == ["sagemake.data.train", "sagemake.data.validation"]
    assert {key: parent.data.tags[key] for key in digests} == digests  # the data it tuned on

    trials = [s["TrainingJobName"] for s in record["TrainingJobSummaries"]]
    for trial in trials:
        child = run_of(client, trial)
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["sagemake.tuning_job"] == tuning
        assert len(client.get_metric_history(child.info.run_id, "validation:roc_auc")) == 2  # 100 rounds: 2 values
    artefacts = {trial: {a.path for a in client.list_artifacts(run_of(client, trial).info.run_id)} for trial in trials}
    assert "manifest.json" in artefacts[best]  # the best trial's model was fetched
    assert not any(artefacts[trial] for trial in trials if trial != best)


def test_make_preprocess_is_a_run_with_its_data_digests(project):
    done = make(project, "preprocess", "DATA_DIR=processed")
    assert done.returncode == 0, done.stderr
    stamp = json.loads((project / "processed/.preprocessed.json").read_text())
    client = store(project)
    run = run_of(client, stamp["job"])
    assert run.info.status == "FINISHED"
    assert run.data.params["job.entrypoint"] == "python3 -m trainer.preprocess"
    assert run.data.tags["sagemake.data.raw"] == stamp["raw"]
    assert {c: run.data.tags[f"sagemake.data.{c}"] for c in ("train", "validation")} == stamp["channels"]
    assert run.data.metrics["preprocess:train_rows"] > 0 and "preprocess:dropped_missing" in run.data.metrics
    cost = run.data.tags["sagemake.cost_usd"]  # processing's price may be missing from the shipped table
    assert (cost == "unknown" or float(cost) >= 0) and int(run.data.tags["sagemake.billable_seconds"]) >= 0
    assert run.data.tags["sagemake.git_commit"] == git(project, "rev-parse", "--short=7", "HEAD")


def test_jobs_cut_short_are_runs_too_and_a_secret_in_their_settings_is_masked(project):
    """make train stopped by Ctrl-C is a KILLED run; a failed make transform a FAILED one; an argument that looks
    like a credential is masked in the run's params as on the terminal (a run may go to a team's server)."""
    env = {**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process", "STOP_GRACE_SECONDS": "5"}
    train = subprocess.Popen(["make", "-s", "train", "HP=n_estimators=5000 learning_rate=0.001"], cwd=project,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=sigint_as_a_terminal_gives_it)
    for line in train.stderr:
        if "/ Training:" in line:
            break
    stopped = line.split()[2].rstrip(":")
    os.killpg(train.pid, signal.SIGINT)  # Ctrl-C in its terminal
    train.communicate(timeout=120)
    assert train.returncode != 0
    assert make(project, "train", "HP=n_estimators=20").returncode == 0  # a model to transform with
    rows = project / "rows"
    rows.mkdir()
    (rows / "bad.csv").write_text("1,2,3\n")  # too few features: the model server answers 400
    failed = make(project, "transform", f"INPUT={rows}")
    assert failed.returncode != 0, failed.stderr
    transform = next(line.split()[2].rstrip(":") for line in failed.stderr.splitlines()
                     if line.startswith("==> transform ") and "file(s) from" in line)
    secret = make(project, "preprocess", "DATA_DIR=processed", "PREPROCESS_ARGS=--token=ghs_n0tInAnyRun1234")
    assert secret.returncode != 0  # the example's step takes no --token
    client = store(project)
    assert run_of(client, stopped).info.status == "KILLED"
    assert run_of(client, transform).info.status == "FAILED"
    experiment = client.get_experiment_by_name("sagemake-example")
    everything = json.dumps([(r.data.params, r.data.tags) for r in client.search_runs([experiment.experiment_id])])
    assert "ghs_n0tInAnyRun1234" not in everything and "--token=***" in everything


def test_make_tune_stopped_by_ctrl_c_is_a_killed_run_with_its_trials(project):
    env = {**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process", "STOP_GRACE_SECONDS": "5"}
    tune = subprocess.Popen(["make", "-s", "tune", "TUNE_RANGES=max_depth=2:4", "TUNE_MAX_JOBS=3",
                             "HP=n_estimators=5000 learning_rate=0.001"], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_a_terminal_gives_it)
    for line in tune.stderr:
        if "/ Training:" in line:
            break
    os.killpg(tune.pid, signal.SIGINT)  # Ctrl-C in its terminal, while its first trial trains
    tune.communicate(timeout=120)
    assert tune.returncode != 0
    (tuning,) = [p.parent.name for p in (project / "jobs").glob("*/tuning.json")
                 if json.loads(p.read_text())["HyperParameterTuningJobStatus"] == "Stopped"]
    client = store(project)
    parent = run_of(client, tuning)
    assert parent.info.status == "KILLED"
    trials = json.loads((project / "jobs" / tuning / "tuning.json").read_text())["TrainingJobSummaries"]
    assert trials and all(run_of(client, t["TrainingJobName"]).data.tags["mlflow.parentRunId"] == parent.info.run_id
                          for t in trials)


def test_an_unreachable_store_is_one_line_on_the_next_command_and_its_runs_wait(tmp_path):
    repo = copy_repo(tmp_path / "p")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    queue = repo / QUEUE
    done = make(repo, "train", "HP=n_estimators=10", MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 0, done.stderr
    assert len(list((repo / "models").iterdir())) == 1  # the model was fetched all the same
    deadline = time.monotonic() + 300
    while not (queue / "failed.json").exists() and time.monotonic() < deadline:  # its writer, on its own
        time.sleep(0.1)

    again = make(repo, "train", "HP=n_estimators=10", MLFLOW_TRACKING_URI=uri)  # the next make train says it
    assert again.returncode == 0, again.stderr
    (line,) = [line for line in again.stderr.splitlines() if "could not be written" in line]
    assert f"to MLFLOW_TRACKING_URI={uri} (" in line and f"(log: {queue / 'writer.log'})" in line

    said = subprocess.run([sys.executable, "-c", "import sys; from sagemake.config import resolve; "
                           "from sagemake.tracking import drain; drain(resolve(root=__import__('pathlib').Path("
                           f"{str(repo)!r}), environ={{'MLFLOW_TRACKING_URI': {uri!r}}}))"],
                          capture_output=True, text=True, check=True)  # a reader, in a process of its own
    (line,) = [line for line in said.stderr.splitlines() if "could not be written" in line]
    assert f"MLFLOW_TRACKING_URI={uri}" in line and "2 run(s) wait in" in line
    assert len(pending(queue)) == 2  # both kept, for when the server answers
    assert "not written to" in (queue / "writer.log").read_text()

    off = make(repo, "train", "HP=n_estimators=10", "TRACKING=false")
    assert off.returncode == 0, off.stderr
    assert "tracking:" not in off.stderr and not (repo / STORE).exists()


def test_two_commands_at_once_and_a_writer_killed_each_run_is_written_once(tmp_path):
    repo = copy_repo(tmp_path / "p")
    queue = repo / QUEUE
    lock = held(queue)  # their writers find the lock held: each leaves its record to the holder
    try:
        both = [subprocess.Popen(["make", "-s", "train", f"HP=n_estimators={n}"], cwd=repo, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env={**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process"})
                for n in (10, 20)]
        for command in both:
            assert command.wait(timeout=900) == 0, command.stderr.read()
        deadline = time.monotonic() + 300
        while len(said := [line for line in (queue / "writer.log").read_text().splitlines()
                           if "the queue is left to it" in line or " is run " in line]) < 2 \
                and time.monotonic() < deadline:  # each command's writer has found the lock held, or written
            time.sleep(0.1)
        assert len(said) == 2 and all("the queue is left to it" in line for line in said), said
        records = pending(queue)
        assert len(records) == 2
        kept = tmp_path / "kept"
        kept.mkdir()
        for record in records:
            shutil.copy(record, kept / record.name)
    finally:
        lock.close()
    jobs = sorted(p.name for p in (repo / "models").iterdir())

    writer = subprocess.Popen([sys.executable, "-m", "sagemake.tracking", str(queue)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(pending(queue)) == 2 and writer.poll() is None:  # killed once it has written one, or as it ends
        time.sleep(0.05)
    with_lock_free = writer.poll() is None
    if with_lock_free:
        os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    client = store(repo)  # the next reader writes what is left
    assert not pending(queue)
    for record in kept.iterdir():  # each record written again: a writer killed after its run, before removing it
        shutil.copy(record, queue / record.name)
    client = store(repo)
    assert not pending(queue)
    experiment = client.get_experiment_by_name("sagemake-example")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in runs) == jobs  # each once
    assert {run.info.status for run in runs} == {"FINISHED"}


def test_make_plan_loads_no_mlflow(project, example_data):
    done = subprocess.run([*sagemake(project), "plan"], capture_output=True, text=True, check=True,
                          env={**os.environ, "DATA_DIR": str(example_data), "PYTHONPROFILEIMPORTTIME": "1"})
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "sagemake.config" in loaded  # the profile is there
    assert not {name for name in loaded if name.split(".")[0] == "mlflow"}


def descendants(pid: int) -> set[int]:
    """Every process below pid, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_make_ui_answers_on_a_free_port_and_ctrl_c_leaves_nothing_running(project):
    import re
    import signal
    import time
    import urllib.request

    from conftest import sigint_as_a_terminal_gives_it

    lock = held(project / QUEUE)  # a run left pending: `make ui` writes it before serving the store
    try:
        assert make(project, "train", "HP=n_estimators=10").returncode == 0
        (record,) = pending(project / QUEUE)
        job = json.loads(record.read_text())["run"]["name"]
    finally:
        lock.close()
    served = subprocess.Popen([*sagemake(project), "ui"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True, preexec_fn=sigint_as_a_terminal_gives_it)
    try:
        said = []
        for line in served.stdout:  # the first run installs MLflow's server: its progress, then the URL
            said.append(line)
            found = re.search(r"ui: (http://127\.0\.0\.1:(\d+)) is up", line)
            if found:
                break
        assert found, "".join(said[-20:])
        assert any("tracking: writing 1 pending run(s) first" in line for line in said)
        assert run_of(MlflowClient(f"sqlite:///{project / STORE}"), job).info.status == "FINISHED"
        url = found[1]
        with urllib.request.urlopen(f"{url}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name="
                                    "sagemake-example", timeout=30) as answer:
            assert json.loads(answer.read())["experiment"]["name"] == "sagemake-example"
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and b"MLflow" in page.read()
        below = descendants(served.pid)
        assert below  # the guard, the server and its worker
        os.killpg(served.pid, signal.SIGINT)  # Ctrl-C in the terminal: the foreground group
        rest = served.stdout.read()
        assert served.wait(timeout=60) == 0, rest
        assert "ui: stopped" in rest
        deadline = time.monotonic() + 10
        while below & descendants(1) and time.monotonic() < deadline:  # reaped by now, or very soon
            time.sleep(0.2)
        assert not {pid for pid in below if Path(f"/proc/{pid}").exists()}
    finally:
        if served.poll() is None:
            served.kill()
            served.wait()


def test_make_ui_refuses_a_server_and_an_empty_store(tmp_path):
    repo = copy_repo(tmp_path / "p")
    empty = make(repo, "ui")
    assert empty.returncode == 2 and f"no runs yet in {repo / STORE}: `make train`" in empty.stderr
    remote = make(repo, "ui", MLFLOW_TRACKING_URI="https://mlflow.example.com")
    assert remote.returncode == 2
    assert "MLFLOW_TRACKING_URI=https://mlflow.example.com is not a local store: open that server's own UI" in \
        remote.stderr
