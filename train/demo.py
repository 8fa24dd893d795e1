"""``msp demo``: every stage on the embedded sample corpus, then a report.

Stages run in order, each in-process and each writing into its own folder under ``--out``:

sample -> lait (Beam) -> phrases (Beam) -> captions (Beam) -> token-labels (Beam)
-> extract (detectron2, given boxes, plus a 36-box slice) -> hard-negatives (Beam)
-> train (T -> P -> S with retrieval after each stage) -> report.

A stage whose output is already complete is skipped (every job checks its own manifest), so a
killed demo resumes where it stopped. Without ``--checkpoint`` the detector is randomly
initialised: the console, the manifest and the report say so.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from corpora import jobio

logger = logging.getLogger(__name__)


@dataclass
class StageResult:
    name: str
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


def _manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / "manifest.json").read_text())


def _counts(manifest: dict[str, Any]) -> dict[str, Any]:
    keys = ("inputs", "kept", "rejected", "steps", "warnings")
    return {k: manifest[k] for k in keys if k in manifest}


class Demo:
    """The demo's stages; each method returns a summary dict for the report."""

    def __init__(self, out: Path, args: argparse.Namespace) -> None:
        self.out = out
        self.args = args
        self.sample = out / "sample"

    # -- data ------------------------------------------------------------------------------
    def stage_sample(self) -> dict[str, Any]:
        from corpora.sample import generate

        if (self.sample / "manifest.json").exists():
            return {"skipped": True, **json.loads((self.sample / "manifest.json").read_text())}
        return generate(self.sample, seed=self.args.seed, num_scenes=self.args.num_scenes)

    def _beam(self, module: str, argv: list[str], out: Path) -> dict[str, Any]:
        import importlib

        rc = importlib.import_module(module).run([*argv, "--out", str(out)])
        if rc:
            raise RuntimeError(f"{module} exited with {rc}")
        return _counts(_manifest(out))

    def stage_lait(self) -> dict[str, Any]:
        from pipeline.lait_eval import evaluate_against_ground_truth

        out = self.out / "lait"
        argv = [
            "--input",
            str(self.sample / "web"),
            "--url-map",
            f"http://sample.msp.invalid/={self.sample / 'web'}/",
            # The sample's scenes are drawings: the non-natural filter's graphic and non-photo
            # cues would reject them (their text-area and adult cues stay on).
            "--max-graphic",
            "1",
            "--max-nonphoto",
            "1",
        ]
        summary = self._beam("pipeline.lait", argv, out)
        summary["ground_truth"] = evaluate_against_ground_truth(out, self.sample)
        return summary

    def stage_phrases(self) -> dict[str, Any]:
        return self._beam(
            "pipeline.phrases", ["--vg", str(self.sample / "vg")], self.out / "phrases"
        )

    def stage_captions(self) -> dict[str, Any]:
        coco = sorted(str(p) for p in (self.sample / "coco").glob("captions_*.json"))
        return self._beam("pipeline.captions", ["--coco", *coco], self.out / "captions")

    def stage_token_labels(self) -> dict[str, Any]:
        argv = ["--objects", str(self.sample / "vg" / "objects.json")]
        return self._beam("pipeline.token_labels", argv, self.out / "token_labels")

    # -- features --------------------------------------------------------------------------
    def stage_extract(self) -> dict[str, Any]:
        from extract.run import extract

        common = {"checkpoint": self.args.checkpoint, "preset": "demo", "progress": True}
        given = extract(
            self.sample / "images",
            self.out / "features",
            boxes="given",
            given_boxes=self.sample / "vg" / "objects.json",
            batch_size=4,
            **common,
        )
        fixed = extract(
            self.sample / "images",
            self.out / "features36",
            boxes="36",
            limit=self.args.fixed_box_images,
            batch_size=2,
            **common,
        )
        return {"given_boxes": _counts(given), "fixed36_slice": _counts(fixed), **_random(given)}

    def stage_hard_negatives(self) -> dict[str, Any]:
        argv = ["--features", str(self.out / "features"), "--top-k", str(self.args.top_k)]
        return self._beam("pipeline.hard_negatives", argv, self.out / "hard_negatives")

    # -- model -----------------------------------------------------------------------------
    def stage_train(self) -> dict[str, Any]:
        from train.config import load_config
        from train.run import train

        cfg = load_config(
            self.args.train_config,
            overrides=[
                f"features={self.out / 'features'}",
                f"out={self.out / 'train'}",
                f"hard_negatives={self.out / 'hard_negatives'}",
                f"eval.captions={self.out / 'captions'}",
                f"stages.T.text={self.out / 'token_labels'}",
                f"stages.P.text={self.out / 'phrases'}",
                f"stages.S.text={self.out / 'captions'}",
                f"seed={self.args.seed}",
                *self.args.train_overrides,
            ],
        )
        summary = train(cfg, progress=True, resume="latest")  # a killed demo resumes
        m = cfg.model
        summary["model_note"] = (
            f"Model: a REDUCED LXMERT-S for a 2-core CPU ({m.cross_layers} cross-modality layers, "
            f"hidden {m.hidden}, {m.heads} heads; full size is 5 / 768 / 12, "
            "`train/configs/msp.yaml`). Features are pooled for the annotated object boxes (the "
            "extractor's given-boxes mode) and stage T uses their annotated names as labels. "
            "With a randomly initialised detector and a few hundred steps, retrieval near chance "
            "(R@1 = 100/N % for N test images) is the expected outcome; the table shows the "
            "machinery, not the paper's result."
        )
        return summary


