"""The local executor: runs a CreateTrainingJob request on this machine, as SageMaker would.

A fresh /opt/ml tree per host (algo-1 ... algo-N), its channels read from
read-only copies shared by every job on the same data (channels.py), whole or,
with ShardedByS3Key, each host's share; MaxRuntime enforced (SIGTERM, then
SIGKILL after STOP_GRACE_SECONDS) by a guard per host that also outlives the
executor (guard.py); a spot drill that interrupts and restarts the job on its
checkpoints; every host's model/ and output/data/ packed as model.tar.gz and
output.tar.gz under the output path; and a record in DescribeTrainingJob's
shape. The image runs in Docker or podman; sagemake's own image can also run
as a process under the same contract (runtimes.py).

Job folder (JOBS_DIR/<job name>/): request.json, job.json (the record),
train.log, metrics.json (each metric's series: the step and time of each value),
ml/ (algo-1's /opt/ml tree; ml-algo-2/ ... beside it), shards/ (with
ShardedByS3Key) and output/ (the artefacts).
"""

from __future__ import annotations

import collections
import contextlib
import difflib
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sagemake import jsonfile, sourcedir
from sagemake.archive import pack, sha256, tree, unpack
from sagemake.cli import UserError, interrupted_by_signals, say
from sagemake.clock import now
from sagemake.contract import layout
from sagemake.data import summary
from sagemake.executors.interface import Executor
from sagemake.executors.local import records
from sagemake.executors.local.channels import copy_name, remove, shared_copy, unchanged, unused
from sagemake.executors.local.guarded import (
    GUARD,
    POLL_SECONDS,
    SERIES,
    copy_lines,
    log_lines,
    process_identity,
    uri_path,
)
from sagemake.executors.local.runtimes import (
    ARN_PREFIX,
    HOST,
    ContainerRuntime,
    ProcessRuntime,
    hosts,
    input_data_config,
    resource_config,
)
from sagemake.image import Engine
from sagemake.job_python import job_python
from sagemake.jobs.training import metric_points, metric_warnings, tags
from sagemake.pricing import DEFAULT_REGION, Prices

RECORD = "job.json"
TREE = "ml"  # the job's /opt/ml (algo-1's; other hosts' beside it: ml-algo-2, ...)
HOST_PREFIX = re.compile(r"^\[algo-\d+\] ")  # on each line of a job of several hosts
REQUEST = "request.json"
LOG = "train.log"
CODE_FOLDER = "code"  # JOBS_DIR/code/<hash>/sourcedir.tar.gz: script mode's code, once per content
CHECKPOINTS = "checkpoints"  # JOBS_DIR/checkpoints/<job>/: each job's /opt/ml/checkpoints, kept apart from its folder



