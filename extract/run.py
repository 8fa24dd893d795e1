"""The extraction job: image source -> detector -> box selection -> feature shards + job records.

Layers (one module each): :mod:`extract.sources` (read, decode, resize in a DataLoader worker)
-> :mod:`extract.detector` (RoI outputs) -> :mod:`extract.boxes` (which RoIs to keep) -> here
(``FeatureSample`` -> ``ShardWriter``; ``config.json``, ``manifest.json``, ``rejects.jsonl``).

Resumable: samples go to ``features-NNNNNN.tar`` shards that are renamed into place when
complete; a rerun skips the keys of complete shards and redoes the rest, so a killed run loses
at most one shard of work and never leaves duplicates. A rerun must use the same detector and
box settings (checked against ``config.json``). Accounting: inputs = kept + rejected, where kept
counts samples written now and samples found complete from earlier runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from corpora import jobio
from corpora.schema import FeatureSample
from corpora.shards import ShardWriter, completed_shards
from extract.boxes import SELECTIONS, BoxSpec, RoIOutputs, parse_boxes, select
from extract.given import load_given_boxes
from extract.labels import NUM_ATTRIBUTES, NUM_OBJECTS, load_vocab, placeholder_vocab, top_labels
from extract.preprocess import RESIZE_MODES
from extract.presets import Preset, get_preset
from extract.sources import PreparedStream, Ready, Rejected, Skipped, count_inputs, source_kind

logger = logging.getLogger(__name__)

JOB = "extract"
PREFIX = "features"
FLOAT16_MAX = 65504.0
_FINGERPRINT_FIELDS = ("detector_config_hash", "checkpoint_sha256", "random_init", "boxes")


@dataclass
class ExtractConfig:
    """Resolved settings of one extraction run (written as ``config.json``)."""

    images: str
    out: str
    checkpoint: str | None = None
    boxes: str = "36"
    given_boxes: str | None = None
    selection: str = "caffe"
    preset: str | Preset = "full"
    resize: str = "caffe"
    batch_size: int = 2
    limit: int | None = None
    maxcount: int = 1000
    num_workers: int = 1
    device: str | None = None
    objects_vocab: str | None = None
    attributes_vocab: str | None = None


def _identity(item: Any) -> Any:
    return item


def _validate(cfg: ExtractConfig) -> tuple[BoxSpec | None, Preset]:
    if cfg.selection not in SELECTIONS:
        raise ValueError(f"--selection must be one of {SELECTIONS}, got {cfg.selection!r}")
    if cfg.resize not in RESIZE_MODES:
        raise ValueError(f"--resize must be one of {RESIZE_MODES}, got {cfg.resize!r}")
    if cfg.batch_size < 1 or cfg.maxcount < 1 or (cfg.limit is not None and cfg.limit < 0):
        raise ValueError("batch size and shard size must be >= 1, --limit >= 0")
    if cfg.num_workers not in (0, 1):
        raise ValueError("num_workers must be 0 (decode in the main process) or 1")
    if (cfg.objects_vocab is None) != (cfg.attributes_vocab is None):
        raise ValueError("give both --objects-vocab and --attributes-vocab, or neither")
    for name in ("checkpoint", "given_boxes", "objects_vocab", "attributes_vocab"):
        path = getattr(cfg, name)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{name.replace('_', '-')} file not found: {path}")
    source_kind(cfg.images)  # fails early (before the detector is built) on a bad source
    if cfg.boxes == "given" and not cfg.given_boxes:
        raise ValueError("--boxes given needs --given-boxes FILE")
    if cfg.given_boxes and cfg.boxes not in ("given", "36"):
        raise ValueError(f"--boxes {cfg.boxes} does not apply with --given-boxes (all are kept)")
    spec = None if cfg.given_boxes else parse_boxes(cfg.boxes)
    return spec, get_preset(cfg.preset)


def _check_resume(out: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to add to shards written with other detector or box settings."""
    config_file = out / "config.json"
    if not completed_shards(out, PREFIX) or not config_file.exists():
        return
    previous = json.loads(config_file.read_text()).get("fingerprint", {})
    diff = [k for k in fingerprint if previous.get(k) != fingerprint[k]]
    if diff:
        detail = ", ".join(f"{k}: {previous.get(k)!r} -> {fingerprint[k]!r}" for k in diff)
        raise ValueError(
            f"{out} holds features made with other settings ({detail}); "
            "use another --out or remove the old shards"
        )


def _sample(item: Ready, roi: RoIOutputs, selection: str, spec, info: dict) -> FeatureSample:
    image = item.image
    sel = select(roi, selection=selection, spec=spec, scale_xy=(image.scale_x, image.scale_y))
    obj_conf, obj_ids = roi.cls_probs[sel.index, :-1].max(dim=1)
    attr_conf, attr_ids = roi.attr_probs[sel.index].max(dim=1)
    info = dict(info, image_w=image.width, image_h=image.height, num_boxes=int(sel.index.numel()))
    return FeatureSample(
        key=item.key,
        boxes=sel.boxes.numpy(),
        features=roi.features[sel.index].numpy(),
        obj_ids=obj_ids.numpy(),
        obj_conf=obj_conf.numpy(),
        attr_ids=attr_ids.numpy(),
        attr_conf=attr_conf.numpy(),
        info=info,
    )


