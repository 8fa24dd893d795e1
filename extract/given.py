"""Given-box files: the boxes to pool features for, per image key, in original pixels.

Two formats, told apart by their first non-blank character:

* JSON Lines (``{``): one ``{"key": "1001", "boxes": [[x1, y1, x2, y2], ...]}`` per line.
* A Visual Genome ``objects.json`` (``[``): a list of ``{"image_id": 1001, "objects": [{"x",
  "y", "w", "h", "names", ...}, ...]}``; key ``str(image_id)``, box ``[x, y, x + w, y + h]``
  (as the bottom-up-attention repository converts VG).

A malformed file raises ``GivenBoxesError`` naming the line or entry. Images whose boxes are
unusable (none, non-finite, ``x2 < x1`` or ``y2 < y1``) map to a reason string instead of an
array, and the extractor counts them as rejects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


class GivenBoxesError(ValueError):
    """The given-boxes file cannot be read; the message names the file and the place."""


def _check_boxes(boxes: Any) -> np.ndarray | str:
    """[N,4] float32 boxes, or the reason they cannot be used."""
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        return "boxes are not a list of [x1, y1, x2, y2] numbers"
    if arr.size == 0:
        return "no boxes given for this image"
    if arr.ndim != 2 or arr.shape[1] != 4:
        return f"boxes must be [N,4], got shape {list(arr.shape)}"
    if not np.isfinite(arr).all():
        return "boxes contain non-finite values"
    bad = np.nonzero((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1]))[0]
    if bad.size:
        return f"{bad.size} boxes have x2 < x1 or y2 < y1 (first: {arr[bad[0]].tolist()})"
    return arr.astype(np.float32)


def _read_jsonl(path: Path, text: str) -> dict[str, np.ndarray | str]:
    out: dict[str, np.ndarray | str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GivenBoxesError(f"{path}:{lineno}: not JSON: {exc.msg}") from None
        if not isinstance(rec, dict) or "key" not in rec or "boxes" not in rec:
            raise GivenBoxesError(f"{path}:{lineno}: expected an object with 'key' and 'boxes'")
        key = str(rec["key"])
        if key in out:
            raise GivenBoxesError(f"{path}:{lineno}: key {key!r} appears twice")
        out[key] = _check_boxes(rec["boxes"])
    return out


def _read_vg(path: Path, text: str) -> dict[str, np.ndarray | str]:
    try:
        images = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GivenBoxesError(f"{path}: not JSON: {exc.msg} (line {exc.lineno})") from None
    out: dict[str, np.ndarray | str] = {}
    for i, image in enumerate(images):
        if not isinstance(image, dict) or "objects" not in image:
            raise GivenBoxesError(f"{path}: entry {i} is not {{'image_id', 'objects'}}")
        image_id = image.get("image_id", image.get("id"))
        if image_id is None:
            raise GivenBoxesError(f"{path}: entry {i} has no image_id")
        try:
            boxes = [[o["x"], o["y"], o["x"] + o["w"], o["y"] + o["h"]] for o in image["objects"]]
        except (KeyError, TypeError):
            raise GivenBoxesError(f"{path}: image {image_id}: objects need x, y, w, h") from None
        key = str(image_id)
        if key in out:
            raise GivenBoxesError(f"{path}: image_id {key} appears twice")
        out[key] = _check_boxes(boxes)
    return out


def load_given_boxes(path: str | os.PathLike) -> dict[str, np.ndarray | str]:
    """key -> [N,4] float32 boxes (x1,y1,x2,y2, original pixels) or a reason string."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GivenBoxesError(f"cannot read given-boxes file {path}: {exc}") from None
    head = text.lstrip()[:1]
    if head == "[":
        return _read_vg(path, text)
    if head == "{":
        return _read_jsonl(path, text)
    raise GivenBoxesError(
        f"{path}: neither JSON Lines ({{'key', 'boxes'}} per line) nor a VG objects.json list"
    )
