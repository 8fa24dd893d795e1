"""Checkpoints: atomic writes, a ``latest`` pointer, pruning, RNG state capture.

A checkpoint (``torch.save`` dict, loadable with ``weights_only=True``) holds ``model``,
``optimizer``, ``scheduler``, ``scaler`` (state dicts), ``stage_index``, ``stage``, ``step``
(optimiser steps done in that stage), ``rng`` (torch CPU/CUDA states and the corruption
generator's), ``config`` (the resolved TrainConfig as a dict) and ``history`` (per-stage results
so far). Files live in ``<out>/checkpoints/``: ``stageII-NAME-stepSSSSSSSS.pt`` mid-stage (the
newest ``keep`` are kept) and ``stageII-NAME-final.pt`` at the end of every stage (all kept).
``latest.json`` names the newest; it is replaced atomically after the checkpoint itself.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.json"
FORMAT_VERSION = 1


def checkpoint_name(stage_index: int, stage: str, step: int, final: bool) -> str:
    tail = "final" if final else f"step{step:08d}"
    return f"stage{stage_index:02d}-{stage}-{tail}.pt"


def capture_rng(gen: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "corrupt": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["corrupt"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: str | os.PathLike, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` atomically (tmp + os.replace), point ``latest.json`` at it, prune."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(state["stage_index"], state["stage"], state["step"], state["final"])
    path = folder / name
    tmp = folder / f".{name}.tmp-{os.getpid()}"
    torch.save({**state, "format_version": FORMAT_VERSION}, tmp)
    os.replace(tmp, path)
    pointer = {"path": name, "stage_index": state["stage_index"], "step": state["step"]}
    tmp_json = folder / f".{LATEST}.tmp-{os.getpid()}"
    tmp_json.write_text(json.dumps(pointer) + "\n")
    os.replace(tmp_json, folder / LATEST)
    _prune(folder, keep, current=path)
    return path


def _prune(folder: Path, keep: int, current: Path) -> None:
    mids = sorted(folder.glob("stage*-step*.pt"))  # names sort by stage then step
    for old in mids[: max(0, len(mids) - keep)]:
        if old != current:
            old.unlink(missing_ok=True)


def find_latest(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint under ``<out_dir>/checkpoints``, or None."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    pointer = folder / LATEST
    if pointer.is_file():
        path = folder / json.loads(pointer.read_text())["path"]
        if path.is_file():
            return path
        log.warning("%s names a missing checkpoint; searching the folder", pointer)
    found = [p for p in folder.glob("stage*.pt") if p.is_file()]
    if not found:
        return None
    return max(found, key=_order)


def _order(path: Path) -> tuple[int, int]:
    stage = int(path.name[5:7])
    tail = path.stem.rsplit("-", 1)[1]
    return stage, (1 << 62) if tail == "final" else int(tail[4:])


def resolve_resume(resume: str | None, out_dir: str | os.PathLike) -> Path | None:
    """``None`` -> None; ``"latest"`` -> newest checkpoint in ``out_dir`` (None when there is
    none yet, so a first run with ``--resume latest`` starts fresh); else the given path."""
    if resume is None:
        return None
    if resume == "latest":
        path = find_latest(out_dir)
        if path is None:
            log.info("--resume latest: no checkpoint in %s yet, starting from scratch", out_dir)
        return path
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    state = torch.load(path, map_location=map_location, weights_only=True)
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {state.get('format_version')} not supported")
    return state
