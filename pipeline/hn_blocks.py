"""Exact top-k neighbours between two blocks of image vectors (numpy, float64).

A *block* holds image ids (sorted), their vectors (float32 [m, D], the mean RoI features) and a
64-bit content digest per vector. :func:`pair_top_k` scores two blocks with one matrix product
and returns, for every image of both blocks, its best ``k`` neighbours in the other block (or in
the same block, for a block paired with itself). Merging such partial lists over all block pairs
with :func:`merge_top_k` gives the exact global top-k.

Exactness and determinism:

* Scores: cosine similarity, or the negated Euclidean distance ("higher is more similar" for both
  metrics). The matrix product (BLAS) only *selects* candidates: everything within a tolerance
  of the k-th best score. The candidates' scores are then recomputed pair by pair in float64
  with numpy's own reductions, whose result for a pair does not depend on block sizes, BLAS
  threads or which block pair it came from; those scores decide the order.
* Ties are broken by image id (string order, ascending), so the order is total and the merged
  result does not depend on how images were cut into blocks.
* An image is never its own neighbour, nor is an image with an identical vector under another id
  (the same picture stored twice): pairs with equal digests are compared element-wise and
  excluded when equal.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

METRICS = ("cosine", "euclidean")
_TOL = 1e-9  # relative slack of the BLAS selection, far above its rounding error
_CHUNK = 8192  # candidate pairs recomputed at a time (memory: _CHUNK * D * 8 bytes, twice)

Neighbour = tuple[float, str]  # (score, image id)


def content_digest(vector: np.ndarray) -> int:
    """A signed 64-bit digest of a vector's float32 bytes (equal vectors, equal digests)."""
    data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def block_of(image_id: str, n_blocks: int) -> int:
    """The block an image id falls in: a stable hash, the same on every worker and run."""
    digest = hashlib.blake2b(image_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_blocks


@dataclass
class Block:
    """Images of one block: ``ids`` [m] (sorted), ``vectors`` float32 [m, D], ``digests`` [m]."""

    index: int
    ids: np.ndarray
    vectors: np.ndarray
    digests: np.ndarray

    @classmethod
    def build(cls, index: int, members: Iterable[tuple[str, np.ndarray]]) -> Block:
        members = sorted(members, key=lambda kv: kv[0])
        ids = np.array([k for k, _ in members], dtype=object)
        vectors = np.stack([np.asarray(v, np.float32) for _, v in members])
        digests = np.array([content_digest(v) for v in vectors], dtype=np.int64)
        return cls(index, ids, vectors, digests)


def exact_scores(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Scores of row pairs ``a[i]``, ``b[i]`` (float64 [p, D] each) -> float64 [p]."""
    if metric == "cosine":
        dots = np.multiply(a, b).sum(axis=1)
        return dots / (
            np.sqrt(np.multiply(a, a).sum(axis=1)) * np.sqrt(np.multiply(b, b).sum(axis=1))
        )
    diff = a - b
    return -np.sqrt(np.multiply(diff, diff).sum(axis=1))


def _selection_scores(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """BLAS scores [m, n] for candidate selection, monotone in the exact scores."""
    dots = a @ b.T
    if metric == "cosine":
        return dots / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    sa, sb = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    return 2.0 * dots - sa[:, None] - sb[None, :]  # -|a - b|^2


def _tolerance(rows: np.ndarray, others: np.ndarray, metric: str) -> np.ndarray:
    """Per-row slack [m] covering the rounding of :func:`_selection_scores`."""
    if metric == "cosine":
        return np.full(len(rows), _TOL)
    s_rows = np.einsum("ij,ij->i", rows, rows)
    s_max = np.einsum("ij,ij->i", others, others).max() if len(others) else 0.0
    return _TOL * (s_rows + s_max) + 1e-300


def _excluded(a: Block, b: Block) -> np.ndarray:
    """bool [m, n]: pairs of identical vectors (self included)."""
    same = a.digests[:, None] == b.digests[None, :]
    for r, c in zip(*np.nonzero(same), strict=True):
        if not np.array_equal(a.vectors[r], b.vectors[c]):  # a digest collision
            same[r, c] = False
    return same


def _rows_top_k(
    a: Block, b: Block, a64: np.ndarray, b64: np.ndarray, sel: np.ndarray, tol: np.ndarray,
    metric: str, k: int,
) -> Iterator[tuple[str, list[Neighbour]]]:  # fmt: skip
    n = sel.shape[1]
    if n > k:
        kth = np.partition(sel, n - k, axis=1)[:, n - k]
        mask = sel >= (kth - tol)[:, None]
    else:
        mask = np.ones_like(sel, dtype=bool)
    mask &= np.isfinite(sel)
    rows, cols = np.nonzero(mask)
    scores = np.empty(len(rows), np.float64)
    for start in range(0, len(rows), _CHUNK):
        r, c = rows[start : start + _CHUNK], cols[start : start + _CHUNK]
        scores[start : start + _CHUNK] = exact_scores(a64[r], b64[c], metric)
    # sort by row, then score descending, then neighbour id ascending
    order = np.lexsort((b.ids[cols].astype(str), -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    bounds = np.searchsorted(rows, np.arange(len(a.ids) + 1))
    for r, image_id in enumerate(a.ids):
        lo, hi = bounds[r], min(bounds[r + 1], bounds[r] + k)
        yield str(image_id), [(float(scores[i]), str(b.ids[cols[i]])) for i in range(lo, hi)]


def pair_top_k(a: Block, b: Block, metric: str, k: int) -> Iterator[tuple[str, list[Neighbour]]]:
    """Best ``k`` neighbours of every image of ``a`` among ``b``, and of ``b`` among ``a``.

    One matrix product serves both directions. With ``b is a`` each image gets one list. Every
    image gets a list, possibly empty.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    a64, b64 = a.vectors.astype(np.float64), b.vectors.astype(np.float64)
    sel = _selection_scores(a64, b64, metric)
    sel[_excluded(a, b)] = -np.inf
    yield from _rows_top_k(a, b, a64, b64, sel, _tolerance(a64, b64, metric), metric, k)
    if b is not a:
        yield from _rows_top_k(b, a, b64, a64, sel.T, _tolerance(b64, a64, metric), metric, k)


def merge_top_k(lists: Iterable[list[Neighbour]], k: int) -> list[Neighbour]:
    """Merge partial neighbour lists: best ``k`` by score descending, then id ascending."""
    return heapq.nsmallest(k, itertools.chain.from_iterable(lists), key=lambda t: (-t[0], t[1]))
