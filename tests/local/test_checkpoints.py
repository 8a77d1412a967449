"""Checkpoints outlive jobs, locally: a stopped job seeds a new one (CHECKPOINT_FROM), which carries on the fixture
trainer's real training where the first left it, even after `make clean-jobs` removed the first job's folder."""

import json
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import ROOT, sagemake, sigint_as_a_terminal_gives_it, tool_venv

from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.executors.local.executor import LocalExecutor

HP = "n_estimators=1000 learning_rate=0.01"  # 20 steps of 50 rounds: saved after the first, then every 5 s


def environment(tmp_path, example_data, **extra) -> dict:
    return {**os.environ, "DATA_DIR": str(example_data), "JOBS_DIR": str(tmp_path / "jobs"),
            "MODELS_DIR": str(tmp_path / "models"), "LOCAL_RUNTIME": "process", "STOP_GRACE_SECONDS": "30",
            "HP": HP, **extra}


def sagemake_run(tmp_path, example_data, *arguments, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([*sagemake(ROOT), *arguments], env=environment(tmp_path, example_data, **extra),
                          capture_output=True, text=True, timeout=900)


def job_in(text: str, tmp_path) -> str:
    """The one job of JOBS_DIR whose name the output says."""
    (name,) = [p.name for p in (tmp_path / "jobs").iterdir() if (p / "job.json").is_file() and p.name in text]
    return name


def stopped_after_its_first_checkpoint(tmp_path, example_data) -> str:
    """A job stopped with Ctrl-C once it has saved a checkpoint (however fast this machine trains): its name."""
    places = tmp_path / "jobs" / "checkpoints"
    process = subprocess.Popen([*sagemake(ROOT), "train"], env=environment(tmp_path, example_data),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=sigint_as_a_terminal_gives_it)
    try:
        deadline = time.monotonic() + 600  # a guard against a hang, not a measure
        while not list(places.glob("*/checkpoint.joblib")) and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint saved"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=600)
    finally:
        process.kill()
    assert process.returncode == 130, err
    (name,) = [p.name for p in places.iterdir()]
    assert json.loads((tmp_path / "jobs" / name / "job.json").read_text())["TrainingJobStatus"] == "Stopped"
    return name


def test_a_stopped_job_seeds_a_new_one_which_carries_on_its_training_after_clean_jobs(tmp_path, example_data):
    first = stopped_after_its_first_checkpoint(tmp_path, example_data)
    saved = (tmp_path / "jobs/checkpoints" / first / "checkpoint.joblib").read_bytes()

    plain = sagemake_run(tmp_path, example_data, "train")  # the same training, never interrupted
    assert plain.returncode == 0, plain.stderr
    plain_job = job_in(plain.stderr, tmp_path)

    cleaned = sagemake_run(tmp_path, example_data, "clean-jobs", "1", "")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "kept the checkpoints of 1 job(s) gone" in cleaned.stderr
    assert not (tmp_path / "jobs" / first).exists()  # its folder is gone, its checkpoints are not

    seeded = sagemake_run(tmp_path, example_data, "train", CHECKPOINT_FROM=first)
    assert seeded.returncode == 0, seeded.stderr
    seeded_job = job_in(seeded.stderr.replace(first, ""), tmp_path)
    assert f"job {seeded_job}: starts from the checkpoints of job {first}: 1 file(s) copied" in seeded.stderr
    log = (tmp_path / "jobs" / seeded_job / "train.log").read_text()
    resumed = re.search(r"resumed from the checkpoint at round (\d+) of 1000", log)
    assert resumed and int(resumed.group(1)) >= 50  # it carried on where the first job stopped
    manifests = {name: json.loads((tmp_path / "models" / name / "manifest.json").read_text())
                 for name in (plain_job, seeded_job)}
    assert manifests[seeded_job]["checkpoint_from"] == first and "checkpoint_from" not in manifests[plain_job]
    assert manifests[seeded_job]["metrics"] == manifests[plain_job]["metrics"]  # the same model, to the last digit
    request = json.loads((tmp_path / "jobs" / seeded_job / "request.json").read_text())
    assert {"Key": "sagemake:checkpoint-from", "Value": first} in request["Tags"]
    assert request["CheckpointConfig"]["S3Uri"] == (tmp_path / "jobs/checkpoints" / seeded_job).as_uri()
    assert (tmp_path / "jobs/checkpoints" / first / "checkpoint.joblib").read_bytes() == saved  # the first's kept

    # Asked, clean-jobs takes the checkpoints of the jobs gone too; a job that names one of them is refused at once.
    deleted = sagemake_run(tmp_path, example_data, "clean-jobs", "1", "delete")
    assert deleted.returncode == 0, deleted.stderr
    assert "removed the checkpoints of 2 job(s) gone" in deleted.stderr
    assert sorted(p.name for p in (tmp_path / "jobs/checkpoints").iterdir()) == [seeded_job]
    before = sorted(p.name for p in (tmp_path / "jobs").iterdir())
    refused = sagemake_run(tmp_path, example_data, "train", CHECKPOINT_FROM=first)
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1] == (f"sagemake: CHECKPOINT_FROM={first}: no local job named '{first}' in "
                                               f"{tmp_path / 'jobs'}/, nor checkpoints of one: `make jobs` lists them")
    assert "build:" not in refused.stderr  # refused with the request, before anything else
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == before  # nothing ran, nothing was made


