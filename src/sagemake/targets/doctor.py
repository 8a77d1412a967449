"""Summary: check credentials, bucket, region, repository and image before spending anything

Usage: make doctor [ENV=prod]   (python -m sagemake doctor)

Checks that ENV can train before anything is built, uploaded or paid for.
Each check prints `ok` or what is wrong with its fix, one line each; the exit
is non-zero when any check fails. When AWS cannot be reached at all, that is
the one line (exit 3): every other check would only say it again.
"""

from __future__ import annotations

import sys

from sagemake.cli import Exit, UserError
from sagemake.config import resolve
from sagemake.executors import for_config

OPTIONAL = {"container engine"}  # needed only when a new image must be built (each executor names its checks)


def main(argv: list[str]) -> int:
    config = resolve()
    checks = for_config(config).checks()
    if not checks:
        print(f"doctor: ENV={config.env} needs no AWS: settings ok (`make doctor ENV=prod` checks an AWS environment)")
        return Exit.OK
    failed = 0
    for name, check in checks:
        try:
            print(f"ok    {name}: {check()}")
        except UserError as err:
            if _unreachable(err):  # every check after this one would fail the same way: one line, exit 3
                raise
            optional = name in OPTIONAL
            failed += not optional
            print(f"{'warn' if optional else 'FAIL'}  {name}: {err}", file=sys.stderr)
    if failed:
        print(f"doctor: {failed} check(s) failed for ENV={config.env}", file=sys.stderr)
        return Exit.BAD_INPUT
    print(f"doctor: ENV={config.env} is ready to train")
    return Exit.OK


def _unreachable(err: UserError) -> bool:
    """AWS could not be reached, or failed every attempt."""
    from sagemake.aws.api import AwsUnavailable  # only an AWS environment has checks, and it has loaded boto3

    return isinstance(err, AwsUnavailable)

