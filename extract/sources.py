"""Where images come from, and their decoding and resizing off the main thread.

``SRC`` is one of:

* a folder of images (``.jpg``/``.jpeg``/``.png``/``.webp``, not recursive, sorted by name);
  key = file stem;
* image WebDataset shards (the LAIT output: ``__key__``, an image member, a ``json`` member):
  a ``.tar`` file, a folder of ``.tar`` files, or a brace pattern ``shards-{000000..000009}.tar``;
  key = ``__key__``;
* a text file listing image paths, one per line (relative to the list's folder; blank lines
  and ``#`` comments skipped); key = file stem.

:class:`PreparedStream` (a torch ``IterableDataset``) reads, decodes (EXIF orientation applied,
as ``cv2.imread`` does) and preprocesses each image in a DataLoader worker, so the detector never
waits on the disk. Every input comes out as exactly one of :class:`Ready`, :class:`Skipped`
(already in a complete shard) or :class:`Rejected` (input id, step, reason): unreadable images
are counted, never fatal. Decoding takes the first frame of animations, scales 16-bit
images to 8 bits, drops alpha, converts CMYK and palette images, and refuses images over
``MAX_PIXELS`` from their header, before decoding them (decompression bombs).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from webdataset.shardlists import expand_urls

from corpora.schema import IMAGE_EXTENSIONS, SchemaError, check_key
from corpora.shards import iter_raw
from extract.partition import WorkerSpec
from extract.preprocess import PreparedImage, PreprocessError, preprocess

IMAGE_SUFFIXES = tuple(f".{ext}" for ext in IMAGE_EXTENSIONS)
MAX_PIXELS = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS (about 0.25 GB of RGB)


@dataclass
class SourceItem:
    """One input before decoding: a file path or the bytes of a shard member."""

    key: str
    path: Path | None = None
    data: bytes | None = None
    error: str | None = None  # a problem found while listing (no image member, bad key)


@dataclass
class Ready:
    """A decoded, preprocessed image; ``boxes`` [N,4] float32 given boxes (original pixels,
    clipped to the image) or None."""

    key: str
    image: PreparedImage
    boxes: np.ndarray | None = None


@dataclass
class Skipped:
    key: str


@dataclass
class Rejected:
    key: str
    step: str
    reason: str

    def record(self) -> dict[str, str]:
        return {"input_id": self.key, "step": self.step, "reason": self.reason}


def source_kind(src: str | os.PathLike) -> str:
    """``folder``, ``shards`` or ``list`` for ``src`` (see the module docstring)."""
    text = str(src)
    path = Path(text)
    if "{" in text and text.endswith(".tar"):
        return "shards"
    if path.is_dir():
        names = [p.suffix.lower() for p in path.iterdir() if p.is_file()]
        if any(s in IMAGE_SUFFIXES for s in names):
            return "folder"
        if ".tar" in names:
            return "shards"
        raise FileNotFoundError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) or .tar shards")
    if path.is_file():
        return "shards" if path.suffix == ".tar" else "list"
    raise FileNotFoundError(f"image source not found: {path}")


def _shard_urls(src: str) -> list[str]:
    path = Path(src)
    if path.is_dir():
        return [str(p) for p in sorted(path.glob("*.tar"))]
    return list(expand_urls(src))


def _list_paths(src: Path) -> Iterator[Path]:
    for line in src.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line)
            yield path if path.is_absolute() else src.parent / path


def _item_for_path(path: Path) -> SourceItem:
    return SourceItem(key=path.stem, path=path)


def iter_source(src: str | os.PathLike) -> Iterator[SourceItem]:
    """Every input of ``src`` in a stable order (problems found here ride along as ``error``)."""
    kind = source_kind(src)
    if kind == "folder":
        files = sorted(p for p in Path(src).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        yield from (_item_for_path(p) for p in files)
    elif kind == "list":
        yield from (_item_for_path(p) for p in _list_paths(Path(src)))
    else:
        for sample in iter_raw(_shard_urls(str(src))):
            key = str(sample.get("__key__"))
            member = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
            if member is None:
                have = sorted(k for k in sample if not k.startswith("__"))
                yield SourceItem(key, error=f"no image member (jpg/png/webp) in sample: {have}")
            else:
                yield SourceItem(key, data=sample[member])


def count_inputs(src: str | os.PathLike) -> int | None:
    """Number of inputs when it is cheap to know (folders, lists), else None."""
    kind = source_kind(src)
    if kind == "folder":
        return sum(1 for p in Path(src).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if kind == "list":
        return sum(1 for _ in _list_paths(Path(src)))
    return None


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB of any decoded mode. 16/32-bit grayscale is scaled to 8 bits (Pillow's own
    conversion clips it, turning most 16-bit photos white); alpha is dropped, as ``cv2.imread``
    does; CMYK, palette and 1-bit images use Pillow's conversions."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.int64)
        top = 65535 if img.mode.startswith("I;16") or int(arr.max(initial=0)) <= 65535 else None
        if top is None:  # genuinely 32-bit: stretch the range
            lo, hi = int(arr.min()), int(arr.max())
            arr = (arr - lo) * 255 // max(hi - lo, 1)
        else:
            arr = (arr.clip(0, top) * 255 + top // 2) // top
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    elif img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
        img = Image.fromarray(((arr - lo) * 255 / max(hi - lo, 1e-12)).astype(np.uint8), mode="L")
    return img if img.mode == "RGB" else img.convert("RGB")


def decode_image(item: SourceItem, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """RGB PIL image of an item: the first frame of animations, EXIF orientation applied (as
    ``cv2.imread`` does). Raises ValueError for images over ``max_pixels`` (decompression
    bombs; checked from the header, before decoding) and OSError/ValueError for unreadable
    data."""
    source = io.BytesIO(item.data) if item.data is not None else item.path
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(source)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ValueError(f"decompression bomb: {exc}") from None
        with img:
            width, height = img.size
            if width * height > max_pixels:
                raise ValueError(
                    f"decompression bomb: {width}x{height} = {width * height} pixels "
                    f"> limit {max_pixels}"
                )
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip [N,4] x1,y1,x2,y2 boxes to the image (0..width, 0..height), float32."""
    out = boxes.astype(np.float32, copy=True)
    out[:, 0::2] = out[:, 0::2].clip(0, width)
    out[:, 1::2] = out[:, 1::2].clip(0, height)
    return out


