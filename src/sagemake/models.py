"""Fetched models: a finished job's model in MODELS_DIR/<job>/ with its provenance, and finding one again.

Writes MODELS_DIR/<job>/manifest.json: job, status, git commit (and whether
the tree was dirty), image, runtime, hyperparameters, metrics, each channel's
data, the job whose checkpoints it started from, and the artefact's sha256, so
a model file can always be traced to what made it. What the job wrote to
/opt/ml/output/data/ lands in MODELS_DIR/<job>/output/.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from sagemake.archive import sha256, unpack
from sagemake.cli import AwsError, UserError, held_signals, say
from sagemake.config import Config
from sagemake.contract import layout
from sagemake.jobs.endpoint import FETCHED, KEPT, MANIFEST, OUTPUT
from sagemake.jobs.training import CHECKPOINT_FROM_TAG, SAGEMAKE_IMAGE_TAG, final_metrics


def manifest(record: dict, tagged: dict, artifact: Path, executor) -> dict:
    uris = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in record.get("InputDataConfig", [])}
    channels = {}
    for channel, uri in uris.items():
        words = dict(word.split("=", 1) for word in tagged.get(f"data:{channel}", "").split() if "=" in word)
        channels[channel] = {"uri": uri, **{k: int(v) if v.isdigit() else v for k, v in words.items()}}
    return {
        "job_name": record["TrainingJobName"],
        "status": record["TrainingJobStatus"],
        "env": executor.config.env,
        "executor": executor.name,
        "project": tagged.get("project"),
        "git_sha": tagged.get("git-sha"),
        "git_dirty": tagged.get("git-dirty") == "true",
        **({"tuning_job": tagged["tuning"]} if "tuning" in tagged else {}),  # a trial of `make tune`
        # the job whose checkpoints it started from (CHECKPOINT_FROM)
        **({"checkpoint_from": tagged[CHECKPOINT_FROM_TAG]} if CHECKPOINT_FROM_TAG in tagged else {}),
        "image": record["AlgorithmSpecification"]["TrainingImage"],
        **({"sagemake_image": tagged[SAGEMAKE_IMAGE_TAG] == "true"} if SAGEMAKE_IMAGE_TAG in tagged else {}),
        "runtime": record.get("LocalRuntime", "sagemaker"),
        "created": record.get("CreationTime"),
        "ended": record.get("TrainingEndTime"),
        "training_seconds": record.get("TrainingTimeInSeconds"),
        "hyperparameters": record.get("HyperParameters", {}),
        "metrics": final_metrics(record),
        "data": channels,
        "artifact": {
            "uri": record["ModelArtifacts"]["S3ModelArtifacts"],
            "sha256": sha256(artifact),
            "bytes": artifact.stat().st_size,
        },
        "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **executor.provenance(record),
    }


def unpack_limit(config: Config, archive: Path) -> int:
    """MAX_MODEL_BYTES, or by default 100 times the archive (models compress a few times at most), at least 1 GB."""
    return config.int("MAX_MODEL_BYTES") or max(100 * archive.stat().st_size, 10**9)


def assemble(archive: Path, output: Path | None, folder: Path, job: str, limit: int | None = None) -> None:
    """The model (and the job's output data in output/) unpacked into folder, each archive at most limit bytes
    unpacked; a bad archive is one line."""
    try:
        unpack(archive, folder, f"unpack {archive.name}", limit)
        own = [name for name in FETCHED if (folder / name).exists()]
        if own:
            raise UserError(f"the model archive of job {job} holds its own {own[0]}, a name sagemake keeps beside "
                            f"a model ({', '.join(FETCHED)}): rename it in your trainer")
        if output:
            unpack(output, folder / OUTPUT, limit=limit)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:  # truncated, not gzip, a hostile member
        said = " ".join(str(err).split())[:200]
        raise UserError(f"the archive of job {job} cannot be unpacked safely ({type(err).__name__}: {said}): "
                        "nothing was fetched; run the job again, or look at its archive") from None
    for path in folder.rglob("*"):  # archives carry no real times (they are byte-reproducible)
        os.utime(path, follow_symlinks=False)


def fetch(config: Config, executor, name: str | None = None) -> Path:
    """Fetch the job's model (and its output data); returns MODELS_DIR/<job>/.

    Everything is put together in a scratch folder and swapped in whole, under a lock on MODELS_DIR: a fetch that
    fails leaves the previous good copy (or nothing), and fetches into one MODELS_DIR take turns."""
    name = name or latest_or_best(executor)
    record = executor.completed(name, "fetch")
    uri = record["ModelArtifacts"]["S3ModelArtifacts"]
    output_uri = record.get("OutputDataArtifacts") or uri.rsplit("/", 1)[0] + "/" + layout.OUTPUT_ARCHIVE
    destination = config.path("MODELS_DIR") / name
    destination.parent.mkdir(parents=True, exist_ok=True)
    with _locked(destination.parent), tempfile.TemporaryDirectory(dir=destination.parent,
                                                                   prefix=f".{name}.") as scratch:
        scratch = Path(scratch)
        artifact = executor.artifact(uri, scratch)
        output = _optional(executor, output_uri, scratch)
        assemble(artifact, output, scratch / "new", name, unpack_limit(config, artifact))
        details = manifest(record, executor.tags(name), artifact, executor)
        (scratch / "new" / MANIFEST).write_text(json.dumps(details, indent=2) + "\n")
        with held_signals():  # never the old copy gone and the new one not in place
            if destination.exists():
                for kept in KEPT:  # gathered since the last fetch (captured requests, drift reports): not lost
                    if (destination / kept).exists():
                        (destination / kept).rename(scratch / "new" / kept)
                destination.rename(scratch / "old")  # removed with the scratch folder
            (scratch / "new").rename(destination)
    say(f"model of {name} in {destination} (sha256 {details['artifact']['sha256'][:12]}...)")
    for metric, value in details["metrics"].items():
        print(f"  {metric:<22} {value:.4f}")
    from sagemake.baseline import profile_model

    profile_model(config, destination, details)
    return destination


def fetched(config: Config, name: str | None, executor: Callable[[], object]) -> tuple[Path, dict]:
    """MODELS_DIR/<job>/ and its manifest: the named job's, or the newest fetched there. When there is none, the
    one line names a command that fetches it only when the job can be fetched (it exists and Completed where ENV
    runs jobs); else it says why not, as fetch would."""
    models = config.path("MODELS_DIR")
    if name is None:
        found = [(json.loads(m.read_text()).get("created") or "", m.parent) for m in models.glob(f"*/{MANIFEST}")
                 if not m.parent.name.startswith(".")]  # .<job>.*: a fetch under way
        if found:
            folder = max(found)[1]
            return folder, json.loads((folder / MANIFEST).read_text())
    elif (models / name / MANIFEST).is_file():
        return models / name, json.loads((models / name / MANIFEST).read_text())
    executor = executor()  # asked only now: where jobs run, to say whether a fetch would work
    where = f"no fetched model{f' of job {name}' if name else ''} in {config['MODELS_DIR']}/"

    def asked(question):  # no job to fetch, or none with a model: a fetch would fail too, so none is suggested
        try:
            return question()
        except AwsError:
            raise
        except UserError as err:
            raise UserError(f"{where}, and {err}") from None

    job = name or asked(lambda: latest_or_best(executor))
    asked(lambda: executor.completed(job, "serve"))
    raise UserError(f"{where}: run `make fetch{executor.env_flag()}{f' JOB={name}' if name else ''}`"
                    f"{'' if name else f' (the latest job, {job})'}")


def latest_or_best(executor) -> str:
    """The latest job; when it is a trial of a tuning run, that run's best trial (the one `make tune` fetched)."""
    from sagemake.jobs.tuning import TUNING_TAG

    name = executor.latest()
    run = executor.tags(name).get(TUNING_TAG)
    if run:
        best = (executor.tuning().record(run).get("BestTrainingJob") or {}).get("TrainingJobName")
        if best and best != name:
            say(f"fetch: the latest job {name} is a trial of tuning run {run}: fetching its best trial {best} "
                f"(JOB={name} fetches that one)")
            return best
    return name


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on the folder itself: no lock file among the models."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _optional(executor, uri: str, scratch: Path) -> Path | None:
    """output.tar.gz, which a job that wrote nothing to output/data/ may not have."""
    try:
        return executor.artifact(uri, scratch)
    except AwsError:
        raise
    except UserError:
        return None


