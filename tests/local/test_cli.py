"""Exit statuses, named in sagemake.cli.Exit: a failed job is not a bad config, nor an AWS error."""

import os
import socket
import subprocess

from conftest import ROOT, sagemake
from emulator import settings

from sagemake.cli import Exit


def run(*args, **env):
    everything = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **env}
    return subprocess.run([*sagemake(ROOT), *args], env=everything, capture_output=True,
                          text=True, timeout=300)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_each_kind_of_ending_has_its_own_status(tmp_path, example_data):
    local = {"DATA_DIR": str(example_data), "JOBS_DIR": str(tmp_path / "jobs"), "MODELS_DIR": str(tmp_path / "models"),
             "LOCAL_RUNTIME": "process"}
    bad = run("plan", **local, HP="max_depth=deep")
    assert (bad.returncode, bad.stderr.count("\n")) == (Exit.BAD_INPUT, 1), bad.stderr
    failed = run("train", **local, HP="target=nope n_estimators=5")
    assert failed.returncode == Exit.JOB_FAILED, failed.stderr
    assert "Failed: AlgorithmError: ValueError: label column 'nope'" in failed.stderr.splitlines()[-1]
    unreachable = run("plan", ENV="prod", **settings(), DATA_DIR=str(example_data), AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}",
                      AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_MAX_ATTEMPTS="1")
    assert unreachable.returncode == Exit.AWS_ERROR, unreachable.stderr
    assert unreachable.stderr.startswith("sagemake: cannot reach AWS (sts GetCallerIdentity, 1 attempt)")
    assert "Traceback" not in unreachable.stderr and unreachable.stderr.count("\n") == 1
