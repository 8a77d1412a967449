"""A re-sync's unchanged check (sync.py's module doc says what it asks, what it catches and what it costs: the
manifest's metadata and every page of the channel's listing, 1 + files // PAGE of them, in parallel), through
either of two readers of S3 with the same two methods (metadata, page): sync.py's, on the sync's boto3 client, and
s3read's, which needs no boto3. `make upload` runs the check first with s3read's (`everywhere`), so a sync with
nothing to do never loads boto3; any channel that differs, or any read without an answer, and the whole sync runs
as usual.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from sagemake import data, jsonfile
from sagemake.aws import s3read
from sagemake.aws.s3 import split
from sagemake.cli import say
from sagemake.config import Config, channel_uri, s3_uri
from sagemake.data import CACHE, EtagCache, channels

MANIFESTS = "sync-manifests"  # s3://S3_BUCKET/S3_PREFIX/sync-manifests/<channel>.json
DIGEST = "sagemake-digest"  # the manifest's metadata (x-amz-meta-sagemake-digest): the channel's digest
PAGE = 1000  # keys in each page the unchanged check lists: S3's most in one ListObjectsV2 answer
ASKERS = 16  # pages asked for at once
SYNCED = "build/synced.json"  # {manifest: the folder this checkout's last sync to it was of}: pages at once

def manifest_uri(config: Config, channel: str) -> str:
    return s3_uri(config, MANIFESTS, f"{channel}.json")


@dataclass
class Checked:
    """What the check found: the folder's (path, size, ETag) list; whether the manifest exists (`recorded`) and S3
    matches the folder (`unchanged`); where S3 differs from the manifest, if a page shows it (`why`); and the
    listings asked for (`pages`), to wait on before S3 is changed."""
    found: list[tuple[str, int, str]]
    recorded: bool
    unchanged: bool
    why: str | None
    pages: list[tuple[int, Future]]


def check(reads, pool: ThreadPoolExecutor, folder: Path, paths: list[Path], uri: str, cache: EtagCache,
          manifest: str, synced_before: bool) -> Checked:
    """The unchanged check of one channel folder (`paths`: its files) against `uri`, with its manifest: every page
    of the channel's listing compared with the folder. `synced_before`: this checkout's last sync to that manifest
    was of this folder, so the pages are asked for at once, with the manifest's metadata."""
    prefix = split(uri)[1]
    promised = pool.submit(reads.metadata, *split(manifest))
    pages = []
    if synced_before:
        base = len(str(folder)) + 1  # the keys as data.contents names the files, in S3's order
        pages = ask_pages(reads, pool, uri, sorted(prefix + str(path)[base:] for path in paths))
    # While S3 answers: the folder's contents, its files read only where build/etags.json lacks them.
    found = data.contents(folder, paths, cache)
    metadata = promised.result()
    if metadata is None or metadata.get(DIGEST) != data.digest(found):
        return Checked(found, metadata is not None, False, None, pages)
    pages = pages or ask_pages(reads, pool, uri, sorted(prefix + name for name, _, _ in found))
    why = pages_differ(uri, pages, found)
    return Checked(found, True, why is None, why, pages)


def ask_pages(reads, pool: ThreadPoolExecutor, uri: str, keys: list[str]) -> list[tuple[int, Future]]:
    """Every page of the channel's listing, asked for in parallel: (index of its first key in `keys`, the future of
    its (key, size, ETag) list). `keys`: the folder's, in S3's order; each page starts after the key that precedes
    it there, the last one asks for one key more than the folder's left (anything after the last key), so together
    they cover every key S3 could hold under the prefix, never asking more than PAGE: 1 + len(keys) // PAGE
    requests (a folder of PAGE keys is a full page, then one of a single key), one round trip while there are at
    most ASKERS of them."""
    bucket, prefix = split(uri)
    count = len(keys)

    def listed(start: int) -> list[tuple[str, int, str]]:
        return reads.page(bucket, prefix, min(PAGE, count - start + 1), keys[start - 1] if start else "")

    return [(start, pool.submit(listed, start)) for start in range(0, count + 1, PAGE)]


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


def everywhere(config: Config) -> bool:
    """`make upload`'s first try, without boto3: True when every channel is unchanged (said as a sync says it); False
    when one is not, or when s3read cannot ask, or was not answered (then nothing was changed anywhere)."""
    reads = s3read.reads(config)
    if reads is None:
        return False
    cache, synced = EtagCache(config.root / CACHE), Synced(config.root / SYNCED)
    counts = {}
    with ThreadPoolExecutor(ASKERS) as pool:
        try:
            region = pool.submit(reads.region_of, config["S3_BUCKET"])
            for channel, folder in channels(config).items():
                manifest = manifest_uri(config, channel)
                checked = check(reads, pool, folder, data.files(folder), channel_uri(config, channel), cache, manifest,
                                synced.folders.get(manifest) == str(folder))
                if not checked.unchanged:
                    return False  # the pool's end waits for the pages still asked
                counts[channel] = len(checked.found)
            if region.result() != config["AWS_REGION"]:
                return False  # said by the sync, which checks it first
        except s3read.Unanswered:
            return False
        finally:
            cache.save()  # the ETags of a folder read here are not read again by the sync that follows
    for channel, count in counts.items():
        report(channel, (0, count, 0, 0), channel_uri(config, channel))
    return True


def report(channel: str, result: tuple[int, int, int, int], uri: str) -> None:
    uploaded, unchanged, deleted, size = result
    say(f"upload: {channel}: {uploaded} uploaded ({size / 1e6:.1f} MB), {unchanged} unchanged, {deleted} deleted -> "
        f"{uri}")


class Synced:
    """The folder this checkout's last sync to each manifest was of (SYNCED): only a hint of which channels are
    likely to be unchanged; what S3 holds is always asked."""

    def __init__(self, path: Path):
        self.path = path
        found = jsonfile.read(path, {})
        self.folders: dict[str, str] = found if isinstance(found, dict) else {}

    def add(self, manifest: str, folder: Path) -> None:
        if self.folders.get(manifest) != str(folder):
            self.folders[manifest] = str(folder)
            jsonfile.write(self.path, self.folders, indent=1, sort_keys=True)  # two runs at once: the last wins
