"""The extraction job's records: ``rejects.jsonl`` and ``manifest.json`` with counts, timings,
label summaries and the detector's settings (``config.json`` is written by :mod:`extract.run`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from corpora import jobio
from corpora.shards import completed_shards
from extract.labels import NUM_ATTRIBUTES, NUM_OBJECTS, load_vocab, placeholder_vocab, top_labels

logger = logging.getLogger(__name__)

JOB = "extract"
PREFIX = "features"


def label_names(cfg: Any) -> dict[str, list[str]]:
    """Object and attribute display names from ``cfg``'s vocab files, or placeholders."""
    if cfg.objects_vocab and cfg.attributes_vocab:
        return {
            "objects": load_vocab(cfg.objects_vocab, NUM_OBJECTS),
            "attributes": load_vocab(cfg.attributes_vocab, NUM_ATTRIBUTES),
        }
    return {
        "objects": placeholder_vocab("object", NUM_OBJECTS),
        "attributes": placeholder_vocab("attribute", NUM_ATTRIBUTES),
    }


def write_records(
    records: Path,
    cfg: Any,
    detector: Any,
    tally: Any,
    worker: Any,
    *,
    extra: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """``rejects.jsonl`` and ``manifest.json`` (inputs = kept + rejected) into ``records``.

    ``cfg``: the run's :class:`extract.run.ExtractConfig`; ``detector``: its ``VGDetector``;
    ``tally``: what the run counted; ``worker``: its :class:`extract.partition.WorkerSpec`.
    Returns the manifest as written."""
    counts = tally.counts
    jobio.write_rejects(records, tally.rejects)
    steps: dict[str, dict[str, int]] = {"resume": {"skipped_done": counts["skipped_done"]}}
    for rec in tally.rejects:
        steps.setdefault(rec["step"], {"rejected": 0})["rejected"] += 1
    steps["extract"] = {"written": counts["written"], "boxes": counts["boxes"]}
    shards = completed_shards(cfg.out, PREFIX)
    per_image = tally.timing["model_s"] / counts["written"] if counts["written"] else None
    warnings = []
    if detector.random_init:
        warnings.append("random_init: no detector checkpoint; features and labels are meaningless")
    names = label_names(cfg)
    stats = detector.stats
    jobio.write_manifest(
        records,
        JOB,
        inputs=counts["inputs"],
        kept=counts["written"] + counts["skipped_done"],
        rejected=len(tally.rejects),
        steps=steps,
        outputs=[*shards, records / "rejects.jsonl"],
        seconds=seconds,
        warnings=warnings,
        extra={
            **extra,
            "worker_index": worker.index,
            "num_workers": worker.count,
            "device": str(detector.device),
            "rpn_anchors": detector.anchors,
            "torch_threads": torch.get_num_threads(),
            "model_seconds_per_image": None if per_image is None else round(per_image, 4),
            "timing_s": {k: round(v, 3) for k, v in tally.timing.items()},
            "roi_dedup": {"rois": stats["rois"], "distinct_rois": stats["distinct_rois"]},
            "precision_check": tally.precision_check,
            "top_objects": top_labels(tally.objects, names["objects"]),
            "top_attributes": top_labels(tally.attributes, names["attributes"]),
            "object_counts": {str(k): v for k, v in sorted(tally.objects.items())},
            "attribute_counts": {str(k): v for k, v in sorted(tally.attributes.items())},
            "label_names": "vocab files" if cfg.objects_vocab else "placeholders (no vocab files)",
            "shards": [p.name for p in shards],
        },
    )
    logger.info(
        "extract done%s: %d inputs, %d kept (%d new, %d already done), %d rejected, "
        "%d boxes, %.3f s/image in the model, %.1f s in all -> %s",
        "" if worker.count == 1 else f" (worker {worker.index} of {worker.count})",
        counts["inputs"],
        counts["written"] + counts["skipped_done"],
        counts["written"],
        counts["skipped_done"],
        len(tally.rejects),
        counts["boxes"],
        per_image or 0.0,
        seconds,
        cfg.out,
    )
    return json.loads((records / "manifest.json").read_text())
