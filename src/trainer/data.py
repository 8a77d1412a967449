"""The example's data step (replace with yours): main(data_dir) writes one folder per channel.

sagemake runs it with the job's Python (the image's requirements): `make data`
always, `make train` only when DATA_DIR holds nothing yet. It writes only files that
are absent, so files you put in DATA_DIR are never overwritten.
"""

import sys
from pathlib import Path

VALIDATION_SHARE = 0.2
SPLIT_SEED = 42
LABEL = "target"
CHANNELS = ("train", "validation")


def _csv(header, features, labels) -> bytes:
    lines = [",".join(header)]
    lines += [",".join([*(f"{v:.6g}" for v in row), str(label)]) for row, label in zip(features, labels, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def main(data_dir: Path) -> list[Path]:
    """Write DATA_DIR/train/train.csv and DATA_DIR/validation/validation.csv where absent; returns what it wrote."""
    targets = [Path(data_dir) / channel / f"{channel}.csv" for channel in CHANNELS]
    kept = [path for path in targets if path.exists()]
    for path in kept:
        print(f"==> data: {path} exists: left as it is", file=sys.stderr)
    if len(kept) == len(targets):
        return []
    from sklearn.datasets import load_breast_cancer  # about a second: only when something is to be written
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    header = [*data.feature_names, LABEL]
    x_train, x_val, y_train, y_val = train_test_split(
        data.data, data.target, test_size=VALIDATION_SHARE, random_state=SPLIT_SEED, stratify=data.target
    )
    written = []
    for path, (features, labels) in zip(targets, ((x_train, y_train), (x_val, y_val)), strict=True):
        if path not in kept:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_csv(header, features, labels))
            written.append(path)
    print(f"==> data: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m trainer.data DATA_DIR")
    main(Path(sys.argv[1]))
