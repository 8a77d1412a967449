"""The job's Python on a project that is not the example: examples/regression's trainer with its own requirements
(scikit-learn, and nothing of sagemake's: pydantic, granian and matplotlib come from docker/requirements-sagemake.txt).

It is updated in place when the requirements change (only what changed installs, what is no longer required goes),
one per tool virtualenv; an update stopped by kill -9 is never taken as ready; two commands at once take turns; a
job's Python a command uses never changes under it (a second one is made meanwhile, pruned once unused, and with
both in use an update waits). Real pip installs into a tool virtualenv of the tests' own (its
sys.prefix), so the suite's job's Python stays as it is.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CHECKOUT, copy_repo

pytestmark = pytest.mark.slow  # real installs of scikit-learn and matplotlib: a minute or two

# One command that wants the job's Python: prints its path; with HOLD, holds it (as a running job does) until its
# standard input closes.
COMMAND = """
import sys
sys.prefix = sys.argv[1]
from sagemake.cli import UserError
from sagemake.config import resolve
from sagemake.job_python import job_python
try:
    print(job_python(resolve(root=__import__("pathlib").Path(sys.argv[2]))), flush=True)
except UserError as err:
    print(f"sagemake: {err}", file=sys.stderr)
    sys.exit(2)
if len(sys.argv) > 3:
    sys.stdin.read()
"""
EXTRA = "idna==3.20\n"  # a small package a change of the requirements adds


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("job python")
    repo = copy_repo(base / "my project", trainer=CHECKOUT / "examples/regression/trainer")
    (repo / "docker/requirements.txt").write_bytes((CHECKOUT / "examples/regression/requirements.txt").read_bytes())
    tool = base / "tool venv"
    old = tool / "job-python" / "0123456789ab"  # what an older sagemake left: one whole Python per change
    (old / "bin").mkdir(parents=True)
    (old / "bin/python").write_text("")
    return repo, tool


def start(project, *hold):
    repo, tool = project
    return subprocess.Popen([sys.executable, "-c", COMMAND, str(tool), str(repo), *hold], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run(project):
    done = start(project)
    out, err = done.communicate(timeout=900)
    assert done.returncode == 0, err
    return Path(out.strip()), err


def python(path, code):
    return subprocess.run([str(path), "-c", code], capture_output=True, text=True, check=False)


def marker(path):
    """The inode of numpy's __init__.py: the same one as long as pip has not installed numpy again."""
    found = python(path, "import numpy, os; print(os.stat(numpy.__file__).st_ino)")
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


def requirements(project, extra=""):
    repo, _ = project
    own = (CHECKOUT / "examples/regression/requirements.txt").read_text()
    (repo / "docker/requirements.txt").write_text(own + extra)


def test_the_jobs_python_is_updated_in_place_and_nothing_is_left_behind(project):
    repo, tool = project
    first, said = run(project)
    assert first == tool / "job-python/1/bin/python"
    assert "making the job's Python from docker/requirements-sagemake.txt, docker/requirements.txt" in said
    assert not (tool / "job-python/0123456789ab").exists()  # an older sagemake's Pythons are pruned
    # sagemake's needs are there though the trainer's requirements do not name them
    assert python(first, "import pydantic, granian, matplotlib, sklearn").returncode == 0
    numpy = marker(first)

    requirements(project, EXTRA)
    second, said = run(project)
    assert second == first
    assert "updating the job's Python" in said and "making" not in said
    assert "Installing collected packages: idna" in said  # only what changed
    assert marker(second) == numpy  # numpy was not installed again
    assert python(second, "import idna").returncode == 0

    requirements(project)  # idna no longer required: removed, so that an import the image lacks fails here too
    third, said = run(project)
    assert "Uninstalling idna" in said
    assert python(third, "import idna").returncode != 0
    assert marker(third) == numpy
    assert [p.name for p in tool.iterdir()] == ["job-python"]
    assert [p.name for p in (tool / "job-python").iterdir() if p.is_dir()] == ["1"]

    _, said = run(project)  # unchanged: nothing to do, nothing said
    assert "setup:" not in said


