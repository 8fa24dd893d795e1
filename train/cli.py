"""Command line: ``msp train`` and ``msp eval retrieval``.

msp train --config train/configs/demo.yaml [--resume latest] [key=value ...]
msp eval retrieval --checkpoint RUN/checkpoints/stage02-S-final.pt --split test [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from train.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def train_main(argv: list[str] | None = None) -> int:
    """``msp train``: multi-stage pre-training from a YAML config plus ``key=value`` overrides."""
    parser = argparse.ArgumentParser(
        prog="msp train",
        description="Multi-stage pre-training. Overrides: dotted keys, e.g. model.hidden=256 "
        "stages.0.steps=10 eval.max_images=100",
    )
    parser.add_argument("--config", required=True, help="YAML file (train/configs/*.yaml)")
    parser.add_argument("--resume", help="'latest' (newest checkpoint in out) or a checkpoint path")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        cfg = TrainConfig.load(args.config, args.overrides)
    except ConfigError as exc:
        print(f"msp train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    from train.run import train

    try:
        summary = train(cfg, progress=not args.no_progress, resume=args.resume)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        log.error("training failed: %s", exc)
        return 1
    log.info("run folder: %s; last checkpoint: %s", summary["out"], summary["checkpoint"])
    return 0


def eval_main(argv: list[str] | None = None) -> int:
    """``msp eval retrieval``: zero-shot image-text retrieval with a checkpoint's ITM head."""
    parser = argparse.ArgumentParser(prog="msp eval", description="evaluate a checkpoint")
    sub = parser.add_subparsers(dest="what", required=True)
    ret = sub.add_parser("retrieval", help="image-text retrieval, R@1/5/10 both ways and RSUM")
    ret.add_argument("--checkpoint", required=True)
    ret.add_argument("--split", default="test")
    ret.add_argument("--out", help="folder for retrieval_<split>.json (default: the run folder)")
    ret.add_argument("--no-progress", action="store_true")
    ret.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config changes, e.g. eval.captions=PATH features=DIR eval.max_images=N",
    )
    args = parser.parse_args(argv)
    _setup_logging()
    from train.run import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(
            args.checkpoint, args.split, args.out, args.overrides, progress=not args.no_progress
        )
    except (ConfigError, FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        log.error("evaluation failed: %s", exc)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0
