"""Sharing one extraction job among machines or GPUs, and writing shards that survive a kill.

``--num-workers N --worker-index I``: worker ``I`` takes the inputs whose key hashes to ``I``
(:func:`worker_of`: sha1 of the key, mod N), so the split is deterministic, needs no
coordination, and sends every copy of a duplicated key to the same worker (which rejects all but
the first). All workers write into the same folder:

* shards: worker ``I`` numbers its shards ``I, I + N, I + 2N, ...`` above every shard already
  there (:class:`WorkerShardWriter`), so names never collide and readers see one shard set
  (``features-NNNNNN.tar`` + sidecar, the layout of :mod:`corpora.shards`);
* job records: ``workers/IIII-of-NNNN/{config,manifest}.json`` and ``rejects.jsonl`` per worker;
  :func:`merge_manifests` (run by whichever worker finishes last, or by
  ``msp extract merge-manifests DIR``) writes the job's ``manifest.json``, ``config.json`` and
  ``rejects.jsonl`` once every worker's manifest is there.

A shard is written under ``.tar.tmp``, fsynced, renamed, and only then gets its sidecar, the
"done" marker; a worker killed at any point leaves at most its current ``.tmp`` (removed when it
restarts) and a rerun skips exactly the keys of complete shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import webdataset as wds

from corpora import jobio
from corpora.shards import completed_keys, completed_shards, shard_name, shard_sidecar
from extract.labels import NUM_ATTRIBUTES, NUM_OBJECTS, load_vocab, placeholder_vocab, top_labels

logger = logging.getLogger(__name__)

WORKERS_DIR = "workers"
_SHARD_RE = re.compile(r"-(\d{6})\.tar(\.tmp)?$")


@dataclass(frozen=True)
class WorkerSpec:
    """Worker ``index`` of ``count`` (``count == 1``: the whole job)."""

    count: int = 1
    index: int = 0

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                f"--worker-index must be in [0, --num-workers), got {self.index} of {self.count}"
            )

    def owns(self, key: str) -> bool:
        return self.count == 1 or worker_of(key, self.count) == self.index

    def records_dir(self, out: str | os.PathLike) -> Path:
        """Where this worker writes config, manifest and rejects."""
        out = Path(out)
        if self.count == 1:
            return out
        return out / WORKERS_DIR / f"{self.index:04d}-of-{self.count:04d}"


def worker_of(key: str, count: int) -> int:
    """The worker (0..count-1) that owns ``key``: first 8 bytes of sha1(key) mod count."""
    digest = hashlib.sha1(str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def _member_index(path: Path) -> dict[str, dict[str, list[int]]]:
    """key -> member suffix -> [offset, size] inside the tar (the sidecar's ``members``)."""
    index: dict[str, dict[str, list[int]]] = {}
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            if info.isfile():
                key, _, suffix = os.path.basename(info.name).partition(".")
                index.setdefault(key, {})[suffix] = [info.offset_data, info.size]
    return index


def _shard_index(path: Path) -> int | None:
    match = _SHARD_RE.search(path.name)
    return int(match[1]) if match else None


class WorkerShardWriter:
    """Atomic numbered shards for one worker (see the module docstring). Context manager;
    ``write(sample)`` takes a WebDataset sample dict; ``skip_keys`` are the keys of every
    complete shard in the folder; ``written`` lists the shards this writer completed."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        prefix: str,
        *,
        maxcount: int = 1000,
        worker: WorkerSpec = WorkerSpec(),
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix, self.maxcount, self.worker = prefix, maxcount, worker
        self._remove_own_leftovers()
        done = [_shard_index(p) for p in completed_shards(self.out_dir, prefix)]
        top = max((i for i in done if i is not None), default=-1)
        step = worker.count
        self.next_index = top + 1 + (worker.index - (top + 1)) % step
        self.skip_keys = completed_keys(self.out_dir, prefix)
        self.written: list[Path] = []
        self._tar: wds.TarWriter | None = None
        self._tmp: Path | None = None
        self._keys: list[str] = []

    def _remove_own_leftovers(self) -> None:
        """Delete this worker's ``.tmp`` files and tars without a sidecar (a killed run's)."""
        pattern = f"{self.prefix}-[0-9]*.tar*"
        for path in self.out_dir.glob(pattern):
            index = _shard_index(path)
            if index is None or index % self.worker.count != self.worker.index:
                continue
            if path.name.endswith(".tmp") or not path.with_suffix(".json").exists():
                logger.info("removing %s left by an interrupted run", path.name)
                path.unlink(missing_ok=True)

    def __enter__(self) -> WorkerShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        if self._tar is not None:  # leave no half-written shard behind
            self._tar.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def write(self, sample: dict[str, Any]) -> None:
        if self._tar is None:
            final = self.out_dir / shard_name(self.prefix, self.next_index)
            self._tmp = final.with_name(final.name + ".tmp")
            self._tar = wds.TarWriter(str(self._tmp))
        self._tar.write(sample)
        self._keys.append(sample["__key__"])
        if len(self._keys) >= self.maxcount:
            self._finish()

    def _finish(self) -> None:
        if self._tar is None or self._tmp is None:
            return
        self._tar.close()
        fd = os.open(self._tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.out_dir / shard_name(self.prefix, self.next_index)
        os.replace(self._tmp, final)
        sidecar = shard_sidecar(final.name, self._keys, _member_index(final))
        jobio.atomic_write_text(final.with_suffix(".json"), json.dumps(sidecar))
        self.written.append(final)
        self._tar, self._tmp, self._keys = None, None, []
        self.next_index += self.worker.count

    def close(self) -> None:
        self._finish()


def _sum_counts(into: dict, add: dict) -> None:
    for key, value in add.items():
        if isinstance(value, dict):
            _sum_counts(into.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value


def _complete_set(out: Path) -> tuple[int, list[Path]] | None:
    """The worker count whose every worker has a manifest (the newest such set), or None."""
    sets: dict[int, list[Path]] = {}
    for path in (out / WORKERS_DIR).glob("*-of-*/manifest.json"):
        count = int(path.parent.name.split("-of-")[1])
        sets.setdefault(count, []).append(path)
    complete = [(n, sorted(p)) for n, p in sets.items() if len({q.parent for q in p}) == n]
    if not complete:
        return None
    return max(complete, key=lambda item: max(p.stat().st_mtime for p in item[1]))


def _names(config: dict) -> tuple[list[str], list[str]]:
    """Object and attribute display names from the run's vocab files, or placeholders."""
    objects, attributes = config.get("objects_vocab"), config.get("attributes_vocab")
    if objects and attributes and Path(objects).is_file() and Path(attributes).is_file():
        return load_vocab(objects, NUM_OBJECTS), load_vocab(attributes, NUM_ATTRIBUTES)
    return placeholder_vocab("object", NUM_OBJECTS), placeholder_vocab("attribute", NUM_ATTRIBUTES)


