"""Script mode: the training code travels as sourcedir.tar.gz beside an image that holds
SageMaker's training toolkit, so a code-only change needs no new image.

The archive holds what docker/Dockerfile copies into a bring-your-own image:
docker/train (the program the toolkit runs, named by `sagemaker_program`), the
container contract and the trainer package. Its name is a hash of that content,
so an unchanged tree is never packed or uploaded twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sagemake.archive import pack, tree

PROGRAM = "train"
CONTRACT = "sagemake/contract"  # the container side, whole: what the image copies too
ARCHIVE = "sourcedir.tar.gz"
PROGRAM_KEY = "sagemaker_program"
DIRECTORY_KEY = "sagemaker_submit_directory"


def entries(root: Path) -> list[tuple[str, Path]]:
    return [
        (PROGRAM, root / "docker/train"),
        ("sagemake", root / "src/sagemake"),
        (CONTRACT, root / "src" / CONTRACT),
        *contract(root),
        ("trainer", root / "src/trainer"),
        *tree(root / "src/trainer", "trainer/"),
    ]


def tag(root: Path) -> str:
    """A hash of the archive's names and contents."""
    return digest(entries(root))[:12]


def digest(named: list[tuple[str, Path]]) -> str:
    """A hash of (name, path) pairs' names and contents: what a cache keyed by code is keyed by."""
    found = hashlib.sha256()
    for name, path in named:
        found.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return found.hexdigest()


def contract(root: Path) -> list[tuple[str, Path]]:
    """The container side, every file of it: moving or adding one changes what keys on it."""
    return tree(root / "src" / CONTRACT, f"{CONTRACT}/")


def write(root: Path, archive: Path) -> Path:
    """The archive at that path, packed unless it is there already."""
    if not archive.is_file():
        partial = archive.with_suffix(".partial")
        pack(entries(root), partial)
        partial.replace(archive)
    return archive
