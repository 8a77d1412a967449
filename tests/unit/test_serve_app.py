"""The serving app in-process: a request's rows reach the model's predict() in one call."""

import io
import json
from types import SimpleNamespace

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