def test_make_clean_jobs_passes_checkpoints_on_and_refuses_another_choice(tmp_path, example_data):
    def make(*words):
        return subprocess.run(["make", "-s", "clean-jobs", *words], cwd=ROOT, capture_output=True, text=True,
                              env={**environment(tmp_path, example_data), "VENV": tool_venv()}, timeout=300)

    refused = make("CHECKPOINTS=purge")
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == ("sagemake: CHECKPOINTS='purge': give keep (the default: removed jobs' "
                                              "checkpoints stay) or delete (they go with their jobs)")
    place = tmp_path / "jobs/checkpoints/p-1a2b3c4-261207-101500-000aaaaa"  # a job's, its folder gone
    place.mkdir(parents=True)
    (place / "state.bin").write_bytes(b"state")
    kept = make("KEEP=2")
    assert kept.returncode == 0 and "kept the checkpoints of 1 job(s) gone" in kept.stderr and place.is_dir()
    deleted = make("KEEP=2", "CHECKPOINTS=delete")
    assert deleted.returncode == 0 and "removed the checkpoints of 1 job(s) gone" in deleted.stderr
    assert not place.exists()


def test_a_newer_checkpoint_of_the_same_size_is_refused_not_overwritten(tmp_path):
    """A place holding a file of the same path and size as the source's but another content (a fixed-size torch
    checkpoint of a newer epoch) holds other checkpoints: refused, left as it was."""
    places = tmp_path / "jobs" / "checkpoints"
    for job, content in (("first", "epoch-03"), ("second", "epoch-09")):
        (places / job).mkdir(parents=True)
        (places / job / "model.pt").write_text(content)
    config = resolve(root=ROOT, environ={"JOBS_DIR": str(tmp_path / "jobs"), "LOCAL_RUNTIME": "process"})
    request = {"TrainingJobName": "third", "CheckpointConfig": {"S3Uri": (places / "second").as_uri()},
               "Tags": [{"Key": "sagemake:checkpoint-from", "Value": "first"}]}
    with pytest.raises(UserError, match=r"^CHECKPOINT_FROM=first: .*/second, where the new job keeps its checkpoints, "
                                        r"holds 1 other file\(s\) already"):
        LocalExecutor(config).start_checkpoints(request)
    assert (places / "second" / "model.pt").read_text() == "epoch-09"
    (places / "second" / "model.pt").write_text("epoch-03")  # a copy cut short is copied into again
    LocalExecutor(config).start_checkpoints(request)
    assert (places / "second" / "model.pt").read_text() == "epoch-03"
