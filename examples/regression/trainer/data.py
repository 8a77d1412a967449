"""Writes the diabetes data set as the train and validation channels.

Usage: python -m trainer.data DATA_DIR
Only absent files are written: a file already there is left as it is.
"""

import sys
from pathlib import Path

from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

CHANNELS = ("train", "validation")
LABEL = "target"
VALIDATION_SHARE = 0.2
SPLIT_SEED = 42


def _csv(header, features, labels) -> bytes:
    lines = [",".join(header)]
    lines += [",".join(f"{v:.6g}" for v in (*row, label)) for row, label in zip(features, labels, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def main(data_dir: Path) -> list[Path]:
    """Writes <channel>/<channel>.csv (header, then rows; the label column last) and returns the files written."""
    data = load_diabetes()
    header = [*data.feature_names, LABEL]
    x_train, x_val, y_train, y_val = train_test_split(
        data.data, data.target, test_size=VALIDATION_SHARE, random_state=SPLIT_SEED
    )
    written = []
    for channel, features, labels in (("train", x_train, y_train), ("validation", x_val, y_val)):
        path = Path(data_dir) / channel / f"{channel}.csv"
        content = _csv(header, features, labels)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m trainer.data DATA_DIR")
    files = main(Path(sys.argv[1]))
    state = f"wrote {len(files)} file(s)" if files else "up to date"
    print(f"==> data: {sys.argv[1]} has channels {', '.join(CHANNELS)} ({state})", file=sys.stderr)
