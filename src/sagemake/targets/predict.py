"""Summary: print a fetched model's predictions for the rows in FILE=rows.csv or .json (JOB=..., default latest)

Usage: make predict FILE=rows.csv [JOB=<job>]   (python -m sagemake predict FILE [JOB])

The model is served as `make serve` serves it, on a free port, sent FILE as
one POST /invocations (text/csv or application/json by its suffix), and stopped.
The request and its answer are captured as `make serve` captures them (CAPTURE_PERCENT).
"""

from __future__ import annotations

import http.client
import sys
import tempfile
from pathlib import Path

from sagemake.capture import capturing
from sagemake.cli import UserError
from sagemake.config import Config, resolve
from sagemake.contract import serve as serving
from sagemake.executors import for_config
from sagemake.executors.local.serving import ServerFailed, Serving
from sagemake.jobs.endpoint import request_body
from sagemake.jobs.training import job_named
from sagemake.models import fetched

REQUEST_SECONDS = serving.DEFAULT_TIMEOUT_SECONDS + 10


def predict(config: Config, file: str, name: str | None) -> int:
    if not file:
        raise UserError("FILE is required: make predict FILE=rows.csv (or rows.json) [JOB=<job>]")
    body, kind = request_body(file)
    folder, manifest = fetched(config, name, lambda: for_config(config))
    with tempfile.NamedTemporaryFile(prefix="sagemake-serve-", suffix=".log") as log:
        with Serving(config, folder, manifest, output=log, log=Path(log.name),
                     capture=capturing(config, folder, "predict")) as server:
            status, answer = post(server.url, body, kind)
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


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        raise UserError("FILE is required: make predict FILE=rows.csv (or rows.json) [JOB=<job>]")
    return predict(resolve(), argv[0], job_named(argv[1]) if argv[1:] else None)

