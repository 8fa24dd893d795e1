"""What the text-table jobs (phrases, captions, token labels, hard negatives) share.

* the text-table schema the trainer reads: ``image_id`` (string, the image key = the image file
  stem), ``text`` (string), ``split`` and ``source`` (strings, nullable), plus each job's extra
  columns (:func:`table_schema`);
* :class:`WriteTable`: ``<out>/<name>-SSSSS-of-NNNNN.parquet`` through Beam's ``WriteToParquet``;
* :func:`start_job` / :func:`end_job`: skip a job whose output folder is complete for the same
  resolved config, clear a stale earlier attempt, run, then write manifest and config with
  :func:`pipeline.common.finish_job`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
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


class WriteTable(beam.PTransform):
    """Write dict rows as ``<out_dir>/<name>-SSSSS-of-NNNNN.parquet`` with ``schema``."""

    def __init__(self, out_dir: str | Path, name: str, schema: pa.Schema) -> None:
        super().__init__()
        self.prefix = str(Path(out_dir) / name)
        self.schema = schema

    def expand(self, rows):
        return rows | "WriteParquet" >> beam.io.WriteToParquet(
            self.prefix,
            self.schema,
            file_name_suffix=".parquet",
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
