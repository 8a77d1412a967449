"""Several hosts, locally: examples/distributed (XGBoost's collective) dropped into a checkout, trained by 2 hosts.

The process runtime runs everywhere; the container runtime where an engine answers (see test_container.py).
"""

import json
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, copy_repo, sagemake, tool_venv
from test_container import ENGINE, FLAGS, engine  # noqa: F401 (a fixture)

from sagemake.executors.local.runtimes import cpu_shares

SHARDED = {"INSTANCE_COUNT": "2", "DATA_DISTRIBUTION": "train=ShardedByS3Key"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("distributed") / "my project")
    shutil.rmtree(repo / "src/trainer")
    shutil.copytree(ROOT / "examples/distributed/trainer", repo / "src/trainer")
    shutil.copy(ROOT / "examples/distributed/requirements.txt", repo / "docker/requirements.txt")
    return repo


def train(repo, **settings):
    env = {**os.environ, "VENV": tool_venv(), "CONTAINER_BUILD_FLAGS": FLAGS, "CONTAINER_RUN_FLAGS": "", **settings}
    return subprocess.run([*sagemake(repo), "train"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=900)


def newest_job(repo):
    records = [json.loads(p.read_text()) for p in (repo / "jobs").glob("*/job.json")]
    return max(records, key=lambda r: r["CreationTime"])


def check_two_hosts_trained_one_model(repo, done):
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    shares = cpu_shares(["algo-1", "algo-2"])  # each host on its own share of the cores, as on two instances
    for rank, host in enumerate(("algo-1", "algo-2")):
        cores = ",".join(map(str, shares[host]))
        assert f"[{host}] {host}: rank {rank} of 2, training on its 2000 rows on CPU(s) {cores}" in lines
        assert f"[{host}] {host}: joined the tracker on algo-1 as rank {rank}" in lines
    # Each host trained on its own half of the files, yet both end with the same model: they trained together.
    metrics = {host: sorted(line.split("] ", 1)[1] for line in lines if line.startswith(f"[{host}] validation:"))
               for host in ("algo-1", "algo-2")}
    assert metrics["algo-1"] == metrics["algo-2"] and len(metrics["algo-1"]) == 3
    record = newest_job(repo)
    job = repo / "jobs" / record["TrainingJobName"]
    shares = {host: sorted(p.name for p in (job / "shards" / host / "train").iterdir())
              for host in ("algo-1", "algo-2")}
    assert shares == {"algo-1": ["part-0.csv", "part-2.csv", "part-4.csv", "part-6.csv"],
                      "algo-2": ["part-1.csv", "part-3.csv", "part-5.csv", "part-7.csv"]}
    resource = json.loads((job / "ml-algo-2/input/config/resourceconfig.json").read_text())
    assert (resource["current_host"], resource["hosts"]) == ("algo-2", ["algo-1", "algo-2"])
    model = repo / "models" / record["TrainingJobName"]
    assert (model / "model.json").is_file()
    assert json.loads((model / "manifest.json").read_text())["metrics"]["validation:auc"] > 0.9
    return record


def test_two_hosts_train_one_model_together_as_processes(project):
    check_two_hosts_trained_one_model(project, train(project, LOCAL_RUNTIME="process", **SHARDED))


def test_a_host_that_fails_fails_the_job_and_stops_the_others(project):
    # The hosts still joining XGBoost's tracker wait in its C code, where Python's SIGTERM handler does not run:
    # they end at the grace's SIGKILL, so a short one (the default is 120 s; what a grace does is test_local.py's).
    done = train(project, LOCAL_RUNTIME="process", INSTANCE_COUNT="9", DATA_DISTRIBUTION="train=ShardedByS3Key",
                 STOP_GRACE_SECONDS="5")
    assert done.returncode == 1
    assert "channel train has 8 file(s) for 9 hosts (ShardedByS3Key): algo-9 gets none" in done.stderr
    assert "host algo-9 failed, so the job fails: stopping every host (SIGTERM, then SIGKILL after 5 s" in done.stderr
    record = newest_job(project)
    assert record["FailureReason"].startswith("AlgorithmError: (algo-9) channel 'train' is empty")


def test_two_hosts_train_one_model_together_in_containers(engine, project):  # noqa: F811
    built = train(project, LOCAL_RUNTIME="container", **SHARDED)
    record = check_two_hosts_trained_one_model(project, built)
    name = record["TrainingJobName"]
    assert "runtime container" in built.stderr
    left = subprocess.run([ENGINE, "ps", "--all", "--quiet", "--filter", f"name={name}"], capture_output=True,
                          text=True, check=True).stdout
    networks = subprocess.run([ENGINE, "network", "ls", "--quiet", "--filter", f"name=^{name}$"],
                              capture_output=True, text=True, check=True).stdout
    assert (left, networks) == ("", "")  # the hosts' containers and the job's network are gone
