"""The local executor: runs a CreateTrainingJob request on your machine.

It honours the request as SageMaker would: a fresh /opt/ml tree per job, the
channels copied in, TRAINING_JOB_NAME and the SM_* variables set, MaxRuntime
enforced (SIGTERM, then SIGKILL after a grace period), model/ and output/data
packed as model.tar.gz and output.tar.gz under the output path, and a record
in DescribeTrainingJob's shape. The image runs in Docker or podman when it is
there; otherwise `docker/train` runs as a local process under the same contract.

Job folder (JOBS_DIR/<job name>/): request.json, job.json (the record),
train.log, ml/ (the /opt/ml tree) and output/ (the artefacts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from sagemake import sourcedir
from sagemake.archive import pack, tree, unpack
from sagemake.cli import UserError, say
from sagemake.contract import BASE_DIR_VARIABLE, DEFAULT_BASE_DIR
from sagemake.request import tags

ROOT = Path(__file__).resolve().parents[2]
TRAIN_PROGRAM = ROOT / "docker" / "train"
HOST = "algo-1"
ARN_PREFIX = "arn:aws:sagemaker:local:000000000000:training-job/"
# Host variables a local process keeps: enough to run Python, nothing secret (no AWS_*, not HOME).
KEPT_VARIABLES = re.compile(r"^(PATH|LANG|LC_\w+|TZ|TMPDIR|SYSTEMROOT|OPENBLAS_\w+|OMP_\w+|MKL_\w+)$")
ENGINE_ERRORS = (125, 126, 127)  # `docker run`'s own failures, not the training's
RECORD = "job.json"
REQUEST = "request.json"
LOG = "train.log"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def uri_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise UserError(f"{uri} is not a file:// URI: the local executor reads and writes local folders only")
    return Path(unquote(parsed.path))


def contract_environment(request: dict, base: str, cpus: int) -> dict[str, str]:
    """TRAINING_JOB_NAME, the request's Environment and the SM_* variables of the training toolkit."""
    def compact(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def decoded(text):  # the toolkit turns '100' into 100 and keeps other strings
        try:
            return json.loads(text)
        except ValueError:
            return text

    name = request["TrainingJobName"]
    channels = [c["ChannelName"] for c in request["InputDataConfig"]]
    hps = {k: decoded(v) for k, v in request.get("HyperParameters", {}).items()}
    user_args = [item for key in sorted(hps) for item in (f"--{key}", str(request["HyperParameters"][key]))]
    resource = resource_config(request)
    data_config = input_data_config(request)
    env = {
        "SM_MODEL_DIR": f"{base}/model",
        "SM_CHANNELS": compact(channels),
        "SM_HPS": compact(hps),
        "SM_OUTPUT_DATA_DIR": f"{base}/output/data",
        "SM_OUTPUT_DIR": f"{base}/output",
        "SM_INPUT_DIR": f"{base}/input",
        "SM_INPUT_CONFIG_DIR": f"{base}/input/config",
        "SM_HOSTS": compact(resource["hosts"]),
        "SM_CURRENT_HOST": HOST,
        "SM_CURRENT_INSTANCE_TYPE": resource["current_instance_type"],
        "SM_NUM_CPUS": str(cpus),
        "SM_NUM_GPUS": "0",
        "SM_LOG_LEVEL": "20",
        "SM_USER_ARGS": compact(user_args),
        "SM_RESOURCE_CONFIG": compact(resource),
        "SM_INPUT_DATA_CONFIG": compact(data_config),
    }
    for channel in channels:
        env[f"SM_CHANNEL_{channel.upper()}"] = f"{base}/input/data/{channel}"
    for key, value in hps.items():
        env[f"SM_HP_{key.upper()}"] = value if isinstance(value, str) else compact(value)
    env["SM_TRAINING_ENV"] = compact({
        "channel_input_dirs": {c: env[f"SM_CHANNEL_{c.upper()}"] for c in channels},
        "current_host": HOST,
        "hosts": resource["hosts"],
        "hyperparameters": hps,
        "input_data_config": data_config,
        "job_name": name,
        "model_dir": env["SM_MODEL_DIR"],
        "num_cpus": cpus,
        "num_gpus": 0,
        "output_data_dir": env["SM_OUTPUT_DATA_DIR"],
        "resource_config": resource,
    })
    return {
        **request.get("Environment", {}),
        **env,
        "TRAINING_JOB_NAME": name,
        "TRAINING_JOB_ARN": ARN_PREFIX + name,
    }


def resource_config(request: dict) -> dict:
    instance_type = request["ResourceConfig"]["InstanceType"]
    return {
        "current_host": HOST,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": [HOST],
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type,
                             "hosts": [HOST]}],
        "network_interface_name": "eth0",
    }


