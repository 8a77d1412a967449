"""S3's URIs, parsed in one place. Loads no boto3: the unchanged check uses it too."""

from __future__ import annotations


def split(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
