"""How a local job's container starts: in the engine with its image, or as a process.

A container gets what SageMaker gives one: input/, model/, output/ and
checkpoints/ mounted under /opt/ml (the rest of /opt/ml is the image's own),
TRAINING_JOB_NAME, TRAINING_JOB_ARN and the request's Environment; the SM_*
variables come from the training toolkit inside the image, where there is one.

A process stands in for sagemake's own images when no engine has them: it runs
with a Python made from the image's requirements alone (docker/requirements-sagemake.txt,
docker/requirements.txt and the private wheels), so an import the image lacks fails here too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from sagemake import sourcedir
from sagemake.cli import UserError
from sagemake.contract import layout
from sagemake.job_python import REQUIREMENTS

HOST = "algo-1"  # the first host; a job of N instances has algo-1 ... algo-N
LOOPBACK = "127.0.0.1"
ARN_PREFIX = "arn:aws:sagemaker:local:000000000000:training-job/"
# Host variables a local process keeps: enough to run Python, nothing secret (no AWS_*, not HOME).
KEPT_VARIABLES = re.compile(r"^(PATH|LANG|LC_\w+|TZ|TMPDIR|SYSTEMROOT|OPENBLAS_\w+|OMP_\w+|MKL_\w+)$")


def job_environment(request: dict) -> dict[str, str]:
    """What SageMaker sets in every training container."""
    name = request["TrainingJobName"]
    return {**request.get("Environment", {}), "TRAINING_JOB_NAME": name, "TRAINING_JOB_ARN": ARN_PREFIX + name}


def hosts(request: dict) -> list[str]:
    """The job's hosts, named and ordered as SageMaker names them: algo-1, algo-2, ..."""
    return [f"algo-{number}" for number in range(1, request["ResourceConfig"]["InstanceCount"] + 1)]


def cpu_shares(names: list[str], cores: list[int] | None = None) -> dict[str, list[int]]:
    """Each host's share of this machine's cores, so hosts do not fight over them as separate instances would
    not: consecutive blocks, as even as they divide; with more hosts than cores, hosts take turns on each core.
    One host has every core."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else cores
    if len(names) <= 1:
        return {name: cores for name in names}
    if len(names) >= len(cores):
        return {name: [cores[number % len(cores)]] for number, name in enumerate(names)}
    size, extra = divmod(len(cores), len(names))
    shares, start = {}, 0
    for number, name in enumerate(names):
        end = start + size + (number < extra)
        shares[name], start = cores[start:end], end
    return shares


def toolkit_environment(request: dict, base: str, cpus: int, host: str = HOST) -> dict[str, str]:
    """The SM_* variables SageMaker's training toolkit sets for script mode (its Environment.to_env_vars)."""
    def compact(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def decoded(text):  # the toolkit turns '100' into 100 and keeps other strings
        try:
            return json.loads(text)
        except ValueError:
            return text

    channels = [c["ChannelName"] for c in request["InputDataConfig"]]
    hps = {k: decoded(v) for k, v in request.get("HyperParameters", {}).items()
           if not k.startswith("sagemaker_")}
    user_args = [item for key in sorted(hps) for item in (f"--{key}", str(request["HyperParameters"][key]))]
    resource = resource_config(request, host)
    data_config = input_data_config(request)
    env = {
        "SM_MODEL_DIR": f"{base}/{layout.MODEL_DIR}",
        "SM_CHANNELS": compact(channels),
        "SM_HPS": compact(hps),
        "SM_OUTPUT_DATA_DIR": f"{base}/{layout.OUTPUT_DATA_DIR}",
        "SM_OUTPUT_DIR": f"{base}/{layout.OUTPUT_DIR}",
        "SM_INPUT_DIR": f"{base}/input",
        "SM_INPUT_CONFIG_DIR": f"{base}/{layout.CONFIG_DIR}",
        "SM_HOSTS": compact(resource["hosts"]),
        "SM_CURRENT_HOST": host,
        "SM_CURRENT_INSTANCE_TYPE": resource["current_instance_type"],
        "SM_NUM_CPUS": str(cpus),
        "SM_NUM_GPUS": "0",
        "SM_LOG_LEVEL": "20",
        "SM_USER_ARGS": compact(user_args),
        "SM_RESOURCE_CONFIG": compact(resource),
        "SM_INPUT_DATA_CONFIG": compact(data_config),
        "SM_MODULE_DIR": f"{base}/{layout.CODE}",
        "SM_USER_ENTRY_POINT": sourcedir.PROGRAM,
    }
    for channel in channels:
        env[f"SM_CHANNEL_{channel.upper()}"] = f"{base}/{layout.DATA_DIR}/{channel}"
    for key, value in hps.items():
        env[f"SM_HP_{key.upper()}"] = value if isinstance(value, str) else compact(value)
    env["SM_TRAINING_ENV"] = compact({
        "channel_input_dirs": {c: env[f"SM_CHANNEL_{c.upper()}"] for c in channels},
        "current_host": host,
        "hosts": resource["hosts"],
        "hyperparameters": hps,
        "input_data_config": data_config,
        "job_name": request["TrainingJobName"],
        "model_dir": env["SM_MODEL_DIR"],
        "num_cpus": cpus,
        "num_gpus": 0,
        "output_data_dir": env["SM_OUTPUT_DATA_DIR"],
        "resource_config": resource,
    })
    return env


def resource_config(request: dict, host: str = HOST) -> dict:
    instance_type = request["ResourceConfig"]["InstanceType"]
    return {
        "current_host": host,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": hosts(request),
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type,
                             "hosts": hosts(request)}],
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


