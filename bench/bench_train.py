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
machine is shared, so both see the same load); the best round of each is reported with the
ratio. FLOPs per step are counted by ``torch.utils.flop_counter`` and divided by the step time;
the fraction of peak uses a float32 matrix-multiply peak measured in the same run.
"""

from __future__ import annotations

import argparse
import json
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


def gemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matrix-multiply rate in GFLOP/s (torch, current thread count)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
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
        self.encoder = TextEncoder()
        self.model = build_model(ModelConfig(), TASKS, self.encoder, [f"c{i}" for i in range(1600)])
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-5, fused=True)
        self.stage = StageConfig(tasks=TASKS, shuffle_prob=0.05)
        self.needed = needed_corruptions(self.model.tasks.values())
        self.batch, self.precision = batch, precision
        self.gen = torch.Generator().manual_seed(0)

    def step(self) -> float:
        b = self.batch
        batch = Batch(**{**b.__dict__, "input_ids": b.input_ids.clone(), "feats": b.feats.clone()})
        batch = corrupt(batch, self.needed, self.stage, self.encoder, self.gen)
        with autocast(torch.device("cpu"), self.precision):
            losses = self.model(batch, TASKS)
        total = sum(sum(parts.values()) for parts in losses.values() if parts)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return float(total)


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

    def step(self) -> float:
        with autocast(torch.device("cpu"), self.precision):
            loss = self.model(**self.inputs).loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss)


def count_flops(runner: Ours | Peer) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        runner.step()
    return float(counter.get_total_flops())


def measure(runners: list, rounds: int, steps: int) -> dict[str, list[float]]:
    """Seconds per step, per round, alternating the runners so both see the same load."""
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for r in runners:
        r.step()  # warm-up (allocator, oneDNN primitives)
    for _ in range(rounds):
        for r in runners:
            t = time.perf_counter()
            for _ in range(steps):
                r.step()
            times[r.name].append((time.perf_counter() - t) / steps)
    return times


def run(precision: str, batch: Batch, rounds: int, steps: int, peak: float) -> dict:
    ours, peer = Ours(batch, precision), Peer(batch, precision)
    flops = {ours.name: count_flops(ours), peer.name: count_flops(peer)}
    times = measure([ours, peer], rounds, steps)
    out = {"precision": precision, "batch": len(batch), "rows": []}
    for r in (ours, peer):
        best = min(times[r.name])
        row = {
            "model": r.name,
            "samples_per_s": len(batch) / best,
            "median_samples_per_s": len(batch) / statistics.median(times[r.name]),
            "gflop_per_sample": flops[r.name] / len(batch) / 1e9,
            "gflop_per_s": flops[r.name] / best / 1e9,
        }
        row["fraction_of_peak"] = row["gflop_per_s"] / peak
        out["rows"].append(row)
    out["ratio"] = out["rows"][0]["samples_per_s"] / out["rows"][1]["samples_per_s"]
    out["median_ratio"] = (
        out["rows"][0]["median_samples_per_s"] / out["rows"][1]["median_samples_per_s"]
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--boxes", type=int, default=36)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds, args.steps = 8, 1, 1
    torch.set_num_threads(args.threads)
    peak = gemm_peak()
    print(
        f"threads {args.threads}; fp32 matmul peak measured: {peak:.0f} GFLOP/s; "
        f"CPU bf16: {'native' if cpu_has_bf16() else 'emulated'}; batch {args.batch}, "
        f"{args.boxes} boxes, {args.tokens} tokens"
    )
    batch = make_batch(args.batch, args.boxes, args.tokens)
    results = []
    for precision in args.precision:
        res = run(precision, batch, args.rounds, args.steps, peak)
        results.append(res)
        print(f"\n[{precision}]")
        print(
            f"{'model':52s} {'samples/s':>9s} {'GFLOP/sample':>12s} {'GFLOP/s':>8s} {'of peak':>7s}"
        )
        for row in res["rows"]:
            print(
                f"{row['model']:52s} {row['samples_per_s']:9.2f} {row['gflop_per_sample']:12.1f} "
                f"{row['gflop_per_s']:8.1f} {row['fraction_of_peak']:7.1%}"
            )
        print(f"ratio ours/peer: {res['ratio']:.2f}x (medians: {res['median_ratio']:.2f}x)")
    if len(results) > 1:
        base = results[0]["rows"][0]["samples_per_s"]
        for res in results[1:]:
            print(
                f"ours {res['precision']} vs ours {results[0]['precision']}: "
                f"{res['rows'][0]['samples_per_s'] / base:.2f}x"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_gflops": peak, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
