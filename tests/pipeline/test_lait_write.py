"""Outputs: the pairs table and contiguous, deterministic WebDataset image shards."""

from __future__ import annotations

import hashlib
import json

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from corpora.shards import ShardIndex, completed_shards
from corpora.shards import tar_bytes as shard_bytes
from pipeline.lait_write import PAIR_SCHEMA, WriteImageShards, WritePairs, to_row


def kept_pair(n: int) -> tuple[dict, tuple[str, dict]]:
    data = f"image-{n}".encode()
    image_id = hashlib.sha256(data).hexdigest()
    pair = {"image_id": image_id, "caption": f"caption {n}", "score": 0.5, "input_id": f"p{n} i",
            "dom": {"declared_w": 400, "in_figure": True}, "texts_failed": {"alt": "boilerplate"},
            "width": 400, "height": 320}  # fmt: skip
    return pair, (image_id, {"data": data, "ext": "png" if n % 2 else "jpg"})


def test_to_row_matches_schema():
    pair, _ = kept_pair(1)
    row = to_row(pair)
    assert list(row) == PAIR_SCHEMA.names
    assert (row["declared_w"], row["in_figure"], row["declared_h"]) == (400, True, None)
    assert json.loads(row["texts_failed"]) == {"alt": "boilerplate"}


def test_shard_bytes_are_deterministic():
    samples = [{"__key__": "k1", "jpg": b"x" * 10, "json": b"{}"}]
    assert shard_bytes(samples) == shard_bytes(samples)


def test_write_outputs(tmp_path):
    made = [kept_pair(n) for n in range(7)]
    extra_payload = (made[0][1][0], made[0][1][1])  # the same bytes seen at a second URL
    lost = ("f" * 64, {"data": b"rejected image", "ext": "jpg"})  # no kept pair: not written
    p = BeamTestPipeline(runner="FnApiRunner")
    pairs = p | "Pairs" >> beam.Create([m[0] for m in made])
    payloads = p | "Payloads" >> beam.Create([m[1] for m in made] + [extra_payload, lost])
    _ = pairs | WritePairs(str(tmp_path))
    _ = (pairs, payloads) | WriteImageShards(str(tmp_path), shard_size=3)
    p.run().wait_until_finish()

    rows = [r for f in tmp_path.glob("pairs-*.parquet") for r in pq.read_table(f).to_pylist()]
    assert sorted(r["caption"] for r in rows) == [f"caption {n}" for n in range(7)]
    shards = completed_shards(tmp_path, "images")
    assert [s.name for s in shards] == ["images-000000.tar", "images-000001.tar",
                                        "images-000002.tar"]  # fmt: skip
    counts = [json.loads(s.with_suffix(".json").read_text())["count"] for s in shards]
    assert counts == [3, 3, 1]
    keys = [k for s in shards for k in json.loads(s.with_suffix(".json").read_text())["keys"]]
    assert keys == sorted(m[0]["image_id"] for m in made)  # global order, contiguous shards
    index = ShardIndex(tmp_path, "images")
    for pair, (image_id, payload) in made:
        sample = index.get(image_id)
        assert sample[payload["ext"]] == payload["data"]
        assert json.loads(sample["json"])["caption"] == pair["caption"]
    assert not list(tmp_path.glob("*.tmp"))
