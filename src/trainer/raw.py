"""The example's raw data step (replace with yours): main(raw_dir) writes the raw data that preprocessing cleans.

The breast cancer data set as data often arrives: a free-text column no model
can take, a few rows with missing values and a few exported twice. sagemake
runs it with the job's Python when RAW_DIR is missing or empty; it writes only
a file that is absent, so raw data you put in RAW_DIR is never overwritten.
"""

import csv
import random
import sys
from pathlib import Path

FILE = "breast_cancer.csv"
LABEL = "target"
TEXT = "note"  # free text, dropped by preprocessing
SEED = 7
MISSING_ROWS = 6
DUPLICATE_ROWS = 9
NOTES = ("reviewed", "second opinion, clinic B", "re-imaged", "", "sample \"fine needle\"")


def main(raw_dir: Path) -> list[Path]:
    """Write RAW_DIR/breast_cancer.csv unless it exists; returns what it wrote."""
    target = Path(raw_dir) / FILE
    if target.exists():
        print(f"==> raw: {target} exists: left as it is", file=sys.stderr)
        return []
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rng = random.Random(SEED)
    rows = [[*(f"{v:.6g}" for v in features), str(label), rng.choice(NOTES)]
            for features, label in zip(data.data, data.target, strict=True)]
    for index in rng.sample(range(len(rows)), MISSING_ROWS):  # a cell left empty, or written as NA
        rows[index][rng.randrange(len(data.feature_names))] = rng.choice(("", "NA"))
    for index in rng.sample(range(len(rows)), DUPLICATE_ROWS):  # exported twice
        rows.insert(rng.randrange(len(rows)), list(rows[index]))
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*data.feature_names, LABEL, TEXT])
        writer.writerows(rows)
    print(f"==> raw: wrote {target} ({len(rows)} rows, {MISSING_ROWS} with a missing value, "
          f"{DUPLICATE_ROWS} duplicated, a text column '{TEXT}')", file=sys.stderr)
    return [target]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m trainer.raw RAW_DIR")
    main(Path(sys.argv[1]))
