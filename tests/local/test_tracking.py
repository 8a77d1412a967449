"""Every job an MLflow run: `make train`, `make tune` and `make preprocess` in a copy of the checkout (the fixture
trainer, a git repository of its own), each read back from the local SQLite store with MLflow's own client."""

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import copy_repo, sagemake, tool_venv
from mlflow.tracking import MlflowClient

STORE = "build/mlflow/mlflow.db"


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
    return MlflowClient(f"sqlite:///{repo / STORE}")


def run_of(client: MlflowClient, name: str):
    experiment = client.get_experiment_by_name("sagemake-example")
    (found,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
    return found


def test_make_train_is_a_run_with_its_params_metric_series_tags_and_artefacts(project):
    done = make(project, "train", "HP=n_estimators=150 max_depth=2")
    assert done.returncode == 0, done.stderr
    (job,) = [p.name for p in (project / "models").iterdir()]
    assert f"tracking: job {job} is run " in done.stderr and "(`make ui` shows it)" in done.stderr
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


def test_an_unreachable_store_is_one_line_and_the_job_still_runs(tmp_path):
    repo = copy_repo(tmp_path / "p")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    done = make(repo, "train", "HP=n_estimators=10", MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "tracking:" in line]
    assert f"MLFLOW_TRACKING_URI={uri} cannot be written" in line and "ran but was not tracked" in line
    assert len(list((repo / "models").iterdir())) == 1  # the model was fetched all the same

    off = make(repo, "train", "HP=n_estimators=10", "TRACKING=false")
    assert off.returncode == 0, off.stderr
    assert "tracking:" not in off.stderr and not (repo / STORE).exists()


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

    if not (project / STORE).is_file():
        assert make(project, "train", "HP=n_estimators=10").returncode == 0
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
