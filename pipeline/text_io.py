"""What the text-table jobs (phrases, captions, token labels, hard negatives) share.

* the text-table schema the trainer reads: ``image_id`` (string, the image key = the image file
  stem), ``text`` (string), ``split`` and ``source`` (strings, nullable), plus each job's extra
  columns (:func:`table_schema`);
* :class:`WriteTable`: ``<out>/<name>-SSSSS-of-NNNNN.parquet`` through Beam's ``WriteToParquet``;
* :func:`start_job` / :func:`end_job`: skip a job whose output folder is complete for the same
  resolved config, clear a stale earlier attempt, run, then write manifest and config with
  :func:`pipeline.common.finish_job`;
* :func:`iter_parquet_rows` / :func:`table_files`: read another job's Parquet output (text
  tables, LAIT pairs) row by row, through Beam's filesystems so remote paths work too.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa

from pipeline import common

logger = logging.getLogger(__name__)

BASE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("split", pa.string()),
    pa.field("source", pa.string()),
)


def table_schema(*extra: pa.Field) -> pa.Schema:
    """The shared text-table schema followed by a job's ``extra`` columns."""
    return pa.schema([*BASE_FIELDS, *extra])


def output_files(out_dir: str | Path, name: str) -> list[Path]:
    """The Parquet shards ``<name>-SSSSS-of-NNNNN.parquet`` in ``out_dir``, sorted."""
    return sorted(Path(out_dir).glob(f"{name}-[0-9]*-of-[0-9]*.parquet"))


def table_files(paths: Sequence[str], pattern: str = "*.parquet") -> list[str]:
    """Files named by ``paths``: a file as is, a folder as its files matching ``pattern``.

    FileNotFoundError for a path that does not exist or a folder without such files.
    """
    files: list[str] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            found = sorted(str(f) for f in p.glob(pattern))
            if not found:
                raise FileNotFoundError(f"no {pattern} files in {path}")
            files += found
        elif p.is_file():
            files.append(str(p))
        else:
            raise FileNotFoundError(f"not found: {path}")
    return files


def iter_parquet_rows(
    path: str, columns: Sequence[str], required: Sequence[str] = (), batch_size: int = 4096
) -> Iterator[dict[str, Any]]:
    """Rows of a Parquet file as dicts of ``columns`` (absent optional columns read as None).

    ValueError when a ``required`` column is missing: the file is not the table it should be.
    """
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as fh:
        pf = pq.ParquetFile(fh)
        names = set(pf.schema_arrow.names)
        missing = [c for c in required if c not in names]
        if missing:
            raise ValueError(f"{path}: no column {missing} (has {sorted(names)})")
        present = [c for c in columns if c in names]
        absent = {c: None for c in columns if c not in names}
        for batch in pf.iter_batches(batch_size=batch_size, columns=present):
            for row in batch.to_pylist():
                yield {**row, **absent}


class WriteTable(beam.PTransform):
    """Write dict rows as ``<out_dir>/<name>-SSSSS-of-NNNNN.parquet`` with ``schema``.

    ``num_shards``: 0 lets the runner decide; 1 gives one file (small tables: a vocabulary).
    Keys of a row that the schema does not name are not written.
    """

    def __init__(
        self, out_dir: str | Path, name: str, schema: pa.Schema, num_shards: int = 0
    ) -> None:
        super().__init__()
        self.prefix = str(Path(out_dir) / name)
        self.schema = schema
        self.num_shards = num_shards

    def expand(self, rows):
        return rows | "WriteParquet" >> beam.io.WriteToParquet(
            self.prefix,
            self.schema,
            file_name_suffix=".parquet",
            num_shards=self.num_shards,
            shard_name_template="-SSSSS-of-NNNNN",
        )


@dataclasses.dataclass
class JobRun:
    """A job about to run: its output folder, name, config and start time."""

    out_dir: Path
    job: str
    config: dict[str, Any]
    started: float


def start_job(
    out_dir: str | Path, job: str, config: Any, force: bool, names: tuple[str, ...]
) -> JobRun | None:
    """Prepare ``out_dir`` for ``job``; None when it is already complete for this config.

    An incomplete or forced run first removes what an earlier attempt left (the job's Parquet
    shards ``names``, rejects, manifest), so shards of a run with another shard count cannot
    linger beside the new ones.
    """
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    out = Path(out_dir)
    if not force and common.job_complete(out, cfg):
        logger.info("%s: %s is complete for this config; skipped (use --force)", job, out)
        return None
    out.mkdir(parents=True, exist_ok=True)
    stale = [
        *(p for name in names for p in output_files(out, name)),
        *out.glob("rejects-*.jsonl"),
        out / "manifest.json",
    ]
    for path in stale:
        if path.is_file():
            path.unlink()
    return JobRun(out, job, cfg, time.time())


def end_job(
    run: JobRun,
    result: beam.runners.runner.PipelineResult,
    names: tuple[str, ...],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Wait for ``result`` and write manifest and config; returns the manifest."""
    result.wait_until_finish()
    outputs = [p for name in names for p in output_files(run.out_dir, name)]
    return common.finish_job(
        run.out_dir, run.job, result, run.config, started=run.started, outputs=outputs, extra=extra
    )
