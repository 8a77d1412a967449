"""How a fetched model is served on this machine: in the engine with its image, or as a process.

The serving twin of runtimes.py (training). A container gets what SageMaker
gives an inference container: `docker run IMAGE serve`, the model's own files
read-only in /opt/ml/model, the port in SAGEMAKER_BIND_TO_PORT, SIGTERM to stop
(SIGKILL 30 s later). A process stands in for sagemake's own image when no
engine has it: docker/serve run by the job's Python (the image's requirements
alone), with SAGEMAKER_BASE_DIR pointing at a tree whose model/ holds the same
files, listening on 127.0.0.1 only.

`serving_runtime(config, image)` chooses, as LOCAL_RUNTIME says; both runtimes
start a Server, the handle that waits for /ping and stops it. Batch transform
is meant to start the same runtimes with SageMaker's batch variables.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from sagemake.cli import Exit, UserError, say
from sagemake.config import Config
from sagemake.contract import layout
from sagemake.contract import serve as serving
from sagemake.executors.local.runtimes import KEPT_VARIABLES
from sagemake.image import Engine
from sagemake.job_python import REQUIREMENTS, job_python
from sagemake.jobs.endpoint import MANIFEST, OUTPUT

SERVE = "serve"  # what SageMaker runs: `docker run IMAGE serve`
STOP_SECONDS = 30  # SageMaker's SIGKILL follows SIGTERM after this long
READY_SECONDS = 120  # for the container to start and the model to load
LOOPBACK = "127.0.0.1"
HOST_NETWORK = {("--network", "host"), ("--net", "host"), ("--network=host",), ("--net=host",)}


class ServerFailed(UserError):
    """The model server did not start, or stopped by itself."""

    status = Exit.JOB_FAILED


def model_files(folder: Path) -> list[Path]:
    """What model.tar.gz held: MODELS_DIR/<job>/ less what fetch adds (its manifest and the job's output/,
    names fetch refuses inside a model archive, so the split is exact)."""
    return sorted(p for p in folder.iterdir() if p.name not in (MANIFEST, OUTPUT))


class Server:
    """A started model server: its process, its URL, and how it stops."""

    def __init__(self, runtime, process: subprocess.Popen, port: int, scratch: Path | None = None,
                 container: str | None = None):
        self.runtime, self.process, self.port = runtime, process, port
        self.scratch = scratch  # a process's /opt/ml tree, removed when it stops
        self.container = container  # a container's name, for the engine's kill
        self.url = f"http://{LOOPBACK}:{port}"

    def wait_ready(self, seconds: float = READY_SECONDS, log: Path | None = None) -> None:
        """Until GET /ping answers 200; a server that exits first, or never answers, is a ServerFailed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.cleanup()
                raise ServerFailed(f"the model server stopped before answering /ping (exit {code})"
                                   f"{_last_line(log)}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerFailed(f"the model server did not answer /ping within {seconds:.0f} s{_last_line(log)}")

    def stop(self, grace: float = STOP_SECONDS) -> int:
        """SIGTERM (the server drains its requests), SIGKILL after grace (or at a second Ctrl-C); its exit code."""
        try:
            if self.process.poll() is None:
                self.runtime.signal(self, kill=False)
                try:
                    self.process.wait(timeout=grace)
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    self.runtime.signal(self, kill=True)
            return self.process.wait()
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _last_line(log: Path | None) -> str:
    if log is None or not log.is_file():
        return ": its output is above"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return f": {lines[-1][:300]}" if lines else ""


class ServingContainer:
    """The job's image in Docker or podman, started as SageMaker starts an inference container."""

    name = "container"

    def __init__(self, engine: str, image: str, run_flags: list[str] | None = None):
        self.engine, self.image, self.run_flags = engine, image, run_flags or []

    def describe(self) -> str:
        return f"container ({self.engine}, image {self.image})"

    @property
    def host_network(self) -> bool:
        flags = self.run_flags
        pairs = set(zip(flags, flags[1:], strict=False))
        return bool(pairs & HOST_NETWORK or {(f,) for f in flags} & HOST_NETWORK)

    def bind_host(self) -> str:
        """The address the server takes on this machine."""
        return serving.DEFAULT_HOST if self.host_network else LOOPBACK

    def start(self, files: list[Path], port: int, environment: dict[str, str], output=None) -> Server:
        env = {**environment, serving.PORT_VARIABLE: str(port)}
        mounts = [f for path in files for f in ("-v", f"{path.resolve()}:{layout.DEFAULT_BASE_DIR}/"
                                                     f"{layout.MODEL_DIR}/{path.name}:ro")]
        ports = [] if self.host_network else ["-p", f"{LOOPBACK}:{port}:{port}"]
        container = f"sagemake-serve-{os.getpid()}-{port}"
        command = [self.engine, "run", "--rm", "--name", container, *mounts, *ports, *self.run_flags,
                   *(f for key in sorted(env) for f in ("-e", key)), self.image, SERVE]
        process = subprocess.Popen(command, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT if output else None, start_new_session=True)
        return Server(self, process, port, container=container)

    def signal(self, server: Server, kill: bool) -> None:
        args = ["kill", server.container] if kill else ["kill", "--signal", "TERM", server.container]
        answer = subprocess.run([self.engine, *args], capture_output=True, check=False)
        if answer.returncode != 0 and server.process.poll() is None:  # not created yet: stop the client
            server.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)


