"""A local job in a real container: its channels mounted read-only, and the container gone with its executor.

Runs where an engine answers, like test_container.py (whose image and fixtures it shares).
"""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import sagemake
from test_container import ENGINE, built_project, containers, engine  # noqa: F401 (fixtures)

from sagemake.executors.local.guarded import GUARD


def test_kill_9_of_the_executor_removes_the_container_and_settles_the_record(built_project):  # noqa: F811
    repo, env = built_project
    everything = {**env, "STOP_GRACE_SECONDS": "3", "HP": "n_estimators=5000 learning_rate=0.001"}
    executor = subprocess.Popen([*sagemake(repo), "train"], cwd=repo, env=everything,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in executor.stderr:
            if "/ Training:" in line:
                break
        name = line.split()[2].rstrip(":")
        deadline = time.monotonic() + 60
        while not containers(name) and time.monotonic() < deadline:
            time.sleep(0.2)
        inspected = json.loads(subprocess.run([ENGINE, "inspect", name], capture_output=True, text=True,
                                              check=True).stdout)[0]
        mounts = {m["Destination"]: m["RW"] for m in inspected["Mounts"]}
        assert mounts["/opt/ml/input/data/train"] is False and mounts["/opt/ml/model"] is True
    finally:
        executor.send_signal(signal.SIGKILL)
        executor.communicate()
    deadline = time.monotonic() + 3 + 5  # the grace, plus 5 s
    while containers(name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers(name) == []
    listed = subprocess.run([*sagemake(repo), "jobs"], cwd=repo, env=everything,
                            capture_output=True, text=True, check=True).stdout
    assert [line.split()[1] for line in listed.splitlines() if line.startswith(name)] == ["Failed"]
    record = json.loads((repo / "jobs" / name / "job.json").read_text())
    assert f"the executor (pid {executor.pid}) ended during Training" in record["FailureReason"]


def test_a_stop_while_the_engine_makes_the_container_leaves_none(engine, tmp_path):  # noqa: F811
    """SIGTERM to the guard while the container is being made. The engine here is the real one behind a script that
    takes its time to create, and that makes a `run`'s container only after the `run` client is gone, as a daemon
    finishing a create can: a guard that stopped the client and removed the container at once would leave it."""
    slow = tmp_path / "slow-engine"
    slow.write_text(f"""#!/bin/sh
case "$1" in
  run) shift; setsid sh -c 'sleep 1; exec "$0" create "$@"' {ENGINE} "$@" >/dev/null 2>&1 & sleep 60 ;;
  create) sleep 1; exec {ENGINE} "$@" ;;
  *) exec {ENGINE} "$@" ;;
esac
""")
    slow.chmod(0o755)
    name = f"sagemake-test-made-{time.monotonic_ns()}"
    guard = subprocess.Popen([sys.executable, str(GUARD), str(os.getpid()), "5", "--container", str(slow),
                              name, "--", str(slow), "run", "--rm", "--name", name, "--entrypoint", "sleep",
                              "python:3.11-slim", "60"], start_new_session=True)
    time.sleep(0.5)  # within the create
    guard.send_signal(signal.SIGTERM)
    assert guard.wait(timeout=60) == 128 + signal.SIGTERM
    time.sleep(2)  # for whatever the engine was still making
    assert containers(name) == []