class LocalExecutor(Executor):
    """Jobs on this machine; their folders under JOBS_DIR."""

    name = "local"

    def __init__(self, config):
        super().__init__(config)
        self.jobs_dir = config.path("JOBS_DIR")
        self.engine = Engine(config)
        # Set from another thread (a tuning run's Ctrl-C): its running jobs stop as Ctrl-C stops one, Stopped.
        self.stopping = threading.Event()
        self.stop_jobs: set[str] = set()  # the names of running jobs to stop so, one by one (a pruned trial)

    def where(self) -> str:
        return f"locally, in {self.config['JOBS_DIR']}/"

    # --- where things are ---
    def image_for(self, tag: str) -> str:
        return f"{self.config['PROJECT_NAME'].lower()}:{tag}"

    def channel_uri(self, channel: str) -> str:
        return (self.config.path("DATA_DIR") / channel).as_uri()

    def output_uri(self) -> str:
        return self.jobs_dir.as_uri()

    def code_uri(self, digest: str) -> str:
        return (self.jobs_dir / CODE_FOLDER / digest / sourcedir.ARCHIVE).as_uri()

    def checkpoint_uri(self, job: str, own: bool = False) -> str:
        """JOBS_DIR/checkpoints/<job>/ for every job: its /opt/ml/checkpoints, kept apart from its folder, so it
        outlives `make clean-jobs` unless CHECKPOINTS=delete."""
        return (self.jobs_dir / CHECKPOINTS / job).as_uri()

    def checkpoints_of(self, job: str) -> str:
        """Found by the job's record, or, once `make clean-jobs` removed its folder, in JOBS_DIR/checkpoints/<job>/ (a
        job of an earlier sagemake kept its own in its tree)."""
        record = records.read(self.folder(job) / RECORD)
        place = self.jobs_dir / CHECKPOINTS / job
        if record is not None:
            if records.running_now(record):
                raise UserError(f"CHECKPOINT_FROM={job}: the job is still running, its checkpoints still changing: "
                                "wait for it to end, or stop it (Ctrl-C in its terminal)")
            uri = record.get("CheckpointConfig", {}).get("S3Uri")
            place = uri_path(uri) if uri else self.folder(job) / TREE / layout.CHECKPOINT_DIR
        elif not place.is_dir():
            raise UserError(f"CHECKPOINT_FROM={job}: no local job named '{job}' in {self.config['JOBS_DIR']}/, nor "
                            "checkpoints of one: `make jobs` lists them")
        if not self.checkpoint_files(place.as_uri()):
            raise UserError(f"CHECKPOINT_FROM={job}: the job kept no checkpoints (its trainer wrote nothing to "
                            "/opt/ml/checkpoints): name a job that did")
        return place.as_uri()

    def checkpoint_files(self, uri: str) -> dict[str, str]:
        place = uri_path(uri)
        found = sorted(path for path in place.rglob("*") if path.is_file()) if place.is_dir() else []
        return {path.relative_to(place).as_posix(): sha256(path) for path in found}

    def copy_checkpoints(self, source: str, into: str) -> int:
        shutil.copytree(uri_path(source), uri_path(into), symlinks=True, dirs_exist_ok=True)
        return len(self.checkpoint_files(source))

    # --- before a job ---
    def ensure_image(self) -> None:
        """Build the image when a job will run it in the engine; sagemake's own image may run as a process."""
        config, image = self.config, self.image()
        if config["LOCAL_RUNTIME"] == "process":
            if not config.sagemake_image:
                raise UserError(_PROCESS_ONLY_OURS)
            say("build: skipped (LOCAL_RUNTIME=process)")
        elif not self.engine.reachable():
            if not config.sagemake_image:
                raise UserError(f"no {self.engine.name} engine is reachable, and {_whose(config)} runs only in one: "
                                f"start it (or set CONTAINER_ENGINE)")
            say(f"build: skipped: no {self.engine.name} engine is reachable, "
                "so the job will run as a local process under the same contract")
        elif self.engine.has(image):
            if config["TRAINING_IMAGE"]:  # a built one took its tag only once it was shown to start
                self.engine.check_startable(image)
            say(f"build: {image} is up to date")
        elif config["TRAINING_IMAGE"]:
            raise UserError(f"TRAINING_IMAGE={image} is not in the {self.engine.name} engine: pull or build it first")
        else:
            self.engine.build(image)

    def sync_data(self) -> None:
        say(f"upload: skipped (local jobs read {self.config['DATA_DIR']}/ directly)")

    def runtime(self, request: dict) -> tuple[ContainerRuntime | ProcessRuntime, str]:
        """The runtime and why: LOCAL_RUNTIME=auto takes the container when the engine has the image, else
        (sagemake's own image only) a process."""
        return self.runtime_for(request["AlgorithmSpecification"]["TrainingImage"])

    def runtime_for(self, image: str) -> tuple[ContainerRuntime | ProcessRuntime, str]:
        """The runtime of a job that runs image (a training or a processing job's), and why."""
        config = self.config
        if config["LOCAL_RUNTIME"] == "process":
            if not config.sagemake_image:
                raise UserError(_PROCESS_ONLY_OURS)
            return ProcessRuntime(config.root, job_python(config)), "LOCAL_RUNTIME=process"
        if self.engine.reachable() and self.engine.has(image):
            return ContainerRuntime(self.engine.name, image, self.engine.run_flags), "the engine has the image"
        if config["LOCAL_RUNTIME"] == "container" or not config.sagemake_image:
            why = "" if config.sagemake_image else f" ({_whose(config)} runs only in a container)"
            get = "pull or build it" if config["TRAINING_IMAGE"] else "run `make build`"  # a prebuilt one is not built
            raise UserError(f"{self.engine.name} has no image {image}{why}: start the engine and {get}")
        return ProcessRuntime(config.root, job_python(config)), f"no {self.engine.name} engine with the image"

    # --- jobs ---
    def run(self, request: dict, runtime: ContainerRuntime | ProcessRuntime | None = None, label: str = "") -> dict:
        """The job to its end; runtime as chosen by LOCAL_RUNTIME unless given; label starts each line of its log on
        the terminal (a tuning trial's, where several trials run at once)."""
        runtime, why = (runtime, "given") if runtime else self.runtime(request)
        say(f"job {request['TrainingJobName']}: runtime {runtime.describe()}: {why}")
        keep = request["ResourceConfig"].get("KeepAlivePeriodInSeconds")
        if keep:
            say(f"job {request['TrainingJobName']}: KEEP_ALIVE_SECONDS={keep} keeps SageMaker's instances warm after a "
                "job; a local job has none to keep, so it is ignored here")
        code = request["HyperParameters"].get(sourcedir.DIRECTORY_KEY)
        if code:
            sourcedir.write(self.config.root, uri_path(code))
        return _Job(self, request, runtime, self.config.int("STOP_GRACE_SECONDS"), label).run()

    def prices(self) -> Prices:
        """What these jobs would have cost on SageMaker: AWS_REGION's prices (us-east-1's when unset), from the
        cache or the shipped table; a local job asks AWS nothing."""
        return Prices(self.config["AWS_REGION"] or DEFAULT_REGION, hypothetical=True)

    def folder(self, name: str) -> Path:
        return self.jobs_dir / name

    def describe(self, name: str) -> dict:
        """The job's record; one still InProgress whose executor and guard are gone (kill -9, a crash) is
        settled now as Failed, saying so, so nothing waits on a job that no one runs."""
        record = records.read(self.folder(name) / RECORD) if name else None
        if record is None:
            known = [path.parent.name for path in self.jobs_dir.glob(f"*/{RECORD}")] if self.jobs_dir.is_dir() else []
            near = difflib.get_close_matches(name, known, n=1)
            meant = f"did you mean {near[0]}? (`make jobs` lists them)" if near else "`make jobs` lists them"
            raise UserError(f"no local job named '{name}' in {self.config['JOBS_DIR']}/: {meant}")
        return record

    def tags(self, name: str) -> dict[str, str]:
        self.describe(name)
        return tags(json.loads((self.folder(name) / REQUEST).read_text()))

    def names(self, limit: int | None = 10) -> list[str]:
        """Newest first, by when each job was created."""
        return records.names(self.jobs_dir, RECORD, limit=limit)

    def log_path(self, name: str) -> Path:
        return self.folder(name) / LOG

    def metric_series(self, name: str) -> dict[str, list[dict]]:
        """metrics.json, written as the job ended; for a job still running (or one older than that file), its
        log read now, without times."""
        saved = jsonfile.read(self.folder(name) / SERIES, None)
        if isinstance(saved, dict):
            return saved
        request = jsonfile.read(self.folder(name) / REQUEST, {})
        return metric_points(request.get("AlgorithmSpecification", {}).get("MetricDefinitions", []),
                             [HOST_PREFIX.sub("", line) for line in log_lines(self.log_path(name))])

    def print_log(self, name: str, label: str = "") -> bool:
        path = self.log_path(name)
        offset = 0
        while True:
            running = self.describe(name)["TrainingJobStatus"] == "InProgress"
            if path.is_file():
                with path.open("rb") as log:
                    log.seek(offset)
                    chunk = log.read()
                if label and running:  # whole lines only, each after its label: the rest comes next time
                    chunk = chunk[:chunk.rfind(b"\n") + 1]
                offset += len(chunk)
                if label:
                    chunk = b"".join(label.encode() + line for line in chunk.splitlines(keepends=True))
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            if not running:
                return offset > 0
            time.sleep(1)

    def stop(self, name: str | None) -> None:
        raise UserError("local jobs stop with Ctrl-C in the terminal that runs them; `make stop` is for SageMaker")

    def prune(self, keep: int, checkpoints: bool = False) -> None:
        """Of each kind of local job, counted apart, all folders but the `keep` newest and any running one go;
        transforms stay (their folders hold their outputs). Then the data copies that only removed jobs read: a
        kept training job's copies and a running job's stay. The checkpoints of jobs whose folders are gone stay
        in JOBS_DIR/checkpoints/ (a new job can start from them) unless `checkpoints` says they go too."""
        if keep < 1:
            raise UserError(f"KEEP={keep}: keep at least the newest job (KEEP=1 or more)")
        by_kind: dict[str, list[tuple[Path, dict]]] = {}
        for folder, record in records.every(self.jobs_dir):  # each settled first: a dead executor's job is not running
            by_kind.setdefault(records.kind(record), []).append((folder, record))
        removed, kept, used, freed = collections.Counter(), collections.Counter(), set(), 0
        for kind, found in by_kind.items():
            found.sort(key=lambda item: (item[1].get("CreationTime", ""), item[0].name), reverse=True)
            for index, (folder, record) in enumerate(found):
                if kind == "Transform" or index < keep or records.running_now(record):
                    kept[kind] += 1
                    if kind == "Training" or records.running_now(record):
                        used.update(record.get("LocalChannels", {}).values())
                    continue
                freed += _size(folder)
                remove(folder)
                removed[kind] += 1
        for entry in unused(self.jobs_dir, used):
            freed += _size(entry)
            remove(entry)
        place = self.jobs_dir / CHECKPOINTS
        orphans = [entry for entry in sorted(place.iterdir()) if not (self.folder(entry.name) / RECORD).is_file()] \
            if place.is_dir() else []
        if checkpoints:
            for entry in orphans:
                freed += _size(entry)
                remove(entry)
            left = f"removed the checkpoints of {len(orphans)} job(s) gone"
        else:
            left = (f"kept the checkpoints of {len(orphans)} job(s) gone in {self.config['JOBS_DIR']}/{CHECKPOINTS}/ "
                    "(CHECKPOINT_FROM starts a job from them; CHECKPOINTS=delete removes them)")
        say(f"clean-jobs: removed {removed['Training']} job folder(s), {removed['Processing']} processing job "
            f"folder(s) and the data copies only they read, {freed / 1e6:.1f} MB; kept the {kept['Training']} newest "
            f"or running job(s) and {kept['Processing']} processing job(s) in {self.config['JOBS_DIR']}/; tuning "
            f"runs: {removed['HyperParameterTuning']} removed, {kept['HyperParameterTuning']} kept; transforms kept "
            f"(their folders hold their outputs); {left}")

    # --- the other kinds ---
    def processing(self):
        from sagemake.executors.local.processing import LocalProcessing

        return LocalProcessing(self)

    def tuning(self):
        from sagemake.executors.local.tuning import LocalTunings

        return LocalTunings(self)

    def transforms(self):
        from sagemake.executors.local.transform import LocalTransforms

        return LocalTransforms(self)

    # --- after a job ---
    def artifact(self, uri: str, scratch: Path) -> Path:
        path = uri_path(uri)
        if not path.is_file():
            raise UserError(f"{path} is missing: run the job again")
        return path

    def captured(self, model: Path, start) -> tuple[str, list[tuple[str, str]]]:
        from sagemake.capture import in_span
        from sagemake.jobs.endpoint import CAPTURE

        folder = model / CAPTURE
        found = sorted(path for path in folder.rglob("*.jsonl") if in_span(str(path.relative_to(folder)), start)) \
            if folder.is_dir() else []
        if not found:
            raise UserError(f"no requests captured in {folder}/{' in that span' if start else ''} yet: `make serve "
                            f"JOB={model.name}` (then send it requests), `make predict FILE=rows.csv JOB={model.name}` "
                            "or `make transform` capture them (CAPTURE_PERCENT above 0); or compare a file of rows "
                            "with FILE=rows.csv")
        return f"{folder}/", [(str(path), path.read_text(encoding="utf-8")) for path in found]


