"""The data channels on this machine, and what each holds.

The channels a user put in DATA_DIR are theirs: one that is missing or empty is
refused, never filled (the trainer's data step, job_python.ensure_channels, writes
them only into a DATA_DIR that holds nothing yet). Each channel is summed up as its
file count, bytes and a content digest, recorded with the job and in the model's
manifest.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
from pathlib import Path

from sagemake import jsonfile
from sagemake.cli import UserError
from sagemake.config import Config

PART = 64 * 1024 * 1024  # S3's multipart part size as we upload: local ETags then match S3's
CACHE = "build/etags.json"  # local files' ETags, by path and what stat says of each file
PENDING = ".preprocessed.pending.json"  # in DATA_DIR: the stamp of make preprocess's install under way (its swap)


def summary(config: Config, folders: dict[str, Path]) -> dict[str, dict]:
    """{channel: {files, bytes, digest}}: the digest covers every file's path and content."""
    cache = EtagCache(config.root / CACHE)
    result = {}
    for name, folder in folders.items():
        found = contents(folder, files(folder), cache)
        result[name] = {"files": len(found), "bytes": sum(size for _, size, _ in found), "digest": digest(found)}
    cache.save()
    return result


def files(folder: Path) -> list[Path]:
    """Every file under a channel folder, in the order its digest takes them (by name in each folder, as sorted
    Path.rglob gives them), at a fifth of rglob's time (a million files are a walk of their own). The one list of
    a channel's files: its digest, the sync to S3 and a local job's copy all take it, so the three agree.

    A link to a file or a folder is followed when it resolves inside the folder the channel is in (DATA_DIR) or
    inside the channel's own folder; a link that leads outside them, or loops, ends the command with one line
    naming it, and so does a name that is not UTF-8 (S3 keys are). A link that leads nowhere is no file."""
    found: list[Path] = []
    allowed = (folder.parent.resolve(), folder.resolve())

    def walk(directory: str, above: tuple[str, ...]) -> None:
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):  # by name in each folder: Path's order
                try:
                    entry.name.encode()
                except UnicodeEncodeError:
                    raise UserError(f"{shown(entry.path)}: its name is not UTF-8, which S3 keys must be: rename "
                                    f"it") from None
                if entry.is_symlink():
                    try:
                        target = os.path.realpath(entry.path, strict=True)
                    except FileNotFoundError:
                        continue  # leads nowhere
                    except OSError:
                        target = None
                    if target is None or target in above:
                        raise UserError(f"{shown(entry.path)} is a link that loops: point it at a file or folder "
                                        f"that does not hold it, or remove it")
                    if not any(Path(target).is_relative_to(root) for root in allowed):
                        raise UserError(f"{shown(entry.path)} is a link to {target}, outside {allowed[0]}: copy "
                                        f"what it points at into the channel, or move it inside {allowed[0]}")
                    if os.path.isdir(target):
                        walk(entry.path, (*above, target))
                    elif os.path.isfile(target):
                        found.append(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    walk(entry.path, (*above, os.path.join(above[-1], entry.name)))
                elif entry.is_file(follow_symlinks=False):
                    found.append(Path(entry.path))

    walk(str(folder), (os.path.realpath(folder),))
    return found


def shown(path: str | Path) -> str:
    """A path as it can be printed, whatever bytes its name holds."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def contents(folder: Path, paths: list[Path], cache: EtagCache) -> list[tuple[str, int, str]]:
    """(path inside the folder, bytes, S3's ETag) of each file: what a channel's digest covers."""
    found, base = [], len(str(folder)) + 1
    for path in paths:
        stat = path.stat()
        found.append((str(path)[base:], stat.st_size, cache.etag(path, stat)))  # relative_to() costs more
    return found


def digest(found: list[tuple[str, int, str]]) -> str:
    """A channel's content digest: sha256 over each file's path, size and ETag (data.summary's, and the sync
    manifest's)."""
    total = hashlib.sha256()
    for name, size, tag in found:
        total.update(f"{name}\0{size}\0{tag}\n".encode())
    return total.hexdigest()


def etag(path: Path) -> str:
    """S3's ETag for this file uploaded with our part size: an MD5, or an MD5 of part MD5s."""
    parts = []
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(PART), b""):
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
    if path.stat().st_size < PART:
        return (parts[0] if parts else hashlib.md5(b"", usedforsecurity=False).digest()).hex()
    return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


class EtagCache:
    """ETags of local files, by path, kept while stat says the same of the file: its size, modification time, inode
    and inode change time (ns). An unchanged file is not read again.

    The modification time alone can be set back (touch -d, cp -p, rsync -t, tar), so a file replaced by another of
    the same size and time would keep the old ETag. The inode catches a file written elsewhere and renamed in (as
    rsync and tar do), the change time one rewritten in place: the system sets it to now on any write, rename, link
    or change of mode or owner, and no tool can set it back. A stat that differs costs a read, never a wrong ETag.
    What no stat can tell: a file rewritten in place, with the same size, within the same tick of the filesystem's
    clock as the write before, after it was read here: a folder written to while it is read, which a sync does not
    support anyway.

    Each entry is [size, mtime_ns, ETag, inode, ctime_ns]: the first three as sagemake kept them before, so that
    an earlier version reading this file still finds the ETag where it looks. save() merges what this process
    read into the file as it is then, under a lock: runs at once (a sync, a summary, a processing job's upload)
    keep each other's entries. It also drops the entries of files that are gone, so the file holds no more than
    the files there are."""

    def __init__(self, path: Path):
        self.path = path
        self.known = _entries(path)
        self.lock = threading.Lock()
        self.fresh: dict[str, list] = {}  # read since: what save() adds to the file

    def etag(self, file: Path, stat: os.stat_result | None = None) -> str:
        stat = stat or file.stat()
        entry = self.known.get(str(file))
        if _same(entry, stat):
            return entry[2]
        value = etag(file)
        with self.lock:
            self.known[str(file)] = self.fresh[str(file)] = [stat.st_size, stat.st_mtime_ns, value, stat.st_ino,
                                                             stat.st_ctime_ns]
        return value

    def holds(self, file: Path, tag: str) -> bool:
        """Whether `tag` is the ETag kept for the file and stat still says the same of it: the file was not written
        since its ETag was taken (what no stat can tell: the class's doc)."""
        try:
            stat = file.stat()
        except OSError:
            return False
        entry = self.known.get(str(file))
        return _same(entry, stat) and entry[2] == tag

    def save(self) -> None:
        with self.lock:
            fresh, self.fresh = self.fresh, {}
        if not fresh:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f"{self.path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            kept = {name: entry for name, entry in _entries(self.path).items() if os.path.exists(name)}
            jsonfile.write(self.path, {**kept, **fresh}, indent=None)


def _same(entry: list | None, stat: os.stat_result) -> bool:
    """Whether a cache entry was taken of the file as stat now says it is."""
    return bool(entry and len(entry) == 5 and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns
                and entry[3] == stat.st_ino and entry[4] == stat.st_ctime_ns)


def _entries(path: Path) -> dict[str, list]:
    found = jsonfile.read(path, {})
    return found if isinstance(found, dict) else {}


def unfilled(data: Path) -> bool:
    """Whether DATA_DIR is absent or holds nothing but hidden files: the one case the data step may write the
    channels. Any folder or file in it is the user's data, and a channel set that is only partly there (one missing,
    one empty) is theirs to complete: SageMaker refuses an empty channel too."""
    return not data.is_dir() or all(p.name.startswith(".") and p.name != PENDING for p in data.iterdir())


def channels(config: Config) -> dict[str, Path]:
    """CHANNELS, or every folder of DATA_DIR, each a folder with at least one file."""
    data = config.path("DATA_DIR")
    if (data / PENDING).exists():  # cut off in its swap (a crash): the channels may be of two runs, or missing
        raise UserError(f"an install of `make preprocess`'s outputs into {config['DATA_DIR']}/ was cut off: run "
                        "`make preprocess` to complete it (no job runs again)")
    names = config.words("CHANNELS") or sorted(p.name for p in data.glob("*") if p.is_dir()
                                               and not p.name.startswith("."))
    if not names:
        raise UserError(f"no data channels: put one folder per channel in {config['DATA_DIR']}/ "
                        "(or set DATA_DIR, or CHANNELS)")
    found, problems = {}, []
    for name in names:
        folder = data / name
        if not re.fullmatch(r"[A-Za-z0-9\.\-_]{1,64}", name):
            problems.append(f"'{name}' is not a SageMaker channel name: use 1-64 letters, digits, '.', '-' or '_'")
        elif not folder.is_dir():
            problems.append(f"data channel '{name}' is missing: create {config['DATA_DIR']}/{name}/")
        elif not any(p.is_file() for p in folder.rglob("*")) and not files(folder):  # files: through links too
            leave = "leave it out of CHANNELS" if config.words("CHANNELS") else "remove the folder"
            problems.append(f"data channel '{name}' is empty: put its files in {config['DATA_DIR']}/{name}/ or "
                            f"{leave} (SageMaker refuses a channel with no files)")
        found[name] = folder
    if problems:
        raise UserError("; ".join(problems))
    return found
