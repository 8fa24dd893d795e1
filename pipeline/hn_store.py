"""Where the hard-negatives job keeps its vectors: row ranges of ``.npy`` files, cut into blocks.

The job never holds all vectors, nor moves them through a shuffle: they stay in float32 ``.npy``
files (the feature-shard front end writes one per shard; a caller with vectors already in one file
passes that file) and every step reads the rows it needs with plain file reads (no memory map, so
a worker's memory holds only what it reads).

* :class:`Segment`: rows ``[start, stop)`` of one file and the image id of each row (``None`` for
  a row to skip), with an optional content hash per row.
* :class:`BlockRef`: a block of at most ``block_size`` rows taken from one or more segments, with
  each row's rank (its id's position among all sorted ids; -1: skip the row) and group (the rank
  of the first id of the same picture; -1 for a picture with one id). :func:`pack_blocks` cuts segments into blocks;
  :func:`load_block` reads one and prepares it for scoring.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.hn_blocks import Block, prepare

DIGEST_BYTES = 16  # blake2b digest of a vector's float32 bytes (identical vectors, equal digests)
_READ_ROWS = 2048  # rows read at a time when scanning a segment


@dataclass(eq=False)
class Segment:
    """Rows ``[start, stop)`` of the float32/float16/float64 ``.npy`` at ``path``."""

    path: str
    start: int
    stop: int
    ids: list[str | None]
    hashes: list[str | None] | None = None

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(eq=False)
class BlockRef:
    """A block: ``parts`` (path, start, stop) read in order; ``ranks``/``groups`` int64 [rows]."""

    index: int
    parts: tuple[tuple[str, int, int], ...]
    ranks: np.ndarray
    groups: np.ndarray

    @property
    def size(self) -> int:
        return int((self.ranks >= 0).sum())


def _npy_layout(path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, byte offset of the data) of a C-order ``.npy`` file."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"{path}: .npy format version {version} is not supported")
        if fortran:
            raise ValueError(f"{path}: Fortran-order arrays are not supported")
        return shape, dtype, fh.tell()


def npy_shape(path: str) -> tuple[int, ...]:
    """The shape of the array in a ``.npy`` file, without reading it."""
    return _npy_layout(path)[0]


def read_rows(path: str, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of a 2-d ``.npy`` file as float32 [stop - start, D] (file reads)."""
    shape, dtype, offset = _npy_layout(path)
    if len(shape) != 2:
        raise ValueError(f"{path}: expected a 2-d array of vectors, got shape {shape}")
    if not (0 <= start <= stop <= shape[0]):
        raise ValueError(f"{path}: rows [{start}, {stop}) outside [0, {shape[0]})")
    dim = shape[1]
    rows = np.fromfile(
        path, dtype=dtype, count=(stop - start) * dim, offset=offset + start * dim * dtype.itemsize
    )
    return rows.reshape(stop - start, dim).astype(np.float32, copy=False)


def iter_rows(segment: Segment) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, float32 chunk)`` over a segment, a bounded number of rows at a time."""
    for lo in range(segment.start, segment.stop, _READ_ROWS):
        hi = min(lo + _READ_ROWS, segment.stop)
        yield lo, read_rows(segment.path, lo, hi)


def vector_digest(vector: np.ndarray) -> bytes:
    """A 16-byte digest of a vector's float32 bytes: equal vectors, equal digests."""
    data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as ``path`` atomically (a unique temporary name, then a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)


def npy_segments(path: str, ids: Sequence[str], rows_per_segment: int = 65536) -> list[Segment]:
    """Segments covering a 2-d ``.npy`` of vectors whose row ``i`` is image ``ids[i]``."""
    shape = npy_shape(path)
    if len(shape) != 2 or shape[0] != len(ids):
        raise ValueError(f"{path}: shape {shape} does not match {len(ids)} ids")
    return [
        Segment(
            path, lo, min(lo + rows_per_segment, shape[0]), list(ids[lo : lo + rows_per_segment])
        )
        for lo in range(0, shape[0], rows_per_segment)
    ]


def pack_blocks(
    segments: Iterable[Segment],
    sorted_ids: np.ndarray,
    skipped: set[tuple[str, int]],
    groups: dict[str, str],
    block_size: int,
) -> list[BlockRef]:
    """Cut segments (in path, start order) into blocks of at most ``block_size`` rows.

    ``sorted_ids``: every kept id, sorted (a row's rank is its id's position); ``skipped``: the
    (path, row) of rows to leave out; ``groups``: id -> the first id of the same picture, for ids
    that have duplicates.
    """
    blocks: list[BlockRef] = []
    parts: list[tuple[str, int, int]] = []
    ranks: list[np.ndarray] = []
    groups_of: list[np.ndarray] = []
    filled = 0

    def flush() -> None:
        nonlocal parts, ranks, groups_of, filled
        if filled and any((r >= 0).any() for r in ranks):
            blocks.append(
                BlockRef(
                    len(blocks), tuple(parts), np.concatenate(ranks), np.concatenate(groups_of)
                )
            )
        parts, ranks, groups_of, filled = [], [], [], 0

    for seg in sorted(segments, key=lambda s: (s.path, s.start)):
        lo = seg.start
        while lo < seg.stop:
            hi = min(seg.stop, lo + block_size - filled)
            seg_ids = seg.ids[lo - seg.start : hi - seg.start]
            keep = np.array(
                [
                    i is not None and (seg.path, lo + n) not in skipped
                    for n, i in enumerate(seg_ids)
                ],
                dtype=bool,
            )
            names = np.array(
                [i if k else "" for i, k in zip(seg_ids, keep, strict=True)], dtype=str
            )
            rank = np.where(keep, np.searchsorted(sorted_ids, names), -1).astype(np.int64)
            shared = np.array([k and i in groups for i, k in zip(seg_ids, keep, strict=True)], bool)
            first = np.array([groups[i] if s else "" for i, s in zip(seg_ids, shared, strict=True)],
                             dtype=str)  # fmt: skip
            group = np.where(shared, np.searchsorted(sorted_ids, first), -1).astype(np.int64)
            parts.append((seg.path, lo, hi))
            ranks.append(rank)
            groups_of.append(group)
            filled += hi - lo
            lo = hi
            if filled >= block_size:
                flush()
    flush()
    return blocks


def load_block(ref: BlockRef, metric: str, center: np.ndarray | None = None) -> Block:
    """Read a block's rows, drop skipped ones, order by rank, prepare for ``metric``."""
    parts = [read_rows(path, lo, hi) for path, lo, hi in ref.parts]
    raw = parts[0] if len(parts) == 1 else np.concatenate(parts)
    keep = ref.ranks >= 0
    ranks, groups = ref.ranks[keep], ref.groups[keep]
    if not keep.all():
        raw = raw[keep]
    if len(ranks) > 1 and not (np.diff(ranks) > 0).all():
        order = np.argsort(ranks, kind="stable")
        raw, ranks, groups = raw[order], ranks[order], groups[order]
    # raw is an array of its own (read, concatenated or indexed here): prepare it in place
    return Block(ref.index, ranks, groups, prepare(raw, metric, center, copy=False))
