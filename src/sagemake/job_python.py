"""The job's Python: what runs sagemake's own image as a process, and the trainer's data step.

A virtualenv with the image's requirements (sagemake's own, docker/requirements-sagemake.txt, and the trainer's,
docker/requirements.txt, with the private wheels) and nothing else, so an import the image lacks fails on this
machine as it would on SageMaker. It lives in the tool's own virtualenv (job-python/1/), one for every checkout that
uses that virtualenv, and is updated in place when the requirements change: pip installs only what changed, and
removes what is no longer required.

Two commands at once: one looks or updates while the others wait (the update lock), and a command holds the job's
Python it uses (its in-use lock, shared) until it ends, so no job sees its packages change under it. Requirements
that change while a command uses it go to a second one (job-python/2/), pruned as soon as no command uses it; with
both in use, the update waits. An update stopped halfway (Ctrl-C, kill -9) leaves no stamp: the next command makes
that job's Python afresh.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from sagemake.cli import UserError, say
from sagemake.config import Config
from sagemake.data import channels, unfilled

JOB_PYTHON = "job-python"  # in the tool's virtualenv
SLOTS = ("1", "2")  # job-python/1 and /2: the second only while a command uses the first and others are wanted
STAMP = ".sagemake-ready"  # in the job's Python: what it was made from; absent while it changes
CHECKED = ".trainer-imports-checked"  # in the job's Python: the digest of the trainer it last found every import of
REQUIREMENTS = "docker/requirements.txt"  # the trainer's
OWN_REQUIREMENTS = "docker/requirements-sagemake.txt"  # what sagemake's own code needs in the image
PRIVATE_WHEELS = "build/wheels"
TRAINER = "src/trainer"
STEP = "src/trainer/data.py"  # the trainer's data step: main(data_dir)
RUN_STEP = "import sys, pathlib; from trainer.data import main; main(pathlib.Path(sys.argv[1]))"
TICK = 10  # seconds: a long install says it is still going at least this often
WAIT = 0.5  # seconds between looks while every job's Python is in use
KEPT = {"pip", "setuptools", "wheel"}  # what venv itself puts there

_guard = threading.RLock()
_held: dict[Path, tuple[Path, object]] = {}  # the virtualenvs this process uses (by place), each with its in-use lock


def requirement_files(root: Path) -> list[Path]:
    """The image's requirement files, sagemake's first, as the Dockerfiles install them."""
    return [path for path in (root / OWN_REQUIREMENTS, root / REQUIREMENTS) if path.is_file()]


def check_pins(root: Path) -> None:
    """Refuse, in one line, a package the trainer's requirements pin to another version than sagemake's own: pip
    would fail on it only after every other download."""
    own = _pins(root / OWN_REQUIREMENTS)
    for name, (line, version) in _pins(root / REQUIREMENTS).items():
        if name in own and own[name][1] != version:
            raise UserError(f"{REQUIREMENTS} line {line} pins {name}=={version}, but sagemake's image needs "
                            f"{name}=={own[name][1]} ({OWN_REQUIREMENTS} line {own[name][0]}): pin the same "
                            f"version, or drop your pin and take sagemake's")


def job_python(config: Config) -> Path:
    """The Python of local process jobs and of the data step, up to date with the image's requirements (updated
    in place when they change), and held by this process until it ends so that no update changes it under a job."""
    root = config.root
    if config["PRIVATE_DEPS"]:  # the wheels are part of the image: build/wheels/ must be up to date first
        if subprocess.run([str(root / "scripts/prepare.sh")], stdout=2, check=False).returncode != 0:
            raise UserError("the private dependencies could not be prepared (see above): fix PRIVATE_DEPS")
    check_pins(root)
    files, wheels = requirement_files(root), sorted((root / PRIVATE_WHEELS).glob("*.whl"))
    with _guard:
        fresh = Path(sys.prefix) / JOB_PYTHON not in _held
        python = held_python(JOB_PYTHON, files, wheels, "the job's Python")
        if fresh and config.sagemake_image and (root / TRAINER).is_dir():
            _check_trainer(python, root)
        return python


def held_python(kind: str, files: list[Path], wheels: list[Path], what: str) -> Path:
    """The Python of a virtualenv of the tool's (<kind>/ in its own virtualenv: the job's, MLflow's server) with
    the requirements of files and the wheels and nothing else, up to date with them, held by this process until it
    ends; what names it in what is said."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for wheel in wheels:
        digest.update(wheel.name.encode() + b"\0" + wheel.read_bytes())
    wanted = {"python": f"{sys.version} {getattr(sys, '_base_executable', sys.executable)}",
              "requirements": digest.hexdigest()}
    base = Path(sys.prefix) / kind  # held by where it is: another tool virtualenv's is another
    with _guard:
        if base not in _held:
            _held[base] = _ready(base, wanted, files, wheels, what)
        return _held[base][0]


