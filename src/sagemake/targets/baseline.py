"""Summary: profile a fetched model's training data again: the baseline `make drift` compares with (JOB=...)

Usage: make baseline [JOB=<job>]   (python -m sagemake baseline [JOB])

`make fetch` computes it; this is for a model fetched before sagemake kept one, or whose channel could not be read
then. The job's training channel (its own folder for a local job; DATA_DIR/<channel>/ for a job on SageMaker, when
it still holds the data the job read), as CSV with a header, JSON lines or Parquet, profiled into
MODELS_DIR/<job>/baseline.json.
"""

from __future__ import annotations

from sagemake.baseline import compute, described
from sagemake.cli import Exit, UserError, say
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.jobs.training import job_named
from sagemake.models import fetched


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make baseline [JOB=<job>]")
    config = resolve()
    folder, manifest = fetched(config, job_named(argv[0]) if argv else None, lambda: for_config(config))
    baseline = compute(config, folder, manifest)
    say(described(baseline, folder))
    return Exit.OK

