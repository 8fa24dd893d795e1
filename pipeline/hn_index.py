"""The hard-negatives job's index: which rows are kept, how ids rank, which are one picture.

Each segment of vectors is scanned once (:func:`scan_segment`: a digest and the float64 sum of
every row); :func:`build_index` then decides, from these small summaries alone:

* one row per image id: an id met more than once keeps its row with the smallest (digest, path,
  row), the others are rejected (``repeated``);
* ``sorted_ids``: the kept ids, sorted (an id's *rank* is its position; rank order is id order,
  which is how ties are broken);
* ``groups``: the same picture under several ids. Ids whose vectors are identical, or whose
  content hashes (``info["content_sha256"]`` of a feature sample) are equal, are one picture
  (transitively: a union-find); each maps to the smallest id of its picture. They are never each
  other's neighbours, and the output lists them as ``duplicates``;
* ``center``: the mean of all scanned vectors (Euclidean scores use centred vectors; any
  fixed vector would do, this one shrinks their norms);
* ``blocks``: the segments cut into blocks (:func:`pipeline.hn_store.pack_blocks`).

The index holds O(N) small things (ids, ranks) and no vectors. Exact all-pairs search costs
N^2 D operations, so N stays in the millions at most, where this is tens of megabytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pipeline.hn_store import BlockRef, Segment, iter_rows, pack_blocks, vector_digest


@dataclass(eq=False)
class SegmentSummary:
    """A segment with a 16-byte digest per row (``S16`` [rows]) and the float64 sum of its
    kept rows (``None`` when it has none)."""

    segment: Segment
    digests: np.ndarray
    total: np.ndarray | None
    count: int


@dataclass(eq=False)
class Index:
    """What :func:`build_index` decides; see the module docstring."""

    sorted_ids: np.ndarray
    groups: dict[str, str]
    repeated: list[str]
    center: np.ndarray | None
    blocks: list[BlockRef]


def scan_segment(seg: Segment) -> SegmentSummary:
    """Digest every row of a segment and sum its rows that have an id (float64).

    A row with a non-finite value raises ValueError: the front end rejects such samples, so one
    here is an error of the caller's input."""
    digests = np.zeros(len(seg), dtype="S16")
    total, count = None, 0
    for lo, rows in iter_rows(seg):
        local = [n for n in range(len(rows)) if seg.ids[lo - seg.start + n] is not None]
        if not local:
            continue
        bad = ~np.isfinite(rows[local]).all(axis=1)
        if bad.any():
            row = lo + local[int(np.argmax(bad))]
            raise ValueError(f"{seg.path}: row {row} has non-finite values")
        part = rows[local].astype(np.float64).sum(axis=0)
        total, count = (part if total is None else total + part), count + len(local)
        for n in local:
            digests[lo - seg.start + n] = vector_digest(rows[n])
    return SegmentSummary(seg, digests, total, count)


def _union_find(lists: Iterable[list[str]]) -> dict[str, str]:
    """Lists of ids of one picture -> id -> the smallest id of its connected group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ids in lists:
        roots = sorted({find(i) for i in ids})
        for root in roots[1:]:
            parent[root] = roots[0]
    return {i: find(i) for i in parent}


def _same_value(ids: np.ndarray, values: np.ndarray) -> list[list[str]]:
    """Groups of ids (two or more) sharing a value."""
    if not len(ids):
        return []
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse] > 1)
    order = shared[np.argsort(inverse[shared], kind="stable")]
    cuts = np.flatnonzero(np.diff(inverse[order])) + 1
    return [sorted(ids[part].tolist()) for part in np.split(order, cuts) if len(part)]


def build_index(summaries: Iterable[SegmentSummary], block_size: int) -> Index:
    """Decide rows, ranks, pictures, centre and blocks from all segment summaries."""
    summaries = sorted(summaries, key=lambda s: (s.segment.path, s.segment.start))
    ids, digests, hashes, seg_of, row_of = [], [], [], [], []
    for n, summary in enumerate(summaries):
        seg = summary.segment
        for local, image_id in enumerate(seg.ids):
            if image_id is None:
                continue
            ids.append(image_id)
            digests.append(summary.digests[local])
            hashes.append((seg.hashes[local] if seg.hashes else None) or "")
            seg_of.append(n)
            row_of.append(seg.start + local)
    id_arr = np.array(ids, dtype=str)
    dig_arr = np.array(digests, dtype="S16")
    seg_arr, row_arr = np.array(seg_of, np.int64), np.array(row_of, np.int64)
    order = np.lexsort((row_arr, seg_arr, dig_arr, id_arr))  # by id, then the winning row first
    first = np.ones(len(order), dtype=bool)
    first[1:] = id_arr[order[1:]] != id_arr[order[:-1]]
    kept, dropped = order[first], order[~first]
    skipped = {(summaries[seg_arr[i]].segment.path, int(row_arr[i])) for i in dropped}
    kept_ids = id_arr[kept]
    hash_arr = np.array(hashes, dtype=str)[kept]
    with_hash = hash_arr != ""
    pictures = _same_value(kept_ids, dig_arr[kept])
    pictures += _same_value(kept_ids[with_hash], hash_arr[with_hash])
    groups = _union_find(pictures)
    sums = [s for s in summaries if s.total is not None]
    center = sum(s.total for s in sums) / sum(s.count for s in sums) if sums else None
    segments = [s.segment for s in summaries]
    blocks = pack_blocks(segments, kept_ids, skipped, groups, block_size)
    return Index(kept_ids, groups, id_arr[dropped].tolist(), center, blocks)


def square_tasks(blocks: list[BlockRef], side: int):
    """Every pair of blocks i < j, in tasks of up to ``side`` x ``side`` pairs: a task reads
    its at most ``2 * side`` blocks once, so reads per pair fall to about ``2 / side``.

    Yields ``(row blocks, column blocks, pairs as (row position, column position))``.
    """
    blocks = sorted(blocks, key=lambda b: b.index)
    chunks = [blocks[lo : lo + side] for lo in range(0, len(blocks), side)]
    for p, rows in enumerate(chunks):
        for cols in chunks[p:]:
            if cols is rows:
                pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))]
            else:
                pairs = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
            if pairs:
                yield rows, (None if cols is rows else cols), pairs
