"""Exact top-k neighbours between two blocks of image vectors: one matrix product, faiss heaps.

A :class:`Block` holds the images of one block in rank order: ``ranks`` int64 [m] (the position
of each image id in the sorted list of all ids, so rank order is id order), ``groups`` int64 [m]
(the rank of the first image of the same picture; -1 for an image without duplicates) and
``vectors`` float32 [m, D], already prepared for the metric by :func:`prepare`.

:func:`pair_top_k` scores two blocks with one matrix product (float32 BLAS, through faiss) and
keeps, for every image of both blocks, its best ``k`` neighbours in the other block (or in the
same block, for a block paired with itself): the product serves both directions, so the whole job
computes each pair of images once, half of what a query-by-query search computes. The selection
must not cost more than a fraction of the product. A block with itself goes through faiss's C++
heaps (``float_maxheap_array_t.addn``). Every other pair gets, per image, an upper bound on its
global k-th best value (its k-th best within its own block): one vectorised comparison finds the
few values under the bounds (about k per row) and short rows of their keys are sorted; where a
bound lets too many through, the heaps take over.

Scores are "smaller is better" values: the squared Euclidean distance of the centred vectors, or
minus the cosine similarity of the unit vectors. A neighbour is packed into one ``uint64`` *key*,
the order-preserving bits of its float32 value above its rank, so sorting keys sorts by (value,
rank): ties are broken by image id, and :func:`merge_keys` merges partial lists from any number of
block pairs, in any order, into exactly the global top-k. Heaps agree with that order because
columns are fed in ascending rank and faiss admits a value only when it is strictly better than the
worst kept one (its heap orders equal values by id).

An image is never its own neighbour, nor is an image of the same group (the same picture under
another id): those pairs are scored +inf before the selection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import faiss
import numpy as np

METRICS = ("cosine", "euclidean")
NO_KEY = np.uint64(np.iinfo(np.uint64).max)  # an empty slot: fewer than k neighbours
_STRIPE = 512  # columns fed at a time to the column-direction heaps
_TILE = 128  # rows of a stripe transposed at a time
_PASS_FACTOR = 8  # bounded selection while at most this many times k values pass per row
_BAND = 128  # rows of the score matrix compared at a time (cache sized)
_LOW = np.uint64(0xFFFFFFFF)
_SIGN = np.uint32(0x80000000)


@dataclass(eq=False)
class Block:
    """Images of one block in rank order; shapes and meaning in the module docstring."""

    index: int
    ranks: np.ndarray
    groups: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ranks)


@dataclass
class Workspace:
    """Scratch buffers kept between block pairs: fresh 64 MB buffers per pair would cost a page
    fault per 4 KiB page, a sizeable share of the product on a virtual machine."""

    buffers: dict[str, np.ndarray] = field(default_factory=dict)

    def clear(self) -> None:
        """Give the buffers back (between bundles: the next stage may need the memory)."""
        self.buffers.clear()

    def get(self, name: str, shape: tuple[int, int], dtype: type = np.float32) -> np.ndarray:
        size = shape[0] * shape[1]
        buf = self.buffers.get(name)
        if buf is None or buf.size < size:
            buf = self.buffers[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


_LOCAL = threading.local()


def thread_workspace() -> Workspace:
    """This thread's :class:`Workspace` (one per thread: runners may run bundles in threads)."""
    if not hasattr(_LOCAL, "work"):
        _LOCAL.work = Workspace()
    return _LOCAL.work


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run faiss's heaps on one OpenMP thread: they take a few milliseconds per call, less than
    waking a second thread costs on a busy machine (the product keeps all threads)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def prepare(
    vectors: np.ndarray, metric: str, center: np.ndarray | None = None, copy: bool = True
) -> np.ndarray:
    """Raw vectors float [m, D] -> float32 [m, D] ready for :func:`pair_top_k` (``copy=False``:
    in place when ``vectors`` already is a C-ordered float32 array).

    Cosine: unit rows. Euclidean: rows minus ``center`` (any fixed vector leaves distances
    unchanged; the mean of all vectors shrinks the norms, and with them the float32 rounding of
    ``|a|^2 + |b|^2 - 2 a.b``, several times over for non-negative features).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    x = np.array(vectors, dtype=np.float32, order="C", copy=True if copy else None)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if not norms.all():
            raise ValueError("a zero vector has no cosine similarity")
        x /= norms
    elif center is not None:
        x -= np.asarray(center, dtype=np.float32)[None, :]
    return x


def encode_keys(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """float32 values and int64 ranks (-1: empty) [m, k] -> uint64 keys sorting as (value, rank)."""
    bits = (np.asarray(values, np.float32) + np.float32(0.0)).view(np.int32)  # -0.0 -> +0.0
    flip = (bits >> 31).view(np.uint32) | _SIGN  # negatives: all bits; positives: the sign bit
    ordered = (bits.view(np.uint32) ^ flip).astype(np.uint64)
    keys = (ordered << np.uint64(32)) | (ranks.astype(np.uint64) & _LOW)
    empty = ranks < 0
    if empty.any():
        keys[empty] = NO_KEY
    return keys


def decode_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint64 keys -> (float32 values, int64 ranks); empty slots give (nan, -1)."""
    high = (keys >> np.uint64(32)).astype(np.uint32)
    values = np.where(high & _SIGN, high & ~_SIGN, ~high).view(np.float32)
    ranks = (keys & _LOW).astype(np.int64)
    empty = keys == NO_KEY
    ranks[empty] = -1
    values = np.where(empty, np.float32(np.nan), values)
    return values, ranks


