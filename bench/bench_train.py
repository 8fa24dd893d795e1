"""Training throughput: our LXMERT-S with every MSP loss against Hugging Face's LXMERT.

    python bench/bench_train.py                  # batch 32, 36 boxes, 20 tokens, fp32 and bf16
    python bench/bench_train.py --quick          # batch 8, one round (a smoke run)

Both models are built from a config with random weights at LXMERT-S size (768 hidden, 12
heads, 5 cross-modality layers, no language or object-relationship layers) and train on the
same synthetic batch (random 2048-d features, boxes and WordPieces, no padding):

* ours: ``train.tasks.build_model`` with MLM, MRFR, MOC (objects and attributes), IFRS, TITP,
  TITS and ITM-HS on, the corruptions applied by ``train.tasks.corrupt``;
* peer: ``transformers.LxmertForPreTraining(LxmertConfig(l_layers=0, r_layers=0, x_layers=5))``
  with its MLM, object/attribute/feature and matching losses (no QA), 15% of tokens labelled.

A step is forward + backward + fused AdamW, measured in alternating rounds in one process (the
machine is shared, so both see the same load; the contenders take turns going first); the best
round of each is reported with the ratio, and the medians beside them. FLOPs per step are counted
by ``torch.utils.flop_counter`` and divided by the step time; the fraction of peak uses a float32
matrix-multiply peak measured in the same run. The forward FLOPs are split into encoder and
heads, which is where the two differ: the peer decodes the vocabulary at all 20 positions and
the object, attribute and feature heads at all 36 regions, ours only at the scored ones, and
our encoder runs its last layer's FFNs only at the states some loss reads.

The process keeps freed memory instead of handing it back to the system (glibc ``mallopt``:
no ``mmap`` for large blocks, no trimming). Without it every step's large temporaries (gradients,
the 94 MB vocabulary-wide products) come back as fresh pages that the kernel zeroes on first
touch: about 150,000 page faults and 0.5 s of system time per step here, for both contenders.
``--system-malloc`` measures without it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.batch import Batch  # noqa: E402
from train.config import ModelConfig, StageConfig  # noqa: E402
from train.runtime import autocast, cpu_has_bf16  # noqa: E402
from train.tasks import build_model, needed_corruptions  # noqa: E402
from train.tasks.corrupt import corrupt  # noqa: E402
from train.text import TextEncoder  # noqa: E402

TASKS = ["mlm", "mrfr", "moc", "ifrs", "titp", "tits", "itm_hs"]


def keep_freed_memory() -> bool:
    """glibc: serve large blocks from the heap (M_MMAP_MAX=0) and never trim it
    (M_TRIM_THRESHOLD), so freed memory is reused without page faults. False if not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0) and libc.mallopt(m_trim_threshold, 2**31 - 1))


