"""The example model end to end through the local executor, then fetched with its manifest."""

import hashlib
import json
import os
import re
import signal
import tarfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, in_process, sagemake

from sagemake import sourcedir
from sagemake.archive import pack, tree
from sagemake.cli import UserError
from sagemake.config import Config, resolve
from sagemake.executors.local.executor import LocalExecutor
from sagemake.jobs.training import plan
from sagemake.models import fetch as fetch_model


@pytest.fixture
def config(tmp_path, example_data):
    return resolve(root=ROOT, environ={"DATA_DIR": str(example_data), "HP": "n_estimators=25",
                                       "JOBS_DIR": str(tmp_path / "jobs"), "MODELS_DIR": str(tmp_path / "models")})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, example_data) -> tuple[Path, str]:
    """One job of the example, trained once for the tests that only fetch it: (JOBS_DIR, its name)."""
    jobs = tmp_path_factory.mktemp("jobs")
    name, _ = train(resolve(root=ROOT, environ={"DATA_DIR": str(example_data), "HP": "n_estimators=25",
                                                "JOBS_DIR": str(jobs)}))
    return jobs, name


@pytest.fixture
def job(trained, tmp_path, example_data) -> tuple[Config, str]:
    """(config, name) of that job, with MODELS_DIR of this test's own; its model.tar.gz is put back afterwards."""
    jobs, name = trained
    archive = jobs / name / "output/model.tar.gz"
    original = archive.read_bytes()
    yield resolve(root=ROOT, environ={"DATA_DIR": str(example_data), "HP": "n_estimators=25", "JOBS_DIR": str(jobs),
                                      "MODELS_DIR": str(tmp_path / "models")}), name
    archive.write_bytes(original)


def train(config):
    executor = LocalExecutor(config)
    request = plan(config, executor)
    record = executor.run(request, in_process())
    return request["TrainingJobName"], record


def fetch(config, name=None):
    return fetch_model(config, LocalExecutor(config), name)


