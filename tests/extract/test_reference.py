"""Numerical equivalence with an independent re-implementation of the reference test path.

The same weights (a checkpoint file in the converted layout, written here and loaded by both
sides), the same resized input and the same boxes must give the same pooled features, class
and attribute probabilities: relative error (max |a - b| / max |b|) below 1e-4 in fp32, for
given boxes and for the RPN's own proposals (which must match too).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from extract.detector_fast import quantised_rois, unique_rois
from extract.preprocess import preprocess
from extract.presets import Preset
from tests.extract import reference_bua as ref

# pooler 14 (the reference resolution: the dilated res5 matters there), small input
REF_PRESET = Preset(
    "ref", min_size=112, max_size=160, pre_nms_topk=300, post_nms_topk=12, pooler_resolution=14
)
TOL = 1e-4


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, test_detector):
    """The calibrated random test weights as a converted-layout checkpoint .pkl."""
    state = test_detector.model.state_dict()
    path = tmp_path_factory.mktemp("ref") / "weights.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "t"}, fh)
    return path


@pytest.fixture(scope="module")
def loaded(weights_file):
    """(our detector built from the file, the reference's weight dict read from the file)."""
    from extract.detector import build_detector

    det = build_detector(preset=REF_PRESET, checkpoint=weights_file, device="cpu")
    with open(weights_file, "rb") as fh:  # the test's own trusted file
        raw = pickle.load(fh)["model"]
    return det, {k: torch.from_numpy(np.asarray(v)) for k, v in raw.items()}


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((150, 120))


def _check(ours, theirs, label):
    for name in ("features", "cls_probs", "attr_probs"):
        err = ref.rel_error(getattr(ours, name), theirs[name])
        assert err < TOL, f"{label}: {name} relative error {err:.2e}"


def test_given_boxes_match_the_reference(loaded, photo):
    det, weights = loaded
    image = preprocess(photo, **det.preprocess_kwargs())
    boxes = np.array(
        [[0, 0, 149, 119], [10, 20, 60, 90], [12, 22, 62, 92], [100, 5, 140, 30], [70, 70, 72, 71]],
        np.float32,
    )  # rows 1 and 2 share their RoIPool cells: computed once by us, twice by the reference
    (ours,) = det.run([image], [boxes])
    input_boxes = torch.from_numpy(boxes) * image.scale_x
    theirs = ref.detect(image.tensor, weights, pool_size=14, boxes=input_boxes)
    _check(ours, theirs, "given boxes")
    torch.testing.assert_close(ours.boxes, input_boxes)
    assert det.stats["distinct_rois"] < det.stats["rois"]


def test_rpn_proposals_and_their_outputs_match_the_reference(loaded, photo):
    det, weights = loaded
    image = preprocess(photo, **det.preprocess_kwargs())
    (ours,) = det.run([image])
    theirs = ref.detect(image.tensor, weights, pool_size=14, pre_nms=300, post_nms=12)
    assert ours.boxes.shape == theirs["boxes"].shape == (12, 4)
    torch.testing.assert_close(ours.boxes, theirs["boxes"], rtol=1e-5, atol=1e-3)
    _check(ours, theirs, "RPN proposals")


def test_low_precision_stays_close_to_fp32(loaded, photo):
    from extract.precision import feature_cosine

    det, _ = loaded
    image = preprocess(photo, **det.preprocess_kwargs())
    boxes = [np.array([[0, 0, 149, 119], [10, 20, 60, 90], [100, 5, 140, 30]], np.float32)]
    (fp32,) = det.run([image], boxes)
    (bf16,) = det.run([image], boxes, precision="bf16")
    assert float(feature_cosine(bf16.features, fp32.features).min()) > 0.999
    assert not torch.equal(bf16.features, fp32.features)  # really ran in bf16
    with pytest.raises(ValueError, match="CUDA"):
        det.fast_path("fp16")


def test_reference_roipool_is_torchvisions_kernel():
    """The plain Caffe RoIPool above equals torchvision's on boxes hitting .5 ties and borders."""
    from torchvision.ops import roi_pool

    gen = torch.Generator().manual_seed(0)
    fmap = torch.randn(3, 9, 11, generator=gen)
    boxes = torch.tensor(
        [
            [8.0, 8.0, 24.0, 40.0],
            [0.0, 0.0, 175.0, 143.0],
            [40.0, 24.0, 41.0, 25.0],
            [3, 5, 100, 60],
        ]
    )
    for size in (2, 7, 14):
        got = ref.roi_pool(fmap, boxes, size)
        rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
        torch.testing.assert_close(got, roi_pool(fmap[None], rois, size, 1 / 16), rtol=0, atol=0)


def test_identical_pooling_cells_are_found_exactly():
    from torchvision.ops import roi_pool

    gen = torch.Generator().manual_seed(1)
    xy = torch.randint(0, 40, (400, 2), generator=gen).float() * 8  # many exact .5 ties
    wh = torch.randint(1, 12, (400, 2), generator=gen).float() * 8
    boxes = torch.cat([xy, xy + wh], dim=1)
    cells = quantised_rois(boxes, 1 / 16)
    assert cells[0].tolist() == [round(v / 16 + 1e-9) for v in boxes[0].tolist()]  # .5 -> up
    first, inverse = unique_rois(boxes, 1 / 16)
    assert len(first) < len(boxes) and torch.equal(first, torch.sort(first).values)
    fmap = torch.randn(1, 2, 30, 30, generator=gen)
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
    pooled = roi_pool(fmap, rois, 5, 1 / 16)
    torch.testing.assert_close(pooled[first][inverse], pooled, rtol=0, atol=0)


def test_the_comparison_detects_a_non_dilated_res5(loaded, photo, monkeypatch):
    """The check has teeth: a reference with res5 convs not dilated disagrees far beyond 1e-4."""
    det, weights = loaded
    image = preprocess(photo, **det.preprocess_kwargs())
    boxes = np.array([[0, 0, 149, 119], [10, 20, 60, 90]], np.float32)
    (ours,) = det.run([image], [boxes])
    plain = ref.bottleneck
    monkeypatch.setattr(ref, "bottleneck", lambda x, w, p, stride, _: plain(x, w, p, stride, 1))
    wrong = ref.detect(
        image.tensor, weights, pool_size=14, boxes=torch.from_numpy(boxes) * image.scale_x
    )
    assert ref.rel_error(ours.features, wrong["features"]) > 1e-2


def test_checkpoint_round_trip_restores_every_tensor(loaded, test_detector, weights_file):
    det, weights = loaded
    assert det.checkpoint_sha256 and not det.random_init
    assert det.anchors == "checkpoint (same as configured)"
    original = test_detector.model.state_dict()
    restored = det.model.state_dict()
    assert list(restored) == list(original) and len(weights) == len(original) == 536
    assert all(torch.equal(restored[k], original[k]) for k in original)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_low_precision_stays_close_to_fp32(weights_file, photo, precision):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from extract.detector import build_detector
    from extract.precision import feature_cosine

    det = build_detector(preset=REF_PRESET, checkpoint=weights_file, device="cuda")
    image = preprocess(photo, **det.preprocess_kwargs())
    boxes = [np.array([[0, 0, 149, 119], [10, 20, 60, 90], [100, 5, 140, 30]], np.float32)]
    (fp32,) = det.run([image], boxes)
    (low,) = det.run([image], boxes, precision=precision)
    assert float(feature_cosine(low.features, fp32.features).min()) > 0.999
    (detected,) = det.run([image], precision=precision)
    assert detected.boxes.shape[0] > 0 and torch.isfinite(detected.features).all()
