"""The model of the plain BYO example: ridge regression on headerless CSV files.

Kept apart from entry.py so that entry.py imports it from /opt/ml/code: if a
mount hides that folder, the job fails loudly instead of training something else.
"""

from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0


def load_csv_folder(folder: Path):
    """All *.csv files of a channel, concatenated: no header, the last column is the target."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise ValueError(f"no .csv file in channel folder {folder}")
    table = np.vstack([np.loadtxt(path, delimiter=",", ndmin=2) for path in files])
    if table.shape[1] < 2:
        raise ValueError("the CSV files need at least one feature column and the target column")
    return table[:, :-1], table[:, -1]


def fit(features, target, alpha: float, fit_intercept: bool, test_fraction: float):
    """Fits on all rows but a held-out share (fixed seed), and scores on that share."""
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=test_fraction, random_state=SPLIT_SEED
    )
    model = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "train_rmse": root_mean_squared_error(y_train, model.predict(x_train)),
        "rmse": root_mean_squared_error(y_test, predicted),
        "mae": mean_absolute_error(y_test, predicted),
        "r2": r2_score(y_test, predicted),
    }
    return model, {name: float(value) for name, value in metrics.items()}