def input_data_config(request: dict) -> dict:
    return {
        c["ChannelName"]: {
            "TrainingInputMode": c.get("InputMode", request["AlgorithmSpecification"]["TrainingInputMode"]),
            "S3DistributionType": c["DataSource"]["S3DataSource"].get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": c.get("RecordWrapperType", "None"),
            **({"ContentType": c["ContentType"]} if "ContentType" in c else {}),
        }
        for c in request["InputDataConfig"]
    }


class LocalJobs:
    """Local training jobs: run them, and answer for them as SageMaker would."""

    def __init__(self, jobs_dir: Path):
        self.jobs_dir = jobs_dir

    def folder(self, name: str) -> Path:
        return self.jobs_dir / name

    def describe(self, name: str) -> dict:
        record = self.folder(name) / RECORD
        if not name or not record.is_file():
            raise UserError(f"no local job named '{name}' in {self.jobs_dir}: `make jobs` lists them")
        return json.loads(record.read_text())

    def tags(self, name: str) -> dict[str, str]:
        self.describe(name)
        return tags(json.loads((self.folder(name) / REQUEST).read_text()))

    def names(self, limit: int | None = None) -> list[str]:
        """Job names, newest first."""
        if not self.jobs_dir.is_dir():
            return []
        found = [p.parent for p in self.jobs_dir.glob(f"*/{RECORD}")]
        return [f.name for f in sorted(found, key=lambda f: (f / RECORD).stat().st_mtime, reverse=True)][:limit]

    def latest(self) -> str:
        names = self.names()
        if not names:
            raise UserError(f"no local jobs in {self.jobs_dir} yet: run `make train` first")
        return names[0]

    def print_log(self, name: str) -> None:
        """Print the job's log; while the job runs, keep following it."""
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

    def run(self, request: dict, runtime: "Runtime", grace_seconds: int) -> dict:
        """Run the job to its end, streaming its log; return the final record."""
        job = _Job(self, request, runtime, grace_seconds)
        return job.run()


class Runtime:
    """How `train` runs: in a container engine with the image, or as a local process."""

    def __init__(self, engine: str | None, image: str, run_flags: list[str] | None = None,
                 program: Path = TRAIN_PROGRAM):
        self.engine, self.image, self.run_flags, self.program = engine, image, run_flags or [], program

    @property
    def name(self) -> str:
        return "container" if self.engine else "process"

    def command(self, job: str, base: Path, env: dict) -> tuple[list[str], dict | None]:
        """The command and its environment; a container gets only the job's variables, by name.

        As a process, script mode (the code in base/code, from sourcedir.tar.gz) runs the program
        from there, as the toolkit would; otherwise docker/train runs with this repository's src/.
        """
        if self.engine:
            flags = [f for key in sorted(env) for f in ("-e", key)]
            # The toolkit waits until every host in resourceconfig.json resolves: this one is the container.
            return [self.engine, "run", "--rm", "--name", job, "-v", f"{base}:{DEFAULT_BASE_DIR}",
                    "--add-host", f"{HOST}:127.0.0.1", *self.run_flags, *flags, self.image, "train"], \
                {**os.environ, **env}
        code = base / "code"
        program, path = (code / sourcedir.PROGRAM, code) if code.is_dir() else (self.program, ROOT / "src")
        home = base.parent / "home"  # not the user's: ~/.aws and other dotfiles stay out of the job
        home.mkdir(exist_ok=True)
        process_env = {**_host_env(), **env, BASE_DIR_VARIABLE: str(base), "PYTHONPATH": str(path), "HOME": str(home)}
        return [sys.executable, str(program)], process_env

    def base(self, tree: Path) -> str:
        """Where the /opt/ml tree is as the training code sees it."""
        return DEFAULT_BASE_DIR if self.engine else str(tree)

    def stop(self, process: subprocess.Popen, job: str, kill: bool) -> None:
        if self.engine:
            args = ["kill", job] if kill else ["kill", "--signal", "TERM", job]
            subprocess.run([self.engine, *args], capture_output=True, check=False)
        else:
            try:
                os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            except ProcessLookupError:
                pass


