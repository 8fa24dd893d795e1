"""Random access by image key, and streaming, over a folder of feature shards.

The shards' sidecars (:mod:`corpora.shards`) give every member's byte offset, so
``FeatureStore(folder)[key]`` is one seek per member; :meth:`FeatureStore.samples` streams the
shards in order with webdataset. Both return validated :class:`corpora.schema.FeatureSample`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from corpora.schema import FeatureSample
from corpora.shards import ShardIndex, iter_raw, shard_urls

PREFIX = "features"


class FeatureStore:
    """The complete feature shards of ``folder`` (prefix ``features``), by key or in order."""

    def __init__(self, folder: str | os.PathLike, prefix: str = PREFIX) -> None:
        self.folder = folder
        self.prefix = prefix
        self._index = ShardIndex(folder, prefix)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._index

    def keys(self) -> list[str]:
        """Every key, in shard order."""
        return self._index.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __getitem__(self, key: str) -> FeatureSample:
        """The sample of ``key``; KeyError names a missing key."""
        return FeatureSample.from_wds(self._index.get(key))

    def get(self, key: str, default: FeatureSample | None = None) -> FeatureSample | None:
        """The sample of ``key``, or ``default`` when the shards do not hold it."""
        if key not in self._index:
            return default
        return self[key]

    def samples(self) -> Iterator[FeatureSample]:
        """Every sample, streamed shard by shard."""
        for raw in iter_raw(shard_urls(self.folder, self.prefix)):
            yield FeatureSample.from_wds(raw)