def test_an_update_killed_halfway_is_made_afresh_not_taken_as_ready(project):
    requirements(project)
    run(project)  # ready (made by this test, or up to date)
    requirements(project, EXTRA)
    killed = start(project)
    until(killed, "updating the job's Python")
    os.killpg(killed.pid, signal.SIGKILL)  # pip with it
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    path, said = run(project)
    assert "making the job's Python" in said  # not trusted: made again whole
    assert python(path, "import idna, sklearn, pydantic").returncode == 0


def until(process, words):
    """Read the process's stderr until a line holds words."""
    for line in process.stderr:
        if words in line:
            return
    raise AssertionError(f"never said {words!r}")


def test_two_commands_at_once_take_turns_and_none_changes_a_python_in_use(project):
    _, tool = project
    requirements(project, EXTRA)
    run(project)  # ready (made by this test, or up to date), then changed by two commands at once
    requirements(project)
    both = [start(project), start(project)]
    answers = [process.communicate(timeout=900) for process in both]
    assert [process.returncode for process in both] == [0, 0], answers
    assert answers[0][0] == answers[1][0]
    assert sum("updating the job's Python" in err for _, err in answers) == 1  # one updated, the other found it

    first = start(project, "hold")  # a job runs with it
    assert first.stdout.readline().strip() == str(tool / "job-python/1/bin/python")
    requirements(project, EXTRA)
    second = start(project, "hold")  # another, with other requirements: a second Python, the first one untouched
    assert second.stdout.readline().strip() == str(tool / "job-python/2/bin/python")
    assert python(tool / "job-python/1/bin/python", "import idna").returncode != 0

    requirements(project)
    (Path(project[0]) / "docker/requirements.txt").open("a").write("# changed again\n")
    waiting = start(project)  # both in use: it waits
    until(waiting, "waiting for the other sagemake commands that use the job's Python")
    assert waiting.poll() is None
    first.communicate(input="", timeout=60)  # the first job ends: its Python is updated
    out, err = waiting.communicate(timeout=900)
    assert waiting.returncode == 0, err
    assert out.strip() == str(tool / "job-python/1/bin/python") and "updating the job's Python" in err
    assert (tool / "job-python/2").is_dir()  # still in use
    second.communicate(input="", timeout=60)
    run(project)
    assert not (tool / "job-python/2").exists()  # pruned once nothing uses it


def test_a_module_the_requirements_lack_is_named_before_anything_runs(project):
    repo, tool = project
    requirements(project)
    run(project)  # its imports found: remembered for this content of the trainer
    assert (tool / "job-python/1/.trainer-imports-checked").is_file()
    train = repo / "src/trainer/train.py"
    lines = train.read_text().splitlines(keepends=True)
    lines.insert(12, "import yaml  # in the tool's virtualenv, not in the trainer's requirements\n")
    train.write_text("".join(lines))
    refused = start(project)
    _, err = refused.communicate(timeout=900)
    assert refused.returncode == 2
    assert err.strip().splitlines()[-1] == (
        "sagemake: src/trainer/train.py line 13 imports yaml, which the job's Python lacks: add the package that "
        "provides it to docker/requirements.txt")


def test_a_long_install_step_says_it_is_still_at_it(tmp_path):
    """A step of the job's Python that prints nothing for TICK seconds (pip unpacking torch) says it is going on; the
    step here ends once that line is written, so no clock is read by the test."""
    said = tmp_path / "said"
    said.write_text("")
    wait = ("import pathlib, sys, time\n"
            "while 'still at it' not in pathlib.Path(sys.argv[1]).read_text():\n    time.sleep(0.2)")
    step = (f"import sys; from pathlib import Path; from sagemake.job_python import _run; "
            f"_run([sys.executable, '-c', {wait!r}, {str(said)!r}], Path('.'))")
    with said.open("a") as stderr:
        subprocess.run([sys.executable, "-c", step], stderr=stderr, timeout=120, check=True)
    assert re.search(r"^==> setup:   still at it \(\d+ s\)$", said.read_text(), re.MULTILINE)
