"""End to end: images -> real feature shards, given boxes, resume, rejects, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import nms

from corpora.schema import FeatureSample
from corpora.shards import ShardIndex, iter_raw, shard_urls
from extract.boxes import BoxSpec, select
from extract.cli import main
from extract.preprocess import preprocess
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
    manifest = _run(image_dir, out, test_detector, given_boxes=boxes, decode_workers=0)
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
    args = ["--images", str(image_dir), "--out", str(out), "--no-progress", "--decode-workers", "0"]
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


@pytest.fixture
def confident(test_detector):
    """The test detector with classes 7 and 300 made confident (restored afterwards), so that
    how many boxes pass max_conf >= 0.2 depends on the image."""
    bias = test_detector.model.roi_heads.box_predictor.cls_score.bias
    saved = bias.detach().clone()
    with torch.no_grad():
        bias[[7, 300]] += 4.0
    yield test_detector
    with torch.no_grad():
        bias.copy_(saved)


def _caffe_loop_max_conf(roi, scale) -> torch.Tensor:
    """Caffe's generate_tsv loop: NMS 0.3 per class over the raw proposals (legacy +1 widths,
    as boxes extended by one pixel), each proposal's best surviving class score."""
    boxes = roi.boxes / scale
    plus_one = boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])
    max_conf = torch.zeros(len(boxes))
    for c in range(roi.cls_probs.shape[1] - 1):
        scores = roi.cls_probs[:, c]
        keep = nms(plus_one, scores, 0.3)
        max_conf[keep] = torch.maximum(max_conf[keep], scores[keep])
    return max_conf


@pytest.mark.parametrize(("lo", "hi"), [(10, 100), (10, 20)])
def test_adaptive_counts_follow_max_conf_within_the_range(confident, lo, hi):
    from skimage import data

    counts = []
    for photo in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket()):
        image = preprocess(Image.fromarray(photo).resize((64, 48)), **confident.preprocess_kwargs())
        (roi,) = confident.run([image])
        sel = select(roi, selection="caffe", spec=BoxSpec(lo, hi), scale_xy=(image.scale_x,) * 2)
        confident_boxes = int((_caffe_loop_max_conf(roi, image.scale_x) >= 0.2).sum())
        assert len(sel.index) == min(max(confident_boxes, lo), hi)
        counts.append(len(sel.index))
    assert all(lo <= n <= hi for n in counts)
    if hi == 100:
        assert len(set(counts)) > 1 and max(counts) > lo  # it adapts to the image
    else:
        assert hi in counts  # the cap applies


def test_given_boxes_reproduce_the_detection_features(image_dir, tmp_path, test_detector):
    detected = tmp_path / "detected"
    _run(image_dir, detected, test_detector)
    first = _read(detected)
    lines = [json.dumps({"key": k, "boxes": s.boxes.tolist()}) for k, s in first.items()]
    (tmp_path / "boxes.jsonl").write_text("\n".join(lines) + "\n")
    again = tmp_path / "given"
    _run(image_dir, again, test_detector, given_boxes=tmp_path / "boxes.jsonl")
    second = _read(again)
    assert sorted(second) == sorted(first)
    for key, sample in first.items():
        np.testing.assert_array_equal(second[key].boxes, sample.boxes)
        np.testing.assert_allclose(
            second[key].features.astype(np.float32), sample.features.astype(np.float32), rtol=2e-3
        )
        np.testing.assert_array_equal(second[key].obj_ids, sample.obj_ids)
        np.testing.assert_array_equal(second[key].attr_ids, sample.attr_ids)


def test_bf16_run_records_its_deviation_and_cannot_mix_with_fp32(
    image_dir, tmp_path, test_preset, test_detector
):
    from extract.detector import build_detector

    bf16 = build_detector(preset=test_preset, device="cpu", precision="bf16")
    out = tmp_path / "out"
    manifest = _run(image_dir, out, bf16, precision="bf16", limit=2)
    check = manifest["precision_check"]
    assert manifest["precision"] == "bf16" and check["precision"] == "bf16"
    assert check["feature_cosine_min"] > 0.99 and check["box_agreement"] >= 0.5
    assert 0 <= check["object_label_agreement"] <= 1
    assert all(s.info["precision"] == "bf16" for s in _read(out).values())
    with pytest.raises(ValueError, match="precision: 'bf16' -> 'fp32'"):
        _run(image_dir, out, test_detector)


def test_several_decode_workers_keep_the_source_order(image_dir, tmp_path, test_detector):
    for name in ("img4", "img5"):
        (image_dir / f"{name}.png").write_bytes((image_dir / "img2.png").read_bytes())
    (image_dir / "img6.jpg").write_bytes(b"broken")
    one = _run(image_dir, tmp_path / "one", test_detector, decode_workers=0, boxes="10-100")
    two = _run(image_dir, tmp_path / "two", test_detector, decode_workers=2, boxes="10-100")
    assert (two["inputs"], two["kept"], two["rejected"]) == (6, 5, 1)
    assert one["shards"] == two["shards"] == ["features-000000.tar"]
    keys = [
        json.loads((tmp_path / d / "features-000000.json").read_text())["keys"]
        for d in ("one", "two")
    ]
    assert keys[0] == keys[1] == ["img1", "img2", "img3", "img4", "img5"]
