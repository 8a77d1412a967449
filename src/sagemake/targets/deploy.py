"""Summary: a SageMaker endpoint for a Completed job's model (ENV=prod, JOB=..., default latest); updated in place

Usage: make deploy ENV=prod [JOB=<job>] [ENDPOINT_NAME=...]   (python -m sagemake deploy [JOB])

The price per hour is said before anything is created. The job's SageMaker
model (made once, tagged as sagemake's), an endpoint configuration, and the
endpoint created (or updated in place); then a smoke request of a few
validation rows, and the deployment recorded in MODELS_DIR/deployments.jsonl.
With ENDPOINT_MAX_INSTANCES above ENDPOINT_INSTANCE_COUNT, the endpoint is
registered with Application Auto Scaling once it serves (the account's quota
checked and the price at the most said before anything is made); without, an
earlier registration is removed. An endpoint of that name that sagemake did
not make is refused.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.jobs.training import job_named


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError("usage: make deploy ENV=prod [JOB=<job>]")
    for_config(resolve()).endpoints().deploy(job_named(argv[0]) if argv else None)
    return Exit.OK

