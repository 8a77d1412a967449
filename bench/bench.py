"""Benchmarks behind the README's numbers (`make bench`); targets are read, never asserted.

1. Warm `make train` (virtualenvs ready, data written, no container engine: the
   process runtime), wall time, against the training alone: `docker/train` run
   directly by the job's Python on a copy of the same prepared /opt/ml tree.
   Runs alternate, so the difference and the ratio are paired, in one run.
   Tracking (each job an MLflow run, TRACKING=true, the default) is measured the same way: runs with
   TRACKING=false alternate with them, and the paired difference is what tracking adds. The run itself is written
   in the background after the command (docs/tracking.md); the queue is written out after each tracked run, outside
   the timings, so no writer runs beside the next measure.
2. A cold `make train`: a fresh clone with no virtualenv, to a trained model; once tracked, once not (each in a
   fresh clone of its own: both install MLflow's client, the tracked one also makes the store).
`--warm` measures 1 alone. Jobs, models and the store of runs go to a temporary folder; the repository's own are
untouched.
"""

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from sagemake.config import resolve  # noqa: E402
from sagemake.contract import layout  # noqa: E402
from sagemake.executors.local.runtimes import KEPT_VARIABLES  # noqa: E402
from sagemake.job_python import job_python  # noqa: E402
from sagemake.tracking import drain  # noqa: E402

RUNS = 7


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def cpu_of(function) -> float:
    """The CPU seconds (user and system) of the processes function ran and waited for, their children too."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    function()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def no_engine(scratch: Path) -> dict:
    """This machine's environment with no engine reachable, as on a laptop without Docker."""
    return {**os.environ, "DOCKER_HOST": f"unix://{scratch}/no-engine.sock", "JOBS_DIR": str(scratch / "jobs"),
            "MODELS_DIR": str(scratch / "models"), "MLFLOW_TRACKING_URI": f"sqlite:///{scratch}/mlflow.db"}


def warm_against_training(scratch: Path) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """Wall times of make train tracked, of the training alone, of make train with TRACKING=false; then the CPU
    seconds of make train tracked and not."""
    env = no_engine(scratch)
    python = job_python(resolve(root=ROOT))

    def make_train(tracking="true"):
        subprocess.run(["make", "-s", "train"], cwd=ROOT, env={**env, "TRACKING": tracking}, check=True,
                       capture_output=True)

    def written():
        drain(resolve(root=ROOT, environ=env))

    def train_alone():
        job = max((scratch / "jobs").glob("sagemake-*"), key=lambda p: p.name)
        tree = scratch / "direct"
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(job / "ml" / "input", tree / "input")
        for folder in (layout.MODEL_DIR, layout.OUTPUT_DATA_DIR, layout.CHECKPOINT_DIR):
            (tree / folder).mkdir(parents=True)
        host = {k: v for k, v in os.environ.items() if KEPT_VARIABLES.match(k)}
        direct = {**host, layout.BASE_DIR_VARIABLE: str(tree), "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
        subprocess.run([str(python), str(ROOT / "docker/train")], env=direct, check=True, capture_output=True)

    make_train()  # warm-up: caches filled, the store made
    written()
    whole, alone, untracked, cpu, cpu_untracked = [], [], [], [], []
    for _ in range(RUNS):
        cpu.append(cpu_of(lambda: whole.append(timed(make_train))))
        written()
        alone.append(timed(train_alone))
        cpu_untracked.append(cpu_of(lambda: untracked.append(timed(lambda: make_train("false")))))
    return whole, alone, untracked, cpu, cpu_untracked


def cold_make_train(scratch: Path, tracking: str) -> float:
    clone = scratch / f"fresh clone, TRACKING={tracking}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in no_engine(scratch).items()
           if k not in ("VENV", "JOBS_DIR", "MODELS_DIR", "MLFLOW_TRACKING_URI")}
    return timed(lambda: subprocess.run(["make", "-s", "train"], cwd=clone, env={**env, "TRACKING": tracking},
                                        check=True, capture_output=True))


def main() -> int:
    warm_only = sys.argv[1:] == ["--warm"]  # the warm measures alone (no fresh clones)
    with tempfile.TemporaryDirectory() as scratch:
        whole, alone, untracked, cpu, cpu_untracked = warm_against_training(Path(scratch))
        cold = cold_make_train(Path(scratch), "true") if not warm_only else None
        cold_untracked = cold_make_train(Path(scratch), "false") if not warm_only else None
    overhead = statistics.median(w - a for w, a in zip(whole, alone, strict=True))
    ratio = statistics.median(w / a for w, a in zip(whole, alone, strict=True))
    tracking = statistics.median(w - u for w, u in zip(whole, untracked, strict=True))
    tracking_cpu = statistics.median(c - u for c, u in zip(cpu, cpu_untracked, strict=True))
    print(f"| measure ({RUNS} runs each, alternating; median) | result | target |")
    print("|---|---|---|")
    print(f"| warm `make train`, wall time | {statistics.median(whole):.2f} s | at most 15 s |")
    print(f"| the training alone: `docker/train` on the same tree | {statistics.median(alone):.2f} s | |")
    print(f"| overhead of `make train` over the training | {overhead:+.2f} s ({ratio:.2f}x) | at most +0.3 s |")
    print(f"| warm `make train` with TRACKING=false | {statistics.median(untracked):.2f} s | |")
    print(f"| what tracking adds to a warm `make train` (paired differences) | {tracking:+.2f} s | |")
    print(f"| CPU of a warm `make train`, tracked and with TRACKING=false | {statistics.median(cpu):.2f} s, "
          f"{statistics.median(cpu_untracked):.2f} s | |")
    print(f"| CPU tracking adds (paired differences) | {tracking_cpu:+.2f} s | |")
    if not warm_only:
        print(f"| cold `make train` in a fresh clone (virtualenvs and store made) | {cold:.0f} s | at most 90 s |")
        print(f"| the same with TRACKING=false | {cold_untracked:.0f} s | |")
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {sys.platform}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
