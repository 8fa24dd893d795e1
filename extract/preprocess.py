"""Test-time image preprocessing of the bottom-up-attention detector (no detectron2 needed).

The network takes a BGR float image with the pixel mean subtracted (std 1), resized so the short
side is ``min_size`` and the long side at most ``max_size``. Two resize modes are offered:

``caffe`` (default)
    The Caffe original: convert to float32, subtract the mean, then resize with one scale factor
    ``s = min_size / short`` (or ``max_size / long`` when ``round(s * long) > max_size``) to
    ``round(s * w) x round(s * h)``, bilinear, like ``cv2.resize(fx=s, fy=s, INTER_LINEAR)``.
    We use ATen's ``upsample_bilinear2d`` (half-pixel centres, ``align_corners=False``, no
    antialiasing) with the output size *and* the scale given, so the source coordinate of output
    pixel ``i`` is ``(i + 0.5) / s - 0.5`` exactly as OpenCV computes it (``F.interpolate`` would
    either floor the output size or remap with ``in / out`` instead of ``1 / s``). Boxes map back
    to the original image by dividing by ``s``.
``pillow``
    The detectron2 port (``ResizeShortestEdge``): resize the **uint8** image with Pillow's
    bilinear filter (which antialiases when shrinking) to ``int(x * scale + 0.5)`` per side, then
    subtract the mean. Boxes map back per axis by ``new_w / w`` and ``new_h / h``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

RESIZE_MODES = ("caffe", "pillow")
MIN_INPUT_SIDE = 16  # pixels after resizing: at least one res4 cell (stride 16)


class PreprocessError(ValueError):
    """An image that cannot be fed to the detector (for example an extreme aspect ratio)."""


@dataclass
class PreparedImage:
    """One network input. ``tensor`` is [3,h,w] float32, BGR, mean subtracted, in resized pixels;
    ``scale_x``/``scale_y`` map original pixel coordinates to resized ones (resized = orig*scale);
    ``width``/``height`` are the original image size in pixels."""

    tensor: torch.Tensor
    scale_x: float
    scale_y: float
    width: int
    height: int

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the network input, pixels."""
        return int(self.tensor.shape[1]), int(self.tensor.shape[2])


def caffe_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """The Caffe test scale (``prep_im_for_blob``): short side to ``min_size`` unless the rounded
    long side would exceed ``max_size``."""
    short, long = min(height, width), max(height, width)
    scale = min_size / short
    if round(scale * long) > max_size:
        scale = max_size / long
    return scale


def pillow_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(new_h, new_w) of detectron2's ``ResizeShortestEdge.get_output_shape``."""
    scale = min_size / min(height, width)
    if height < width:
        newh, neww = float(min_size), scale * width
    else:
        newh, neww = scale * height, float(min_size)
    if max(newh, neww) > max_size:
        shrink = max_size / max(newh, neww)
        newh, neww = newh * shrink, neww * shrink
    return int(newh + 0.5), int(neww + 0.5)


def _check_size(key_size: tuple[int, int], new_size: tuple[int, int]) -> None:
    if min(new_size) < MIN_INPUT_SIDE:
        raise PreprocessError(
            f"image {key_size[1]}x{key_size[0]} becomes {new_size[1]}x{new_size[0]} after "
            f"resizing; the detector needs at least {MIN_INPUT_SIDE} px per side"
        )


def preprocess(
    image: Image.Image,
    *,
    min_size: int,
    max_size: int,
    mode: str = "caffe",
    pixel_mean: Sequence[float] = (102.9801, 115.9465, 122.7717),
) -> PreparedImage:
    """Turn an RGB PIL image into the detector input (see the module docstring for the modes).

    ``pixel_mean`` is in BGR order. Raises :class:`PreprocessError` for images that would be
    smaller than ``MIN_INPUT_SIDE`` pixels on a side after resizing.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; one of {RESIZE_MODES}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    mean = torch.tensor(pixel_mean, dtype=torch.float32).view(3, 1, 1)
    if mode == "pillow":
        newh, neww = pillow_size(height, width, min_size, max_size)
        _check_size((height, width), (newh, neww))
        if (newh, neww) != (height, width):
            image = image.resize((neww, newh), Image.BILINEAR)
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        tensor = torch.from_numpy(bgr).permute(2, 0, 1).float() - mean
        return PreparedImage(tensor.contiguous(), neww / width, newh / height, width, height)

    scale = caffe_scale(height, width, min_size, max_size)
    newh, neww = round(height * scale), round(width * scale)
    _check_size((height, width), (newh, neww))
    bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    tensor = torch.from_numpy(bgr).permute(2, 0, 1).float() - mean
    if (newh, neww) != (height, width):
        tensor = torch.ops.aten.upsample_bilinear2d(
            tensor.unsqueeze(0), [newh, neww], False, scale, scale
        )[0]
    return PreparedImage(tensor.contiguous(), scale, scale, width, height)
