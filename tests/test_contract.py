"""docker/train run for real on a prepared /opt/ml tree (SAGEMAKER_BASE_DIR moves the root)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from conftest import ROOT

from sagemake.request import metric_definitions
from trainer.metrics import METRICS

TRAIN = ROOT / "docker" / "train"


def make_tree(base, data, hyperparameters=None, channels=("train", "validation")):
    """The tree SageMaker lays out before `train` starts."""
    (base / "input/config").mkdir(parents=True)
    (base / "model").mkdir()
    (base / "output").mkdir()
    (base / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    (base / "input/config/inputdataconfig.json").write_text(
        json.dumps({c: {"TrainingInputMode": "File"} for c in channels}))
    for channel in channels:
        source = data / channel
        if source.is_dir():
            shutil.copytree(source, base / "input/data" / channel)
        else:
            (base / "input/data" / channel).mkdir(parents=True)
    return base


def start_train(base):
    env = {"PATH": os.environ["PATH"], "SAGEMAKER_BASE_DIR": str(base), "PYTHONPATH": str(ROOT / "src")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")})
    return subprocess.Popen([sys.executable, str(TRAIN)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_train(base):
    process = start_train(base)
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def test_trains_writes_model_metrics_and_metric_lines(tmp_path, example_data):
    base = make_tree(tmp_path / "ml", example_data, {"n_estimators": "30", "sagemaker_program": "ignored"})
    code, output = run_train(base)
    assert code == 0, output
    assert sorted(p.name for p in (base / "model").iterdir()) == ["features.json", "model.joblib", "pr.png", "roc.png"]
    metrics = json.loads((base / "output/data/metrics.json").read_text())
    assert set(metrics) == set(METRICS)
    assert metrics["validation:roc_auc"] > 0.95
    for definition in metric_definitions():  # what SageMaker's regexes will read from the log
        found = re.findall(definition["Regex"], output)
        assert found and abs(float(found[-1]) - metrics[definition["Name"]]) < 1e-6, definition
    assert not (base / "output/failure").exists()
    assert '"n_estimators":30' in output


def test_bad_hyperparameters_fail_with_the_field_named(tmp_path, example_data):
    base = make_tree(tmp_path / "ml", example_data, {"max_depth": "deep", "colour": "red"})
    code, _ = run_train(base)
    assert code == 255
    failure = (base / "output/failure").read_text()
    assert failure.startswith("hyperparameter max_depth='deep': input should be a valid integer")
    assert "unknown hyperparameter 'colour'" in failure
    assert not list((base / "model").iterdir())


def test_empty_channel_fails_naming_it(tmp_path, example_data):
    base = make_tree(tmp_path / "ml", example_data, channels=("train", "validation", "extra"))
    code, _ = run_train(base)
    assert code == 255
    assert (base / "output/failure").read_text() == "channel 'extra' is empty: put its files in input/data/extra/\n"


def test_an_exception_in_training_becomes_the_failure_reason(tmp_path, example_data):
    base = make_tree(tmp_path / "ml", example_data)
    (base / "input/data/train/train.csv").write_text("a,b,target\n1,x,0\n")
    code, output = run_train(base)
    assert code == 255
    failure = (base / "output/failure").read_text()
    assert failure.startswith("ValueError: channel 'train' has a value that is not a number")
    assert "Traceback" in output  # the full story stays in the log


def test_failure_reason_is_cut_to_what_sagemaker_keeps(tmp_path, example_data):
    base = make_tree(tmp_path / "ml", example_data, {"target": "x" * 3000})
    code, _ = run_train(base)
    assert code == 255
    assert len((base / "output/failure").read_text()) == 1024 + 1


def test_sigterm_stops_training_cleanly(tmp_path, example_data):
    base = make_tree(tmp_path / "ml", example_data, {"n_estimators": "5000", "learning_rate": "0.01"})
    process = start_train(base)
    for line in process.stdout:  # wait until the model is being fitted
        if line.startswith("training on"):
            break
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output = process.stdout.read()
    process.wait(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert time.monotonic() - sent < 20
    assert (base / "output/failure").read_text() == "Training stopped by SIGTERM before it finished.\n"
    assert "Traceback" not in output
