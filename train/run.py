"""The Python API: ``train(config) -> summary``. Stages run in config order, each starting from
the previous stage's weights; retrieval is evaluated after each stage.

A run folder holds ``config.yaml`` (resolved), ``train.log``, ``metrics.csv``, ``tensorboard/``,
``plots/``, ``checkpoints/``, ``eval_<stage>.json``, ``eval_summary.json`` and ``summary.json``
(the dict ``train`` returns). Under torchrun every rank trains; rank 0 alone writes the folder.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from corpora.jobio import atomic_write_json, atomic_write_text
from train import distributed
from train.checkpoint import load_checkpoint, resolve_resume
from train.config import TrainConfig
from train.evaluate import evaluate_retrieval
from train.loop import StageContext, StepHook, train_stage
from train.metrics import MetricsLog, NullMetrics, plot_losses
from train.runtime import resolve_device, resolve_precision
from train.tables import read_region_labels, split_keys
from train.tasks import PretrainModel, build_model, check_task_names
from train.text import TextEncoder, label_piece_sets, load_label_names

log = logging.getLogger(__name__)
# settings that change the data order or the schedule: resuming with other values is not exact
_ORDER_KEYS = ("seed", "num_workers", "shuffle_buffer", "features", "hard_negatives")


def build(cfg: TrainConfig, device: torch.device) -> tuple[PretrainModel, TextEncoder]:
    """The tokeniser and the model with one head per task of any stage."""
    names = [t for s in cfg.stages for t in s.all_tasks()]
    check_task_names(names)
    encoder = TextEncoder(max_len=cfg.model.max_text_len)
    if cfg.region_labels is not None and cfg.objects_vocab is None:
        labels = [f"object_{i}" for i in range(cfg.model.num_objects)]  # L comes from the table
    else:
        labels = load_label_names(cfg.objects_vocab, cfg.model.num_objects)
    return build_model(cfg.model, names, encoder, labels).to(device), encoder


def _eval_stage(ctx: StageContext, k: int) -> dict[str, Any]:
    cfg = ctx.cfg
    result = evaluate_retrieval(
        ctx.model,
        ctx.encoder,
        cfg.features,
        cfg.eval,
        cfg.model,
        ctx.device,
        ctx.precision,
        ctx.progress,
    )
    result["stage"] = cfg.stages[k].name
    # before any ITM stage the head is untrained: scores are chance level
    result["itm_trained"] = any(
        t in ("itm", "itm_hs") for s in cfg.stages[: k + 1] for t in s.all_tasks()
    )
    atomic_write_json(Path(cfg.out) / f"eval_{cfg.stages[k].name}.json", result)
    return result


def _eval_due(cfg: TrainConfig, k: int) -> bool:
    return cfg.eval.captions is not None and (cfg.eval.every_stage or k == len(cfg.stages) - 1)


def _warn_changed(saved: dict[str, Any], cfg: TrainConfig) -> None:
    now = cfg.to_dict()
    changed = [k for k in _ORDER_KEYS if saved.get(k) != now.get(k)]
    changed += [
        f"stages.{i}"
        for i, s in enumerate(now["stages"])
        if i < len(saved["stages"]) and s != saved["stages"][i]
    ]
    if saved.get("model") != now["model"]:
        raise ValueError("the checkpoint was trained with another model config; cannot resume")
    if changed:
        log.warning(
            "resuming with changed settings %s: the run will not equal an uninterrupted one",
            changed,
        )


def train(
    config: TrainConfig,
    progress: bool = True,
    resume: str | None = None,
    on_step: StepHook | None = None,
) -> dict[str, Any]:
    """Run every stage of ``config``; returns the run summary (also in ``<out>/summary.json``).

    Args:
        config: the resolved configuration.
        progress: show tqdm bars.
        resume: ``"latest"`` (the newest checkpoint in ``config.out``; a fresh start when there is
            none) or a checkpoint path; continues mid-stage.
        on_step: called as ``on_step(stage_name, step)`` after every optimiser step.

    Returns: ``{"stages": [per-stage summary: steps, seconds, steps_per_s, samples_per_s,
    first/final losses, data counts with samples and epochs, checkpoint], "eval": {stage:
    retrieval metrics}, "timings": {...}, "checkpoint": the last checkpoint, "out": the run
    folder, "device", "precision", "world_size"}``.
    """
    cfg = config.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    ctx_dist = distributed.setup(device.type)
    if ctx_dist.enabled and device.type == "cuda":
        device = resolve_device(cfg.device, ctx_dist.local_rank)
    # the run's own log file gets the trainer's INFO lines whatever the caller configured
    handler = logging.FileHandler(
        out / ("train.log" if ctx_dist.main else f"train.rank{ctx_dist.rank}.log")
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("train")
    level = package_log.level
    if package_log.getEffectiveLevel() > logging.INFO:
        package_log.setLevel(logging.INFO)
    package_log.addHandler(handler)
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, out, device, ctx_dist, progress, resume, on_step)
    finally:
        torch.set_num_threads(threads)
        package_log.removeHandler(handler)
        package_log.setLevel(level)
        handler.close()
        distributed.teardown(ctx_dist)


def _train(
    cfg: TrainConfig,
    out: Path,
    device: torch.device,
    dist: distributed.Dist,
    progress: bool,
    resume: str | None,
    on_step: StepHook | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    ckpt_path = resolve_resume(resume, out)
    ckpt_path = distributed.broadcast_object(dist, ckpt_path)  # every rank resumes the same one
    state = load_checkpoint(ckpt_path) if ckpt_path else None
    if state is not None:
        _warn_changed(state["config"], cfg)
    if dist.main:
        atomic_write_text(out / "config.yaml", cfg.to_yaml())
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    model, encoder = build(cfg, device)
    log.info(
        "model %s: %.1fM parameters on %s (%s), %d rank(s)",
        cfg.model.backbone,
        sum(p.numel() for p in model.parameters()) / 1e6,
        device,
        precision,
        dist.world,
    )
    names = [s.name for s in cfg.stages]

    first_stage, stage_resume, history = 0, None, {"stages": {}}
    if state is not None:
        model.load_state_dict(state["model"])
        history = state["history"]
        first_stage = state["stage_index"] + (1 if state["final"] else 0)
        stage_resume = None if state["final"] else state
        log.info("resumed from %s (stage %s, step %d)", ckpt_path, state["stage"], state["step"])
    resume_at = (state["stage_index"], state["step"]) if state else None
    global_step = sum(s.steps for s in cfg.stages[:first_stage]) + (
        stage_resume["step"] if stage_resume else 0
    )
    metrics: Any = NullMetrics()
    if dist.main:
        metrics = MetricsLog(out, names, resume_at=resume_at, global_step=global_step)

    forward: torch.nn.Module = model
    if dist.enabled:
        # heads of other stages' tasks, and a task with nothing to score in a batch, leave
        # parameters without gradients: DDP must look for them
        forward = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    held_out: frozenset[str] = frozenset()
    if cfg.eval.captions is not None and cfg.eval.hold_out:
        held_out = frozenset(split_keys(cfg.eval.captions, cfg.eval.split))
        log.info(
            "%d images of the %r split are held out of training", len(held_out), cfg.eval.split
        )
    pieces = None
    if cfg.region_labels is not None:
        pieces = label_piece_sets(encoder, read_region_labels(cfg.region_labels))
        log.info("topic label sets of %d images from %s", len(pieces), cfg.region_labels)
    ctx = StageContext(
        cfg=cfg,
        model=model,
        forward=forward,
        encoder=encoder,
        device=device,
        precision=precision,
        metrics=metrics,
        gen=torch.Generator(),
        dist=dist,
        held_out=held_out,
        label_pieces=pieces,
        progress=progress,
        on_step=on_step,
    )

    evals: dict[str, Any] = {}
    for k in range(first_stage):
        path = out / f"eval_{names[k]}.json"
        if path.is_file():
            evals[names[k]] = json.loads(path.read_text())
        elif _eval_due(cfg, k) and k == first_stage - 1 and dist.main:
            evals[names[k]] = _eval_stage(ctx, k)  # stopped between checkpoint and eval
    distributed.barrier(dist)

    last_ckpt = str(ckpt_path) if ckpt_path else None
    try:
        for k in range(first_stage, len(cfg.stages)):
            summary = train_stage(ctx, k, history, resume=stage_resume)
            stage_resume = None
            history["stages"][names[k]] = summary
            last_ckpt = summary["checkpoint"]
            if dist.main:
                plot_losses(out / "metrics.csv", out / "plots", stages=[names[k]])
                if _eval_due(cfg, k):
                    evals[names[k]] = _eval_stage(ctx, k)
            distributed.barrier(dist)
    finally:
        metrics.close()

    stages = [history["stages"][n] for n in names if n in history["stages"]]
    result = {
        "stages": stages,
        "eval": evals,
        "timings": {
            "total_seconds": round(time.perf_counter() - started, 3),
            "stages": {s["name"]: s["seconds"] for s in stages},
            "eval": {n: e.get("seconds") for n, e in evals.items()},
        },
        "checkpoint": last_ckpt,
        "out": str(out),
        "device": str(device),
        "precision": precision,
        "world_size": dist.world,
    }
    if dist.main:
        atomic_write_json(out / "eval_summary.json", evals)
        atomic_write_json(out / "summary.json", result)
    losses = "; ".join(
        f"{s['name']}: {s['final_losses'].get('total', float('nan')):.4f}" for s in stages
    )
    rsum = "; ".join(f"{n}: RSUM {e['rsum']:.1f}" for n, e in evals.items())
    log.info(
        "training done in %.1f s: final losses %s%s",
        result["timings"]["total_seconds"],
        losses,
        f"; retrieval {rsum}" if rsum else "",
    )
    return result


def evaluate_checkpoint(
    checkpoint: str | Path,
    split: str = "test",
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Retrieval with a saved model on ``split``; writes ``<out>/retrieval_<split>.json``.

    The run's resolved config comes from the checkpoint; ``overrides`` (``key=value``) change
    it, e.g. ``eval.captions=...``, ``features=...``, ``eval.max_images=100``, ``device=cpu``.
    ``out`` defaults to the run folder the checkpoint belongs to.
    """
    from train.config import apply_override

    path = Path(checkpoint)
    state = load_checkpoint(path)
    data = state["config"]
    for item in [f"eval.split={split}", *(overrides or [])]:
        apply_override(data, item)
    cfg = TrainConfig.from_dict(data)
    device = resolve_device(cfg.device)
    model, encoder = build(cfg, device)
    model.load_state_dict(state["model"])
    precision = resolve_precision(cfg.precision, device)
    result = evaluate_retrieval(
        model, encoder, cfg.features, cfg.eval, cfg.model, device, precision, progress
    )
    result.update(checkpoint=str(path), stage=state["stage"], step=state["step"])
    folder = Path(out) if out is not None else path.parent.parent
    atomic_write_json(folder / f"retrieval_{split}.json", result)
    return result