class PreparedStream(torch.utils.data.IterableDataset):
    """Inputs of ``src`` as Ready / Skipped / Rejected, in source order.

    Args:
        src: image source (module docstring).
        preprocess_kwargs: arguments of :func:`extract.preprocess.preprocess`.
        skip_keys: keys already written (complete shards); they come out as ``Skipped``.
        limit: only the first ``limit`` inputs of the source (before the worker split).
        given: key -> [N,4] boxes or reason string (given-box mode), or None.
        worker: this job worker's share of the inputs (:class:`extract.partition.WorkerSpec`).

    With several DataLoader workers each decodes every k-th input of this job worker's share;
    the DataLoader's round-robin then yields them in source order. Duplicate keys decoded by
    different DataLoader workers are caught by the consumer (``duplicate_reject``).
    """

    def __init__(
        self,
        src: str | os.PathLike,
        *,
        preprocess_kwargs: dict,
        skip_keys: set[str] | frozenset[str] = frozenset(),
        limit: int | None = None,
        given: dict[str, np.ndarray | str] | None = None,
        worker: WorkerSpec = WorkerSpec(),
    ) -> None:
        super().__init__()
        self.worker = worker
        self.src = src
        self.preprocess_kwargs = preprocess_kwargs
        self.skip_keys = frozenset(skip_keys)
        self.limit = limit
        self.given = given

    def __iter__(self) -> Iterator[Ready | Skipped | Rejected]:
        info = torch.utils.data.get_worker_info()
        loaders, loader_id = (info.num_workers, info.id) if info is not None else (1, 0)
        seen: set[str] = set()
        mine = 0
        for n, item in enumerate(iter_source(self.src)):
            if self.limit is not None and n >= self.limit:
                return
            if not self.worker.owns(item.key):
                continue
            mine += 1
            if (mine - 1) % loaders == loader_id:
                yield self._prepare(item, seen)

    def _prepare(self, item: SourceItem, seen: set[str]) -> Ready | Skipped | Rejected:
        key = item.key
        if item.error:
            return Rejected(key, "source", item.error)
        try:
            check_key(key)
        except SchemaError as exc:
            return Rejected(key, "source", str(exc))
        if key in seen:
            return duplicate_reject(key)
        seen.add(key)
        if key in self.skip_keys:
            return Skipped(key)
        boxes = None
        if self.given is not None:
            boxes = self.given.get(key, "no boxes for this key in the given-boxes file")
            if isinstance(boxes, str):
                return Rejected(key, "given_boxes", boxes)
        try:
            image = decode_image(item)
        except Exception as exc:  # noqa: BLE001  hostile input is a reject, never a crash
            return Rejected(key, "decode", f"{type(exc).__name__}: {exc}"[:500])
        try:
            prepared = preprocess(image, **self.preprocess_kwargs)
        except PreprocessError as exc:
            return Rejected(key, "preprocess", str(exc))
        if boxes is not None:
            boxes = clip_boxes(boxes, prepared.width, prepared.height)
        return Ready(key, prepared, boxes)


def duplicate_reject(key: str) -> Rejected:
    return Rejected(key, "source", "duplicate key: an earlier input has the same key")
