"""Trains the example model (replace with yours).

The container contract (sagemake.contract.train) calls `train()` with validated
hyperparameters and a folder per channel, and publishes what it returns as
the job's metrics. Anything raised fails the job with its message as reason.
A `checkpoint_dir` parameter (optional) gets /opt/ml/checkpoints when the job
has a CheckpointConfig: this model saves itself there as it trains (after its
first step of CHECKPOINT_ROUNDS rounds, then at most every CHECKPOINT_SECONDS,
always between two steps) and, started again after an interruption, resumes
from the last save to a model that predicts exactly as an uninterrupted one.
After each step but the last it prints `validation:roc_auc=<value>`: the
objective as training goes, on which a tuner stops a hopeless trial early (the
last line printed is the final value, as SageMaker keeps it).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from trainer.hyperparameters import Hyperparameters

MODEL_FILE = "model.joblib"
CHECKPOINT_FILE = "checkpoint.joblib"
CHECKPOINT_ROUNDS = 50  # rounds per step, resumed or not: a resumed model is the same model
CHECKPOINT_SECONDS = 5


def load_channel(directory: Path, target: str):
    """Every CSV file of a channel, as features, labels and feature names."""
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
    if not header or target not in header:
        raise ValueError(
            f"label column '{target}' not found in channel '{directory.name}': set hyperparameter target=<column>"
        )
    if not rows:
        raise ValueError(f"channel '{directory.name}' has a header but no rows")
    label_at = header.index(target)
    try:
        table = np.array(rows, dtype=float)
    except ValueError as err:
        raise ValueError(f"channel '{directory.name}' has a value that is not a number ({err})") from None
    features = np.delete(table, label_at, axis=1)
    names = [name for i, name in enumerate(header) if i != label_at]
    return features, table[:, label_at].astype(int), names


def train(hp: Hyperparameters, channels: dict[str, Path], model_dir: Path, output_dir: Path,
          checkpoint_dir: Path | None = None) -> dict[str, float]:
    for needed in ("train", "validation"):
        if needed not in channels:
            raise ValueError(f"the example model needs a '{needed}' channel: add it to CHANNELS")
    x_train, y_train, names = load_channel(channels["train"], hp.target)
    x_val, y_val, val_names = load_channel(channels["validation"], hp.target)
    if val_names != names:
        raise ValueError("channels 'train' and 'validation' have different columns")
    print(f"training on {len(y_train)} rows x {len(names)} features, validating on {len(y_val)} rows", flush=True)

    def progress(partial: GradientBoostingClassifier) -> None:
        print(f"validation:roc_auc={roc_auc_score(y_val, partial.predict_proba(x_val)[:, 1]):.6f}", flush=True)

    model = _fit(hp, x_train, y_train, checkpoint_dir, progress)
    scores = model.predict_proba(x_val)[:, 1]
    predicted = (scores >= 0.5).astype(int)
    metrics = {
        "train:accuracy": accuracy_score(y_train, model.predict(x_train)),
        "validation:accuracy": accuracy_score(y_val, predicted),
        "validation:f1": f1_score(y_val, predicted),
        "validation:roc_auc": roc_auc_score(y_val, scores),
        "validation:pr_auc": average_precision_score(y_val, scores),
    }

    joblib.dump(model, model_dir / MODEL_FILE)
    (model_dir / "features.json").write_text(json.dumps({"features": names, "target": hp.target}, indent=2) + "\n")
    _plot_curves(y_val, scores, metrics, model_dir)
    return {name: float(value) for name, value in metrics.items()}


def _fit(hp: Hyperparameters, x, y, checkpoint_dir: Path | None, progress) -> GradientBoostingClassifier:
    """Boosting in steps of CHECKPOINT_ROUNDS rounds (warm start), each step saved to checkpoint_dir; a save
    made with the same hyperparameters is taken up where it stopped. progress(model) after each step but the
    last (the final metrics say the last)."""
    model = GradientBoostingClassifier(
        n_estimators=hp.n_estimators,
        learning_rate=hp.learning_rate,
        max_depth=hp.max_depth,
        subsample=hp.subsample,
        random_state=hp.seed,
        warm_start=True,
    )
    checkpoint = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir else None
    if checkpoint and checkpoint.is_file():
        saved = joblib.load(checkpoint)
        if saved["hyperparameters"] == hp.model_dump():
            model = saved["model"]
            print(f"resumed from the checkpoint at round {model.n_estimators_} of {hp.n_estimators}", flush=True)
        else:
            print("a checkpoint with other hyperparameters is ignored: training from the start", flush=True)
    done, saved_at = getattr(model, "n_estimators_", 0), -CHECKPOINT_SECONDS  # the first step is saved
    while done < hp.n_estimators:
        done = min(hp.n_estimators, done + CHECKPOINT_ROUNDS)
        model.set_params(n_estimators=done)
        model.fit(x, y)
        if checkpoint and time.monotonic() - saved_at >= CHECKPOINT_SECONDS:
            saved_at = time.monotonic()
            partial = checkpoint.with_suffix(".partial")
            joblib.dump({"hyperparameters": hp.model_dump(), "model": model}, partial)
            partial.replace(checkpoint)  # a save is whole or absent, whenever SIGKILL comes
        if done < hp.n_estimators:
            progress(model)
    return model.set_params(warm_start=False)


def _plot_curves(labels, scores, metrics, model_dir: Path) -> None:
    """ROC and precision-recall curves on the validation channel, saved beside the model."""
    from matplotlib import pyplot as plt

    for name, figure in curve_figures(labels, scores, metrics).items():
        figure.savefig(model_dir / name, metadata={"Software": None})
        plt.close(figure)


def curve_figures(labels, scores, metrics) -> dict:
    """{file name: matplotlib Figure}: the ROC curve with the chance diagonal, and the precision-recall curve with
    its baseline (the share of positives, what a model that guesses gets). Part of the model, so not titled with
    the job's name: the same inputs give the same model bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    positives = float(np.mean(labels))
    figures = {}
    for name, x, y, xlabel, ylabel, title, chance, chance_label in (
        ("roc.png", fpr, tpr, "false positive rate", "true positive rate",
         f"ROC (AUC {metrics['validation:roc_auc']:.3f})", ([0, 1], [0, 1]), "chance"),
        ("pr.png", recall, precision, "recall", "precision", f"PR (AP {metrics['validation:pr_auc']:.3f})",
         ([0, 1], [positives, positives]), f"baseline (positive rate {positives:.2f})"),
    ):
        figure, axes = plt.subplots(figsize=(4, 4), dpi=100)
        axes.plot(x, y, label="model")
        axes.plot(*chance, linestyle="--", color="grey", label=chance_label)
        axes.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
        axes.legend(loc="lower right" if name == "roc.png" else "lower left", fontsize=8)
        figure.tight_layout()
        figures[name] = figure
    return figures
