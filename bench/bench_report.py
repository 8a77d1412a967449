"""Benchmark: what `make report` costs (`make bench`; nothing asserted).

A tuning run of TRIALS trials plus one job (the example's data, the process runtime, HP='n_estimators=100'), then
`python -m sagemake report` on them, median of RUNS; beside it `python -m sagemake jobs` on the same jobs (which
never imports plotly), plotly's own import, and the page's size.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
TRIALS = 12


def timed(command: list[str], env: dict) -> float:
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


def main() -> None:
    import trainer.data  # the example's data step (the package is importable: `make setup` installed src/)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        trainer.data.main(scratch / "data")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNE_", "AWS_"))}
        env.update({"DATA_DIR": str(scratch / "data"), "JOBS_DIR": str(scratch / "jobs"),
                    "MODELS_DIR": str(scratch / "models"), "LOCAL_RUNTIME": "process", "HP": "n_estimators=100",
                    "TUNE_RANGES": "learning_rate=0.02:0.5:log max_depth=1:4", "TUNE_MAX_JOBS": str(TRIALS),
                    "TUNE_PARALLEL": "2"})
        sagemake = [sys.executable, "-m", "sagemake"]
        timed([*sagemake, "train"], env)
        timed([*sagemake, "tune"], env)
        report = [timed([*sagemake, "report"], env) for _ in range(RUNS)]
        jobs = [timed([*sagemake, "jobs", "100"], env) for _ in range(RUNS)]
        plotly = [timed([sys.executable, "-c", "import plotly.graph_objects, plotly.offline"], env)
                  for _ in range(RUNS)]
        python = [timed([sys.executable, "-c", "pass"], env) for _ in range(RUNS)]
        size = (ROOT / "build/report.html").stat().st_size
        (ROOT / "build/report.html").unlink()
    print(f"report of {TRIALS + 1} jobs and 1 tuning run: {statistics.median(report):.2f} s, {size / 1e6:.1f} MB "
          f"(median of {RUNS}); `jobs 100` on the same: {statistics.median(jobs):.2f} s; importing plotly: "
          f"{statistics.median(plotly) - statistics.median(python):.2f} s over Python's start")


if __name__ == "__main__":
    main()
