"""Summary: print the training job request as JSON; submits nothing

Usage: make plan [ENV=...] [HP='key=value ...']   (python -m sagemake plan)

The CreateTrainingJob request exactly as `make train` would send it, after
every check `make train` makes before paying; on stderr, what it would cost.
"""

from __future__ import annotations

import json

from sagemake.cli import Exit, UserError, say
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.jobs.training import plan
from sagemake.pricing import plan_line


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make plan")
    config = resolve()
    executor = for_config(config)
    request = plan(config, executor)
    print(json.dumps(request, indent=2))
    say(plan_line(request, executor.prices()))
    return Exit.OK

