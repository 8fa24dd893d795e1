"""Hard negatives without Beam: keys, the block-pair kernel, the vector store and the index."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import hn_blocks
from pipeline.hn_blocks import (
    NO_KEY,
    Block,
    decode_keys,
    encode_keys,
    kth_values,
    merge_keys,
    pair_top_k,
    prepare,
)
from pipeline.hn_index import build_index, scan_segment, square_tasks
from pipeline.hn_store import Segment, load_block, pack_blocks, read_rows, write_npy


def _block(index: int, vectors: np.ndarray, first_rank: int, metric: str, groups=None) -> Block:
    n = len(vectors)
    ranks = np.arange(first_rank, first_rank + n, dtype=np.int64)
    groups = np.full(n, -1, np.int64) if groups is None else np.asarray(groups, np.int64)
    return Block(index, ranks, groups, prepare(vectors, metric))


def _brute_keys(vectors: np.ndarray, metric: str, k: int) -> list[list[tuple[float, int]]]:
    """float64 (value, rank) lists, self excluded, sorted by value then rank."""
    v = vectors.astype(np.float64)
    if metric == "cosine":
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        values = -(v @ v.T)
    else:
        values = ((v[:, None, :] - v[None, :, :]) ** 2).sum(axis=2)
    out = []
    for r in range(len(v)):
        cands = sorted((values[r, c], c) for c in range(len(v)) if c != r)
        out.append(cands[:k])
    return out


def test_keys_sort_as_value_then_rank_and_round_trip():
    values = np.array([[3.5, -0.0, 0.0, -2.0, 1e-30, -1e30, 7.0]], np.float32)
    ranks = np.array([[4, 9, 2, 5, 1, 0, -1]])
    keys = encode_keys(values, ranks)
    assert keys[0, -1] == NO_KEY
    order = np.argsort(keys[0], kind="stable")
    # -0.0 and 0.0 are one value: the rank decides between them
    assert order.tolist() == [5, 3, 2, 1, 4, 0, 6]
    back, back_ranks = decode_keys(keys)
    np.testing.assert_array_equal(back_ranks, [[4, 9, 2, 5, 1, 0, -1]])
    np.testing.assert_array_equal(back[0, :-1], np.abs(values[0, :-1]) * np.sign(values[0, :-1]))
    assert np.isnan(back[0, -1])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_blocked_pairs_with_bounds_merge_to_the_float64_answer(metric):
    rng = np.random.default_rng(3)
    x = np.maximum(rng.normal(size=(70, 12)), 0).astype(np.float32) + 0.01
    k = 6
    sizes = [25, 25, 20]
    starts = np.cumsum([0, *sizes[:-1]])
    blocks = [
        _block(i, x[s : s + n], s, metric)
        for i, (s, n) in enumerate(zip(starts, sizes, strict=True))
    ]
    parts: dict[int, list[np.ndarray]] = {}
    bounds = {}
    for b in blocks:
        (_, keys), = pair_top_k(b, b, metric, k)  # fmt: skip
        parts.setdefault(b.index, []).append(keys)
        bounds[b.index] = kth_values(keys, k)
    for i, a in enumerate(blocks):
        for b in blocks[i + 1 :]:
            for index, keys in pair_top_k(a, b, metric, k, bounds[a.index], bounds[b.index]):
                assert keys.shape[1] <= k
                parts[index].append(keys)
    merged = np.concatenate([merge_keys(parts[b.index], k) for b in blocks])
    values, ranks = decode_keys(merged)
    want = _brute_keys(x, metric, k)
    for r in range(len(x)):
        got = list(zip(values[r].tolist(), ranks[r].tolist(), strict=True))
        assert [c for _, c in got] == [c for _, c in want[r]], r
        np.testing.assert_allclose([v for v, _ in got], [v for v, _ in want[r]], rtol=1e-5,
                                   atol=1e-6)  # fmt: skip


def test_bounded_and_heap_selection_agree_and_loose_bounds_fall_back():
    rng = np.random.default_rng(5)
    a = _block(0, rng.random((300, 16), dtype=np.float32), 0, "euclidean")
    b = _block(1, rng.random((260, 16), dtype=np.float32), 300, "euclidean")
    k = 9
    bound_a = kth_values(next(pair_top_k(a, a, "euclidean", k))[1], k)
    bound_b = kth_values(next(pair_top_k(b, b, "euclidean", k))[1], k)
    plain = dict(pair_top_k(a, b, "euclidean", k))
    bounded = dict(pair_top_k(a, b, "euclidean", k, bound_a, bound_b))
    loose = dict(pair_top_k(a, b, "euclidean", k, np.full(300, np.inf), np.full(260, np.inf)))
    for index in (0, 1):
        full = plain[index]
        cut = bounded[index]
        # the bounded lists are the plain lists cut at the bound (empty slots at the end)
        keep = decode_keys(full)[0] <= (bound_a if index == 0 else bound_b)[:, None]
        want = np.where(keep, full, NO_KEY)
        np.testing.assert_array_equal(merge_keys([cut], k), merge_keys([want], k))
        np.testing.assert_array_equal(loose[index], full)


def test_ties_are_broken_by_rank_and_the_same_picture_is_excluded():
    # eight equidistant unit vectors: every score ties, so ranks alone decide
    x = np.eye(8, dtype=np.float32)
    groups = [-1, -1, -1, 3, -1, -1, 3, -1]  # ranks 3 and 6 are one picture
    whole = _block(0, x, 0, "euclidean", groups)
    (_, keys), = pair_top_k(whole, whole, "euclidean", 3)  # fmt: skip
    _, ranks = decode_keys(keys)
    assert ranks[0].tolist() == [1, 2, 3]
    assert ranks[3].tolist() == [0, 1, 2]
    assert 6 not in ranks[3] and 3 not in ranks[6]
    assert ranks[6].tolist() == [0, 1, 2]
    # the same across blocks, in both directions
    left = _block(0, x[:4], 0, "euclidean", groups[:4])
    right = _block(1, x[4:], 4, "euclidean", groups[4:])
    out = dict(pair_top_k(left, right, "euclidean", 2))
    assert decode_keys(out[0])[1][3].tolist() == [4, 5]  # 6 is rank 3's own picture
    assert decode_keys(out[1])[1][2].tolist() == [0, 1]  # rank 6 sees 0 and 1; 3 excluded


def test_fewer_images_than_k_leave_empty_slots():
    x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    block = _block(0, x, 0, "cosine")
    (_, keys), = pair_top_k(block, block, "cosine", 5)  # fmt: skip
    assert ((keys != NO_KEY).sum(axis=1) == 2).all()
    assert np.isinf(kth_values(keys, 5)).all()


def test_workspace_reuse_gives_identical_results():
    rng = np.random.default_rng(1)
    a = _block(0, rng.random((50, 8), dtype=np.float32), 0, "euclidean")
    b = _block(1, rng.random((40, 8), dtype=np.float32), 50, "euclidean")
    work = hn_blocks.Workspace()
    first = dict(pair_top_k(a, b, "euclidean", 4, work=work))
    _ = dict(pair_top_k(b, b, "euclidean", 4, work=work))
    again = dict(pair_top_k(a, b, "euclidean", 4, work=work))
    for index in first:
        np.testing.assert_array_equal(first[index], again[index])


def test_store_reads_row_ranges_and_packs_blocks(tmp_path):
    x = np.arange(40, dtype=np.float16).reshape(10, 4)
    write_npy(tmp_path / "v.npy", x)
    rows = read_rows(str(tmp_path / "v.npy"), 3, 7)
    assert rows.dtype == np.float32 and rows.tolist() == x[3:7].astype(np.float32).tolist()
    ids = [f"id{9 - i}" for i in range(10)]  # rows in reverse id order
    seg = Segment(str(tmp_path / "v.npy"), 0, 10, ids)
    sorted_ids = np.array(sorted(ids), dtype=str)
    blocks = pack_blocks([seg], sorted_ids, {(seg.path, 4)}, {"id0": "id0", "id2": "id0"}, 4)
    assert [b.parts for b in blocks] == [((seg.path, 0, 4),), ((seg.path, 4, 8),),
                                         ((seg.path, 8, 10),)]  # fmt: skip
    assert blocks[1].ranks.tolist() == [-1, 4, 3, 2]  # row 4 skipped
    assert blocks[2].groups.tolist() == [-1, 0] and blocks[1].groups.tolist()[3] == 0
    loaded = load_block(blocks[1], "euclidean")
    assert loaded.ranks.tolist() == [2, 3, 4]  # rank order
    assert loaded.vectors.tolist() == x[[7, 6, 5]].astype(np.float32).tolist()


def test_index_keeps_one_row_per_id_and_joins_pictures(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.random((6, 5), dtype=np.float32)
    x[4] = x[1]  # "e" is "b" under another id
    write_npy(tmp_path / "a.npy", x[:3])
    write_npy(tmp_path / "b.npy", x[3:])
    segs = [
        Segment(str(tmp_path / "a.npy"), 0, 3, ["a", "b", "c"], [None, None, "h1"]),
        Segment(str(tmp_path / "b.npy"), 0, 3, ["a", "e", "f"], [None, None, "h1"]),
    ]
    index = build_index([scan_segment(s) for s in segs], block_size=4)
    assert index.sorted_ids.tolist() == ["a", "b", "c", "e", "f"]
    assert index.repeated == ["a"]  # one of the two rows of "a" is rejected
    assert index.groups == {"b": "b", "e": "b", "c": "c", "f": "c"}
    np.testing.assert_allclose(index.center, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    kept = sorted(r for b in index.blocks for r in b.ranks.tolist() if r >= 0)
    assert kept == [0, 1, 2, 3, 4]
    assert sum(len(p) for _, _, p in square_tasks(index.blocks, 1)) == 1  # two blocks, one pair


def test_vectors_that_cannot_be_scored_are_refused(tmp_path):
    with pytest.raises(ValueError, match="zero vector"):
        prepare(np.array([[1.0, 0.0], [0.0, 0.0]]), "cosine")
    x = np.ones((3, 2), np.float32)
    x[2, 1] = np.nan
    write_npy(tmp_path / "v.npy", x)
    with pytest.raises(ValueError, match="row 2 has non-finite"):
        scan_segment(Segment(str(tmp_path / "v.npy"), 0, 3, ["a", "b", "c"]))
