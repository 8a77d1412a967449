"""The container side of SageMaker's inference contract; docker/serve runs main().

SageMaker starts an inference container as `docker run IMAGE serve`, with the
model archive's contents in /opt/ml/model ($SAGEMAKER_BASE_DIR/model, see
sagemake.contract.layout). The model is loaded once, by trainer.predict.load, before
anything listens; then granian forks its workers (they share the loaded model)
and answers on port 8080, or SAGEMAKER_BIND_TO_PORT:

  GET  /ping          200 (nothing answers before the model is loaded)
  POST /invocations   rows as text/csv or application/json; predictions in the
                      Accept type (text/csv or application/json), by default
                      the request's own

CSV: one row a line, the features in training order, no label; a first line
naming the features (in any order) is taken as a header. JSON: one row as a
list of numbers, a list of rows (lists, or objects keyed by feature name), or
{"instances": <that list>}. A request the model cannot take gets a 4xx with one
sentence in text/plain (415 content type, 406 Accept, 400 rows, 413 over the
payload limit, 404 path, 405 method); the server goes on serving. SIGTERM stops
accepting, lets the requests in flight finish (SageMaker kills 30 s later) and exits 0. A predict that runs past
SAGEMAKER_MODEL_SERVER_TIMEOUT ends its worker, and the server starts another.

Imports the standard library and granian; the model's own imports are trainer.predict's.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import os
import sys
import threading
import time
import traceback

from sagemake.contract import layout

PORT_VARIABLE = "SAGEMAKER_BIND_TO_PORT"
WORKERS_VARIABLE = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_VARIABLE = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
PAYLOAD_VARIABLE = "SAGEMAKER_MAX_PAYLOAD_IN_MB"  # batch transform's MaxPayloadInMB
BATCH_VARIABLE = "SAGEMAKER_BATCH"  # "true" in a batch transform's container, with the two below
STRATEGY_VARIABLE = "SAGEMAKER_BATCH_STRATEGY"  # MULTI_RECORD or SINGLE_RECORD
CONCURRENCY_VARIABLE = "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"
HOST_VARIABLE = "SAGEMAKE_BIND_HOST"  # sagemake's own: a process on a workstation listens on loopback only
SERVING_VARIABLES = (PORT_VARIABLE, WORKERS_VARIABLE, TIMEOUT_VARIABLE, PAYLOAD_VARIABLE)

DEFAULT_PORT = 8080
DEFAULT_HOST = "0.0.0.0"  # SageMaker reaches the container from outside it
DEFAULT_TIMEOUT_SECONDS = 60  # SageMaker's limit for one invocation
DEFAULT_PAYLOAD_MB = 6  # InvokeEndpoint's limit
MB = 1024 * 1024
DRAIN_LIMIT = 64 * MB  # an oversized body is read and dropped up to this, so the client reads its 413
STOP_SECONDS = 25  # drain time after SIGTERM: SageMaker sends SIGKILL 30 s after it

CSV = "text/csv"
JSON = "application/json"
MEDIA_TYPES = (CSV, JSON)
SAMPLE_NAMES = 3  # feature names quoted in a message


class Refused(Exception):
    """A request the server will not answer with predictions: an HTTP status and one sentence."""

    def __init__(self, status: int, sentence: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(sentence)
        self.status, self.sentence, self.headers = status, sentence, headers or []


class ServeError(Exception):
    """The server cannot start (no model, a bad setting): one line, and serve exits 1."""


# --- the user's model ----------------------------------------------------------------------------------------


class Model:
    """trainer.predict's model: load(model_dir) once, features(model) if it has them, predict(model, rows)."""

    def __init__(self, module, model_dir):
        self.module = module
        self.model = module.load(model_dir)
        names = module.features(self.model) if hasattr(module, "features") else None
        self.features = [str(name) for name in names] if names is not None else None

    def predict(self, rows: list[list[float]]) -> list:
        try:
            predictions = self.module.predict(self.model, rows)
        except ValueError as err:  # predict's way to refuse rows, with a sentence
            raise Refused(400, f"the model refused the rows: {_one_line(err)}") from None
        predictions = _plain(predictions)
        if not isinstance(predictions, list) or len(predictions) != len(rows):
            count = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
            raise RuntimeError(f"predict returned {count} predictions for {len(rows)} rows: "
                               "it must return one per row")
        return predictions