class ServingProcess:
    """sagemake's own image stood in for by a process: docker/serve run by the job's Python."""

    name = "process"

    def __init__(self, root: Path, python: Path):
        self.root, self.python = root, python

    def describe(self) -> str:
        return f"process (the job's Python, from {REQUIREMENTS})"

    def bind_host(self) -> str:
        return LOOPBACK

    def start(self, files: list[Path], port: int, environment: dict[str, str], output=None) -> Server:
        scratch = Path(tempfile.mkdtemp(prefix="sagemake-serve-"))
        model = scratch / layout.MODEL_DIR
        model.mkdir()
        for path in files:  # the model's own files, as /opt/ml/model has them, without copying
            (model / path.name).symlink_to(path.resolve())
        home = scratch / "home"  # not the user's: ~/.aws and other dotfiles stay out of the server
        home.mkdir()
        host = {k: v for k, v in os.environ.items() if KEPT_VARIABLES.match(k)}
        env = {**host, **environment, layout.BASE_DIR_VARIABLE: str(scratch), "PYTHONPATH": str(self.root / "src"),
               "HOME": str(home), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
               serving.PORT_VARIABLE: str(port), serving.HOST_VARIABLE: LOOPBACK}
        try:
            process = subprocess.Popen([str(self.python), str(self.root / "docker" / SERVE)], env=env,
                                       stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT if output else None, start_new_session=True)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return Server(self, process, port, scratch)

    def signal(self, server: Server, kill: bool) -> None:
        try:
            if kill:  # the whole group: gunicorn's workers too
                os.killpg(server.process.pid, signal.SIGKILL)
            else:  # the master alone: it tells its workers to finish and stop
                server.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass


def serving_runtime(config: Config, image: str) -> tuple[ServingContainer | ServingProcess, str]:
    """The runtime and why: LOCAL_RUNTIME=auto takes the container when the engine has the image, else (sagemake's
    own image only) a process."""
    engine, mode = Engine(config), config["LOCAL_RUNTIME"]
    whose = (f"TRAINING_IMAGE={config['TRAINING_IMAGE']}" if config["TRAINING_IMAGE"]
             else f"DOCKERFILE={config['DOCKERFILE']}")
    if mode == "process":
        if not config.sagemake_image:
            raise UserError(f"LOCAL_RUNTIME=process serves only with sagemake's own image, and {whose} is not it: "
                            "use LOCAL_RUNTIME=auto or container")
        return ServingProcess(config.root, job_python(config)), "LOCAL_RUNTIME=process"
    if engine.has(image):
        check_serves(engine, image, ours=config.sagemake_image)
        return ServingContainer(engine.name, image, engine.run_flags), "the engine has the image"
    if mode == "container" or not config.sagemake_image:
        why = "" if config.sagemake_image else f" ({whose} serves only in a container)"
        raise UserError(f"{engine.name} has no image {image}{why}: start the engine, and pull the image "
                        "(or `make build` this checkout's)")
    return ServingProcess(config.root, job_python(config)), f"no {engine.name} engine with the image"


def check_serves(engine: Engine, image: str, ours: bool) -> None:
    """SageMaker starts an inference container as `docker run IMAGE serve`: `serve` on PATH, or an ENTRYPOINT."""
    def quiet(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run([engine.name, *args], capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None

    answer = quiet("image", "inspect", "--format", "{{json .Config.Entrypoint}}", image)
    if answer is not None and answer.returncode == 0 and json.loads(answer.stdout.strip() or "null"):
        return
    found = quiet("run", "--rm", *engine.run_flags, "--entrypoint", "sh", image, "-c", f"command -v {SERVE}")
    if found is not None and found.returncode == 0:
        return
    if ours:
        raise UserError(f"image {image} has no '{SERVE}' (built before sagemake served models, or a script-mode "
                        "image, which does not serve yet): `make train` again for a model whose image serves, "
                        "or serve this one as a process with LOCAL_RUNTIME=process")
    raise UserError(f"image {image} is not sagemake's and has neither an executable '{SERVE}' on its PATH nor an "
                    f"ENTRYPOINT (SageMaker runs `docker run IMAGE {SERVE}`): add one to its Dockerfile")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((serving.DEFAULT_HOST, 0))
        return probe.getsockname()[1]


def check_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError(f"port {port} is in use ({err.strerror}): stop what listens there, or serve on "
                            f"another port with SERVE_PORT={port + 1 if port < 65535 else 8080}") from None


def start(config: Config, folder: Path, manifest: dict, port: int, output=None, log: Path | None = None,
          environment: dict[str, str] | None = None) -> Server:
    """The model server for folder's model, answering /ping; environment adds to the server's variables (batch
    transform's)."""
    runtime, why = serving_runtime(config, manifest["image"])
    check_port(runtime.bind_host(), port)
    say(f"serve: model of {manifest['job_name']} (sha256 {manifest['artifact']['sha256'][:12]}...): "
        f"runtime {runtime.describe()}: {why}")
    # The server's own settings (workers, timeout, payload), as SageMaker takes them from CreateModel's Environment.
    environment = {**{key: os.environ[key] for key in serving.SERVING_VARIABLES if key != serving.PORT_VARIABLE
                      and os.environ.get(key)}, **(environment or {})}
    server = runtime.start(model_files(folder), port, environment, output)
    try:
        server.wait_ready(log=log)
    except KeyboardInterrupt:
        server.stop()
        raise
    return server