@dataclass
class _Tally:
    """What one run saw: counters, reject records, label counts, seconds per phase."""

    counts: Counter = field(default_factory=Counter)
    rejects: list[dict[str, str]] = field(default_factory=list)
    objects: Counter = field(default_factory=Counter)
    attributes: Counter = field(default_factory=Counter)
    timing: Counter = field(default_factory=Counter)


def _write_batch(batch: list[Ready], detector, writer: ShardWriter, tally: _Tally, **how) -> None:
    """Run the detector on a batch, select boxes, write one sample per image.
    ``how``: given (bool), selection, spec, info."""
    t0 = time.time()
    rois = detector.run(
        [r.image for r in batch],
        [r.boxes for r in batch] if how["given"] else None,
        regressed=how["selection"] == "maxnms",
    )
    t1 = time.time()
    for item, roi in zip(batch, rois, strict=True):
        sample = _sample(item, roi, how["selection"], how["spec"], how["info"])
        if sample.num_boxes and float(abs(sample.features).max()) > FLOAT16_MAX:
            tally.rejects.append(
                Rejected(item.key, "extract", "features overflow float16").record()
            )
            continue
        writer.write(sample.to_wds())
        tally.objects.update(sample.obj_ids.tolist())
        tally.attributes.update(sample.attr_ids.tolist())
        tally.counts["written"] += 1
        tally.counts["boxes"] += sample.num_boxes
    tally.timing["model_s"] += t1 - t0
    tally.timing["select_write_s"] += time.time() - t1


def _extract_all(
    cfg: ExtractConfig, detector, writer: ShardWriter, given, *, progress: bool, **how
) -> _Tally:
    """Stream every input through the detector into ``writer`` (decoding in a worker)."""
    tally = _Tally()
    stream = PreparedStream(
        cfg.images,
        preprocess_kwargs=detector.preprocess_kwargs(),
        skip_keys=writer.skip_keys,
        limit=cfg.limit,
        given=given,
    )
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=cfg.num_workers, collate_fn=_identity
    )
    total = count_inputs(cfg.images)
    if total is not None and cfg.limit is not None:
        total = min(total, cfg.limit)
    batch: list[Ready] = []
    with tqdm(total=total, desc="extract", unit="img", disable=not progress) as bar:
        wait_start = time.time()
        for item in loader:
            tally.timing["wait_input_s"] += time.time() - wait_start
            tally.counts["inputs"] += 1
            if isinstance(item, Skipped):
                tally.counts["skipped_done"] += 1
            elif isinstance(item, Rejected):
                tally.rejects.append(item.record())
            else:
                batch.append(item)
                if len(batch) >= cfg.batch_size:
                    _write_batch(batch, detector, writer, tally, given=given is not None, **how)
                    batch.clear()
            bar.update(1)
            wait_start = time.time()
        if batch:
            _write_batch(batch, detector, writer, tally, given=given is not None, **how)
    return tally


def _write_records(
    out: Path,
    cfg: ExtractConfig,
    detector,
    tally: _Tally,
    *,
    names: dict[str, list[str]],
    extra: dict,
    seconds: float,
) -> dict[str, Any]:
    """``rejects.jsonl`` and ``manifest.json`` (inputs = kept + rejected); returns the manifest."""
    counts = tally.counts
    jobio.write_rejects(out, tally.rejects)
    steps: dict[str, dict[str, int]] = {"resume": {"skipped_done": counts["skipped_done"]}}
    for rec in tally.rejects:
        steps.setdefault(rec["step"], {"rejected": 0})["rejected"] += 1
    steps["extract"] = {"written": counts["written"], "boxes": counts["boxes"]}
    shards = completed_shards(out, PREFIX)
    per_image = tally.timing["model_s"] / counts["written"] if counts["written"] else None
    warnings = []
    if detector.random_init:
        warnings.append("random_init: no detector checkpoint; features and labels are meaningless")
    jobio.write_manifest(
        out,
        JOB,
        inputs=counts["inputs"],
        kept=counts["written"] + counts["skipped_done"],
        rejected=len(tally.rejects),
        steps=steps,
        outputs=[*shards, out / "rejects.jsonl"],
        seconds=seconds,
        warnings=warnings,
        extra={
            **extra,
            "device": str(detector.device),
            "rpn_anchors": detector.anchors,
            "torch_threads": torch.get_num_threads(),
            "model_seconds_per_image": None if per_image is None else round(per_image, 4),
            "timing_s": {k: round(v, 3) for k, v in tally.timing.items()},
            "top_objects": top_labels(tally.objects, names["objects"]),
            "top_attributes": top_labels(tally.attributes, names["attributes"]),
            "label_names": "vocab files" if cfg.objects_vocab else "placeholders (no vocab files)",
            "shards": [p.name for p in shards],
        },
    )
    logger.info(
        "extract done: %d inputs, %d kept (%d new, %d already done), %d rejected, "
        "%d boxes, %.3f s/image in the model, %.1f s in all -> %s",
        counts["inputs"],
        counts["written"] + counts["skipped_done"],
        counts["written"],
        counts["skipped_done"],
        len(tally.rejects),
        counts["boxes"],
        per_image or 0.0,
        seconds,
        out,
    )
    return json.loads((out / "manifest.json").read_text())


