"""Feature shards as a Beam source: shard paths in, validated :class:`FeatureSample` out.

Used by the token-labels job (detector labels) and the hard-negatives job (mean RoI features).
Accounting unit: one sample (image). A sample that does not follow the schema is rejected at the
step ``read``; a shard that cannot be read past some point adds one rejected input for the rest
of it (its unread samples cannot be counted).
"""

from __future__ import annotations

import logging
from pathlib import Path

import apache_beam as beam

from corpora import shards
from corpora.schema import FeatureSample, SchemaError
from pipeline import common

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


class _ReadShard(beam.DoFn):
    def __init__(self, namespace: str) -> None:
        self.counters = common.Counters(namespace)

    def process(self, path: str):
        samples = shards.iter_raw([path])
        index = 0
        while True:
            try:
                raw = next(samples)
            except StopIteration:
                return
            except Exception as exc:  # a truncated or corrupt tar: the rest is unreadable
                self.counters.inc("inputs")
                reason = f"shard unreadable after {index} samples: {type(exc).__name__}: {exc}"
                yield common.reject(f"{Path(path).name}#{index}", "read", reason)
                return
            index += 1
            self.counters.inc("inputs")
            try:
                yield FeatureSample.from_wds(raw)
            except SchemaError as exc:
                yield common.reject(raw.get("__key__", f"{Path(path).name}#{index}"), "read", exc)


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
