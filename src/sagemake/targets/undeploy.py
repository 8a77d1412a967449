"""Summary: delete the endpoint, its configs and models that sagemake made (ENV=prod), nothing else

Usage: make undeploy ENV=prod [ENDPOINT_NAME=...]   (python -m sagemake undeploy)

The endpoint's autoscaling registration goes first, also when the endpoint is
already gone.
"""

from __future__ import annotations

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make undeploy ENV=prod")
    for_config(resolve()).endpoints().undeploy()
    return Exit.OK

