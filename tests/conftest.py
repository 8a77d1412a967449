"""Shared fixtures: src/ importable, the example data written once per session."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trainer.data import write_channels  # noqa: E402


@pytest.fixture(scope="session")
def example_data(tmp_path_factory) -> Path:
    """DATA_DIR with the example's train/ and validation/ channels."""
    data = tmp_path_factory.mktemp("data set")
    write_channels(data)
    return data
