"""VG detector feature extraction at 600x1000 (R101-C4): our job against DefaultPredictor + a loop.

    python bench/bench_extract.py                    # 4 images, batch 2, 2 threads
    python bench/bench_extract.py --images 2 --batch-size 1

Both contenders run the same registered detectron2 model with the same weights (the seeded
random-init VG detector: no real checkpoint can be had here; the work per image is the real
one) on the same 1000x600 PNG photos (network input 600x1000, Pillow resize as detectron2's
``ResizeShortestEdge``), in the same process, one after the other:

* **peer**: detectron2's ``DefaultPredictor`` called one image at a time (``cv2.imread``, its own
  resize, backbone, RPN, res5 over the 300 proposals, box head, its detection post-processing),
  forward hooks keeping the proposals, res4 and class logits it computes; then Caffe's
  ``generate_tsv.py`` selection as a Python loop over the 1600 classes (torchvision NMS at 0.3 on
  the raw proposals with the legacy +1 widths), the max_conf rule for 36 boxes, and the feature
  pooling of the kept proposals through the model's own RoI head (pooler, res5, mean) with the
  attribute head on top.
* **ours**: ``extract.run.extract`` (the whole job: decoding in a background worker, batches of
  ``--batch-size`` images, selection, shards, manifest) in fp32 and in bf16.

Checked: ours-fp32 keeps the same boxes in the same order with the same object and attribute
labels as the peer, features within 1e-4 relative (max |a - b| / max |b|). bf16 is compared
with fp32: feature cosine of the bf16 run's kept RoIs against the same RoIs pooled in fp32, box
agreement (fraction of fp32 boxes matched one-to-one at IoU >= 0.7) and label agreement.
Reported: images/s (wall), ratios, the achieved fraction of the fp32 matrix-multiply peak
(nominal 200 GFLOP/s on 2 threads, and the peak measured in the same run).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NOMINAL_PEAK = 200e9  # fp32 FLOP/s, 2 threads (AVX-512 FMA)
log = logging.getLogger("bench_extract")


def make_images(folder: Path, n: int, first: int = 0) -> list[Path]:
    """Photos ``first .. first + n - 1`` (scikit-image's, cycled), resized to 1000x600, as PNG
    (lossless: every decoder yields the same pixels)."""
    from PIL import Image
    from skimage import data

    photos = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.cat(),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + n):
        path = folder / f"photo{i}.png"
        Image.fromarray(photos[i % len(photos)]).convert("RGB").resize((1000, 600)).save(path)
        paths.append(path)
    return paths


def matmul_peak(dtype: torch.dtype, n: int = 4096) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(3))
    return 2 * n**3 / best


class Clock:
    """Wall seconds and this process's CPU seconds (all threads) since creation."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def stop(self) -> Clock:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        return self

    @classmethod
    def zero(cls) -> Clock:
        clock = cls()
        clock.wall = clock.cpu = 0.0
        return clock

    def add(self, other: Clock) -> None:
        self.wall += other.wall
        self.cpu += other.cpu


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def model_flops(detector, image) -> float:
    """FLOPs of one image through the network at 300 proposals (no RoI deduplication)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = detector.model
    x = image.tensor[None]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        res4 = model.backbone(x)["res4"]
        model.proposal_generator.rpn_head([res4])
        size = detector.preset.pooler_resolution
        pooled = torch.zeros(1, 1024, size, size)
        feats = model.roi_heads.res5(pooled).mean(dim=(2, 3))
        model.roi_heads.predict(feats, deltas=False)
    total = counter.get_total_flops()
    with torch.inference_mode(), FlopCounterMode(display=False) as per_roi:
        feats = model.roi_heads.res5(pooled).mean(dim=(2, 3))
        model.roi_heads.predict(feats, deltas=False)
    return total + per_roi.get_total_flops() * (detector.preset.post_nms_topk - 1)


def warm_up(*models) -> None:
    """Start the libraries (oneDNN kernels, thread pools) off the clock, on small inputs."""
    from extract.detector import VGDetector

    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        for model in models:
            if isinstance(model, VGDetector):
                fast = model.fast_path()
                fast.box_features(fast.backbone(x)[:, :, :1, :1].expand(4, -1, 14, 14))
            else:
                model.roi_heads.res5(model.backbone(x)["res4"][:, :, :1, :1].expand(4, -1, 14, 14))


class Peer:
    """DefaultPredictor with hooks, Caffe's per-class NMS loop, re-pooling of the kept boxes."""

    def __init__(self, detector) -> None:
        from detectron2.engine import DefaultPredictor

        from extract.detector import build_config

        cfg = build_config(detector.preset).clone()
        cfg.defrost()
        cfg.MODEL.WEIGHTS = ""
        self.predictor = DefaultPredictor(cfg)
        self.predictor.model.load_state_dict(detector.model.state_dict())
        model = self.predictor.model
        self.seen: dict = {}
        model.backbone.register_forward_hook(lambda m, i, o: self.seen.update(res4=o["res4"]))
        model.proposal_generator.register_forward_hook(
            lambda m, i, o: self.seen.update(proposals=o[0][0].proposal_boxes.tensor)
        )
        model.roi_heads.box_predictor.register_forward_hook(
            lambda m, i, o: self.seen.update(logits=o[0])
        )

    def __call__(self, path: Path) -> dict:
        import cv2
        from detectron2.structures import Boxes
        from torchvision.ops import nms

        bgr = cv2.imread(str(path))
        self.predictor(bgr)
        model = self.predictor.model
        height, width = bgr.shape[:2]
        res4, proposals = self.seen["res4"], self.seen["proposals"]
        resize = self.predictor.aug.get_transform(bgr)
        scale = torch.tensor([resize.new_w / width, resize.new_h / height] * 2)
        probs = self.seen["logits"].softmax(dim=1)
        cls_boxes = proposals / scale  # original pixels
        plus_one = cls_boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])
        max_conf = torch.zeros(len(cls_boxes))
        for c in range(probs.shape[1] - 1):  # Caffe's loop over the classes
            scores = probs[:, c]
            keep = nms(plus_one, scores, 0.3)
            max_conf[keep] = torch.where(
                scores[keep] > max_conf[keep], scores[keep], max_conf[keep]
            )
        keep = torch.nonzero(max_conf >= 0.2).flatten()
        if len(keep) != 36:  # too few or too many: the top 36 by max_conf
            keep = torch.sort(max_conf, descending=True, stable=True).indices[:36]
        with torch.no_grad():
            box_feats = model.roi_heads._shared_roi_transform([res4], [Boxes(proposals[keep])])
            feats = box_feats.mean(dim=(2, 3))
            cls_logits = model.roi_heads.box_predictor.cls_score(feats)
            attr = model.roi_heads.box_predictor.attribute_logits(feats, cls_logits)
        return {
            "boxes": cls_boxes[keep],
            "features": feats,
            "obj_ids": probs[keep, :-1].argmax(dim=1),
            "attr_ids": attr[:, :-1].softmax(dim=1).argmax(dim=1),
        }


