"""Syncs each data channel to s3://S3_BUCKET/S3_PREFIX/data/<channel>/, by content.

The SageMaker executor's sync_data (`make upload`, and `make train` before submitting).

A file is uploaded only when its content differs from the object's (S3's
ETag, computed locally the way S3 computes it for our part size, and kept in
build/etags.json so an unchanged file is not read twice); objects no longer
in the channel folder are deleted, so a job reads exactly DATA_DIR.
The bucket must be in AWS_REGION: that is checked before anything is sent.
A failure (after botocore's retries) stops the sync at once: the uploads
under way end, the files not started are left, and the same command run
again uploads only what did not arrive.
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.config import Config as ClientConfig

from sagemake.aws import ERRORS, Progress, call, check_bucket, failure, s3_uri, session
from sagemake.cli import say
from sagemake.config import Config
from sagemake.data import CACHE, PART, EtagCache
from sagemake.request import channels

WORKERS = 16
TRANSFER = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)


def remote_etags(s3, bucket: str, prefix: str) -> dict[str, str]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"].strip('"')
    return found


def sync_channel(s3, folder: Path, uri: str, cache: EtagCache) -> tuple[int, int, int, int]:
    """(uploaded, unchanged, deleted, bytes uploaded) for one channel folder."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    try:
        remote = remote_etags(s3, bucket, prefix)
    except ERRORS as err:
        raise failure(err) from None
    files = {prefix + p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    progress = Progress(f"upload {uri}", sum(p.stat().st_size for p in files.values()))

    def put(key: str) -> int:
        """Upload the file unless S3 has the same content; returns the bytes sent."""
        path = files[key]
        size = path.stat().st_size
        if key in remote and remote[key] == cache.etag(path):
            progress(size)
            return -1
        if size < PART:  # one request: lighter than a transfer manager for the many small files
            with path.open("rb") as body:
                s3.put_object(Bucket=bucket, Key=key, Body=body)
            cache.etag(path)  # the file is read again from the page cache, and S3 now has this ETag
            progress(size)
        else:
            s3.upload_file(str(path), bucket, key, Config=TRANSFER, Callback=progress)
        return size

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(put, key) for key in files]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:  # after a failure or Ctrl-C, the files not started yet are left for a re-run
            for future in futures:
                future.cancel()
    failed = next((f.exception() for f in futures if not f.cancelled() and f.exception()), None)
    if failed is not None:
        raise failure(failed) if isinstance(failed, ERRORS) else failed
    sent = [future.result() for future in futures]
    progress.done()
    stale = sorted(set(remote) - set(files))
    for start in range(0, len(stale), 1000):
        call(s3.delete_objects, Bucket=bucket,
             Delete={"Objects": [{"Key": key} for key in stale[start:start + 1000]], "Quiet": True})
    uploaded = [size for size in sent if size >= 0]
    return len(uploaded), len(sent) - len(uploaded), len(stale), sum(uploaded)


def sync(config: Config, aws=None) -> dict[str, tuple[int, int, int, int]]:
    aws = aws or session(config)
    found = channels(config)
    check_bucket(config, aws)
    s3 = aws.client("s3", config=ClientConfig(max_pool_connections=WORKERS * 4))
    cache = EtagCache(config.root / CACHE)
    results = {}
    for channel, folder in found.items():
        uri = s3_uri(config, "data", channel) + "/"
        try:
            results[channel] = uploaded, unchanged, deleted, size = sync_channel(s3, folder, uri, cache)
        finally:
            cache.save()
        say(f"upload: {channel}: {uploaded} uploaded ({size / 1e6:.1f} MB), {unchanged} unchanged, "
            f"{deleted} deleted -> {uri}")
    return results
