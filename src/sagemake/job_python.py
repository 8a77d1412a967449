"""The job's Python: what runs sagemake's own image as a process, and the trainer's data step.

A virtualenv with the image's requirements (docker/requirements.txt and the
private wheels) and nothing else, so an import the image lacks fails on this
machine as it would on SageMaker. It is made once per change of them, in the
tool's own virtualenv (job-python/<hash>/), shared by concurrent runs and by
every checkout that uses the same tool virtualenv.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sagemake.cli import UserError, say
from sagemake.config import Config

JOB_PYTHONS = "job-python"  # in the tool's virtualenv: one per set of image requirements, by their hash
KEEP_JOB_PYTHONS = 2
REQUIREMENTS = "docker/requirements.txt"
PRIVATE_WHEELS = "build/wheels"


def job_python(config: Config) -> Path:
    """The Python of local process jobs and of the data step: a virtualenv with the image's requirements and
    nothing else, made once per change of them (<tool's virtualenv>/job-python/<hash>/) and shared by
    concurrent runs and by every checkout that uses the same tool virtualenv."""
    root = config.root
    if config["PRIVATE_DEPS"]:  # the wheels are part of the image: build/wheels/ must be up to date first
        if subprocess.run([str(root / "scripts/prepare.sh")], stdout=2, check=False).returncode != 0:
            raise UserError("the private dependencies could not be prepared (see above): fix PRIVATE_DEPS")
    requirements = root / REQUIREMENTS
    wheels = sorted((root / PRIVATE_WHEELS).glob("*.whl"))
    return made_python(JOB_PYTHONS, requirements, wheels, "the job's Python", REQUIREMENTS, "about a minute")


def made_python(kind: str, requirements: Path, wheels: list[Path], what: str, source: str, takes: str) -> Path:
    """A virtualenv with requirements (and wheels) and nothing else, made once per change of them, with pip's
    progress, in the tool's own virtualenv (<kind>/<hash>/), shared by concurrent runs and by every checkout that
    uses the same tool virtualenv; the newest few are kept. Its Python."""
    digest = hashlib.sha256(requirements.read_bytes() if requirements.is_file() else b"")
    digest.update(sys.version.encode())
    for wheel in wheels:
        digest.update(wheel.name.encode() + b"\0" + wheel.read_bytes())
    home = Path(sys.prefix) / kind / digest.hexdigest()[:12]
    python = home / "bin/python"
    if python.exists():
        return python
    home.parent.mkdir(parents=True, exist_ok=True)
    with (home.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits here, then finds it made
        if python.exists():
            return python
        started = time.monotonic()
        say(f"setup: making {what} from {source} (once per change of it; {takes})")
        partial = home.with_name(home.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _install(partial, requirements, wheels, f"{what} ({source})")
        partial.rename(home)
        say(f"setup: {what} is ready ({time.monotonic() - started:.0f} s)")
        made = sorted((p for p in home.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in made[:-KEEP_JOB_PYTHONS]:  # older requirements: the newest few stay for jobs still running
            shutil.rmtree(old, ignore_errors=True)
    return python


def _progress(command: list[str]) -> int:
    """Run pip, showing what it collects and installs (its other lines only when it fails)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(("Collecting", "Installing", "Successfully")):
            say(f"setup:   {line.strip()}")
    code = process.wait()
    if code != 0:
        sys.stderr.writelines(lines[-30:])
    return code


def _install(venv: Path, requirements: Path, wheels: list[Path], what: str) -> None:
    """what: the virtualenv and its requirements file, for the error."""
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", str(venv)]]
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    if requirements.is_file():
        steps.append([*pip, "-r", str(requirements)])
    if wheels:
        steps.append([*pip, "--no-deps", *map(str, wheels)])
    for step in steps:
        if _progress(step) != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise UserError(f"could not make {what}: {' '.join(step[-2:])} failed (see above): check that file and "
                            "the network to the package index")
