"""LXMERT TSV export and import, and random access by key into feature shards."""

from __future__ import annotations

import base64
import csv
import json
import sys

import numpy as np
import pytest

from extract.export import FIELDNAMES, main, tsv_to_shards, write_lxmert_tsv
from extract.run import extract
from extract.store import FeatureStore


def load_obj_tsv(fname: str) -> list[dict]:
    """LXMERT's reader (airsplay/lxmert ``src/utils.py``), as released."""
    data = []
    csv.field_size_limit(sys.maxsize)
    with open(fname) as f:
        reader = csv.DictReader(f, FIELDNAMES, delimiter="\t")
        for item in reader:
            for key in ["img_h", "img_w", "num_boxes"]:
                item[key] = int(item[key])
            boxes = item["num_boxes"]
            decode_config = [
                ("objects_id", (boxes,), np.int64),
                ("objects_conf", (boxes,), np.float32),
                ("attrs_id", (boxes,), np.int64),
                ("attrs_conf", (boxes,), np.float32),
                ("boxes", (boxes, 4), np.float32),
                ("features", (boxes, -1), np.float32),
            ]
            for key, shape, dtype in decode_config:
                item[key] = np.frombuffer(base64.b64decode(item[key]), dtype=dtype)
                item[key] = item[key].reshape(shape)
                item[key].setflags(write=False)
            data.append(item)
    return data


@pytest.fixture(scope="module")
def shards(tmp_path_factory, test_detector):
    """Real feature shards of three photos (36 boxes), two shards."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("export")
    images = folder / "images"
    images.mkdir()
    for name, photo in (("a1", data.astronaut()), ("b2", data.chelsea()), ("c3", data.coffee())):
        Image.fromarray(photo).resize((64, 48)).save(images / f"{name}.png")
    extract(
        images,
        folder / "features",
        preset=test_detector.preset,
        detector=test_detector,
        maxcount=2,
        progress=False,
    )
    return folder / "features"


def test_feature_store_random_access(shards):
    store = FeatureStore(shards)
    assert len(store) == 3 and sorted(store.keys()) == ["a1", "b2", "c3"]
    streamed = {s.key: s for s in store.samples()}
    for key in ("c3", "a1"):  # out of order: each lookup seeks in its own shard
        sample = store[key]
        np.testing.assert_array_equal(sample.features, streamed[key].features)
        assert sample.num_boxes == 36 and sample.info["image_w"] == 64
    assert "zz" not in store and store.get("zz") is None
    with pytest.raises(KeyError, match="zz"):
        store["zz"]


def test_lxmert_reader_reads_our_tsv(shards, tmp_path):
    tsv = tmp_path / "features.tsv"
    assert write_lxmert_tsv(shards, tsv) == 3
    rows = {row["img_id"]: row for row in load_obj_tsv(str(tsv))}
    store = FeatureStore(shards)
    assert sorted(rows) == ["a1", "b2", "c3"]
    for key, row in rows.items():
        sample = store[key]
        assert (row["img_h"], row["img_w"], row["num_boxes"]) == (48, 64, 36)
        assert row["features"].shape == (36, 2048) and row["features"].dtype == np.float32
        np.testing.assert_array_equal(row["features"], sample.features.astype(np.float32))
        np.testing.assert_array_equal(row["boxes"], sample.boxes)
        np.testing.assert_array_equal(row["objects_id"], sample.obj_ids)
        np.testing.assert_array_equal(row["attrs_conf"], sample.attr_conf)
    assert tsv.read_text().count("\n") == 3  # no header, one line per image
    subset = tmp_path / "subset.tsv"
    assert write_lxmert_tsv(shards, subset, keys=["c3"]) == 1


def test_tsv_round_trip_to_shards(shards, tmp_path):
    tsv = tmp_path / "features.tsv"
    write_lxmert_tsv(shards, tsv)
    out = tmp_path / "back"
    manifest = tsv_to_shards(tsv, out, maxcount=2)
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (3, 3, 0)
    original, back = FeatureStore(shards), FeatureStore(out)
    for key in original:
        a, b = original[key], back[key]
        for name in ("boxes", "features", "obj_ids", "obj_conf", "attr_ids", "attr_conf"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert b.info["box_mode"] == "fixed36" and b.info["source"] == "features.tsv"
    again = tsv_to_shards(tsv, out, maxcount=2)  # resumable: nothing written twice
    assert again["steps"]["write"]["written"] == 0 and len(FeatureStore(out)) == 3


def test_bad_rows_are_rejects_with_the_line(shards, tmp_path):
    tsv = tmp_path / "features.tsv"
    write_lxmert_tsv(shards, tsv)
    good = tsv.read_text().splitlines()
    fields = good[0].split("\t")
    bad_b64 = "\t".join(["x9", *fields[1:9], "not*base64"])
    bad_key = "\t".join(["a/b", *fields[1:]])
    short = "\t".join(fields[:5])
    huge = dict(zip(FIELDNAMES, fields, strict=True))
    huge["img_id"] = "big"
    huge["features"] = base64.b64encode(np.full((36, 2048), 1e6, np.float32).tobytes()).decode()
    lines = [*good, bad_b64, bad_key, short, good[1], "\t".join(huge[f] for f in FIELDNAMES)]
    tsv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "back"
    manifest = tsv_to_shards(tsv, out)
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (8, 3, 5)
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["input_id"]: r["reason"] for r in rejects}
    assert reasons["x9"].startswith("line 4: field features")
    assert "invalid sample key" in reasons["a/b"]
    assert "tab-separated fields" in reasons[fields[0]] or "duplicate" in reasons[fields[0]]
    assert "overflow float16" in reasons["big"]


def test_cli(shards, tmp_path):
    tsv = tmp_path / "out.tsv"
    assert main(["lxmert-tsv", "--features", str(shards), "--out", str(tsv)]) == 0
    assert main(["lxmert-tsv-to-shards", "--tsv", str(tsv), "--out", str(tmp_path / "s")]) == 0
    assert len(FeatureStore(tmp_path / "s")) == 3
    missing = [
        "lxmert-tsv-to-shards",
        "--tsv",
        str(tmp_path / "none.tsv"),
        "--out",
        str(tmp_path / "x"),
    ]
    assert main(missing) == 2
