"""The demo report: markdown with per-stage counts and timings, retrieval per curriculum stage,
and the trainer's PNG loss plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from corpora import jobio


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return "" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines


def _stage_rows(stages: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for st in stages:
        s = st["summary"]
        counts = s if "inputs" in s else s.get("given_boxes", {})
        row = [st["name"], f"{st['seconds']:.1f}", counts.get("inputs"), counts.get("kept"),
               counts.get("rejected"), ""]  # fmt: skip
        if st["name"] == "sample":
            c = s.get("counts", {})
            row[-1] = (f"{c.get('images')} images, {c.get('vg_regions')} regions, "
                       f"{c.get('web_pages')} web pages")  # fmt: skip
        elif st["name"] == "train":
            row[-1] = ", ".join(f"{x['name']}: {x['steps']} steps" for x in s.get("stages", []))
        elif st["name"] == "extract":
            row[-1] = "given boxes; plus a 36-box slice"
        rows.append(row)
    return rows


def _ground_truth_lines(gt: dict[str, Any]) -> list[str]:
    rows = [
        [name, v.get("tp"), v.get("fp"), v.get("fn"), v.get("precision"), v.get("recall")]
        for name, v in sorted(gt.get("filters", {}).items())
    ]
    lines = ["", "### LAIT filters against the sample's ground truth", ""]
    lines += [
        "The sample's scenes are drawings, so the demo turns off the non-natural filter's "
        "graphic and non-photo cues (`--max-graphic 1 --max-nonphoto 1`); its text-area cue and "
        "the adult-image filter stay on.",
        "",
    ]
    lines += _table(["filter", "TP", "FP", "FN", "precision", "recall"], rows)
    if "overall" in gt:
        o = gt["overall"]
        lines += [
            "",
            f"Kept pairs: precision {_fmt(o.get('precision'))}, "
            f"recall {_fmt(o.get('recall'))} ({o.get('kept')} kept, {o.get('expected')} expected).",
        ]
    return lines


def _train_lines(train: dict[str, Any], out: Path) -> list[str]:
    lines = ["", "## Pre-training curriculum and zero-shot retrieval", ""]
    if train.get("model_note"):
        lines += [train["model_note"], ""]
    evals = train.get("eval", {})
    keys = ["tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum"]
    order = [st["name"] for st in train.get("stages", [])] or list(evals)
    rows = [[stage, *[evals[stage].get(k) for k in keys]] for stage in order if stage in evals]
    if rows:
        lines += _table(
            ["after stage", "TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "RSUM"], rows
        )
    losses = {st["name"]: st.get("final_losses", {}) for st in train.get("stages", [])}
    if losses:
        lines += ["", "Last logged losses per stage:", ""]
        tasks = sorted({t for v in losses.values() for t in v})
        lines += _table(
            ["stage", *tasks], [[s, *[v.get(t) for t in tasks]] for s, v in losses.items()]
        )
    plots = sorted(Path(train.get("out", out / "train")).glob("plots/*.png"))
    if plots:
        lines += ["", "### Loss curves", ""]
        lines += [f"![{p.stem}]({os.path.relpath(p, out)})" for p in plots]
    return lines


def write_report(out: Path, record: dict[str, Any]) -> Path:
    """Write ``out/report.md`` from the demo record; returns its path."""
    stages = record["stages"]
    by_name = {st["name"]: st["summary"] for st in stages}
    lines = ["# msp demo report", ""]
    if record.get("banner"):
        lines += [f"> **WARNING:** {record['banner']}", ""]
    lines += [f"Total wall time: {record['seconds']:.1f} s on the embedded sample corpus.", ""]
    lines += ["## Stages", ""]
    lines += _table(
        ["stage", "seconds", "inputs", "kept", "rejected", "notes"], _stage_rows(stages)
    )
    lait = by_name.get("lait", {})
    if lait.get("steps"):
        lines += ["", "### LAIT rejections per step", ""]
        rows = [[step, v.get("rejected", 0)] for step, v in sorted(lait["steps"].items())]
        lines += _table(["step", "rejected"], rows)
    if lait.get("ground_truth"):
        lines += _ground_truth_lines(lait["ground_truth"])
    ext = by_name.get("extract", {})
    if ext:
        lines += ["", "### Features", ""]
        g, f = ext.get("given_boxes", {}), ext.get("fixed36_slice", {})
        lines += [
            f"- given boxes (annotated objects): {g.get('kept')} images, {g.get('rejected')} rejected",
            f"- 36 fixed boxes (a thin slice): {f.get('kept')} images",
            f"- detector weights: {'RANDOM (no checkpoint)' if ext.get('random_init') else 'checkpoint'}",
        ]
    if "train" in by_name:
        lines += _train_lines(by_name["train"], out)
    path = out / "report.md"
    jobio.atomic_write_text(path, "\n".join(lines) + "\n")
    return path
