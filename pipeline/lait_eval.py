"""Score a LAIT output against the sample corpus's ground truth, filter by filter.

The sample (``msp sample``) writes ``ground_truth/lait.jsonl``: one line per candidate
(``page_url``, ``image_url``, ``expected`` kept/rejected, ``reason``, ``also``: every other rule
that fires). The job's outcome for a candidate is read from its outputs (``pairs-*.parquet``:
kept; ``rejects-*.jsonl``: step and reason) and mapped to the sample's reason names with
:func:`filter_name`. For each filter R:

- TP: the job rejected the candidate for R and the ground truth lists R (first or ``also``);
- FP: the job rejected it for R and the ground truth does not list R (it may be a kept pair);
- FN: the ground truth's first reason is R and the job neither rejected the candidate for a
  reason the ground truth lists nor for R (it kept it, or rejected it for a wrong reason);
- precision = TP / (TP + FP); recall = (support - FN) / support, support = candidates whose
  first ground-truth reason is R.

``overall`` compares the kept sets. Usage: ``python -m pipeline.lait_eval OUT SAMPLE_DIR``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

KEPT = "kept"
TEXT_FILTERS = {"no text": "no_text", "empty": "no_text", "boilerplate": "boilerplate_text",
                "too short": "text_length", "too long": "text_length", "spam": "spam_text",
                "adult": "adult_text", "oov": "oov_text",
                "not english": "non_english_text"}  # fmt: skip


def filter_name(step: str, reason: str) -> str:
    """The sample's name for the rule behind one of this job's reject reasons."""
    r = reason.lower()
    if step == "pages":
        if r.startswith("language"):
            return "non_english"
        return "not_dominant" if r.startswith("not dominant") else "page_error"
    if step == "images":
        return "tiny_image" if r.startswith("too small") else "broken_image"
    if step == "text":
        return TEXT_FILTERS.get(r.split(":")[0].split(" (")[0], "text_other")
    if step == "filters":
        return "adult_image" if r.startswith("adult") else "non_natural"
    if step == "aggregate":
        return "shared_description" if r.startswith("shared") else "duplicate_image"
    return "low_score" if step == "score" else step


def job_outcomes(out: str | Path) -> tuple[dict[tuple[str, str], str], dict[tuple, str]]:
    """(page_url, image_url) -> filter name or ``kept``; and the kept pairs' captions."""
    import pyarrow.parquet as pq

    out = Path(out)
    outcome: dict[tuple[str, str], str] = {}
    captions: dict[tuple[str, str], str] = {}
    for path in sorted(out.glob("pairs-*.parquet")):
        for row in pq.read_table(path, columns=["page_url", "image_url", "caption"]).to_pylist():
            key = (row["page_url"], row["image_url"])
            outcome[key], captions[key] = KEPT, row["caption"]
    for path in sorted(out.glob("rejects-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            page, _, image = rec["input_id"].partition(" ")
            if image:  # candidates only: pages without images are not ground-truth lines
                outcome[(page, image)] = filter_name(rec["step"], rec["reason"])
    return outcome, captions


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def evaluate_against_ground_truth(out: str | Path, sample: str | Path) -> dict[str, Any]:
    """Per-filter TP/FP/FN/precision/recall and the kept-set precision/recall (module doc)."""
    truth = [
        json.loads(line)
        for line in (Path(sample) / "ground_truth" / "lait.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    mine, captions = job_outcomes(out)
    listed: dict[tuple[str, str], list[str]] = {}
    for t in truth:
        key = (t["page_url"], t["image_url"])
        listed[key] = [] if t["expected"] == KEPT else [t["reason"], *(t.get("also") or [])]
    names = sorted({r for rs in listed.values() for r in rs} | set(mine.values()) - {KEPT})
    filters: dict[str, dict[str, Any]] = {}
    for name in names:
        tp = sum(mine.get(k) == name and name in rs for k, rs in listed.items())
        fp = sum(mine.get(k) == name and name not in rs for k, rs in listed.items())
        primary = [k for k, rs in listed.items() if rs and rs[0] == name]
        fn = sum(mine.get(k) not in listed[k] for k in primary)
        filters[name] = {"support": len(primary), "tp": tp, "fp": fp, "fn": fn,
                         "precision": _ratio(tp, tp + fp),
                         "recall": _ratio(len(primary) - fn, len(primary))}  # fmt: skip
    expected = {k for k, rs in listed.items() if not rs}
    kept = {k for k in listed if mine.get(k) == KEPT}
    same_text = sum(
        " ".join(captions[k].lower().split()).strip(" .") == " ".join(t["text"].lower().split()).strip(" .")
        for t in truth if (k := (t["page_url"], t["image_url"])) in kept and k in expected
    )  # fmt: skip
    return {
        "candidates": len(listed),
        "missing": sorted(f"{p} {i}" for p, i in listed if (p, i) not in mine),
        "extra": sorted(f"{p} {i}" for p, i in mine if (p, i) not in listed),
        "filters": filters,
        "overall": {
            "kept": len(kept),
            "expected": len(expected),
            "tp": len(kept & expected),
            "precision": _ratio(len(kept & expected), len(kept)),
            "recall": _ratio(len(kept & expected), len(expected)),
            "same_text": same_text,
        },
    }


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_against_ground_truth`'s result."""
    lines = [
        f"{'filter':<20}{'support':>8}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}"
    ]
    for name, f in sorted(result["filters"].items()):
        lines.append(f"{name:<20}{f['support']:>8}{f['tp']:>5}{f['fp']:>5}{f['fn']:>5}"
                     f"{f['precision']!s:>11}{f['recall']!s:>8}")  # fmt: skip
    o = result["overall"]
    lines.append(f"kept pairs: {o['kept']} kept, {o['expected']} expected, precision "
                 f"{o['precision']}, recall {o['recall']}, same text {o['same_text']}/{o['tp']}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.lait_eval OUT SAMPLE_DIR``: log the table, print the JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        logger.error("usage: python -m pipeline.lait_eval OUT SAMPLE_DIR")
        return 2
    result = evaluate_against_ground_truth(args[0], args[1])
    logger.info("\n%s", format_table(result))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(main())
