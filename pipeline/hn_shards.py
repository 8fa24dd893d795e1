"""Feature shards as a Beam source: shard paths in, validated :class:`FeatureSample` out.

Used by the token-labels job (:class:`ReadFeatureSamples`: detector labels) and the
hard-negatives job (:class:`ShardVectors`: one vector per image, written beside the output as a
float32 ``.npy`` per shard, passed on as a :class:`pipeline.hn_store.Segment`). Accounting unit:
one sample (image). A sample that does not follow the schema is rejected at the step ``read``; a
shard that cannot be read past some point adds one rejected input for the rest of it (its unread
samples cannot be counted); a sample without a usable vector is rejected at the step ``vector``.

The vector of an image (``vector``): ``mean-roi``, the mean of its RoI features (what the
reference hard-sample file used), or the name of another vector of the sample: a member
``<name>.npy`` (a 1-d vector, or a 2-d array whose rows are averaged: ``features`` gives the same
as ``mean-roi``) or else an ``info.json`` field holding a list of numbers. The picture's content
hash, when the sample has one, is ``info["content_sha256"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np

from corpora import shards
from corpora.schema import FeatureSample, SchemaError, npy_load
from pipeline import common
from pipeline.hn_store import Segment, write_npy

logger = logging.getLogger(__name__)


def feature_shard_paths(features_dir: str | Path, prefix: str | None = None) -> list[str]:
    """Complete shards (those with a sidecar) in ``features_dir``: of ``prefix``, or all."""
    if prefix:
        paths = shards.shard_urls(features_dir, prefix)
    else:
        folder = Path(features_dir)
        paths = sorted(str(p) for p in folder.glob("*.tar") if p.with_suffix(".json").exists())
    if not paths:
        raise FileNotFoundError(f"no complete feature shards in {features_dir}")
    return paths


def _read_shard(path: str, counters: common.Counters) -> Iterator[Any]:
    """``(raw sample, FeatureSample)`` per readable sample of a shard, or a reject record."""
    samples = shards.iter_raw([path])
    index = 0
    while True:
        try:
            raw = next(samples)
        except StopIteration:
            return
        except Exception as exc:  # a truncated or corrupt tar: the rest is unreadable
            counters.inc("inputs")
            reason = f"shard unreadable after {index} samples: {type(exc).__name__}: {exc}"
            yield common.reject(f"{Path(path).name}#{index}", "read", reason)
            return
        index += 1
        counters.inc("inputs")
        try:
            yield raw, FeatureSample.from_wds(raw)
        except SchemaError as exc:
            yield common.reject(raw.get("__key__", f"{Path(path).name}#{index}"), "read", exc)


class _ReadShard(beam.DoFn):
    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, path: str):
        for item in _read_shard(path, self.counters):
            yield item[1] if isinstance(item, tuple) else item


def sample_vector(
    sample: FeatureSample, raw: dict[str, Any], vector: str, metric: str
) -> np.ndarray | str:
    """The image vector (float32 [D]) named by ``vector``, or why the sample has none."""
    if vector == "mean-roi":
        if sample.num_boxes == 0:
            return "sample has no RoIs"
        value = sample.mean_feature()
    else:
        if f"{vector}.npy" in raw:
            array = npy_load(raw[f"{vector}.npy"])
        elif vector in sample.info:
            array = np.asarray(sample.info[vector])
        else:
            return f"sample has no vector {vector!r} (no {vector}.npy member or info field)"
        if array.ndim == 2 and array.shape[0]:
            array = array.astype(np.float32).mean(axis=0)
        if array.ndim != 1 or not array.size or not np.issubdtype(array.dtype, np.number):
            return f"vector {vector!r} is not a non-empty numeric vector (shape {array.shape})"
        value = array.astype(np.float32)
    if not np.isfinite(value).all():
        return f"vector {vector!r} has non-finite values"
    if metric == "cosine" and not np.any(value):
        return "zero vector: cosine undefined"
    return value


class _ShardVectors(beam.DoFn):
    """Shard path -> a Segment of its vectors (written as ``<work_dir>/vectors-<shard>.npy``)."""

    def __init__(self, namespace: str, work_dir: str, vector: str, metric: str) -> None:
        self.counters = common.Counters(namespace)
        self.work_dir, self.vector, self.metric = work_dir, vector, metric

    def process(self, path: str):
        ids, vectors, hashes = [], [], []
        for item in _read_shard(path, self.counters):
            if not isinstance(item, tuple):
                yield item
                continue
            raw, sample = item
            value = sample_vector(sample, raw, self.vector, self.metric)
            if isinstance(value, np.ndarray) and vectors and value.shape != vectors[0].shape:
                value = f"vector length {value.size} differs from {vectors[0].size} in this shard"
            if isinstance(value, str):
                yield common.reject(sample.key, "vector", value)
                continue
            ids.append(sample.key)
            vectors.append(value)
            content = sample.info.get("content_sha256")
            hashes.append(str(content) if content else None)
        if ids:
            target = Path(self.work_dir) / f"vectors-{Path(path).stem}.npy"
            write_npy(target, np.stack(vectors))
            yield Segment(str(target), 0, len(ids), ids, hashes)


class ReadFeatureSamples(beam.PTransform):
    """Shard paths -> ``FeatureSample`` (main output ``samples``) and rejects."""

    def __init__(self, paths: list[str], namespace: str) -> None:
        super().__init__()
        self.paths = list(paths)
        self.namespace = namespace

    def expand(self, pbegin):
        return (
            pbegin
            | "ShardPaths" >> beam.Create(self.paths)
            | "SpreadShards" >> beam.Reshuffle()
            | "ReadShards"
            >> beam.ParDo(_ReadShard(self.namespace)).with_outputs(common.REJECTS, main="samples")
        )


class ShardVectors(beam.PTransform):
    """Shard paths -> one :class:`pipeline.hn_store.Segment` per shard (main output
    ``segments``) and rejects; the vectors go to ``work_dir``, a folder every worker sees."""

    def __init__(
        self, paths: list[str], namespace: str, work_dir: str, vector: str, metric: str
    ) -> None:
        super().__init__()
        self.paths = list(paths)
        self.namespace, self.work_dir, self.vector, self.metric = (
            namespace,
            work_dir,
            vector,
            metric,
        )

    def expand(self, pbegin):
        return (
            pbegin
            | "ShardPaths" >> beam.Create(self.paths)
            | "SpreadShards" >> beam.Reshuffle()
            | "ShardVectors"
            >> beam.ParDo(
                _ShardVectors(self.namespace, self.work_dir, self.vector, self.metric)
            ).with_outputs(common.REJECTS, main="segments")
        )
