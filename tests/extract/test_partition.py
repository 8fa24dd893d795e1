"""Several workers sharing one job: a deterministic split, no colliding shards, merged records."""

from __future__ import annotations

import json

import pytest

from corpora.shards import completed_keys
from extract.cli import main
from extract.partition import WorkerShardWriter, WorkerSpec, merge_manifests, worker_of
from extract.run import extract


def _run(images, out, detector, **kwargs):
    return extract(images, out, preset=detector.preset, detector=detector, progress=False, **kwargs)


def test_split_is_deterministic_disjoint_and_covers_every_key():
    keys = [f"img{i}" for i in range(200)]
    owners = [worker_of(k, 3) for k in keys]
    assert owners == [worker_of(k, 3) for k in keys]  # stable across calls (no salted hash)
    shares = [[k for k in keys if WorkerSpec(3, i).owns(k)] for i in range(3)]
    assert sorted(sum(shares, [])) == sorted(keys)
    assert all(40 < len(s) < 90 for s in shares)  # roughly even
    assert worker_of("img0", 1) == 0 and WorkerSpec().owns("anything")
    with pytest.raises(ValueError, match="worker-index"):
        WorkerSpec(2, 2)


def test_worker_shard_indices_interleave_above_existing_shards(tmp_path):
    def sample(key):
        return {"__key__": key, "txt": key.encode()}

    with WorkerShardWriter(tmp_path, "features", maxcount=1) as single:
        single.write(sample("a"))  # shard 0
    (tmp_path / "features-000003.tar.tmp").write_bytes(b"killed worker 1 of 2")
    (tmp_path / "features-000004.tar.tmp").write_bytes(b"someone else's")
    w1 = WorkerShardWriter(tmp_path, "features", maxcount=1, worker=WorkerSpec(2, 1))
    assert not (tmp_path / "features-000003.tar.tmp").exists()  # its own leftover
    assert (tmp_path / "features-000004.tar.tmp").exists()  # not its residue: untouched
    w0 = WorkerShardWriter(tmp_path, "features", maxcount=1, worker=WorkerSpec(2, 0))
    assert (w0.next_index, w1.next_index) == (2, 1)
    with w0, w1:
        for key in ("b", "c"):
            w0.write(sample(f"{key}0"))
            w1.write(sample(f"{key}1"))
    names = sorted(p.name for p in tmp_path.glob("features-*.tar"))
    assert names == [f"features-{i:06d}.tar" for i in (0, 1, 2, 3, 4)]
    assert completed_keys(tmp_path, "features") == {"a", "b0", "b1", "c0", "c1"}


def test_two_workers_equal_one_run_and_merge(image_dir, tmp_path, test_detector):
    for i in range(4, 9):
        (image_dir / f"img{i}.png").write_bytes((image_dir / "img2.png").read_bytes())
    (image_dir / "bad.jpg").write_bytes(b"not an image")
    single = _run(image_dir, tmp_path / "single", test_detector, maxcount=2)
    out = tmp_path / "split"
    first = _run(image_dir, out, test_detector, maxcount=2, num_workers=2, worker_index=0)
    assert not (out / "manifest.json").exists()  # worker 1 has not finished
    assert main(["merge-manifests", str(out)]) == 1
    second = _run(image_dir, out, test_detector, maxcount=2, num_workers=2, worker_index=1)
    assert first["inputs"] + second["inputs"] == single["inputs"] == 9
    keys = [completed_keys(out, "features"), completed_keys(tmp_path / "single", "features")]
    assert keys[0] == keys[1] and len(keys[0]) == 8

    merged = json.loads((out / "manifest.json").read_text())  # written by the last worker
    assert (merged["inputs"], merged["kept"], merged["rejected"]) == (9, 8, 1)
    assert merged["keys_in_shards"] == 8 and len(merged["workers"]) == 2
    assert merged["steps"]["extract"]["written"] == 8
    assert sum(merged["object_counts"].values()) == 8 * 36
    assert [
        json.loads(x)["input_id"] for x in (out / "rejects.jsonl").read_text().splitlines()
    ] == ["bad"]
    config = json.loads((out / "config.json").read_text())
    assert config["num_workers"] == 2 and len(config["merged_from"]) == 2
    for worker in ("0000-of-0002", "0001-of-0002"):
        assert (out / "workers" / worker / "manifest.json").exists()
    (out / "manifest.json").unlink()
    assert main(["merge-manifests", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["kept"] == 8

    rerun = _run(image_dir, out, test_detector, maxcount=2, num_workers=2, worker_index=1)
    assert rerun["steps"]["extract"]["written"] == 0  # resumes: all its keys are done
    with pytest.raises(ValueError, match="other settings"):
        _run(image_dir, out, test_detector, num_workers=2, worker_index=0, boxes="10-100")


def test_merge_refuses_workers_with_different_settings(tmp_path):
    for index, boxes in ((0, "caffe:36"), (1, "caffe:10-100")):
        folder = tmp_path / "workers" / f"{index:04d}-of-0002"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"fingerprint": {"boxes": boxes}}))
        (folder / "manifest.json").write_text(json.dumps({"job": "extract", "inputs": 0}))
        (folder / "rejects.jsonl").write_text("")
    with pytest.raises(ValueError, match="different settings"):
        merge_manifests(tmp_path)
