"""Trains one XGBoost model on every host of the job together (data-parallel `hist` trees).

The hosts come from SageMaker's resourceconfig.json: with several, the first
runs XGBoost's tracker, every host joins it by the first host's name (its rank
is its place in the host list) and trains on the files of `train` it was
given; XGBoost sums the split histograms of all hosts, so each ends with the
same model, which the first host alone saves.
"""

from __future__ import annotations

import json
import os
import socket
import time
import zlib
from pathlib import Path

import numpy as np
import xgboost as xgb
from xgboost import collective
from xgboost.tracker import RabitTracker

from sagemake.contract import layout
from trainer.hyperparameters import Hyperparameters

MODEL_FILE = "model.json"
WAIT_SECONDS = 600  # for the other hosts to join, and for each step of the collective
PORTS = (20000, 10000)  # the tracker's port, when not given: the first of these plus the job name's hash


def load(directory: Path, target: str):
    """Every CSV file of a channel on this host: features, labels, feature names."""
    files = sorted(directory.rglob("*.csv"))
    if not files:
        raise ValueError(f"channel '{directory.name}' has no .csv file on this host: give it at least one per host")
    header = files[0].read_text().split("\n", 1)[0].strip().split(",")
    if target not in header:
        raise ValueError(f"label column '{target}' not found in channel '{directory.name}': set target=<column>")
    table = np.vstack([np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2) for path in files])
    at = header.index(target)
    return np.delete(table, at, axis=1), table[:, at], [name for name in header if name != target]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The area under the ROC curve: the chance a positive row scores above a negative one (ties count half)."""
    order = scores.argsort(kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # tied scores share their mean rank
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    positives = labels == 1
    count = positives.sum()
    return float((ranks[positives].sum() - count * (count + 1) / 2) / (count * (len(labels) - count)))


def _tracker(workers: int, address: str, port: int) -> RabitTracker:
    """XGBoost's tracker, started; the port may still be held a minute by the last job's closed connections
    (the tracker does not reuse it), so binding is tried again meanwhile."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            tracker = RabitTracker(n_workers=workers, host_ip=address, port=port, sortby="task", timeout=WAIT_SECONDS)
            break
        except xgb.core.XGBoostError as err:
            if "Address already in use" not in str(err) or time.monotonic() > deadline:
                raise
            print(f"tracker: port {port} is still held: trying again", flush=True)
            time.sleep(5)
    tracker.start()
    return tracker


def train(hp: Hyperparameters, channels: dict[str, Path], model_dir: Path, output_dir: Path) -> dict[str, float]:
    resource = json.loads((layout.base_dir() / layout.RESOURCE_CONFIG).read_text())
    hosts, here = resource["hosts"], resource["current_host"]
    rank = hosts.index(here)
    x, y, names = load(channels["train"], hp.target)
    x_val, y_val, _ = load(channels["validation"], hp.target)
    cores = ",".join(map(str, sorted(os.sched_getaffinity(0))))  # XGBoost's threads: one per core it may use
    print(f"{here}: rank {rank} of {len(hosts)}, training on its {len(y)} rows on CPU(s) {cores}", flush=True)
    params = {"objective": "binary:logistic", "tree_method": "hist", "eta": hp.eta, "max_depth": hp.max_depth,
              "seed": hp.seed}

    def fit() -> xgb.Booster:
        return xgb.train(params, xgb.DMatrix(x, label=y, feature_names=names), num_boost_round=hp.num_round)

    if len(hosts) == 1:
        booster = fit()
    else:
        leader = socket.gethostbyname(hosts[0])
        port = hp.tracker_port or PORTS[0] + zlib.crc32(os.environ["TRAINING_JOB_NAME"].encode()) % PORTS[1]
        tracker = None
        if rank == 0:
            tracker = _tracker(len(hosts), leader, port)
        with collective.CommunicatorContext(dmlc_communicator="rabit", dmlc_tracker_uri=leader,
                                            dmlc_tracker_port=port, dmlc_task_id=str(rank),
                                            dmlc_retry=60, dmlc_timeout=WAIT_SECONDS):
            print(f"{here}: joined the tracker on {hosts[0]} as rank {collective.get_rank()}", flush=True)
            booster = fit()
        if tracker:
            tracker.wait_for(WAIT_SECONDS)
    scores = booster.predict(xgb.DMatrix(x_val, feature_names=names))
    clipped = np.clip(scores, 1e-15, 1 - 1e-15)
    metrics = {
        "validation:auc": auc(y_val, scores),
        "validation:logloss": float(-np.mean(y_val * np.log(clipped) + (1 - y_val) * np.log(1 - clipped))),
        "validation:accuracy": float(np.mean((scores >= 0.5) == y_val)),
    }
    if rank == 0:  # the job's model is every host's /opt/ml/model put together: one writes it
        booster.save_model(model_dir / MODEL_FILE)
        (model_dir / "features.json").write_text(json.dumps({"features": names, "target": hp.target}) + "\n")
    return metrics
