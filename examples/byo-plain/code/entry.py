"""Entrypoint of the plain BYO image: SageMaker runs `docker run IMAGE train`.

Follows the /opt/ml contract by hand, as AWS's docs describe it: hyperparameters
(all strings) from input/config/hyperparameters.json, the `training` channel from
input/data/training/, the model into model/, a failure reason into output/failure.
SAGEMAKER_BASE_DIR moves that root, so the code also runs without a container.
"""

import json
import os
import signal
import sys
from pathlib import Path

import joblib
import model  # from /opt/ml/code, beside this file

FAILURE_EXIT = 255
STOPPED_EXIT = 128 + signal.SIGTERM
CHANNEL = "training"


class Stopped(BaseException):
    """SIGTERM: SageMaker is stopping the job (a BaseException, so no `except Exception` swallows it)."""


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


# name -> (conversion from SageMaker's string, default)
HYPERPARAMETERS = {
    "alpha": (float, 1.0),
    "fit_intercept": (_boolean, True),
    "test_fraction": (float, 0.2),
}


def read_hyperparameters(path: Path) -> dict:
    """Converts the string values; SageMaker's own `sagemaker_*` keys are ignored, unknown keys refused."""
    raw = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("sagemaker_")}
    unknown = sorted(set(raw) - set(HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)} (known: {', '.join(HYPERPARAMETERS)})")
    values = {}
    for name, (convert, default) in HYPERPARAMETERS.items():
        try:
            values[name] = convert(str(raw[name])) if name in raw else default
        except ValueError as err:
            raise ValueError(f"hyperparameter {name}={raw[name]!r}: {err}") from None
    if values["alpha"] < 0:
        raise ValueError("hyperparameter alpha must be >= 0")
    if not 0 < values["test_fraction"] < 1:
        raise ValueError("hyperparameter test_fraction must be between 0 and 1")
    return values


def train(base: Path) -> None:
    hp = read_hyperparameters(base / "input/config/hyperparameters.json")
    print(f"hyperparameters: {json.dumps(hp, sort_keys=True)}")
    features, target = model.load_csv_folder(base / "input/data" / CHANNEL)
    print(f"{len(target)} rows x {features.shape[1]} features")
    fitted, metrics = model.fit(features, target, hp["alpha"], hp["fit_intercept"], hp["test_fraction"])
    for name, value in metrics.items():  # train_rmse first: a loose `rmse=` regex would take it
        print(f"{name}={value:.6f}")
    joblib.dump(fitted, base / "model/model.joblib")
    (base / "output/data").mkdir(parents=True, exist_ok=True)
    (base / "output/data/metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def write_failure(base: Path, reason: str) -> None:
    (base / "output").mkdir(parents=True, exist_ok=True)
    (base / "output/failure").write_text(reason[:1000] + "\n")
    print(f"failed: {reason}", file=sys.stderr)


def _on_sigterm(signum, frame):
    raise Stopped()


def main(argv: list[str]) -> int:
    if argv != ["train"]:
        print(f"usage: {Path(__file__).name} train (this image only trains; got {argv})", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    try:
        train(base)
        return 0
    except Stopped:
        write_failure(base, "Stopped by SIGTERM before training finished.")
        return STOPPED_EXIT
    except Exception as err:  # every failure must leave its reason in output/failure
        write_failure(base, " ".join(f"{type(err).__name__}: {err}".split()))
        return FAILURE_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
