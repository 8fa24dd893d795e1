"""Test-time preprocessing: scales, sizes, BGR mean subtraction, the two resize modes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from extract.preprocess import (
    PreprocessError,
    caffe_scale,
    pillow_size,
    preprocess,
)

MEAN_BGR = np.array([102.9801, 115.9465, 122.7717], np.float32)


def _bilinear_half_pixel(img: np.ndarray, scale: float, out_hw: tuple[int, int]) -> np.ndarray:
    """OpenCV INTER_LINEAR on float images: src = (dst + 0.5) / scale - 0.5, clamped."""

    def axis(n_out: int, n_in: int):
        src = (np.arange(n_out) + 0.5) / scale - 0.5
        src = np.clip(src, 0, None)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (src - i0)[:, None]

    y0, y1, fy = axis(out_hw[0], img.shape[0])
    x0, x1, fx = axis(out_hw[1], img.shape[1])
    rows = img[y0] * (1 - fy[:, :, None]) + img[y1] * fy[:, :, None]
    return rows[:, x0] * (1 - fx.T[:, :, None]) + rows[:, x1] * fx.T[:, :, None]


def test_scales_and_sizes():
    assert caffe_scale(480, 640, 600, 1000) == 1.25
    assert caffe_scale(300, 1000, 600, 1000) == 1.0  # round(2 * 1000) > 1000: long side caps
    assert pillow_size(480, 640, 600, 1000) == (600, 800)
    assert pillow_size(333, 500, 600, 1000) == (600, 901)  # int(900.9 + 0.5)
    assert pillow_size(100, 1000, 600, 1000) == (100, 1000)


def test_bgr_mean_subtraction():
    image = Image.new("RGB", (50, 40), (10, 20, 30))
    for mode in ("caffe", "pillow"):
        out = preprocess(image, min_size=40, max_size=100, mode=mode)
        assert out.tensor.shape == (3, 40, 50) and (out.scale_x, out.scale_y) == (1.0, 1.0)
        expected = np.array([30, 20, 10], np.float32) - MEAN_BGR  # B, G, R
        np.testing.assert_allclose(out.tensor.mean(dim=(1, 2)).numpy(), expected, rtol=1e-6)


def test_caffe_mode_resizes_the_float_image_like_opencv():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    out = preprocess(Image.fromarray(rgb), min_size=20, max_size=100, mode="caffe")
    scale = 20 / 7
    assert out.tensor.shape == (3, 20, 26)  # round(9 * 20/7 = 25.7)
    assert out.scale_x == out.scale_y == pytest.approx(scale)
    ref = _bilinear_half_pixel(rgb[:, :, ::-1].astype(np.float32) - MEAN_BGR, scale, (20, 26))
    np.testing.assert_allclose(out.tensor.permute(1, 2, 0).numpy(), ref, atol=1e-3)


def test_caffe_mode_matches_cv2_when_installed():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (101, 77, 3), dtype=np.uint8)
    out = preprocess(Image.fromarray(rgb), min_size=600, max_size=1000, mode="caffe")
    bgr = rgb[:, :, ::-1].astype(np.float32) - MEAN_BGR
    scale = caffe_scale(101, 77, 600, 1000)
    ref = cv2.resize(bgr, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    assert ref.shape == (787, 600, 3)
    np.testing.assert_allclose(out.tensor.permute(1, 2, 0).numpy(), ref, atol=0.02)


def test_pillow_mode_resizes_uint8_with_pillow_first():
    rng = np.random.default_rng(2)
    image = Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8))
    out = preprocess(image, min_size=20, max_size=100, mode="pillow")
    assert out.tensor.shape == (3, 20, 30)
    resized = np.asarray(image.resize((30, 20), Image.BILINEAR))[:, :, ::-1]
    np.testing.assert_array_equal(out.tensor.permute(1, 2, 0).numpy(), resized - MEAN_BGR)
    assert (out.scale_x, out.scale_y) == (30 / 45, 20 / 30)


def test_extreme_aspect_ratio_is_refused():
    with pytest.raises(PreprocessError, match="after resizing"):
        preprocess(Image.new("RGB", (2000, 10)), min_size=600, max_size=1000)
    with pytest.raises(ValueError, match="resize mode"):
        preprocess(Image.new("RGB", (20, 10)), min_size=10, max_size=20, mode="cv2")
