"""The feature-shard sample schema: one module imported by every writer and reader.

One WebDataset sample per image. ``__key__`` is the image id (a string without dots or slashes).
Members are ``.npy`` arrays and one ``.json`` object, never pickles:

=================  =========  ========  ==========================================================
member             dtype      shape     meaning
=================  =========  ========  ==========================================================
``boxes.npy``      float32    [N, 4]    x1, y1, x2, y2 in original image pixels
``features.npy``   float16    [N, D]    pooled RoI features (D = 2048 for the VG detector)
``obj_ids.npy``    int32      [N]       object class ids, 0-based lines of the objects vocab
``obj_conf.npy``   float32    [N]       object class probabilities
``attr_ids.npy``   int32      [N]       attribute ids, 0-based lines of the attributes vocab
``attr_conf.npy``  float32    [N]       attribute probabilities
``info.json``      object               image_w, image_h, num_boxes, box_mode, selection,
                                        precision, detector_config_hash, checkpoint_sha256,
                                        random_init (true when no real detector weights)
=================  =========  ========  ==========================================================

Image shards (the LAIT output the extractor reads) use ``__key__`` = content hash, an image
member (``jpg``/``png``/``webp``) and a ``json`` member with the pair's metadata.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FEATURE_DIM = 2048
ARRAY_MEMBERS: dict[str, tuple[str, np.dtype]] = {
    "boxes": ("boxes.npy", np.dtype(np.float32)),
    "features": ("features.npy", np.dtype(np.float16)),
    "obj_ids": ("obj_ids.npy", np.dtype(np.int32)),
    "obj_conf": ("obj_conf.npy", np.dtype(np.float32)),
    "attr_ids": ("attr_ids.npy", np.dtype(np.int32)),
    "attr_conf": ("attr_conf.npy", np.dtype(np.float32)),
}
INFO_MEMBER = "info.json"
REQUIRED_INFO = ("image_w", "image_h", "num_boxes", "box_mode")
BOX_MODES = ("fixed36", "adaptive", "given")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


class SchemaError(ValueError):
    """A sample does not follow the feature-shard schema; the message names the key and field."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid WebDataset key (no dots or slashes), else raise."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise SchemaError(f"invalid sample key {key!r}: use letters, digits, '_' or '-' only")
    return key


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


@dataclass
class FeatureSample:
    """RoI features of one image. Shapes and dtypes are in the module docstring."""

    key: str
    boxes: np.ndarray
    features: np.ndarray
    obj_ids: np.ndarray
    obj_conf: np.ndarray
    attr_ids: np.ndarray
    attr_conf: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, (_, dtype) in ARRAY_MEMBERS.items():
            setattr(self, name, np.asarray(getattr(self, name)).astype(dtype, copy=False))
        self.info = dict(self.info)
        self.info.setdefault("num_boxes", int(self.boxes.shape[0]) if self.boxes.ndim else 0)

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    def validate(self) -> FeatureSample:
        """Check shapes, dtypes and required info fields; raise SchemaError naming the problem."""
        check_key(self.key)
        n = self.boxes.shape[0] if self.boxes.ndim == 2 else -1
        where = f"sample {self.key!r}"
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise SchemaError(f"{where}: boxes must be [N,4], got {self.boxes.shape}")
        if self.features.ndim != 2 or self.features.shape[0] != n:
            raise SchemaError(f"{where}: features must be [{n},D], got {self.features.shape}")
        for name in ("obj_ids", "obj_conf", "attr_ids", "attr_conf"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise SchemaError(f"{where}: {name} must be [{n}], got {arr.shape}")
        missing = [k for k in REQUIRED_INFO if k not in self.info]
        if missing:
            raise SchemaError(f"{where}: info lacks {missing}")
        if int(self.info["num_boxes"]) != n:
            raise SchemaError(f"{where}: info.num_boxes={self.info['num_boxes']} but {n} boxes")
        if self.info["box_mode"] not in BOX_MODES:
            raise SchemaError(f"{where}: box_mode {self.info['box_mode']!r} not in {BOX_MODES}")
        if n and not np.isfinite(self.boxes).all():
            raise SchemaError(f"{where}: boxes contain non-finite values")
        return self

    def to_wds(self) -> dict[str, Any]:
        """The WebDataset sample dict (bytes members), ready for ``ShardWriter.write``."""
        self.validate()
        sample: dict[str, Any] = {"__key__": self.key}
        for name, (member, _) in ARRAY_MEMBERS.items():
            sample[member] = npy_bytes(getattr(self, name))
        sample[INFO_MEMBER] = json.dumps(self.info, sort_keys=True).encode()
        return sample

    @classmethod
    def from_wds(cls, sample: dict[str, Any]) -> FeatureSample:
        """Build from a raw WebDataset sample (member name -> bytes); validates."""
        key = sample.get("__key__")
        try:
            arrays = {name: npy_load(sample[member]) for name, (member, _) in ARRAY_MEMBERS.items()}
            info = json.loads(sample[INFO_MEMBER])
        except KeyError as exc:
            raise SchemaError(f"sample {key!r}: missing member {exc.args[0]!r}") from None
        except ValueError as exc:
            raise SchemaError(f"sample {key!r}: unreadable member: {exc}") from None
        return cls(key=key, info=info, **arrays).validate()

    def mean_feature(self) -> np.ndarray:
        """Mean of the RoI features as float32 [D] (the hard-negative image vector)."""
        if self.num_boxes == 0:
            return np.zeros(self.features.shape[1], np.float32)
        return self.features.astype(np.float32).mean(axis=0)
