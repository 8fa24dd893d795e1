"""End to end: images -> real feature shards, given boxes, resume, rejects, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from corpora.schema import FeatureSample
from corpora.shards import ShardIndex, iter_raw, shard_urls
from extract.boxes import BoxSpec, select
from extract.cli import main
from extract.run import extract
from extract.sources import PreparedStream, Ready


def _read(out) -> dict[str, FeatureSample]:
    index = ShardIndex(out, "features")
    keys = index.keys()  # ShardIndex is not iterable
    return {key: FeatureSample.from_wds(index.get(key)) for key in keys}


def _run(images, out, detector, **kwargs):
    kwargs.setdefault("batch_size", 2)
    return extract(images, out, preset=detector.preset, detector=detector, progress=False, **kwargs)


def test_extract_36_boxes_writes_real_shards(image_dir, tmp_path, test_detector):
    (image_dir / "img4.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    manifest = _run(image_dir, out, test_detector)
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (4, 3, 1)
    assert manifest["random_init"] is True and manifest["warnings"]
    assert manifest["preset"]["name"] == "test" and manifest["box_mode"] == "fixed36"
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [(r["input_id"], r["step"]) for r in rejects] == [("img4", "decode")]
    assert json.loads((out / "config.json").read_text())["selection"] == "caffe"

    samples = _read(out)
    assert sorted(samples) == ["img1", "img2", "img3"]
    sizes = {"img1": (64, 48), "img2": (60, 40), "img3": (40, 56)}
    for key, sample in samples.items():
        info = sample.info
        assert sample.num_boxes == 36 and sample.features.dtype == np.float16
        assert (info["image_w"], info["image_h"]) == sizes[key]
        assert info["random_init"] is True and info["checkpoint_sha256"] is None
        assert info["detector_config_hash"] == test_detector.config_hash
        assert (info["box_mode"], info["selection"], info["resize_mode"]) == (
            "fixed36",
            "caffe",
            "caffe",
        )
        assert sample.boxes.min() >= 0 and sample.boxes[:, 2].max() <= sizes[key][0] + 1e-3
        assert sample.obj_ids.max() < 1600 and sample.attr_ids.max() < 400
        assert ((sample.obj_conf > 0) & (sample.obj_conf <= 1)).all()

    # the shard holds exactly the selected raw proposals and their pooled features
    ready = next(
        i
        for i in PreparedStream(image_dir, preprocess_kwargs=test_detector.preprocess_kwargs())
        if isinstance(i, Ready)
    )
    roi = test_detector.run([ready.image])[0]
    image = ready.image
    sel = select(
        roi, selection="caffe", spec=BoxSpec(36, 36), scale_xy=(image.scale_x, image.scale_y)
    )
    np.testing.assert_allclose(samples["img1"].boxes, sel.boxes.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        samples["img1"].features.astype(np.float32),
        roi.features[sel.index].numpy(),
        rtol=2e-3,
        atol=2e-3,
    )


def test_given_boxes_mode(image_dir, tmp_path, test_detector):
    boxes = tmp_path / "boxes.jsonl"
    boxes.write_text(
        '{"key": "img1", "boxes": [[0, 0, 32, 24], [10, 5, 70, 40]]}\n'
        '{"key": "img2", "boxes": [[5, 5, 20, 30]]}\n'
    )
    out = tmp_path / "out"
    manifest = _run(image_dir, out, test_detector, given_boxes=boxes, num_workers=0)
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (3, 2, 1)
    assert manifest["steps"]["given_boxes"] == {"rejected": 1}
    samples = _read(out)
    np.testing.assert_allclose(samples["img1"].boxes, [[0, 0, 32, 24], [10, 5, 64, 40]])
    assert samples["img2"].num_boxes == 1
    assert samples["img1"].info["box_mode"] == "given"
    assert samples["img1"].info["selection"] == "given"


def test_resume_skips_complete_shards_without_duplicates(image_dir, tmp_path, test_detector):
    out = tmp_path / "out"
    first = _run(image_dir, out, test_detector, limit=2, maxcount=1)
    assert first["kept"] == 2 and len(first["shards"]) == 2
    (out / "features-000002.tar.tmp").write_bytes(b"half-written by a killed run")
    second = _run(image_dir, out, test_detector, maxcount=1)
    assert second["steps"]["resume"]["skipped_done"] == 2
    assert second["steps"]["extract"]["written"] == 1 and second["kept"] == 3
    keys = [s["__key__"] for s in iter_raw(shard_urls(out, "features"))]
    assert sorted(keys) == ["img1", "img2", "img3"]  # each once
    assert not list(out.glob("*.tmp"))
    third = _run(image_dir, out, test_detector)
    assert third["steps"]["extract"]["written"] == 0 and third["kept"] == 3
    with pytest.raises(ValueError, match="other settings"):
        _run(image_dir, out, test_detector, selection="maxnms")


def test_maxnms_adaptive(image_dir, tmp_path, test_detector):
    manifest = _run(
        image_dir, tmp_path / "out", test_detector, boxes="10-100", selection="maxnms", limit=1
    )
    (sample,) = _read(tmp_path / "out").values()
    assert 10 <= sample.num_boxes <= 48 and manifest["box_mode"] == "adaptive"
    assert sample.info["selection"] == "maxnms"


def test_cli(image_dir, tmp_path, vg_labels_dir):
    boxes = tmp_path / "objects.json"
    boxes.write_text(
        json.dumps([{"image_id": "img2", "objects": [{"x": 1, "y": 2, "w": 30, "h": 20}]}])
    )
    out = tmp_path / "out"
    args = ["--images", str(image_dir), "--out", str(out), "--no-progress", "--workers", "0"]
    assert main([*args, "--given-boxes", str(boxes), "--boxes", "10-100"]) == 2
    assert main([*args, "--boxes", "given"]) == 2
    assert main([*args, "--checkpoint", str(tmp_path / "none.pkl")]) == 2
    vocab = [
        "--objects-vocab",
        str(vg_labels_dir / "objects_vocab.txt"),
        "--attributes-vocab",
        str(vg_labels_dir / "attributes_vocab.txt"),
    ]
    demo = ["--preset", "demo", "--given-boxes", str(boxes), "--boxes", "given"]
    assert main([*args, *demo, *vocab]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preset"]["name"] == "demo" and manifest["kept"] == 1
    assert manifest["label_names"] == "vocab files"
    assert _read(out)["img2"].boxes.tolist() == [[1, 2, 31, 22]]
