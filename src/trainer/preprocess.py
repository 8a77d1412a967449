"""The example's preprocessing (replace with yours): raw data in, the training channels out, as a SageMaker
processing job runs it.

Usage: python -m trainer.preprocess [--validation-share 0.2] [--seed 42] [--label target]

It reads every .csv under /opt/ml/processing/input/raw/ (one header each, the
same columns), drops the columns that are not numbers (free text), the rows
with a missing value and the rows seen before, and splits the rest, stratified
by the label, into /opt/ml/processing/output/train/train.csv and
/opt/ml/processing/output/validation/validation.csv: the features, then the
label, as src/trainer/train.py reads them. SAGEMAKER_BASE_DIR moves the
/opt/ml root (a local process runs under a folder of its own).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from pathlib import Path

INPUT = "raw"
CHANNELS = ("train", "validation")
MISSING = {"", "na", "nan", "null", "none", "?"}


def number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read(folder: Path) -> tuple[list[str], list[list[str]]]:
    files = sorted(folder.rglob("*.csv"))
    if not files:
        sys.exit(f"preprocess: no .csv file in {folder}: put the raw data in RAW_DIR")
    header, rows = None, []
    for path in files:
        with path.open(newline="") as handle:
            first, *lines = list(csv.reader(handle))
        if header is not None and first != header:
            sys.exit(f"preprocess: {path.name} has other columns than {files[0].name}: one layout for every file")
        header = first
        rows += [line for line in lines if line]
    return header, rows


def clean(header: list[str], rows: list[list[str]], label: str):
    """(features, rows of floats, labels, what was dropped)."""
    if label not in header:
        sys.exit(f"preprocess: no label column '{label}' in the raw data (columns: {', '.join(header)})")
    def absent(cell: str) -> bool:
        return cell.strip().lower() in MISSING

    whole = [r for r in rows if len(r) == len(header)]
    text = [name for i, name in enumerate(header)  # a column with a value that is there and is not a number
            if name != label and any(not absent(r[i]) and number(r[i]) is None for r in whole)]
    columns = [i for i, name in enumerate(header) if name not in text and name != label]
    at = header.index(label)
    kept = [r for r in whole if not any(absent(r[i]) for i in (*columns, at))]
    missing = len(rows) - len(kept)
    seen, table, labels, duplicates = set(), [], [], 0
    for r in kept:
        key = (tuple(r[i] for i in columns), r[at])
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        table.append([float(r[i]) for i in columns])
        labels.append(r[at])
    dropped = {"rows_missing": missing, "rows_duplicate": duplicates, "columns_text": text}
    return [header[i] for i in columns], table, labels, dropped


def write(path: Path, features: list[str], label: str, table, labels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*features, label])
        writer.writerows([*(f"{v:.6g}" for v in row), y] for row, y in zip(table, labels, strict=True))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="preprocess")
    parser.add_argument("--validation-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--label", default="target")
    args = parser.parse_args(argv)
    if not 0 < args.validation_share < 1:
        parser.error("--validation-share must be between 0 and 1")
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing"
    header, rows = read(base / "input" / INPUT)
    features, table, labels, dropped = clean(header, rows, args.label)
    from sklearn.model_selection import train_test_split  # about a second: once the input is known good

    x_train, x_val, y_train, y_val = train_test_split(table, labels, test_size=args.validation_share,
                                                      random_state=args.seed, stratify=labels)
    for channel, (x, y) in zip(CHANNELS, ((x_train, y_train), (x_val, y_val)), strict=True):
        write(base / "output" / channel / f"{channel}.csv", features, args.label, x, y)
    print(f"preprocess: read {len(rows)} rows; dropped {dropped['rows_missing']} with a missing value, "
          f"{dropped['rows_duplicate']} duplicates, text column(s) {', '.join(dropped['columns_text']) or 'none'}; "
          f"wrote train {len(y_train)} rows, validation {len(y_val)} rows", flush=True)
    # The same counts as metrics (name=value lines): sagemake keeps them with the job.
    for metric, value in (("dropped_missing", dropped["rows_missing"]),
                          ("dropped_duplicates", dropped["rows_duplicate"]),
                          ("train_rows", len(y_train)), ("validation_rows", len(y_val))):
        print(f"preprocess:{metric}={value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
