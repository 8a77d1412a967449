"""How a fetched model is served on this machine: in the engine with its image, or as a process.

The serving twin of runtimes.py (training). A container gets what SageMaker
gives an inference container: `docker run IMAGE serve`, the model's own files
read-only in /opt/ml/model, SIGTERM to stop (SIGKILL 30 s later), and is
reached on its port 8080, to which a port of this machine is mapped. Only an
image that declares the label com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
is given SAGEMAKER_BIND_TO_PORT, as SageMaker gives it only to those.
A process stands in for sagemake's own image when no engine has it: docker/serve
run by the job's Python (the image's requirements alone), with
SAGEMAKER_BASE_DIR pointing at a tree whose model/ holds the same files,
listening on 127.0.0.1 only.

The model's manifest names the image, and whether it is sagemake's own: that,
not the settings of the day, decides what serves it (`serving_runtime`). Both
runtimes start the server under the guard (guard.py), so it ends with the
command that started it however that ends; `Serving` is the with-block that
starts it, waits for /ping, and stops it at the block's end, a Ctrl-C included.
"""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from sagemake.capture import Capture
from sagemake.cli import Exit, UserError, held_signals, say
from sagemake.config import Config
from sagemake.contract import layout
from sagemake.contract import serve as serving
from sagemake.executors.local.guarded import GUARD
from sagemake.executors.local.runtimes import KEPT_VARIABLES
from sagemake.image import Engine
from sagemake.job_python import REQUIREMENTS, job_python
from sagemake.jobs.endpoint import FETCHED, sagemake_image

SERVE = "serve"  # what SageMaker runs: `docker run IMAGE serve`
STOP_SECONDS = 30  # SageMaker's SIGKILL follows SIGTERM after this long
READY_SECONDS = 120  # for the container to start and the model to load
POLL_SECONDS = 0.1
LOOPBACK = "127.0.0.1"
HOST_NETWORK = {("--network", "host"), ("--net", "host"), ("--network=host",), ("--net=host",)}
CONTAINER_PORT = serving.DEFAULT_PORT  # where SageMaker reaches an inference container
# An image with this label set to true listens on SAGEMAKER_BIND_TO_PORT; any other listens on CONTAINER_PORT.
BIND_LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"


class ServerFailed(UserError):
    """The model server did not start, or stopped by itself."""

    status = Exit.JOB_FAILED


def model_files(folder: Path) -> list[Path]:
    """What model.tar.gz held: MODELS_DIR/<job>/ less what sagemake adds (FETCHED: its manifest, the job's output/,
    the baseline, the capture, the drift reports; names fetch refuses inside a model archive, so the split is
    exact)."""
    return sorted(p for p in folder.iterdir() if p.name not in FETCHED)


def guarded(command: list[str], env: dict[str, str], guard_arguments: list[str], output) -> subprocess.Popen:
    """command under the guard, in a session of its own: a terminal's Ctrl-C reaches only this process, which
    stops it, and the guard stops it when this process is gone, however it ended (kill -9 included)."""
    return subprocess.Popen([sys.executable, str(GUARD), str(os.getpid()), str(STOP_SECONDS), *guard_arguments,
                             "--", *command], env=env, stdin=subprocess.DEVNULL, stdout=output,
                            stderr=subprocess.STDOUT if output else None, start_new_session=True)


