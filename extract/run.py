"""The extraction job: image source -> detector -> box selection -> feature shards + job records.

Layers (one module each): :mod:`extract.sources` (read, decode, resize in DataLoader workers)
-> :mod:`extract.detector` (RoI outputs) -> :mod:`extract.boxes` (which RoIs to keep) -> here
(``FeatureSample`` -> :class:`extract.partition.WorkerShardWriter`; ``config.json``,
``manifest.json``, ``rejects.jsonl``).

Resumable: samples go to ``features-NNNNNN.tar`` shards renamed into place when complete; a
rerun skips the keys of complete shards and redoes the rest, so a killed run (even by SIGKILL)
loses at most one shard of work and never leaves duplicates. A rerun must use the same detector,
box and precision settings (checked against every ``config.json`` in the folder). Several
workers (``num_workers``/``worker_index``) share one job and one folder (:mod:`extract.partition`).
Accounting: inputs = kept + rejected, where kept counts samples written now and samples found
complete from earlier runs.
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
from corpora.shards import completed_shards
from extract.boxes import SELECTIONS, BoxSpec, RoIOutputs, parse_boxes, select
from extract.given import load_given_boxes
from extract.partition import WORKERS_DIR, WorkerShardWriter, WorkerSpec, merge_manifests
from extract.precision import PRECISIONS, precision_check
from extract.preprocess import RESIZE_MODES
from extract.presets import Preset, load_preset
from extract.records import PREFIX, label_names, write_records
from extract.sources import (
    PreparedStream,
    Ready,
    Rejected,
    Skipped,
    count_inputs,
    duplicate_reject,
    source_kind,
)

logger = logging.getLogger(__name__)

FLOAT16_MAX = 65504.0


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
    precision: str = "fp32"
    precision_check: bool = True
    batch_size: int = 2
    limit: int | None = None
    maxcount: int = 1000
    decode_workers: int = 1
    num_workers: int = 1
    worker_index: int = 0
    device: str | None = None
    objects_vocab: str | None = None
    attributes_vocab: str | None = None


def _identity(item: Any) -> Any:
    return item


def _validate(cfg: ExtractConfig) -> tuple[BoxSpec | None, Preset, WorkerSpec]:
    if cfg.selection not in SELECTIONS:
        raise ValueError(f"--selection must be one of {SELECTIONS}, got {cfg.selection!r}")
    if cfg.resize not in RESIZE_MODES:
        raise ValueError(f"--resize must be one of {RESIZE_MODES}, got {cfg.resize!r}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    if cfg.batch_size < 1 or cfg.maxcount < 1 or (cfg.limit is not None and cfg.limit < 0):
        raise ValueError("batch size and shard size must be >= 1, --limit >= 0")
    if cfg.decode_workers < 0:
        raise ValueError("--decode-workers must be >= 0 (0: decode in the main process)")
    worker = WorkerSpec(cfg.num_workers, cfg.worker_index)
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
    return spec, load_preset(cfg.preset), worker


def _check_resume(out: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to add to shards written with other detector, box or precision settings."""
    if not completed_shards(out, PREFIX):
        return
    for config_file in [out / "config.json", *out.glob(f"{WORKERS_DIR}/*/config.json")]:
        if not config_file.exists():
            continue
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
    boxes = sel.boxes.clone()  # the input size is rounded: keep boxes inside the original image
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image.width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image.height)
    return FeatureSample(
        key=item.key,
        boxes=boxes.numpy(),
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
    precision_check: dict | None = None


def process_batch(
    batch: list[Ready], detector: Any, *, selection: str, spec: BoxSpec | None
) -> list[RoIOutputs]:
    """The detector's outputs (float32 CPU tensors, every RoI) for a batch of prepared images
    (``detector``: a ``VGDetector``; ``selection``: ``caffe``, ``maxnms`` or ``given``)."""
    given = selection == "given"
    return detector.run(
        [r.image for r in batch],
        [r.boxes for r in batch] if given else None,
        regressed=selection == "maxnms",
    )


def _write_batch(
    batch: list[Ready],
    detector: Any,
    writer: WorkerShardWriter,
    tally: _Tally,
    *,
    check: bool,
    **how,
) -> None:
    """Run the detector on a batch, select boxes, write one sample per image.
    ``how``: selection, spec, info."""
    t0 = time.time()
    rois = process_batch(batch, detector, selection=how["selection"], spec=how["spec"])
    t1 = time.time()
    if check and tally.precision_check is None and detector.precision != "fp32":
        tally.precision_check = precision_check(
            detector, batch[0], rois[0], selection=how["selection"], spec=how["spec"]
        )
        logger.info("%s vs fp32 on %s: %s", detector.precision, batch[0].key, tally.precision_check)
    t2 = time.time()
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
    tally.timing["precision_check_s"] += t2 - t1
    tally.timing["select_write_s"] += time.time() - t2


def _extract_all(
    cfg: ExtractConfig,
    detector: Any,
    writer: WorkerShardWriter,
    given: dict | None,
    worker: WorkerSpec,
    *,
    progress: bool,
    **how,
) -> _Tally:
    """Stream this worker's inputs through the detector into ``writer`` (decoding in workers)."""
    tally = _Tally()
    stream = PreparedStream(
        cfg.images,
        preprocess_kwargs=detector.preprocess_kwargs(),
        skip_keys=writer.skip_keys,
        limit=cfg.limit,
        given=given,
        worker=worker,
    )
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=cfg.decode_workers, collate_fn=_identity
    )
    total = count_inputs(cfg.images) if worker.count == 1 else None
    if total is not None and cfg.limit is not None:
        total = min(total, cfg.limit)
    batch: list[Ready] = []
    seen: set[str] = set()
    write = dict(check=cfg.precision_check, **how)
    with tqdm(total=total, desc="extract", unit="img", disable=not progress) as bar:
        wait_start = time.time()
        for item in loader:
            tally.timing["wait_input_s"] += time.time() - wait_start
            tally.counts["inputs"] += 1
            if item.key in seen and not isinstance(item, Rejected):
                item = duplicate_reject(item.key)  # decoded by another DataLoader worker
            seen.add(item.key)
            if isinstance(item, Skipped):
                tally.counts["skipped_done"] += 1
            elif isinstance(item, Rejected):
                tally.rejects.append(item.record())
            else:
                batch.append(item)
                if len(batch) >= cfg.batch_size:
                    _write_batch(batch, detector, writer, tally, **write)
                    batch.clear()
            bar.update(1)
            wait_start = time.time()
        if batch:
            _write_batch(batch, detector, writer, tally, **write)
    return tally


