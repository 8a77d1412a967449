"""Serves a fetched model on this machine as SageMaker would, or sends it rows and prints its predictions.

Usage: scripts/serve_model.py serve [JOB]
       scripts/serve_model.py predict FILE [JOB]

The model is MODELS_DIR/<job>/ as `make fetch` left it (default: the newest
job there); its manifest.json names the image. With LOCAL_RUNTIME=auto it is
served in a container when the engine has that image (`docker run IMAGE
serve`, the model's own files read-only in /opt/ml/model), else, for
sagemake's own image only, by docker/serve as a process with the job's Python.

serve     listens on SERVE_PORT, prints the URL and a curl line, and serves
          until Ctrl-C (or SIGTERM), which stops the server with SIGTERM: the
          requests in flight finish first.
predict   FILE (.csv or .json rows, as /invocations takes them) to a server of
          its own on a free port, so it runs beside `make serve`; the
          predictions are printed on stdout, in FILE's type.

Exit status: 0 done (serve: stopped when asked), 1 the server failed, 2 bad
input (no fetched model, a port in use, a missing FILE, a request refused).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

from sagemake.cli import UserError, run, say
from sagemake.config import DEFAULT_ENV, Config, resolve
from sagemake.contract import serve as serving
from sagemake.executors.serving_runtimes import Server, ServerFailed, model_files, serving_runtime
from sagemake.fetch_model import MANIFEST
from sagemake.jobs.training import job_named

CONTENT_TYPES = {".csv": serving.CSV, ".json": serving.JSON}
REQUEST_SECONDS = serving.DEFAULT_TIMEOUT_SECONDS + 10


def fetched(config: Config, name: str | None) -> tuple[Path, dict]:
    """MODELS_DIR/<job>/ and its manifest: the named job's, or the newest job's there."""
    models = config.path("MODELS_DIR")
    env = "" if config.env == DEFAULT_ENV else f" ENV={config.env}"
    if name is None:
        found = [(json.loads(m.read_text()).get("created") or "", m.parent) for m in models.glob(f"*/{MANIFEST}")
                 if not m.parent.name.startswith(".")]  # .<job>.*: a fetch under way
        if not found:
            raise UserError(f"no fetched model in {config['MODELS_DIR']}/: run `make fetch{env}` (the latest job's "
                            f"model) or `make train`")
        folder = max(found)[1]
    else:
        folder = models / name
        if not (folder / MANIFEST).is_file():
            raise UserError(f"no fetched model of job {name} in {config['MODELS_DIR']}/: "
                            f"run `make fetch{env} JOB={name}`")
    return folder, json.loads((folder / MANIFEST).read_text())


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


def serve(config: Config, name: str | None) -> int:
    folder, manifest = fetched(config, name)
    server = start(config, folder, manifest, config.int("SERVE_PORT"))
    from sagemake.deploy import record

    record(config, "serve", url=server.url, job=manifest["job_name"], sha256=manifest["artifact"]["sha256"],
           image=manifest["image"])
    say(f"serve: {server.url}  (GET /ping, POST /invocations with text/csv or application/json rows)")
    say(f"serve: curl -s -H 'Content-Type: text/csv' --data-binary @rows.csv {server.url}/invocations")
    say("serve: Ctrl-C stops it")
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        say("serve: stopping (SIGTERM: the requests in flight finish first)")
        code = server.stop()
        if code != 0:
            raise ServerFailed(f"the model server exited {code} when stopped") from None
        say("serve: stopped")
        return 0
    server.cleanup()
    raise ServerFailed(f"the model server stopped by itself (exit {code}): its output is above")


def predict(config: Config, file: str, name: str | None) -> int:
    if not file:
        raise UserError("FILE is required: make predict FILE=rows.csv (or rows.json) [JOB=<job>]")
    path = Path(file)
    kind = CONTENT_TYPES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"FILE={file} is neither .csv nor .json: give rows as /invocations takes them")
    if not path.is_file():
        raise UserError(f"FILE={file} does not exist")
    body = path.read_bytes()
    folder, manifest = fetched(config, name)
    with tempfile.NamedTemporaryFile(prefix="sagemake-serve-", suffix=".log") as log:
        server = start(config, folder, manifest, free_port(), output=log, log=Path(log.name))
        try:
            status, answer = post(server.url, body, kind)
        finally:
            server.stop()
    if status != 200:
        raise UserError(f"the model server refused {file} ({status}): {answer.decode(errors='replace').strip()}")
    sys.stdout.buffer.write(answer)
    sys.stdout.flush()
    return 0


def post(url: str, body: bytes, kind: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_SECONDS)
    try:
        connection.request("POST", "/invocations", body, {"Content-Type": kind, "Accept": kind})
        answer = connection.getresponse()
        return answer.status, answer.read()
    except OSError as err:
        raise ServerFailed(f"the model server did not answer ({err})") from None
    finally:
        connection.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stopped_by_signals():
    """SIGTERM and SIGHUP (a closed terminal, a cancelled CI run) stop the server as Ctrl-C does."""
    previous = {number: signal.signal(number, _interrupt) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    with _stopped_by_signals():
        if command == "serve" and len(args) <= 1:
            return serve(resolve(), job_named(args[0]) if args else None)
        if command == "predict" and 1 <= len(args) <= 2:
            return predict(resolve(), args[0], job_named(args[1]) if args[1:] else None)
    raise UserError("usage: serve_model.py serve [JOB] | predict FILE [JOB]")


if __name__ == "__main__":
    run(main, "serve_model")
