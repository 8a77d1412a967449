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

An unchanged channel costs the same few requests whatever its size. Each sync
ends by writing the channel's manifest, s3://S3_BUCKET/S3_PREFIX/sync-manifests/
<channel>.json, beside the channels and never inside one (a job reads every
object under its channel's prefix): every file's key, size and ETag, and, in
its metadata, their digest (data.summary's, the one a job records). A re-sync
computes the folder's digest (unchanged files are not read), asks S3 for the
manifest's metadata (HEAD) and, when the two digests are equal, lists three
pages of PAGE keys (the first, the last and one at random) and compares them
key by key, size and ETag, with the folder: 4 requests, not one listing page
per 1,000 files. Anything else (no manifest, another digest, a page that
differs) takes the full path: every key listed, only what differs uploaded,
what is stale deleted. The manifest is deleted before the first change and
written again last, so a sync cut off midway leaves none and the next run
compares every key.

What the unchanged check catches: any change to the folder (a file added,
deleted, renamed or with other content); the manifest deleted or replaced
(another machine synced other data there); and, in S3, the channel emptied,
or an object deleted, overwritten or added among its first and last PAGE keys
or after its last key; a channel of at most PAGE files is compared whole.
What it does not: in a larger channel, an object deleted, overwritten or
added by something other than sagemake between those pages is seen only when
the random page falls on it (PAGE in the channel's file count, each run). To
compare every key once, delete the manifest and sync again. Two machines
syncing the same channel at the same moment are not supported (the last
writer wins, as before).
"""

from __future__ import annotations

import json
import random
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from itertools import zip_longest
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.config import Config as ClientConfig

from sagemake import data
from sagemake.aws import ERRORS, Progress, call, check_bucket, error_code, failure, s3_uri, session
from sagemake.cli import say
from sagemake.config import Config
from sagemake.data import CACHE, PART, EtagCache
from sagemake.request import channels

WORKERS = 16
TRANSFER = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)
MANIFESTS = "sync-manifests"  # s3://S3_BUCKET/S3_PREFIX/sync-manifests/<channel>.json
DIGEST = "sagemake-digest"  # the manifest's metadata (x-amz-meta-sagemake-digest): the channel's digest
PAGE = 100  # keys in each page the unchanged check lists
chance = random.Random()  # where the unchanged check's third page falls


def remote_etags(s3, bucket: str, prefix: str) -> dict[str, str]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"].strip('"')
    return found


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def manifest_digest(s3, uri: str) -> str | None:
    """The digest the channel's manifest holds; None when there is none."""
    bucket, key = split(uri)
    try:
        return s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(DIGEST, "")
    except ERRORS as err:
        if error_code(err) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise failure(err) from None


def write_manifest(s3, uri: str, channel_uri: str, found: list[tuple[str, int, str]], digest: str) -> None:
    bucket, key = split(uri)
    body = {"channel": channel_uri, "digest": digest, "files": len(found), "bytes": sum(s for _, s, _ in found),
            "contents": [list(item) for item in found]}
    call(s3.put_object, Bucket=bucket, Key=key, Body=json.dumps(body, separators=(",", ":")).encode(),
         ContentType="application/json", Metadata={DIGEST: digest})


def pages_differ(s3, uri: str, found: list[tuple[str, int, str]]) -> str | None:
    """Where S3 differs from the folder in the pages the unchanged check lists (see the module's doc); None when
    it does not. Three requests, in parallel (one for a channel of at most PAGE files, compared whole)."""
    bucket, prefix = split(uri)
    ordered = sorted((prefix + name, size, tag) for name, size, tag in found)  # S3 lists keys in this order
    count = len(ordered)
    if count <= PAGE:
        starts = [0]
    else:
        starts = [0, chance.randrange(count - PAGE + 1), count - PAGE]

    def differs(start: int) -> str | None:
        last = start + PAGE >= count  # the last page also shows anything after the last key
        asked = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE + last}
        if start:
            asked["StartAfter"] = ordered[start - 1][0]
        listed = [(o["Key"], o["Size"], o["ETag"].strip('"')) for o in call(s3.list_objects_v2, **asked).get(
            "Contents", [])]
        expected = ordered[start:start + PAGE]
        for have, want in zip_longest(listed, expected):
            if have == want:
                continue
            if want is None or (have is not None and have[0] < want[0]):
                return f"s3://{bucket}/{have[0]} is not in the folder"
            if have is None or have[0] > want[0]:
                return f"s3://{bucket}/{want[0]} is missing"
            return f"s3://{bucket}/{want[0]} has other content"
        return None

    with ThreadPoolExecutor(len(starts)) as pool:
        return next(filter(None, pool.map(differs, starts)), None)


def sync_channel(s3, folder: Path, uri: str, cache: EtagCache, manifest: str | None = None
                 ) -> tuple[int, int, int, int]:
    """(uploaded, unchanged, deleted, bytes uploaded) for one channel folder; with `manifest` (its S3 URI), an
    unchanged folder costs a few requests (the module's doc says which) and a changed one ends with a new
    manifest."""
    bucket, prefix = split(uri)
    paths = data.files(folder)
    with ThreadPoolExecutor(1) as ask:
        promised = ask.submit(manifest_digest, s3, manifest) if manifest else None
        # While S3 answers: the folder's contents, its files read only where build/etags.json lacks them.
        found = data.contents(folder, paths, cache) if manifest else None
        recorded = promised.result() if promised else None
    if recorded is not None:
        if recorded == data.digest(found):
            why = pages_differ(s3, uri, found)
            if why is None:
                return 0, len(found), 0, 0
            say(f"upload: {why} (S3 no longer matches the last sync's manifest): comparing every object")
        call(s3.delete_object, Bucket=bucket, Key=split(manifest)[1])  # a sync cut off midway leaves no manifest
    try:
        remote = remote_etags(s3, bucket, prefix)
    except ERRORS as err:
        raise failure(err) from None
    files = {prefix + p.relative_to(folder).as_posix(): p for p in paths}
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
    if manifest:  # last: S3 now holds exactly the folder (every ETag is in the cache by now)
        found = data.contents(folder, paths, cache)
        write_manifest(s3, manifest, uri, found, data.digest(found))
    uploaded = [size for size in sent if size >= 0]
    return len(uploaded), len(sent) - len(uploaded), len(stale), sum(uploaded)


def sync(config: Config, aws=None) -> dict[str, tuple[int, int, int, int]]:
    aws = aws or session(config)
    found = channels(config)
    try:
        s3 = aws.client("s3", config=ClientConfig(max_pool_connections=WORKERS * 4))
    except ERRORS as err:
        raise failure(err) from None
    check_bucket(config, aws, s3)
    cache = EtagCache(config.root / CACHE)
    results = {}
    for channel, folder in found.items():
        uri = s3_uri(config, "data", channel) + "/"
        manifest = s3_uri(config, MANIFESTS, f"{channel}.json")
        try:
            results[channel] = uploaded, unchanged, deleted, size = sync_channel(s3, folder, uri, cache, manifest)
        finally:
            cache.save()
        say(f"upload: {channel}: {uploaded} uploaded ({size / 1e6:.1f} MB), {unchanged} unchanged, "
            f"{deleted} deleted -> {uri}")
    return results
