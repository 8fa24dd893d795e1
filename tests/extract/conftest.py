"""Fixtures for the extractor tests: one small random-init detector, tiny real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from extract.presets import Preset

# Small enough for a shared 2-core CPU, large enough for >= 36 RPN proposals per image.
TEST_PRESET = Preset(
    "test", min_size=96, max_size=128, pre_nms_topk=400, post_nms_topk=48, pooler_resolution=2
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def test_preset() -> Preset:
    return TEST_PRESET


@pytest.fixture(scope="session")
def test_detector():
    """The VG detector (R101-C4, full head shapes), random-init, at the tiny test preset."""
    from extract.detector import build_detector

    torch.set_num_threads(1)
    return build_detector(preset=TEST_PRESET, device="cpu")


def _photos() -> list[np.ndarray]:
    from skimage import data

    return [data.astronaut(), data.chelsea(), data.coffee()]


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Three tiny photos (jpg, png, webp) with keys img1..img3."""
    folder = tmp_path / "images"
    folder.mkdir()
    sizes = [(64, 48), (60, 40), (40, 56)]
    for i, (photo, size, ext) in enumerate(
        zip(_photos(), sizes, ("jpg", "png", "webp"), strict=True)
    ):
        Image.fromarray(photo).resize(size).save(folder / f"img{i + 1}.{ext}")
    return folder
