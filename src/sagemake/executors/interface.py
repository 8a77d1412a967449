"""The one interface of every place a job runs (for_config in __init__.py chooses the place), for every kind.

Both executors answer in SageMaker's own shapes: a job is a Create* request in and a
Describe* record out, with times as ISO 8601 strings. Training is the
executor's own; each other kind is reached through it (processing(), tuning(),
transforms(), endpoints()), as the SageMaker SDK's local mode keeps one small
class per kind behind one client.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from sagemake.cli import UserError, say
from sagemake.config import DEFAULT_ENV, Config
from sagemake.image import tag
from sagemake.jobs import reason_line
from sagemake.jobs.training import CHECKPOINT_FROM_TAG
from sagemake.jobs.training import tags as job_tags


class Executor(ABC):
    """A place that runs jobs and answers for them: training jobs are its own, every other kind is one small class of
    this place's (processing(), tuning(), transforms(), endpoints())."""

    name: str  # "local" or "sagemaker": recorded in manifests, never branched on

    def __init__(self, config: Config):
        self.config = config
        self._image: str | None = None

    # --- where things are: the request builders ask, and never branch on ENV ---
    def image(self) -> str:
        """The training image's URI: TRAINING_IMAGE as it is, or where an image with the content tag lives
        (worked out once: the tag hashes the whole build context)."""
        if self._image is None:
            self._image = self.config["TRAINING_IMAGE"] or self.image_for(tag(self.config))
        return self._image

    @abstractmethod
    def image_for(self, tag: str) -> str:
        """Where jobs take an image with this content tag from."""

    @abstractmethod
    def channel_uri(self, channel: str) -> str:
        """Where the job reads a channel from."""

    @abstractmethod
    def output_uri(self) -> str:
        """S3OutputPath: the job's artefacts go to <this>/<job>/output/."""

    @abstractmethod
    def code_uri(self, tag: str) -> str:
        """Script mode: where sourcedir.tar.gz named by tag will be."""

    @abstractmethod
    def checkpoint_uri(self, job: str, own: bool = False) -> str | None:
        """CheckpointConfig.S3Uri: where the job's /opt/ml/checkpoints is saved while it runs, and what it finds there
        when it starts (again, after a spot interruption); None when jobs here keep none. own: a place of the job's
        own even where jobs share one (a tuning run's, whose trials run side by side)."""

    @abstractmethod
    def checkpoints_of(self, job: str) -> str:
        """Where a job that ended kept its checkpoints (CHECKPOINT_FROM=<job>): a UserError with the fix when there is
        no such job, it still runs, or it kept none."""

    @abstractmethod
    def checkpoint_files(self, uri: str) -> dict[str, str]:
        """The files a checkpoint place holds, each path below it with a digest of its content (none when it does not
        exist): two files of the same size but another content (a newer epoch) differ."""

    @abstractmethod
    def copy_checkpoints(self, source: str, into: str) -> int:
        """Every file of one checkpoint place into another, by its path below it; the count copied."""

    def start_checkpoints(self, request: dict, copy: bool = True) -> None:
        """What the job finds in /opt/ml/checkpoints when it starts: what its CheckpointConfig's place holds, with
        CHECKPOINT_FROM (the request's tag) that job's checkpoints copied there first, unless that is where they are
        already. A place that holds other checkpoints is refused, never mixed (one that holds some of that job's, a
        copy cut short, is copied into again). copy=False checks alone, before anything is spent (`make plan`, and
        `make train` before the image and the data)."""
        into = request.get("CheckpointConfig", {}).get("S3Uri")
        if into is None:
            return
        name, source_job = request["TrainingJobName"], job_tags(request).get(CHECKPOINT_FROM_TAG)
        held = self.checkpoint_files(into)
        if source_job is None:
            if held and copy:
                say(f"job {name}: {into} holds {len(held)} checkpoint file(s): the job starts from them")
            return
        source = self.checkpoints_of(source_job)
        if source.rstrip("/") == into.rstrip("/"):
            if copy:
                say(f"job {name}: starts from the checkpoints of job {source_job}, at {into} already")
            return
        if held and not held.items() <= self.checkpoint_files(source).items():
            raise UserError(f"CHECKPOINT_FROM={source_job}: {into}, where the new job keeps its checkpoints, holds "
                            f"{len(held)} other file(s) already, which it would start from too: set CHECKPOINT_S3_URI "
                            f"to an empty place, or to {source} to carry on there")
        if copy:
            count = self.copy_checkpoints(source, into)
            say(f"job {name}: starts from the checkpoints of job {source_job}: {count} file(s) copied from {source} "
                f"to {into}")

    # --- before a job ---
    @abstractmethod
    def ensure_image(self) -> None:
        """Make the image available where jobs run (build, push) unless it is there already."""

    @abstractmethod
    def sync_data(self) -> None:
        """Make every channel's data available where jobs read it."""

    @abstractmethod
    def prices(self):
        """SageMaker's prices where these jobs run (pricing.Prices); locally, what they would have cost there."""

    def checks(self) -> list[tuple[str, object]]:
        """(name, function) pairs for `make doctor`; a function returns a detail or raises UserError."""
        return []

    # --- jobs ---
    @abstractmethod
    def run(self, request: dict) -> dict:
        """Start the job, follow it to its end with its log, return its final record.
        Ctrl-C raises KeyboardInterrupt after saying what became of the job."""

    @abstractmethod
    def describe(self, name: str) -> dict:
        """DescribeTrainingJob's answer, or a UserError naming the job and how to list them."""

    @abstractmethod
    def tags(self, name: str) -> dict[str, str]:
        """This tool's tags on the job, without their prefix."""

    @abstractmethod
    def names(self, limit: int = 10) -> list[str]:
        """This project's jobs, newest first."""

    @abstractmethod
    def metric_series(self, name: str) -> dict[str, list[dict]]:
        """Every declared metric the job printed, as its series: {name: [{"Step", "Value", "Timestamp"}]}, in the
        order printed (jobs.training.metric_points)."""

    def completed(self, name: str, purpose: str) -> dict:
        """The job's record; only a Completed job has a model to fetch, serve or deploy (purpose says which)."""
        record = self.describe(name)
        status = record["TrainingJobStatus"]
        if status != "Completed":
            why = f": {reason_line(record['FailureReason'])}" if record.get("FailureReason") else ""
            raise UserError(f"job {name} is {status}{why}; only a Completed job has a model to {purpose} "
                            f"(`make logs{self.env_flag()} JOB={name}`)")
        if "ModelArtifacts" not in record:
            raise UserError(f"job {name} has no ModelArtifacts in its record: nothing to {purpose}")
        return record

    def latest(self) -> str:
        names = self.names(1)
        if not names:
            raise UserError(f"no jobs of {self.config['PROJECT_NAME']} yet ({self.where()}): "
                            f"run `make train{self.env_flag()}` first")
        return names[0]

    @abstractmethod
    def print_log(self, name: str, label: str = "") -> bool:
        """The job's log, each line after label (a tuning trial's, where several trials' logs are shown); while it
        runs, keep following it. Whether there was any to print (a job that ended before it wrote a line has
        none)."""

    @abstractmethod
    def stop(self, name: str | None) -> None:
        """Ask a running job to stop (None: JOB was not given)."""

    def prune(self, keep: int, checkpoints: bool = False) -> None:
        """Remove the folders of all but the `keep` newest jobs, never a running one, and what only they used; their
        checkpoints too when asked (else they stay, for CHECKPOINT_FROM)."""
        raise UserError(f"jobs run {self.where()} leave no folders on this machine: `make clean-jobs` prunes "
                        "local jobs (ENV=local)")

    # --- the other kinds, each a small class of this place's ---
    @abstractmethod
    def processing(self):
        """Processing jobs here: run (create and follow), names, describe, download of an output."""

    @abstractmethod
    def tuning(self):
        """Tuning jobs here: run, record (describe with its trials), names, latest, best_trials."""

    @abstractmethod
    def transforms(self):
        """Batch transform jobs here: model, input_uri, output_uri, run, provenance."""

    def endpoints(self):
        """Real-time endpoints here: deploy, undeploy, describe."""
        raise UserError("`make deploy` and `make undeploy` are for endpoints on SageMaker: use ENV=prod (or another "
                        "AWS ENV); on this machine `make serve` serves the model")

    # --- after a job ---
    @abstractmethod
    def artifact(self, uri: str, scratch: Path) -> Path:
        """A local file holding the artefact at uri (downloaded into scratch when it is remote)."""

    def provenance(self, record: dict) -> dict:
        """What the manifest adds for this executor (region, billable time, image digest)."""
        return {}

    @abstractmethod
    def captured(self, model: Path, start) -> tuple[str, list[tuple[str, str]]]:
        """(where, [(file's name, its text)]): the capture files of the model (its folder MODELS_DIR/<job>/) served
        here that may hold requests since start (a datetime; None: all); no files is a UserError that says how to
        capture some."""

    # --- words ---
    @abstractmethod
    def where(self) -> str:
        """Where jobs run, for messages."""

    def env_flag(self) -> str:
        """The ENV=... words a command needs to reach these jobs again."""
        return "" if self.config.env == DEFAULT_ENV else f" ENV={self.config.env}"