def merge_manifests(out: str | os.PathLike, prefix: str = "features") -> dict[str, Any] | None:
    """Merge the per-worker records under ``out/workers/`` into the job's ``manifest.json``,
    ``config.json`` and ``rejects.jsonl``; returns the manifest, or None (logged) while some
    worker has not finished. Raises ValueError if the workers used different settings."""
    out = Path(out)
    found = _complete_set(out)
    if found is None:
        done = len(list((out / WORKERS_DIR).glob("*-of-*/manifest.json")))
        logger.info("%s: %d worker manifests so far; merge when all are done", out, done)
        return None
    count, paths = found
    manifests = [json.loads(p.read_text()) for p in paths]
    configs = [json.loads((p.parent / "config.json").read_text()) for p in paths]
    prints = {json.dumps(c.get("fingerprint"), sort_keys=True) for c in configs}
    if len(prints) != 1:
        raise ValueError(f"{out}: workers ran with different settings: {sorted(prints)}")
    rejects = []
    for path in paths:
        lines = (path.parent / "rejects.jsonl").read_text().splitlines()
        rejects += [json.loads(line) for line in lines if line.strip()]
    steps: dict[str, Any] = {}
    objects: Counter = Counter()
    attributes: Counter = Counter()
    for m in manifests:
        _sum_counts(steps, m.get("steps", {}))
        objects.update({int(k): v for k, v in m.get("object_counts", {}).items()})
        attributes.update({int(k): v for k, v in m.get("attribute_counts", {}).items()})
    first = manifests[0]
    shared = {k: v for k, v in first.items() if k not in _PER_WORKER}
    names = _names(configs[0])
    shards = completed_shards(out, prefix)
    extra = {
        **shared,
        "workers": [
            {k: m.get(k) for k in ("worker_index", "inputs", "kept", "rejected", "seconds")}
            for m in manifests
        ],
        "top_objects": top_labels(objects, names[0]),
        "top_attributes": top_labels(attributes, names[1]),
        "object_counts": {str(k): v for k, v in sorted(objects.items())},
        "attribute_counts": {str(k): v for k, v in sorted(attributes.items())},
        "shards": [p.name for p in shards],
        "keys_in_shards": len(completed_keys(out, prefix)),
    }
    jobio.write_rejects(out, rejects)
    config = dict(configs[0], worker_index=None, merged_from=[str(p.parent.name) for p in paths])
    jobio.write_config(out, config)
    jobio.write_manifest(
        out,
        first["job"],
        inputs=sum(m["inputs"] for m in manifests),
        kept=sum(m["kept"] for m in manifests),
        rejected=sum(m["rejected"] for m in manifests),
        steps=steps,
        outputs=[*shards, out / "rejects.jsonl"],
        seconds=max((m.get("seconds") or 0.0) for m in manifests),
        warnings=sorted({w for m in manifests for w in m.get("warnings", [])}),
        extra=extra,
    )
    logger.info("%s: merged the manifests of %d workers", out, count)
    return json.loads((out / "manifest.json").read_text())


_PER_WORKER = {
    "job",
    "inputs",
    "kept",
    "rejected",
    "steps",
    "outputs",
    "seconds",
    "warnings",
    "created",
    "worker_index",
    "object_counts",
    "attribute_counts",
    "shards",
    "timing_s",
    "model_seconds_per_image",
    "top_objects",
    "top_attributes",
    "roi_dedup",
}
