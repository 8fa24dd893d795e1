"""Shared fixtures. Data that ships beside the project (detector label files) is located here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("MSP_SHARED_DIR")
    return Path(env) if env else ROOT.parent / "shared"


@pytest.fixture(scope="session")
def vg_labels_dir() -> Path:
    """Folder with objects_vocab.txt / attributes_vocab.txt (the detector's label files).

    They come with a detector checkpoint and are not part of the project; tests read them from
    ``$MSP_SHARED_DIR/data/vg`` (default: ``shared/`` beside the checkout).
    """
    path = _shared_dir() / "data" / "vg"
    if not (path / "objects_vocab.txt").exists():
        pytest.skip(f"detector label files not found in {path} (set MSP_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def bua_keys_file() -> Path:
    """The converted bottom-up-attention checkpoint's key/shape list."""
    path = _shared_dir() / "data" / "bua" / "checkpoint_keys.txt"
    if not path.exists():
        pytest.skip(f"checkpoint key list not found at {path} (set MSP_SHARED_DIR)")
    return path
