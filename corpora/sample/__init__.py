"""The embedded sample corpus: ``msp sample --out DIR [--seed 0] [--num-scenes 300]``.

Writes, deterministically from the seed, synthetic scenes and a few packaged real photos with
Visual Genome, COCO, Karpathy and Conceptual-Captions annotations, a small web crawl (WARC
files, saved HTML pages, image files) and the ground truth each LAIT filter is tested against.
The layout and formats are documented in the corpus's own README.md (see
:mod:`corpora.sample.readme`). The corpus is written to a temporary sibling folder and renamed
into place when complete; a rerun with the same parameters finds it complete and skips.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from corpora.sample.annotations import assign_splits, write_cc, write_coco, write_vg
from corpora.sample.photos import load_photos
from corpora.sample.readme import render
from corpora.sample.records import ImageRecord
from corpora.sample.scenes import make_scene
from corpora.sample.text import add_captions, add_regions, text_rng
from corpora.sample.web_assets import AssetFactory
from corpora.sample.web_cases import KEPT_SCENES, build_pages
from corpora.sample.web_pages import judge
from corpora.sample.web_write import write_ground_truth, write_web

__all__ = ["generate", "main", "GENERATOR_VERSION"]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
SCENE_ID_BASE = 1001
MIN_SCENES, MAX_SCENES = 50, 50000  # 80% of 50 covers the web's kept pairs (KEPT_SCENES)


def _scenes(seed: int, num_scenes: int) -> list[ImageRecord]:
    out = []
    for i in tqdm(range(num_scenes), desc="scenes", unit="img", disable=None):
        rec = make_scene(seed, i, SCENE_ID_BASE + i)
        rng = text_rng(seed, i)
        add_regions(rec, rng)
        add_captions(rec, rng)
        out.append(rec)
    return out


def _file_list(root: Path) -> list[dict[str, Any]]:
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json"):
        data = path.read_bytes()
        files.append(
            {
                "path": path.relative_to(root).as_posix(),
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return files


def _complete(out: Path, seed: int, num_scenes: int) -> dict[str, Any] | None:
    """The manifest of a finished corpus with these parameters at ``out``, else None."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    wanted = {
        "generator": "corpora.sample",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "num_scenes": num_scenes,
    }
    if any(manifest.get(k) != v for k, v in wanted.items()):
        return None
    for f in manifest.get("files", []):
        path = out / f["path"]
        if not path.is_file() or path.stat().st_size != f["bytes"]:
            return None
    return manifest


def _write(tmp: Path, seed: int, num_scenes: int) -> dict[str, Any]:
    scenes = _scenes(seed, num_scenes)
    photos = load_photos()
    records = scenes + [rec for _, rec in photos]
    (tmp / "images").mkdir(parents=True)
    for rec in records:
        (tmp / "images" / f"{rec.key}.jpg").write_bytes(rec.jpeg)
    split = assign_splits(records, seed)
    counts: dict[str, Any] = {"images": len(records), "scenes": len(scenes), "photos": len(photos)}
    counts.update(write_vg(tmp, records))
    counts.update(write_coco(tmp, records, split))
    cc = write_cc(tmp, records, split, seed)
    counts.update({"cc_lines": cc["lines"], "cc_malformed": len(cc["malformed"])})
    factory = AssetFactory([r for r in scenes if split[r.image_id] == "train"], KEPT_SCENES)
    pages = build_pages(factory, {p.name: rec for p, rec in photos}, seed)
    groups = judge(pages)
    where = write_web(tmp, pages, factory.assets, seed)
    lait = write_ground_truth(tmp, pages, groups, where)
    web = {
        "pages": len(pages),
        "warc_files": len({v for v in where["page_file"].values() if v.endswith(".gz")}),
        "html_pages": sum(p.store == "html" for p in pages),
    }
    counts.update({f"web_{k}": v for k, v in web.items()})
    counts["web_img_files"] = sum(
        a.store == "file" and a.body is not None for a in factory.assets.values()
    )
    counts.update({f"lait_{k}": v for k, v in lait.items()})
    manifest: dict[str, Any] = {
        "generator": "corpora.sample",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "num_scenes": num_scenes,
        "counts": counts,
        "splits": {
            s: sorted(i for i, v in split.items() if v == s) for s in ("train", "val", "test")
        },
        "photos": [
            {"image_id": rec.image_id, "name": p.name, "credit": p.credit} for p, rec in photos
        ],
    }
    (tmp / "README.md").write_text(render(manifest, web, cc), encoding="utf-8")
    manifest["files"] = _file_list(tmp)
    manifest["total_bytes"] = sum(f["bytes"] for f in manifest["files"])
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _summary(out: Path, manifest: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    return {
        "out": str(out),
        "seed": manifest["seed"],
        "num_scenes": manifest["num_scenes"],
        "counts": manifest["counts"],
        "total_bytes": manifest["total_bytes"],
        "files": len(manifest["files"]),
        "seconds": seconds,
    }


def generate(
    out_dir: str | os.PathLike, seed: int = 0, num_scenes: int = 300, *, force: bool = False
) -> dict:
    """Write the sample corpus to ``out_dir``; returns a summary (counts, bytes, seconds).

    A folder already holding this corpus (same seed, scene count and generator version, files
    intact) is left as it is unless ``force``. A folder holding anything else is refused.
    """
    if not MIN_SCENES <= num_scenes <= MAX_SCENES:
        raise ValueError(f"num_scenes must be in [{MIN_SCENES}, {MAX_SCENES}], got {num_scenes}")
    out = Path(out_dir)
    done = None if force else _complete(out, seed, num_scenes)
    if done is not None:
        logger.info(
            "sample corpus already complete in %s (seed %d, %d scenes)", out, seed, num_scenes
        )
        return _summary(out, done, None)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise FileExistsError(f"{out} exists and is not a sample corpus; choose an empty folder")
    start = time.perf_counter()
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        manifest = _write(tmp, seed, num_scenes)
        if out.exists():  # a previous corpus: move it aside, put the new one in place, then delete
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    seconds = time.perf_counter() - start
    c = manifest["counts"]
    logger.info(
        "sample corpus in %s: %d images, %d web pages, %d LAIT candidates (%d kept), "
        "%.1f MB, %.1f s",
        out,
        c["images"],
        c["web_pages"],
        c["lait_candidates"],
        c["lait_kept"],
        manifest["total_bytes"] / 1e6,
        seconds,
    )
    return _summary(out, manifest, round(seconds, 3))


def main(argv: list[str] | None = None) -> int:
    """``msp sample``: parse flags, generate, print where the corpus went."""
    parser = argparse.ArgumentParser(prog="msp sample", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", required=True, help="output folder (created; replaced if a sample corpus)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--num-scenes", type=int, default=300, help="synthetic scenes (default 300)"
    )
    parser.add_argument("--force", action="store_true", help="regenerate even if complete")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    summary = generate(args.out, args.seed, args.num_scenes, force=args.force)
    print(json.dumps(summary, indent=2))
    return 0
