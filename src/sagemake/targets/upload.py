"""Summary: sync the data channels to S3 by content (ENV other than local)

Usage: make upload ENV=prod   (python -m sagemake upload)

Each channel goes to s3://S3_BUCKET/S3_PREFIX/data/<channel>/, uploading only
what changed; the bucket must be in AWS_REGION. With nothing changed, S3 is
asked without loading boto3 (aws/unchanged.py). With ENV=local there is
nothing to upload: local jobs read DATA_DIR directly.
"""

from __future__ import annotations

from sagemake.aws import unchanged
from sagemake.cli import Exit, UserError
from sagemake.config import DEFAULT_ENV, resolve


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("usage: make upload")
    config = resolve()
    if config.env != DEFAULT_ENV and unchanged.everywhere(config):
        return Exit.OK  # nothing to upload, found without loading boto3
    from sagemake.executors import for_config

    for_config(config).sync_data()
    return Exit.OK

