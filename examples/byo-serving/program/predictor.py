"""The flask app gunicorn runs: GET /ping and POST /invocations, over the model in /opt/ml/model.

Each worker loads the model once, as it starts; a worker that cannot load it
never answers, so /ping is 200 only where predictions can be made. Rows come as
text/csv, one a line, the features alone (no class column, no header); the
answer is text/csv too, one predicted class a line, in the rows' order.
"""

import io

import flask
import joblib
import numpy as np

MODEL = joblib.load("/opt/ml/model/model.joblib")

app = flask.Flask(__name__)


def plain(status: int, sentence: str) -> flask.Response:
    return flask.Response(sentence + "\n", status=status, mimetype="text/plain")


@app.route("/ping", methods=["GET"])
def ping():
    return plain(200, "ok")


@app.route("/invocations", methods=["POST"])
def invocations():
    if flask.request.mimetype != "text/csv":
        return plain(415, f"this model takes text/csv, not {flask.request.mimetype or 'no content type'}")
    text = flask.request.get_data(as_text=True)
    try:
        rows = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
    except ValueError as err:
        return plain(400, f"the rows are not numbers: {err}")
    if rows.size == 0:
        return plain(400, "the body holds no rows")
    if rows.shape[1] != MODEL.n_features_in_:
        return plain(400, f"each row needs {MODEL.n_features_in_} values, not {rows.shape[1]}")
    predicted = MODEL.predict(rows)
    return flask.Response("".join(f"{int(label)}\n" for label in predicted), mimetype="text/csv")
