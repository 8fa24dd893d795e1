"""Stage-T text: object names from VG objects.json or from detector labels in feature shards."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from corpora.schema import FeatureSample
from corpora.shards import ShardWriter
from corpora.wordpiece_labels import LabelTokens, stage_t
from pipeline import token_labels


def _obj(oid, names, **extra):
    return {"object_id": oid, "x": 1, "y": 2, "w": 3, "h": 4, "names": names, "synsets": [],
            **extra}  # fmt: skip


def _objects_file(root: Path) -> Path:
    data = [
        {
            "image_id": 1,
            "objects": [
                _obj(11, ["Man"]),
                _obj(12, ["shirt"]),
                _obj(13, ["man"]),
                _obj(14, ["TV"]),
                _obj(15, ["gizmo"]),
                _obj(16, []),
                _obj(17, ["tennis  racquet"]),
            ],
        },  # fmt: skip
        {"image_id": 2, "objects": []},
        {"image_id": None, "objects": [_obj(31, ["dog"])]},
        {"image_id": 3, "objects": [_obj(41, ["gizmo"])]},
    ]
    path = root / "objects.json"
    path.write_text(json.dumps(data))
    return path


def _read(out: Path) -> tuple[dict[str, dict], dict[str, str], dict]:
    rows = [r for f in out.glob("token_labels-*.parquet") for r in pq.read_table(f).to_pylist()]
    rejects = [
        json.loads(x) for f in out.glob("rejects-*.jsonl") for x in f.read_text().split("\n") if x
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    return {r["image_id"]: r for r in rows}, {r["input_id"]: r["step"] for r in rejects}, manifest


def test_objects_without_and_with_vocab(tmp_path, vg_labels_dir):
    objects = _objects_file(tmp_path)
    plain, mapped = tmp_path / "plain", tmp_path / "mapped"
    assert token_labels.run(["--objects", str(objects), "--out", str(plain)]) == 0
    rows, rejects, manifest = _read(plain)
    assert rows["1"]["text"] == "man, shirt, tv, gizmo, tennis racquet"
    assert rows["1"]["num_boxes"] == 6 and rows["1"]["source"] == "vg_objects"
    assert rows["3"]["text"] == "gizmo"
    assert set(rows) == {"1", "3"}
    assert rejects == {"1/5": "read", "2": "read", "objects.json:element2": "read"}
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (10, 7, 3)

    vocab = str(vg_labels_dir / "objects_vocab.txt")
    argv = ["--objects", str(objects), "--objects-vocab", vocab, "--out", str(mapped)]
    assert token_labels.run(argv) == 0
    rows, rejects, manifest = _read(mapped)
    # synonyms map to the line's first name; names outside the 1600 classes are rejected
    assert rows["1"]["text"] == "man, shirt, television, tennis racket"
    assert rows["1"]["labels"] == ["man", "shirt", "television", "tennis racket"]
    assert "3" not in rows
    assert rejects["1/15"] == rejects["3/41"] == "vocab"
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (10, 5, 5)


def _sample(key: str, obj_ids: list[int], info: dict | None = None) -> FeatureSample:
    n = len(obj_ids)
    return FeatureSample(
        key=key,
        boxes=np.tile(np.array([0, 0, 10, 10], np.float32), (n, 1)),
        features=np.ones((n, 4), np.float16),
        obj_ids=np.array(obj_ids, np.int32),
        obj_conf=np.full(n, 0.9, np.float32),
        attr_ids=np.zeros(n, np.int32),
        attr_conf=np.zeros(n, np.float32),
        info={"image_w": 10, "image_h": 10, "box_mode": "adaptive", **(info or {})},
    )


def _broken_shard(folder: Path) -> None:
    """A complete shard (sidecar present) whose one sample lacks members."""
    tar_path = folder / "feats-000001.tar"
    with tarfile.open(tar_path, "w") as tar:
        data = b'{"image_w": 1}'
        info = tarfile.TarInfo("bad7.info.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tar_path.with_suffix(".json").write_text(json.dumps({"keys": ["bad7"], "members": {}}))


def test_detector_labels_from_shards(tmp_path, vg_labels_dir):
    shards = tmp_path / "feats"
    with ShardWriter(shards, "feats", maxcount=10) as writer:
        writer.write(_sample("img1", [50, 51, 50, 52]).to_wds())  # man, shirt, man, car
        writer.write(_sample("img2", [43], {"random_init": True}).to_wds())  # television
        writer.write(_sample("img3", []).to_wds())  # no boxes
        writer.write(_sample("img4", [50, 1600]).to_wds())  # 1600 is past the last class
    _broken_shard(shards)
    out = tmp_path / "out"
    vocab = str(vg_labels_dir / "objects_vocab.txt")
    assert (
        token_labels.run(["--features", str(shards), "--objects-vocab", vocab, "--out", str(out)])
        == 0
    )
    rows, rejects, manifest = _read(out)
    assert {k: r["text"] for k, r in rows.items()} == {
        "img1": "man, shirt, car",
        "img2": "television",
    }
    assert rows["img1"]["num_boxes"] == 4 and rows["img1"]["source"] == "detector"
    # the trainer's stage-T builder names the same labels the same way
    labels = LabelTokens.from_files(vocab, None, num_objects=None)
    assert stage_t(labels, [50, 51, 50, 52], dedupe=True).text == rows["img1"]["text"]
    assert rejects == {"img3": "labels", "img4": "labels", "bad7": "read"}
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (5, 2, 3)
    assert any("randomly initialised" in w for w in manifest["warnings"])

    placeholder = tmp_path / "placeholder"
    assert (
        token_labels.run(
            ["--features", str(shards), "--prefix", "feats", "--out", str(placeholder)]
        )
        == 0
    )
    rows, _, manifest = _read(placeholder)
    assert rows["img1"]["text"] == "object_50, object_51, object_52"
    assert rows["img4"]["text"] == "object_50, object_1600"  # no vocab: no range to check
    assert any("placeholders" in w for w in manifest["warnings"])