def merge_keys(parts: Sequence[np.ndarray], k: int, pad: bool = True) -> np.ndarray:
    """Partial key lists [m, k_i] of the same m images -> their best ``k`` [m, k], sorted
    (``pad=False``: [m, min(k, sum k_i)])."""
    keys = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    keys = np.sort(keys, axis=1)[:, :k]
    if pad and keys.shape[1] < k:
        empty = np.full((keys.shape[0], k - keys.shape[1]), NO_KEY, dtype=np.uint64)
        keys = np.concatenate([keys, empty], axis=1)
    return keys


def _scores(a: Block, b: Block, metric: str, work: Workspace) -> np.ndarray:
    """float32 [ma, mb]: squared distances, or minus the inner products."""
    ma, mb = len(a), len(b)
    out = work.get("scores", (ma, mb))
    if metric == "euclidean":
        d = a.vectors.shape[1]
        faiss.pairwise_L2sqr(
            d, ma, faiss.swig_ptr(a.vectors), mb, faiss.swig_ptr(b.vectors), faiss.swig_ptr(out)
        )
    else:
        np.matmul(a.vectors, b.vectors.T, out=out)
        np.negative(out, out=out)
    return out


def _exclude(scores: np.ndarray, a: Block, b: Block) -> None:
    """Score +inf every pair of the same picture (self included, for a block with itself)."""
    if a is b:
        np.fill_diagonal(scores, np.inf)
    rows = np.flatnonzero(a.groups >= 0)
    cols = np.flatnonzero(b.groups >= 0)
    if len(rows) and len(cols):
        same = a.groups[rows][:, None] == b.groups[cols][None, :]
        r, c = np.nonzero(same)
        scores[rows[r], cols[c]] = np.inf


def kth_values(keys: np.ndarray, k: int) -> np.ndarray:
    """float32 [m]: the k-th best value of each row of sorted keys (+inf when fewer than k)."""
    if keys.shape[1] < k:
        return np.full(keys.shape[0], np.inf, dtype=np.float32)
    values, ranks = decode_keys(keys[:, k - 1])
    return np.where(ranks < 0, np.float32(np.inf), values).astype(np.float32)


def _heaps(
    rows: int, k: int, bound: np.ndarray | None
) -> tuple[faiss.float_maxheap_array_t, np.ndarray, np.ndarray]:
    """Max-heaps of the k best values per row; with ``bound``, only values <= bound enter."""
    values = np.empty((rows, k), dtype=np.float32)
    ids = np.full((rows, k), -1, dtype=np.int64)
    heap = faiss.float_maxheap_array_t()
    heap.nh, heap.k = rows, k
    heap.val, heap.ids = faiss.swig_ptr(values), faiss.swig_ptr(ids)
    if bound is None:
        heap.heapify()
    else:  # equal values form a valid heap; faiss admits v when top > v, so v <= bound enters
        values[:] = np.nextafter(bound.astype(np.float32), np.float32(np.inf))[:, None]
    return heap, values, ids


def _keys(values: np.ndarray, ids: np.ndarray, other_ranks: np.ndarray) -> np.ndarray:
    """Heap output (local column ids, -1 empty) -> sorted keys with the other block's ranks,
    trimmed to the widest row's number of neighbours."""
    ranks = np.where(ids >= 0, other_ranks[np.maximum(ids, 0)], -1)
    keys = np.sort(encode_keys(values, ranks), axis=1)
    width = int((ids >= 0).sum(axis=1).max(initial=0))
    return keys[:, :width]


def _column_heaps(scores: np.ndarray, heap: faiss.float_maxheap_array_t, work: Workspace) -> None:
    """Feed the columns of ``scores`` [ma, mb] to the heaps of its mb columns: stripes of the
    matrix are transposed tile by tile (a cache-sized tile is several times faster to
    transpose than a whole row of the matrix)."""
    ma, mb = scores.shape
    for c in range(0, mb, _STRIPE):
        width = min(_STRIPE, mb - c)
        stripe = work.get("stripe", (width, ma))
        for r in range(0, ma, _TILE):
            stripe[:, r : r + _TILE] = scores[r : r + _TILE, c : c + width].T
        heap.addn(ma, faiss.swig_ptr(stripe), 0, c, width)


