"""Trains the regression example: ElasticNet on standardized features.

The container contract (sagemake.contract.train) calls `train()` with validated
hyperparameters and a folder per channel, and publishes what it returns as the
job's metrics. Anything raised fails the job with its message as the reason.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from trainer.hyperparameters import Hyperparameters

LABEL = "target"
MODEL_FILE = "model.joblib"


def load_channel(directory: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every CSV file of a channel (each with the same header) as features, target and feature names."""
    files = sorted(directory.rglob("*.csv"))
    if not files:
        raise ValueError(f"channel '{directory.name}' has no .csv file: run `make data` or add your CSV files")
    header, rows = None, []
    for path in files:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            this_header = next(reader, None)
            if header is not None and this_header != header:
                raise ValueError(f"{path.name} has other columns than the first file of channel '{directory.name}'")
            header = this_header
            rows += [row for row in reader if row]
    if not header or LABEL not in header:
        raise ValueError(f"channel '{directory.name}' has no '{LABEL}' column")
    if not rows:
        raise ValueError(f"channel '{directory.name}' has a header but no rows")
    try:
        table = np.array(rows, dtype=float)
    except ValueError as err:
        raise ValueError(f"channel '{directory.name}' has a value that is not a number ({err})") from None
    at = header.index(LABEL)
    return np.delete(table, at, axis=1), table[:, at], [name for name in header if name != LABEL]


def select(names: list[str], wanted: list[str] | None) -> list[int]:
    """Column indexes of the wanted features (all when None); an unknown name is an error naming the known ones."""
    if wanted is None:
        return list(range(len(names)))
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise ValueError(f"feature_subset names unknown feature(s) {', '.join(unknown)} (known: {', '.join(names)})")
    return [names.index(name) for name in wanted]


def train(hp: Hyperparameters, channels: dict[str, Path], model_dir: Path, output_dir: Path) -> dict[str, float]:
    for needed in ("train", "validation"):
        if needed not in channels:
            raise ValueError(f"the regression model needs a '{needed}' channel: add it to CHANNELS")
    x_train, y_train, names = load_channel(channels["train"])
    x_val, y_val, val_names = load_channel(channels["validation"])
    if val_names != names:
        raise ValueError("channels 'train' and 'validation' have different columns")
    columns = select(names, hp.feature_subset)
    used = [names[i] for i in columns]
    x_train, x_val = x_train[:, columns], x_val[:, columns]
    if hp.clip_target is not None:  # only the training target: validation scores the real values
        y_train = np.minimum(y_train, hp.clip_target)
    print(
        f"training on {len(y_train)} rows x {len(used)} features ({', '.join(used)}), validating on {len(y_val)} rows",
        flush=True,
    )

    model = make_pipeline(
        StandardScaler(),
        ElasticNet(alpha=hp.alpha, l1_ratio=hp.l1_ratio, max_iter=hp.max_iter, random_state=hp.seed),
    )
    model.fit(x_train, y_train)
    predicted = model.predict(x_val)
    metrics = {
        "validation:rmse": root_mean_squared_error(y_val, predicted),
        "validation:mae": mean_absolute_error(y_val, predicted),
        "validation:r2": r2_score(y_val, predicted),
        "train:rmse": root_mean_squared_error(y_train, model.predict(x_train)),
    }

    joblib.dump(model, model_dir / MODEL_FILE)
    features = {"features": used, "target": LABEL, "clip_target": hp.clip_target}
    (model_dir / "features.json").write_text(json.dumps(features, indent=2) + "\n")
    return {name: float(value) for name, value in metrics.items()}
