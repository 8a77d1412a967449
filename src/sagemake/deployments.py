"""What was served, transformed, deployed or undeployed: one JSON line per event in MODELS_DIR/deployments.jsonl."""

from __future__ import annotations

import json

from sagemake.clock import now
from sagemake.config import Config

RECORDS = "deployments.jsonl"  # in MODELS_DIR: one JSON object a line, appended


def record(config: Config, event: str, **fields) -> dict:
    """Append what was served, transformed, deployed or undeployed to MODELS_DIR/deployments.jsonl."""
    entry = {"time": now(), "event": event, "env": config.env, **fields}
    path = config.path("MODELS_DIR") / RECORDS
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:  # one write of one line: appends from several commands do not interleave
        handle.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return entry


def history(config: Config) -> list[dict]:
    path = config.path("MODELS_DIR") / RECORDS
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:  # a line cut short by a full disk: the others still count
            continue
    return entries


def current(config: Config) -> dict[tuple[str, str], dict]:
    """The last event of each (ENV, endpoint or transform or URL)."""
    latest = {}
    for entry in history(config):
        latest[(entry["env"], entry.get("endpoint") or entry.get("transform") or entry.get("url", ""))] = entry
    return latest
