"""MSP ITM-HS hard samples: for every image, its exact top-M most similar images.

    msp pipeline hard-negatives --features SHARDS_DIR --out OUT [--top-k 100]
        [--metric cosine|euclidean] [--vector mean-roi|NAME] [--block-size 4096]
        [--rows-per-file 20000] [--prefix P] [--force] [Beam options]

The vector of an image is the mean of its RoI features (``mean-roi``, as in the ViLBERT
hard-sample file MSP uses, which ranked by Euclidean distance with a BallTree: ``--metric
euclidean`` reproduces that ranking; cosine is the default) or another vector of the sample the
user names (:func:`pipeline.hn_shards.sample_vector`).

For every image the job finds its exact top-M neighbours: never itself, nor an image that is the
same picture under another id (an identical vector, or an equal ``info["content_sha256"]``;
those are listed in ``duplicates``). Ties are broken by image id, so two runs give the same
files. The work is a Beam job (:mod:`pipeline.hn_core`): vectors are cut into blocks, each pair
of blocks is scored with one matrix product and per-image top-M lists are merged by a combine;
memory is bounded by the block size, not by the number of images, and the same job runs on
Flink, Spark or Dataflow by options alone (the output folder must be one all workers see: the
vectors are kept in ``OUT/_vectors`` while the job runs).

Steps: ``ReadShards`` (shards -> one float32 ``.npy`` of vectors per shard; samples that break
the schema, have no RoIs or no usable vector are rejected) -> ``TopK`` -> ``WriteRejects``.

Output ``hard_negatives-SSSSS-of-NNNNN.parquet`` (:mod:`pipeline.hn_write`): ``image_id``,
``neighbours`` (most similar first, at most M), ``similarities`` (cosine similarity, or the
negated Euclidean distance), ``duplicates``; files hold disjoint id ranges, rows sorted by id, so
the trainer can read one image's row by key. Accounting: one input per shard sample; kept =
images written.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from pathlib import Path

import apache_beam as beam

from pipeline import common
from pipeline.hn_blocks import METRICS
from pipeline.hn_core import ExactTopK
from pipeline.hn_shards import ShardVectors, feature_shard_paths
from pipeline.hn_write import TABLE
from pipeline.text_io import end_job, start_job

logger = logging.getLogger(__name__)

JOB = "hard_negatives"
WORK_DIR = "_vectors"


@dataclasses.dataclass
class HardNegativesConfig:
    """Resolved configuration of one hard-negatives run (written as config.json)."""

    features: str
    out: str
    top_k: int = 100
    metric: str = "cosine"
    vector: str = "mean-roi"
    block_size: int = 4096
    rows_per_file: int = 20_000
    prefix: str | None = None


def build(p: beam.Pipeline, cfg: HardNegativesConfig) -> None:
    """Add the hard-negatives job to ``p`` (its vectors go to ``cfg.out/_vectors``)."""
    work_dir = Path(cfg.out) / WORK_DIR
    work_dir.mkdir(parents=True, exist_ok=True)
    paths = feature_shard_paths(cfg.features, cfg.prefix)
    read = p | "ReadShards" >> ShardVectors(paths, JOB, str(work_dir), cfg.vector, cfg.metric)
    top = read.segments | "TopK" >> ExactTopK(
        cfg.out,
        metric=cfg.metric,
        k=cfg.top_k,
        block_size=cfg.block_size,
        rows_per_file=cfg.rows_per_file,
        namespace=JOB,
    )
    _ = (
        (read[common.REJECTS], top[common.REJECTS])
        | "AllRejects" >> beam.Flatten()
        | "WriteRejects" >> common.WriteRejects(cfg.out, JOB)
    )


def run(argv: list[str] | None = None) -> int:
    """Entry point of ``msp pipeline hard-negatives``; returns a process exit code."""
    parser = argparse.ArgumentParser(
        prog="msp pipeline hard-negatives", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--features", required=True, help="folder of feature shards")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--top-k", type=int, default=100, help="neighbours per image (M)")
    parser.add_argument("--metric", choices=METRICS, default="cosine")
    parser.add_argument(
        "--vector", default="mean-roi", help="mean-roi, or the name of a vector of each sample"
    )
    parser.add_argument("--block-size", type=int, default=4096, help="images per scored block")
    parser.add_argument("--rows-per-file", type=int, default=20_000, help="rows per output file")
    parser.add_argument("--prefix", help="feature shard prefix (default: every complete shard)")
    args, options = common.parse_args(parser, argv)
    if min(args.top_k, args.block_size, args.rows_per_file) < 1:
        parser.error("--top-k, --block-size and --rows-per-file must be positive")
    cfg = HardNegativesConfig(
        features=args.features, out=args.out, top_k=args.top_k, metric=args.metric,
        vector=args.vector, block_size=args.block_size, rows_per_file=args.rows_per_file,
        prefix=args.prefix,
    )  # fmt: skip
    try:  # fail before touching the output folder
        feature_shard_paths(cfg.features, cfg.prefix)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    job = start_job(cfg.out, JOB, cfg, args.force, (TABLE,))
    if job is None:
        return 0
    work_dir = Path(cfg.out) / WORK_DIR
    shutil.rmtree(work_dir, ignore_errors=True)  # vectors of an earlier, unfinished attempt
    p = beam.Pipeline(options=options)
    build(p, cfg)
    extra = {"similarity": _meaning(cfg.metric), "vector": cfg.vector}
    end_job(job, p.run(), (TABLE,), extra=extra)
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0


def _meaning(metric: str) -> str:
    return "cosine similarity" if metric == "cosine" else "negated euclidean distance"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run())
