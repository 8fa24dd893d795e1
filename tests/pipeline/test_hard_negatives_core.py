"""The hard-negatives Beam core from an ``.npy`` of vectors against float64 brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.hn_core import run_npy

NEAR_TIE = 1e-6  # float32 may swap neighbours whose true distances differ by less (relative)


def _rows(files: list[str]) -> dict[str, dict]:
    return {r["image_id"]: r for f in files for r in pq.read_table(f).to_pylist()}


def _true_distances(x: np.ndarray, metric: str) -> np.ndarray:
    """float64 [n, n] distances: Euclidean, or 1 - cosine similarity."""
    v = x.astype(np.float64)
    if metric == "cosine":
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return 1.0 - v @ v.T
    return np.sqrt(((v[:, None, :] - v[None, :, :]) ** 2).sum(axis=2))


def _check_against_truth(rows: dict, ids: list[str], x: np.ndarray, metric: str, k: int) -> int:
    """Assert every list is the exact top-k up to near-ties; return how many are identical."""
    dist = _true_distances(x, metric)
    pos = {i: n for n, i in enumerate(ids)}
    identical = 0
    for r, image_id in enumerate(ids):
        d = dist[r].copy()
        d[r] = np.inf
        want = np.lexsort((np.array(ids), d))[: min(k, len(ids) - 1)]  # distance, then id
        got = [pos[n] for n in rows[image_id]["neighbours"]]
        assert len(got) == len(want) and len(set(got)) == len(got) and r not in got, image_id
        scale = np.maximum(d[want], 1e-12)
        assert (np.abs(d[got] - d[want]) <= NEAR_TIE * scale).all(), image_id
        sims = np.array(rows[image_id]["similarities"], np.float64)
        truth = -d[got] if metric == "euclidean" else 1.0 - d[got]
        np.testing.assert_allclose(sims, truth, rtol=1e-5, atol=1e-5)
        identical += got == want.tolist()
    return identical


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_blocks_and_bounds_give_the_exact_top_k(tmp_path, metric):
    rng = np.random.default_rng(11)
    x = np.maximum(rng.normal(size=(300, 32)), 0).astype(np.float32)  # like averaged ReLU
    np.save(tmp_path / "v.npy", x)
    ids = [f"img{i:04d}" for i in rng.permutation(300)]  # row order is not id order
    files = run_npy(str(tmp_path / "v.npy"), ids, str(tmp_path / "out"), metric=metric, k=10,
                    block_size=64, rows_per_file=128)  # fmt: skip
    assert len(files) == 3  # 300 images by ranges of 128 ids
    rows = _rows(files)
    assert len(rows) == 300
    identical = _check_against_truth(rows, ids, x, metric, 10)
    assert identical >= 295  # near-ties are rare: nearly every list is the float64 list


def test_reruns_give_the_same_bytes_and_blocking_the_same_lists(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.random((130, 8), dtype=np.float32)
    np.save(tmp_path / "v.npy", x)
    ids = [f"i{i:03d}" for i in range(130)]
    runs = {
        name: run_npy(str(tmp_path / "v.npy"), ids, str(tmp_path / name), k=7, block_size=size)
        for name, size in (("a", 32), ("b", 32), ("c", 1000))
    }
    assert [Path(f).read_bytes() for f in runs["a"]] == [Path(f).read_bytes() for f in runs["b"]]
    small, whole = _rows(runs["a"]), _rows(runs["c"])
    assert {i: r["neighbours"] for i, r in small.items()} == {
        i: r["neighbours"] for i, r in whole.items()
    }


def test_identical_vectors_and_hashes_are_one_picture(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.random((6, 4), dtype=np.float32)
    x[3] = x[0]  # "d" is "a" stored twice
    np.save(tmp_path / "v.npy", x)
    ids = ["a", "b", "c", "d", "e", "f"]
    hashes = [None, "h", None, None, "h", "h"]  # b, e and f: one picture by content hash
    files = run_npy(str(tmp_path / "v.npy"), ids, str(tmp_path / "out"), k=10, block_size=2,
                    hashes=hashes)  # fmt: skip
    rows = _rows(files)
    assert rows["a"]["duplicates"] == ["d"] and rows["d"]["duplicates"] == ["a"]
    assert rows["e"]["duplicates"] == ["b", "f"]
    assert sorted(rows["a"]["neighbours"]) == ["b", "c", "e", "f"]
    assert sorted(rows["b"]["neighbours"]) == ["a", "c", "d"]
    assert rows["c"]["duplicates"] == [] and len(rows["c"]["neighbours"]) == 5


@pytest.mark.parametrize("n", [1, 2, 5])
def test_fewer_images_than_k(tmp_path, n):
    x = np.random.default_rng(n).random((n, 3), dtype=np.float32)
    np.save(tmp_path / "v.npy", x)
    ids = [f"x{i}" for i in range(n)]
    rows = _rows(run_npy(str(tmp_path / "v.npy"), ids, str(tmp_path / "out"), k=100))
    assert sorted(rows) == ids
    for r in rows.values():
        assert len(r["neighbours"]) == n - 1 == len(r["similarities"])
    _check_against_truth(rows, ids, x, "euclidean", 100)
