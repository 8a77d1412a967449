"""The local executor: runs a CreateTrainingJob request on this machine, as SageMaker would.

A fresh /opt/ml tree per job, its channels read from read-only copies shared by
every job on the same data (channels.py), MaxRuntime enforced (SIGTERM, then
SIGKILL after STOP_GRACE_SECONDS) by a guard that also outlives the executor
(guard.py), model/ and output/data/ packed as model.tar.gz and output.tar.gz
under the output path, and a record in DescribeTrainingJob's shape. The image runs in Docker or podman; sagemake's own
image can also run as a process under the same contract (runtimes.py).

Job folder (JOBS_DIR/<job name>/): request.json, job.json (the record),
train.log, ml/ (the /opt/ml tree) and output/ (the artefacts).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from sagemake import layout, sourcedir
from sagemake.archive import pack, tree, unpack
from sagemake.cli import UserError, say
from sagemake.data import summary
from sagemake.executors import Executor
from sagemake.executors.channels import copy_name, remove, shared_copy, unchanged, unused
from sagemake.executors.runtimes import ARN_PREFIX, ContainerRuntime, ProcessRuntime, input_data_config, resource_config
from sagemake.image import Engine
from sagemake.job_python import job_python
from sagemake.request import metric_values, metric_warnings, tags

GUARD = Path(__file__).with_name("guard.py")
RECORD = "job.json"
TREE = "ml"  # the job's /opt/ml
REQUEST = "request.json"
LOG = "train.log"
CODE_FOLDER = "code"  # JOBS_DIR/code/<hash>/sourcedir.tar.gz: script mode's code, once per content


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def uri_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise UserError(f"{uri} is not a file:// URI: the local executor reads and writes local folders only")
    return Path(unquote(parsed.path))


class LocalExecutor(Executor):
    """Jobs on this machine; their folders under JOBS_DIR."""

    kind = "local"

    def __init__(self, config):
        super().__init__(config)
        self.jobs_dir = config.path("JOBS_DIR")
        self.engine = Engine(config)

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

    def checkpoint_uri(self, job: str) -> str:
        return (self.folder(job) / TREE / layout.CHECKPOINT_DIR).as_uri()  # kept when the job starts again

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
        config, image = self.config, request["AlgorithmSpecification"]["TrainingImage"]
        if config["LOCAL_RUNTIME"] == "process":
            if not config.sagemake_image:
                raise UserError(_PROCESS_ONLY_OURS)
            return ProcessRuntime(config.root, job_python(config)), "LOCAL_RUNTIME=process"
        if self.engine.has(image):
            return ContainerRuntime(self.engine.name, image, self.engine.run_flags), "the engine has the image"
        if config["LOCAL_RUNTIME"] == "container" or not config.sagemake_image:
            why = "" if config.sagemake_image else f" ({_whose(config)} runs only in a container)"
            raise UserError(f"{self.engine.name} has no image {image}{why}: start the engine and run `make build`")
        return ProcessRuntime(config.root, job_python(config)), f"no {self.engine.name} engine with the image"

    # --- jobs ---
    def run(self, request: dict, runtime: ContainerRuntime | ProcessRuntime | None = None) -> dict:
        """The job to its end; runtime as chosen by LOCAL_RUNTIME unless given."""
        runtime, why = (runtime, "given") if runtime else self.runtime(request)
        say(f"job {request['TrainingJobName']}: runtime {runtime.describe()}: {why}")
        code = request["HyperParameters"].get(sourcedir.DIRECTORY_KEY)
        if code:
            sourcedir.write(self.config.root, uri_path(code))
        return _Job(self, request, runtime, self.config.int("STOP_GRACE_SECONDS")).run()

    def folder(self, name: str) -> Path:
        return self.jobs_dir / name

    def describe(self, name: str) -> dict:
        """The job's record; one still InProgress whose executor and guard are gone (kill -9, a crash) is
        settled now as Failed, saying so, so nothing waits on a job that no one runs."""
        path = self.folder(name) / RECORD
        if not name or not path.is_file():
            raise UserError(f"no local job named '{name}' in {self.config['JOBS_DIR']}/: `make jobs` lists them")
        record = json.loads(path.read_text())
        owners = [record[key] for key in ("LocalExecutor", "LocalGuard") if key in record]
        if record["TrainingJobStatus"] == "InProgress" and owners and all(running(o) is False for o in owners):
            pid, stage, stamp = record["LocalExecutor"]["Pid"], record["SecondaryStatus"], now()
            record["FailureReason"] = (f"ClientError: the executor (pid {pid}) ended during {stage} without ending "
                                       "the job; its training was stopped with it: see train.log")
            record["SecondaryStatusTransitions"][-1]["EndTime"] = stamp
            record["SecondaryStatusTransitions"].append(
                {"Status": "Failed", "StartTime": stamp, "StatusMessage": record["FailureReason"]})
            record.update({"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "TrainingEndTime": stamp,
                           "LastModifiedTime": stamp})
            save(path.parent, record)
        return record

    def tags(self, name: str) -> dict[str, str]:
        self.describe(name)
        return tags(json.loads((self.folder(name) / REQUEST).read_text()))

    def names(self, limit: int | None = 10) -> list[str]:
        """Newest first, by when each job was created."""
        created = {}
        for path in self.jobs_dir.glob(f"*/{RECORD}") if self.jobs_dir.is_dir() else ():
            try:
                created[path.parent.name] = json.loads(path.read_text())["CreationTime"]
            except (OSError, ValueError, KeyError):  # not a job's folder
                pass
        return sorted(created, key=lambda name: (created[name], name), reverse=True)[:limit]

    def print_log(self, name: str) -> None:
        path = self.folder(name) / LOG
        offset = 0
        while True:
            running = self.describe(name)["TrainingJobStatus"] == "InProgress"
            if path.is_file():
                with path.open("rb") as log:
                    log.seek(offset)
                    chunk = log.read()
                offset += len(chunk)
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            if not running:
                return
            time.sleep(1)

    def stop(self, name: str | None) -> None:
        raise UserError("local jobs stop with Ctrl-C in the terminal that runs them; `make stop` is for SageMaker")

    def prune(self, keep: int) -> None:
        if keep < 1:
            raise UserError(f"KEEP={keep}: keep at least the newest job (KEEP=1 or more)")
        kept, removed, freed = [], 0, 0
        for index, name in enumerate(self.names(None)):
            record = self.describe(name)  # a job whose executor is gone is settled first
            if index < keep or record["TrainingJobStatus"] == "InProgress":
                kept.append(record)
                continue
            freed += _size(self.folder(name))
            remove(self.folder(name))
            removed += 1
        used = {copy for record in kept for copy in record.get("LocalChannels", {}).values()}
        for entry in unused(self.jobs_dir, used):
            freed += _size(entry)
            remove(entry)
        say(f"clean-jobs: removed {removed} job folder(s) and the data copies only they read, "
            f"{freed / 1e6:.1f} MB; kept the {len(kept)} newest or running in {self.config['JOBS_DIR']}/")

    # --- after a job ---
    def artifact(self, uri: str, scratch: Path) -> Path:
        path = uri_path(uri)
        if not path.is_file():
            raise UserError(f"{path} is missing: run the job again")
        return path


_PROCESS_ONLY_OURS = ("LOCAL_RUNTIME=process runs only sagemake's own images (docker/Dockerfile, "
                      "docker/Dockerfile.script): use LOCAL_RUNTIME=auto or container with your DOCKERFILE or "
                      "TRAINING_IMAGE")


def _whose(config) -> str:
    return f"TRAINING_IMAGE={config['TRAINING_IMAGE']}" if config["TRAINING_IMAGE"] else \
        f"DOCKERFILE={config['DOCKERFILE']}"


class _Job:
    def __init__(self, executor: LocalExecutor, request: dict, runtime, grace: int):
        self.request, self.runtime, self.grace = request, runtime, grace
        self.name = request["TrainingJobName"]
        self.folder = executor.folder(self.name)
        self.tree = self.folder / TREE
        self.output = uri_path(request["OutputDataConfig"]["S3OutputPath"]) / self.name / "output"
        self.config = executor.config
        self.channels: dict[str, Path] = {}  # name: its shared read-only copy (channels.py)
        self.stopped_by: str | None = None
        self.record: dict = {}

    def run(self) -> dict:
        """The whole job; SIGTERM or SIGHUP to this process (a closed terminal, a cancelled CI run)
        stop it as Ctrl-C does, so the record always ends."""
        if threading.current_thread() is not threading.main_thread():
            return self._run()
        previous = {number: signal.signal(number, _interrupt) for number in (signal.SIGTERM, signal.SIGHUP)}
        try:
            return self._run()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

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
            self.stopped_by = "Stopped"
        except (OSError, UserError) as err:  # the job fails, its folder and record stay
            reason = f"ClientError: {err}"
        for name, copy in self.channels.items():
            if not unchanged(copy):
                say(f"job {self.name}: warning: the job wrote into its input channel {name}: the copy it read "
                    "was set aside and the next job gets a fresh one")
        self._status("Uploading", "Packing the model and output data")
        self._finish(code, reason, time.monotonic() - started)
        return self.record

    def _prepare_tree(self) -> None:
        """The tree SageMaker makes before `train` starts: config files, every mounted folder, the channels."""
        for folder in (layout.CONFIG_DIR, layout.MODEL_DIR, layout.OUTPUT_DATA_DIR, layout.CHECKPOINT_DIR):
            (self.tree / folder).mkdir(parents=True)
        hyperparameters = dict(self.request.get("HyperParameters", {}))
        code = hyperparameters.get(sourcedir.DIRECTORY_KEY, "")
        if code.startswith("file://"):  # script mode: the code in /opt/ml/code, as SageMaker's local mode has it
            unpack(uri_path(code), self.tree / layout.CODE)
            hyperparameters[sourcedir.DIRECTORY_KEY] = f"{self.runtime.base or self.tree}/{layout.CODE}"
        (self.tree / layout.HYPERPARAMETERS).write_text(json.dumps(hyperparameters))
        (self.tree / layout.RESOURCE_CONFIG).write_text(json.dumps(resource_config(self.request)))
        (self.tree / layout.INPUT_DATA_CONFIG).write_text(json.dumps(input_data_config(self.request)))
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

    def _train(self) -> int | None:
        """The runtime's command under the guard (guard.py), which stops it with this process, however this
        process ends; here the guard is asked to stop it at MaxRuntime or on Ctrl-C (twice: at once).
        SPOT_DRILL_SECONDS interrupts it once, as a spot interruption does, and starts it again."""
        command, env = self.runtime.command(self.request, self.tree, self.channels)
        limit = self.request["StoppingCondition"]["MaxRuntimeInSeconds"]
        drill = self.config.int("SPOT_DRILL_SECONDS") or None
        started = time.monotonic()
        with (self.folder / LOG).open("wb") as log:
            while True:
                code, interrupted = self._attempt(command, env, log, limit - (time.monotonic() - started), drill)
                if not interrupted:
                    if drill:
                        say(f"job {self.name}: warning: it ended before SPOT_DRILL_SECONDS={drill}: no interruption")
                    return code
                drill = None
                self._restart()

    def _attempt(self, command: list[str], env: dict, log, limit: float, drill: int | None) -> tuple[int, bool]:
        """One run of the training: (exit status, whether the drill interrupted it)."""
        guarded = [sys.executable, str(GUARD), str(os.getpid()), str(self.grace),
                   *self.runtime.guard_arguments(self.name), "--", *command]
        process = subprocess.Popen(guarded, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.record["LocalGuard"] = process_identity(process.pid)
        save(self.folder, self.record)
        reader = threading.Thread(target=_copy_lines, args=(process.stdout, log), daemon=True)
        reader.start()
        interrupted = False
        try:
            process.wait(timeout=max(0, min(limit, drill) if drill else limit))
        except subprocess.TimeoutExpired:
            if drill and drill < limit:
                interrupted = True
                self._status("Interrupted", f"SPOT_DRILL_SECONDS={drill}: interrupted as a spot instance can be")
                self._stop(process, "spot drill")
            else:
                self.stopped_by = "MaxRuntimeExceeded"
                self._stop(process, f"MaxRuntimeInSeconds={self.request['StoppingCondition']['MaxRuntimeInSeconds']}")
        except KeyboardInterrupt:
            self.stopped_by = "Stopped"
            self._stop(process, "interrupted")
        reader.join()
        return process.returncode, interrupted

    def _restart(self) -> None:
        """What a new spot instance has: fresh model/ and output/, the channels, and the job's checkpoints."""
        for folder in (layout.MODEL_DIR, layout.OUTPUT_DIR):
            remove(self.tree / folder)
        for folder in (layout.MODEL_DIR, layout.OUTPUT_DATA_DIR):
            (self.tree / folder).mkdir(parents=True)
        self._status("Restarting", "Starting again on a new instance, from the job's checkpoints")
        self._status("Training", f"Training with the {self.runtime.name} runtime, resumed")

    def _stop(self, process: subprocess.Popen, why: str) -> None:
        """SIGTERM to the training, SIGKILL after the grace; another Ctrl-C meanwhile kills it at once."""
        process.send_signal(signal.SIGTERM)
        say(f"job {self.name}: {why}: stopping it (SIGTERM, then SIGKILL after {self.grace} s; "
            "Ctrl-C again to kill it now)")
        while True:
            try:
                process.wait()
                return
            except KeyboardInterrupt:
                process.send_signal(signal.SIGTERM)

    def _finish(self, code: int | None, reason: str | None, seconds: float) -> None:
        model, output_data = self.tree / layout.MODEL_DIR, self.tree / layout.OUTPUT_DATA_DIR
        packed = model.is_dir() and output_data.is_dir()
        if packed:
            pack(tree(model), self.output / layout.MODEL_ARCHIVE)
            pack(tree(output_data), self.output / layout.OUTPUT_ARCHIVE)
        failure = self.tree / layout.FAILURE
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
                reason = f"AlgorithmError: {text}"
            message = self.record["FailureReason"] = reason[:layout.FAILURE_LIMIT]
        if packed and status != "Failed":
            self.record["ModelArtifacts"] = {"S3ModelArtifacts": (self.output / layout.MODEL_ARCHIVE).as_uri()}
            self.record["OutputDataArtifacts"] = (self.output / layout.OUTPUT_ARCHIVE).as_uri()
        self.record.update({
            "TrainingJobStatus": status,
            "TrainingEndTime": now(),
            "TrainingTimeInSeconds": max(1, round(seconds)),
            "FinalMetricDataList": self._metrics(warn=status == "Completed"),
        })
        self._status(secondary, message)

    def _metrics(self, warn: bool) -> list[dict]:
        log = self.folder / LOG
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
        definitions = self.request["AlgorithmSpecification"].get("MetricDefinitions", [])
        found = metric_values(definitions, lines)
        for warning in metric_warnings(definitions, found, lines) if warn else []:
            say(f"job {self.name}: warning: {warning}")
        stamp = now()
        return [{"MetricName": name, "Value": value, "Timestamp": stamp} for name, value in found.items()]

    def _status(self, secondary: str, message: str) -> None:
        stamp = now()
        transitions = self.record["SecondaryStatusTransitions"]
        if transitions:
            transitions[-1]["EndTime"] = stamp
        transitions.append({"Status": secondary, "StartTime": stamp, "StatusMessage": message})
        self.record.update({"SecondaryStatus": secondary, "LastModifiedTime": stamp})
        save(self.folder, self.record)
        say(f"job {self.name}: {self.record['TrainingJobStatus']} / {secondary}: {message}")


