"""WebDataset shard writing (atomic, resumable) and random access by key.

Shards are ``{prefix}-{index:06d}.tar``. Each shard is written under ``.tmp`` and renamed when
complete, and gets a sidecar ``{prefix}-{index:06d}.json`` (img2dataset's ``_stats.json`` idea)
listing its keys and, for every member, its byte offset and size inside the tar. The sidecar is
written after the rename and doubles as the shard's "done" marker: a rerun treats a shard without
a sidecar as absent. ``ShardIndex`` reads the sidecars to serve ``get(key)`` with one seek.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import webdataset as wds


@dataclass
class ShardRecord:
    path: Path
    keys: list[str]
    size_bytes: int


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}.tar"


def completed_shards(out_dir: str | os.PathLike, prefix: str) -> list[Path]:
    """Shards under ``out_dir`` whose sidecar exists (complete), sorted by index."""
    out = Path(out_dir)
    return sorted(p for p in out.glob(f"{prefix}-[0-9]*.tar") if p.with_suffix(".json").exists())


def completed_keys(out_dir: str | os.PathLike, prefix: str) -> set[str]:
    keys: set[str] = set()
    for shard in completed_shards(out_dir, prefix):
        keys.update(json.loads(shard.with_suffix(".json").read_text())["keys"])
    return keys


def _index_tar(tar: tarfile.TarFile) -> dict[str, dict[str, list[int]]]:
    """key -> member suffix -> [offset, size] of the member data inside the tar."""
    index: dict[str, dict[str, list[int]]] = {}
    for info in tar:
        if not info.isfile():
            continue
        key, _, suffix = os.path.basename(info.name).partition(".")
        index.setdefault(key, {})[suffix] = [info.offset_data, info.size]
    return index


def tar_bytes(samples: list[dict[str, Any]]) -> tuple[bytes, dict[str, dict[str, list[int]]]]:
    """Samples -> (tar bytes, member index), for writers that place whole shards themselves
    (e.g. a Beam DoFn writing shard ``i`` through a filesystem abstraction)."""
    buf = io.BytesIO()
    writer = wds.TarWriter(buf, encoder=False, mtime=0.0)
    for sample in samples:
        writer.write(sample)
    writer.close()  # closes the tar stream only: ``buf`` is not the writer's own
    data = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return data, _index_tar(tar)


def shard_sidecar(name: str, keys: list[str], members: dict[str, Any]) -> dict[str, Any]:
    """The sidecar (``.json`` beside each shard) that marks it complete and indexes it."""
    return {"shard": name, "keys": list(keys), "count": len(keys), "members": members}


class ShardWriter:
    """Write samples into numbered shards atomically; resume after the last complete shard.

    Use as a context manager. ``write(sample)`` takes a WebDataset sample dict (``__key__`` plus
    member name -> bytes). ``skip_keys`` gives the keys already in complete shards so a resumed
    job can filter its input.
    """

    def __init__(self, out_dir: str | os.PathLike, prefix: str, maxcount: int = 1000) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.maxcount = maxcount
        done = completed_shards(self.out_dir, prefix)
        self.next_index = (int(done[-1].stem.rsplit("-", 1)[1]) + 1) if done else 0
        self.skip_keys = completed_keys(self.out_dir, prefix)
        self.records: list[ShardRecord] = []
        self._tar: wds.TarWriter | None = None
        self._keys: list[str] = []
        self._tmp: Path | None = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # leave no half-written shard behind
            if self._tar is not None:
                self._tar.close()
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)

    def write(self, sample: dict[str, Any]) -> None:
        if self._tar is None:
            self._open()
        assert self._tar is not None
        self._tar.write(sample)
        self._keys.append(sample["__key__"])
        if len(self._keys) >= self.maxcount:
            self._finish()

    def _open(self) -> None:
        final = self.out_dir / shard_name(self.prefix, self.next_index)
        self._tmp = final.with_name(final.name + ".tmp")
        self._tar = wds.TarWriter(str(self._tmp))

    def _finish(self) -> None:
        if self._tar is None or self._tmp is None:
            return
        self._tar.close()
        final = self.out_dir / shard_name(self.prefix, self.next_index)
        os.replace(self._tmp, final)
        with tarfile.open(final, "r:") as tar:
            index = _index_tar(tar)
        sidecar = shard_sidecar(final.name, self._keys, index)
        tmp_json = final.with_suffix(".json.tmp")
        tmp_json.write_text(json.dumps(sidecar))
        os.replace(tmp_json, final.with_suffix(".json"))
        self.records.append(ShardRecord(final, list(self._keys), final.stat().st_size))
        self._tar, self._tmp, self._keys = None, None, []
        self.next_index += 1

    def close(self) -> None:
        self._finish()


def shard_urls(out_dir: str | os.PathLike, prefix: str) -> list[str]:
    """Paths of the complete shards, as strings for ``webdataset.WebDataset``."""
    return [str(p) for p in completed_shards(out_dir, prefix)]


def iter_raw(urls: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Stream raw samples (member -> bytes) from shards in order, with webdataset."""
    dataset = wds.WebDataset(list(urls), shardshuffle=False, empty_check=False)
    yield from dataset


class ShardIndex:
    """Random access by key over the complete shards of one prefix in a folder."""

    def __init__(self, out_dir: str | os.PathLike, prefix: str) -> None:
        self._where: dict[str, tuple[Path, dict[str, list[int]]]] = {}
        for shard in completed_shards(out_dir, prefix):
            meta = json.loads(shard.with_suffix(".json").read_text())
            for key, members in meta["members"].items():
                self._where[key] = (shard, members)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def keys(self) -> list[str]:
        return list(self._where)

    def get(self, key: str) -> dict[str, Any]:
        """The raw sample (``__key__`` plus member -> bytes); KeyError names a missing key."""
        try:
            shard, members = self._where[key]
        except KeyError:
            raise KeyError(f"no sample with key {key!r} in this shard set") from None
        sample: dict[str, Any] = {"__key__": key, "__url__": str(shard)}
        with open(shard, "rb") as fh:
            for suffix, (offset, size) in members.items():
                fh.seek(offset)
                sample[suffix] = fh.read(size)
        return sample
