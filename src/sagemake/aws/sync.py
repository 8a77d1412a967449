"""Syncs each data channel to s3://S3_BUCKET/S3_PREFIX/data/<channel>/, by content.

The SageMaker executor's sync_data (`make upload`, and `make train` before submitting).

A file is uploaded only when its content differs from the object's (S3's
ETag, computed locally the way S3 computes it for our part size, and kept in
build/etags.json so an unchanged file is not read twice); objects no longer
in the channel folder are deleted, so a job reads exactly DATA_DIR. The files
are data.files' (links inside DATA_DIR followed, as for the digest and a local
job's copy). The bucket must be in AWS_REGION: that is checked before anything
is sent. A failure (after botocore's retries) stops the sync at once: the
uploads under way end, the files not started are left, and the same command
run again uploads only what did not arrive. The progress counts the bytes
sent, not those of the files S3 already holds.

Each sync that changed anything ends by writing the channel's manifest,
s3://S3_BUCKET/S3_PREFIX/sync-manifests/<channel>.json, beside the channels
and never inside one (a job reads every object under its channel's prefix):
every file's key, size and ETag, and, in its metadata, their digest
(data.summary's, the one a job records). The manifest says what S3 holds: it
is written from the ETags the files were sent under (a single-request upload
carries its MD5, so S3 refuses bytes that are not those: BadDigest), only
after every file was checked again (stat: size, times, inode) and found as it
was when its ETag was taken.
A file written during the sync is sent again, for at most ROUNDS rounds; one
that keeps changing fails the sync in one line naming it, and no manifest is
left. The manifest is deleted before the first change and written again
last, so a sync cut off midway leaves none and the next run compares every
key.

A re-sync's unchanged check (unchanged.py) computes the folder's digest
(unchanged files are not read), asks S3 for the manifest's metadata (HEAD)
and, when the two digests are equal, lists every page of the channel's prefix
at once, PAGE keys each, each page starting after the folder's key that
precedes it (StartAfter), the last one key longer than the folder's keys
left (S3 answers at most 1,000 keys: a last page of 1,000 is followed by
one of a single key), and compares them key by key, size and ETag, with the
folder: 2 + floor(files / 1,000) requests (a channel of 100,000 files is 102
small ones), in one round trip while there are at most unchanged.ASKERS
pages. Anything else (no manifest, another
digest, a page that differs) takes the full path: every key listed, only
what differs uploaded, what is stale deleted.

What the unchanged check catches: any change to the folder (a file added,
deleted, renamed or with other content); the manifest deleted or replaced
(another machine synced other data there); and, in S3, any object under the
channel's prefix deleted, overwritten with other content (the same size or
not) or added, anywhere: before the first key, between any two, after the
last. The sync then says which object in one line and repairs S3. What it
does not: a change made in S3 after its listing was answered; an object
rewritten with its own content, or with other metadata only (nothing a job
reads differs).

The unchanged check waits on S3 as little as it can. When this checkout's
last sync to the channel's manifest was of the same folder (build/synced.json
holds the folder each manifest was last written or found matching for: a
hint, never trusted for what S3 holds), the pages are asked for with the
manifest's metadata, as soon as the folder's file names are known, while its
files are stat'ed and its digest computed: one round trip instead of two, and
the local work hidden behind it. When the folder did change, those listings
were wasted; they are waited for before the first change, so that nothing
the check sent is still under way when S3 is changed. A first sync, or one
of another folder, sends none of them.

`make upload` runs the check first without boto3 (unchanged.everywhere, with
s3read.py's signed requests), since importing boto3 and making its S3 client
take longer than the check's requests: a sync with nothing to upload never
loads it. A channel that differs, a read without an answer, or settings that
s3read cannot follow as boto3 would, and the sync runs as described here.

Two checkouts syncing to one prefix at the same time: the second refuses in
one line naming the first (synclock.py: the lock beside the manifests, taken
before the first change, deleted at the end). One after the other is fine.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.config import Config as ClientConfig
from botocore.exceptions import ClientError

from sagemake import data
from sagemake.aws import unchanged
from sagemake.aws.api import ERRORS, Progress, call, check_bucket, error_code, failure, session
from sagemake.aws.s3 import split
from sagemake.aws.synclock import SyncLock
from sagemake.aws.unchanged import SYNCED, Synced, manifest_uri
from sagemake.cli import UserError, say
from sagemake.config import Config, channel_uri
from sagemake.data import CACHE, PART, EtagCache, channels

WORKERS = 16
ROUNDS = 3  # sends of a channel's changed files before one that keeps changing fails the sync
TRANSFER = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)


def remote_etags(s3, bucket: str, prefix: str) -> dict[str, str]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"].strip('"')
    return found


class Reads:
    """The unchanged check's reads (unchanged.py) on the sync's boto3 client."""

    def __init__(self, s3):
        self.s3 = s3

    def metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        found = call(self.s3.head_object, on=dict.fromkeys(("404", "NoSuchKey", "NotFound"), None), Bucket=bucket,
                     Key=key)
        return None if found is None else found.get("Metadata", {})

    def page(self, bucket: str, prefix: str, count: int, start_after: str = "") -> list[tuple[str, int, str]]:
        asked = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": count}
        if start_after:
            asked["StartAfter"] = start_after
        listed = call(self.s3.list_objects_v2, **asked).get("Contents", [])
        return [(item["Key"], item["Size"], item["ETag"].strip('"')) for item in listed]


def write_manifest(s3, uri: str, channel_uri: str, found: list[tuple[str, int, str]], digest: str) -> None:
    bucket, key = split(uri)
    body = {"channel": channel_uri, "digest": digest, "files": len(found), "bytes": sum(s for _, s, _ in found),
            "contents": [list(item) for item in found]}
    call(s3.put_object, Bucket=bucket, Key=key, Body=json.dumps(body, separators=(",", ":")).encode(),
         ContentType="application/json", Metadata={unchanged.DIGEST: digest})


def sync_channel(s3, folder: Path, uri: str, cache: EtagCache, manifest: str, synced_before: bool = False,
                 lock: SyncLock | None = None) -> tuple[int, int, int, int]:
    """(uploaded, unchanged, deleted, bytes uploaded) for one channel folder, with its manifest at `manifest` (an
    S3 URI): an unchanged folder costs a few requests (the module's doc says which), a changed one ends with a new
    manifest of what S3 holds. `synced_before`: this checkout's last sync to that manifest was of this folder, so
    the unchanged check's pages are asked for at once, with the manifest's metadata. `lock`: taken before the first
    change to S3."""
    bucket, prefix = split(uri)
    paths = data.files(folder)
    ask = ThreadPoolExecutor(unchanged.ASKERS)
    try:
        checked = unchanged.check(Reads(s3), ask, folder, paths, uri, cache, manifest, synced_before)
        if checked.unchanged:
            return 0, len(checked.found), 0, 0
        if checked.why:
            say(f"upload: {checked.why} (S3 no longer matches the last sync's manifest): comparing every object")
        # Nothing the check asked is still under way when S3 is changed (what failed there does not matter now).
        wait([page for _, page in checked.pages])
    finally:
        ask.shutdown(wait=False, cancel_futures=True)  # after a failure: no waiting on the pages left
    if lock:
        lock.take()
    if checked.recorded:
        call(s3.delete_object, Bucket=bucket, Key=split(manifest)[1])  # a sync cut off midway leaves no manifest
    remote = call(remote_etags, s3=s3, bucket=bucket, prefix=prefix)
    found, sent, deleted = checked.found, {}, 0
    for attempt in range(ROUNDS):
        if attempt:  # what changed is read again; an unchanged file is only stat'ed
            found = data.contents(folder, data.files(folder), cache)
        sent.update(send(s3, folder, uri, found, remote))
        stale = sorted(set(remote) - {prefix + name for name, _, _ in found})
        for start in range(0, len(stale), 1000):
            call(s3.delete_objects, Bucket=bucket,
                 Delete={"Objects": [{"Key": key} for key in stale[start:start + 1000]], "Quiet": True})
        for key in stale:
            del remote[key]
        deleted += len(stale)
        # S3 holds what the manifest will say only if each file still is what its ETag was taken from.
        moved = [folder / name for name, _, tag in found
                 if remote.get(prefix + name) != tag or not cache.holds(folder / name, tag)]
        if not moved:
            if lock:
                lock.take()  # still held: no other sync took it over meanwhile
            write_manifest(s3, manifest, uri, found, data.digest(found))
            uploaded = len(sent.keys() & {prefix + name for name, _, _ in found})
            return uploaded, len(found) - uploaded, deleted, sum(sent.values())
        if attempt + 1 < ROUNDS:
            say(f"upload: {moved[0]} changed while it was uploaded: sending it again")
    raise UserError(f"a file changed while it was uploaded: {moved[0]}; run the command again once nothing writes to "
                    f"{folder}")


def send(s3, folder: Path, uri: str, found: list[tuple[str, int, str]], remote: dict[str, str]) -> dict[str, int]:
    """Upload each file of `found` whose ETag S3 does not hold (`remote`: {key: ETag}, updated with what S3 holds
    after each upload); {key: bytes sent}. The progress counts only what is sent."""
    bucket, prefix = split(uri)
    todo = [(prefix + name, size, tag) for name, size, tag in found if remote.get(prefix + name) != tag]
    progress = Progress(f"upload {uri}", sum(size for _, size, _ in todo))

    def put(key: str, size: int, tag: str) -> int:
        path = folder / key[len(prefix):]
        try:
            if size < PART:  # one request: lighter than a transfer manager for the many small files
                with path.open("rb") as body:  # S3 refuses bytes whose MD5 is not the ETag taken (BadDigest)
                    s3.put_object(Bucket=bucket, Key=key, Body=body,
                                  ContentMD5=base64.b64encode(bytes.fromhex(tag)).decode())
                progress(size)
            else:
                s3.upload_file(str(path), bucket, key, Config=TRANSFER, Callback=progress)
        except FileNotFoundError:  # deleted since it was listed: the next round deletes its object
            return 0
        except ClientError as err:
            if error_code(err) != "BadDigest":
                raise
            return 0  # written while it was read: the re-check after the transfer sends it again
        remote[key] = tag  # what S3 holds, as long as the re-check finds the file as its ETag was taken
        return size

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {pool.submit(put, *item): item[0] for item in todo}
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:  # after a failure or Ctrl-C, the files not started yet are left for a re-run
            for future in futures:
                future.cancel()
    failed = next((f.exception() for f in futures if not f.cancelled() and f.exception()), None)
    if failed is not None:
        raise failure(failed) if isinstance(failed, ERRORS) else failed
    progress.done()
    return {key: future.result() for future, key in futures.items()}


def sync(config: Config, aws=None) -> dict[str, tuple[int, int, int, int]]:
    aws = aws or session(config)
    found = channels(config)
    s3 = call(aws.client, service_name="s3", config=ClientConfig(max_pool_connections=WORKERS * 4))
    check_bucket(config, aws, s3)
    cache = EtagCache(config.root / CACHE)
    synced = Synced(config.root / SYNCED)
    results = {}
    with SyncLock(s3, config) as lock:  # taken before the first change, if there is one
        for channel, folder in found.items():
            uri, manifest = channel_uri(config, channel), manifest_uri(config, channel)
            try:
                results[channel] = sync_channel(s3, folder, uri, cache, manifest,
                                                synced_before=synced.folders.get(manifest) == str(folder), lock=lock)
            finally:
                cache.save()
            synced.add(manifest, folder)
            unchanged.report(channel, results[channel], uri)
    return results
