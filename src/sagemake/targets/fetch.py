"""Summary: fetch a finished job's model with its manifest (JOB=..., default latest)

Usage: make fetch [JOB=<job>] [ENV=...]   (python -m sagemake fetch [JOB])

Writes MODELS_DIR/<job>/manifest.json: job, status, git commit (and whether
the tree was dirty), image, runtime, hyperparameters, metrics, each channel's
data, and the artefact's sha256, so a model file can always be traced to what
made it. What the job wrote to /opt/ml/output/data/ lands in MODELS_DIR/<job>/output/.
When the latest job is a trial of a tuning run, that run's best trial is fetched.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.jobs.training import job_named
from sagemake.models import fetch


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make fetch [JOB=<job>]")
    config = resolve()
    fetch(config, for_config(config), job_named(argv[0]) if argv else None)
    return Exit.OK

