"""Predictions from the example model (replace with yours, beside train.py).

sagemake's server (`serve` in the image, sagemake.contract.serve) calls:
- load(model_dir) once, before it answers /ping: the model, from the files
  train() wrote into model_dir (SageMaker unpacks model.tar.gz there);
- features(model) (optional): the feature names, in the order rows give
  them. With it, the server checks each row's width, takes a CSV header
  naming them and JSON objects keyed by them;
- predict(model, rows) for each request: rows is a list of rows, each a list
  of floats in that order; it returns one prediction per row (a number, a
  string, or a dict or list of them). Raise ValueError with one sentence
  for rows your model cannot take: the caller gets a 400 with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import joblib
import numpy as np

from trainer.train import MODEL_FILE

FEATURES_FILE = "features.json"  # as train() writes it: {"features": [...], "target": ...}


class Model(NamedTuple):
    estimator: object
    features: list[str]


def load(model_dir: Path) -> Model:
    model_dir = Path(model_dir)
    names = json.loads((model_dir / FEATURES_FILE).read_text())["features"]
    return Model(joblib.load(model_dir / MODEL_FILE), names)


def features(model: Model) -> list[str]:
    return model.features


def predict(model: Model, rows: list[list[float]]) -> list[dict]:
    """The class (0 malignant, 1 benign) and the probability of class 1, for each row."""
    table = np.asarray(rows, dtype=float)
    labels = model.estimator.predict(table)
    probabilities = model.estimator.predict_proba(table)[:, 1]
    return [{"label": int(label), "probability": float(p)} for label, p in zip(labels, probabilities, strict=True)]
