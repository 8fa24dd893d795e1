"""The training loop of one stage, top to bottom.

Per step: next batch (of part ``step % P`` in a mixed stage) -> corrupt (masking, shuffling) ->
forward the encoder once -> every task of the part scores it -> weighted sum -> backward (DDP
averages gradients across ranks) -> clip to ``grad_clip`` -> AdamW step -> linear warm-up/decay.
Every ``log_every`` steps the mean losses (over steps and ranks) go to metrics.csv and
TensorBoard; every ``checkpoint_every`` steps and at the stage's last step a checkpoint is saved
(rank 0 writes it, with every rank's RNG states). Each stage gets a fresh optimiser and schedule
and starts from the current weights.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from train import distributed
from train.checkpoint import (
    CHECKPOINT_DIR,
    capture_rng,
    checkpoint_name,
    restore_rng,
    save_checkpoint,
)
from train.config import StageConfig, TrainConfig
from train.data import StageStream, make_loader
from train.distributed import Dist
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


def seed_for(seed: int, stage_index: int, rank: int = 0) -> int:
    return seed * 1009 + stage_index + 7919 * rank


@dataclasses.dataclass
class StageContext:
    """What every stage of a run shares."""

    cfg: TrainConfig
    model: PretrainModel
    forward: nn.Module  # the model, or its DistributedDataParallel wrapper
    encoder: TextEncoder
    device: torch.device
    precision: str  # resolved (never "auto")
    metrics: Any  # MetricsLog on rank 0, NullMetrics elsewhere
    gen: torch.Generator  # the corruption generator
    dist: Dist
    held_out: frozenset[str] = frozenset()
    label_pieces: Mapping[str, Sequence[int]] | None = None
    progress: bool = True
    on_step: StepHook | None = None


def _streams(ctx: StageContext, k: int, start_step: int) -> list[StageStream]:
    """One stream per part; part p has produced ceil((start - p) / P) batches at ``start``."""
    cfg, stage = ctx.cfg, ctx.cfg.stages[k]
    units = stage.units()
    streams = []
    for p, unit in enumerate(units):
        negatives = negatives_mode([ctx.model.tasks[name] for name in unit.tasks])
        streams.append(
            StageStream(
                cfg.features,
                unit.text,
                ctx.encoder,
                batch_size=unit.batch_size,
                num_boxes=cfg.model.num_boxes,
                feat_dim=cfg.model.visual_feat_dim,
                split=unit.split,
                negative_prob=unit.negative_prob if negatives else 0.0,
                hard_negatives=cfg.hard_negatives if negatives == "hard" else None,
                hard_negatives_top=unit.hard_negatives_top,
                seed=cfg.seed,
                stage_index=k * 16 + p,
                shuffle_buffer=cfg.shuffle_buffer,
                start_batch=max(0, -(-(start_step - p) // len(units))),
                held_out=ctx.held_out,
                label_pieces=ctx.label_pieces,
                rank=ctx.dist.rank,
                world=ctx.dist.world,
            )
        )
        if negatives == "hard" and cfg.hard_negatives is None:
            log.warning("stage %s: ITM-HS without hard_negatives: random negatives", unit.name)
        st = streams[-1].stats
        log.info(
            "stage %s%s: tasks %s; %d examples/epoch from %d images (%d text rows without "
            "features, %d of held-out images skipped); %d/%d shards",
            stage.name,
            f" part {unit.name}" if stage.parts else "",
            unit.tasks,
            st.rows_used,
            st.images_with_text,
            st.rows_missing_features,
            st.rows_held_out,
            st.shards_used,
            st.shards,
        )
    return streams


def train_stage(
    ctx: StageContext,
    k: int,
    history: dict[str, Any],
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train stage ``k`` to its last step; returns the stage summary.

    ``resume``: a checkpoint of this stage to continue from (model weights already loaded);
    ``history``: results of earlier stages, stored in every checkpoint.
    """
    cfg, model, dist = ctx.cfg, ctx.model, ctx.dist
    stage = cfg.stages[k]
    units = stage.units()
    offset = sum(s.steps for s in cfg.stages[:k])  # global step of this stage's step 0
    start_step = resume["step"] if resume else 0
    needed = [needed_corruptions([model.tasks[n] for n in u.tasks]) for u in units]
    streams = _streams(ctx, k, start_step)

    optimizer = build_optimizer(model, stage)
    scheduler = linear_schedule(optimizer, stage)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.precision == "fp16")
    if resume:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        states = resume.get("rng_ranks") or [resume["rng"]]
        if len(states) != dist.world:
            log.warning("resuming %d ranks from %d: not exact", dist.world, len(states))
        restore_rng(states[dist.rank % len(states)], ctx.gen)
        log.info("stage %s: resuming at step %d/%d", stage.name, start_step, stage.steps)
    else:
        torch.manual_seed(seed_for(cfg.seed, k, dist.rank))
        ctx.gen.manual_seed(seed_for(cfg.seed, k, dist.rank))

    def checkpoint(step: int, summary: dict[str, Any] | None = None) -> str:
        rng_ranks = distributed.gather_objects(dist, capture_rng(ctx.gen))
        path = Path(cfg.out) / CHECKPOINT_DIR / checkpoint_name(k, stage.name, step, False)
        if dist.main:
            stages_done = dict(history["stages"], **({stage.name: summary} if summary else {}))
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "stage_index": k,
                "stage": stage.name,
                "step": step,
                "final": step == stage.steps,
                "rng": rng_ranks[0],
                "rng_ranks": rng_ranks,
                "world_size": dist.world,
                "config": cfg.to_dict(),
                "history": {"stages": stages_done},
            }
            path = save_checkpoint(cfg.out, state, cfg.keep_checkpoints)
        distributed.barrier(dist)
        return str(path)

    loaders = [
        make_loader(s, cfg.num_workers, pin_memory=ctx.device.type == "cuda") for s in streams
    ]
    batches = [iter(loader) for loader in loaders]
    window: dict[str, list[float]] = defaultdict(list)
    first: dict[str, float] | None = None
    last: dict[str, float] = {}
    seen = [0] * len(units)  # examples this rank drew per part, this run
    started = time.perf_counter()
    model.train()
    bar = tqdm(
        total=stage.steps,
        initial=start_step,
        desc=f"stage {stage.name}",
        disable=not (ctx.progress and dist.main),
        dynamic_ncols=True,
    )
    grad_norm = torch.zeros(())
    for step in range(start_step, stage.steps):
        p = step % len(units)
        unit = units[p]
        batch = corrupt(next(batches[p]), needed[p], unit, ctx.encoder, ctx.gen).to(ctx.device)
        with autocast(ctx.device, ctx.precision):
            losses = ctx.forward(batch, unit.tasks)
        task_losses = {name: sum(parts.values()) for name, parts in losses.items() if parts}
        if not task_losses:
            raise RuntimeError(f"stage {stage.name}, step {step}: no task had anything to score")
        total = sum(unit.loss_weights.get(name, 1.0) * loss for name, loss in task_losses.items())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()

        seen[p] += len(batch)
        prefix = f"{unit.name}." if stage.parts else ""
        for name, parts in losses.items():
            if not parts:
                continue
            window[prefix + name].append(float(task_losses[name].detach()))
            if len(parts) > 1:
                for part, value in parts.items():
                    window[prefix + part].append(float(value.detach()))
        window["total"].append(float(total.detach()))
        done = step + 1
        bar.update(1)
        if done % cfg.log_every == 0 or done == stage.steps:
            sums = {name: (sum(v), len(v)) for name, v in window.items()}
            last = distributed.mean_over_ranks(dist, sums)
            first = first or last
            ctx.metrics.log(stage.name, done, offset + done, last)
            ctx.metrics.scalar(f"{stage.name}/lr", scheduler.get_last_lr()[0], offset + done)
            ctx.metrics.scalar(f"{stage.name}/grad_norm", float(grad_norm), offset + done)
            bar.set_postfix(loss=f"{last['total']:.3f}")
            window.clear()
        if done == stage.steps:
            break
        if done % cfg.checkpoint_every == 0:
            checkpoint(done)
        if ctx.on_step is not None:
            ctx.on_step(stage.name, done)
    bar.close()
    del batches, loaders  # stops the workers

    seconds = time.perf_counter() - started
    steps_run = stage.steps - start_step
    samples = sum(seen) * dist.world
    data = {}
    for p, (unit, stream) in enumerate(zip(units, streams, strict=True)):
        stats = dataclasses.asdict(stream.stats)
        # examples of this part over the whole stage (all ranks), and the epochs they make
        drawn = sum(1 for s in range(stage.steps) if s % len(units) == p) * unit.batch_size
        stats.update(
            samples=drawn * dist.world,
            epochs=round(drawn * dist.world / max(1, stream.examples_per_epoch), 3),
        )
        data[unit.name] = stats
    summary = {
        "name": stage.name,
        "index": k,
        "tasks": stage.all_tasks(),
        "parts": [u.name for u in stage.parts],
        "steps": stage.steps,
        "batch_size": units[0].batch_size if len(units) == 1 else [u.batch_size for u in units],
        "world_size": dist.world,
        "precision": ctx.precision,
        "steps_this_run": steps_run,
        "seconds": round(seconds, 3),
        "steps_per_s": round(steps_run / seconds, 4) if seconds > 0 else None,
        "samples_per_s": round(samples / seconds, 3) if seconds > 0 else None,
        "first_losses": first or {},
        "final_losses": last,
        "data": data[units[0].name] if not stage.parts else data,
    }
    summary["checkpoint"] = str(
        Path(cfg.out) / CHECKPOINT_DIR / checkpoint_name(k, stage.name, stage.steps, True)
    )
    checkpoint(stage.steps, summary)
    if ctx.on_step is not None:
        ctx.on_step(stage.name, stage.steps)
    log.info(
        "stage %s done: %d steps in %.1f s (%.3f steps/s, %.1f samples/s), %s; final loss %.4f",
        stage.name,
        stage.steps,
        seconds,
        summary["steps_per_s"] or 0.0,
        summary["samples_per_s"] or 0.0,
        ", ".join(f"{n}: {d['samples']} samples = {d['epochs']} epochs" for n, d in data.items()),
        last.get("total", float("nan")),
    )
    return summary
