"""Local jobs' input channels: one read-only copy per content, shared by every job that reads it.

A local job reads a channel from JOBS_DIR/.channels/<digest>/, a copy of its
DATA_DIR folder made the first time that content is trained on (the digest is
data.summary's: every file's path, size and content), with its files and
folders made read-only. The copy holds exactly the files the digest covers and
the sync sends to S3 (data.files: links inside DATA_DIR followed, as files and
folders of their own), so a change behind a link is a new digest and a new
copy, and a job reads locally what it would read on SageMaker. Ten runs on a 500 MB channel cost 500 MB, not 5 GB,
and editing DATA_DIR during a job changes nothing the job sees. The container
runtime mounts the copy read-only; the process runtime links to it. Since a
process running as root ignores file modes, each copy is checked after a job
and set aside (made again next time) when the job changed it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import threading
from pathlib import Path

from sagemake.data import files

SHARED = ".channels"  # under JOBS_DIR
SET_ASIDE = ".changed-"  # a copy a job wrote into, kept until `make clean-jobs`


def copy_name(digest: str) -> str:
    return digest[:32]


def shared_copy(jobs_dir: Path, source: Path, digest: str) -> Path:
    """The read-only copy of source, made now unless a job made it before."""
    target = jobs_dir / SHARED / copy_name(digest)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    partial.mkdir()
    base = len(str(source)) + 1
    for path in files(source):  # the files its digest covers, links followed as the digest and the sync follow them
        copied = partial / str(path)[base:]
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copied)
    for path in (*partial.rglob("*"), partial):
        path.chmod(0o555 if path.is_dir() else 0o444)
    _stamp_file(target).write_text(json.dumps(fingerprint(partial)))  # the same for the same content
    try:
        partial.rename(target)
    except OSError:  # another job made it first: theirs is the same content
        remove(partial)
    return target


def fingerprint(folder: Path) -> str:
    """Every entry's path, size, time and mode: changes when anything in the copy is written."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_mode}\n".encode())
    return digest.hexdigest()


def unchanged(copy: Path) -> bool:
    """Whether the copy is as it was made; one that a job changed is set aside, so no later job reads it."""
    try:
        if json.loads(_stamp_file(copy).read_text()) == fingerprint(copy):
            return True
    except (OSError, ValueError):
        pass
    try:
        copy.rename(copy.with_name(f"{SET_ASIDE}{copy.name}.{os.getpid()}"))
    except OSError:  # set aside already, by another job on the same copy
        pass
    return False


def unused(jobs_dir: Path, used: set[str]) -> list[Path]:
    """What no job in `used` reads: other copies and their stamps, copies set aside, and partial copies whose
    maker is gone (a partial is named .<copy>.<pid>.<thread>)."""
    shared = jobs_dir / SHARED
    found = []
    for entry in sorted(shared.iterdir()) if shared.is_dir() else ():
        if entry.name.startswith(".") and not entry.name.startswith(SET_ASIDE):
            try:
                os.kill(int(entry.name.split(".")[2]), 0)
                continue  # still being made
            except (ProcessLookupError, ValueError, IndexError):
                pass
            except PermissionError:
                continue
        elif entry.name.removesuffix(".json") in used:
            continue
        found.append(entry)
    return found


def remove(folder: Path) -> None:
    """rm -rf for a file, or a tree whose folders may be read-only."""
    def writable_then_again(function, path, _):
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
        function(path)

    if not folder.is_dir() or folder.is_symlink():
        folder.unlink(missing_ok=True)
    else:
        folder.chmod(stat.S_IRWXU)
        handler = {"onexc": writable_then_again} if sys.version_info >= (3, 12) else {"onerror": writable_then_again}
        shutil.rmtree(folder, **handler)


def _stamp_file(copy: Path) -> Path:
    return copy.parent / f"{copy.name}.json"
