"""The training loop of one stage, top to bottom.

Per step: next batch -> corrupt (masking, shuffling) -> forward the encoder once -> every task
of the stage scores it -> weighted sum -> backward -> clip to ``grad_clip`` -> AdamW step ->
linear warm-up/decay schedule. Every ``log_every`` steps the mean losses go to metrics.csv and
TensorBoard; every ``checkpoint_every`` steps and at the stage's last step a checkpoint is saved.
Each stage gets a fresh optimiser and schedule and starts from the current weights.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from train.checkpoint import (
    CHECKPOINT_DIR,
    capture_rng,
    checkpoint_name,
    restore_rng,
    save_checkpoint,
)
from train.config import StageConfig, TrainConfig
from train.data import StageStream, make_loader
from train.metrics import MetricsLog
from train.runtime import autocast
from train.tasks import PretrainModel, needed_corruptions, negatives_mode
from train.tasks.corrupt import corrupt
from train.text import TextEncoder

log = logging.getLogger(__name__)
StepHook = Callable[[str, int], None]


def build_optimizer(model: nn.Module, stage: StageConfig) -> torch.optim.AdamW:
    """AdamW; biases and LayerNorm weights (1-d parameters) are not decayed, as in BERT."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": stage.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # the fused kernel (CPU and CUDA) is several times faster than the per-tensor loop
    return torch.optim.AdamW(groups, lr=stage.lr, betas=(0.9, 0.999), eps=1e-6, fused=True)


