"""Serving a trained model as SageMaker does: the real server over real HTTP, as a process and in a real
container, and `make serve` / `make predict` as a user runs them.

One real local `make train` of the example model, in a copy of the repository, is shared by the session (this
module and test_transform.py only read it, or add jobs of their own beside it); the answers are checked against
that model's own predictions, loaded with joblib here. The container cases build
that copy's image (the one its manifest names) and, like tests/test_container.py, are skipped without an engine
unless REQUIRE_CONTAINER_TESTS=1; TEST_CONTAINER_FLAGS holds the engine flags this machine needs.
"""

import contextlib
import csv
import dis
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from conftest import ROOT, sigint_as_a_terminal_gives_it, tool_venv
from test_container import ENGINE, FLAGS, engine  # noqa: F401 (a fixture)

import sagemake
from sagemake.contract import serve as serving
from sagemake.executors.local.serving import ServerFailed, ServingContainer, ServingProcess, model_files

LABEL = "target"


def make(repo: Path, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    everything = {**os.environ, "VENV": tool_venv(), **(env or {})}
    return subprocess.run(["make", "-s", *args], cwd=repo, env=everything, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def no_engine(tmp: Path) -> dict:
    """A machine without a container engine: the process runtime."""
    return {"DOCKER_HOST": f"unix://{tmp}/no-engine.sock"}


@pytest.fixture(scope="module")
def project(trained_checkout):
    """A checkout that trained the example with `make train` (process runtime) and fetched its model."""
    return trained_checkout


class Reference:
    """The validation rows (features only, as the file writes them) and the model's own predictions for them."""

    def __init__(self, repo: Path, job: str):
        folder = repo / "models" / job
        with (repo / "data/validation/validation.csv").open(newline="") as handle:
            header, *lines = list(csv.reader(handle))
        keep = [i for i, name in enumerate(header) if name != LABEL]
        self.features = [header[i] for i in keep]
        assert self.features == json.loads((folder / "features.json").read_text())["features"]
        self.cells = [[line[i] for i in keep] for line in lines]
        table = np.array(self.cells, dtype=float)
        model = joblib.load(folder / "model.joblib")  # the model itself, not through any code of ours
        self.labels = model.predict(table).tolist()
        self.probabilities = model.predict_proba(table)[:, 1].tolist()
        assert len(self.labels) > 100 and set(self.labels) == {0, 1}

    def csv(self, rows=None) -> bytes:
        return "".join(",".join(cells) + "\n" for cells in (rows or self.cells)).encode()

    def expected(self) -> list[dict]:
        return [{"label": label, "probability": p} for label, p in zip(self.labels, self.probabilities, strict=True)]


@pytest.fixture(scope="module")
def reference(project) -> Reference:
    return Reference(*project)


def read_csv_predictions(body: bytes) -> list[dict]:
    return [{"label": int(label), "probability": float(p)} for label, p in csv.reader(body.decode().splitlines())]


@pytest.fixture(scope="module")
def image(project, engine) -> str:  # noqa: F811
    """The copy's image, built with `make build`: the one the fetched model's manifest names."""
    repo, job = project
    flags = {"CONTAINER_BUILD_FLAGS": FLAGS, "CONTAINER_RUN_FLAGS": FLAGS}
    result = make(repo, "build", env=flags, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    image = json.loads((repo / "models" / job / "manifest.json").read_text())["image"]
    assert subprocess.run([ENGINE, "image", "inspect", image], capture_output=True).returncode == 0
    return image


@pytest.fixture(scope="module", params=["process", "container"])
def runtime(request, project):
    repo, _ = project
    if request.param == "process":
        return ServingProcess(repo, Path(sys.executable))  # this run's Python has the image's requirements
    return ServingContainer(ENGINE, request.getfixturevalue("image"), FLAGS.split(), binds_to_port=True)  # its label


def start(runtime, project, tmp_path_factory, environment=None):
    repo, job = project
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as output:
        server = runtime.start(model_files(repo / "models" / job), free_port(), environment or {}, output)
    server.wait_ready(seconds=90, log=log)
    server.log = log
    return server


WORKERS = 3  # not this machine's CPU count: SAGEMAKER_MODEL_SERVER_WORKERS is obeyed


@pytest.fixture(scope="module")
def server(runtime, project, tmp_path_factory):
    server = start(runtime, project, tmp_path_factory, {"SAGEMAKER_MODEL_SERVER_WORKERS": str(WORKERS)})
    yield server
    assert server.stop() == 0, server.log.read_text()


def call(port: int, path="/invocations", body=b"", headers=None, method="POST"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body, headers or {})
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type"), answer.read()
    finally:
        connection.close()


# --- the contract ---------------------------------------------------------------------------------------------


def test_ping_answers_200_once_the_model_is_loaded_by_the_workers_asked_for(server):
    assert call(server.port, "/ping", method="GET")[0] == 200
    log = server.log.read_text()
    assert "serve: model loaded from /" in log and f"{WORKERS} worker(s) on port {server.port}" in log
    assert log.index("serve: model loaded") < log.index("Listening at:")  # nothing listens before the model loads
    deadline = time.monotonic() + 30
    while server.log.read_text().count("Started worker-") < WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.log.read_text().count("Started worker-") == WORKERS
    while '"GET /ping HTTP/1.1" 200' not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert '"GET /ping HTTP/1.1" 200' in server.log.read_text()  # each request in the access log


def test_a_server_with_no_model_stops_with_one_line(tmp_path):
    runtime = ServingProcess(ROOT, Path(sys.executable))
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = runtime.start([], free_port(), {}, output)
    with pytest.raises(ServerFailed, match=r"the model server stopped before answering /ping \(exit 1\): "
                                           r"serve: /\S+/model is empty: the model archive's files belong there"):
        server.wait_ready(seconds=60, log=log)
    assert server.stop() == 1 and not server.scratch.exists()


def test_the_servers_settings_come_from_sagemakers_variables(monkeypatch):
    monkeypatch.setattr(serving, "cpu_count", lambda: 5)
    settings = serving.options({})
    assert settings == {"address": "0.0.0.0", "port": 8080, "workers": 5, "timeout": 60}
    settings = serving.options({"SAGEMAKER_BIND_TO_PORT": "9000", "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
                                "SAGEMAKER_MODEL_SERVER_TIMEOUT": "120", "SAGEMAKE_BIND_HOST": "127.0.0.1"})
    assert settings == {"address": "127.0.0.1", "port": 9000, "workers": 2, "timeout": 120}
    assert serving.payload_limit({}) == 6 * 1024 * 1024
    assert serving.payload_limit({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"}) == 100 * 1024 * 1024
    for read, name, value in ((serving.options, "SAGEMAKER_MODEL_SERVER_WORKERS", "0"),
                              (serving.options, "SAGEMAKER_BIND_TO_PORT", "http"),
                              (serving.payload_limit, "SAGEMAKER_MAX_PAYLOAD_IN_MB", "101")):
        with pytest.raises(serving.ServeError, match=f"{name}='{value}' must be a whole number from"):
            read({name: value})


def test_the_model_is_the_models_own_files_read_only(runtime, server, project):
    repo, job = project
    files = [p.name for p in model_files(repo / "models" / job)]
    assert "manifest.json" not in files and "output" not in files and "model.joblib" in files
    if runtime.name == "container":  # what the container sees in /opt/ml/model, and that it cannot write there
        listing = subprocess.run([ENGINE, "exec", server.container, "ls", "/opt/ml/model"], capture_output=True,
                                 text=True, check=True).stdout.split()
        assert sorted(listing) == sorted(files)
        touched = subprocess.run([ENGINE, "exec", server.container, "touch", "/opt/ml/model/model.joblib"],
                                 capture_output=True, text=True)
        assert touched.returncode != 0 and "Read-only" in touched.stderr


def test_csv_rows_get_the_models_own_predictions(server, reference):
    status, kind, body = call(server.port, body=reference.csv(), headers={"Content-Type": "text/csv"})
    assert (status, kind) == (200, "text/csv")
    assert read_csv_predictions(body) == reference.expected()


def test_a_csv_header_naming_the_features_is_taken_in_any_order(server, reference):
    order = list(reversed(range(len(reference.features))))
    rows = [[reference.features[i] for i in order]] + [[cells[i] for i in order] for cells in reference.cells]
    status, _, body = call(server.port, body=reference.csv(rows), headers={"Content-Type": "text/csv; charset=utf-8"})
    assert status == 200
    assert read_csv_predictions(body) == reference.expected()


def test_json_in_its_shapes_and_answers_in_the_accept_type(server, reference):
    rows = [[float(v) for v in cells] for cells in reference.cells]
    expected = reference.expected()
    objects = [dict(zip(reference.features, row, strict=True)) for row in rows]
    for payload, want in (
        (rows, expected),
        ({"instances": rows}, expected),
        ({"instances": objects}, expected),
        (objects, expected),
        (rows[0], expected[:1]),
        (objects[0], expected[:1]),
    ):
        status, kind, body = call(server.port, body=json.dumps(payload).encode(),
                                  headers={"Content-Type": "application/json"})
        assert (status, kind) == (200, "application/json"), body
        assert json.loads(body) == {"predictions": want}
    # Accept chooses the answer's type, whatever the request's.
    status, kind, body = call(server.port, body=json.dumps(rows).encode(),
                              headers={"Content-Type": "application/json", "Accept": "text/csv"})
    assert (status, kind) == (200, "text/csv") and read_csv_predictions(body) == expected
    status, kind, body = call(server.port, body=reference.csv(),
                              headers={"Content-Type": "text/csv", "Accept": "text/html;q=0.9, application/json"})
    assert (status, kind) == (200, "application/json") and json.loads(body)["predictions"] == expected
    status, kind, _ = call(server.port, body=reference.csv(), headers={"Content-Type": "text/csv", "Accept": "*/*"})
    assert (status, kind) == (200, "text/csv")


SIX_MB = 6 * 1024 * 1024


def bad_requests(reference: Reference):
    """(what, request, status, the sentence's start)"""
    good = reference.csv().decode().splitlines()
    short = ",".join(reference.cells[0][:-1])
    return [
        ("no content type", {"body": reference.csv()}, 415, "no Content-Type: send text/csv or application/json"),
        ("text/plain", {"body": reference.csv(), "headers": {"Content-Type": "text/plain"}}, 415,
         "content type text/plain: send text/csv or application/json"),
        ("a short row", {"body": (good[0] + "\n" + short + "\n").encode(), "headers": {"Content-Type": "text/csv"}},
         400, "line 2 has 29 values; the model takes 30 (mean radius, mean texture, mean perimeter, ...)"),
        ("a word", {"body": (good[0] + "\n" + ",".join([*reference.cells[1][:3], "big", *reference.cells[1][4:]])
                             + "\n").encode(), "headers": {"Content-Type": "text/csv"}},
         400, "line 2, column 4: 'big' is not a number"),
        ("nan", {"body": f"{good[0]}\n{'nan,' * 29}1\n".encode(), "headers": {"Content-Type": "text/csv"}}, 400,
         "line 2, column 1: 'nan' is not a finite number"),
        ("the label's column", {"body": (",".join([*reference.features, LABEL]) + "\n").encode(),
                                "headers": {"Content-Type": "text/csv"}},
         400, "line 1 is a header with columns the model does not take (target): send the features alone"),
        ("an empty body", {"body": b"\n\n", "headers": {"Content-Type": "text/csv"}}, 400, "the body holds no rows"),
        ("not JSON", {"body": b"[[1, 2", "headers": {"Content-Type": "application/json"}}, 400,
         "the body is not JSON (Expecting ',' delimiter at line 1 column 7)"),
        ("an object row lacking a feature", {"body": json.dumps([{"mean radius": 1.0}]).encode(),
                                             "headers": {"Content-Type": "application/json"}},
         400, "row 1 lacks 'mean texture' (and 28 more)"),
        ("a string value", {"body": json.dumps([["1"] * 30]).encode(),
                            "headers": {"Content-Type": "application/json"}}, 400,
         "row 1, value 1: \"1\" is not a number"),
        ("an odd object", {"body": b'{"rows": []}', "headers": {"Content-Type": "application/json"}}, 400,
         'a JSON object must be {"instances": [rows]} or one row keyed by feature name'),
        ("over 6 MB", {"body": b"1" * (SIX_MB + 1), "headers": {"Content-Type": "text/csv"}}, 413,
         f"the payload of {SIX_MB + 1:,} bytes is over the limit of 6 MB ({SIX_MB:,} bytes)"),
        ("an Accept it cannot answer", {"body": reference.csv(), "headers": {"Content-Type": "text/csv",
                                                                             "Accept": "text/html"}},
         406, "cannot answer in text/html: accept text/csv or application/json"),
        ("an unknown path", {"path": "/predict"}, 404, "no such path /predict: use GET /ping or POST /invocations"),
        ("GET /invocations", {"method": "GET"}, 405, "/invocations takes POST, not GET"),
    ]


def test_bad_requests_get_a_4xx_and_one_sentence_and_the_server_goes_on(server, reference):
    for what, request, status, sentence in bad_requests(reference):
        got, kind, body = call(server.port, **request)
        text = body.decode()
        assert (got, text.strip()[:len(sentence)]) == (status, sentence), what
        assert kind.startswith("text/plain") and text.endswith("\n") and text.count("\n") == 1, what
        assert "Traceback" not in text and len(text) < 300, what
        assert call(server.port, "/ping", method="GET")[0] == 200, what  # still serving
    status, _, body = call(server.port, body=reference.csv(), headers={"Content-Type": "text/csv"})
    assert status == 200 and read_csv_predictions(body) == reference.expected()


def test_a_chunked_body_over_the_limit_is_refused_too(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        chunks = (b"1" * (1 << 20) for _ in range(7))  # 7 MB, no Content-Length
        connection.request("POST", "/invocations", chunks, {"Content-Type": "text/csv"}, encode_chunked=True)
        answer = connection.getresponse()
        assert answer.status == 413 and b"over the limit of 6 MB" in answer.read()
    finally:
        connection.close()
    assert call(server.port, "/ping", method="GET")[0] == 200


def test_sigterm_lets_the_request_in_flight_finish_then_stops(runtime, project, reference, tmp_path_factory):
    server = start(runtime, project, tmp_path_factory)
    body = reference.csv()
    head = (f"POST /invocations HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(head + body[:len(body) // 2])
        time.sleep(1)  # the worker is reading the body when SIGTERM comes
        server.process.send_signal(signal.SIGTERM)  # to the guard, which passes it on
        time.sleep(1)
        assert server.process.poll() is None  # draining, not gone
        client.sendall(body[len(body) // 2:])
        answer = b""
        while chunk := client.recv(1 << 16):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK"
    assert read_csv_predictions(rest.split(b"\r\n\r\n", 1)[1]) == reference.expected()
    assert server.process.wait(timeout=30) == 0, server.log.read_text()
    server.cleanup()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    assert "Shutting down granian" in server.log.read_text()


# --- make serve / make predict ---------------------------------------------------------------------------------


def test_make_predict_prints_the_models_predictions(project, reference, tmp_path):
    repo, job = project
    (tmp_path / "rows.csv").write_bytes(reference.csv())
    result = make(repo, "predict", f"FILE={tmp_path / 'rows.csv'}", env=no_engine(tmp_path))
    assert result.returncode == 0, result.stderr
    assert read_csv_predictions(result.stdout.encode()) == reference.expected()
    assert f"serve: model of {job}" in result.stderr and "runtime process (the job's Python" in result.stderr


def test_make_predict_bad_input_is_one_line_and_a_non_zero_exit(project, reference, tmp_path):
    repo, job = project
    env = no_engine(tmp_path)
    (tmp_path / "rows.txt").write_text("1,2\n")
    (tmp_path / "short.csv").write_text("1,2,3\n")
    for args, sentence in (
        ((), "sagemake: FILE is required: make predict FILE=rows.csv (or rows.json) [JOB=<job>]"),
        ((f"FILE={tmp_path}/none.csv",), f"sagemake: FILE={tmp_path}/none.csv does not exist"),
        ((f"FILE={tmp_path}/rows.txt",), f"sagemake: FILE={tmp_path}/rows.txt is neither .csv nor .json"),
        ((f"FILE={tmp_path}/short.csv", "JOB=sagemake-example-nope"),
         "sagemake: no fetched model of job sagemake-example-nope in models/, and no local job named "
         "'sagemake-example-nope' in jobs/: "),
        ((f"FILE={tmp_path}/short.csv",), f"sagemake: the model server refused {tmp_path}/short.csv (400): "
                                          "line 1 has 3 values; the model takes 30"),
    ):
        result = make(repo, "predict", *args, env=env)
        assert result.returncode != 0, args
        (said,) = [line for line in result.stderr.splitlines() if line.startswith("sagemake:")]
        assert said.startswith(sentence), (args, result.stderr)


@contextlib.contextmanager
def model_copy(repo: Path, job: str, **manifest):
    """A copy of the fetched model of job under another job's name, its manifest changed as given: its name."""
    copy = repo / "models" / f"{job}-copy"
    shutil.copytree(repo / "models" / job, copy)
    found = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**found, "job_name": copy.name, **manifest}))
    try:
        yield copy.name
    finally:
        shutil.rmtree(copy)


def test_the_models_manifest_not_the_settings_decides_what_serves_it(project, reference, tmp_path):
    """The image a model was trained with (its manifest's) serves it, whatever today's settings say: sagemake's
    own image's model as a process even when TRAINING_IMAGE now names another image; a model of another image,
    that no engine has, is never served as a process, and nothing advises LOCAL_RUNTIME=process for it."""
    repo, job = project
    env = no_engine(tmp_path)
    (tmp_path / "rows.csv").write_bytes(reference.csv())
    assert json.loads((repo / "models" / job / "manifest.json").read_text())["sagemake_image"] is True
    result = make(repo, "predict", f"FILE={tmp_path / 'rows.csv'}", env={**env, "TRAINING_IMAGE": "theirs:1.0"})
    assert result.returncode == 0, result.stderr
    assert read_csv_predictions(result.stdout.encode()) == reference.expected()
    with model_copy(repo, job, image="theirs:1.0", sagemake_image=False) as theirs:
        for runtime in ("auto", "container", "process"):
            result = make(repo, "predict", f"FILE={tmp_path / 'rows.csv'}", f"JOB={theirs}",
                          env={**env, "LOCAL_RUNTIME": runtime})
            assert result.returncode == 2, (runtime, result.stderr)
            (said,) = [line for line in result.stderr.splitlines() if line.startswith("sagemake:")]
            assert f"the model of {theirs} was trained with image theirs:1.0, not sagemake's" in said, said
            advice = said.rsplit(": ", 1)[1]
            assert "LOCAL_RUNTIME=process" not in advice and "runtime process" not in result.stderr, said
            if runtime == "process":
                assert advice == "serve it in a container with LOCAL_RUNTIME=auto or container", said
            else:
                assert said.startswith("sagemake: docker has no image theirs:1.0 (") and \
                    advice == "start the engine, and pull or build that image", said


def test_make_serve_on_a_port_in_use_names_the_port(project, tmp_path):
    repo, _ = project
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = make(repo, "serve", f"SERVE_PORT={port}", env=no_engine(tmp_path))
    assert result.returncode != 0
    assert f"sagemake: port {port} is in use (Address already in use): stop what listens there, or serve on " \
           f"another port with SERVE_PORT={port + 1}" in result.stderr


def started_serve(repo: Path, port: int, env: dict, *args: str) -> tuple[subprocess.Popen, bytes]:
    """`make serve` in a session of its own, as a terminal runs it, and what it said until the server was up."""
    serving = subprocess.Popen(["make", "-s", "serve", f"SERVE_PORT={port}", *args], cwd=repo,
                               env={**os.environ, "VENV": tool_venv(), **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=sigint_as_a_terminal_gives_it)
    output = b""
    deadline = time.monotonic() + 120
    while b"serve: Ctrl-C stops it" not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([serving.stdout], [], [], 1)
        if ready:
            chunk = os.read(serving.stdout.fileno(), 1 << 16)
            if not chunk:
                os.killpg(serving.pid, signal.SIGKILL)
                raise AssertionError(output.decode())
            output += chunk
    return serving, output


def endpoints(repo: Path) -> str:
    result = make(repo, "endpoints")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_serve_serves_until_ctrl_c_then_drains_and_stops(project, reference, tmp_path):
    repo, job = project
    port = free_port()
    serving, output = started_serve(repo, port, no_engine(tmp_path))
    try:
        text = output.decode()
        assert f"serve: http://127.0.0.1:{port}" in text
        assert f"curl -s -H 'Content-Type: text/csv' --data-binary @rows.csv http://127.0.0.1:{port}/invocations" \
               in text
        status, _, body = call(port, body=reference.csv(), headers={"Content-Type": "text/csv"})
        assert status == 200 and read_csv_predictions(body) == reference.expected()
        assert f"http://127.0.0.1:{port}" in endpoints(repo)  # while it runs
        os.killpg(serving.pid, signal.SIGINT)  # Ctrl-C in the terminal: make and the target get it, the server not
        rest, _ = serving.communicate(timeout=60)  # until every holder of the pipe, the server too, is gone
        output += rest
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
    text = output.decode()
    assert "serve: stopping (SIGTERM: the requests in flight finish first)" in text
    assert "serve: stopped" in text and "Shutting down granian" in text
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert f"http://127.0.0.1:{port}" not in endpoints(repo)  # stopped: no longer listed


def test_kill_9_of_make_serve_takes_its_server_along_and_endpoints_stops_listing_it(project, tmp_path):
    """make serve killed outright (kill -9: no Ctrl-C path runs) left its server on the port, and make endpoints
    listed it as served."""
    repo, job = project
    port = free_port()
    serving, _ = started_serve(repo, port, no_engine(tmp_path))
    try:
        assert call(port, "/ping", method="GET")[0] == 200
        os.killpg(serving.pid, signal.SIGKILL)  # make and sagemake at once; the server is in a session of its own
        serving.wait()
        deadline = time.monotonic() + 60  # the guard looks every 0.2 s; the server drains first
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.2)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        while scratch_of(repo / "models" / job) and time.monotonic() < deadline:  # the guard removes it last
            time.sleep(0.2)
        assert scratch_of(repo / "models" / job) == []  # the server's /opt/ml tree went with it
    finally:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGKILL)
    assert f"http://127.0.0.1:{port}" not in endpoints(repo)
    assert "serve" in (repo / "models/deployments.jsonl").read_text()  # recorded, and not listed


def scratch_of(model: Path) -> list[Path]:
    """The process runtime's /opt/ml trees (sagemake-serve-* in the temporary folder) that serve this model."""
    return [tree for tree in Path(tempfile.gettempdir()).glob("sagemake-serve-*")
            if any(link.resolve().parent == model.resolve() for link in (tree / "model").glob("*"))]


def test_make_predict_runs_the_jobs_image_when_the_engine_has_it(project, reference, image, tmp_path):
    repo, job = project
    rows = [[float(v) for v in cells] for cells in reference.cells]
    (tmp_path / "rows.json").write_text(json.dumps({"instances": rows}))
    result = make(repo, "predict", f"FILE={tmp_path / 'rows.json'}", f"JOB={job}", env={"CONTAINER_RUN_FLAGS": FLAGS})
    assert result.returncode == 0, result.stderr
    assert f"runtime container (docker, image {image}): the engine has the image" in result.stderr
    assert json.loads(result.stdout) == {"predictions": reference.expected()}


def test_an_image_without_serve_is_named_as_the_manifest_says_whose_it_is(project, engine, tmp_path):  # noqa: F811
    repo, job = project
    plain = "python:3.11-slim"  # in the engine (the offline base image), with no `serve`
    if subprocess.run([ENGINE, "image", "inspect", plain], capture_output=True).returncode != 0:
        pytest.fail(f"{plain} is not in the engine (tests/container_engine.sh provides it)")
    # A model of another image, served without repeating TRAINING_IMAGE, or with it: the same answer.
    with model_copy(repo, job, image=plain, sagemake_image=False) as theirs:
        results = [make(repo, "serve", f"JOB={theirs}", f"SERVE_PORT={free_port()}",
                        env={"CONTAINER_RUN_FLAGS": FLAGS, **settings})
                   for settings in ({}, {"TRAINING_IMAGE": plain})]
    for result in results:
        assert result.returncode != 0
        assert f"sagemake: image {plain} is not sagemake's and has neither an executable 'serve' on its PATH nor " \
               "an ENTRYPOINT (SageMaker runs `docker run IMAGE serve`): add one to its Dockerfile" in result.stderr
        assert "LOCAL_RUNTIME=process" not in result.stderr
    # A model of an image of ours without `serve` (an older one, or script mode's), whatever the settings say.
    with model_copy(repo, job, image=plain, sagemake_image=True) as ours:
        result = make(repo, "serve", f"JOB={ours}", f"SERVE_PORT={free_port()}",
                      env={"CONTAINER_RUN_FLAGS": FLAGS, "TRAINING_IMAGE": "theirs:1.0"})
    assert result.returncode != 0
    assert f"sagemake: image {plain} has no 'serve' (built before sagemake served models, or a script-mode " \
           "image, which does not serve yet): `make train` again" in result.stderr


# --- Ctrl-C at any moment -------------------------------------------------------------------------------------


class CtrlC:
    """Ctrl-C (a real SIGINT, to this process) at step at: the at-th line of sagemake's code run after the model
    server first answers /ping 200 (the lines of every function sagemake runs, one after another), or, with at=None,
    once `make serve` waits for its server, which counts the steps. Installed with sys.settrace for one serve().

    The signal is sent where Python itself would take one: at the next call (or loop jump, or function start) from
    that line on, never in the middle of a line, where no real signal can land (an exception raised there, at a
    `try:` say, would be one no real Ctrl-C can cause)."""

    SOURCE = os.path.dirname(sagemake.__file__)
    TAKEN = {dis.opmap[name] for name in ("PRECALL", "CALL", "CALL_FUNCTION_EX", "JUMP_BACKWARD", "RESUME")
             if name in dis.opmap}  # where the interpreter runs signal handlers

    def __init__(self, at: int | None):
        from sagemake.targets import serve as target

        self.at, self.waiting = at, target.serve.__code__
        self.armed = self.due = self.sent = self.late = False
        self.steps, self.where = 0, None

    def urlopen(self, real):
        def answered(url, *args, **kwargs):
            answer = real(url, *args, **kwargs)
            if str(url).endswith("/ping") and answer.status == 200:
                self.armed = True
            return answer
        return answered

    def trace(self, frame, event, arg):
        if (self.armed and not self.sent and not self.due and frame.f_code is subprocess.Popen.wait.__code__
                and frame.f_back is not None and frame.f_back.f_code is self.waiting):
            self.late = self.at is not None  # step at never came: this run took fewer steps than it should
            self.interrupt(frame)  # make serve waits for its server: every step is counted
        if self.due:
            frame.f_trace_opcodes = True
        return self.line if self.due or frame.f_code.co_filename.startswith(self.SOURCE) else None

    def line(self, frame, event, arg):
        if event == "line" and self.armed and not self.sent and not self.due:
            self.steps += 1
            if self.steps == self.at:
                self.due, self.where = True, f"{frame.f_code.co_name}:{frame.f_lineno}"
                caller = frame
                while caller is not None:  # wherever the next call comes, in this function or after it returns
                    caller.f_trace, caller.f_trace_opcodes = self.line, True
                    caller = caller.f_back
        elif event == "opcode" and self.due and frame.f_code.co_code[frame.f_lasti] in self.TAKEN:
            self.due = False
            self.interrupt(frame)
        return self.line

    def interrupt(self, frame):
        self.sent = True
        self.where = self.where or f"{frame.f_code.co_name}:{frame.f_lineno}"
        os.kill(os.getpid(), signal.SIGINT)


def serve_until_ctrl_c(config, job: str, at: int | None, monkeypatch) -> CtrlC:
    """One serve(), the way `make serve` runs it, with Ctrl-C at step at; asserts that the server and all it started
    are gone once serve() is over (it returned or raised): nothing waits for a guard's own stop here, since this
    process lives on."""
    import urllib.request

    from sagemake.executors.local import serving as runtimes
    from sagemake.targets.serve import serve

    ctrl_c, started = CtrlC(at), []

    class Recorded(runtimes.Server):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(runtimes, "Server", Recorded)
    monkeypatch.setattr(urllib.request, "urlopen", ctrl_c.urlopen(urllib.request.urlopen))
    sys.settrace(ctrl_c.trace)
    try:
        serve(config, job)
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
        monkeypatch.undo()
    assert ctrl_c.sent and not ctrl_c.late, f"no Ctrl-C was sent at step {at}"
    (server,) = started
    at = f"{at} ({ctrl_c.where})"
    assert server.process.returncode is not None, f"Ctrl-C at step {at}: the server's guard still runs"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    assert server.scratch is None or not server.scratch.exists()
    if server.container:
        listed = subprocess.run([ENGINE, "ps", "--all", "--quiet", "--filter", f"name=^{server.container}$"],
                                capture_output=True, text=True, check=True).stdout
        assert listed == "", f"Ctrl-C at step {at}: container {server.container} is still there"
    return ctrl_c


def ctrl_c_at_every_step(config, job: str, monkeypatch) -> int:
    """serve_until_ctrl_c at every step from the first /ping answer to `make serve` waiting: how many."""
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)  # a test run in the background ignores it
    try:
        serve_until_ctrl_c(config, job, None, monkeypatch)  # the first imports what the next ones have
        steps = serve_until_ctrl_c(config, job, None, monkeypatch).steps
        assert steps > 10  # the record, the lines said, and what leads there
        for at in range(1, steps + 1):
            serve_until_ctrl_c(config, job, at, monkeypatch)
        print(f"\n==> Ctrl-C at each of {steps} steps from the first /ping answer: nothing left running")
    finally:
        signal.signal(signal.SIGINT, ignored)
    return steps


def test_ctrl_c_at_any_moment_after_the_first_ping_stops_make_serve_and_its_server(project, monkeypatch):
    """A Ctrl-C just as /ping first answers once left the server running on its port (2 tries in 13); here it
    comes at each step between that answer and make serve waiting, in turn, with the process runtime."""
    from sagemake.config import resolve

    repo, job = project
    config = resolve(root=repo, environ={"LOCAL_RUNTIME": "process", "SERVE_PORT": str(free_port())})
    ctrl_c_at_every_step(config, job, monkeypatch)
