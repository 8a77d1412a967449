"""One sync at a time to a prefix: the lock s3://S3_BUCKET/S3_PREFIX/sync-manifests/sync.lock.

Two checkouts syncing different data to the same S3_PREFIX at the same time
would leave a mix of both in S3, each run saying it succeeded. So a sync that
is about to change S3 (not one that finds every channel unchanged) first
writes the lock object beside the manifests, with a conditional put
(If-None-Match: *, which S3 refuses when the object exists): it names the
checkout (host, folder, process) and since when it syncs. A second sync that
finds it refuses in one line naming that checkout. The holder rewrites the
lock every REFRESH seconds, and once more before each manifest it writes
(If-Match its own ETag, so it learns when another took it over: a refused
rewrite is a takeover only when the lock S3 holds is not its own, as after a
rewrite accepted whose answer was lost), and deletes it when the sync ends,
whether it ends well, with an error, or with Ctrl-C, SIGTERM or SIGHUP (all
one path, KeyboardInterrupt). A lock left by a sync that was killed is taken
over by the next sync once it is stale: not rewritten for STALE seconds by
S3's own clock, or written from this machine by a process that is gone. The
machine is told by its hostname and machine(), where a pid means the same
process (two containers or VMs can share a hostname); where machine() knows
none, only the age counts. Syncs one after the other, from any checkout, are
allowed: each makes S3 equal to its folder.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

from sagemake import clock
from sagemake.aws.api import call
from sagemake.aws.s3 import split
from sagemake.cli import UserError, say
from sagemake.config import Config, s3_uri

NAME = "sync.lock"  # beside the manifests (unchanged.MANIFESTS)
REFRESH = 60  # seconds between rewrites of a held lock
STALE = 300  # seconds without a rewrite after which a lock is taken over
CONFLICT = dict.fromkeys(("PreconditionFailed", "ConditionalRequestConflict"), None)  # what a conditional put hears
GONE = dict.fromkeys(("NoSuchKey", "404"), None)


class SyncLock:
    """The prefix's sync lock, taken by take() (at most once), held while the `with` block runs, then deleted."""

    def __init__(self, s3, config: Config):
        from sagemake.aws.unchanged import MANIFESTS

        self.s3 = s3
        self.uri = s3_uri(config, MANIFESTS, NAME)
        self.bucket, self.key = split(self.uri)
        self.prefix = s3_uri(config) + "/"
        self.again = f"make upload ENV={config.env}"  # what syncs again (only an AWS ENV syncs)
        self.owner = {"host": socket.gethostname(), "machine": machine(), "folder": str(config.root),
                      "pid": os.getpid(), "token": uuid.uuid4().hex}
        self.etag: str | None = None
        self.tried = False  # a put of the lock was sent
        self.lost: dict | None = None  # who took it over while it was held
        self.stopped = threading.Event()
        self.refresher: threading.Thread | None = None

    def __enter__(self) -> SyncLock:
        return self

    def __exit__(self, kind, *_) -> None:
        self.stopped.set()
        if self.refresher:
            self.refresher.join()
        if self.lost or not self.tried:
            return
        try:
            if not self.etag:  # cut off while it was taken (Ctrl-C, a lost answer): it may be ours all the same
                held = self._read()
                self.etag = held[1] if held and held[0].get("token") == self.owner["token"] else None
                if not self.etag:
                    return
            call(self.s3.delete_object, on={**CONFLICT, **GONE}, Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except UserError:
            if kind is None:
                raise
            # The sync's own error is the one line said; the lock left is taken over by the next sync from this host
            # at once (this process is gone by then), from another once it is stale.

    def take(self) -> None:
        """Hold the lock from now until the block ends; one line naming the holder when another sync holds it. Once
        held, it says whether it still is (another sync takes over a lock it finds stale), by rewriting it now."""
        if self.etag and not self.lost:
            self._rewrite()  # the refresher may not have looked since (a laptop asleep): S3 says
        if self.lost:
            raise UserError(f"another sync took over the lock {self.uri} while this one ran ({describe(self.lost)}, "
                            f"found it stale): check that nothing else syncs to {self.prefix}, then run `{self.again}`")
        if self.etag:
            return
        self.owner["since"] = clock.now(timespec="seconds")
        self.tried = True
        self.etag = self._put(IfNoneMatch="*")
        if self.etag is None:
            held = self._read()
            if held is None:  # gone since (its sync ended): once more
                self.etag = self._put(IfNoneMatch="*")
            elif held[0].get("token") == self.owner["token"]:  # our own put, whose answer was lost
                self.etag = held[1]
            elif stale(*held):
                self.etag = self._put(IfMatch=held[1])
                if self.etag:
                    say(f"upload: took over the sync lock of {describe(held[0])}: it was stale")
            if self.etag is None:
                held = self._read() or held or ({}, "", 0.0)
                raise UserError(f"another checkout is syncing to {self.prefix} ({describe(held[0])}): wait for it to "
                                f"end, then run `{self.again}` (a lock not refreshed for {STALE // 60} minutes is "
                                f"taken over; it is {self.uri})")
        self.refresher = threading.Thread(target=self._refresh, name="sync lock", daemon=True)
        self.refresher.start()

    def _put(self, **condition) -> str | None:
        """The lock written under a condition: its ETag, None when S3 refused the condition."""
        answer = call(self.s3.put_object, on=CONFLICT, Bucket=self.bucket, Key=self.key,
                      Body=json.dumps(self.owner).encode(), ContentType="application/json", **condition)
        return None if answer is None else answer["ETag"].strip('"')

    def _read(self) -> tuple[dict, str, float] | None:
        """The lock as S3 holds it: (its owner, its ETag, seconds since it was written by S3's clock), or None."""
        answer = call(self.s3.get_object, on=GONE, Bucket=self.bucket, Key=self.key)
        if answer is None:
            return None
        try:
            owner = json.loads(answer["Body"].read())
            owner = owner if isinstance(owner, dict) else {}
        except ValueError:
            owner = {}
        date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        server_now = parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
        return owner, answer["ETag"].strip('"'), (server_now - answer["LastModified"]).total_seconds()

    def _refresh(self) -> None:
        """Rewrite the lock every REFRESH seconds while it is held, until another sync took it over."""
        while not self.stopped.wait(REFRESH) and not self.lost:
            try:
                self._rewrite()
            except UserError:  # AWS unreachable for now: the next rewrite may get through
                continue

    def _rewrite(self) -> None:
        """Rewrite the held lock If-Match its ETag; when S3 refuses, note who took it over (`lost`), unless the lock
        is still ours (a rewrite accepted whose answer was lost, then refused when sent again)."""
        etag = self._put(IfMatch=self.etag)
        if etag is None:
            held = self._read()
            if held and held[0].get("token") == self.owner["token"]:
                etag = held[1]
            else:
                self.lost = (held or ({}, "", 0.0))[0]
                return
        self.etag = etag


def machine() -> str | None:
    """Where a pid means the same process: this boot of the kernel and this pid namespace (containers share their
    host's boot), else the machine's id (/etc/machine-id), else None."""
    try:
        return f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        pass
    try:
        return Path("/etc/machine-id").read_text().strip() or None
    except OSError:
        return None


def stale(owner: dict, _etag: str, age: float) -> bool:
    """A lock whose sync is surely gone: not rewritten for STALE seconds, or from this machine by a process gone."""
    if age >= STALE:
        return True
    here = machine()
    if (owner.get("host") == socket.gethostname() and here is not None and owner.get("machine") == here
            and isinstance(owner.get("pid"), int)):
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    return False


def describe(owner: dict) -> str:
    return (f"host {owner.get('host', '?')}, folder {owner.get('folder', '?')}, pid {owner.get('pid', '?')}, since "
            f"{owner.get('since', '?')}")
