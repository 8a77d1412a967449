"""The channels in DATA_DIR are the user's: the trainer's data step never fills a channel set that is partly there.

A user's project (examples/regression/trainer, which has a data step of its own) with their own train/ and an
empty validation/: every command that reads the channels (make train, plan, tune, upload; locally and ENV=prod)
refuses the empty channel in one line naming its folder and the fix, before anything runs, and writes nothing
into DATA_DIR. The data step runs only when DATA_DIR holds nothing yet.
"""

import os
import subprocess

import pytest
from conftest import CHECKOUT, copy_repo, tool_venv
from emulator import settings

from sagemake.cli import UserError

USER_ROWS = "age,bmi,target\n0.1,0.2,150\n0.3,0.4,75\n"
EMPTY = ("sagemake: data channel 'validation' is empty: put its files in data/validation/ or remove the folder "
         "(SageMaker refuses a channel with no files)")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    own = CHECKOUT / "examples/regression/trainer"
    return copy_repo(tmp_path_factory.mktemp("channels") / "my project", trainer=own)


@pytest.fixture
def data(repo):
    """DATA_DIR as the user left it: their own train/, and a validation/ they have not filled yet."""
    folder = repo / "data"
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    (folder / "train").mkdir(parents=True)
    (folder / "validation").mkdir()
    (folder / "train" / "mine.csv").write_text(USER_ROWS)
    return folder


def make(repo, *args, **env):
    """make in the copy with this checkout's virtualenv (its stamps taken as old enough: never set up again), no AWS
    credentials and no engine: a refusal must come before either is asked."""
    venv = tool_venv()
    keep = ["-o", f"{venv}/.installed", "-o", f"{venv}/.installed-dev"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(["make", "-s", *keep, *args], cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**environ, "VENV": venv, "LOCAL_RUNTIME": "process", "AWS_EC2_METADATA_DISABLED": "true",
                               **env})


def contents(folder):
    return sorted((p.relative_to(folder).as_posix(), p.is_file() and p.read_bytes()) for p in folder.rglob("*"))


PROD = {"ENV": "prod", **settings()}


@pytest.mark.parametrize("target, env", [
    ("train", {}), ("plan", {}), ("tune", {"TUNE_RANGES": "alpha=0.1:1"}),
    ("train", PROD), ("plan", PROD), ("upload", PROD), ("tune", {**PROD, "TUNE_RANGES": "alpha=0.1:1"}),
], ids=["train", "plan", "tune", "train-prod", "plan-prod", "upload-prod", "tune-prod"])
def test_an_empty_channel_is_refused_in_one_line_and_never_filled_by_the_data_step(repo, data, target, env):
    before = contents(data)
    result = make(repo, target, **env)
    assert result.returncode != 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("sagemake:")]
    assert lines == [EMPTY], result.stderr
    assert "data step" not in result.stderr and "data: running" not in result.stderr
    assert contents(data) == before  # the user's train/ as it was, validation/ still empty


def test_a_channel_set_partly_there_is_never_completed_by_the_data_step(repo, data):
    (data / "validation").rmdir()
    result = make(repo, "train", "CHANNELS=train validation")
    assert result.returncode != 0
    assert "sagemake: data channel 'validation' is missing: create data/validation/" in result.stderr
    assert "data step" not in result.stderr
    assert sorted(p.name for p in data.iterdir()) == ["train"]
    assert [p.name for p in (data / "train").iterdir()] == ["mine.csv"]


def test_a_file_in_data_dir_is_the_users_data_too(repo, data):
    subprocess.run(["rm", "-rf", str(data / "train"), str(data / "validation")], check=True)
    (data / "rows.csv").write_text(USER_ROWS)
    result = make(repo, "train")
    assert result.returncode != 0
    assert "sagemake: no data channels: put one folder per channel in data/" in result.stderr
    assert "data step" not in result.stderr
    assert sorted(p.name for p in data.iterdir()) == ["rows.csv"]


def test_the_data_step_runs_only_when_data_dir_holds_nothing_yet(repo, data, monkeypatch):
    from sagemake import job_python as channels
    from sagemake.config import resolve

    ran = []
    monkeypatch.setattr(channels, "data_step", lambda config: ran.append(config) or {})
    config = resolve(root=repo, environ={})
    with pytest.raises(UserError, match="data channel 'validation' is empty"):
        channels.ensure_channels(config)
    subprocess.run(["rm", "-rf", str(data)], check=True)
    assert channels.ensure_channels(config) == {} and len(ran) == 1  # absent
    data.mkdir()
    (data / ".DS_Store").write_text("")  # a hidden file is nobody's data
    assert channels.ensure_channels(config) == {} and len(ran) == 2