def _random(manifest: dict[str, Any]) -> dict[str, Any]:
    return {"random_init": bool(manifest.get("random_init", False))}


STAGES: list[tuple[str, str]] = [
    ("sample", "embedded sample corpus"),
    ("lait", "LAIT web image-text pairs (Beam)"),
    ("phrases", "VG phrases without verbs (Beam, spaCy)"),
    ("captions", "caption tables with splits (Beam)"),
    ("token_labels", "stage-T label text (Beam)"),
    ("extract", "detectron2 RoI features"),
    ("hard_negatives", "top-k similar images (Beam)"),
    ("train", "T -> P -> S pre-training + retrieval"),
]

RANDOM_BANNER = (
    "NO DETECTOR CHECKPOINT GIVEN: features come from a deterministic RANDOMLY INITIALISED "
    "detector of the VG shape. They carry little meaning; the demo exercises the machinery."
)


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo = Demo(out, args)
    if args.checkpoint is None:
        logger.warning("\n%s\n%s\n%s", "!" * 100, RANDOM_BANNER, "!" * 100)
    results: list[StageResult] = []
    started = time.time()
    bar = tqdm(STAGES, desc="msp demo", unit="stage")
    for name, text in bar:
        bar.set_postfix_str(name)
        logger.info("== stage %s: %s", name, text)
        fn: Callable[[], dict[str, Any]] = getattr(demo, f"stage_{name}")
        t0 = time.time()
        summary = fn()
        results.append(StageResult(name, time.time() - t0, summary))
        logger.info("== stage %s done in %.1f s", name, results[-1].seconds)
    total = time.time() - started

    from train.report import write_report

    record = {
        "stages": [r.__dict__ for r in results],
        "seconds": total,
        "random_init_detector": args.checkpoint is None,
        "banner": RANDOM_BANNER if args.checkpoint is None else None,
    }
    jobio.atomic_write_json(out / "demo.json", record)
    report = write_report(out, record)
    logger.info("demo finished in %.1f s; report: %s", total, report)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msp demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--checkpoint", default=None, help="VG detector checkpoint (.pkl/.pth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-scenes", type=int, default=300)
    parser.add_argument(
        "--fixed-box-images", type=int, default=4, help="images in the 36-box slice"
    )
    parser.add_argument("--top-k", type=int, default=20, help="hard negatives per image")
    parser.add_argument("--train-config", default=str(Path(__file__).parent / "configs/demo.yaml"))
    parser.add_argument("train_overrides", nargs="*", help="key=value overrides for training")
    args = parser.parse_args(argv)
    run_demo(args)
    return 0