def test_fetch_extracts_the_model_and_writes_the_manifest(config):
    name, record = train(config)
    assert record["TrainingJobStatus"] == "Completed"
    folder = fetch(config)  # the latest job
    assert folder == config.path("MODELS_DIR") / name
    assert sorted(p.name for p in folder.iterdir()) == [
        "baseline.json", "features.json", "manifest.json", "model.joblib", "output", "pr.png", "roc.png"]
    assert json.loads((folder / "output/metrics.json").read_text()) == {  # what the job wrote to output/data/
        m["MetricName"]: pytest.approx(m["Value"], abs=1e-6) for m in record["FinalMetricDataList"]}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["job_name"] == name and manifest["status"] == "Completed"
    assert manifest["env"] == "local" and manifest["executor"] == "local"
    assert manifest["project"] == "sagemake-example"
    assert manifest["image"] == record["AlgorithmSpecification"]["TrainingImage"]
    assert manifest["image"].startswith("sagemake-example:") and manifest["runtime"] == "process"
    assert manifest["hyperparameters"]["n_estimators"] == "25"
    assert set(manifest["metrics"]) >= {"validation:accuracy", "validation:f1", "validation:roc_auc"}
    assert manifest["metrics"]["validation:roc_auc"] > 0.95
    archive = config.path("JOBS_DIR") / name / "output/model.tar.gz"
    assert manifest["artifact"] == {"uri": record["ModelArtifacts"]["S3ModelArtifacts"],
                                    "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                                    "bytes": archive.stat().st_size}


def test_same_inputs_give_the_same_model_bytes(config):
    first, _ = train(config)
    time.sleep(0.01)
    second, _ = train(config)
    digests = {json.loads((fetch(config, name) / "manifest.json").read_text())["artifact"]["sha256"]
               for name in (first, second)}
    assert len(digests) == 1


def test_only_a_completed_job_is_fetched(config):
    name, _ = train(resolve(root=config.root, environ={**config.values, "HP": "target=nope"}))
    with pytest.raises(UserError, match=rf"job {name} is Failed: AlgorithmError: ValueError: label column 'nope'"):
        fetch(config, name)
    assert not (config.path("MODELS_DIR") / name).exists()


def test_a_missing_artefact_is_named(config):
    name, record = train(config)
    (config.path("JOBS_DIR") / name / "output/model.tar.gz").unlink()
    with pytest.raises(UserError, match=r"model.tar.gz is missing: run the job again"):
        fetch(config, name)


def test_refetch_replaces_the_folder_whole(config):
    name, _ = train(config)
    folder = fetch(config, name)
    (folder / "stale.txt").write_text("from before")
    fetch(config, name)
    assert not (folder / "stale.txt").exists()
    assert (folder / "model.joblib").is_file()


def test_script_mode_ships_the_code_beside_the_image(tmp_path, example_data):
    config = resolve(root=ROOT, environ={"DATA_DIR": str(example_data), "HP": "n_estimators=15",
                                         "CODE_MODE": "script", "JOBS_DIR": str(tmp_path / "jobs"),
                                         "MODELS_DIR": str(tmp_path / "models")})
    executor = LocalExecutor(config)
    request = plan(config, executor)
    hps = request["HyperParameters"]
    code = config.path("JOBS_DIR") / "code" / sourcedir.tag(ROOT) / "sourcedir.tar.gz"
    assert (hps["sagemaker_program"], hps["sagemaker_submit_directory"]) == ("train", code.as_uri())
    record = executor.run(request, in_process())
    assert record["TrainingJobStatus"] == "Completed", record.get("FailureReason")
    tree = config.path("JOBS_DIR") / request["TrainingJobName"] / "ml"
    assert sorted(p.name for p in (tree / "code").iterdir()) == ["sagemake", "train", "trainer"]
    sent = json.loads((tree / "input/config/hyperparameters.json").read_text())
    assert sent["sagemaker_submit_directory"] == f"{tree}/code"  # where the toolkit finds the code
    assert "hyperparameters: {\"n_estimators\":15" in (tree.parent / "train.log").read_text()
    assert fetch(config, request["TrainingJobName"]).joinpath("model.joblib").is_file()


def test_concurrent_fetches_of_one_job_all_end_with_the_whole_folder(config):
    import subprocess

    name, _ = train(config)
    fetch(config, name)
    env = {**config.values, "PATH": os.environ["PATH"], "JOB": name}
    fetchers = [subprocess.Popen([*sagemake(ROOT), "fetch", name], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(10)]
    for fetcher in fetchers:
        _, err = fetcher.communicate(timeout=120)
        assert fetcher.returncode == 0, err
    # They take turns: a fetch waits while another holds the lock on MODELS_DIR.
    import fcntl

    held = os.open(config.path("MODELS_DIR"), os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = subprocess.Popen([*sagemake(ROOT), "fetch", name], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert waiting.poll() is None
    finally:
        os.close(held)
    assert waiting.wait(timeout=60) == 0
    assert sorted(p.name for p in config.path("MODELS_DIR").iterdir()) == [name]  # no lock file, no scratch left
    folder = config.path("MODELS_DIR") / name
    assert sorted(p.name for p in folder.iterdir()) == [
        "baseline.json", "features.json", "manifest.json", "model.joblib", "output", "pr.png", "roc.png"]
    assert json.loads((folder / "manifest.json").read_text())["job_name"] == name
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".") and p.is_dir()] == []


def hostile(archive, kind, tmp_path):
    """Rewrite archive the way kind says; returns a file outside MODELS_DIR that a broken extraction would write."""
    target = tmp_path / "outside.txt"
    target.write_text("mine")
    if kind == "garbage":
        archive.write_bytes(b"not an archive at all" * 100)
    elif kind == "truncated":
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    else:
        payload = tmp_path / "payload"
        payload.write_text("x")
        with tarfile.open(archive, "w:gz") as tar:
            if kind == "outside":  # after a member inside, so that nothing but a refusal stops the one outside
                tar.add(payload, arcname="model.joblib")
                tar.add(payload, arcname="../../escaped.txt")
            else:  # a link out, then a file written through it
                link = tarfile.TarInfo("evil")
                link.type, link.linkname = tarfile.SYMTYPE, str(target)
                tar.addfile(link)
                tar.add(payload, arcname="evil")
    return target


def nothing_escaped(target, tmp_path):
    """Nothing outside MODELS_DIR was written: neither the file a link pointed at, nor a member named to land out."""
    assert target.read_text() == "mine"
    assert list(tmp_path.rglob("escaped.txt")) == []


@pytest.mark.parametrize("kind", ["garbage", "truncated", "outside", "symlink out"])
def test_a_bad_archive_is_one_line_and_keeps_the_previous_good_copy(job, kind, tmp_path):
    config, name = job
    good = fetch(config, name)
    before = sorted(p.name for p in good.iterdir())
    target = hostile(config.path("JOBS_DIR") / name / "output/model.tar.gz", kind, tmp_path)
    with pytest.raises(UserError, match=rf"^the archive of job {name} cannot be unpacked safely \(") as caught:
        fetch(config, name)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in good.iterdir()) == before  # the previous good copy, whole
    assert [p for p in good.parent.iterdir() if p.name.startswith(".") and p.is_dir()] == []  # nothing left behind
    nothing_escaped(target, tmp_path)


@pytest.mark.parametrize("kind", ["outside", "symlink out"])
def test_without_extraction_filters_a_bad_archive_is_refused_all_the_same(job, kind, tmp_path, monkeypatch):
    """Python before 3.10.12 / 3.11.4 has no tarfile extraction filters: the refusal is made by hand."""
    monkeypatch.delattr(tarfile, "data_filter")
    config, name = job
    good = fetch(config, name)  # a good archive unpacks by hand too
    before = sorted(p.name for p in good.iterdir())
    assert "model.joblib" in before
    target = hostile(config.path("JOBS_DIR") / name / "output/model.tar.gz", kind, tmp_path)
    member = "../../escaped.txt" if kind == "outside" else "evil"
    with pytest.raises(UserError, match=rf"refusing '{re.escape(member)}'") as caught:
        fetch(config, name)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in good.iterdir()) == before
    assert [p for p in good.parent.iterdir() if p.name.startswith(".") and p.is_dir()] == []
    nothing_escaped(target, tmp_path)


