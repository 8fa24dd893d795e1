"""Checkpoint loading: a synthetic checkpoint of the exact layout loads; tampered ones do not."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from extract.checkpoint import (
    ANCHORS_KEY,
    CheckpointError,
    check_layout,
    compare_anchors,
    read_checkpoint,
)


def _layout(keys_file: Path) -> dict[str, tuple[int, ...]]:
    rows = {}
    for line in keys_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, shape = line.split(" ", 1)
            rows[name] = tuple(int(v) for v in shape.strip("[]").split(","))
    return rows


def _synthetic_weights(layout: dict[str, tuple[int, ...]], anchors: torch.Tensor) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in layout.items():
        if name == ANCHORS_KEY:
            arrays[name] = anchors.numpy().copy()
        elif name.endswith("running_var"):
            arrays[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            arrays[name] = (rng.standard_normal(shape, dtype=np.float32) * 0.01).astype(np.float32)
    return arrays


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def synthetic_checkpoint(tmp_path_factory, bua_keys_file, test_detector):
    """A .pkl in the converted checkpoint's format: {"model": {name: float32 ndarray}}. Its
    stored RPN anchors are centred at 7.5 px (as Caffe's) instead of 0 (as configured)."""
    anchors = next(iter(test_detector.model.proposal_generator.anchor_generator.cell_anchors))
    arrays = _synthetic_weights(_layout(bua_keys_file), anchors + 7.5)
    path = tmp_path_factory.mktemp("ckpt") / "faster_rcnn_from_caffe_attr.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"model": arrays, "__author__": "test"}, fh)
    return path, arrays


def test_synthetic_checkpoint_loads_strictly(
    synthetic_checkpoint, test_preset, image_dir, tmp_path, caplog
):
    from corpora.schema import FeatureSample
    from corpora.shards import ShardIndex
    from extract.detector import build_detector
    from extract.run import extract

    path, arrays = synthetic_checkpoint
    with caplog.at_level("WARNING", logger="extract.checkpoint"):
        det = build_detector(preset=test_preset, checkpoint=path, device="cpu")
    assert "RPN cell anchors differ" in caplog.text and "max difference 7.50 px" in caplog.text
    assert det.anchors == "checkpoint (differ from configured)"
    used = next(iter(det.model.proposal_generator.anchor_generator.cell_anchors))
    np.testing.assert_array_equal(used.numpy(), arrays[ANCHORS_KEY])  # the RPN uses them
    assert not det.random_init
    assert det.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    state = det.model.state_dict()
    assert set(state) == set(arrays)
    for name in ("backbone.stem.conv1.weight", "roi_heads.box_predictor.attr_score.bias"):
        np.testing.assert_array_equal(state[name].numpy(), arrays[name])
    manifest = extract(
        image_dir,
        tmp_path / "out",
        preset=test_preset,
        detector=det,
        checkpoint=path,
        boxes="10-100",
        limit=1,
        progress=False,
    )
    assert manifest["random_init"] is False and not manifest["warnings"]
    assert manifest["rpn_anchors"] == "checkpoint (differ from configured)"
    index = ShardIndex(tmp_path / "out", "features")
    info = FeatureSample.from_wds(index.get("img1")).info
    assert info["random_init"] is False and info["checkpoint_sha256"] == det.checkpoint_sha256


def test_tampered_checkpoint_names_every_problem(synthetic_checkpoint, test_preset, tmp_path):
    from extract.detector import build_detector

    _, arrays = synthetic_checkpoint
    tampered = dict(arrays)
    tampered["roi_heads.box_predictor.cls_score.weight"] = np.zeros((1600, 2048), np.float32)
    tampered["roi_heads.box_predictor.extra.weight"] = np.zeros(3, np.float32)
    path = tmp_path / "tampered.pkl"
    path.write_bytes(pickle.dumps({"model": tampered}))
    with pytest.raises(CheckpointError) as err:
        build_detector(preset=test_preset, checkpoint=path, device="cpu")
    msg = str(err.value)
    assert "1 unexpected: roi_heads.box_predictor.extra.weight" in msg
    assert "1 wrong shape: roi_heads.box_predictor.cls_score.weight [1600, 2048]" in msg
    assert "expected [1601, 2048]" in msg


def test_layout_check_lists_missing_unexpected_and_wrong_shapes(bua_keys_file):
    layout = _layout(bua_keys_file)
    fake = {k: np.broadcast_to(np.float32(0), s) for k, s in layout.items()}  # no memory
    check_layout(fake, layout)  # exact layout passes
    del fake[ANCHORS_KEY]
    check_layout(fake, layout)  # stored anchors are optional
    del fake["backbone.res4.22.conv3.weight"]
    fake["backbone.res4.23.conv1.weight"] = np.zeros(1, np.float32)
    fake["roi_heads.res5.0.conv2.weight"] = np.broadcast_to(np.float32(0), (512, 512, 1, 1))
    with pytest.raises(CheckpointError) as err:
        check_layout(fake, layout)
    msg = str(err.value)
    assert "1 missing: backbone.res4.22.conv3.weight" in msg
    assert "1 unexpected: backbone.res4.23.conv1.weight" in msg
    assert "roi_heads.res5.0.conv2.weight [512, 512, 1, 1] (expected [512, 512, 3, 3])" in msg


def test_pickled_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    for suffix in (".pkl", ".pth"):
        path = tmp_path / f"evil{suffix}"
        if suffix == ".pkl":
            path.write_bytes(pickle.dumps({"model": {"w": _Evil(marker)}}, protocol=2))
        else:
            torch.save({"model": {"w": _Evil(marker)}}, path)
        with pytest.raises(CheckpointError, match="refus"):
            read_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refusing to unpickle posix.system"):
        read_checkpoint(tmp_path / "evil.pkl")


def test_reader_accepts_numpy_pickles_and_state_dicts_only(tmp_path):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    for protocol in (2, 5):  # _reconstruct/_codecs (old) and _frombuffer (new) array pickles
        path = tmp_path / f"ok{protocol}.pkl"
        path.write_bytes(pickle.dumps({"model": {"w": arr}}, protocol=protocol))
        np.testing.assert_array_equal(read_checkpoint(path)["w"], arr)
    pth = tmp_path / "ok.pth"
    torch.save({"w": torch.ones(2)}, pth)
    assert torch.equal(read_checkpoint(pth)["w"], torch.ones(2))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"model": {"w": "not an array", "v": arr}}))
    with pytest.raises(CheckpointError, match="not numeric arrays"):
        read_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pkl")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        read_checkpoint(bad.rename(tmp_path / "weights.bin"))


def test_stored_anchors_are_compared_with_the_configured_ones(test_detector):
    configured = next(iter(test_detector.model.proposal_generator.anchor_generator.cell_anchors))
    assert compare_anchors(configured.numpy() + 1e-4, configured) is None
    assert "max difference 64.00 px" in compare_anchors(configured.numpy() + 64, configured)
    assert "shape [6, 4]" in compare_anchors(configured.numpy()[:6], configured)
