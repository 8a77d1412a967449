"""Syncs each data channel to s3://S3_BUCKET/S3_PREFIX/data/<channel>/, by content.

Usage: scripts/upload_data.sh   (ENV=local: nothing to upload)

A file is uploaded only when its content differs from the object's (S3's
ETag, computed locally the way S3 computes it for our part size, and kept in
build/etags.json so an unchanged file is not read twice); objects no longer
in the channel folder are deleted, so a job reads exactly DATA_DIR.
The bucket must be in AWS_REGION: that is checked before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.config import Config as ClientConfig
from botocore.exceptions import BotoCoreError, ClientError

from sagemake.aws import Progress, call, check_bucket, explain, session
from sagemake.cli import UserError, run, say
from sagemake.config import Config, resolve
from sagemake.request import check_channels, s3_uri

PART = 64 * 1024 * 1024  # multipart threshold and part size, so local ETags match S3's
WORKERS = 16
CACHE = "build/etags.json"  # local files' ETags, by size and modification time
TRANSFER = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)


def etag(path: Path) -> str:
    """S3's ETag for this file uploaded with our part size: an MD5, or an MD5 of part MD5s."""
    parts = []
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(PART), b""):
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
    if path.stat().st_size < PART:
        return (parts[0] if parts else hashlib.md5(b"", usedforsecurity=False).digest()).hex()
    return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


def remote_etags(s3, bucket: str, prefix: str) -> dict[str, str]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"].strip('"')
    return found


class EtagCache:
    """ETags of local files by (size, mtime): an unchanged file is not read again on the next sync."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.known = json.loads(path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.lock = threading.Lock()

    def etag(self, file: Path) -> str:
        stat = file.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = self.known.get(str(file))
        if entry and entry[:2] == stamp:
            return entry[2]
        value = etag(file)
        with self.lock:
            self.known[str(file)] = [*stamp, value]
        return value

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.known))


def sync_channel(s3, folder: Path, uri: str, cache: EtagCache) -> tuple[int, int, int, int]:
    """(uploaded, unchanged, deleted, bytes uploaded) for one channel folder."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    try:
        remote = remote_etags(s3, bucket, prefix)
    except (BotoCoreError, ClientError) as err:
        raise UserError(explain(err)) from None
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

    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            sent = list(pool.map(put, files))
    except (BotoCoreError, ClientError) as err:
        raise UserError(explain(err)) from None
    progress.done()
    stale = sorted(set(remote) - set(files))
    for start in range(0, len(stale), 1000):
        call(s3.delete_objects, Bucket=bucket,
             Delete={"Objects": [{"Key": key} for key in stale[start:start + 1000]], "Quiet": True})
    uploaded = [size for size in sent if size >= 0]
    return len(uploaded), len(sent) - len(uploaded), len(stale), sum(uploaded)


def sync(config: Config, aws=None) -> dict[str, tuple[int, int, int, int]]:
    aws = aws or session(config)
    channels = check_channels(config)
    check_bucket(config, aws)
    s3 = aws.client("s3", config=ClientConfig(max_pool_connections=WORKERS * 4))
    cache = EtagCache(config.root / CACHE)
    results = {}
    for channel, folder in channels.items():
        uri = s3_uri(config, "data", channel) + "/"
        try:
            results[channel] = uploaded, unchanged, deleted, size = sync_channel(s3, folder, uri, cache)
        finally:
            cache.save()
        say(f"upload: {channel}: {uploaded} uploaded ({size / 1e6:.1f} MB), {unchanged} unchanged, "
            f"{deleted} deleted -> {uri}")
    return results


def main(argv: list[str]) -> int:
    config = resolve()
    if config.local:
        say("upload: skipped (ENV=local reads DATA_DIR directly)")
        return 0
    sync(config)
    return 0


if __name__ == "__main__":
    run(main, "upload_data")