@pytest.mark.parametrize("own", ["manifest.json", "output/metrics.json", "baseline.json", "capture/a.jsonl"])
def test_a_model_archive_holding_its_own_manifest_or_output_is_refused(job, own, tmp_path):
    """The manifest, output/, the baseline and capture/ are what sagemake keeps beside the model: a model archive with
    its own is refused, not overwritten or mixed with the job's."""
    config, name = job
    good = fetch(config, name)
    manifest = (good / "manifest.json").read_text()
    archive = config.path("JOBS_DIR") / name / "output/model.tar.gz"
    model = tmp_path / "model"
    with tarfile.open(archive) as tar:
        tar.extractall(model, filter="data")
    (model / own).parent.mkdir(exist_ok=True)
    (model / own).write_text("{}\n")  # what a trainer writing its own manifest.json or output/ leaves in model_dir
    pack(tree(model), archive)
    with pytest.raises(UserError, match=rf"^the model archive of job {name} holds its own {own.split('/')[0]}, a "
                                        r"name sagemake keeps beside a model \(manifest.json, output, baseline.json, "
                                        r"capture, drift\): rename it in your trainer$"):
        fetch(config, name)
    assert (good / "manifest.json").read_text() == manifest  # the previous good copy, whole
    assert [p for p in good.parent.iterdir() if p.name.startswith(".") and p.is_dir()] == []


def test_an_archive_that_unpacks_past_max_model_bytes_is_refused_before_it_fills_the_disk(job, tmp_path):
    """A decompression bomb (here 50 MB of zeros, a few kB packed): refused in one line at the member that passes
    MAX_MODEL_BYTES, before it is written; nothing is fetched and the previous good copy stays whole."""
    config, name = job
    good = fetch(config, name)
    before = sorted(p.name for p in good.iterdir())
    archive = config.path("JOBS_DIR") / name / "output/model.tar.gz"
    zeros = tmp_path / "zeros"
    with zeros.open("wb") as handle:
        handle.truncate(50_000_000)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(good / "model.joblib", arcname="model.joblib")
        tar.add(zeros, arcname="weights.bin")
    assert archive.stat().st_size < 1_000_000
    limited = resolve(root=ROOT, environ={**{k: config[k] for k in ("DATA_DIR", "HP", "JOBS_DIR", "MODELS_DIR")},
                                          "MAX_MODEL_BYTES": "10000000"})
    with pytest.raises(UserError, match=r"^model\.tar\.gz unpacks to more than 10,000,000 bytes \(MAX_MODEL_BYTES\): "
                                        "nothing was fetched; raise MAX_MODEL_BYTES if the model is that large$"):
        fetch(limited, name)
    assert sorted(p.name for p in good.iterdir()) == before
    assert [p for p in good.parent.iterdir() if p.name.startswith(".")] == []  # no scratch left, nothing half written
    assert not (good / "weights.bin").exists()
    assert fetch(config, name).joinpath("weights.bin").stat().st_size == 50_000_000  # the default: 100x, >= 1 GB


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("stage", ["download", "unpack", "swap"])
def test_a_signal_at_any_stage_of_a_fetch_leaves_one_whole_copy_and_no_scratch(job, monkeypatch, stage, signum):
    """Ctrl-C, SIGTERM or SIGHUP (a real signal, to this process) while the archive is fetched, unpacked or swapped
    in: the previous copy stays whole (or the new one, once the swap began), and no scratch folder is left."""
    import pathlib

    from sagemake import models
    from sagemake.cli import interrupted_by_signals

    config, name = job
    folder = fetch(config, name)
    (folder / "previous.txt").write_text("the copy fetched before")

    def signalled(function):
        def step(*args, **kwargs):
            done = function(*args, **kwargs)
            os.kill(os.getpid(), signum)
            return done
        return step

    if stage == "download":
        monkeypatch.setattr(LocalExecutor, "artifact", signalled(LocalExecutor.artifact))
    elif stage == "unpack":
        monkeypatch.setattr(models, "unpack", signalled(models.unpack))
    else:
        monkeypatch.setattr(pathlib.Path, "rename", signalled(pathlib.Path.rename))  # the signal between the renames
    # Ctrl-C as a terminal gives it, whatever this test process inherited (a run in the background ignores it).
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), interrupted_by_signals():
            fetch(config, name)
            time.sleep(5)  # a signal not taken at once would end this instead
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if ignored is None else ignored)
    monkeypatch.undo()
    assert [p.name for p in folder.parent.iterdir()] == [name]  # no .<job>.* scratch folder
    assert (folder / "model.joblib").is_file() and (folder / "manifest.json").is_file()
    assert (folder / "previous.txt").exists() == (stage != "swap")
