"""Benchmark: a local tuning run of 6 trials at parallelism 1 and 2 (`make bench`; nothing asserted).

The example's data written once into a scratch folder, then `python -m sagemake tune` with TUNE_MAX_JOBS=6,
TUNE_PARALLEL=1 and 2 alternately, the process runtime, HP='n_estimators=20' and three ranges; the wall time of
each whole run (trials, leaderboard, plot, fetch of the best), median of RUNS.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "1"))
RANGES = "learning_rate=0.02:0.5:log max_depth=1:4 subsample=0.5:1"


def main() -> None:
    import trainer.data  # the example's data step (the package is importable: `make setup` installed src/)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        trainer.data.main(scratch / "data")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNE_", "AWS_"))}
        times = {1: [], 2: []}
        for run in range(RUNS):
            for parallel in times:
                settings = {"DATA_DIR": str(scratch / "data"), "JOBS_DIR": str(scratch / f"jobs-{parallel}-{run}"),
                            "MODELS_DIR": str(scratch / "models"), "LOCAL_RUNTIME": "process",
                            "HP": "n_estimators=20", "TUNE_RANGES": RANGES, "TUNE_MAX_JOBS": "6",
                            "TUNE_PARALLEL": str(parallel)}
                started = time.monotonic()
                subprocess.run([sys.executable, "-m", "sagemake", "tune"], cwd=ROOT, env={**env, **settings},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
                times[parallel].append(time.monotonic() - started)
        for parallel, seconds in times.items():
            print(f"tune, 6 trials, TUNE_PARALLEL={parallel}: {statistics.median(seconds):.1f} s "
                  f"(median of {len(seconds)}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
