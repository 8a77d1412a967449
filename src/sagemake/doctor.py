"""Checks that ENV can train before anything is built, uploaded or paid for.

Usage: make doctor [ENV=prod]

Each check prints `ok` or what is wrong with its fix, one line each; the exit
is non-zero when any check fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from sagemake.cli import UserError, run
from sagemake.config import resolve

OPTIONAL = {"container engine"}  # needed only when a new image must be built


def checks(config):
    """(name, function) pairs; a function returns a detail for `ok` or raises UserError."""
    from sagemake import aws as cloud

    aws = cloud.session(config)

    def credentials():
        identity = cloud.call(aws.client("sts").get_caller_identity)
        return f"account {identity['Account']} as {identity['Arn']}"

    def bucket():
        cloud.check_bucket(config, aws)
        return f"s3://{config['S3_BUCKET']} is in {config['AWS_REGION']}"

    def repository():
        ecr = aws.client("ecr")
        try:
            answer = ecr.describe_repositories(repositoryNames=[config["ECR_REPOSITORY"]])
        except ecr.exceptions.RepositoryNotFoundException:
            return f"{config['ECR_REPOSITORY']} does not exist yet: `make build ENV={config.env}` creates it"
        except Exception as err:  # noqa: BLE001 - any AWS error is reported as one line
            raise UserError(cloud.explain(err)) from None
        return answer["repositories"][0]["repositoryUri"]

    def engine():
        name = config["CONTAINER_ENGINE"]
        if not shutil.which(name):
            raise UserError(f"{name} is not installed: install it to build images, or set CONTAINER_ENGINE")
        if subprocess.run([name, "info"], capture_output=True, check=False).returncode != 0:
            raise UserError(f"{name} is installed but no engine answers: start it (needed only to build a new image)")
        return f"{name} engine reachable"

    return [("settings", lambda: "every required setting present, role ARN well formed"),
            ("credentials", credentials), ("bucket", bucket), ("ECR repository", repository),
            ("container engine", engine)]


def main(argv: list[str]) -> int:
    config = resolve()
    if config.local:
        print("doctor: ENV=local needs no AWS: settings ok (`make doctor ENV=prod` checks an AWS environment)")
        return 0
    failed = 0
    for name, check in checks(config):
        try:
            print(f"ok    {name}: {check()}")
        except UserError as err:
            optional = name in OPTIONAL
            failed += not optional
            print(f"{'warn' if optional else 'FAIL'}  {name}: {err}", file=sys.stderr)
    if failed:
        print(f"doctor: {failed} check(s) failed for ENV={config.env}", file=sys.stderr)
        return 1
    print(f"doctor: ENV={config.env} is ready to train")
    return 0


if __name__ == "__main__":
    run(main, "doctor")