class Server:
    """A started model server: its guard's process, its URL, and how it stops."""

    def __init__(self, runtime, process: subprocess.Popen, port: int, scratch: Path | None = None,
                 container: str | None = None):
        self.runtime, self.process, self.port = runtime, process, port
        self.scratch = scratch  # a process's /opt/ml tree, removed when it stops
        self.container = container  # a container's name
        self.url = f"http://{LOOPBACK}:{port}"
        self.front: CapturingProxy | None = None  # what clients reach when requests are captured

    def wait_ready(self, seconds: float = READY_SECONDS, log: Path | None = None) -> None:
        """Until GET /ping answers 200; a server that exits first, or never answers, is a ServerFailed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerFailed(f"the model server stopped before answering /ping (exit {code})"
                                   f"{_last_line(log, ': ')}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(POLL_SECONDS)
        raise ServerFailed(f"the model server did not answer /ping within {seconds:.0f} s "
                           f"{self.runtime.reached(self.port)}{_last_line(log, '; its last line: ')}")

    def stop(self) -> int:
        """The capturing proxy in front (if any) closed first; then SIGTERM through the guard (the requests in flight
        finish; SIGKILL STOP_SECONDS later, or at once at a second Ctrl-C), then wait until the server and all it
        started are gone; its exit code. Signals are held meanwhile: one that arrives hastens the stop instead of
        cutting it short, and is taken once it is done."""
        with held_signals() as arrived:
            if self.front is not None:
                self.front.close()
            asked = 0
            while self.process.poll() is None:
                if asked <= len(arrived):  # the first request, then one more for each signal that arrives
                    self.process.send_signal(signal.SIGTERM)
                    asked += 1
                try:
                    self.process.wait(timeout=POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
            self.cleanup()
        return self.process.returncode

    def cleanup(self) -> None:
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _last_line(log: Path | None, prefix: str) -> str:
    if log is None or not log.is_file():
        return f"{prefix}its output is above"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return f"{prefix}{lines[-1][:300]}" if lines else ""


class ServingContainer:
    """The job's image in Docker or podman, started and reached as SageMaker starts and reaches an inference
    container: on its port 8080, or on the port in SAGEMAKER_BIND_TO_PORT when the image declares BIND_LABEL."""

    name = "container"

    def __init__(self, engine: str, image: str, run_flags: list[str] | None = None, binds_to_port: bool = False):
        self.engine, self.image, self.run_flags = engine, image, run_flags or []
        self.binds_to_port = binds_to_port

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

    def _fixed(self) -> str:
        return (f"image {self.image} listens on port {CONTAINER_PORT} only (it has no label {BIND_LABEL}=true) and "
                "CONTAINER_RUN_FLAGS gives it this machine's network")

    def reserve(self, asked: int | None) -> int:
        """The port of this machine to serve on: asked (SERVE_PORT), or any free one. On the host's network, an
        image without the label can only be on port 8080 of this machine."""
        if self.host_network and not self.binds_to_port:
            if asked not in (None, CONTAINER_PORT):
                raise UserError(f"SERVE_PORT={asked} cannot be served: {self._fixed()}: serve on "
                                f"SERVE_PORT={CONTAINER_PORT}, or drop --network host from CONTAINER_RUN_FLAGS")
            check_port(self.bind_host(), CONTAINER_PORT,
                       f"{self._fixed()}: stop what listens there, or drop --network host from CONTAINER_RUN_FLAGS "
                       "(then any free port is mapped to it)")
            return CONTAINER_PORT
        return reserve(self.bind_host(), asked)

    def reached(self, port: int) -> str:
        """Where the server was looked for, why there, and what makes it answer."""
        if self.binds_to_port:
            where = (f"on port {port} of this machine (the container shares its network)" if self.host_network
                     else f"on {LOOPBACK}:{port}, mapped to port {port} in the container")
            return (f"{where}: image {self.image} declares {BIND_LABEL}=true, so it was given "
                    f"SAGEMAKER_BIND_TO_PORT={port} and must listen there: make its server listen on "
                    f"0.0.0.0:$SAGEMAKER_BIND_TO_PORT, or remove the label and listen on {CONTAINER_PORT}")
        where = (f"on port {CONTAINER_PORT} of this machine (the container shares its network)"
                 if self.host_network else f"on {LOOPBACK}:{port}, mapped to port {CONTAINER_PORT} in the container")
        return (f"{where}: image {self.image} has no label {BIND_LABEL}=true, so it must listen on port "
                f"{CONTAINER_PORT}, as SageMaker's contract says: make its server listen on 0.0.0.0:{CONTAINER_PORT}, "
                "or give the image the label and listen on $SAGEMAKER_BIND_TO_PORT")

    def start(self, files: list[Path], port: int, environment: dict[str, str], output=None) -> Server:
        env = {**environment, **({serving.PORT_VARIABLE: str(port)} if self.binds_to_port else {})}
        inside = port if self.binds_to_port else CONTAINER_PORT
        mounts = [f for path in files for f in ("-v", f"{path.resolve()}:{layout.DEFAULT_BASE_DIR}/"
                                                     f"{layout.MODEL_DIR}/{path.name}:ro")]
        ports = [] if self.host_network else ["-p", f"{LOOPBACK}:{port}:{inside}"]
        container = f"sagemake-serve-{os.getpid()}-{port}"
        command = [self.engine, "run", "--rm", "--name", container, *mounts, *ports, *self.run_flags,
                   *(f for key in sorted(env) for f in ("-e", key)), self.image, SERVE]
        process = guarded(command, {**os.environ, **env}, ["--container", self.engine, container], output)
        return Server(self, process, port, container=container)


class ServingProcess:
    """sagemake's own image stood in for by a process: docker/serve run by the job's Python."""

    name = "process"

    def __init__(self, root: Path, python: Path):
        self.root, self.python = root, python

    def describe(self) -> str:
        return f"process (the job's Python, from {REQUIREMENTS})"

    def reserve(self, asked: int | None) -> int:
        return reserve(LOOPBACK, asked)

    def reached(self, port: int) -> str:
        return f"on {LOOPBACK}:{port} (sagemake's server, as a process): see its output for what held it up"

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
            process = guarded([str(self.python), str(self.root / "docker" / SERVE)], env, ["--scratch", str(scratch)],
                              output)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return Server(self, process, port, scratch)


def serving_runtime(config: Config, manifest: dict) -> tuple[ServingContainer | ServingProcess, str]:
    """The runtime for the model's own image (its manifest's) and why: LOCAL_RUNTIME=auto takes the container when
    the engine has the image, else (sagemake's own image only) a process."""
    engine, mode, image = Engine(config), config["LOCAL_RUNTIME"], manifest["image"]
    ours = sagemake_image(manifest)
    theirs = f"the model of {manifest['job_name']} was trained with image {image}, not sagemake's"
    if mode == "process":
        if not ours:
            raise UserError(f"LOCAL_RUNTIME=process serves only models of sagemake's own image, and {theirs}: "
                            "serve it in a container with LOCAL_RUNTIME=auto or container")
        return ServingProcess(config.root, job_python(config)), "LOCAL_RUNTIME=process"
    found = engine.inspect(image)
    if found is not None:
        check_serves(engine, image, found, ours)
        labels = found.get("Labels") or {}
        return (ServingContainer(engine.name, image, engine.run_flags, labels.get(BIND_LABEL) == "true"),
                "the engine has the image")
    if not ours:
        raise UserError(f"{engine.name} has no image {image} ({theirs}, and it serves only in a container): start "
                        "the engine, and pull or build that image")
    if mode == "container":
        raise UserError(f"{engine.name} has no image {image}: start the engine, and pull the image "
                        "(or `make build` this checkout's)")
    return ServingProcess(config.root, job_python(config)), f"no {engine.name} engine with the image"


def check_serves(engine: Engine, image: str, found: dict, ours: bool) -> None:
    """SageMaker starts an inference container as `docker run IMAGE serve`: `serve` on PATH, or an ENTRYPOINT."""
    if found.get("Entrypoint"):
        return
    try:
        answer = subprocess.run([engine.name, "run", "--rm", *engine.run_flags, "--entrypoint", "sh", image, "-c",
                                 f"command -v {SERVE}"], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        answer = None
    if answer is not None and answer.returncode == 0:
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


def check_port(host: str, port: int, fix: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError(f"port {port} is in use ({err.strerror}): {fix}") from None


def reserve(host: str, asked: int | None) -> int:
    """asked (SERVE_PORT), once it is free, or any free port."""
    if asked is None:
        return free_port()
    check_port(host, asked, another_port(asked))
    return asked


def another_port(port: int) -> str:
    other = port + 1 if port < 65535 else CONTAINER_PORT
    return f"stop what listens there, or serve on another port with SERVE_PORT={other}"


HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
               "proxy-authenticate", "content-length", "server", "date"}


class CapturingProxy(http.server.ThreadingHTTPServer):
    """What clients reach when requests are captured, as an endpoint's data capture sits in front of its model: on
    LOOPBACK:port, each request passed to the model server as it came (keep-alive on both sides) and its answer
    back; each answered POST /invocations (200) handed to the capture, which writes it on a thread of its own."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, upstream: str, capture: Capture):
        self.upstream, self.capture = upstream, capture
        try:
            super().__init__((LOOPBACK, port), _Forward)
        except OSError as err:
            raise UserError(f"port {port} is in use ({err.strerror}): {another_port(port)}") from None
        self.url = f"http://{LOOPBACK}:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                                        name="capturing-proxy", daemon=True)
        self._thread.start()

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-request is no error of the server's."""

    def close(self) -> None:
        """Stop taking requests, and write what the capture holds."""
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()
        self.capture.close()


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the answer's head and body leave at once, never 40 ms apart (delayed ACK)
    server: CapturingProxy

    def log_message(self, *args) -> None:  # the model server logs each request already
        pass

    _connection: http.client.HTTPConnection | None = None  # to the model server, kept alive with the client's

    def _upstream(self) -> http.client.HTTPConnection:
        local = self._connection
        if local is None:
            host, port = self.server.upstream.removeprefix("http://").rsplit(":", 1)
            local = self._connection = http.client.HTTPConnection(host, int(port),
                                                                 timeout=serving.DEFAULT_TIMEOUT_SECONDS + 10)
            local.connect()
            local.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the body follows its head at once
        return local

    def _chunked(self) -> bytes | None:
        """A chunked body, whole, so that the model server gets it with its length (and applies its own limit);
        None past serving.DRAIN_LIMIT."""
        parts, size = [], 0
        while length := int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16):
            size += length
            if size > serving.DRAIN_LIMIT:
                return None
            parts.append(self.rfile.read(length))
            self.rfile.readline(1024)  # the chunk's CRLF
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers, to the blank line
            pass
        return b"".join(parts)

    def _forward(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            refused = None
            try:
                body = self._chunked()
            except ValueError:
                refused = (400, "a chunk's size is not a hexadecimal number")
            else:
                if body is None:
                    refused = (413, f"the payload is over {serving.DRAIN_LIMIT // serving.MB} MB")
            if refused:  # the rest of the request is unread: the connection closes after the answer
                self.close_connection = True
                self.send_error(*refused)
                return
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_HEADERS}
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile is opened again, once
            try:
                connection = self._upstream()
                connection.request(self.command, self.path, body, headers)
                answer = connection.getresponse()
                data = answer.read()
                break
            except (OSError, http.client.HTTPException) as err:
                if self._connection is not None:
                    self._connection.close()
                self._connection = None
                if attempt == 2:
                    self.send_error(502, f"the model server did not answer ({type(err).__name__})")
                    return
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_HEADERS:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:  # the client left before its answer: nothing to capture
            self.close_connection = True
            return
        if self.command == "POST" and self.path.split("?")[0] == "/invocations" and answer.status == 200:
            self.server.capture.add(body, self.headers.get("Content-Type") or "", data,
                                    answer.getheader("Content-Type") or "")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    def finish(self) -> None:
        super().finish()
        if self._connection is not None:
            self._connection.close()


class Serving:
    """`with Serving(config, folder, manifest) as server:` the model server for folder's model, answering /ping,
    for the block; stopped when the block ends, however it ends. port: SERVE_PORT, or None for any free one;
    environment adds to the server's variables (batch transform's). capture: requests reach the model through a
    CapturingProxy on port (the model server then takes any free port), which hands them to the capture.

    A Ctrl-C at any moment stops it: while it starts, the signal waits until there is a server to stop; from then
    on, until the block begins, `__enter__` stops it itself; in the block, `__exit__` does. Should this process end
    some other way, its guard stops it."""

    def __init__(self, config: Config, folder: Path, manifest: dict, port: int | None = None, output=None,
                 log: Path | None = None, environment: dict[str, str] | None = None, capture: Capture | None = None):
        self.config, self.folder, self.manifest, self.port = config, folder, manifest, port
        self.output, self.log, self.environment, self.capture = output, log, environment or {}, capture
        self.server: Server | None = None

    def __enter__(self) -> Server:
        runtime, why = serving_runtime(self.config, self.manifest)
        if self.capture is not None and self.port is not None:  # the proxy takes it: said before anything starts
            check_port(LOOPBACK, self.port, another_port(self.port))
        port = runtime.reserve(None if self.capture is not None else self.port)
        if self.capture is not None and port == self.port:  # an image on the host's network, fixed to port 8080
            say(f"serve: requests not captured: the model server itself takes port {port} ({runtime.describe()} on "
                "this machine's network): drop --network host from CONTAINER_RUN_FLAGS to capture them")
            self.capture.close()
            self.capture = None
        manifest = self.manifest
        say(f"serve: model of {manifest['job_name']} (sha256 {manifest['artifact']['sha256'][:12]}...): "
            f"runtime {runtime.describe()}: {why}")
        # The server's own settings (workers, timeout, payload), as SageMaker takes them from CreateModel's Environment.
        environment = {**{key: os.environ[key] for key in serving.SERVING_VARIABLES if key != serving.PORT_VARIABLE
                          and os.environ.get(key)}, **self.environment}
        try:
            with held_signals():  # no server started without its handle: a signal meanwhile is taken just after
                self.server = runtime.start(model_files(self.folder), port, environment, self.output)
            self.server.wait_ready(log=self.log)
            if self.capture is not None:
                with held_signals():  # no proxy listening without its handle, as for the server itself
                    self.server.front = CapturingProxy(self.port or 0, self.server.url, self.capture)
                    self.server.url = self.server.front.url
            return self.server
        except BaseException:
            if self.server is not None:
                self.server.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.server.stop()
        if self.capture is not None:
            self.capture.close()
