"""The image's requirements seen before anything installs: a trainer pin against sagemake's, and the modules a
trainer's code imports, read without running it."""

import ast
import subprocess
import sys

import pytest
from conftest import CHECKOUT

from sagemake.cli import UserError
from sagemake.contract.imports import imported
from sagemake.job_python import check_pins

TRAINER = '''
import os, numpy.linalg
from sklearn.linear_model import Ridge
from . import helpers
from .sub import x
from trainer import data
import sagemake.contract.layout
try:
    import yaml
except ImportError:
    yaml = None
try:
    import tomli
except (ValueError, ModuleNotFoundError):
    tomli = None
try:
    import orjson
except KeyError:
    orjson = None
if TYPE_CHECKING:
    import pandas
else:
    import polars


def plot():
    from matplotlib import pyplot
'''


def test_the_imports_a_trainer_makes_are_read_without_running_it():
    found = imported(ast.parse(TRAINER))
    assert found == [(2, "os"), (2, "numpy"), (3, "sklearn"), (6, "trainer"), (7, "sagemake"), (17, "orjson"),
                     (23, "polars"), (27, "matplotlib")]


def test_a_missing_module_is_listed_with_its_file_and_line(tmp_path):
    package = tmp_path / "src/trainer"
    package.mkdir(parents=True)
    (package / "train.py").write_text(TRAINER)
    (package / "broken.py").write_text("def (:\n")  # the job says where, when it imports it
    done = subprocess.run([sys.executable, "-m", "sagemake.contract.imports", str(package)], capture_output=True,
                          text=True, env={"PYTHONPATH": str(CHECKOUT / "src")})
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == ["trainer/train.py\t17\torjson", "trainer/train.py\t23\tpolars"]


def test_a_trainer_pin_against_sagemakes_is_refused_in_one_line(tmp_path):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker/requirements-sagemake.txt").write_text("# sagemake's\nnumpy==2.4.6\npydantic==2.14.3\n")
    (tmp_path / "docker/requirements.txt").write_text("torch==2.13.0\nNumPy==2.4.6  # the same: fine\n")
    check_pins(tmp_path)
    (tmp_path / "docker/requirements.txt").write_text("torch==2.13.0\nnumpy==1.26.4\n")
    with pytest.raises(UserError) as refused:
        check_pins(tmp_path)
    assert str(refused.value) == (
        "docker/requirements.txt line 2 pins numpy==1.26.4, but sagemake's image needs numpy==2.4.6 "
        "(docker/requirements-sagemake.txt line 2): pin the same version, or drop your pin and take sagemake's")


@pytest.mark.parametrize("name", sorted(p.name for p in CHECKOUT.glob("requirements*.txt")))
def test_a_requirements_file_pins_each_package_at_one_version_with_what_it_takes_in(name):
    """A file that takes in others (-r) pins no package at another version than they do: pip refuses the two."""
    import re

    def pins(path):
        found = {}
        for line in path.read_text().splitlines():
            if line.startswith("-r "):
                for key, value in pins(path.parent / line[3:].strip()).items():
                    found.setdefault(key, set()).update(value)
            elif match := re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line):
                found.setdefault(match.group(1).lower().replace("_", "-"), set()).add(match.group(2))
        return found

    assert {key: versions for key, versions in pins(CHECKOUT / name).items() if len(versions) > 1} == {}
