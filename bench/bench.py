"""Benchmarks behind the README's numbers (`make bench`); targets are read, never asserted.

1. Warm `make train` (virtualenv ready, data written), wall time.
2. The local executor's overhead: a whole job through the executor against
   `docker/train` run directly on the same prepared /opt/ml tree.
Jobs and models go to a temporary folder; the repository's own are untouched.
"""

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sagemake.config import resolve  # noqa: E402
from sagemake.local import TRAIN_PROGRAM, LocalJobs, Runtime, _host_env  # noqa: E402
from sagemake.run_sagemaker import plan  # noqa: E402

RUNS = 7


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def warm_make_train(scratch: Path) -> list[float]:
    env = {**os.environ, "JOBS_DIR": str(scratch / "jobs"), "MODELS_DIR": str(scratch / "models")}
    def once():
        subprocess.run(["make", "-s", "train"], cwd=ROOT, env=env, check=True, capture_output=True)
    once()  # warm-up: data written, caches filled
    return [timed(once) for _ in range(RUNS)]


def executor_against_direct(scratch: Path) -> tuple[list[float], list[float]]:
    config = resolve(root=ROOT, environ={**os.environ, "JOBS_DIR": str(scratch / "executor")})
    jobs = LocalJobs(config.path("JOBS_DIR"))
    through, direct = [], []
    for _ in range(RUNS):
        request = plan(config)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            through.append(timed(lambda r=request: jobs.run(r, Runtime(None, "bench"), grace_seconds=5)))
        tree = scratch / "direct" / request["TrainingJobName"]
        shutil.copytree(jobs.folder(request["TrainingJobName"]) / "ml" / "input", tree / "input")
        (tree / "model").mkdir()
        (tree / "output").mkdir()
        env = {**_host_env(), "SAGEMAKER_BASE_DIR": str(tree), "PYTHONPATH": str(ROOT / "src")}
        direct.append(timed(lambda e=env: subprocess.run([sys.executable, str(TRAIN_PROGRAM)], env=e, check=True,
                                                      capture_output=True)))
    return through, direct


def main() -> int:
    subprocess.run(["make", "-s", "data"], cwd=ROOT, check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as scratch:
        make_times = warm_make_train(Path(scratch))
        through, direct = executor_against_direct(Path(scratch))
    overhead = statistics.median(t - d for t, d in zip(through, direct, strict=True))  # paired: runs alternate
    print(f"| measure ({RUNS} runs, median) | result | target |")
    print("|---|---|---|")
    print(f"| warm `make train` wall time | {statistics.median(make_times):.2f} s | at most 15 s |")
    print(f"| job through the local executor | {statistics.median(through):.2f} s | |")
    print(f"| `docker/train` run directly | {statistics.median(direct):.2f} s | |")
    print(f"| local executor overhead (median of paired differences) | {overhead:+.2f} s | at most 0.3 s |")
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {sys.platform}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