def _plain(value):
    """numpy arrays and scalars as lists and Python numbers, for csv and json."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


# --- reading rows ---------------------------------------------------------------------------------------------


def _number(text: str, where: str) -> float:
    """A CSV cell's number."""
    try:
        value = float(text)
    except ValueError:
        raise Refused(400, f"{where}: {text.strip()[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise Refused(400, f"{where}: {text.strip()[:40]!r} is not a finite number")
    return value


def _json_number(value, where: str) -> float:
    """A JSON value's number: a JSON number (not a string, not true or false)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(400, f"{where}: {json.dumps(value)[:40]} is not a number")
    if not math.isfinite(value):
        raise Refused(400, f"{where}: {value} is not a finite number")
    return float(value)


def _width(count: int, features: list[str] | None, where: str) -> None:
    if features is not None and count != len(features):
        named = ", ".join(features[:SAMPLE_NAMES]) + (", ..." if len(features) > SAMPLE_NAMES else "")
        raise Refused(400, f"{where} has {count} values; the model takes {len(features)} ({named})")


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise Refused(400, f"the body is not UTF-8 text (byte {err.start})") from None


def read_csv(body: bytes, features: list[str] | None) -> list[list[float]]:
    """CSV rows in training order; a first line naming exactly the features (any order) is a header."""
    reader = csv.reader(io.StringIO(_text(body), newline=""))
    order, rows, width = None, [], None
    try:
        for cells in reader:
            if not cells or all(not cell.strip() for cell in cells):
                continue
            where = f"line {reader.line_num}"
            if not rows and order is None and features is not None:
                names = [cell.strip() for cell in cells]
                if sorted(names) == sorted(features) and len(set(names)) == len(names):
                    order = [names.index(name) for name in features]
                    continue
                if names and not numeric(names[0]):
                    unknown = [name for name in names if name not in features]
                    if unknown and set(features) <= set(names):
                        raise Refused(400, f"{where} is a header with columns the model does not take "
                                           f"({', '.join(unknown[:SAMPLE_NAMES])}): send the features alone")
            _width(len(cells), features, where)
            if width is None:
                width = len(cells)
            elif len(cells) != width:
                raise Refused(400, f"{where} has {len(cells)} values; line 1 had {width}")
            row = [_number(cell, f"{where}, column {i + 1}") for i, cell in enumerate(cells)]
            rows.append([row[i] for i in order] if order else row)
    except csv.Error as err:
        raise Refused(400, f"the CSV cannot be read at line {reader.line_num}: {err}") from None
    if not rows:
        raise Refused(400, "the body holds no rows")
    return rows


def numeric(text: str) -> bool:
    """Whether a CSV cell holds a number."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_json(body: bytes, features: list[str] | None) -> list[list[float]]:
    """A row (list of numbers), a list of rows (lists, or objects keyed by feature name), or {"instances": ...}."""
    try:
        data = json.loads(_text(body))
    except json.JSONDecodeError as err:
        raise Refused(400, f"the body is not JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    if isinstance(data, dict):
        if set(data) == {"instances"}:
            data = data["instances"]
        elif features is not None and set(data) & set(features):
            data = [data]  # one row keyed by feature name
        else:
            raise Refused(400, 'a JSON object must be {"instances": [rows]} or one row keyed by feature name')
    if not isinstance(data, list) or not data:
        raise Refused(400, "the body holds no rows: send a list of rows, or {\"instances\": [rows]}")
    if all(not isinstance(item, (list, dict)) for item in data):
        data = [data]  # one row
    rows, width = [], None
    for number, item in enumerate(data, 1):
        where = f"row {number}"
        if isinstance(item, dict):
            rows.append(_object_row(item, features, where))
            continue
        if not isinstance(item, list):
            raise Refused(400, f"{where} is not a list of numbers or an object")
        _width(len(item), features, where)
        if width is None:
            width = len(item)
        elif len(item) != width:
            raise Refused(400, f"{where} has {len(item)} values; row 1 had {width}")
        rows.append([_json_number(value, f"{where}, value {i + 1}") for i, value in enumerate(item)])
    return rows


def _object_row(item: dict, features: list[str] | None, where: str) -> list[float]:
    if features is None:
        raise Refused(400, f"{where} is an object, but this model names no features: send lists of numbers")
    extra = [key for key in item if key not in features]
    if extra:
        raise Refused(400, f"{where} has {extra[0]!r}, which the model does not take")
    missing = [name for name in features if name not in item]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise Refused(400, f"{where} lacks {missing[0]!r}{more}")
    return [_json_number(item[name], f"{where}, {name!r}") for name in features]


READERS = {CSV: read_csv, JSON: read_json}


# --- writing predictions --------------------------------------------------------------------------------------


def write_csv(predictions: list) -> bytes:
    """One line per row: a prediction's values in order (a dict's in its own order), no header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for prediction in predictions:
        if isinstance(prediction, dict):
            prediction = list(prediction.values())
        writer.writerow([_cell(v) for v in prediction] if isinstance(prediction, list) else [_cell(prediction)])
    return out.getvalue().encode()


def _cell(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return repr(value) if isinstance(value, float) else str(value)  # repr: the shortest text that reads back equal


def write_json(predictions: list) -> bytes:
    return json.dumps({"predictions": predictions}, separators=(",", ":")).encode() + b"\n"


WRITERS = {CSV: write_csv, JSON: write_json}


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def answer_type(accept: str | None, default: str) -> str:
    """The Accept header's choice among text/csv and application/json; */* (or none) is the request's type."""
    offered = []
    for position, part in enumerate((accept or "").split(",")):
        kind, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if kind and quality > 0:
            offered.append((-quality, position, kind.lower()))
    if not offered:
        return default
    for _, _, kind in sorted(offered):
        if kind in MEDIA_TYPES:
            return kind
        if kind in ("*/*", "*"):
            return default
        if kind.endswith("/*"):
            matching = [t for t in (default, *MEDIA_TYPES) if t.startswith(kind[:-1])]
            if matching:
                return matching[0]
    raise Refused(406, f"cannot answer in {accept.strip()[:80]}: accept {CSV} or {JSON}")


# --- the WSGI application -------------------------------------------------------------------------------------


class App:
    """/ping and /invocations around a loaded Model; every refusal is a 4xx with one sentence. A predict that runs
    past the timeout ends its worker (the server starts another), as a stuck model would otherwise hold it."""

    def __init__(self, model: Model, payload_limit: int, timeout: int = DEFAULT_TIMEOUT_SECONDS):
        self.model, self.payload_limit, self.timeout = model, payload_limit, timeout
        self.predicting_since: float | None = None  # this worker's predict in progress
        self.watched_by: int | None = None  # the process whose watchdog runs: a forked worker starts its own

    def __call__(self, environ, start_response):
        try:
            status, headers, body = self.handle(environ)
        except Refused as refused:
            status, headers, body = refused.status, refused.headers, refused.sentence.encode() + b"\n"
            headers = [("Content-Type", "text/plain; charset=utf-8"), *headers]
        except Exception:  # a fault of the model or of this server, never a stack trace to the caller
            print(f"serve: invocation failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            status, body = 500, b"the model failed on these rows: the server's log has the details\n"
            headers = [("Content-Type", "text/plain; charset=utf-8")]
        start_response(f"{status} {_REASONS.get(status, 'Error')}", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def handle(self, environ) -> tuple[int, list[tuple[str, str]], bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                raise Refused(405, f"/ping takes GET, not {method}", [("Allow", "GET, HEAD")])
            return 200, [("Content-Type", "text/plain; charset=utf-8")], b""
        if path != "/invocations":
            raise Refused(404, f"no such path {path[:80]}: use GET /ping or POST /invocations")
        if method != "POST":
            raise Refused(405, f"/invocations takes POST, not {method}", [("Allow", "POST")])
        given = environ.get("CONTENT_TYPE")
        kind = media_type(given)
        if kind not in READERS:
            what = f"content type {given.strip()[:80]}" if given else "no Content-Type"
            raise Refused(415, f"{what}: send {CSV} or {JSON}")
        answer = answer_type(environ.get("HTTP_ACCEPT"), kind)  # before reading: a 406 needs no body
        rows = READERS[kind](self.body(environ), self.model.features)  # all the request's rows, parsed at once
        predictions = self.predict(rows)  # one predict call for them all
        return 200, [("Content-Type", answer)], WRITERS[answer](predictions)

    def predict(self, rows: list[list[float]]) -> list:
        if self.watched_by != os.getpid():
            self.watched_by = os.getpid()
            threading.Thread(target=self._watchdog, name="serve-timeout", daemon=True).start()
        self.predicting_since = time.monotonic()
        try:
            return self.model.predict(rows)
        finally:
            self.predicting_since = None

    def _watchdog(self) -> None:
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            since = self.predicting_since
            if since is not None and time.monotonic() - since > self.timeout:
                print(f"serve: a predict ran past {self.timeout} s ({TIMEOUT_VARIABLE}): this worker stops, its "
                      "caller's connection is dropped, and a new worker starts", file=sys.stderr, flush=True)
                os._exit(1)

    def body(self, environ) -> bytes:
        """The request body, up to the payload limit (by Content-Length, or by reading a chunked one)."""
        stream, limit = environ["wsgi.input"], self.payload_limit
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            raise Refused(400, "the Content-Length header is not a number") from None
        if length > DRAIN_LIMIT:
            raise self._too_large(length, [("Connection", "close")])  # not read: the connection is dropped
        if length > limit:
            _drain(stream, length)
            raise self._too_large(length)
        body = stream.read(length) if length >= 0 else stream.read(limit + 1)
        if len(body) > limit:
            dropped = _drain(stream, DRAIN_LIMIT)
            raise self._too_large(len(body) + dropped, [("Connection", "close")] if dropped >= DRAIN_LIMIT else [])
        return body

    def _too_large(self, size: int, headers=None) -> Refused:
        return Refused(413, f"the payload of {size:,} bytes is over the limit of {self.payload_limit // MB} MB "
                            f"({self.payload_limit:,} bytes): send fewer rows a request", headers)


def _drain(stream, most: int) -> int:
    dropped = 0
    while dropped < most:
        chunk = stream.read(min(1 << 16, most - dropped))
        if not chunk:
            break
        dropped += len(chunk)
    return dropped


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
            413: "Payload Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error"}


# --- the server -----------------------------------------------------------------------------------------------


def _setting(environ, name: str, default: int, lowest: int = 1, highest: int = 65535) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not lowest <= int(text) <= highest:
        raise ServeError(f"{name}={text!r} must be a whole number from {lowest} to {highest}")
    return int(text)


def cpu_count() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def options(environ) -> dict:
    """The server's settings, from SageMaker's variables."""
    port = _setting(environ, PORT_VARIABLE, DEFAULT_PORT)
    return {
        "address": environ.get(HOST_VARIABLE) or DEFAULT_HOST,
        "port": port,
        "workers": _setting(environ, WORKERS_VARIABLE, cpu_count(), highest=256),
        "timeout": _setting(environ, TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_SECONDS, highest=3600),
    }


def payload_limit(environ) -> int:
    return _setting(environ, PAYLOAD_VARIABLE, DEFAULT_PAYLOAD_MB, highest=100) * MB


def load_model() -> Model:
    model_dir = layout.base_dir() / layout.MODEL_DIR
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        raise ServeError(f"{model_dir} is empty: the model archive's files belong there")
    try:
        predict = importlib.import_module("trainer.predict")  # a missing module is named, as is a missing package
    except ModuleNotFoundError as err:
        if err.name in ("trainer", "trainer.predict"):
            raise ServeError("src/trainer/predict.py is missing: write load(model_dir) and predict(model, rows) "
                             "beside train.py") from None
        raise ServeError(f"{_one_line(err)}: the image lacks it; add it to docker/requirements.txt") from None
    try:
        return Model(predict, model_dir)
    except Exception as err:
        traceback.print_exc()
        raise ServeError(f"cannot load the model from {model_dir}: {type(err).__name__}: {_one_line(err)}") \
            from None


def main() -> int:
    """Load the model, then serve until SIGTERM; 1 when the server cannot start."""
    try:
        settings = options(os.environ)
        limit = payload_limit(os.environ)
        model = load_model()  # before anything listens: /ping answers only once the model is loaded
    except ServeError as err:
        print(f"serve: {err}", file=sys.stderr, flush=True)
        return 1
    print(f"serve: model loaded from {layout.base_dir() / layout.MODEL_DIR}; {settings['workers']} worker(s) "
          f"on port {settings['port']}", file=sys.stderr, flush=True)
    if os.environ.get(BATCH_VARIABLE) == "true":
        print(f"serve: batch transform: payloads up to {limit // MB} MB, "
              f"{os.environ.get(STRATEGY_VARIABLE, '?')}, {os.environ.get(CONCURRENCY_VARIABLE, '?')} concurrent "
              "transform(s)", file=sys.stderr, flush=True)
    run(App(model, limit, settings["timeout"]), settings)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the teardown of the model's libraries is seconds for nothing


def run(app: App, settings: dict) -> None:
    """Serve app with granian until SIGTERM: its HTTP in Rust, one process per worker forked after the model is
    loaded (they share it), one request at a time in each (user code need not be thread-safe), connections kept
    alive between requests, as SageMaker's front end reuses them. SIGTERM stops accepting, lets the requests in
    flight finish for up to STOP_SECONDS, and returns."""
    import multiprocessing

    from granian.constants import Interfaces
    from granian.server.mp import MPServer

    multiprocessing.set_start_method("fork", force=True)  # the workers inherit the loaded model
    server = MPServer("serve", address=settings["address"], port=settings["port"], interface=Interfaces.WSGI,
                      workers=settings["workers"], blocking_threads=1, websockets=False, log_access=True,
                      respawn_failed_workers=True, workers_kill_timeout=STOP_SECONDS)
    server.serve(target_loader=lambda *_: app)
