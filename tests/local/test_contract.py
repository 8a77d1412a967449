"""docker/train run for real on a prepared /opt/ml tree (SAGEMAKER_BASE_DIR moves the root)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from conftest import ROOT, copy_repo, in_process

from sagemake.jobs.training import metric_definitions, metric_word
from trainer.metrics import METRICS

NAMES = [metric_word(word)[0] for word in METRICS]  # without their :max

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
    assert set(metrics) == set(NAMES)
    assert metrics["validation:roc_auc"] > 0.95
    for definition in metric_definitions(NAMES):  # what SageMaker's regexes will read from the log
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


class Schema:
    """A trainer schema with a list, a dict, an Optional and a text field, as a user's may have."""

    @staticmethod
    def model():
        from typing import Optional

        from pydantic import BaseModel, ConfigDict

        class Hyperparameters(BaseModel):
            model_config = ConfigDict(extra="forbid")
            features: Optional[list[str]] = None
            weights: dict[str, float] = {}
            cap: Optional[float] = None
            note: str = "[not json]"

        return Hyperparameters


def test_lists_dicts_and_unset_optionals_travel_as_sagemaker_strings_and_parse_back():
    from sagemake.contract.train import as_strings, parse_hyperparameters

    model = Schema.model()
    sent = as_strings(parse_hyperparameters({"features": '["bmi", "bp"]', "weights": '{"a": 1}'}, model))
    assert sent == {"features": '["bmi", "bp"]', "weights": '{"a": 1.0}', "note": "[not json]"}  # cap unset: omitted
    assert "null" not in sent.values()
    back = parse_hyperparameters(sent, model)
    assert back.features == ["bmi", "bp"] and back.weights == {"a": 1.0} and back.cap is None
    assert parse_hyperparameters({"features": "bmi,bp"}, model).features == ["bmi", "bp"]  # shell-friendly lists
    assert parse_hyperparameters({"note": '["kept as text"]'}, model).note == '["kept as text"]'


LIST_AND_OPTIONAL = """
    hidden: list[int] = Field([16, 8], description="units per layer")
    clip: Optional[float] = Field(0.5, gt=0, description="clip the gradients (None: never)")
    tag: str = Field("run", description="a text that may read None")
"""


def test_a_single_value_is_a_list_of_one_and_none_sets_an_optional_to_none(tmp_path, example_data):
    """HP='hidden=16' for a list was refused (16 is not a list); HP='clip=None' was dropped on its way to the job,
    which then trained with the default 0.5. Now, on a project's own schema: checked on this machine, sent, and
    read by the job as given; 'clip=' is None too, and a text field keeps the word None."""
    from sagemake.config import resolve
    from sagemake.executors.local.executor import LocalExecutor
    from sagemake.jobs.training import plan

    repo = copy_repo(tmp_path / "my project")
    schema = repo / "src/trainer/hyperparameters.py"
    schema.write_text("from typing import Optional\n" + schema.read_text() + LIST_AND_OPTIONAL)
    for clip in ("None", ""):
        config = resolve(root=repo, environ={"DATA_DIR": str(example_data), "JOBS_DIR": str(tmp_path / "jobs"),
                                            "HP": f"n_estimators=5 hidden=16 clip={clip} tag=None"})
        executor = LocalExecutor(config)
        request = plan(config, executor)
        assert {k: request["HyperParameters"][k] for k in ("hidden", "clip", "tag")} == {
            "hidden": "[16]", "clip": "None", "tag": "None"}
        record = executor.run(request, in_process(repo))
        assert record["TrainingJobStatus"] == "Completed", record.get("FailureReason")
        log = (tmp_path / "jobs" / request["TrainingJobName"] / "train.log").read_text()
        assert '"hidden":[16],"clip":null,"tag":"None"' in log  # what train() was given
    untouched = resolve(root=repo, environ={"DATA_DIR": str(example_data), "HP": "hidden=16,8"})
    assert plan(untouched, LocalExecutor(untouched))["HyperParameters"]["hidden"] == "[16, 8]"


def test_a_module_the_image_lacks_is_named_with_the_file_to_add_it_to(tmp_path, example_data):
    base = make_tree(tmp_path / "ml", example_data)
    code = tmp_path / "code"
    shutil.copytree(ROOT / "src", code, ignore=shutil.ignore_patterns("__pycache__"))
    with (code / "trainer/train.py").open("a") as handle:
        handle.write("\nimport yaml_the_image_lacks  # noqa\n")
    env = {"PATH": os.environ["PATH"], "SAGEMAKER_BASE_DIR": str(base), "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, str(TRAIN)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 255
    assert (base / "output/failure").read_text().strip() == (
        "ModuleNotFoundError: No module named 'yaml_the_image_lacks': the image lacks it; "
        "add it to docker/requirements.txt")


def test_a_trainer_without_predict_is_told_what_to_write_in_one_line(tmp_path):
    """The server of a trainer package with no predict.py (the regression example's, say): one line naming the file
    and what to write in it, no traceback, exit 1."""
    code = tmp_path / "code"
    (code / "trainer").mkdir(parents=True)
    (code / "trainer" / "__init__.py").write_text("")
    shutil.copytree(ROOT / "src" / "sagemake", code / "sagemake", ignore=shutil.ignore_patterns("__pycache__"))
    base = tmp_path / "ml"
    (base / "model").mkdir(parents=True)
    (base / "model" / "model.joblib").write_bytes(b"a model")
    env = {"PATH": os.environ["PATH"], "SAGEMAKER_BASE_DIR": str(base), "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, str(ROOT / "docker" / "serve")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "src/trainer/predict.py is missing: write load(model_dir) and predict(model, rows) beside train.py" \
        in done.stderr