def _check_trainer(python: Path, root: Path) -> None:
    """check_imports in the job's Python, once for each content of the trainer's modules and of that Python: a
    passed check is remembered in it (a failed one is asked again next time)."""
    home = python.parent.parent
    key = hashlib.sha256((home / STAMP).read_bytes())
    for path in sorted((root / TRAINER).rglob("*.py")):
        key.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    key.update(Path(__file__).with_name("contract").joinpath("imports.py").read_bytes())
    checked = home / CHECKED
    if checked.is_file() and checked.read_text() == key.hexdigest():
        return
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    check_imports([str(python)], str(root / TRAINER), "the job's Python", env)
    checked.write_text(key.hexdigest())


def check_imports(python: list[str], trainer: str, where: str, env: dict | None = None) -> None:
    """Refuse, in one line, a module the trainer imports that python (a command: the job's Python, or one run in
    the image) cannot find: named with the file and line that import it and the file to add it to, before a job
    reaches the import."""
    done = subprocess.run([*python, "-m", "sagemake.contract.imports", trainer], capture_output=True, text=True,
                          env=env, check=False)
    found = [line.split("\t") for line in done.stdout.splitlines() if line.count("\t") == 2]
    if done.returncode == 0 or not found:
        return
    (name, line, module), others = found[0], sorted({module for _, _, module in found[1:]} - {found[0][2]})
    more = f" (and {', '.join(others)})" if others else ""
    raise UserError(f"src/{name} line {line} imports {module}{more}, which {where} lacks: add the package that "
                    f"provides it to {REQUIREMENTS}")


def _ready(base: Path, wanted: dict, files: list[Path], wheels: list[Path], what: str
           ) -> tuple[Path, object]:
    """A job's Python in base as wanted, updated first if none is, and its in-use lock, which this process holds
    (shared) from now on: the file stays open until the process ends."""
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("a") as update:
        if not _lock_now(update, fcntl.LOCK_EX):  # one command looks at them or changes them at a time
            say(f"setup: waiting for another sagemake command, which is setting up {what}")
            fcntl.flock(update, fcntl.LOCK_EX)
        for old in base.iterdir():
            if old.is_dir() and old.name not in SLOTS:  # an older sagemake's, one per change of requirements
                shutil.rmtree(old, ignore_errors=True)
        homes = [base / slot for slot in SLOTS]
        locks = {home: (base / f"{home.name}.in-use").open("a") for home in homes}
        chosen = next((home for home in homes if _stamp(home) == wanted), None)
        try:
            if chosen is None:
                free = [home for home in homes if _lock_now(locks[home], fcntl.LOCK_EX)]
                if not free:
                    say(f"setup: the requirements changed; waiting for the other sagemake commands that use {what} "
                        "to end before it is updated")
                while not free:  # whichever is free first
                    time.sleep(WAIT)
                    free = [home for home in homes if _lock_now(locks[home], fcntl.LOCK_EX)]
                chosen = max(free, key=_made_at)  # the newest is the closest to what is wanted
                _update(chosen, wanted, files, wheels, what)
            fcntl.flock(locks[chosen], fcntl.LOCK_SH)  # in use: no update changes it under this command
            for home in homes:  # prune what no command uses
                if home != chosen and home.exists() and _lock_now(locks[home], fcntl.LOCK_EX):
                    shutil.rmtree(home, ignore_errors=True)
        finally:
            for home, lock in locks.items():
                if home != chosen:
                    lock.close()
    return chosen / "bin/python", locks[chosen]


