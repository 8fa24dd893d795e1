"""Extraction presets: the settings that trade fidelity for speed, one named bundle each.

``full`` is the reference test-time configuration of the bottom-up-attention detector (short
side 600, long side <= 1000, RPN 6000 -> 300 proposals, 14x14 RoIPool): about 20 s per image
on a 2-core CPU, almost all of it in the stride-1 res5 head (about 5.9 GFLOP per RoI).
``demo`` keeps the same network (ResNet-101 C4, VG head shapes, so a real checkpoint loads
unchanged) but runs on smaller inputs (short side 240, long <= 360), classifies 50 proposals
instead of 300 and pools 7x7 (res5 costs a quarter per RoI), so a 2-core CPU extracts given
boxes in well under a second per image. Features from ``demo`` are not comparable with
``full`` features; the preset is recorded in every manifest and sample.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """Input size (pixels), RPN proposal counts and RoI pool resolution of one preset."""

    name: str
    min_size: int  # short side after resizing, pixels
    max_size: int  # cap on the long side, pixels
    pre_nms_topk: int  # RPN proposals kept before its NMS (0.7)
    post_nms_topk: int  # RPN proposals kept after its NMS: the RoIs classified per image
    pooler_resolution: int = 14  # RoIPool output size (res5 keeps it: stride 1)

    def __post_init__(self) -> None:
        if not 0 < self.min_size <= self.max_size:
            raise ValueError(f"preset {self.name!r}: need 0 < min_size <= max_size")
        if not 0 < self.post_nms_topk <= self.pre_nms_topk:
            raise ValueError(f"preset {self.name!r}: need 0 < post_nms_topk <= pre_nms_topk")
        if self.pooler_resolution < 1:
            raise ValueError(f"preset {self.name!r}: pooler_resolution must be >= 1")

    def to_dict(self) -> dict[str, int | str]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    "full": Preset("full", min_size=600, max_size=1000, pre_nms_topk=6000, post_nms_topk=300),
    # ~0.35 s per image with a few given boxes, ~1 s with 36 detected boxes (1 CPU thread)
    "demo": Preset(
        "demo", min_size=240, max_size=360, pre_nms_topk=1000, post_nms_topk=50, pooler_resolution=7
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """A preset by name (``full``, ``demo``) or a :class:`Preset` given as is."""
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}") from None


def load_preset(preset: str | Preset) -> Preset:
    """:func:`get_preset`, or a JSON file with the :class:`Preset` fields (custom settings)."""
    if isinstance(preset, str) and preset not in PRESETS and preset.endswith(".json"):
        import json
        from pathlib import Path

        path = Path(preset)
        if not path.is_file():
            raise ValueError(f"preset file not found: {path}")
        fields = json.loads(path.read_text())
        fields.setdefault("name", path.stem)
        return Preset(**fields)
    return get_preset(preset)
