"""Benchmark: one model on 2 and 4 local hosts against 1 host, on the same data (`make bench`; nothing asserted).

examples/distributed (XGBoost's collective) is dropped into a scratch copy of
the checkout, its data written once, then `make train` runs in turn with
INSTANCE_COUNT=1, 2 and 4 (train sharded), as processes; each host of several
runs on its share of the cores. Wall time of each run, median of RUNS, and
each count's median against one host's.
"""

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 3


def checkout(destination: Path) -> Path:
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    shutil.rmtree(destination / "src/trainer")
    shutil.copytree(ROOT / "examples/distributed/trainer", destination / "src/trainer")
    shutil.copy(ROOT / "examples/distributed/requirements.txt", destination / "docker/requirements.txt")
    return destination


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        repo = checkout(Path(scratch) / "project")
        venv = os.environ.get("VENV", ".venv")
        env = {**os.environ, "VENV": venv if os.path.isabs(venv) else str(ROOT / venv), "LOCAL_RUNTIME": "process",
               "HP": "num_round=300 max_depth=6"}
        subprocess.run(["make", "-s", "data"], cwd=repo, env=env, check=True, capture_output=True)
        times: dict[int, list[float]] = {1: [], 2: [], 4: []}
        for _ in range(RUNS):
            for hosts in times:
                started = time.perf_counter()
                subprocess.run(["make", "-s", "train", f"INSTANCE_COUNT={hosts}",
                                "DATA_DISTRIBUTION=train=ShardedByS3Key"], cwd=repo, env=env, check=True,
                               capture_output=True)
                times[hosts].append(time.perf_counter() - started)
    print(f"distributed example, {RUNS} runs each, process runtime, {os.cpu_count()} cores:")
    for hosts, seconds in times.items():
        each = ", ".join(f"{s:.2f}" for s in seconds)
        ratio = statistics.median(seconds) / statistics.median(times[1])
        print(f"  {hosts} host(s): median {statistics.median(seconds):.2f} s  ({each}), {ratio:.2f}x one host's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
