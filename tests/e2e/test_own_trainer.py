"""A user replaces src/trainer/ with their own model: `make test-fast` still passes, and smoke-tests their model.

In a copy of the checkout whose src/trainer/ is examples/regression/trainer (another model, other hyperparameters:
what a user's own trainer is to sagemake's tests), `make test-fast` runs as CI would: nothing fails because of the
trainer (sagemake's tests train their fixture trainer), and the smoke test trained the regression model.
"""

import os
import subprocess

import pytest
from conftest import CHECKOUT, copy_repo, tool_venv

pytestmark = pytest.mark.slow  # a `make test-fast` of its own: not part of one


def test_make_test_fast_passes_and_smoke_tests_the_trainer_that_replaced_the_example(tmp_path):
    repo = copy_repo(tmp_path / "my project", trainer=CHECKOUT / "examples/regression/trainer")
    assert "alpha" in (repo / "src/trainer/hyperparameters.py").read_text()  # the replacement, not the example
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "my own model"]):  # a user's checkout is a repo
        subprocess.run([*git, *args], check=True, capture_output=True)
    venv = tool_venv()
    # The copy shares this checkout's virtualenv and must never set it up again: its stamps are taken as old enough
    # (the copy's requirement files keep the checkout's times, which may be newer than the stamps).
    keep = ["-o", f"{venv}/.installed", "-o", f"{venv}/.installed-dev"]
    done = subprocess.run(["make", *keep, "test-fast"], cwd=repo, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "VENV": venv})
    said = f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, said
    assert "==> trainer smoke test: src/trainer/: A regression trainer package" in done.stdout, said
    assert "validation:rmse" in done.stdout, said  # its metrics: the regression model trained
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, said
