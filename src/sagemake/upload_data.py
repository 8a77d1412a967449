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

The unchanged check waits on S3 as little as it can. When this checkout's
last sync to the channel's manifest was of the same folder (build/synced.json
holds the folder each manifest was last written or found matching for: a
hint, never trusted for what S3 holds), the three pages are asked for with
the manifest's metadata, as soon as the folder's file names are known, while
its files are stat'ed and its digest computed: one round trip instead of two,
and the local work hidden behind it. When the folder did change, those three
listings were wasted; they are waited for before the first change, so that
nothing the check sent is still under way when S3 is changed. A first sync,
or one of another folder, sends none of them.

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
import os
import random
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
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
SYNCED = "build/synced.json"  # {manifest: the folder this checkout's last sync to it was of}: pages at once
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


def ask_pages(s3, pool: ThreadPoolExecutor, uri: str, keys: list[str]) -> list[tuple[int, Future]]:
    """The pages the unchanged check lists (see the module's doc), asked for in parallel: (index of its first key
    in `keys`, the future of its (key, size, ETag) list). `keys`: the folder's, in S3's order. Three requests (one
    for a channel of at most PAGE files, compared whole)."""
    bucket, prefix = split(uri)
    count = len(keys)
    starts = [0] if count <= PAGE else [0, chance.randrange(count - PAGE + 1), count - PAGE]

    def listed(start: int) -> list[tuple[str, int, str]]:
        last = start + PAGE >= count  # the last page also shows anything after the last key
        asked = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE + last}
        if start:
            asked["StartAfter"] = keys[start - 1]
        return [(o["Key"], o["Size"], o["ETag"].strip('"')) for o in call(s3.list_objects_v2, **asked).get(
            "Contents", [])]

    return [(start, pool.submit(listed, start)) for start in starts]


def pages_differ(uri: str, pages: list[tuple[int, Future]], found: list[tuple[str, int, str]]) -> str | None:
    """Where S3 differs from the folder in the pages asked for (ask_pages); None when it does not."""
    bucket, prefix = split(uri)
    ordered = sorted((prefix + name, size, tag) for name, size, tag in found)  # S3 lists keys in this order
    for start, page in pages:
        for have, want in zip_longest(page.result(), ordered[start:start + PAGE]):
            if have == want:
                continue
            if want is None or (have is not None and have[0] < want[0]):
                return f"s3://{bucket}/{have[0]} is not in the folder"
            if have is None or have[0] > want[0]:
                return f"s3://{bucket}/{want[0]} is missing"
            return f"s3://{bucket}/{want[0]} has other content"
    return None


def sync_channel(s3, folder: Path, uri: str, cache: EtagCache, manifest: str | None = None,
                 synced_before: bool = False) -> tuple[int, int, int, int]:
    """(uploaded, unchanged, deleted, bytes uploaded) for one channel folder; with `manifest` (its S3 URI), an
    unchanged folder costs a few requests (the module's doc says which) and a changed one ends with a new
    manifest. `synced_before`: this checkout's last sync to that manifest was of this folder, so the unchanged
    check's pages are asked for at once, with the manifest's metadata."""
    bucket, prefix = split(uri)
    paths = data.files(folder)
    ask = ThreadPoolExecutor(4)
    try:
        promised = ask.submit(manifest_digest, s3, manifest) if manifest else None
        pages = None
        if promised and synced_before:
            base = len(str(folder)) + 1  # the keys as data.contents names the files, in S3's order
            pages = ask_pages(s3, ask, uri, sorted(prefix + str(path)[base:] for path in paths))
        # While S3 answers: the folder's contents, its files read only where build/etags.json lacks them.
        found = data.contents(folder, paths, cache) if manifest else None
        recorded = promised.result() if promised else None
        if recorded is not None and recorded == data.digest(found):
            pages = pages or ask_pages(s3, ask, uri, sorted(prefix + name for name, _, _ in found))
            why = pages_differ(uri, pages, found)
            if why is None:
                return 0, len(found), 0, 0
            say(f"upload: {why} (S3 no longer matches the last sync's manifest): comparing every object")
        # Nothing the check asked is still under way when S3 is changed (what failed there does not matter now).
        wait([page for _, page in pages or []])
    finally:
        ask.shutdown(wait=False, cancel_futures=True)  # after a failure: no waiting on the pages left
    if recorded is not None:
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
    synced = Synced(config.root / SYNCED)
    results = {}
    for channel, folder in found.items():
        uri = s3_uri(config, "data", channel) + "/"
        manifest = s3_uri(config, MANIFESTS, f"{channel}.json")
        try:
            results[channel] = uploaded, unchanged, deleted, size = sync_channel(
                s3, folder, uri, cache, manifest, synced_before=synced.folders.get(manifest) == str(folder))
        finally:
            cache.save()
        synced.add(manifest, folder)
        say(f"upload: {channel}: {uploaded} uploaded ({size / 1e6:.1f} MB), {unchanged} unchanged, "
            f"{deleted} deleted -> {uri}")
    return results


class Synced:
    """The folder this checkout's last sync to each manifest was of (SYNCED): only a hint of which channels are
    likely to be unchanged; what S3 holds is always asked."""

    def __init__(self, path: Path):
        self.path = path
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            found = {}
        self.folders: dict[str, str] = found if isinstance(found, dict) else {}

    def add(self, manifest: str, folder: Path) -> None:
        if self.folders.get(manifest) == str(folder):
            return
        self.folders[manifest] = str(folder)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}")
        partial.write_text(json.dumps(self.folders, indent=1, sort_keys=True))
        partial.replace(self.path)  # two runs at once: each writes whole, the last wins
