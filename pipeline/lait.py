"""``msp pipeline lait``: a LAIT-style filtered web image-text corpus (ImageBERT, section 3).

Usage::

    msp pipeline lait --input GLOB_OR_FOLDER [--input ...] --out OUT [--min-side 300]
        [--max-shared 5] [--url-map http://host/=DIR/web/] [--max-graphic 0.6]
        [--max-nonphoto 0.5] [--max-text-area 0.08] [--max-adult 0.6] [--scorer labels]
        [--force] [Beam options]

``--input`` takes WARC files (``.warc``, ``.warc.gz``), saved HTML pages (``.html``) and
caption TSV files (``caption<TAB>image path or URL``), as globs or folders (every such file
below it). Images come from the WARC when it holds them, else through the fetcher: ``--url-map
PREFIX=FOLDER`` serves a URL space from a folder (saved pages inside it get their URLs from it
too), ``file://`` images are read under the inputs' folders, the network only with
``--allow-network``.

Steps (one module each, wired here): read (``lait_read``) -> pages (``lait_pages``, rule for
dominant images in ``lait_dom``) -> text (``lait_text``) -> images (``lait_images``, bytes from
the WARC or ``lait_fetch``) -> filters (``lait_filters``: non-natural and adult images, models in
``lait_models``) -> score (``lait_score``, relevance models in ``lait_relevance``) -> aggregate
(``lait_aggregate``) -> outputs (``lait_write``).

Models (all shipped in PyPI packages, each replaceable by a local path; see ``--help``):
EfficientNet-lite0 (ImageNet classes), rapidocr's text detector, NudeNet, MiniLM. They load once
per worker; ``--model-threads`` (default 1) sets each one's threads, so parallelism comes from
the runner's workers (``--direct_num_workers``, or a cluster's).

Drawn inputs: the non-natural filter rejects clip art, as ImageBERT's does. A corpus of drawings
on purpose (the embedded sample corpus is one) turns off the two cues that see drawings with
``--max-graphic 1 --max-nonphoto 1``; text images and adult images are still rejected.

**Unit of accounting.** One input is one *candidate*: a distinct (page URL, image URL) pair
found on a page (every ``<img>`` with a usable URL, dominant or not), or one TSV line. A page
that yields no candidate (no image URL in it, or a truncated or damaged WARC record that held
it) is itself one input, rejected at step ``pages``. WARC records that hold no page (requests,
revisits, metadata, non-200 responses, images, CSS...) and files of other kinds (the images
beside saved pages) are not inputs; they are counted as ``skipped_*.read``.
Every input ends either kept (the one best pair of an image, in the outputs) or rejected once
(``rejects-*.jsonl``: ``input_id`` = ``"<page_url> <image_url>"`` for candidates, the page URL
or ``file:line`` otherwise; ``step``; ``reason``), so ``inputs == kept + rejected`` exactly;
``finish_job`` refuses to write the manifest otherwise.

Outputs in ``--out``: ``pairs-*.parquet``, ``images-NNNNNN.tar`` (+ ``.json`` sidecars),
``rejects-*.jsonl``, ``manifest.json`` (counts per step from Beam Metrics) and ``config.json``.
A rerun with the same config on a complete output skips; ``--force`` redoes it.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import time
from pathlib import Path

import apache_beam as beam

from pipeline import common
from pipeline.lait_aggregate import LaitAggregate
from pipeline.lait_config import JOB, LaitConfig, add_arguments, from_args
from pipeline.lait_filters import LaitImageFilters
from pipeline.lait_images import LaitImages
from pipeline.lait_pages import LaitPages
from pipeline.lait_read import BODIES, PAGES, ROWS, ReadLaitInputs
from pipeline.lait_score import LaitScore
from pipeline.lait_text import LaitText
from pipeline.lait_write import IMAGE_PREFIX, WriteImageShards, WritePairs

logger = logging.getLogger(__name__)

OUTPUT_PATTERNS = ("pairs-*.parquet", f"{IMAGE_PREFIX}-*.tar", f"{IMAGE_PREFIX}-*.json",
                   "rejects-*.jsonl", "*.tmp")  # fmt: skip


def default_local_roots(patterns: list[str]) -> list[str]:
    """Folders ``file://`` images may be read from: an input folder itself, or the parent of
    the folder a file glob names (pages in ``site/html/`` show ``../img/`` files)."""
    roots = []
    for pattern in patterns:
        if "://" in pattern:
            continue
        if os.path.isdir(pattern):
            roots.append(str(Path(pattern).resolve()))
            continue
        fixed = pattern[: min((pattern.find(c) for c in "*?[" if c in pattern), default=None)]
        roots.append(str(Path(os.path.dirname(fixed) or ".").resolve().parent))
    return sorted(set(roots))


def resolve_config(args: argparse.Namespace) -> LaitConfig:
    """The job's config from its flags, with defaults that depend on the inputs filled in."""
    config = from_args(args)
    if not config.local_roots:
        config.local_roots = default_local_roots(config.inputs)
    return config


