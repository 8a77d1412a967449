"""Downloads a finished job's model into MODELS_DIR/<job>/ with its provenance.

Usage: scripts/fetch_model.py [JOB]   (default: the latest job)

Writes MODELS_DIR/<job>/manifest.json: job, status, git commit (and whether
the tree was dirty), image, runtime, hyperparameters, metrics, and the
artefact's sha256, so a model file can always be traced to what made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from sagemake.archive import unpack
from sagemake.cli import UserError, run, say
from sagemake.config import Config, resolve
from sagemake.local import LocalJobs, uri_path

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metrics(record: dict) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in record.get("FinalMetricDataList", [])}


def manifest(record: dict, tagged: dict, artifact: Path, config: Config) -> dict:
    details = {
        "job_name": record["TrainingJobName"],
        "status": record["TrainingJobStatus"],
        "env": config.env,
        "project": tagged.get("project"),
        "git_sha": tagged.get("git-sha"),
        "git_dirty": tagged.get("git-dirty") == "true",
        "image": record["AlgorithmSpecification"]["TrainingImage"],
        "runtime": record.get("LocalRuntime", "sagemaker"),
        "created": record.get("CreationTime"),
        "ended": record.get("TrainingEndTime"),
        "training_seconds": record.get("TrainingTimeInSeconds"),
        "hyperparameters": record.get("HyperParameters", {}),
        "metrics": metrics(record),
        "artifact": {
            "uri": record["ModelArtifacts"]["S3ModelArtifacts"],
            "sha256": sha256(artifact),
            "bytes": artifact.stat().st_size,
        },
        "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if not config.local:
        details["region"] = config["AWS_REGION"]
        details["billable_seconds"] = record.get("BillableTimeInSeconds")
    return details


def jobs_for(config: Config):
    """The jobs of ENV: LocalJobs for local, SageMakerJobs for AWS."""
    if config.local:
        return LocalJobs(config.path("JOBS_DIR"))
    from sagemake.aws import SageMakerJobs

    return SageMakerJobs(config)


def extract(archive: Path, destination: Path) -> None:
    """Unpack into a fresh folder beside the destination, then swap it in: never half a model."""
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    unpack(archive, partial)
    for path in partial.rglob("*"):  # archives carry no real times (they are byte-reproducible)
        os.utime(path)
    if (partial / MANIFEST).exists():
        shutil.rmtree(partial)
        raise UserError(f"the model archive holds its own {MANIFEST}: rename that file in your trainer")
    shutil.rmtree(destination, ignore_errors=True)
    partial.rename(destination)


def fetch(config: Config, name: str | None = None) -> Path:
    """Fetch the job's model; returns MODELS_DIR/<job>/."""
    jobs = jobs_for(config)
    name = name or jobs.latest()
    record = jobs.describe(name)
    status = record["TrainingJobStatus"]
    if status != "Completed":
        why = f": {record['FailureReason']}" if record.get("FailureReason") else ""
        raise UserError(f"job {name} is {status}{why}; only a Completed job has a model to fetch "
                        f"(`make logs ENV={config.env} JOB={name}`)")
    if "ModelArtifacts" not in record:
        raise UserError(f"job {name} has no ModelArtifacts in its record: nothing to fetch")
    uri = record["ModelArtifacts"]["S3ModelArtifacts"]
    destination = config.path("MODELS_DIR") / name
    if config.local:
        artifact = uri_path(uri)
        if not artifact.is_file():
            raise UserError(f"the model of job {name} is missing ({artifact}): run `make train` again")
        extract(artifact, destination)
        details = manifest(record, jobs.tags(name), artifact, config)
    else:
        from sagemake.aws import download, image_digest

        download_to = destination.with_name(f".{name}.model.tar.gz")
        download(jobs.aws, uri, download_to)
        try:
            extract(download_to, destination)
            details = manifest(record, jobs.tags(name), download_to, config)
        finally:
            download_to.unlink(missing_ok=True)
        if not config["IMAGE_REGISTRY"]:
            details["image_digest"] = image_digest(jobs.aws, details["image"])
    (destination / MANIFEST).write_text(json.dumps(details, indent=2) + "\n")
    say(f"model of {name} in {destination} (sha256 {details['artifact']['sha256'][:12]}...)")
    for metric, value in details["metrics"].items():
        print(f"  {metric:<22} {value:.4f}")
    return destination


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: fetch_model.py [JOB]")
    fetch(resolve(), argv[0] if argv else None)
    return 0


if __name__ == "__main__":
    run(main, "fetch_model")
