"""MSP ITM-HS hard samples: for every image, its exact top-k most similar images.

    msp pipeline hard-negatives --features SHARDS_DIR --out OUT [--top-k 100]
                                [--metric cosine|euclidean] [--block-size 4096] [--prefix P]

The image vector is the mean of its RoI features (``FeatureSample.mean_feature``), as in the
ViLBERT hard-sample file MSP uses (which ranked by Euclidean distance with a BallTree; cosine is
the default here, ``--metric euclidean`` reproduces that ranking). Neighbours exclude the image
itself and every image with an identical vector under another id (the same picture stored twice;
those are listed in ``duplicates``). Scoring and tie rules: :mod:`pipeline.hn_blocks`.

Steps: ``ReadShards`` -> ``Vectors`` (a sample without RoIs, with non-finite features or, for
cosine, a zero vector is rejected; a key seen twice keeps one sample) -> ``Blocks`` (ids hashed
into ceil(n / block_size) blocks) -> ``BlockPairs`` (every pair of blocks scored with one matrix
product, per-image partial top-k) -> ``MergeTopK`` (a CombinePerKey) -> ``Write``.

Output ``hard_negatives-SSSSS-of-NNNNN.parquet``: ``image_id``, ``neighbours`` (list<string>,
most similar first, at most k; empty for a lone image), ``similarities`` (list<float>: cosine
similarity, or the negated Euclidean distance), ``duplicates`` (list<string>). Accounting: one
input per shard sample; kept = images written.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import math

import apache_beam as beam
import numpy as np
import pyarrow as pa

from corpora.schema import FeatureSample
from pipeline import common
from pipeline.hn_blocks import METRICS, Block, block_of, merge_top_k, pair_top_k
from pipeline.hn_shards import ReadFeatureSamples, feature_shard_paths
from pipeline.text_io import WriteTable, end_job, start_job

logger = logging.getLogger(__name__)

JOB = "hard_negatives"
TABLE = "hard_negatives"
SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("neighbours", pa.list_(pa.string())),
        pa.field("similarities", pa.list_(pa.float32())),
        pa.field("duplicates", pa.list_(pa.string())),
    ]
)


@dataclasses.dataclass
class HardNegativesConfig:
    """Resolved configuration of one hard-negatives run (written as config.json)."""

    features: str
    out: str
    top_k: int = 100
    metric: str = "cosine"
    block_size: int = 4096
    prefix: str | None = None


class _Vectors(beam.DoFn):
    """FeatureSample -> ``(image_id, mean RoI feature float32 [D])``; bad vectors rejected."""

    def __init__(self, namespace: str, metric: str) -> None:
        self.counters = common.Counters(namespace)
        self.metric = metric

    def process(self, sample: FeatureSample):
        if sample.num_boxes == 0:
            yield common.reject(sample.key, "vector", "sample has no RoIs")
            return
        vector = sample.mean_feature()
        if not np.isfinite(vector).all():
            yield common.reject(sample.key, "vector", "mean feature has non-finite values")
        elif self.metric == "cosine" and not np.any(vector):
            yield common.reject(sample.key, "vector", "zero mean feature: cosine undefined")
        else:
            yield sample.key, vector


class _OnePerKey(beam.DoFn):
    """One vector per image id: repeats of a key are rejected (the smallest digest is kept)."""

    def process(self, element):
        key, vectors = element
        ordered = sorted(vectors, key=lambda v: hashlib.sha256(v.tobytes()).digest())
        for _ in ordered[1:]:
            yield common.reject(key, "vector", "image id appears more than once in the shards")
        yield key, ordered[0]


class _FanOut(beam.DoFn):
    """A block -> ``((i, j), block)`` for every pair of blocks it belongs to (i <= j)."""

    def process(self, block: Block, n_blocks: int):
        for other in range(n_blocks):
            yield (min(block.index, other), max(block.index, other)), block


class _ScorePair(beam.DoFn):
    def __init__(self, metric: str, k: int) -> None:
        self.metric = metric
        self.k = k

    def process(self, element):
        (i, j), blocks = element
        by_index = {b.index: b for b in blocks}
        if i == j:
            yield from pair_top_k(by_index[i], by_index[i], self.metric, self.k)
        elif i in by_index and j in by_index:  # a pair with an empty block has nothing to score
            yield from pair_top_k(by_index[i], by_index[j], self.metric, self.k)


class TopKCombineFn(beam.CombineFn):
    """Merge partial ``[(score, id)]`` lists into the best ``k`` (score desc, id asc)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def create_accumulator(self):
        return []

    def add_input(self, acc, partial):
        return merge_top_k([acc, partial], self.k)

    def merge_accumulators(self, accs):
        return merge_top_k(accs, self.k)

    def extract_output(self, acc):
        return acc


