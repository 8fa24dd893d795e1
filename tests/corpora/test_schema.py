"""Feature-shard schema: round trip through real webdataset shards, random access by key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from corpora.schema import FeatureSample, SchemaError, check_key
from corpora.shards import ShardIndex, ShardWriter, completed_keys, iter_raw, shard_urls


def make_sample(key: str, n: int, seed: int) -> FeatureSample:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, size=(n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 100, size=(n, 2))], axis=1)
    return FeatureSample(
        key=key,
        boxes=boxes,
        features=rng.standard_normal((n, 2048)),
        obj_ids=rng.integers(0, 1600, n),
        obj_conf=rng.uniform(0, 1, n),
        attr_ids=rng.integers(0, 400, n),
        attr_conf=rng.uniform(0, 1, n),
        info={"image_w": 320, "image_h": 240, "box_mode": "adaptive", "random_init": True},
    )


def test_round_trip_stream_and_key(tmp_path):
    samples = [make_sample(f"img{i:03d}", n=10 + i, seed=i) for i in range(7)]
    with ShardWriter(tmp_path, "features", maxcount=3) as writer:
        for s in samples:
            writer.write(s.to_wds())
    urls = shard_urls(tmp_path, "features")
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"features-00000{i}.tar" for i in range(3)]

    streamed = [FeatureSample.from_wds(raw) for raw in iter_raw(urls)]
    assert [s.key for s in streamed] == [s.key for s in samples]
    for got, want in zip(streamed, samples, strict=True):
        assert got.features.dtype == np.float16 and got.boxes.dtype == np.float32
        np.testing.assert_array_equal(got.features, want.features)
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_array_equal(got.obj_ids, want.obj_ids)
        assert got.info == want.info

    index = ShardIndex(tmp_path, "features")
    assert len(index) == 7 and "img005" in index
    one = FeatureSample.from_wds(index.get("img005"))
    np.testing.assert_array_equal(one.features, samples[5].features)
    assert one.num_boxes == 15
    with pytest.raises(KeyError, match="img999"):
        index.get("img999")


def test_resume_skips_complete_shards_and_drops_partial(tmp_path):
    samples = [make_sample(f"k{i}", n=3, seed=i) for i in range(5)]
    with ShardWriter(tmp_path, "features", maxcount=2) as writer:
        for s in samples[:3]:
            writer.write(s.to_wds())
    assert completed_keys(tmp_path, "features") == {"k0", "k1", "k2"}
    # a crash mid-shard leaves no partial tar behind
    with pytest.raises(RuntimeError), ShardWriter(tmp_path, "features", maxcount=2) as writer:
        writer.write(samples[3].to_wds())
        raise RuntimeError("killed")
    assert not list(tmp_path.glob("*.tmp"))
    with ShardWriter(tmp_path, "features", maxcount=2) as writer:
        todo = [s for s in samples if s.key not in writer.skip_keys]
        for s in todo:
            writer.write(s.to_wds())
    keys = [raw["__key__"] for raw in iter_raw(shard_urls(tmp_path, "features"))]
    assert sorted(keys) == [f"k{i}" for i in range(5)] and len(keys) == len(set(keys))


def test_schema_errors_name_the_problem():
    s = make_sample("bad", n=4, seed=0)
    s.obj_ids = s.obj_ids[:3]
    with pytest.raises(SchemaError, match=r"sample 'bad': obj_ids must be \[4\]"):
        s.to_wds()
    raw = make_sample("ok", n=2, seed=1).to_wds()
    del raw["features.npy"]
    with pytest.raises(SchemaError, match="missing member 'features.npy'"):
        FeatureSample.from_wds(raw)
    raw = make_sample("ok", n=2, seed=1).to_wds()
    raw["info.json"] = json.dumps({"image_w": 1, "image_h": 1, "num_boxes": 2, "box_mode": "x"})
    with pytest.raises(SchemaError, match="box_mode"):
        FeatureSample.from_wds(raw)
    with pytest.raises(SchemaError, match="invalid sample key"):
        check_key("a.b")


def test_members_are_never_pickles(tmp_path):
    raw = make_sample("p", n=2, seed=3).to_wds()
    obj = np.array([{"x": 1}], dtype=object)
    import io

    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    raw["boxes.npy"] = buf.getvalue()
    with pytest.raises(SchemaError, match="unreadable member"):
        FeatureSample.from_wds(raw)