def save(folder: Path, record: dict) -> None:
    """The record replaced whole, so a reader never sees half of one."""
    temporary = folder / f".{RECORD}.{os.getpid()}.{threading.get_ident()}"
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    temporary.replace(folder / RECORD)


def process_identity(pid: int) -> dict:
    """Enough to tell later whether this very process still runs: its host, pid and start time."""
    fields = _stat(pid)
    return {"Host": socket.gethostname(), "Pid": pid, "Start": fields[19] if fields else None}


def running(identity: dict | None) -> bool | None:
    """Whether that process still runs; None when this host cannot tell (it ran on another one)."""
    if not identity or identity.get("Host") != socket.gethostname():
        return None
    try:
        os.kill(identity["Pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat(identity["Pid"])
    if fields is None:  # no /proc here: the pid alone has to do
        return True
    return fields[0] != "Z" and fields[19] == identity.get("Start")  # not a zombie, nor a newer process


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command's name (state first, start time 20th), on Linux."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _size(path: Path) -> int:
    """Bytes in a file or a folder, links not followed."""
    return sum(p.lstat().st_size for p in (path, *(path.rglob("*") if path.is_dir() else ())))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _copy_lines(stream, log) -> None:
    """The job's output to train.log and the terminal, line by line as it comes; to train.log alone once the
    terminal is gone, so the job never blocks on a full pipe."""
    terminal = True
    for line in iter(stream.readline, b""):
        log.write(line)
        log.flush()
        if terminal:
            try:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            except OSError:
                terminal = False
