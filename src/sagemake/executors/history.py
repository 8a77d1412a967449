"""What this project's jobs were, read from sagemake's own records alone (no tracking server needed): each training
job's status, times and bill, the settings that shaped it, its hyperparameters, data, image and metrics (with their
series); each tuning run's trials. `make report` draws it; `make compare` sets jobs side by side.

Every fact comes through the executor (DescribeTrainingJob records, tags, metric series; locally the job folders,
on SageMaker its API and CloudWatch) and, for a fetched model, its manifest in MODELS_DIR.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sagemake import jsonfile
from sagemake.config import Config
from sagemake.executors.interface import Executor
from sagemake.jobs.endpoint import DRIFT, MANIFEST
from sagemake.jobs.training import CHECKPOINT_FROM_TAG, duration, final_metrics
from sagemake.jobs.tuning import TUNING_TAG
from sagemake.pricing import Entry, Prices, ledger_entry

ASKERS = 8  # jobs asked at once: on SageMaker each is a few calls
DATA_TAG = "data:"  # a job's tag per channel: data:<channel> = "digest=... files=... bytes=..."


@dataclass
class Job:
    """One training job as its records tell it."""

    name: str
    record: dict
    tags: dict[str, str]
    bill: Entry
    manifest: dict | None = None  # MODELS_DIR/<job>/manifest.json once its model was fetched
    series: dict[str, list[dict]] = field(default_factory=dict)
    drift: dict | None = None  # the latest `make drift` of its model (MODELS_DIR/<job>/drift/latest.json)

    @property
    def status(self) -> str:
        return self.record["TrainingJobStatus"]

    @property
    def created(self) -> str:
        return self.record.get("CreationTime", "")

    @property
    def seconds(self) -> int:
        return duration(self.record)

    @property
    def metrics(self) -> dict[str, float]:
        return final_metrics(self.record)

    @property
    def commit(self) -> str:
        """The git commit the job was made from, `+dirty` when the tree had uncommitted changes."""
        sha = self.tags.get("git-sha", "?")
        return sha + ("+dirty" if self.tags.get("git-dirty") == "true" else "")

    @property
    def tuning(self) -> str | None:
        return self.tags.get(TUNING_TAG)

    @property
    def image(self) -> str:
        return self.record["AlgorithmSpecification"]["TrainingImage"]

    @property
    def image_digest(self) -> str | None:
        return (self.manifest or {}).get("image_digest")

    @property
    def model_sha256(self) -> str | None:
        return ((self.manifest or {}).get("artifact") or {}).get("sha256")

    @property
    def data(self) -> dict[str, dict[str, str]]:
        """Each channel's data as the job's tags name it: {channel: {digest, files, bytes}}."""
        return {key[len(DATA_TAG):]: dict(word.split("=", 1) for word in value.split() if "=" in word)
                for key, value in sorted(self.tags.items()) if key.startswith(DATA_TAG)}

    @property
    def settings(self) -> dict[str, str]:
        """The settings that shaped the job, as its request carried them."""
        record = self.record
        resources, stopping = record.get("ResourceConfig", {}), record.get("StoppingCondition", {})
        spec = record["AlgorithmSpecification"]
        found = {
            "env": self.tags.get("env", ""),
            "runtime": record.get("LocalRuntime", "sagemaker"),
            "instance type": resources.get("InstanceType", ""),
            "instance count": str(resources.get("InstanceCount", "")),
            "volume GB": str(resources.get("VolumeSizeInGB", "")),
            "max runtime s": str(stopping.get("MaxRuntimeInSeconds", "")),
            "spot": "yes" if record.get("EnableManagedSpotTraining") else "no",
            "max wait s": str(stopping.get("MaxWaitTimeInSeconds", "-")),
            "keep alive s": str(resources.get("KeepAlivePeriodInSeconds", "-")),
            "checkpoint from": self.tags.get(CHECKPOINT_FROM_TAG, "-"),
            "input modes": " ".join(f"{c['ChannelName']}={c.get('InputMode', 'File')}"
                                    for c in record.get("InputDataConfig", [])),
            "distribution": " ".join(
                f"{c['ChannelName']}={c['DataSource']['S3DataSource'].get('S3DataDistributionType', 'FullyReplicated')}"
                for c in record.get("InputDataConfig", [])),
            "entrypoint": " ".join(spec.get("ContainerEntrypoint", [])) or "-",
            "arguments": " ".join(spec.get("ContainerArguments", [])) or "-",
            "job env": " ".join(f"{k}={v}" for k, v in sorted(record.get("Environment", {}).items())) or "-",
        }
        if self.tuning:
            found["tuning run"] = self.tuning
        return found


def manifest(config: Config, name: str) -> dict | None:
    """The manifest `make fetch` wrote for the job's model, if it was fetched into MODELS_DIR."""
    found = jsonfile.read(config.path("MODELS_DIR") / name / MANIFEST, None)
    return found if isinstance(found, dict) else None


LATEST_DRIFT = "latest.json"  # MODELS_DIR/<job>/drift/latest.json: what the latest `make drift` found


def drift(config: Config, name: str) -> dict | None:
    """The latest `make drift` of the job's model, with the path of its HTML report; None when there was none."""
    folder = config.path("MODELS_DIR") / name / DRIFT
    found = jsonfile.read(folder / LATEST_DRIFT, None)
    return {**found, "path": str(folder / found["report"])} if isinstance(found, dict) and "report" in found else None


def job(executor: Executor, name: str, prices: Prices, series: bool = False) -> Job:
    """One job's facts; a UserError naming the job when there is none of that name (`make jobs` lists them)."""
    record = executor.describe(name)
    found = Job(name, record, executor.tags(name), ledger_entry(record, prices), manifest(executor.config, name),
                drift=drift(executor.config, name))
    if series:
        found.series = executor.metric_series(name)
    return found


def jobs(executor: Executor, limit: int, prices: Prices, series: bool = False) -> list[Job]:
    """This project's newest jobs (trials included), newest first, asked ASKERS at a time."""
    names = executor.names(limit)
    pool = ThreadPoolExecutor(ASKERS)
    try:
        return list(pool.map(lambda name: job(executor, name, prices, series), names))
    finally:  # an AWS error or Ctrl-C: the jobs not asked yet never are
        pool.shutdown(cancel_futures=True)


def tunings(executor: Executor, limit: int) -> list[dict]:
    """This project's newest tuning runs' records (DescribeHyperParameterTuningJob with the trials), newest first."""
    place = executor.tuning()
    return [place.record(name) for name in place.names(limit)]


def cost_per_day(found: list[Job]) -> list[tuple[str, int, float, int]]:
    """(day, jobs, $, jobs whose price is unknown) for each UTC day a job was created on, oldest first."""
    days: dict[str, list] = {}
    for one in found:
        if one.bill.billable is None:  # nothing billed yet (running, or ended before training)
            continue
        day = days.setdefault(one.created[:10], [0, 0.0, 0])
        day[0] += 1
        day[1] += one.bill.cost or 0
        day[2] += one.bill.cost is None
    return [(day, count, spent, unknown) for day, (count, spent, unknown) in sorted(days.items())]