def run_job(cfg: ExtractConfig, *, detector=None, progress: bool = True) -> dict[str, Any]:
    """Run one extraction (or one worker's share); return its manifest dict. ``detector``: a
    prebuilt :class:`extract.detector.VGDetector` to reuse (its settings must match ``cfg``).
    With several workers, the job's merged manifest is written once the last one finishes."""
    from extract.detector import build_detector  # heavy: detectron2

    start = time.time()
    spec, preset, worker = _validate(cfg)
    out = Path(cfg.out)
    given = load_given_boxes(cfg.given_boxes) if cfg.given_boxes else None
    label_names(cfg)  # a wrong label file fails now, not after the run
    if detector is None:
        detector = build_detector(
            preset=preset,
            checkpoint=cfg.checkpoint,
            resize_mode=cfg.resize,
            device=cfg.device,
            precision=cfg.precision,
        )
    elif (
        detector.preset != preset
        or detector.resize_mode != cfg.resize
        or detector.random_init != (cfg.checkpoint is None)
        or detector.precision != cfg.precision
    ):
        raise ValueError("the prebuilt detector's preset, resize, weights or precision differ")
    if detector.random_init:
        logger.warning("random-init detector: every sample is marked random_init=true")
    selection = "given" if given is not None else cfg.selection
    fingerprint = {
        "detector_config_hash": detector.config_hash,
        "checkpoint_sha256": detector.checkpoint_sha256,
        "random_init": detector.random_init,
        "boxes": "given" if spec is None else f"{selection}:{spec}",
        "precision": detector.precision,
    }
    _check_resume(out, fingerprint)
    records = worker.records_dir(out)
    (records / "manifest.json").unlink(missing_ok=True)  # no stale merge input while running
    config = dataclasses.asdict(cfg)
    config.update(preset=preset.to_dict(), fingerprint=fingerprint)
    jobio.write_config(records, config)
    info = {
        "box_mode": "given" if spec is None else spec.box_mode,
        "selection": selection,
        "precision": detector.precision,  # compute; features are stored as float16 (schema)
        "resize_mode": detector.resize_mode,
        "preset": preset.name,
        "detector_config_hash": detector.config_hash,
        "checkpoint_sha256": detector.checkpoint_sha256,
        "random_init": detector.random_init,
    }
    with WorkerShardWriter(out, PREFIX, maxcount=cfg.maxcount, worker=worker) as writer:
        how = {"selection": selection, "spec": spec, "info": info}
        tally = _extract_all(cfg, detector, writer, given, worker, progress=progress, **how)
    extra = {**info, "preset": preset.to_dict(), "boxes": fingerprint["boxes"]}
    seconds = time.time() - start
    manifest = write_records(records, cfg, detector, tally, worker, extra=extra, seconds=seconds)
    if worker.count > 1:
        merge_manifests(out, PREFIX)
    return manifest


def extract(images: str | os.PathLike, out: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """Extract RoI features of every image in ``images`` into shards under ``out``.

    Keyword arguments are the fields of :class:`ExtractConfig` (``boxes``: ``"36"``, ``"LO-HI"``
    or ``"given"`` with ``given_boxes``, a JSONL or VG objects.json file; ``selection``:
    ``caffe`` or ``maxnms``; ``preset``: ``full``, ``demo``, a JSON file or a :class:`Preset`;
    ``precision``: ``fp32``, ``bf16``, ``fp16``; ``num_workers``/``worker_index``: this
    worker's share), plus ``progress`` (bool) and ``detector`` (a prebuilt ``VGDetector`` to
    reuse). Returns the manifest dict (also written to ``manifest.json``).
    """
    progress = kwargs.pop("progress", True)
    detector = kwargs.pop("detector", None)
    for name in ("checkpoint", "given_boxes", "objects_vocab", "attributes_vocab"):
        if kwargs.get(name) is not None:
            kwargs[name] = str(kwargs[name])
    if "boxes" in kwargs:
        kwargs["boxes"] = str(kwargs["boxes"])
    cfg = ExtractConfig(images=str(images), out=str(out), **kwargs)
    return run_job(cfg, detector=detector, progress=progress)