class Recording:
    """A VGDetector that keeps the float32 outputs of every ``run`` (the job writes float16)."""

    def __init__(self, detector) -> None:
        self._detector = detector
        self.outputs: list = []
        self.images: list = []

    def __getattr__(self, name: str):
        return getattr(self._detector, name)

    def run(self, images, given_boxes=None, **kwargs):
        outs = self._detector.run(images, given_boxes, **kwargs)
        self.outputs += outs
        self.images += list(images)
        return outs


def run_ours(rec: Recording, images: Path, out: Path, batch_size: int) -> None:
    """The extraction job over ``images`` (its outputs recorded by ``rec``)."""
    from extract.run import extract

    extract(
        images,
        out,
        detector=rec,
        preset=rec.preset,
        resize="pillow",
        precision=rec.precision,
        precision_check=False,
        batch_size=batch_size,
        progress=False,
    )


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def compare_with_peer(rec: Recording, peer_out: list[dict]) -> tuple[float, float]:
    """Assert the same boxes (within 0.01 px: the RPN's box decoding amplifies 1e-7 input
    differences), order and labels; return the worst feature relative error and box offset."""
    from extract.boxes import BoxSpec, select

    worst, offset = 0.0, 0.0
    for image, roi, ref in zip(rec.images, rec.outputs, peer_out, strict=True):
        sel = select(
            roi, selection="caffe", spec=BoxSpec(36, 36), scale_xy=(image.scale_x, image.scale_y)
        )
        torch.testing.assert_close(sel.boxes, ref["boxes"], rtol=1e-4, atol=1e-2)
        offset = max(offset, float((sel.boxes - ref["boxes"]).abs().max()))
        assert torch.equal(roi.cls_probs[sel.index, :-1].argmax(dim=1), ref["obj_ids"])
        assert torch.equal(roi.attr_probs[sel.index].argmax(dim=1), ref["attr_ids"])
        worst = max(worst, rel_error(roi.features[sel.index], ref["features"]))
    assert worst < 1e-4, f"features differ from the peer's: relative error {worst:.2e}"
    return worst, offset


