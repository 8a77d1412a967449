"""A fetched model's baseline: its training data profiled per feature, what `make drift` compares requests with.

Computed on this machine when the model is fetched, from the files of the job's training channel (the channel
named train or training, else the first), whatever image trained it: CSV with a header line, JSON lines (one
object a line) or Parquet (when pyarrow is installed); a channel of other files is said and skipped. The label
is no feature: the model's features are the columns its features.json names, when its trainer writes one, else
every column but the job's `target` hyperparameter (or one named target). Written to
MODELS_DIR/<job>/baseline.json:

  {"job", "channel", "format", "files", "rows", "label", "features": [names, in the model's order],
   "profile": {feature: {"kind": "numeric", "count", "missing", "mean", "std", "min", "max"}
                        | {"kind": "categorical", "count", "missing", "values", "top": {value: count}}},
   "sample": {feature: [values]}}

sample holds at most SAMPLE_ROWS rows, drawn evenly from all of them (a seeded reservoir, so the same data gives
the same baseline): the reference a drift test compares captured values with.
Imports the standard library (pyarrow only for Parquet): `make fetch` runs it.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from sagemake import jsonfile
from sagemake.cli import UserError, say
from sagemake.config import Config
from sagemake.jobs.endpoint import BASELINE

SAMPLE_ROWS = 5000
FEATURES = "features.json"  # in a model's folder: the features it takes, when its trainer writes them
TOP_VALUES = 20
TRAINING_CHANNELS = ("train", "training")
SUFFIXES = {".csv": "CSV", ".jsonl": "JSON lines", ".json": "JSON lines", ".parquet": "Parquet"}


class NoBaseline(UserError):
    """The channel cannot be profiled: the sentence says why."""


def training_channel(config: Config, manifest: dict) -> tuple[str, Path]:
    """(channel, its folder on this machine) the job trained on: a local job's own folder; for a job on SageMaker,
    DATA_DIR/<channel>/ when its digest is the one the job's manifest recorded (the data it read)."""
    data = manifest.get("data") or {}
    if not data:
        raise NoBaseline(f"job {manifest['job_name']} had no channels")
    channel = next((name for name in TRAINING_CHANNELS if name in data), next(iter(data)))
    uri = data[channel]["uri"]
    parsed = urlparse(uri)
    local = parsed.scheme == "file"
    folder = Path(unquote(parsed.path)) if local else config.path("DATA_DIR") / channel
    if not folder.is_dir():
        raise NoBaseline(f"channel {channel}'s folder {folder} is gone" if local else
                         f"channel {channel} ({uri}) is not in {config['DATA_DIR']}/{channel}/ on this machine")
    from sagemake.data import summary

    recorded = data[channel].get("digest")  # the data the job read, locally too: a folder changes after its job
    if recorded and summary(config, {channel: folder})[channel]["digest"] != recorded:
        raise NoBaseline(f"{folder} is no longer the data job {manifest['job_name']} read from {uri} (its digest "
                         f"differs): put that data back in {folder}/")
    return channel, folder


def channel_files(folder: Path) -> tuple[str, list[Path]]:
    """(format, files) of a channel: its files of one profiled kind."""
    from sagemake.data import files

    found = [path for path in files(folder) if not path.name.startswith(".")]
    kinds = {SUFFIXES.get(path.suffix.lower()) for path in found}
    if not found:
        raise NoBaseline(f"{folder} holds no files")
    if None in kinds or len(kinds) > 1:
        suffixes = ", ".join(sorted({path.suffix or path.name for path in found})[:5])
        raise NoBaseline(f"the channel's files are {suffixes}: only CSV (with a header), JSON lines and Parquet "
                         "are profiled, one kind a channel")
    kind = kinds.pop()
    if kind == "Parquet" and importlib.util.find_spec("pyarrow") is None:
        raise NoBaseline("the channel is Parquet and pyarrow is not installed here: `make drift` installs it "
                         "and offers to compute the baseline then")
    return kind, found


