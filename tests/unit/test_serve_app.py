"""The serving app: a request's rows reach the model's predict() in one call; a stuck predict ends its worker."""

import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

from conftest import ROOT

from sagemake.contract import serve


def counting_model(tmp_path):
    """A model whose predict() sums each row and keeps every batch it was given."""
    batches = []
    module = SimpleNamespace(load=lambda model_dir: "weights",
                             features=lambda model: ["a", "b"],
                             predict=lambda model, rows: batches.append(rows) or [sum(row) for row in rows])
    return serve.Model(module, tmp_path), batches


def post(app, body: bytes, kind: str) -> tuple[str, bytes]:
    answered = {}
    environ = {"PATH_INFO": "/invocations", "REQUEST_METHOD": "POST", "CONTENT_TYPE": kind,
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    chunks = app(environ, lambda status, headers: answered.update(status=status))
    return answered["status"], b"".join(chunks)


def test_a_requests_rows_are_predicted_in_one_call(tmp_path):
    model, batches = counting_model(tmp_path)
    app = serve.App(model, serve.DEFAULT_PAYLOAD_MB * serve.MB)
    status, body = post(app, b"a,b\n1,2\n3,4\n5,6\n", serve.CSV)
    assert (status, body) == ("200 OK", b"3.0\n7.0\n11.0\n")
    assert batches == [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]]
    status, body = post(app, json.dumps({"instances": [[1, 1], [2, 2]]}).encode(), serve.JSON)
    assert (status, json.loads(body)) == ("200 OK", {"predictions": [2.0, 4.0]})
    assert batches[1:] == [[[1.0, 1.0], [2.0, 2.0]]]


STUCK = """
import io, sys, time
from types import SimpleNamespace
from sagemake.contract import serve
module = SimpleNamespace(load=lambda model_dir: None, predict=lambda model, rows: time.sleep(60) or [1])
app = serve.App(serve.Model(module, "."), serve.MB, timeout=1)
environ = {"PATH_INFO": "/invocations", "REQUEST_METHOD": "POST", "CONTENT_TYPE": "text/csv",
           "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"1\\n")}
app(environ, lambda status, headers: None)
print("answered")
"""


def test_a_predict_past_the_timeout_ends_its_worker_with_one_line():
    done = subprocess.run([sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=50,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("serve: a predict ran past 1 s (SAGEMAKER_MODEL_SERVER_TIMEOUT): this worker stops, its "
                           "caller's connection is dropped, and a new worker starts\n")