def build(pipeline: beam.Pipeline, config: LaitConfig) -> None:
    """Wire the steps; every step returns its rejects, all written together."""
    out = config.out
    read = pipeline | "Read" >> ReadLaitInputs(config.inputs, config.url_map)
    candidates, page_rejects = {"pages": read[PAGES], "rows": read[ROWS]} | "Pages" >> LaitPages(
        config
    )
    captioned, text_rejects = candidates | "Text" >> LaitText(config)
    pairs, payloads, image_rejects = (captioned, read[BODIES]) | "Images" >> LaitImages(config)
    rejects = [page_rejects, text_rejects, image_rejects]
    if config.image_filters:
        pairs, filter_rejects = (pairs, payloads) | "Filters" >> LaitImageFilters(config)
        rejects.append(filter_rejects)
    scored, score_rejects = (pairs, payloads) | "Score" >> LaitScore(config)
    kept, aggregate_rejects = scored | "Aggregate" >> LaitAggregate(config)
    _ = kept | "WritePairs" >> WritePairs(out)
    _ = (kept, payloads) | "WriteImages" >> WriteImageShards(out, config.shard_size)
    rejects += [score_rejects, aggregate_rejects]
    _ = (
        tuple(rejects)
        | "AllRejects" >> beam.Flatten()
        | "WriteRejects" >> common.WriteRejects(out, JOB)
    )


def model_sources(config: LaitConfig) -> dict[str, str]:
    """Which weights each model step used (the manifest records it)."""
    models: dict[str, str] = {}
    if config.image_filters:
        models["classifier"] = config.classifier_weights or "efficientnet-lite0 (package)"
        models["text_detector"] = config.text_detector_model or "rapidocr PP-OCRv4 det (package)"
        models["adult"] = config.adult_model or "nudenet 320n (package)"
    if config.scorer == "labels":
        models["text_embedder"] = config.text_model or "all-MiniLM-L6-v2 (package)"
    elif config.scorer.startswith("clip:"):
        models["clip"] = config.scorer[len("clip:") :]
    return models


def clear_outputs(out: Path) -> None:
    """Remove a previous run's outputs, the manifest first, so a failed rerun is incomplete."""
    (out / "manifest.json").unlink(missing_ok=True)
    for pattern in OUTPUT_PATTERNS:
        for path in out.glob(pattern):
            path.unlink()


def run(argv: list[str] | None = None) -> int:
    """Entry point of ``msp pipeline lait``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="msp pipeline lait", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args, options = common.parse_args(parser, argv)
    try:
        config = resolve_config(args)
    except ValueError as exc:
        parser.error(str(exc))
    out = Path(config.out)
    if not args.force and common.job_complete(out, config.to_dict()):
        logger.info("lait: %s is complete for this config; skipping (use --force to redo)", out)
        return 0
    missing = [p for p in config.inputs if "://" not in p and not glob.glob(p)]
    if missing:
        parser.error(f"--input matched no file: {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    clear_outputs(out)
    started = time.time()
    pipeline = beam.Pipeline(options=options)
    build(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    shards = sorted(out.glob(f"{IMAGE_PREFIX}-*.tar"))
    manifest = common.finish_job(
        out,
        JOB,
        result,
        config.to_dict(),
        started=started,
        outputs=[*sorted(out.glob("pairs-*.parquet")), *shards],
        extra={
            "image_shards": [p.name for p in shards],
            "scorer": config.scorer,
            "models": model_sources(config),
        },
    )
    logger.info(
        "lait: %d candidates -> %d pairs kept, %d rejected",
        manifest["inputs"],
        manifest["kept"],
        manifest["rejected"],
    )
    return 0