# Put on a local process's path when a job has several hosts: Python finds their names as on SageMaker, and
# os.cpu_count() is the host's share of the cores (its CPU affinity), as an instance's count is its own.
NAMES = """# Written by sagemake for a local job of several hosts: all run on this machine.
import os
import socket

os.cpu_count = lambda: len(os.sched_getaffinity(0))

_HOSTS = set({hosts!r})
_getaddrinfo, _gethostbyname, _gethostbyname_ex = socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex


def _here(host):
    return {address!r} if host in _HOSTS else host


socket.getaddrinfo = lambda host, *args, **kwargs: _getaddrinfo(_here(host), *args, **kwargs)
socket.gethostbyname = lambda host: _gethostbyname(_here(host))
socket.gethostbyname_ex = lambda host: _gethostbyname_ex(_here(host))
"""


class ContainerRuntime:
    """The image in Docker or podman, started as SageMaker starts it."""

    name = "container"
    base = layout.DEFAULT_BASE_DIR

    def __init__(self, engine: str, image: str, run_flags: list[str] | None = None):
        self.engine, self.image, self.run_flags = engine, image, run_flags or []

    def describe(self) -> str:
        return f"container ({self.engine}, image {self.image})"

    def container(self, request: dict, host: str) -> str:
        """The container of a host: the job's name, with the host's after it when there are several."""
        job = request["TrainingJobName"]
        return job if len(hosts(request)) == 1 else f"{job}-{host}"

    def network(self, request: dict) -> str | None:
        """The network a job of several hosts gets, where each host is found by its name; none when there is
        one host, or CONTAINER_RUN_FLAGS chose the network (then every host name means this machine)."""
        chosen = any(flag == "--network" or flag.startswith("--network=") for flag in self.run_flags)
        return None if len(hosts(request)) == 1 or chosen else request["TrainingJobName"]

    def open(self, request: dict) -> None:
        network = self.network(request)
        if network:
            made = subprocess.run([self.engine, "network", "create", network], capture_output=True, text=True)
            if made.returncode != 0:
                raise UserError(f"{self.engine} could not make the job's network {network} "
                                f"({made.stderr.strip()}): give one with CONTAINER_RUN_FLAGS='--network NAME'")

    def close(self, request: dict) -> None:
        network = self.network(request)
        if network:
            subprocess.run([self.engine, "network", "rm", network], capture_output=True, check=False)

    def command(self, request: dict, tree: Path, channels: dict[str, Path], host: str = HOST) -> tuple[list[str], dict]:
        """`<engine> run` with SageMaker's mounts, each channel's shared copy read-only on top of input/; the
        variables go by name, so no value is on a command line."""
        env = job_environment(request)
        mounts = [f for part in layout.MOUNTED for f in ("-v", f"{tree / part}:{self.base}/{part}")]
        for name, copy in channels.items():
            layout.channel_dir(tree, name).mkdir(parents=True, exist_ok=True)  # the mount point
            mounts += ["-v", f"{copy}:{layout.channel_dir(Path(self.base), name)}:ro"]
        if (tree / layout.CODE).is_dir():  # script mode: the submit directory, unpacked as the toolkit does
            mounts += ["-v", f"{tree / layout.CODE}:{self.base}/{layout.CODE}"]
        spec = request["AlgorithmSpecification"]
        entrypoint = spec.get("ContainerEntrypoint", [])
        arguments = spec.get("ContainerArguments", [] if entrypoint else ["train"])
        start = ["--entrypoint", entrypoint[0], self.image, *entrypoint[1:]] if entrypoint else [self.image]
        # The toolkit waits until every host in resourceconfig.json resolves.
        network = self.network(request)
        names = ["--network", network, "--network-alias", host, "--hostname", host] if network else \
            [f for name in hosts(request) for f in ("--add-host", f"{name}:{LOOPBACK}")]
        return [self.engine, "run", "--rm", "--name", self.container(request, host), *mounts, *names,
                *self.cpu_flags(request, host), *self.run_flags, *(f for key in sorted(env) for f in ("-e", key)),
                *start, *arguments], \
            {**os.environ, **env}

    def cpu_flags(self, request: dict, host: str) -> list[str]:
        """A host of several gets its share of the cores as its CPU set (what `nproc` sees inside), unless
        CONTAINER_RUN_FLAGS sizes it."""
        chosen = any(flag.split("=")[0] in ("--cpus", "--cpuset-cpus", "--cpu-quota") for flag in self.run_flags)
        if len(hosts(request)) == 1 or chosen:
            return []
        return ["--cpuset-cpus", ",".join(map(str, cpu_shares(hosts(request))[host]))]

    def guard_arguments(self, request: dict, host: str) -> list[str]:
        """What the guard (guard.py) needs to stop the container itself, not just its `run` client."""
        return ["--container", self.engine, self.container(request, host)]

    def processing_command(self, request: dict, tree: Path, inputs: dict[str, Path],
                           outputs: dict[str, Path]) -> tuple[list[str], dict]:
        """A processing job's `<engine> run`, with what SageMaker mounts: each input read-only at
        /opt/ml/processing/input/<name>, each output at /opt/ml/processing/output/<name>, the config in
        /opt/ml/config; started with the request's ContainerEntrypoint and ContainerArguments (no `train`)."""
        base = Path(self.base)
        mounts = ["-v", f"{tree / layout.PROCESSING_CONFIG_DIR}:{base / layout.PROCESSING_CONFIG_DIR}"]
        for name, copy in inputs.items():
            mounts += ["-v", f"{copy}:{layout.processing_input(base, name)}:ro"]
        for name, folder in outputs.items():
            mounts += ["-v", f"{folder}:{layout.processing_output(base, name)}"]
        spec, env = request["AppSpecification"], request.get("Environment", {})
        entrypoint = spec.get("ContainerEntrypoint", [])
        start = ["--entrypoint", entrypoint[0], self.image, *entrypoint[1:]] if entrypoint else [self.image]
        return [self.engine, "run", "--rm", "--name", request["ProcessingJobName"], *mounts, *self.run_flags,
                *(f for key in sorted(env) for f in ("-e", key)), *start, *spec.get("ContainerArguments", [])], \
            {**os.environ, **env}

    def processing_guard_arguments(self, request: dict) -> list[str]:
        return ["--container", self.engine, request["ProcessingJobName"]]

    def explain_exit(self, code: int) -> str | None:
        if code in (125, 126, 127):  # `docker run`'s own failures, not the training's
            return f"ClientError: {self.engine} could not start the image (exit {code}): see the job's log"
        return None


