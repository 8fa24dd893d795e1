"""The hard-negatives files: Parquet by ranges of sorted image ids, readable by key.

``<out>/hard_negatives-SSSSS-of-NNNNN.parquet``: file ``S`` holds the images whose rank (position
in the sorted list of all image ids) lies in ``[S * rows_per_file, (S + 1) * rows_per_file)``,
sorted by ``image_id``, so the files cover disjoint, increasing id ranges and a reader finds a key
with the files' and row groups' min/max statistics alone (:func:`read_neighbours`). The content
does not depend on block sizes, runners or worker counts, and a file is written under a unique
temporary name and renamed when complete (a retried write replaces it with the same bytes).

Columns: ``image_id``; ``neighbours`` (list<string>, most similar first, at most k; empty for a
lone image); ``similarities`` (list<float32>: the cosine similarity, or minus the Euclidean
distance); ``duplicates`` (list<string>: the other ids of the same picture, never neighbours).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.hn_blocks import NO_KEY, decode_keys

TABLE = "hard_negatives"
ROW_GROUP_ROWS = 4096  # rows per Parquet row group: the unit a by-key read decodes
SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("neighbours", pa.list_(pa.string())),
        pa.field("similarities", pa.list_(pa.float32())),
        pa.field("duplicates", pa.list_(pa.string())),
    ]
)


def file_path(out_dir: str | Path, shard: int, num_shards: int) -> Path:
    """``<out_dir>/hard_negatives-SSSSS-of-NNNNN.parquet``."""
    return Path(out_dir) / f"{TABLE}-{shard:05d}-of-{num_shards:05d}.parquet"


def num_files(num_images: int, rows_per_file: int) -> int:
    return max(1, -(-num_images // rows_per_file))


def similarities(values: np.ndarray, metric: str) -> np.ndarray:
    """Kernel values (squared distance / minus cosine) -> similarities, float32."""
    values = values.astype(np.float64)
    if metric == "euclidean":
        return (-np.sqrt(np.maximum(values, 0.0))).astype(np.float32)
    return (-values).astype(np.float32)


def duplicate_members(groups: dict[str, str]) -> dict[str, list[str]]:
    """id -> first id of its picture  ->  id -> the picture's other ids (sorted)."""
    members: dict[str, list[str]] = {}
    for image_id, first in groups.items():
        members.setdefault(first, []).append(image_id)
    return {i: sorted(m for m in members[f] if m != i) for i, f in groups.items()}


def _table(
    ids: pa.Array, ranks: np.ndarray, keys: np.ndarray, metric: str, dups: dict[str, list[str]]
) -> pa.Table:
    valid = keys != NO_KEY  # sorted keys: the valid ones are a prefix of each row
    offsets = pa.array(np.concatenate([[0], np.cumsum(valid.sum(axis=1))]).astype(np.int32))
    values, neighbour_ranks = decode_keys(keys[valid])
    image_ids = ids.take(pa.array(ranks))
    duplicates = [dups.get(i, []) for i in image_ids.to_pylist()] if dups else None
    return pa.table(
        {
            "image_id": image_ids,
            "neighbours": pa.ListArray.from_arrays(offsets, ids.take(pa.array(neighbour_ranks))),
            "similarities": pa.ListArray.from_arrays(
                offsets, pa.array(similarities(values, metric), pa.float32())
            ),
            "duplicates": pa.array(duplicates or [[] for _ in range(len(ranks))], SCHEMA[3].type),
        },
        schema=SCHEMA,
    )


def write_file(
    path: str | Path,
    ids: pa.Array,
    ranks: np.ndarray,
    keys: np.ndarray,
    metric: str,
    dups: dict[str, list[str]],
) -> int:
    """Write rows (``ranks`` int64 [n], ``keys`` uint64 [n, k]) sorted by rank; returns n."""
    path = Path(path)
    order = np.argsort(ranks, kind="stable")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with pq.ParquetWriter(tmp, SCHEMA) as writer:
            for lo in range(0, len(ranks), ROW_GROUP_ROWS):
                rows = order[lo : lo + ROW_GROUP_ROWS]
                writer.write_table(_table(ids, ranks[rows], keys[rows], metric, dups))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        pa.default_memory_pool().release_unused()
    return len(ranks)


def read_neighbours(out_dir: str | Path, image_ids: Iterable[str]) -> dict[str, dict]:
    """Rows of the given ids (id -> row dict), reading only the files and row groups whose
    id statistics can hold them; ids that are absent are left out."""
    wanted = sorted(set(image_ids))
    found: dict[str, dict] = {}
    for path in sorted(Path(out_dir).glob(f"{TABLE}-[0-9]*-of-[0-9]*.parquet")):
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(0).statistics
            lo, hi = (
                (stats.min, stats.max) if stats is not None and stats.has_min_max else ("", None)
            )
            inside = [i for i in wanted if i >= lo and (hi is None or i <= hi)]
            if not inside:
                continue
            group = pq.ParquetFile(path).read_row_group(g)
            rows = group.filter(pc.is_in(group["image_id"], pa.array(inside)))
            found.update({r["image_id"]: r for r in rows.to_pylist()})
    return found
