"""Visual Genome, COCO, Karpathy and Conceptual-Captions files for the sample images.

Ids: VG ``image_id`` is the image key (scenes 1001.., photos 90001..); ``coco_id`` is
``image_id + COCO_ID_OFFSET`` so that readers must map one to the other through
``image_data.json`` or ``file_name``. Object, region and relationship ids are unique across the
corpus. Splits: scenes are shuffled with the seed and cut 80/10/10 (at least one image in
val and test); photos are all in train, because the web pages show them and LAIT output is
training data.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from corpora.sample.records import AnnObject, ImageRecord
from corpora.sample.text import tokens

COCO_ID_OFFSET = 500000
OBJECT_ID_BASE, REGION_ID_BASE, RELATION_ID_BASE = 1_000_000, 2_000_000, 3_000_000
SPLITS = ("train", "val", "test")
VG_URL = "http://vg.msp.invalid/images/{}.jpg"  # not fetched: the image is images/<id>.jpg


def assign_splits(records: list[ImageRecord], seed: int) -> dict[int, str]:
    """image_id -> split; scenes 80/10/10 by a seeded shuffle, photos in train."""
    scenes = sorted(r.image_id for r in records if r.source == "scene")
    random.Random(f"msp-sample:{seed}:splits").shuffle(scenes)
    n_eval = max(1, round(0.1 * len(scenes)))
    split = {i: "test" for i in scenes[:n_eval]}
    split.update({i: "val" for i in scenes[n_eval : 2 * n_eval]})
    split.update({i: "train" for i in scenes[2 * n_eval :]})
    split.update({r.image_id: "train" for r in records if r.source == "photo"})
    return split


def _dump(path: Path, obj: Any, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    seps = None if indent else (",", ":")
    path.write_text(
        json.dumps(obj, indent=indent, separators=seps, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _vg_object(object_id: int, o: AnnObject) -> dict[str, Any]:
    x, y, w, h = o.box
    return {
        "object_id": object_id,
        "x": x,
        "y": y,
        "w": w,
        "h": h,
        "names": [o.name],
        "synsets": [],
    }


def write_vg(out: Path, records: list[ImageRecord]) -> dict[str, int]:
    """The five VG files under ``out/vg``; returns counts."""
    image_data, regions, objects, attributes, relationships = [], [], [], [], []
    oid, rid, relid = OBJECT_ID_BASE, REGION_ID_BASE, RELATION_ID_BASE
    for rec in records:
        image_data.append(
            {
                "image_id": rec.image_id,
                "url": VG_URL.format(rec.image_id),
                "width": rec.width,
                "height": rec.height,
                "coco_id": rec.image_id + COCO_ID_OFFSET,
                "flickr_id": None,
            }
        )
        ids = list(range(oid, oid + len(rec.objects)))
        oid += len(rec.objects)
        objs = [_vg_object(i, o) for i, o in zip(ids, rec.objects, strict=True)]
        objects.append({"image_id": rec.image_id, "objects": objs})
        attributes.append(
            {
                "image_id": rec.image_id,
                "attributes": [
                    dict(d, attributes=list(o.attributes))
                    for d, o in zip(objs, rec.objects, strict=True)
                ],
            }
        )
        rels = []
        for r in rec.relations:
            subj = dict(objs[r.subject], name=rec.objects[r.subject].name)
            obj = dict(objs[r.object], name=rec.objects[r.object].name)
            rels.append(
                {
                    "relationship_id": relid,
                    "predicate": r.predicate,
                    "synsets": [],
                    "subject": subj,
                    "object": obj,
                }
            )
            relid += 1
        relationships.append({"image_id": rec.image_id, "relationships": rels})
        regs = []
        for phrase, (x, y, w, h) in rec.regions:
            regs.append(
                {
                    "region_id": rid,
                    "image_id": rec.image_id,
                    "phrase": phrase,
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                }
            )
            rid += 1
        regions.append({"id": rec.image_id, "regions": regs})
    vg = out / "vg"
    _dump(vg / "image_data.json", image_data)
    _dump(vg / "region_descriptions.json", regions)
    _dump(vg / "objects.json", objects)
    _dump(vg / "attributes.json", attributes)
    _dump(vg / "relationships.json", relationships)
    return {
        "vg_images": len(records),
        "vg_objects": oid - OBJECT_ID_BASE,
        "vg_regions": rid - REGION_ID_BASE,
        "vg_relationships": relid - RELATION_ID_BASE,
    }


def write_coco(out: Path, records: list[ImageRecord], split: dict[int, str]) -> dict[str, int]:
    """``coco/captions_{train,val,test}.json`` and ``coco/dataset_karpathy.json``."""
    counts: dict[str, int] = {}
    ann_id = 1
    karpathy, sent_id = [], 0
    for name in SPLITS:
        images, anns = [], []
        for rec in records:
            if split[rec.image_id] != name:
                continue
            coco_id = rec.image_id + COCO_ID_OFFSET
            images.append(
                {
                    "id": coco_id,
                    "file_name": f"{rec.key}.jpg",
                    "width": rec.width,
                    "height": rec.height,
                }
            )
            sentences = []
            for caption in rec.captions:
                anns.append({"id": ann_id, "image_id": coco_id, "caption": caption})
                sentences.append(
                    {
                        "raw": caption,
                        "tokens": tokens(caption),
                        "imgid": len(karpathy),
                        "sentid": sent_id,
                    }
                )
                ann_id += 1
                sent_id += 1
            karpathy.append(
                {
                    "filepath": "images",
                    "filename": f"{rec.key}.jpg",
                    "imgid": len(karpathy),
                    "split": name,
                    "cocoid": coco_id,
                    "sentids": [s["sentid"] for s in sentences],
                    "sentences": sentences,
                }
            )
        info = {"description": f"msp sample corpus, {name} split", "version": "1.0"}
        _dump(
            out / "coco" / f"captions_{name}.json",
            {"info": info, "licenses": [], "images": images, "annotations": anns},
        )
        counts[f"coco_{name}_images"] = len(images)
        counts[f"coco_{name}_captions"] = len(anns)
    _dump(out / "coco" / "dataset_karpathy.json", {"dataset": "coco", "images": karpathy})
    return counts


# Malformed lines of the CC file: (1-based line number, reason, line builder).
CC_MALFORMED = (
    (5, "no_tab", lambda cap, path: f"{cap} {path}"),
    (12, "empty_caption", lambda cap, path: f"\t{path}"),
    (20, "extra_field", lambda cap, path: f"{cap}\t{path}\tcc-by"),
    (27, "missing_image", lambda cap, path: f"{cap}\t../images/999999.jpg"),
)
CC_LINES = 36


def write_cc(
    out: Path, records: list[ImageRecord], split: dict[int, str], seed: int
) -> dict[str, Any]:
    """``cc/captions.tsv`` (caption TAB image path relative to the TSV's folder) from training
    scenes, with a few malformed lines; returns the CC ground truth."""
    rng = random.Random(f"msp-sample:{seed}:cc")
    train = [r for r in records if r.source == "scene" and split[r.image_id] == "train"]
    picks = (
        [train[i % len(train)] for i in range(CC_LINES)]
        if len(train) < CC_LINES
        else rng.sample(train, CC_LINES)
    )
    bad = {line: (reason, build) for line, reason, build in CC_MALFORMED}
    lines, valid, malformed = [], [], []
    for n, rec in enumerate(picks, 1):
        caption = rng.choice(rec.captions).rstrip(".").lower()
        path = f"../images/{rec.key}.jpg"
        if n in bad:
            reason, build = bad[n]
            lines.append(build(caption, path))
            malformed.append({"line": n, "reason": reason, "text": lines[-1]})
        else:
            lines.append(f"{caption}\t{path}")
            valid.append({"line": n, "caption": caption, "image_key": rec.key})
    (out / "cc").mkdir(parents=True, exist_ok=True)
    (out / "cc" / "captions.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    truth = {
        "file": "cc/captions.tsv",
        "lines": len(lines),
        "paths_relative_to": "cc/",
        "valid": valid,
        "malformed": malformed,
    }
    _dump(out / "ground_truth" / "cc.json", truth, indent=2)
    return truth