def gemm_peak(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best matrix-multiply rate in GFLOP/s (torch, current thread count)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def make_batch(b: int, n: int, length: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (b, length), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return Batch(
        input_ids=ids,
        position_ids=torch.arange(length).expand(b, length).clone(),
        attention_mask=torch.ones(b, length, dtype=torch.bool),
        feats=torch.rand(b, n, 2048, generator=g) * 4,
        boxes=torch.rand(b, n, 4, generator=g),
        visual_mask=torch.ones(b, n, dtype=torch.bool),
        obj_ids=torch.randint(0, 1600, (b, n), generator=g),
        obj_conf=torch.rand(b, n, generator=g),
        attr_ids=torch.randint(0, 400, (b, n), generator=g),
        attr_conf=torch.rand(b, n, generator=g),
        matched=torch.rand(b, generator=g) < 0.5,
        text_keys=[""] * b,
        image_keys=[""] * b,
    )


class Ours:
    name = "ours (train.tasks, LXMERT-S)"

    def __init__(self, batch: Batch, precision: str) -> None:
        torch.manual_seed(0)
        self.text = TextEncoder()
        self.model = build_model(ModelConfig(), TASKS, self.text, [f"c{i}" for i in range(1600)])
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-5, fused=True)
        self.stage = StageConfig(tasks=TASKS, shuffle_prob=0.05)
        self.needed = needed_corruptions(self.model.tasks.values())
        self.batch, self.precision = batch, precision
        self.gen = torch.Generator().manual_seed(0)

    encoder = "PretrainModel.backbone"  # module whose forward FLOPs count as the encoder's

    def loss(self) -> torch.Tensor:
        b = self.batch
        batch = Batch(**{**b.__dict__, "input_ids": b.input_ids.clone(), "feats": b.feats.clone()})
        batch = corrupt(batch, self.needed, self.stage, self.text, self.gen)
        with autocast(torch.device("cpu"), self.precision):
            losses = self.model(batch, TASKS)
        return sum(sum(parts.values()) for parts in losses.values() if parts)

    def step(self) -> float:
        total = self.loss()
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return float(total.detach())


class Peer:
    name = "transformers LxmertForPreTraining (0/0/5 layers)"

    def __init__(self, batch: Batch, precision: str) -> None:
        from transformers import LxmertConfig, LxmertForPreTraining

        torch.manual_seed(0)
        cfg = LxmertConfig(l_layers=0, r_layers=0, x_layers=5, task_qa=False)
        self.model = LxmertForPreTraining(cfg).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-5, fused=True)
        g = torch.Generator().manual_seed(1)
        labels = batch.input_ids.clone()
        labels[torch.rand(labels.shape, generator=g) >= 0.15] = -100
        self.inputs = {
            "input_ids": batch.input_ids,
            "visual_feats": batch.feats,
            "visual_pos": batch.boxes,
            "attention_mask": batch.attention_mask.long(),
            "visual_attention_mask": batch.visual_mask.long(),
            "labels": labels,
            "obj_labels": {
                "obj": (batch.obj_ids, batch.obj_conf),
                "attr": (batch.attr_ids, batch.attr_conf),
                "feat": (batch.feats, batch.obj_conf),
            },
            "matched_label": batch.matched.long(),
        }
        self.precision = precision

    encoder = "LxmertForPreTraining.lxmert"

    def loss(self) -> torch.Tensor:
        with autocast(torch.device("cpu"), self.precision):
            return self.model(**self.inputs).loss

    def step(self) -> float:
        loss = self.loss()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def count_flops(runner: Ours | Peer) -> dict[str, float]:
    """FLOPs of one training step, and of its forward pass: total and the encoder's part."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        runner.step()
    step = float(counter.get_total_flops())
    with FlopCounterMode(display=False) as counter:
        runner.loss()
    by_module = counter.get_flop_counts()
    forward = float(counter.get_total_flops())
    encoder = float(sum(by_module.get(runner.encoder, {}).values()))
    return {"step": step, "forward": forward, "forward_encoder": encoder}


def measure(runners: list, rounds: int, steps: int) -> dict[str, list[float]]:
    """Seconds per step, per round, alternating the runners (each round another goes first) so
    that all see the same load."""
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for r in runners:
        r.step()  # warm-up (allocator, oneDNN primitives)
    for k in range(rounds):
        for r in runners[k % len(runners) :] + runners[: k % len(runners)]:
            t = time.perf_counter()
            for _ in range(steps):
                r.step()
            times[r.name].append((time.perf_counter() - t) / steps)
    return times


def run(precision: str, batch: Batch, rounds: int, steps: int, peak: float) -> dict:
    """Both contenders at one precision: FLOPs, step times, rates and ratios."""
    ours, peer = Ours(batch, precision), Peer(batch, precision)
    flops = {ours.name: count_flops(ours), peer.name: count_flops(peer)}
    times = measure([ours, peer], rounds, steps)
    out = {"precision": precision, "batch": len(batch), "peak_gflops": peak, "rows": []}
    for r in (ours, peer):
        best, f, n = min(times[r.name]), flops[r.name], len(batch)
        row = {
            "model": r.name,
            "samples_per_s": n / best,
            "median_samples_per_s": n / statistics.median(times[r.name]),
            "step_times_s": times[r.name],
            "gflop_per_sample": f["step"] / n / 1e9,
            "forward_encoder_gflop_per_sample": f["forward_encoder"] / n / 1e9,
            "forward_heads_gflop_per_sample": (f["forward"] - f["forward_encoder"]) / n / 1e9,
            "gflop_per_s": f["step"] / best / 1e9,
        }
        row["fraction_of_peak"] = row["gflop_per_s"] / peak
        out["rows"].append(row)
    o, p = out["rows"]
    out["ratio"] = o["samples_per_s"] / p["samples_per_s"]
    out["median_ratio"] = o["median_samples_per_s"] / p["median_samples_per_s"]
    return out


def report(res: dict) -> None:
    print(f"\n[{res['precision']}] peak {res['peak_gflops']:.0f} GFLOP/s")
    print(
        f"{'model':50s} {'samples/s':>9s} {'median':>6s} {'GFLOP/sample':>12s} "
        f"{'fwd: encoder':>12s} {'heads':>5s} {'GFLOP/s':>7s} {'of peak':>7s}"
    )
    for row in res["rows"]:
        print(
            f"{row['model']:50s} {row['samples_per_s']:9.2f} {row['median_samples_per_s']:6.2f} "
            f"{row['gflop_per_sample']:12.2f} {row['forward_encoder_gflop_per_sample']:12.2f} "
            f"{row['forward_heads_gflop_per_sample']:5.2f} {row['gflop_per_s']:7.1f} "
            f"{row['fraction_of_peak']:7.1%}"
        )
    for row in res["rows"]:
        rounds = " ".join(f"{t:.2f}" for t in row["step_times_s"])
        print(f"  s/step by round, {row['model'].split(' (')[0]}: {rounds}")
    print(f"ratio ours/peer: {res['ratio']:.2f}x best, {res['median_ratio']:.2f}x medians")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--boxes", type=int, default=36)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--system-malloc", action="store_true", help="see the module docstring")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.steps = 8, 1, 1
    kept = False if args.system_malloc else keep_freed_memory()
    torch.set_num_threads(args.threads)
    peaks = {"fp32": gemm_peak(), "bf16": gemm_peak(dtype=torch.bfloat16)}
    load = os.getloadavg()
    print(
        f"threads {args.threads}; matmul peak measured: fp32 {peaks['fp32']:.0f}, bf16 "
        f"{peaks['bf16']:.0f} GFLOP/s; CPU bf16: {'native' if cpu_has_bf16() else 'emulated'}; "
        f"freed memory {'kept' if kept else 'returned to the system'}; batch {args.batch}, "
        f"{args.boxes} boxes, {args.tokens} tokens; load average {load[0]:.2f}"
    )
    batch = make_batch(args.batch, args.boxes, args.tokens)
    results = []
    for precision in args.precision:
        results.append(run(precision, batch, args.rounds, args.steps, peaks[precision]))
        report(results[-1])
    if len(results) > 1:
        base = results[0]["rows"][0]["samples_per_s"]
        for res in results[1:]:
            print(
                f"ours {res['precision']} vs ours {results[0]['precision']}: "
                f"{res['rows'][0]['samples_per_s'] / base:.2f}x"
            )
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (at the start {load[0]:.2f})")
    if args.json:
        summary = {"peaks_gflops": peaks, "load_start": load, "load_end": os.getloadavg()}
        Path(args.json).write_text(json.dumps({**summary, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