def bf16_deviation(fp32: Recording, bf16: Recording, detector) -> dict:
    """Feature cosine (bf16 kept RoIs vs the same RoIs in fp32), box and label agreement."""
    from extract.boxes import BoxSpec, select, to_original
    from extract.precision import box_agreement, feature_cosine

    cosines, agree, labels = [], [], []
    for image, low, ref in zip(bf16.images, bf16.outputs, fp32.outputs, strict=True):
        scale = (image.scale_x, image.scale_y)
        lo = select(low, selection="caffe", spec=BoxSpec(36, 36), scale_xy=scale)
        hi = select(ref, selection="caffe", spec=BoxSpec(36, 36), scale_xy=scale)
        rois = to_original(low.boxes[lo.index], scale).numpy()
        same = detector.run([image], [rois], precision="fp32")[0]
        cosines.append(feature_cosine(low.features[lo.index], same.features))
        agree.append(box_agreement(lo.boxes, hi.boxes)["agreement"])
        low_ids = low.cls_probs[lo.index, :-1].argmax(dim=1)
        labels.append(float((low_ids == same.cls_probs[:, :-1].argmax(dim=1)).float().mean()))
    cos = torch.cat(cosines)
    return {
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
        "box_agreement": float(np.mean(agree)),
        "label_agreement": float(np.mean(labels)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=4, help="photos (each ~20 s per contender)")
    p.add_argument("--batch-size", type=int, default=2, help="our images per forward pass")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--preset", default="full", help="full (the benchmark) or demo (a smoke test)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    from extract.detector import VGDetector, build_detector
    from extract.preprocess import preprocess

    ours = build_detector(preset=args.preset, resize_mode="pillow", device="cpu")
    ours_bf16 = VGDetector(
        ours.model,
        preset=ours.preset,
        resize_mode="pillow",
        config_hash=ours.config_hash,
        random_init=True,
        checkpoint_sha256=None,
        precision="bf16",
    )
    peer = Peer(ours)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        size = args.batch_size
        rounds = [
            make_images(tmp / "images" / f"r{k}", min(size, args.images - k * size), k * size)
            for k in range(-(-args.images // size))
        ]
        from PIL import Image

        image = Image.open(rounds[0][0])
        flops = model_flops(ours, preprocess(image, **ours.preprocess_kwargs()))
        peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
        warm_up(peer.predictor.model, ours, ours_bf16)

        # Rounds of one batch each; within a round the contenders take turns, starting with a
        # different one each round, so that the load of a shared machine hits all alike.
        clocks = {k: Clock.zero() for k in ("peer", "fp32", "bf16")}
        peer_out: list[dict] = []
        rec32, rec16 = Recording(ours), Recording(ours_bf16)
        rois = {"rois": 0, "distinct_rois": 0}
        for k, paths in enumerate(rounds):
            folder = paths[0].parent
            for turn in range(3):
                who = ("peer", "fp32", "bf16")[(k + turn) % 3]
                clock = Clock()
                if who == "peer":
                    peer_out += [peer(path) for path in paths]
                elif who == "fp32":
                    before = dict(ours.stats)
                    run_ours(rec32, folder, tmp / "fp32" / folder.name, size)
                    for key in rois:
                        rois[key] += ours.stats[key] - before.get(key, 0)
                else:
                    run_ours(rec16, folder, tmp / "bf16" / folder.name, size)
                clocks[who].add(clock.stop())
        worst, offset = compare_with_peer(rec32, peer_out)
        dev = bf16_deviation(rec32, rec16, ours)

    n = args.images
    ips = {k: n / c.wall for k, c in clocks.items()}
    pre = ours.preset
    print(
        f"\n{n} images at {pre.min_size}x{pre.max_size}, R101-C4, {pre.post_nms_topk} proposals, "
        f"36 boxes, {args.threads} threads"
    )
    print(
        f"model cost {flops / 1e12:.2f} TFLOP/image; matmul measured here: fp32 "
        f"{peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s (nominal "
        f"fp32 peak {NOMINAL_PEAK / 1e9:.0f})"
    )
    head = f"{'contender':<32}{'img/s':>8}{'s/img':>8}{'ratio':>8}{'%peak':>7}{'cpu-s/img':>11}"
    print(head + f"{'%peak/cpu':>11}")
    rows = [
        ("peer: DefaultPredictor + loop", "peer"),
        (f"ours fp32 (batch {args.batch_size})", "fp32"),
        (f"ours bf16 (batch {args.batch_size})", "bf16"),
    ]
    for label, key in rows:
        cpu = clocks[key].cpu / n  # CPU seconds per image, all threads
        busy = flops / (cpu / args.threads)  # FLOP/s while on the CPU
        print(
            f"{label:<32}{ips[key]:>8.4f}{1 / ips[key]:>8.2f}{ips[key] / ips['peer']:>7.2f}x"
            f"{100 * flops * ips[key] / NOMINAL_PEAK:>6.0f}%{cpu:>11.2f}"
            f"{100 * busy / NOMINAL_PEAK:>10.0f}%"
        )
    print(
        f"fp32 vs peer: same boxes (max offset {offset:.1e} px), order and labels; feature "
        f"relative error {worst:.1e}"
    )
    print(
        f"bf16 vs fp32: feature cosine min {dev['cos_min']:.5f} mean {dev['cos_mean']:.5f}; "
        f"box agreement {dev['box_agreement']:.3f}; label agreement {dev['label_agreement']:.3f}"
    )
    dedup = 1 - rois["distinct_rois"] / max(rois["rois"], 1)
    print(f"RoIs pooled once per distinct RoIPool cell set: {100 * dedup:.1f}% of RoIs shared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
