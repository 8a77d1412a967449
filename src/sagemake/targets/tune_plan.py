"""Summary: print the tuning job request (TUNE_RANGES, TUNE_OBJECTIVE, ...) as JSON; submits nothing

Usage: make tune-plan [ENV=...]   (python -m sagemake tune-plan)
"""

from __future__ import annotations

import json

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.jobs.tuning import plan


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make tune-plan")
    config = resolve()
    print(json.dumps(plan(config, for_config(config)), indent=2))
    return Exit.OK

