"""A smoke test of whatever trainer is in the checkout's src/trainer/: the example, or the model a user put there.

The rest of the suite trains sagemake's own fixture trainer (tests/fixtures/trainer); this file is the one that
runs the checkout's, as a user runs it, in a copy of the checkout that keeps its src/trainer/ as it is:
- its data step (`make data`, src/trainer/data.py) into a folder of its own; without one, the channels already
  under DATA_DIR; with neither, it is skipped, saying so;
- one short training in the process runtime (`make train LOCAL_RUNTIME=process`) on a sample of that data (the
  first SAMPLE_LINES lines of each CSV file), with the trainer's default hyperparameters, and its model fetched;
- `make predict` on a few rows, where the trainer has src/trainer/predict.py.
So `make test` (and CI on every push) tests a user's own model with the command that tests sagemake.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CHECKOUT, copy_repo, tool_venv

TRAINER = CHECKOUT / "src" / "trainer"
SAMPLE_LINES = 300  # a CSV file's header and the rows after it
PREDICT_ROWS = 5
# A hyperparameter naming the label column, by its default value (the example's and the regression example's is
# `target`); without one, the label is a column of these names, else the last one (as both examples write it).
LABEL_FIELDS = ("target", "label", "target_column", "label_column")


def make(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", *args], cwd=repo, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "VENV": tool_venv(), "LOCAL_RUNTIME": "process", **env})


def said(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def describe() -> str:
    """The trainer's name for the report: the first line of src/trainer/__init__.py's docstring, if any."""
    init = TRAINER / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) if init.is_file() else None
    return doc.splitlines()[0] if doc else "(no docstring in src/trainer/__init__.py)"


def sample(channels: Path, into: Path) -> Path:
    """A copy of the channel folders with each CSV file cut to its first SAMPLE_LINES lines (others whole)."""
    for source in sorted(p for p in channels.rglob("*") if p.is_file()):
        target = into / source.relative_to(channels)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix.lower() == ".csv":
            with source.open() as lines:
                target.write_text("".join(itertools.islice(lines, SAMPLE_LINES)))
        else:
            shutil.copy2(source, target)
    return into


def label_column(repo: Path, header: list[str]) -> int:
    """The index of the label column in a channel's header (see LABEL_FIELDS)."""
    found = subprocess.run(
        [str(Path(tool_venv()) / "bin/python"), "-c",
         "import json, sys; sys.path.insert(0, 'src'); from trainer.hyperparameters import Hyperparameters as H; "
         "print(json.dumps({n: f.default for n, f in H.model_fields.items() if isinstance(f.default, str)}))"],
        cwd=repo, capture_output=True, text=True)
    defaults = json.loads(found.stdout) if found.returncode == 0 else {}
    for name in LABEL_FIELDS:
        if defaults.get(name) in header:
            return header.index(defaults[name])
    for name in LABEL_FIELDS:
        if name in header:
            return header.index(name)
    return len(header) - 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """A copy of the checkout, its own src/trainer/ kept, that ran the data step and one short training on a sample:
    (the copy, the sampled channels, the job's name)."""
    if not TRAINER.is_dir():
        pytest.skip("no src/trainer/ in this checkout: nothing of yours to smoke-test (your own image trains it)")
    base = tmp_path_factory.mktemp("smoke")
    repo = copy_repo(base / "my project", trainer=None)
    if (TRAINER / "data.py").is_file():
        data = base / "data"
        made = make(repo, "data", f"DATA_DIR={data}")
        assert made.returncode == 0, "the data step (make data, src/trainer/data.py) failed:\n" + said(made)
    else:
        from sagemake.config import resolve

        data = resolve(root=CHECKOUT).path("DATA_DIR")
        if not data.is_dir() or not any(p.is_file() for p in data.rglob("*")):
            pytest.skip(f"src/trainer/ has no data step (data.py) and DATA_DIR ({data}) has no channels: "
                        "nothing to train the smoke test on")
    channels = sample(data, base / "sample")
    trained = make(repo, "train", f"DATA_DIR={channels}")
    assert trained.returncode == 0, "one short training of src/trainer/ (make train) failed:\n" + said(trained)
    (job,) = [p.name for p in (repo / "models").iterdir()]
    return repo, channels, job


def test_the_trainer_trains_on_a_sample_and_its_model_is_fetched(trained, capsys):
    repo, channels, job = trained
    manifest = json.loads((repo / "models" / job / "manifest.json").read_text())
    assert manifest["status"] == "Completed", manifest
    assert manifest["runtime"] == "process", manifest
    with capsys.disabled():  # shown in every run, -q too: which trainer `make test` covered, and how it did
        print(f"\n==> trainer smoke test: src/trainer/: {describe()}\n==> trained {job} on "
              f"{', '.join(sorted(p.name for p in channels.iterdir()))} (first {SAMPLE_LINES} lines of each CSV): "
              f"metrics {json.dumps(manifest['metrics'], sort_keys=True)}")


def test_the_trained_model_predicts_a_few_rows(trained, tmp_path, capsys):
    repo, channels, job = trained
    if not (TRAINER / "predict.py").is_file():
        pytest.skip("src/trainer/ has no predict.py: no predictions to check (make serve and predict need one)")
    files = sorted(channels.rglob("*.csv"), key=lambda p: (p.parent.name != "validation", str(p)))
    if not files:
        pytest.skip("no CSV channel file to take rows from: predictions are not checked")
    header, *rows = files[0].read_text().splitlines()[:PREDICT_ROWS + 1]
    label = label_column(repo, header.split(","))
    lines = [",".join(v for i, v in enumerate(row.split(",")) if i != label) for row in rows]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    predicted = make(repo, "predict", f"FILE={tmp_path / 'rows.csv'}", f"JOB={job}")
    assert predicted.returncode == 0, f"make predict on {len(lines)} rows failed:\n" + said(predicted)
    answers = predicted.stdout.splitlines()
    assert len(answers) == len(lines), said(predicted)
    with capsys.disabled():
        print(f"\n==> trainer smoke test: make predict answered {len(answers)} rows, e.g. {answers[0]}")
