"""One virtualenv shared by several checkouts (VENV=...): `make setup` in another checkout keeps it serving the
checkout that made it, so a copy (the tests' own, or a user's second clone) never takes the virtualenv away."""

import os
import subprocess
from pathlib import Path

import pytest
from conftest import CHECKOUT, copy_repo, tool_venv


def serving(venv: str) -> Path:
    found = subprocess.run([f"{venv}/bin/python", "-c", "import sagemake; print(sagemake.__file__)"],
                           capture_output=True, text=True, check=True, cwd="/")
    return Path(found.stdout.strip()).resolve().parents[2]


@pytest.mark.slow  # pip runs (every requirement already there)
def test_make_setup_in_another_checkout_leaves_the_shared_virtualenv_serving_its_own(tmp_path):
    venv = tool_venv()
    assert serving(venv) == CHECKOUT.resolve()
    repo = copy_repo(tmp_path / "second clone")
    (repo / "pyproject.toml").touch()  # newer than the stamp: make runs the setup step again
    done = subprocess.run(["make", "-s", "setup"], cwd=repo, env={**os.environ, "VENV": venv}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"runs sagemake from {CHECKOUT.resolve()} (the checkout that made it): left as it is" in done.stderr
    assert serving(venv) == CHECKOUT.resolve()
