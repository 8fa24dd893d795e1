"""What every job writes: resolved config, manifest with counts, rejects; atomic file writes.

Conventions (ARCHITECTURE.md): a job's output folder holds ``config.json`` (the resolved
configuration), ``manifest.json`` (counts per step, outputs with sizes, timings, warnings) and
``rejects.jsonl`` (one ``{"input_id", "step", "reason"}`` per rejected input). For every job,
``inputs == kept + rejected``; ``write_manifest`` refuses to write a manifest where it is not.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class AccountingError(RuntimeError):
    """inputs != kept + rejected: something was lost or counted twice."""


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n"
    )


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_config(out_dir: str | os.PathLike, config: Any) -> Path:
    """Write the resolved config (a dataclass or dict) as ``config.json``."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return atomic_write_json(Path(out_dir) / "config.json", data)


def write_rejects(out_dir: str | os.PathLike, rejects: Iterable[dict[str, Any]]) -> int:
    """Write ``rejects.jsonl`` atomically; returns the number written."""
    lines = [json.dumps(r, sort_keys=True) for r in rejects]
    for r in lines:
        rec = json.loads(r)
        if not {"input_id", "step", "reason"} <= rec.keys():
            raise ValueError(f"reject record lacks input_id/step/reason: {r}")
    atomic_write_text(Path(out_dir) / "rejects.jsonl", "".join(line + "\n" for line in lines))
    return len(lines)


def file_entry(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    return {
        "path": p.name if p.is_file() else str(p),
        "bytes": p.stat().st_size if p.exists() else 0,
    }


def write_manifest(
    out_dir: str | os.PathLike,
    job: str,
    *,
    inputs: int,
    kept: int,
    rejected: int,
    steps: dict[str, dict[str, int]] | None = None,
    outputs: Iterable[str | os.PathLike] = (),
    seconds: float | None = None,
    warnings: Iterable[str] = (),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json``; raise AccountingError unless inputs == kept + rejected."""
    if inputs != kept + rejected:
        raise AccountingError(
            f"{job}: inputs={inputs} but kept={kept} + rejected={rejected} = {kept + rejected}"
        )
    manifest = {
        "job": job,
        "inputs": inputs,
        "kept": kept,
        "rejected": rejected,
        "steps": steps or {},
        "outputs": [file_entry(p) for p in outputs],
        "seconds": None if seconds is None else round(seconds, 3),
        "warnings": list(warnings),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
    }
    if extra:
        manifest.update(extra)
    return atomic_write_json(Path(out_dir) / "manifest.json", manifest)