def linear_schedule(
    optimizer: torch.optim.Optimizer, stage: StageConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then linear decay to zero."""
    warmup = int(stage.warmup_fraction * stage.steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (stage.steps - step) / max(1, stage.steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def seed_for(seed: int, stage_index: int) -> int:
    return seed * 1009 + stage_index


def train_stage(
    cfg: TrainConfig,
    stage_index: int,
    model: PretrainModel,
    encoder: TextEncoder,
    device: torch.device,
    metrics: MetricsLog,
    gen: torch.Generator,
    history: dict[str, Any],
    resume: dict[str, Any] | None = None,
    progress: bool = True,
    on_step: StepHook | None = None,
    held_out: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Train one stage to its last step; returns the stage summary.

    ``resume``: a checkpoint of this stage to continue from (model weights already loaded);
    ``history``: results of earlier stages, stored in every checkpoint; ``held_out``: image keys
    kept out of training (the evaluation images).
    """
    stage = cfg.stages[stage_index]
    offset = sum(s.steps for s in cfg.stages[:stage_index])  # global step of this stage's step 0
    tasks = [model.tasks[name] for name in stage.tasks]
    needed, negatives = needed_corruptions(tasks), negatives_mode(tasks)
    start_step = resume["step"] if resume else 0

    stream = StageStream(
        cfg.features,
        stage.text,
        encoder,
        batch_size=stage.batch_size,
        num_boxes=cfg.model.num_boxes,
        feat_dim=cfg.model.visual_feat_dim,
        split=stage.split,
        negative_prob=stage.negative_prob if negatives else 0.0,
        hard_negatives=cfg.hard_negatives if negatives == "hard" else None,
        hard_negatives_top=stage.hard_negatives_top,
        seed=cfg.seed,
        stage_index=stage_index,
        shuffle_buffer=cfg.shuffle_buffer,
        start_batch=start_step,
        held_out=held_out,
    )
    stats = dataclasses.asdict(stream.stats)
    log.info(
        "stage %s: tasks %s; %d examples/epoch from %d images (%d text rows without "
        "features skipped); %d/%d shards",
        stage.name,
        stage.tasks,
        stats["rows_used"],
        stats["images_with_text"],
        stats["rows_missing_features"],
        stats["shards_used"],
        stats["shards"],
    )
    if negatives == "hard" and cfg.hard_negatives is None:
        log.warning("stage %s: ITM-HS without hard_negatives: every negative is random", stage.name)

    optimizer = build_optimizer(model, stage)
    scheduler = linear_schedule(optimizer, stage)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    if resume:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        restore_rng(resume["rng"], gen)
        log.info("stage %s: resuming at step %d/%d", stage.name, start_step, stage.steps)
    else:
        torch.manual_seed(seed_for(cfg.seed, stage_index))
        gen.manual_seed(seed_for(cfg.seed, stage_index))

    def checkpoint(step: int, summary: dict[str, Any] | None = None) -> str:
        final = step == stage.steps
        stages_done = dict(history["stages"], **({stage.name: summary} if summary else {}))
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "stage_index": stage_index,
            "stage": stage.name,
            "step": step,
            "final": final,
            "rng": capture_rng(gen),
            "config": cfg.to_dict(),
            "history": {"stages": stages_done},
        }
        return str(save_checkpoint(cfg.out, state, cfg.keep_checkpoints))

    loader = make_loader(stream, cfg.num_workers, pin_memory=device.type == "cuda")
    batches = iter(loader)
    window: dict[str, list[float]] = defaultdict(list)
    first: dict[str, float] | None = None
    last: dict[str, float] = {}
    samples, started = 0, time.perf_counter()
    model.train()
    bar = tqdm(
        total=stage.steps,
        initial=start_step,
        desc=f"stage {stage.name}",
        disable=not progress,
        dynamic_ncols=True,
    )
    for step in range(start_step, stage.steps):
        batch = corrupt(next(batches), needed, stage, encoder, gen).to(device)
        with autocast(device, cfg.precision):
            losses = model(batch, stage.tasks)
        task_losses = {name: sum(parts.values()) for name, parts in losses.items() if parts}
        if not task_losses:
            raise RuntimeError(f"stage {stage.name}, step {step}: no task had anything to score")
        total = sum(stage.loss_weights.get(name, 1.0) * loss for name, loss in task_losses.items())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()

        samples += len(batch)
        for name, parts in losses.items():
            if not parts:
                continue
            window[name].append(float(task_losses[name].detach()))
            if len(parts) > 1:
                for part, value in parts.items():
                    window[part].append(float(value.detach()))
        window["total"].append(float(total.detach()))
        done = step + 1
        bar.update(1)
        if done % cfg.log_every == 0 or done == stage.steps:
            last = {name: sum(v) / len(v) for name, v in window.items()}
            first = first or last
            metrics.log(stage.name, done, offset + done, last)
            metrics.scalar(f"{stage.name}/lr", scheduler.get_last_lr()[0], offset + done)
            metrics.scalar(f"{stage.name}/grad_norm", float(grad_norm), offset + done)
            bar.set_postfix(loss=f"{last['total']:.3f}")
            window.clear()
        if done == stage.steps:
            break
        if done % cfg.checkpoint_every == 0:
            checkpoint(done)
        if on_step is not None:
            on_step(stage.name, done)
    bar.close()
    del batches, loader  # stops the workers

    seconds = time.perf_counter() - started
    steps_run = stage.steps - start_step
    summary = {
        "name": stage.name,
        "index": stage_index,
        "tasks": list(stage.tasks),
        "steps": stage.steps,
        "batch_size": stage.batch_size,
        "steps_this_run": steps_run,
        "seconds": round(seconds, 3),
        "steps_per_s": round(steps_run / seconds, 4) if seconds > 0 else None,
        "samples_per_s": round(samples / seconds, 3) if seconds > 0 else None,
        "first_losses": first or {},
        "final_losses": last,
        "data": stats,
    }
    summary["checkpoint"] = str(
        Path(cfg.out) / CHECKPOINT_DIR / checkpoint_name(stage_index, stage.name, stage.steps, True)
    )
    checkpoint(stage.steps, summary)
    if on_step is not None:
        on_step(stage.name, stage.steps)
    log.info(
        "stage %s done: %d steps in %.1f s (%.3f steps/s), final total loss %.4f",
        stage.name,
        stage.steps,
        seconds,
        summary["steps_per_s"] or 0.0,
        last.get("total", float("nan")),
    )
    return summary
