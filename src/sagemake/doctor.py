"""Checks that ENV can train before anything is built, uploaded or paid for.

Usage: make doctor [ENV=prod]

Each check prints `ok` or what is wrong with its fix, one line each; the exit
is non-zero when any check fails.
"""

from __future__ import annotations

import shutil
import sys

from sagemake.cli import AwsError, Exit, UserError, run
from sagemake.config import resolve
from sagemake.executors import for_config
from sagemake.image import Engine

OPTIONAL = {"container engine"}  # needed only when a new image must be built


def aws_checks(executor):
    """The SageMaker executor's checks: credentials, bucket, repository, engine."""
    from sagemake import aws as cloud

    config, aws = executor.config, executor.aws

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
            raise AwsError(cloud.explain(err)) from None
        return answer["repositories"][0]["repositoryUri"]

    return [("settings", lambda: "every required setting present, role ARN well formed"),
            ("credentials", credentials), ("bucket", bucket), ("ECR repository", repository),
            ("container engine", lambda: engine(config))]


def engine(config) -> str:
    found = Engine(config)
    if not shutil.which(found.name):
        raise UserError(f"{found.name} is not installed: install it to build images, or set CONTAINER_ENGINE")
    if not found.reachable():
        raise UserError(f"{found.name} is installed but no engine answers: start it (needed only to build a new image)")
    return f"{found.name} engine reachable"


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
            optional = name in OPTIONAL
            failed += not optional
            print(f"{'warn' if optional else 'FAIL'}  {name}: {err}", file=sys.stderr)
    if failed:
        print(f"doctor: {failed} check(s) failed for ENV={config.env}", file=sys.stderr)
        return Exit.BAD_INPUT
    print(f"doctor: ENV={config.env} is ready to train")
    return Exit.OK


if __name__ == "__main__":
    run(main, "doctor")