def _heap_select(
    scores: np.ndarray, k: int, other_ranks: np.ndarray, by_rows: bool, bound, work: Workspace
) -> np.ndarray:
    """Top-k keys of every row (``by_rows``) or column of ``scores`` with faiss's heaps."""
    ma, mb = scores.shape
    with _one_thread():
        heap, values, ids = _heaps(ma if by_rows else mb, k, bound)
        if by_rows:  # columns in rank order: ties by id
            heap.addn(mb, faiss.swig_ptr(scores), 0, 0, ma)
        else:
            _column_heaps(scores, heap, work)
    return _keys(values, ids, other_ranks)


def _under_bounds(
    scores: np.ndarray, bound_rows: np.ndarray, bound_cols: np.ndarray, work: Workspace
) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the values <= their row's bound, and of those <= their column's bound.

    Both comparisons run on one cache-sized band of rows at a time: the matrix is read from
    memory once."""
    ma, mb = scores.shape
    inf = np.float32(np.inf)
    lim_rows = np.nextafter(bound_rows.astype(np.float32), inf)[:, None]
    lim_cols = np.nextafter(bound_cols.astype(np.float32), inf)[None, :]
    below_rows = work.get("below_rows", (ma, mb), bool)
    below_cols = work.get("below_cols", (ma, mb), bool)
    for lo in range(0, ma, _BAND):
        band = scores[lo : lo + _BAND]
        np.less(band, lim_rows[lo : lo + _BAND], out=below_rows[lo : lo + _BAND])
        np.less(band, lim_cols, out=below_cols[lo : lo + _BAND])
    return np.flatnonzero(below_rows), np.flatnonzero(below_cols)


def _grid_select(
    scores: np.ndarray, passed: np.ndarray, k: int, other_ranks: np.ndarray, by_rows: bool
) -> np.ndarray | None:
    """Top-k keys of every row (``by_rows``) or column of ``scores`` among the ``passed``
    values (flat indices), or None when too many passed for this to pay.

    With a good bound about k values of a row pass; sorting short rows of their keys is far
    cheaper than feeding the whole (for columns: transposed) matrix to heaps.
    """
    ma, mb = scores.shape
    groups = ma if by_rows else mb
    if len(passed) > _PASS_FACTOR * k * groups:
        return None
    row, col = np.divmod(passed, mb)
    group, other = (row, col) if by_rows else (col, row)
    keys = encode_keys(scores.ravel()[passed], other_ranks[other])
    if not by_rows:  # flatnonzero is row-major: order by column, stably (radix sort: 16 bits)
        order = np.argsort(group.astype(np.uint16 if mb <= 1 << 16 else np.int64), kind="stable")
        group, keys = group[order], keys[order]
    counts = np.bincount(group, minlength=groups)
    width = int(counts.max(initial=0))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    grid = np.full((groups, width), NO_KEY, dtype=np.uint64)
    grid[group, np.arange(len(group)) - starts[group]] = keys
    grid.sort(axis=1)
    return grid[:, :k]


def pair_top_k(
    a: Block,
    b: Block,
    metric: str,
    k: int,
    bound_a: np.ndarray | None = None,
    bound_b: np.ndarray | None = None,
    work: Workspace | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(block index, keys uint64 [m, <= k])``: best ``k`` of every image of ``a`` among ``b``,
    then of ``b`` among ``a`` (once when ``b is a``); each row sorted, empty slots :data:`NO_KEY`.

    ``bound_a`` / ``bound_b`` (float32 [m], optional): an upper bound on the k-th best value of
    each image over all blocks, e.g. its k-th best within its own block (:func:`kth_values` of the
    block paired with itself). A value above it cannot be in the global top k, so only the few
    values under it are selected from. ``work``: buffers reused from one call to the next.
    """
    if a.vectors.shape[1:] != b.vectors.shape[1:]:
        raise ValueError(
            f"blocks {a.index} and {b.index} hold vectors of different lengths: "
            f"{a.vectors.shape[1:]} vs {b.vectors.shape[1:]}"
        )
    work = work if work is not None else Workspace()
    scores = _scores(a, b, metric, work)
    _exclude(scores, a, b)
    first = second = None
    if bound_a is not None and bound_b is not None and b is not a:
        passed_rows, passed_cols = _under_bounds(scores, bound_a, bound_b, work)
        first = _grid_select(scores, passed_rows, k, b.ranks, True)
        second = _grid_select(scores, passed_cols, k, a.ranks, False)
    if first is None:
        first = _heap_select(scores, k, b.ranks, True, bound_a, work)
    if second is None and b is not a:
        second = _heap_select(scores, k, a.ranks, False, bound_b, work)
    yield a.index, first
    if second is not None:
        yield b.index, second
