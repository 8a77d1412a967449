"""Gzipped tar archives that are byte-identical for identical contents (models, source code)."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from sagemake.cli import UserError


def tree(folder: Path, under: str = "") -> list[tuple[str, Path]]:
    """(name in the archive, path) for everything in folder, caches left out."""
    return [(f"{under}{path.relative_to(folder).as_posix()}", path) for path in sorted(folder.rglob("*"))
            if "__pycache__" not in path.parts]


def pack(entries: list[tuple[str, Path]], archive: Path) -> None:
    """Write the entries to archive with no times, owners or file name in it: same contents, same bytes."""
    archive.parent.mkdir(parents=True, exist_ok=True)

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    with archive.open("wb") as file, gzip.GzipFile(filename="", mode="wb", fileobj=file, mtime=0) as raw, \
            tarfile.open(fileobj=raw, mode="w") as tar:
        for name, path in entries:
            tar.add(path, arcname=name, recursive=False, filter=normalise)


def unpack(archive: Path, folder: Path) -> None:
    """Extract archive into folder, refusing members that would land outside it."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")
            return
        # Python before 3.10.12 / 3.11.4 has no extraction filters: the same refusal by hand.
        inside = folder.resolve()
        for member in tar.getmembers():
            target = (inside / member.name).resolve()
            if inside not in (target, *target.parents) or member.issym() or member.islnk() or member.isdev():
                raise UserError(f"{archive.name}: refusing {member.name!r}, a link, a device or outside the folder")
        tar.extractall(folder)
