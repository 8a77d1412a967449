"""JSON files that no reader sees half written, whoever writes them at once: job records, caches, stamps.

A write goes to a hidden file beside the target, named for the writing process and thread, and replaces the
target whole; two writers at once each replace it whole, and the last one wins.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


def write(path: Path, value, indent: int | None = 2, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(value, indent=indent, sort_keys=sort_keys) + "\n")


def write_text(path: Path, text: str) -> None:
    """Any text file written so (the report, a page read while it is remade)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        partial.write_text(text)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)  # after a failed write (a full disk): nothing left beside the target


def read(path: Path, default):
    """The file's value; `default` when it is missing or is not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default