def _lock_now(lock, kind: int) -> bool:
    try:
        fcntl.flock(lock, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _made_at(home: Path) -> float:
    try:
        return (home / STAMP).stat().st_mtime
    except OSError:
        return 0.0


def _stamp(home: Path) -> dict | None:
    try:
        return json.loads((home / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _update(home: Path, wanted: dict, files: list[Path], wheels: list[Path], what: str) -> None:
    """Bring a job's Python to what is wanted: in place when it was made whole by this Python, afresh when not
    (none yet, another Python, or an update that was stopped halfway, whose packages cannot be trusted)."""
    started, stamp = time.monotonic(), home / STAMP
    found = _stamp(home)
    if found is None or found.get("python") != wanted["python"] or not (home / "bin/python").exists():
        shutil.rmtree(home, ignore_errors=True)
        say(f"setup: making {what} from {', '.join(_shown(files))} (once; then only what changes installs)")
        _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(home)], home, what, files)
    else:
        stamp.unlink()  # not ready until the update is whole
        say(f"setup: updating {what} from {', '.join(_shown(files))} (only what changed installs)")
    pip = [str(home / "bin/python"), "-m", "pip", "--disable-pip-version-check"]
    if files:
        _run([*pip, "install", "--progress-bar", "off", *(f"-r{path}" for path in files)], home, what, files)
    if wheels:
        _run([*pip, "install", "--progress-bar", "off", "--no-deps", *map(str, wheels)], home, what, files)
    unwanted = _unwanted(home, files, wheels)
    if unwanted:
        _run([*pip, "uninstall", "--yes", *unwanted], home, what, files)
    partial = stamp.with_name(STAMP + ".partial")
    partial.write_text(json.dumps(wanted))
    partial.rename(stamp)
    say(f"setup: {what} is ready ({time.monotonic() - started:.0f} s)")


def _shown(files: list[Path]) -> list[str]:
    return [f"{path.parent.name}/{path.name}" for path in files] or ["no requirements"]


def _run(command: list[str], home: Path, what: str = "the job's Python", files: tuple[Path, ...] | list[Path] = ()
         ) -> None:
    """Run one step, showing what pip collects, installs and removes, and a line at least every TICK seconds (its
    other lines only when it fails)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, started, last = [], time.monotonic(), [time.monotonic()]
    done = threading.Event()

    def tick():
        while not done.wait(1):
            if time.monotonic() - last[0] >= TICK:
                say(f"setup:   still at it ({time.monotonic() - started:.0f} s)")
                last[0] = time.monotonic()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith(("Collecting", "Installing", "Successfully", "Found existing", "Uninstalling")):
                say(f"setup:   {line.strip()}")
                last[0] = time.monotonic()
        code = process.wait()
    finally:
        done.set()
        ticker.join()
    if code != 0:
        sys.stderr.writelines(lines[-30:])
        raise UserError(f"could not make {what} ({' '.join(command[-2:])} failed, see above): check "
                        f"{', '.join(_shown(files))} and the network to the package index (the next command starts "
                        "it again)")


def _unwanted(home: Path, files: list[Path], wheels: list[Path]) -> list[str]:
    """What is installed in the job's Python that neither the requirements nor the wheels lead to (a requirement
    since removed): left there, it would make an import work here that fails in the image. Nothing when a root
    cannot be named (an editable path, a bare URL)."""
    roots = [Requirement(wheel.name.split("-")[0]) for wheel in wheels]
    for path in files:
        named = _roots(path)
        if named is None:
            return []
        roots += named
    sites = list(home.glob("lib/python*/site-packages"))
    installed = {canonicalize_name(dist.metadata["Name"]): dist for dist in metadata.distributions(path=sites)
                 if dist.metadata["Name"]}
    needed, pending = set(), [(root, "") for root in roots]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        if (name, tuple(extras)) in needed or name not in installed:
            continue
        needed.add((name, tuple(extras)))
        for text in installed[name].requires or []:
            for chosen in ["", *extras]:
                pending.append((Requirement(text), chosen))
    kept = {name for name, _ in needed} | KEPT
    return sorted(name for name in installed if name not in kept)


def _roots(path: Path) -> list[Requirement] | None:
    """The requirements a pip requirements file names (following -r), or None when one has no name."""
    roots: list[Requirement] = []
    for raw in path.read_text().replace("\\\n", " ").splitlines():
        line = raw.split(" #", 1)[0].strip()
        nested = next((line[len(p):].lstrip(" =") for p in ("--requirement", "-r") if line.startswith(p)), None)
        if nested:
            found = _roots(path.parent / os.path.expandvars(nested))
            if found is None:
                return None
            roots += found
        elif line.startswith(("-e", "--editable")):
            return None
        elif line and not line.startswith(("#", "-")):  # not an option (index, constraints, find-links)
            try:
                roots.append(Requirement(line.split(" --", 1)[0]))
            except InvalidRequirement:
                return None  # a path or URL without a name
    return roots


def _pins(path: Path) -> dict[str, tuple[int, str]]:
    """name -> (line, version) of the exact pins in a requirements file."""
    pins = {}
    if path.is_file():
        for number, raw in enumerate(path.read_text().splitlines(), 1):
            try:
                requirement = Requirement(raw.split("#", 1)[0].strip())
            except InvalidRequirement:
                continue
            exact = [spec for spec in requirement.specifier if spec.operator in ("==", "===")]
            if len(exact) == 1 and not requirement.marker:
                pins[canonicalize_name(requirement.name)] = (number, exact[0].version)
    return pins


def data_step(config: Config) -> dict[str, Path]:
    """Run the trainer's data step; returns the channels, after checking it left each one with files."""
    if not config.sagemake_image:
        raise UserError(f"there is no data step with your own image: put one folder per channel in "
                        f"{config['DATA_DIR']}/ yourself")
    if not (config.root / STEP).is_file():
        raise UserError(f"no data step: write {STEP} with main(data_dir), or put one folder per channel in "
                        f"{config['DATA_DIR']}/")
    say(f"data: running {STEP} main({config['DATA_DIR']})")
    env = {**os.environ, "PYTHONPATH": str(config.root / "src"), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([str(job_python(config)), "-c", RUN_STEP, str(config.path("DATA_DIR"))], env=env,
                          cwd=config.root, check=False)
    if done.returncode != 0:
        raise UserError(f"the data step {STEP} failed (exit {done.returncode}, see above): fix it and run `make data`")
    try:
        return channels(config)
    except UserError as err:
        raise UserError(f"the data step {STEP} ran but left the channels unusable ({err}): make its "
                        f"main(data_dir) write one folder per channel") from None


def ensure_channels(config: Config) -> dict[str, Path]:
    """The channels; the data step runs first only when DATA_DIR holds nothing yet (unfilled)."""
    try:
        found = channels(config)
    except UserError as err:
        if not config.sagemake_image or not (config.root / STEP).is_file() or not unfilled(config.path("DATA_DIR")):
            raise
        say(f"data: {err}: running the data step")
        return data_step(config)
    else:
        say(f"data: {config['DATA_DIR']}/ has channels {', '.join(found)}: used as they are")
        return found
