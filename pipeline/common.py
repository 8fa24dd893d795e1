"""Conventions shared by every Beam job: options, dead letters, counters, outputs, manifest.

A job module defines its steps as composite ``PTransform``s and a ``run(argv=None)`` that:

1. splits its own flags from Beam's with :func:`parse_args` (Beam flags pass through unchanged,
   so the same job runs on the in-process runner here and on Flink/Spark/Dataflow by options);
2. routes bad records to the ``REJECTS`` tagged output with :func:`reject` (input id, step,
   reason) and counts every input, kept and rejected element with Beam ``Metrics`` in the job's
   namespace (never in ``setup()``: runners drop those counts);
3. writes its results, ``rejects-*.jsonl`` via :class:`WriteRejects`, and finally calls
   :func:`finish_job`, which reads the counters, checks ``inputs == kept + rejected`` and writes
   ``manifest.json`` and ``config.json``.

A job whose output folder already has a manifest for the same config is complete: a rerun skips it
unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from corpora import jobio

logger = logging.getLogger(__name__)

REJECTS = "rejects"
DEFAULT_RUNNER = "FnApiRunner"  # the in-process portable runner; name one to use another


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, PipelineOptions]:
    """Split the job's flags from Beam's; Beam's pass through unchanged.

    Without ``--runner`` the in-process runner is used (Beam's own default would first try to
    download a runner binary).
    """
    parser.add_argument("--force", action="store_true", help="rerun even if the output is complete")
    args, beam_args = parser.parse_known_args(argv)
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args = [f"--runner={DEFAULT_RUNNER}", *beam_args]
    args.beam_args = beam_args
    return args, PipelineOptions(beam_args)


def reject(input_id: Any, step: str, reason: str) -> beam.pvalue.TaggedOutput:
    """A dead-letter record for the ``REJECTS`` output."""
    return beam.pvalue.TaggedOutput(
        REJECTS, {"input_id": str(input_id), "step": step, "reason": str(reason)}
    )


class Counters:
    """Named Beam counters of one job namespace, created lazily inside DoFns."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._counters: dict[str, Any] = {}

    def inc(self, name: str, n: int = 1) -> None:
        if name not in self._counters:
            self._counters[name] = Metrics.counter(self.namespace, name)
        self._counters[name].inc(n)

    def __getstate__(self) -> dict[str, Any]:  # counters are re-created on workers
        return {"namespace": self.namespace, "_counters": {}}


class CountRejects(beam.DoFn):
    """Count each dead-letter record as ``rejected`` and ``rejected.<step>``; pass it on."""

    def __init__(self, namespace: str) -> None:
        self.counters = Counters(namespace)

    def process(self, record: dict[str, Any]):
        self.counters.inc("rejected")
        self.counters.inc(f"rejected.{record['step']}")
        yield record


class WriteRejects(beam.PTransform):
    """Count rejects and write them as ``rejects-SSSSS-of-NNNNN.jsonl`` in ``out_dir``."""

    def __init__(self, out_dir: str | Path, namespace: str) -> None:
        super().__init__()
        self.out_dir = str(out_dir)
        self.namespace = namespace

    def expand(self, pcoll):
        return (
            pcoll
            | "CountRejects" >> beam.ParDo(CountRejects(self.namespace))
            | "RejectsToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
            | "WriteRejects"
            >> beam.io.WriteToText(
                str(Path(self.out_dir) / "rejects"),
                file_name_suffix=".jsonl",
                shard_name_template="-SSSSS-of-NNNNN",
            )
        )


def read_counters(result: beam.runners.runner.PipelineResult, namespace: str) -> dict[str, int]:
    """Committed counter values of ``namespace`` (attempted where a runner reports no commits)."""
    counts: dict[str, int] = {}
    for metric in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
        value = metric.committed if metric.committed is not None else metric.attempted
        counts[metric.key.metric.name] = counts.get(metric.key.metric.name, 0) + int(value or 0)
    return counts


def job_complete(out_dir: str | Path, config: dict[str, Any]) -> bool:
    """True when ``out_dir`` holds a manifest written for this same resolved config."""
    out = Path(out_dir)
    manifest, cfg = out / "manifest.json", out / "config.json"
    if not (manifest.exists() and cfg.exists()):
        return False
    return json.loads(cfg.read_text()) == json.loads(json.dumps(config, default=str))


def steps_from_counters(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Group ``<step>.<what>`` counters (e.g. ``rejected.size``) into a per-step table."""
    steps: dict[str, dict[str, int]] = {}
    for name, value in sorted(counts.items()):
        what, _, step = name.partition(".")
        if step:
            steps.setdefault(step, {})[what] = value
    return steps


def finish_job(
    out_dir: str | Path,
    job: str,
    result: beam.runners.runner.PipelineResult,
    config: dict[str, Any],
    *,
    started: float,
    outputs: Iterable[str | Path] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read the job's counters, check the accounting, write config.json and manifest.json.

    The job's DoFns count ``inputs``, ``kept`` and ``rejected`` (plus ``rejected.<step>`` and any
    other ``<what>.<step>``) in the namespace ``job``.
    """
    out = Path(out_dir)
    counts = read_counters(result, job)
    inputs, kept, rejected = (counts.get(k, 0) for k in ("inputs", "kept", "rejected"))
    listed = sorted({str(p) for p in outputs})
    listed += sorted(str(p) for p in out.glob("rejects-*.jsonl"))
    jobio.write_config(out, config)
    jobio.write_manifest(
        out,
        job,
        inputs=inputs,
        kept=kept,
        rejected=rejected,
        steps=steps_from_counters(counts),
        outputs=listed,
        seconds=time.time() - started,
        extra={"counters": counts, **(extra or {})},
    )
    logger.info("%s: %d inputs -> %d kept, %d rejected (%s)", job, inputs, kept, rejected, out)
    return json.loads((out / "manifest.json").read_text())