class _Duplicates(beam.DoFn):
    """A group of ids with one identical vector -> ``(id, the other ids)``."""

    def process(self, element):
        _, ids = element
        ids = sorted(ids)
        for image_id in ids:
            yield image_id, [other for other in ids if other != image_id]


class _Row(beam.DoFn):
    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, element):
        image_id, grouped = element
        top = next(iter(grouped["top"]))
        dups = next(iter(grouped["duplicates"]), [])
        self.counters.inc("kept")
        yield {
            "image_id": image_id,
            "neighbours": [n for _, n in top],
            "similarities": [s for s, _ in top],
            "duplicates": dups,
        }


class ExactTopK(beam.PTransform):
    """``(image_id, vector)`` -> ``(image_id, [(score, neighbour id)])`` exact top-k, blocked."""

    def __init__(self, metric: str, k: int, block_size: int) -> None:
        super().__init__()
        self.metric, self.k, self.block_size = metric, k, block_size

    def expand(self, vectors):
        size = self.block_size
        n_blocks = (
            vectors
            | "CountImages" >> beam.combiners.Count.Globally()
            | "NumBlocks" >> beam.Map(lambda n: max(1, math.ceil(n / size)))
        )
        n_side = beam.pvalue.AsSingleton(n_blocks)
        blocks = (
            vectors
            | "AssignBlocks" >> beam.Map(lambda kv, n: (block_of(kv[0], n), kv), n=n_side)
            | "GroupBlocks" >> beam.GroupByKey()
            | "MakeBlocks" >> beam.MapTuple(Block.build)
        )
        return (
            blocks
            | "FanOut" >> beam.ParDo(_FanOut(), n_blocks=n_side)
            | "GroupPairs" >> beam.GroupByKey()
            | "ScorePairs" >> beam.ParDo(_ScorePair(self.metric, self.k))
            | "MergeTopK" >> beam.CombinePerKey(TopKCombineFn(self.k))
        )


def build(p: beam.Pipeline, cfg: HardNegativesConfig) -> None:
    """Add the hard-negatives job to ``p``."""
    read = p | "ReadShards" >> ReadFeatureSamples(
        feature_shard_paths(cfg.features, cfg.prefix), JOB
    )
    vectors = read.samples | "Vectors" >> beam.ParDo(_Vectors(JOB, cfg.metric)).with_outputs(
        common.REJECTS, main="vectors"
    )
    unique = (
        vectors.vectors
        | "GroupById" >> beam.GroupByKey()
        | "OnePerId" >> beam.ParDo(_OnePerKey()).with_outputs(common.REJECTS, main="vectors")
    )
    top = unique.vectors | "TopK" >> ExactTopK(cfg.metric, cfg.top_k, cfg.block_size)
    duplicates = (
        unique.vectors
        | "ByContent" >> beam.MapTuple(lambda k, v: (hashlib.sha256(v.tobytes()).hexdigest(), k))
        | "GroupContent" >> beam.GroupByKey()
        | "Duplicates" >> beam.ParDo(_Duplicates())
    )
    _ = (
        {"top": top, "duplicates": duplicates}
        | "JoinDuplicates" >> beam.CoGroupByKey()
        | "Rows" >> beam.ParDo(_Row(JOB))
        | "Write" >> WriteTable(cfg.out, TABLE, SCHEMA)
    )
    _ = (
        (read.rejects, vectors.rejects, unique.rejects)
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
    parser.add_argument("--top-k", type=int, default=100, help="neighbours per image")
    parser.add_argument("--metric", choices=METRICS, default="cosine")
    parser.add_argument("--block-size", type=int, default=4096, help="images per scored block")
    parser.add_argument("--prefix", help="feature shard prefix (default: every complete shard)")
    args, options = common.parse_args(parser, argv)
    if args.top_k < 1 or args.block_size < 1:
        parser.error("--top-k and --block-size must be positive")
    cfg = HardNegativesConfig(
        features=args.features, out=args.out, top_k=args.top_k, metric=args.metric,
        block_size=args.block_size, prefix=args.prefix,
    )  # fmt: skip
    try:  # fail before touching the output folder
        feature_shard_paths(cfg.features, cfg.prefix)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    job = start_job(cfg.out, JOB, cfg, args.force, (TABLE,))
    if job is None:
        return 0
    p = beam.Pipeline(options=options)
    build(p, cfg)
    end_job(job, p.run(), (TABLE,), extra={"similarity": _meaning(cfg.metric)})
    return 0


def _meaning(metric: str) -> str:
    return "cosine similarity" if metric == "cosine" else "negated euclidean distance"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(run())
