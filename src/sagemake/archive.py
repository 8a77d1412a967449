"""Gzipped tar archives that are byte-identical for identical contents (models, source code)."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from pathlib import Path

from sagemake.cli import Progress, UserError

SHOWN_FROM = 20_000_000  # bytes: smaller archives are packed and unpacked in a moment, without progress
COMPRESS_LEVEL = 6  # gzip's own default: level 9 takes twice as long for a model a few percent smaller


def tree(folder: Path, under: str = "") -> list[tuple[str, Path]]:
    """(name in the archive, path) for everything in folder, caches left out."""
    return [(f"{under}{path.relative_to(folder).as_posix()}", path) for path in sorted(folder.rglob("*"))
            if "__pycache__" not in path.parts]


def pack(entries: list[tuple[str, Path]], archive: Path, label: str | None = None) -> None:
    """Write the entries to archive with no times, owners or file name in it: same contents, same bytes.
    With a label, a large one shows its progress."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    progress = _progress(label, sum(p.stat().st_size for _, p in entries if p.is_file() and not p.is_symlink()))
    with archive.open("wb") as file, gzip.GzipFile(filename="", mode="wb", fileobj=file, mtime=0,
                                                   compresslevel=COMPRESS_LEVEL) as raw, \
            tarfile.open(fileobj=raw, mode="w") as tar:
        for name, path in entries:
            info = tar.gettarinfo(path, arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isreg():
                with path.open("rb") as source:
                    tar.addfile(info, _Counted(source, progress))
            else:
                tar.addfile(info)


    if progress:
        progress.done()


def unpack(archive: Path, folder: Path, label: str | None = None, limit: int | None = None) -> None:
    """Extract archive into folder, refusing members that would land outside it, and, with a limit, an archive
    whose members add up to more bytes than that (a decompression bomb fills no disk: the member past the limit is
    refused before it is written). With a label, a large one shows its progress (by the archive's bytes read)."""
    progress = _progress(label, archive.stat().st_size)
    with tarfile.open(archive) as tar:
        raw = getattr(tar.fileobj, "fileobj", tar.fileobj)  # under the decompression, when there is one

        def counted(members):
            total = 0
            for member in members:
                total += member.size
                if limit is not None and total > limit:
                    raise UserError(f"{archive.name} unpacks to more than {limit:,} bytes (MAX_MODEL_BYTES): "
                                    "nothing was fetched; raise MAX_MODEL_BYTES if the model is that large")
                yield member
                if progress:  # the member is out: count what was read for it
                    progress(raw.tell() - progress.moved)

        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, members=counted(tar), filter="data")
        else:  # Python before 3.10.12 / 3.11.4 has no extraction filters: the same refusal by hand.
            inside = folder.resolve()
            for member in tar.getmembers():
                target = (inside / member.name).resolve()
                if inside not in (target, *target.parents) or member.issym() or member.islnk() or member.isdev():
                    raise UserError(f"{archive.name}: refusing {member.name!r}, a link, a device or outside the "
                                    "folder")
            tar.extractall(folder, members=counted(tar.getmembers()))
    if progress:
        progress.done()


def _progress(label: str | None, total: int) -> Progress | None:
    return Progress(label, total) if label and total >= SHOWN_FROM else None


class _Counted:
    """A file whose reads are counted."""

    def __init__(self, file, progress):
        self.file, self.progress = file, progress

    def read(self, count: int = -1) -> bytes:
        block = self.file.read(count)
        if self.progress:
            self.progress(len(block))
        return block


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