def records(kind: str, files: list[Path]) -> Iterator[dict]:
    """Each row of the files as {column: value}."""
    for path in files:
        if kind == "CSV":
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                if header is None:
                    continue
                if all(_number(cell) is not None for cell in header):
                    raise NoBaseline(f"{path.name} has no header line naming its columns: add one")
                names = [cell.strip() for cell in header]
                for cells in reader:
                    if cells:
                        yield dict(zip(names, cells, strict=False))
        elif kind == "JSON lines":
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        raise NoBaseline(f"{path.name}, line {number}, is not JSON") from None
                    if not isinstance(row, dict):
                        raise NoBaseline(f"{path.name}, line {number}, is not an object keyed by column")
                    yield row
        else:
            import pyarrow.parquet

            for batch in pyarrow.parquet.ParquetFile(path).iter_batches():
                yield from batch.to_pylist()


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _missing(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def profile(rows: Iterator[dict], label: str | None, taken: list[str] | None = None) -> dict:
    """features, profile and sample of the rows (see the module's doc); taken: the features the model takes, when
    it says, whatever the label is called (every other column is no feature)."""
    features: list[str] = []
    sample: list[dict] = []
    chooser = random.Random(0)
    stats: dict[str, dict] = {}
    count = 0
    for row in rows:
        if not features:
            if taken:
                lacking = [name for name in taken if name not in row]
                if lacking:
                    raise NoBaseline(f"the channel lacks the model's features {', '.join(lacking[:5])}")
                label = next((str(name) for name in row if name not in taken), None)
            label = label if label in row else None
            features = list(taken) if taken else [str(name) for name in row if name != label]
            stats = {name: {"count": 0, "missing": 0, "sum": 0.0, "squares": 0.0, "min": math.inf, "max": -math.inf,
                            "numbers": 0, "values": Counter()} for name in features}
        count += 1
        for name in features:
            value, seen = row.get(name), stats[name]
            if _missing(value):
                seen["missing"] += 1
                continue
            seen["count"] += 1
            number = _number(value)
            if number is not None:
                seen["numbers"] += 1
                seen["sum"] += number
                seen["squares"] += number * number
                seen["min"], seen["max"] = min(seen["min"], number), max(seen["max"], number)
            if len(seen["values"]) <= 10 * TOP_VALUES or str(value) in seen["values"]:
                seen["values"][str(value)] += 1
        if len(sample) < SAMPLE_ROWS:  # reservoir sampling: every row equally likely to be kept
            sample.append(row)
        else:
            at = chooser.randrange(count)
            if at < SAMPLE_ROWS:
                sample[at] = row
    if not count:
        raise NoBaseline("the channel holds no rows")
    summary, kept = {}, {}
    for name in features:
        seen = stats[name]
        numeric = seen["count"] > 0 and seen["numbers"] == seen["count"]
        if numeric:
            mean = seen["sum"] / seen["count"]
            variance = max(seen["squares"] / seen["count"] - mean * mean, 0.0)
            summary[name] = {"kind": "numeric", "count": seen["count"], "missing": seen["missing"], "mean": mean,
                             "std": math.sqrt(variance), "min": seen["min"], "max": seen["max"]}
            kept[name] = [_number(row.get(name)) for row in sample]
        else:
            summary[name] = {"kind": "categorical", "count": seen["count"], "missing": seen["missing"],
                             "values": len(seen["values"]), "top": dict(seen["values"].most_common(TOP_VALUES))}
            kept[name] = [None if _missing(row.get(name)) else str(row.get(name)) for row in sample]
    return {"rows": count, "label": label, "features": features, "profile": summary, "sample": kept}


def model_features(folder: Path) -> list[str] | None:
    """The features the model takes, when its folder says: features.json, a list of names or {"features": [...]}
    (as the example's and the regression example's trainers write it)."""
    try:
        found = json.loads((folder / FEATURES).read_text())
    except (OSError, ValueError):
        return None
    names = found.get("features") if isinstance(found, dict) else found
    return [str(name) for name in names] if isinstance(names, list) and names else None


def compute(config: Config, folder: Path, manifest: dict) -> dict:
    """The baseline of the model in folder, written to folder/baseline.json."""
    channel, data = training_channel(config, manifest)
    kind, files = channel_files(data)
    label = (manifest.get("hyperparameters") or {}).get("target", "target")
    found = profile(records(kind, files), label, model_features(folder))
    baseline = {"job": manifest["job_name"], "channel": channel, "format": kind, "files": len(files), **found}
    jsonfile.write_text(folder / BASELINE, json.dumps(baseline, separators=(",", ":")) + "\n")
    return baseline


def profile_model(config: Config, folder: Path, manifest: dict) -> dict | None:
    """compute, said in one line; a channel that cannot be profiled is said and skipped (the fetch stands)."""
    try:
        baseline = compute(config, folder, manifest)
    except NoBaseline as err:
        say(f"baseline: none for {manifest['job_name']}: {err}")
        return None
    except OSError as err:
        say(f"baseline: none for {manifest['job_name']}: its training data could not be read ({err})")
        return None
    say(described(baseline, folder))
    return baseline


def described(baseline: dict, folder: Path) -> str:
    return (f"baseline: {baseline['rows']} rows of channel {baseline['channel']} ({baseline['format']}) profiled: "
            f"{len(baseline['features'])} features in {folder / BASELINE}")
