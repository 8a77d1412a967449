"""Writes a seeded synthetic classification set: train/ as eight files (for ShardedByS3Key), validation/ as one.

Only absent files are written: a file already there is left as it is.
"""

import sys
from pathlib import Path

import numpy as np

FEATURES = 12
TRAIN_FILES, ROWS_PER_FILE, VALIDATION_ROWS = 8, 500, 1000
LABEL = "target"


def _rows(rng, count: int) -> np.ndarray:
    features = rng.normal(size=(count, FEATURES))
    signal = features[:, 0] - 0.8 * features[:, 1] + 0.5 * features[:, 2] * features[:, 3] + 0.3 * features[:, 4] ** 2
    labels = (signal + rng.normal(scale=0.7, size=count) > 0.3).astype(int)
    return np.column_stack([features, labels])


def _write(path: Path, table: np.ndarray) -> None:
    header = ",".join([*(f"f{i}" for i in range(FEATURES)), LABEL])
    lines = [header, *(",".join([*(f"{v:.6g}" for v in row[:-1]), str(int(row[-1]))]) for row in table)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(data_dir: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    planned = [(Path(data_dir) / "train" / f"part-{i}.csv", ROWS_PER_FILE) for i in range(TRAIN_FILES)]
    planned.append((Path(data_dir) / "validation" / "validation.csv", VALIDATION_ROWS))
    written = []
    for path, count in planned:
        table = _rows(rng, count)  # drawn whatever is kept, so each file's rows never depend on the others
        if path.exists():
            print(f"==> data: {path} exists: left as it is", file=sys.stderr)
            continue
        _write(path, table)
        written.append(path)
    return written


if __name__ == "__main__":
    main(Path(sys.argv[1]))
