"""The hard-negatives job from feature shards: brute force, picture duplicates, rejects, vectors,
reading by key, and the same files from another runner."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from corpora.schema import FeatureSample, npy_bytes, npy_load
from corpora.shards import ShardWriter
from pipeline import hard_negatives
from pipeline.hn_write import read_neighbours

NEEDS_UNSHARE = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
RUN_JOB = "import sys; from pipeline.hard_negatives import run; sys.exit(run(sys.argv[1:]))"


def _sample(key: str, features: np.ndarray, **info) -> FeatureSample:
    n = features.shape[0]
    return FeatureSample(
        key=key,
        boxes=np.tile(np.array([0, 0, 8, 8], np.float32), (n, 1)),
        features=features.astype(np.float16),
        obj_ids=np.zeros(n, np.int32),
        obj_conf=np.ones(n, np.float32),
        attr_ids=np.zeros(n, np.int32),
        attr_conf=np.ones(n, np.float32),
        info={"image_w": 8, "image_h": 8, "box_mode": "adaptive", **info},
    )


def _write(folder: Path, samples: list, per_shard: int = 7, extra=None) -> dict[str, np.ndarray]:
    """Write shards; ``extra``: key -> additional members. Returns key -> mean RoI feature."""
    with ShardWriter(folder, "feats", maxcount=per_shard) as writer:
        for s in samples:
            writer.write({**s.to_wds(), **(extra or {}).get(s.key, {})})
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


def _files(out: Path) -> list[Path]:
    return sorted(out.glob("hard_negatives-*-of-*.parquet"))


def _run(features: Path, out: Path, *extra: str) -> dict[str, dict]:
    assert hard_negatives.run(["--features", str(features), "--out", str(out), *extra]) == 0
    return {r["image_id"]: r for f in _files(out) for r in pq.read_table(f).to_pylist()}


def _manifest(out: Path) -> tuple[int, int, int]:
    m = json.loads((out / "manifest.json").read_text())
    return m["inputs"], m["kept"], m["rejected"]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_job_equals_brute_force(tmp_path, metric):
    vectors = _write(tmp_path / "feats", _random_samples(23))
    rows = _run(tmp_path / "feats", tmp_path / "out", "--top-k", "5", "--metric", metric,
                "--block-size", "4", "--rows-per-file", "10")  # fmt: skip
    expected = _brute_force(vectors, metric, k=5)
    assert set(rows) == set(expected)
    for image_id, want in expected.items():
        assert rows[image_id]["neighbours"] == [n for _, n in want], image_id
        np.testing.assert_allclose(rows[image_id]["similarities"], [s for s, _ in want],
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    assert len(_files(tmp_path / "out")) == 3
    assert _manifest(tmp_path / "out") == (23, 23, 0)
    assert not (tmp_path / "out" / "_vectors").exists()  # the job's vectors are cleaned up


def test_block_sizes_give_the_same_files(tmp_path):
    _write(tmp_path / "feats", _random_samples(17, seed=3))
    args = ("--top-k", "4", "--metric", "euclidean")
    _run(tmp_path / "feats", tmp_path / "a", *args, "--block-size", "3")
    _run(tmp_path / "feats", tmp_path / "b", *args, "--block-size", "1000")
    data = {d: [f.read_bytes() for f in _files(tmp_path / d)] for d in "ab"}
    assert data["a"] and data["a"] == data["b"]  # (reruns of one config: test_hard_negatives_core)


def test_pictures_ties_fewer_than_k_and_rejects(tmp_path):
    e = np.eye(4)
    samples = [
        _sample("a", e[[0]]),
        _sample("b2", e[[1]]),
        _sample("b10", e[[2]]),  # a is equally far from b2 and b10: the id decides ("b10" < "b2")
        _sample("copy_of_a", e[[0, 0]]),  # same mean vector as a under another id
        _sample("empty", np.zeros((0, 4))),  # no RoIs
        _sample("zero", np.zeros((2, 4))),  # cosine undefined
        _sample("web1", e[[3]] * 2, content_sha256="f00d"),
        _sample("web2", e[[3]] * 3, content_sha256="f00d"),  # same picture, other features
        _sample("b2", e[[1, 2]]),  # the id b2 again, in another shard
    ]
    _write(tmp_path / "feats", samples, per_shard=2)
    rows = _run(tmp_path / "feats", tmp_path / "out", "--top-k", "10", "--block-size", "2")
    assert rows["a"]["neighbours"][:2] == ["b10", "b2"]  # ties broken by id
    assert rows["a"]["similarities"][:2] == [0.0, 0.0]
    assert rows["a"]["duplicates"] == ["copy_of_a"] and "copy_of_a" not in rows["a"]["neighbours"]
    assert rows["copy_of_a"]["neighbours"] == rows["a"]["neighbours"]
    assert rows["web1"]["duplicates"] == ["web2"] and "web2" not in rows["web1"]["neighbours"]
    assert len(rows["web1"]["neighbours"]) == 4  # fewer than k: a, b10, b2, copy_of_a
    assert rows["b10"]["duplicates"] == []
    rejects = [json.loads(x) for f in (tmp_path / "out").glob("rejects-*.jsonl")
               for x in f.read_text().splitlines()]  # fmt: skip
    assert sorted((r["input_id"], r["step"]) for r in rejects) == [
        ("b2", "vector"), ("empty", "vector"), ("zero", "vector")]  # fmt: skip
    assert _manifest(tmp_path / "out") == (9, 6, 3)


def test_single_image_has_no_neighbours(tmp_path):
    _write(tmp_path / "feats", [_sample("only", np.ones((3, 4)))])
    rows = _run(tmp_path / "feats", tmp_path / "out", "--top-k", "100")
    assert rows == {"only": {"image_id": "only", "neighbours": [], "similarities": [],
                             "duplicates": []}}  # fmt: skip


def test_named_vectors_and_reading_by_key(tmp_path):
    """``--vector NAME``: a ``NAME.npy`` member, else an info field; samples without it are
    rejected; files read back by key."""
    rng = np.random.default_rng(9)
    samples = [_sample(f"k{i}", rng.normal(size=(2, 4)), emb=rng.normal(size=3).tolist())
               for i in range(8)]  # fmt: skip
    samples.append(_sample("no_emb", rng.normal(size=(2, 4))))
    extra = {s.key: {"clip.npy": npy_bytes(rng.normal(size=5).astype(np.float32))}
             for s in samples[:8]}  # fmt: skip
    _write(tmp_path / "feats", samples, per_shard=4, extra=extra)
    by_member = _run(tmp_path / "feats", tmp_path / "clip", "--vector", "clip", "--top-k", "3")
    clips = {k: npy_load(v["clip.npy"]) for k, v in extra.items()}
    want = _brute_force(clips, "cosine", 3)
    assert {k: r["neighbours"] for k, r in by_member.items()} == {
        k: [n for _, n in w] for k, w in want.items()
    }
    assert _manifest(tmp_path / "clip") == (9, 8, 1)  # no_emb has no clip vector
    by_info = _run(tmp_path / "feats", tmp_path / "emb", "--vector", "emb", "--top-k", "3")
    embs = {s.key: np.array(s.info["emb"], np.float32) for s in samples[:8]}
    assert by_info["k0"]["neighbours"] == [n for _, n in _brute_force(embs, "cosine", 3)["k0"]]
    same = _run(tmp_path / "feats", tmp_path / "feat", "--vector", "features", "--top-k", "3")
    roi = _brute_force({s.key: s.mean_feature() for s in samples}, "cosine", 3)
    assert {k: r["neighbours"] for k, r in same.items()} == {
        k: [n for _, n in w] for k, w in roi.items()
    }  # "features" averages the RoI features: the default vector
    found = read_neighbours(tmp_path / "feat", ["k3", "no_emb", "missing"])
    assert sorted(found) == ["k3", "no_emb"] and found["k3"] == same["k3"]


@NEEDS_UNSHARE
def test_multi_processing_runner_writes_the_same_files(tmp_path):
    _write(tmp_path / "feats", _random_samples(40, seed=5), per_shard=9)
    args = ["--features", str(tmp_path / "feats"), "--top-k", "6", "--block-size", "8"]
    assert hard_negatives.run([*args, "--out", str(tmp_path / "local")]) == 0
    argv = [*args, "--out", str(tmp_path / "mp"), "--runner=FnApiRunner",
            "--direct_running_mode=multi_processing", "--direct_num_workers=2"]  # fmt: skip
    netns = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']
    done = subprocess.run([*netns, sys.executable, "-c", RUN_JOB, *argv], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    local, mp = _files(tmp_path / "local"), _files(tmp_path / "mp")
    assert [f.name for f in local] == [f.name for f in mp]
    assert [f.read_bytes() for f in local] == [f.read_bytes() for f in mp]
    assert _manifest(tmp_path / "mp") == _manifest(tmp_path / "local") == (40, 40, 0)
