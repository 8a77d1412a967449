"""Summary: serve MLflow's UI on the local store of runs (a free port, printed); Ctrl-C stops it

Usage: make ui   (python -m sagemake ui)

Every job is an MLflow run (MLFLOW_TRACKING_URI; by default a SQLite file in
build/mlflow/). This serves MLflow's own UI on that store, on 127.0.0.1 and a
free port, until Ctrl-C (or SIGTERM, or a closed terminal), which stops the
server and every process it started. MLflow's server is heavier than what
writes runs: it is installed on the first `make ui` into a virtualenv of its
own (requirements-ui.txt), with pip's progress. A team's server or SageMaker's
managed MLflow has a UI of its own: open it there.
Exit status: 0 stopped by Ctrl-C, 1 the server stopped by itself, 2 bad input.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from pathlib import Path

from sagemake.cli import Exit, JobFailed, UserError, say
from sagemake.config import Config, resolve
from sagemake.tracking import artifact_root, drain, local_store, store_uri

REQUIREMENTS = "requirements-ui.txt"
UI_PYTHONS = "mlflow-ui"  # in the tool's virtualenv, as job-python/ is
READY_SECONDS = 180  # a cold import of MLflow's server takes a while
STOP_SECONDS = 5  # SIGTERM, then SIGKILL: the UI holds nothing to save
LOOPBACK = "127.0.0.1"


def ui(config: Config) -> int:
    from sagemake.executors.local.guarded import run_guarded
    from sagemake.executors.local.serving import free_port

    store = local_store(config)
    if store is None:
        raise UserError(f"MLFLOW_TRACKING_URI={config['MLFLOW_TRACKING_URI']} is not a local store: open that "
                        "server's own UI (`make ui` serves a SQLite store, MLFLOW_TRACKING_URI=sqlite:///...)")
    drain(config)
    if not store.is_file():
        raise UserError(f"no runs yet in {store}: `make train` (with TRACKING=true) writes the first")
    python = server_python(config.root)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    command = [str(python), "-m", "mlflow", "server", "--backend-store-uri", store_uri(config),
               "--default-artifact-root", artifact_root(config), "--host", LOOPBACK, "--port", str(port),
               "--workers", "1"]
    say(f"ui: starting MLflow's UI on {store.relative_to(config.root) if store.is_relative_to(config.root) else store}"
        f" at {url} (Ctrl-C stops it)")
    threading.Thread(target=_tell_when_ready, args=(url,), daemon=True).start()
    log = store.parent / "ui.log"
    code, stopped = run_guarded(command, server_environment(), [], log, float("inf"), STOP_SECONDS)
    if stopped:
        say("ui: stopped")
        return Exit.OK
    raise JobFailed(f"MLflow's server stopped by itself (exit {code}): see its output above, or {log}")


def server_python(root: Path) -> Path:
    """The Python of MLflow's server: a virtualenv of requirements-ui.txt, made on first use and updated when it
    changes (as the job's is)."""
    from sagemake.job_python import held_python

    return held_python(UI_PYTHONS, [root / REQUIREMENTS], [], "MLflow's server")


def server_environment() -> dict[str, str]:
    """The server's environment: this one, without the variables that would point it at another store, and without
    MLflow's background job runner (a pool of processes the UI never uses)."""
    kept = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    return {**kept, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _tell_when_ready(url: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    say(f"ui: {url} is up: open it in a browser")
                    return
        except OSError:
            time.sleep(0.5)


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make ui (MLFLOW_TRACKING_URI names the store)")
    return ui(resolve())