_PROCESS_ONLY_OURS = ("LOCAL_RUNTIME=process runs only sagemake's own images (docker/Dockerfile, "
                      "docker/Dockerfile.script): use LOCAL_RUNTIME=auto or container with your DOCKERFILE or "
                      "TRAINING_IMAGE")


def _whose(config) -> str:
    return f"TRAINING_IMAGE={config['TRAINING_IMAGE']}" if config["TRAINING_IMAGE"] else \
        f"DOCKERFILE={config['DOCKERFILE']}"


class _Job:
    def __init__(self, executor: LocalExecutor, request: dict, runtime, grace: int, label: str = ""):
        self.executor, self.request, self.runtime, self.grace = executor, request, runtime, grace
        self.label = label.encode()
        self.name = request["TrainingJobName"]
        self.folder = executor.folder(self.name)
        self.hosts = hosts(request)
        self.limit = request["StoppingCondition"]["MaxRuntimeInSeconds"]
        self.trees = {host: self.folder / (TREE if host == HOST else f"{TREE}-{host}") for host in self.hosts}
        self.tree = self.trees[HOST]
        self.host_channels: dict[str, dict[str, Path]] = {}  # host: {channel: what it reads}
        self.codes: dict[str, int | None] = {}  # host: exit status
        self.failed: str | None = None  # the first host seen to fail
        self.output = uri_path(request["OutputDataConfig"]["S3OutputPath"]) / self.name / "output"
        self.config = executor.config
        self.channels: dict[str, Path] = {}  # name: its shared read-only copy (channels.py)
        self.stopped_by: str | None = None
        self.interrupted = False  # Ctrl-C, SIGTERM or SIGHUP reached this job (not a stop asked by a tuning run)
        self.record: dict = {}
        self.stamps: list[str | None] = []  # when each line of train.log came (for the lines that can hold a metric)
        self.stopping, self.stop_jobs = executor.stopping, executor.stop_jobs

    def run(self) -> dict:
        """The whole job; SIGTERM or SIGHUP to this process (a closed terminal, a cancelled CI run)
        stop it as Ctrl-C does, so the record always ends."""
        with interrupted_by_signals():
            return self._run()

    def _run(self) -> dict:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.folder.mkdir()
        except FileExistsError:
            raise UserError(f"job {self.name} exists already in {self.folder.parent}: job names must be unique") \
                from None
        (self.folder / REQUEST).write_text(json.dumps(self.request, indent=2) + "\n")
        spec = self.request["AlgorithmSpecification"]
        self.record = {
            "TrainingJobName": self.name,
            "TrainingJobArn": ARN_PREFIX + self.name,
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "AlgorithmSpecification": spec,
            "HyperParameters": self.request.get("HyperParameters", {}),
            "InputDataConfig": self.request["InputDataConfig"],
            "OutputDataConfig": self.request["OutputDataConfig"],
            "ResourceConfig": self.request["ResourceConfig"],
            "StoppingCondition": self.request["StoppingCondition"],
            "Environment": self.request.get("Environment", {}),
            **{key: self.request[key] for key in ("CheckpointConfig", "EnableManagedSpotTraining")
               if key in self.request},
            "CreationTime": now(),
            "SecondaryStatusTransitions": [],
            "LocalRuntime": self.runtime.name,
            "LocalExecutor": process_identity(os.getpid()),
            "LocalLog": LOG,
        }
        self._status("Starting", "Preparing the instances for training")
        started = time.monotonic()
        code, reason = None, None
        try:
            self._status("Downloading", "Copying the input data into the job's /opt/ml tree")
            self._prepare_tree()
            self.record["TrainingStartTime"] = now()
            self._status("Training", f"Training with the {self.runtime.name} runtime")
            code = self._train()
        except KeyboardInterrupt:
            self.stopped_by, self.interrupted = "Stopped", True
        except (OSError, UserError) as err:  # the job fails, its folder and record stay
            reason = f"ClientError: {err}"
        for name, copy in self.channels.items():
            if not unchanged(copy):
                say(f"job {self.name}: warning: the job wrote into its input channel {name}: the copy it read "
                    "was set aside and the next job gets a fresh one")
        self._status("Uploading", "Packing the model and output data")
        self._finish(code, reason, time.monotonic() - started)
        if self.interrupted:  # the record is ended (Stopped); the command ends as Ctrl-C ends it
            raise KeyboardInterrupt
        return self.record

    def _prepare_tree(self) -> None:
        """The tree SageMaker makes on each host before `train` starts: config files, every mounted folder, the
        channels (the whole copy, or with ShardedByS3Key the host's share of its files)."""
        sources = {c["ChannelName"]: uri_path(c["DataSource"]["S3DataSource"]["S3Uri"])
                   for c in self.request["InputDataConfig"]}
        for name, source in sources.items():
            if not source.is_dir():
                raise UserError(f"channel {name}: {source} is not a folder")
        digests = {name: found["digest"] for name, found in summary(self.config, sources).items()}
        self.record["LocalChannels"] = {name: copy_name(digest) for name, digest in digests.items()}
        save(self.folder, self.record)  # before the copies are made: `make clean-jobs` keeps what a job reads
        for name, source in sources.items():
            self.channels[name] = shared_copy(self.folder.parent, source, digests[name])
        sharded = [c["ChannelName"] for c in self.request["InputDataConfig"]
                   if c["DataSource"]["S3DataSource"].get("S3DataDistributionType") == "ShardedByS3Key"]
        shards = {name: self._shards(name) for name in sharded if len(self.hosts) > 1}
        kept = self.request.get("CheckpointConfig", {}).get("S3Uri")
        if kept:  # every host's checkpoints/ is the job's kept place, as every host's is saved to S3Uri
            self.executor.start_checkpoints(self.request)
            uri_path(kept).mkdir(parents=True, exist_ok=True)
        for host, base in self.trees.items():
            for folder in (layout.CONFIG_DIR, layout.MODEL_DIR, layout.OUTPUT_DATA_DIR):
                (base / folder).mkdir(parents=True)
            if kept:
                (base / layout.CHECKPOINT_DIR).symlink_to(uri_path(kept), target_is_directory=True)
            else:
                (base / layout.CHECKPOINT_DIR).mkdir()
            hyperparameters = dict(self.request.get("HyperParameters", {}))
            code = hyperparameters.get(sourcedir.DIRECTORY_KEY, "")
            if code.startswith("file://"):  # script mode: the code in /opt/ml/code, as SageMaker's local mode has it
                unpack(uri_path(code), base / layout.CODE)
                hyperparameters[sourcedir.DIRECTORY_KEY] = f"{self.runtime.base or base}/{layout.CODE}"
            (base / layout.HYPERPARAMETERS).write_text(json.dumps(hyperparameters))
            (base / layout.RESOURCE_CONFIG).write_text(json.dumps(resource_config(self.request, host)))
            (base / layout.INPUT_DATA_CONFIG).write_text(json.dumps(input_data_config(self.request)))
            self.host_channels[host] = {name: shards[name][host] if name in shards else copy
                                        for name, copy in self.channels.items()}

    def _shards(self, channel: str) -> dict[str, Path]:
        """ShardedByS3Key: host k of N gets every Nth of the channel's files in key order, starting at the kth,
        as links to the shared copy's read-only files."""
        copy = self.channels[channel]
        files = sorted((p for p in copy.rglob("*") if p.is_file()), key=lambda p: p.relative_to(copy).as_posix())
        shards = {}
        for index, host in enumerate(self.hosts):
            shard = self.folder / "shards" / host / channel
            shard.mkdir(parents=True)
            for path in files[index::len(self.hosts)]:
                target = shard / path.relative_to(copy)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
            shards[host] = shard
        idle = self.hosts[len(files):]
        if idle:
            say(f"job {self.name}: warning: channel {channel} has {len(files)} file(s) for {len(self.hosts)} hosts "
                f"(ShardedByS3Key): {', '.join(idle)} {'gets' if len(idle) == 1 else 'get'} none")
        return shards

    def _train(self) -> int | None:
        """Each host's command under a guard (guard.py), which stops it with this process, however this
        process ends; here the guards are asked to stop them at MaxRuntime, on Ctrl-C (twice: at once) or
        when a host fails. SPOT_DRILL_SECONDS interrupts the job once, as a spot interruption does, and
        starts it again. The exit status: the first failed host's, else 0."""
        commands = {host: self.runtime.command(self.request, self.trees[host], self.host_channels[host], host)
                    for host in self.hosts}
        drill = self.config.int("SPOT_DRILL_SECONDS") or None
        if drill:  # a rehearsal of spot: what spot would save is SageMaker's to know (pricing.ledger_entry)
            self.record["LocalSpotDrillSeconds"] = drill
        started = time.monotonic()
        self.runtime.open(self.request)
        try:
            with (self.folder / LOG).open("wb") as log:
                while True:
                    interrupted = self._attempt(commands, log, self.limit - (time.monotonic() - started), drill)
                    if not interrupted:
                        if drill:
                            say(f"job {self.name}: warning: it ended before SPOT_DRILL_SECONDS={drill}: "
                                "no interruption")
                        return self.codes[self.failed] if self.failed else 0
                    drill = None
                    self._restart()
        finally:
            self.runtime.close(self.request)

    def _attempt(self, commands: dict[str, tuple[list[str], dict]], log, limit: float, drill: int | None) -> bool:
        """One run of the training on every host; whether the drill interrupted it."""
        processes, readers, lock = {}, [], threading.Lock()
        for host, (command, env) in commands.items():
            guarded = [sys.executable, str(GUARD), str(os.getpid()), str(self.grace),
                       *self.runtime.guard_arguments(self.request, host), "--", *command]
            processes[host] = subprocess.Popen(guarded, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True)
            prefix = f"[{host}] ".encode() if len(self.hosts) > 1 else b""
            readers.append(threading.Thread(target=copy_lines, args=(processes[host].stdout, log, prefix, lock,
                                                                      self.stamps, self.label), daemon=True))
            readers[-1].start()
        self.record["LocalGuards"] = [process_identity(p.pid) for p in processes.values()]
        save(self.folder, self.record)
        started, interrupted = time.monotonic(), False
        try:
            while True:
                self.codes = {host: process.poll() for host, process in processes.items()}
                if None not in self.codes.values():
                    break
                self.failed = self.failed or next((h for h, c in self.codes.items() if c not in (None, 0)), None)
                elapsed = time.monotonic() - started
                if self.failed:
                    self._stop(processes, f"host {self.failed} failed, so the job fails")
                elif drill and elapsed >= drill and drill < limit:
                    interrupted = True
                    self._status("Interrupted", f"SPOT_DRILL_SECONDS={drill}: interrupted as a spot instance can be")
                    self._stop(processes, "spot drill")
                elif elapsed >= limit:
                    self.stopped_by = "MaxRuntimeExceeded"
                    self._stop(processes, f"MaxRuntimeInSeconds={self.limit} reached")
                elif self.stopping.is_set() or self.name in self.stop_jobs:
                    self._stop(processes, "asked to stop")
                    if any(process.returncode != 0 for process in processes.values()):  # else it had finished
                        self.stopped_by = "Stopped"
                else:  # woken at once when a host ends
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        next(p for p in processes.values() if p.returncode is None).wait(timeout=POLL_SECONDS)
        except KeyboardInterrupt:
            self.stopped_by, self.interrupted = "Stopped", True
            self._stop(processes, "interrupted")
        for reader in readers:
            reader.join()
        self.codes = {host: process.returncode for host, process in processes.items()}
        self.failed = self.failed or next((h for h, c in self.codes.items() if c != 0), None)
        return interrupted

    def _restart(self) -> None:
        """What new spot instances have: fresh model/ and output/, the channels, and the job's checkpoints."""
        self.failed = None
        for base in self.trees.values():
            for folder in (layout.MODEL_DIR, layout.OUTPUT_DIR):
                remove(base / folder)
            for folder in (layout.MODEL_DIR, layout.OUTPUT_DATA_DIR):
                (base / folder).mkdir(parents=True)
        self._status("Restarting", "Starting again on new instances, from the job's checkpoints")
        self._status("Training", f"Training with the {self.runtime.name} runtime, resumed")

    def _stop(self, processes: dict[str, subprocess.Popen], why: str) -> None:
        """SIGTERM to the training on every host, SIGKILL after the grace; another Ctrl-C kills them at once."""
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        which = "it" if len(processes) == 1 else "every host"
        say(f"job {self.name}: {why}: stopping {which} (SIGTERM, then SIGKILL after {self.grace} s; "
            "Ctrl-C again to kill it now)")
        while True:
            try:
                for process in processes.values():
                    process.wait()
                return
            except KeyboardInterrupt:
                for process in processes.values():
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)

    def _finish(self, code: int | None, reason: str | None, seconds: float) -> None:
        """The record's end; model/ and output/data/ of every host packed as one archive each (a file that
        several hosts wrote is the last host's, as SageMaker keeps one: write the model on one host)."""
        packed = all((base / layout.MODEL_DIR).is_dir() and (base / layout.OUTPUT_DATA_DIR).is_dir()
                     for base in self.trees.values())
        if packed:
            pack(self._merged(layout.MODEL_DIR), self.output / layout.MODEL_ARCHIVE, f"pack {layout.MODEL_ARCHIVE}")
            pack(self._merged(layout.OUTPUT_DATA_DIR), self.output / layout.OUTPUT_ARCHIVE,
                 f"pack {layout.OUTPUT_ARCHIVE}")
        failed_tree = self.trees[self.failed] if self.failed else self.tree
        failure = failed_tree / layout.FAILURE
        if self.stopped_by:
            status, secondary, message = "Stopped", self.stopped_by, "The job was stopped"
        elif code == 0:
            status, secondary, message = "Completed", "Completed", "Training job completed"
        else:
            status, secondary = "Failed", "Failed"
            if reason is None and not failure.is_file() and code is not None:
                reason = self.runtime.explain_exit(code)
            if reason is None:
                text = failure.read_text().strip() if failure.is_file() else f"train exited with code {code}"
                where = f"({self.failed}) " if len(self.hosts) > 1 and self.failed else ""
                reason = f"AlgorithmError: {where}{text}"
            message = self.record["FailureReason"] = reason[:layout.FAILURE_LIMIT]
        if packed and status != "Failed":
            self.record["ModelArtifacts"] = {"S3ModelArtifacts": (self.output / layout.MODEL_ARCHIVE).as_uri()}
            self.record["OutputDataArtifacts"] = (self.output / layout.OUTPUT_ARCHIVE).as_uri()
        self.record.update({
            "TrainingJobStatus": status,
            "TrainingEndTime": now(),
            # Every attempt's seconds, with the work a spot drill's interruption lost, as SageMaker counts them;
            # billable: the same, what SageMaker would bill on demand. A spot job's BillableTimeInSeconds is lower
            # by a market discount that cannot be known here, so none is made up.
            "TrainingTimeInSeconds": max(1, round(seconds)),
            "BillableTimeInSeconds": max(1, round(seconds)),
            "FinalMetricDataList": self._metrics(warn=status == "Completed"),
        })
        # The reason is the record's; said once, by what ends the command (its log, above, has the traceback).
        self._status(secondary, message, said="Training job failed" if status == "Failed" else None)

    def _merged(self, folder: str) -> list[tuple[str, Path]]:
        """Every host's folder as one list of archive entries, host by host, a later host's file replacing an
        earlier one's of the same name (said once, when their contents differ)."""
        entries: dict[str, Path] = {}
        replaced = []
        for base in self.trees.values():
            for name, path in tree(base / folder):
                earlier = entries.get(name)
                if earlier and path.is_file() and not filecmp.cmp(earlier, path, shallow=False):
                    replaced.append(name)
                entries[name] = path
        if replaced:
            say(f"job {self.name}: warning: several hosts wrote {', '.join(sorted(set(replaced)))} in {folder}/: "
                f"the last host's is kept, as on SageMaker; write it on one host (e.g. {HOST}) only")
        return sorted(entries.items())

    def _metrics(self, warn: bool) -> list[dict]:
        """The metric definitions applied to every host's lines, as SageMaker applies them to every log stream: each
        metric's series (with the step and time of each value) saved as metrics.json, its last value returned as
        FinalMetricDataList."""
        lines = log_lines(self.folder / LOG)
        stamps = self.stamps if len(self.stamps) == len(lines) else None  # a line cut by another host's: no times
        if len(self.hosts) > 1:
            lines = [HOST_PREFIX.sub("", line) for line in lines]
        definitions = self.request["AlgorithmSpecification"].get("MetricDefinitions", [])
        series = metric_points(definitions, lines, stamps)
        jsonfile.write(self.folder / SERIES, series, indent=None)
        found = {name: points[-1]["Value"] for name, points in series.items()}
        for warning in metric_warnings(definitions, found, lines) if warn else []:
            say(f"job {self.name}: warning: {warning}")
        stamp = now()
        return [{"MetricName": name, "Value": points[-1]["Value"], "Timestamp": points[-1].get("Timestamp", stamp)}
                for name, points in series.items()]

    def _status(self, secondary: str, message: str, said: str | None = None) -> None:
        """A new secondary status with its message, in the record and on stderr (said in place of the message)."""
        stamp = now()
        transitions = self.record["SecondaryStatusTransitions"]
        if transitions:
            transitions[-1]["EndTime"] = stamp
        transitions.append({"Status": secondary, "StartTime": stamp, "StatusMessage": message})
        self.record.update({"SecondaryStatus": secondary, "LastModifiedTime": stamp})
        save(self.folder, self.record)
        say(f"job {self.name}: {self.record['TrainingJobStatus']} / {secondary}: {said or message}")


def save(folder: Path, record: dict) -> None:
    jsonfile.write(folder / RECORD, record)



def _size(path: Path) -> int:
    """Bytes in a file or a folder, links not followed."""
    return sum(p.lstat().st_size for p in (path, *(path.rglob("*") if path.is_dir() else ())))


