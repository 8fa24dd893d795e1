"""Outputs of the LAIT job: the pairs table and the WebDataset image shards.

``pairs-SSSSS-of-NNNNN.parquet``: one row per kept pair, columns in ``PAIR_SCHEMA`` (the pair,
plus each filter's value: page language probability, DOM features, word count, OOV ratio, the
text's English confidence, image size and format, the image filters' scores (non-photo class
mass, text area and lines, graphic statistic, adult score; null when the filters were off), the
top ImageNet labels (JSON), score, how many images share the description, how many pairs the
image had).

``images-NNNNNN.tar``: WebDataset shards (``corpora.shards`` layout): ``__key__`` = image_id
(sha256 of the image bytes), one image member (``jpg``/``png``/``webp``: the bytes as found, or
normalised as ``pipeline.lait_images`` explains) and a ``json`` member holding the pair's row.
Shard numbering is deterministic and contiguous without a driver-side list: image ids are
bucketed by their first two hex digits, bucket sizes become a small side input, each bucket
sorts its ids and turns them into global ranks, and ``rank // shard_size`` is the shard. Each
shard is written by one worker under a temporary name, renamed when complete, then given its
``.json`` sidecar (keys, member offsets: the "done" marker that ``corpora.shards`` readers
use). A retried write produces the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from corpora.shards import shard_sidecar, tar_bytes
from pipeline.common import Counters
from pipeline.lait_config import JOB

IMAGE_PREFIX = "images"
PAIR_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("caption", pa.string()),
        ("score", pa.float64()),
        ("relevance", pa.float64()),
        ("text_prior", pa.float64()),
        ("image_url", pa.string()),
        ("page_url", pa.string()),
        ("text_source", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("input_id", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("lang_prob", pa.float64()),
        ("charset", pa.string()),
        ("url_from", pa.string()),
        ("declared_w", pa.int32()),
        ("declared_h", pa.int32()),
        ("in_figure", pa.bool_()),
        ("word_count", pa.int32()),
        ("oov_ratio", pa.float64()),
        ("text_en", pa.float64()),
        ("texts_failed", pa.string()),
        ("image_format", pa.string()),
        ("image_mode", pa.string()),
        ("image_ext", pa.string()),
        ("image_bytes", pa.int64()),
        ("image_origin", pa.string()),
        ("normalized", pa.string()),
        ("frames", pa.int32()),
        ("nonphoto_mass", pa.float64()),
        ("text_area", pa.float64()),
        ("text_lines", pa.int32()),
        ("graphic", pa.float64()),
        ("adult_image", pa.float64()),
        ("imagenet_top", pa.string()),
        ("scorer", pa.string()),
        ("shared_count", pa.int32()),
        ("n_pairs", pa.int32()),
    ]
)


def to_row(pair: dict[str, Any]) -> dict[str, Any]:
    """A kept pair -> a row of ``PAIR_SCHEMA`` (JSON-serialisable)."""
    dom = pair.get("dom") or {}
    row = {name: pair.get(name) for name in PAIR_SCHEMA.names}
    for key in ("url_from", "declared_w", "declared_h", "in_figure"):
        row[key] = dom.get(key)
    row["texts_failed"] = json.dumps(pair.get("texts_failed") or {}, sort_keys=True)
    row["imagenet_top"] = json.dumps(pair.get("imagenet_top") or [])
    return row


class WritePairs(beam.PTransform):
    """Kept pairs -> ``pairs-*.parquet`` in ``out_dir``."""

    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.out_dir = out_dir

    def expand(self, pairs):
        return (
            pairs
            | "ToRows" >> beam.Map(to_row)
            | "WriteParquet"
            >> beam.io.WriteToParquet(
                FileSystems.join(self.out_dir, "pairs"),
                PAIR_SCHEMA,
                file_name_suffix=".parquet",
                shard_name_template="-SSSSS-of-NNNNN",
            )
        )


def _atomic_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with FileSystems.create(tmp) as fh:
        fh.write(data)
    FileSystems.rename([tmp], [path])


class RankFn(beam.DoFn):
    """(bucket, ids) + bucket sizes -> (id, shard index), ranks contiguous across buckets."""

    def __init__(self, shard_size: int) -> None:
        self.shard_size = shard_size

    def process(self, item: tuple[str, Iterable[str]], sizes: dict[str, int]) -> Iterator[Any]:
        bucket, ids = item
        offset = sum(n for b, n in sizes.items() if b < bucket)
        for i, image_id in enumerate(sorted(ids)):
            yield image_id, (offset + i) // self.shard_size


class WriteShardFn(beam.DoFn):
    """(shard index, samples) -> ``images-NNNNNN.tar`` + ``.json`` sidecar; yields its record."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.counters = Counters(JOB)

    def process(self, item: tuple[int, Iterable[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
        index, samples = item
        ordered = sorted(samples, key=lambda s: s["__key__"])
        data, members = tar_bytes(ordered)
        name = f"{IMAGE_PREFIX}-{index:06d}.tar"
        path = FileSystems.join(self.out_dir, name)
        _atomic_write(path, data)
        keys = [s["__key__"] for s in ordered]
        sidecar = shard_sidecar(name, keys, members)
        _atomic_write(path[: -len(".tar")] + ".json", json.dumps(sidecar).encode())
        self.counters.inc("shards.write")
        self.counters.inc("images.write", len(keys))
        yield {"shard": name, "count": len(keys), "bytes": len(data)}


def _sample(item: tuple[str, dict[str, list[Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    image_id, grouped = item
    pairs, payloads = list(grouped["pairs"]), list(grouped["payloads"])
    if pairs:  # else: bytes of an image whose pairs were all rejected
        if not payloads:
            raise RuntimeError(f"kept image {image_id} has no stored bytes")
        payload = payloads[0]
        meta = json.dumps(to_row(pairs[0]), sort_keys=True).encode()
        yield image_id, {"__key__": image_id, payload["ext"]: payload["data"], "json": meta}


class WriteImageShards(beam.PTransform):
    """(kept pairs, payloads) -> image shards in ``out_dir``; returns the shard records."""

    def __init__(self, out_dir: str, shard_size: int) -> None:
        super().__init__()
        self.out_dir, self.shard_size = out_dir, shard_size

    def expand(self, inputs: tuple[Any, Any]):
        pairs, payloads = inputs
        keyed = pairs | "KeyById" >> beam.Map(lambda p: (p["image_id"], p))
        samples = (
            {"pairs": keyed, "payloads": payloads}
            | "JoinBytes" >> beam.CoGroupByKey()
            | "Samples" >> beam.FlatMap(_sample)
        )
        buckets = samples | "Bucket" >> beam.MapTuple(lambda image_id, _: (image_id[:2], image_id))
        sizes = buckets | "BucketSizes" >> beam.combiners.Count.PerKey()
        shard_of = (
            buckets
            | "GroupBuckets" >> beam.GroupByKey()
            | "Rank" >> beam.ParDo(RankFn(self.shard_size), sizes=beam.pvalue.AsDict(sizes))
        )
        return (
            {"shard": shard_of, "sample": samples}
            | "JoinShard" >> beam.CoGroupByKey()
            | "ByShard"
            >> beam.MapTuple(lambda _, g: (next(iter(g["shard"])), next(iter(g["sample"]))))
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(WriteShardFn(self.out_dir))
        )