def _label_names(cfg: ExtractConfig) -> dict[str, list[str]]:
    if cfg.objects_vocab and cfg.attributes_vocab:
        return {
            "objects": load_vocab(cfg.objects_vocab, NUM_OBJECTS),
            "attributes": load_vocab(cfg.attributes_vocab, NUM_ATTRIBUTES),
        }
    return {
        "objects": placeholder_vocab("object", NUM_OBJECTS),
        "attributes": placeholder_vocab("attribute", NUM_ATTRIBUTES),
    }


def run_job(cfg: ExtractConfig, *, detector=None, progress: bool = True) -> dict[str, Any]:
    """Run one extraction; return the manifest dict. ``detector``: a prebuilt
    :class:`extract.detector.VGDetector` to reuse (its preset/checkpoint must match ``cfg``)."""
    from extract.detector import build_detector  # heavy: detectron2

    start = time.time()
    spec, preset = _validate(cfg)
    out = Path(cfg.out)
    given = load_given_boxes(cfg.given_boxes) if cfg.given_boxes else None
    names = _label_names(cfg)  # a wrong label file fails now, not after the run
    if detector is None:
        detector = build_detector(
            preset=preset, checkpoint=cfg.checkpoint, resize_mode=cfg.resize, device=cfg.device
        )
    elif (
        detector.preset != preset
        or detector.resize_mode != cfg.resize
        or detector.random_init != (cfg.checkpoint is None)
    ):
        raise ValueError("the prebuilt detector's preset, resize mode or weights differ from cfg")
    if detector.random_init:
        logger.warning("random-init detector: every sample is marked random_init=true")
    selection = "given" if given is not None else cfg.selection
    fingerprint = {
        "detector_config_hash": detector.config_hash,
        "checkpoint_sha256": detector.checkpoint_sha256,
        "random_init": detector.random_init,
        "boxes": "given" if spec is None else f"{selection}:{spec}",
    }
    _check_resume(out, fingerprint)
    config = dataclasses.asdict(cfg)
    config.update(preset=preset.to_dict(), fingerprint=fingerprint)
    jobio.write_config(out, config)
    info = {
        "box_mode": "given" if spec is None else spec.box_mode,
        "selection": selection,
        "precision": "fp32",  # compute; features are stored as float16 (schema)
        "resize_mode": detector.resize_mode,
        "preset": preset.name,
        "detector_config_hash": detector.config_hash,
        "checkpoint_sha256": detector.checkpoint_sha256,
        "random_init": detector.random_init,
    }
    with ShardWriter(out, PREFIX, maxcount=cfg.maxcount) as writer:
        tally = _extract_all(
            cfg,
            detector,
            writer,
            given,
            progress=progress,
            selection=selection,
            spec=spec,
            info=info,
        )
    extra = {**info, "preset": preset.to_dict(), "boxes": fingerprint["boxes"]}
    seconds = time.time() - start
    return _write_records(out, cfg, detector, tally, names=names, extra=extra, seconds=seconds)


def extract(
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    boxes: str = "36",
    given_boxes: str | os.PathLike | None = None,
    selection: str = "caffe",
    preset: str | Preset = "full",
    batch_size: int = 2,
    limit: int | None = None,
    progress: bool = True,
    resize: str = "caffe",
    maxcount: int = 1000,
    num_workers: int = 1,
    device: str | None = None,
    objects_vocab: str | os.PathLike | None = None,
    attributes_vocab: str | os.PathLike | None = None,
    detector=None,
) -> dict[str, Any]:
    """Extract RoI features of every image in ``images`` into shards under ``out``.

    ``boxes``: ``"36"``, ``"LO-HI"``, or ``"given"`` with ``given_boxes`` (a JSONL or VG
    objects.json file; every given box is kept, and the default ``"36"`` is then ignored). ``selection``: ``caffe`` or ``maxnms``. ``preset``: ``full``, ``demo``
    or a :class:`Preset`. ``detector``: a prebuilt ``VGDetector`` to reuse across calls.
    Returns the manifest dict (also written to ``out/manifest.json``).
    """
    cfg = ExtractConfig(
        images=str(images),
        out=str(out),
        checkpoint=None if checkpoint is None else str(checkpoint),
        boxes=str(boxes),
        given_boxes=None if given_boxes is None else str(given_boxes),
        selection=selection,
        preset=preset,
        resize=resize,
        batch_size=batch_size,
        limit=limit,
        maxcount=maxcount,
        num_workers=num_workers,
        device=device,
        objects_vocab=None if objects_vocab is None else str(objects_vocab),
        attributes_vocab=None if attributes_vocab is None else str(attributes_vocab),
    )
    return run_job(cfg, detector=detector, progress=progress)
