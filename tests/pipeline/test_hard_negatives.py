"""Hard negatives: the blocked Beam job against float64 brute force, ties, duplicates, edge sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from corpora.schema import FeatureSample
from corpora.shards import ShardWriter
from pipeline import hard_negatives
from pipeline.hn_blocks import Block, merge_top_k, pair_top_k


def _sample(key: str, features: np.ndarray) -> FeatureSample:
    n = features.shape[0]
    return FeatureSample(
        key=key,
        boxes=np.tile(np.array([0, 0, 8, 8], np.float32), (n, 1)),
        features=features.astype(np.float16),
        obj_ids=np.zeros(n, np.int32),
        obj_conf=np.ones(n, np.float32),
        attr_ids=np.zeros(n, np.int32),
        attr_conf=np.ones(n, np.float32),
        info={"image_w": 8, "image_h": 8, "box_mode": "adaptive"},
    )


def _write(folder: Path, samples: list[FeatureSample], per_shard: int = 7) -> dict[str, np.ndarray]:
    with ShardWriter(folder, "feats", maxcount=per_shard) as writer:
        for s in samples:
            writer.write(s.to_wds())
    return {s.key: s.mean_feature() for s in samples if s.num_boxes}


def _random_samples(n: int, dim: int = 6, seed: int = 0) -> list[FeatureSample]:
    rng = np.random.default_rng(seed)
    return [
        _sample(f"im{i:03d}", rng.normal(size=(int(rng.integers(1, 5)), dim))) for i in range(n)
    ]


def _brute_force(vectors: dict[str, np.ndarray], metric: str, k: int) -> dict[str, list]:
    ids = sorted(vectors)
    v = np.stack([vectors[i] for i in ids]).astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(v, axis=1)
        scores = (v @ v.T) / np.outer(norms, norms)
    else:
        scores = -np.linalg.norm(v[:, None, :] - v[None, :, :], axis=2)
    out = {}
    for r, image_id in enumerate(ids):
        cands = [(scores[r, c], ids[c]) for c in range(len(ids))
                 if not np.array_equal(v[r], v[c])]  # fmt: skip
        out[image_id] = sorted(cands, key=lambda t: (-t[0], t[1]))[:k]
    return out


def _run(features: Path, out: Path, *extra: str) -> dict[str, dict]:
    assert hard_negatives.run(["--features", str(features), "--out", str(out), *extra]) == 0
    files = sorted(out.glob("hard_negatives-*-of-*.parquet"))
    return {r["image_id"]: r for f in files for r in pq.read_table(f).to_pylist()}


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_blocked_job_equals_brute_force(tmp_path, metric):
    vectors = _write(tmp_path / "feats", _random_samples(23))
    rows = _run(tmp_path / "feats", tmp_path / "out", "--top-k", "5", "--metric", metric,
                "--block-size", "4")  # fmt: skip
    expected = _brute_force(vectors, metric, k=5)
    assert set(rows) == set(expected)
    for image_id, want in expected.items():
        assert rows[image_id]["neighbours"] == [n for _, n in want], image_id
        np.testing.assert_allclose(rows[image_id]["similarities"], [s for s, _ in want], rtol=1e-6)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (23, 23, 0)


def test_blocking_and_reruns_do_not_change_the_result(tmp_path):
    _write(tmp_path / "feats", _random_samples(17, seed=3))
    args = ("--top-k", "4", "--metric", "euclidean")
    small = _run(tmp_path / "feats", tmp_path / "a", *args, "--block-size", "3")
    again = _run(tmp_path / "feats", tmp_path / "b", *args, "--block-size", "3")
    single = _run(tmp_path / "feats", tmp_path / "c", *args, "--block-size", "1000")
    assert small == again == single  # bit-identical similarities, same order


def test_duplicates_fewer_than_k_ties_and_rejects(tmp_path):
    e = np.eye(4)
    samples = [
        _sample("a", e[[0]]),
        _sample("b2", e[[1]]),
        _sample("b10", e[[2]]),  # a is equally far from b2 and b10: the id decides ("b10" < "b2")
        _sample("copy_of_a", e[[0, 0]]),  # same mean vector as a under another id
        _sample("empty", np.zeros((0, 4))),  # no RoIs
        _sample("zero", np.zeros((2, 4))),  # cosine undefined
    ]
    _write(tmp_path / "feats", samples, per_shard=2)
    rows = _run(tmp_path / "feats", tmp_path / "out", "--top-k", "10", "--block-size", "2")
    assert rows["a"]["neighbours"] == ["b10", "b2"]  # fewer than k; the copy is excluded
    assert rows["a"]["similarities"] == [0.0, 0.0]
    assert rows["a"]["duplicates"] == ["copy_of_a"]
    assert rows["copy_of_a"]["neighbours"] == ["b10", "b2"]
    assert rows["b2"]["neighbours"] == ["a", "b10", "copy_of_a"]
    assert rows["b2"]["duplicates"] == []
    rejects = [json.loads(x) for f in (tmp_path / "out").glob("rejects-*.jsonl")
               for x in f.read_text().splitlines()]  # fmt: skip
    assert {r["input_id"]: r["step"] for r in rejects} == {"empty": "vector", "zero": "vector"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (6, 4, 2)


def test_single_image_has_no_neighbours(tmp_path):
    _write(tmp_path / "feats", [_sample("only", np.ones((3, 4)))])
    rows = _run(tmp_path / "feats", tmp_path / "out", "--top-k", "100")
    assert rows == {"only": {"image_id": "only", "neighbours": [], "similarities": [],
                             "duplicates": []}}  # fmt: skip


def test_pair_top_k_merges_to_the_global_answer():
    rng = np.random.default_rng(7)
    members = [(f"x{i}", rng.normal(size=5).astype(np.float32)) for i in range(9)]
    a, b = Block.build(0, members[:4]), Block.build(1, members[4:])
    partial: dict[str, list] = {}
    for left, right in ((a, a), (b, b), (a, b)):
        for image_id, lst in pair_top_k(left, right, "cosine", 3):
            partial.setdefault(image_id, []).append(lst)
    merged = {k: merge_top_k(v, 3) for k, v in partial.items()}
    whole = Block.build(0, members)
    direct = dict(pair_top_k(whole, whole, "cosine", 3))
    assert merged == direct