def _host_env() -> dict:
    return {k: v for k, v in os.environ.items() if KEPT_VARIABLES.match(k)}


def choose_runtime(setting: str, engine: str, image: str, run_flags: list[str]) -> tuple[Runtime, str]:
    """LOCAL_RUNTIME=auto takes the container when the engine has the image, else a local process."""
    if setting == "process":
        return Runtime(None, image), "process (LOCAL_RUNTIME=process)"
    try:
        found = subprocess.run([engine, "image", "inspect", image], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        found = False
    if found:
        return Runtime(engine, image, run_flags), f"container ({engine}, image {image})"
    if setting == "container":
        raise UserError(
            f"LOCAL_RUNTIME=container but {engine} has no image {image}: start the engine and run `make build`,"
            " or set LOCAL_RUNTIME=auto"
        )
    return Runtime(None, image), f"process (no {engine} engine with image {image}; same contract, host Python)"


class _Job:
    def __init__(self, jobs: LocalJobs, request: dict, runtime: Runtime, grace: int):
        self.request, self.runtime, self.grace = request, runtime, grace
        self.name = request["TrainingJobName"]
        self.folder = jobs.folder(self.name)
        self.tree = self.folder / "ml"
        self.output = uri_path(request["OutputDataConfig"]["S3OutputPath"]) / self.name / "output"
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
        if self.folder.exists():
            raise UserError(f"job {self.name} exists already in {self.folder.parent}: job names must be unique")
        self.folder.mkdir(parents=True)
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
            "CreationTime": now(),
            "SecondaryStatusTransitions": [],
            "LocalRuntime": self.runtime.name,
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
        self._status("Uploading", "Packing the model and output data")
        self._finish(code, reason, time.monotonic() - started)
        return self.record

    def _prepare_tree(self) -> None:
        config = self.tree / "input/config"
        config.mkdir(parents=True)
        (self.tree / "model").mkdir()
        (self.tree / "output/data").mkdir(parents=True)
        hyperparameters = dict(self.request.get("HyperParameters", {}))
        code = hyperparameters.get(sourcedir.DIRECTORY_KEY, "")
        if code.startswith("file://"):  # script mode: the code in /opt/ml/code, as SageMaker's local mode has it
            unpack(uri_path(code), self.tree / "code")
            hyperparameters[sourcedir.DIRECTORY_KEY] = f"{self.runtime.base(self.tree)}/code"
            self.request = {**self.request, "HyperParameters": hyperparameters}
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        (config / "resourceconfig.json").write_text(json.dumps(resource_config(self.request)))
        (config / "inputdataconfig.json").write_text(json.dumps(input_data_config(self.request)))
        for channel in self.request["InputDataConfig"]:
            source = uri_path(channel["DataSource"]["S3DataSource"]["S3Uri"])
            if not source.is_dir():
                raise UserError(f"channel {channel['ChannelName']}: {source} is not a folder")
            shutil.copytree(source, self.tree / "input/data" / channel["ChannelName"])

    def _train(self) -> int | None:
        env = contract_environment(self.request, self.runtime.base(self.tree), os.cpu_count() or 1)
        command, process_env = self.runtime.command(self.name, self.tree, env)
        limit = self.request["StoppingCondition"]["MaxRuntimeInSeconds"]
        with (self.folder / LOG).open("wb") as log:
            process = subprocess.Popen(command, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            reader = threading.Thread(target=_copy_lines, args=(process.stdout, log), daemon=True)
            reader.start()
            try:
                process.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                self.stopped_by = "MaxRuntimeExceeded"
                say(f"job {self.name}: MaxRuntimeInSeconds={limit} reached: stopping it (SIGTERM)")
                self._stop(process)
            except KeyboardInterrupt:
                self.stopped_by = "Stopped"
                say(f"job {self.name}: interrupted: stopping it (SIGTERM, then SIGKILL after {self.grace} s)")
                self._stop(process)
            reader.join()
        return process.returncode

    def _stop(self, process: subprocess.Popen) -> None:
        self.runtime.stop(process, self.name, kill=False)
        try:
            process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            say(f"job {self.name}: still running {self.grace} s after SIGTERM: SIGKILL")
            self.runtime.stop(process, self.name, kill=True)
            process.wait()

    def _finish(self, code: int | None, reason: str | None, seconds: float) -> None:
        packed = (self.tree / "model").is_dir() and (self.tree / "output/data").is_dir()
        if packed:
            pack(tree(self.tree / "model"), self.output / "model.tar.gz")
            pack(tree(self.tree / "output/data"), self.output / "output.tar.gz")
        failure = self.tree / "output/failure"
        if self.stopped_by:
            status, secondary, message = "Stopped", self.stopped_by, "The job was stopped"
        elif code == 0:
            status, secondary, message = "Completed", "Completed", "Training job completed"
        else:
            status, secondary = "Failed", "Failed"
            if reason is None and not failure.is_file() and self.runtime.engine and code in ENGINE_ERRORS:
                reason = f"ClientError: {self.runtime.engine} could not run the image (exit {code}): see the job's log"
            if reason is None:
                text = failure.read_text().strip() if failure.is_file() else f"train exited with code {code}"
                reason = f"AlgorithmError: {text}"
            message = self.record["FailureReason"] = reason[:1024]
        if packed and status != "Failed":
            self.record["ModelArtifacts"] = {"S3ModelArtifacts": (self.output / "model.tar.gz").as_uri()}
        self.record.update({
            "TrainingJobStatus": status,
            "TrainingEndTime": now(),
            "TrainingTimeInSeconds": max(1, round(seconds)),
            "FinalMetricDataList": self._metrics(),
        })
        self._status(secondary, message)

    def _metrics(self) -> list[dict]:
        """The request's MetricDefinitions applied to the log, as SageMaker does: the last match wins."""
        log = self.folder / LOG
        text = log.read_text(errors="replace") if log.is_file() else ""
        found = []
        for definition in self.request["AlgorithmSpecification"].get("MetricDefinitions", []):
            matches = re.findall(definition["Regex"], text)
            if matches:
                last = matches[-1] if isinstance(matches[-1], str) else matches[-1][0]
                try:
                    found.append({"MetricName": definition["Name"], "Value": float(last), "Timestamp": now()})
                except ValueError:  # a user's regex that matched something else: no metric, as on SageMaker
                    pass
        return found

    def _status(self, secondary: str, message: str) -> None:
        stamp = now()
        transitions = self.record["SecondaryStatusTransitions"]
        if transitions:
            transitions[-1]["EndTime"] = stamp
        transitions.append({"Status": secondary, "StartTime": stamp, "StatusMessage": message})
        self.record.update({"SecondaryStatus": secondary, "LastModifiedTime": stamp})
        path = self.folder / RECORD
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.record, indent=2) + "\n")
        temporary.replace(path)
        say(f"job {self.name}: {self.record['TrainingJobStatus']} / {secondary}: {message}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _copy_lines(stream, log) -> None:
    """The job's output to the terminal and to train.log, line by line as it comes."""
    for line in iter(stream.readline, b""):
        log.write(line)
        log.flush()
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