class ProcessRuntime:
    """sagemake's own image stood in for by a process: docker/train (or, in script mode, the code's `train`
    with the SM_* variables the toolkit would set), run by the job's Python."""

    name = "process"

    def __init__(self, root: Path, python: Path):
        self.root, self.python = root, python
        self.base = None  # the tree's own path, per job

    def describe(self) -> str:
        return f"process (the job's Python, from {REQUIREMENTS})"

    def open(self, request: dict) -> None:
        pass

    def close(self, request: dict) -> None:
        pass

    def command(self, request: dict, tree: Path, channels: dict[str, Path], host: str = HOST) -> tuple[list[str], dict]:
        """The program by the job's Python, each channel a link to its shared copy. Every host runs on this
        machine: with several, their names resolve to it through a sitecustomize module on the job's path."""
        for name, copy in channels.items():
            link = layout.channel_dir(tree, name)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(copy, target_is_directory=True)
        env = job_environment(request)
        code = tree / layout.CODE
        if code.is_dir():
            program, path = code / sourcedir.PROGRAM, code
            env.update(toolkit_environment(request, str(tree), len(cpu_shares(hosts(request))[host]), host))
        else:
            program, path = self.root / "docker/train", self.root / "src"
        paths = [str(path)]
        if len(hosts(request)) > 1:
            names = tree.parent / "hosts"
            names.mkdir(exist_ok=True)
            (names / "sitecustomize.py").write_text(NAMES.format(hosts=hosts(request), address=LOOPBACK))
            paths.insert(0, str(names))
        home = tree.parent / "home"  # not the user's: ~/.aws and other dotfiles stay out of the job
        home.mkdir(exist_ok=True)
        kept = {k: v for k, v in os.environ.items() if KEPT_VARIABLES.match(k)}
        return [str(self.python), str(program)], {
            **kept, **env, layout.BASE_DIR_VARIABLE: str(tree), "PYTHONPATH": os.pathsep.join(paths),
            "HOME": str(home), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}

    def guard_arguments(self, request: dict, host: str) -> list[str]:
        """A host of several runs on its share of the cores (the guard sets the CPU affinity its command
        inherits); the guard stops the process's whole group."""
        if len(hosts(request)) == 1:
            return []
        return ["--cpus", ",".join(map(str, cpu_shares(hosts(request))[host]))]

    def processing_command(self, request: dict, tree: Path, inputs: dict[str, Path],
                           outputs: dict[str, Path]) -> tuple[list[str], dict]:
        """A processing job's Python entrypoint (python3 -m ... or python3 file.py) by the job's Python, with the
        same paths under tree (SAGEMAKER_BASE_DIR): each input a link to its shared read-only copy, each output a
        link to its folder."""
        spec = request["AppSpecification"]
        entrypoint = spec.get("ContainerEntrypoint", [])
        if not entrypoint or not re.fullmatch(r"python[0-9.]*", Path(entrypoint[0]).name):
            raise UserError(f"a local process runs only a Python entrypoint of sagemake's own image, not "
                            f"{entrypoint or 'the image default'}: run it in a container (start the engine)")
        links = [(layout.processing_input(tree, n), c) for n, c in inputs.items()]
        for link, folder in links + [(layout.processing_output(tree, n), f) for n, f in outputs.items()]:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(folder, target_is_directory=True)
        home = tree.parent / "home"  # not the user's: ~/.aws and other dotfiles stay out of the job
        home.mkdir(exist_ok=True)
        kept = {k: v for k, v in os.environ.items() if KEPT_VARIABLES.match(k)}
        return [str(self.python), *entrypoint[1:], *spec.get("ContainerArguments", [])], {
            **kept, **request.get("Environment", {}), layout.BASE_DIR_VARIABLE: str(tree),
            "PYTHONPATH": str(self.root / "src"), "HOME": str(home), "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1"}

    def processing_guard_arguments(self, request: dict) -> list[str]:
        return []

    def explain_exit(self, code: int) -> str | None:
        return None
