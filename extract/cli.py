"""``msp extract``: detectron2 RoI features of an image source into WebDataset shards."""

from __future__ import annotations

import argparse
import logging
import sys

from extract.boxes import SELECTIONS
from extract.checkpoint import CheckpointError
from extract.given import GivenBoxesError
from extract.preprocess import RESIZE_MODES
from extract.presets import PRESETS

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="msp extract",
        description="VG bottom-up-attention RoI features (boxes, 2048-d features, object and "
        "attribute labels) of every image in SRC, written as resumable WebDataset shards.",
    )
    p.add_argument(
        "--images",
        required=True,
        metavar="SRC",
        help="image folder, image shards (.tar, folder of .tar, brace pattern) "
        "or a text file listing image paths",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (resumable)")
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="detector weights (.pkl converted bottom-up-attention checkpoint, or "
        ".pth); without it a seeded RANDOM detector runs and every output says so",
    )
    p.add_argument(
        "--boxes",
        default=None,
        metavar="36|LO-HI|given",
        help="36 boxes per image (default), an adaptive range such as 10-100 (confident "
        "boxes, at least LO, at most HI), or 'given' (with --given-boxes)",
    )
    p.add_argument(
        "--given-boxes",
        metavar="FILE",
        help="pool these boxes instead of detecting: JSONL {key, boxes} or a VG objects.json",
    )
    p.add_argument(
        "--selection",
        choices=SELECTIONS,
        default="caffe",
        help="caffe: per-class NMS over raw proposals (Caffe original, default); "
        "maxnms: the detectron2 port's class-agnostic NMS on regressed boxes",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="full",
        help="full: reference settings (600/1000 px, 300 RoIs); demo: light for CPUs",
    )
    p.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default="caffe",
        help="caffe: float bilinear after mean subtraction (default); pillow: "
        "uint8 Pillow bilinear like the detectron2 port",
    )
    p.add_argument("--batch-size", type=int, default=2, metavar="N", help="images per forward")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N inputs only")
    p.add_argument("--maxcount", type=int, default=1000, metavar="N", help="samples per shard")
    p.add_argument(
        "--workers",
        type=int,
        choices=(0, 1),
        default=1,
        help="decoding workers (1: a background process; 0: inline)",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")
    p.add_argument("--objects-vocab", metavar="FILE", help="objects_vocab.txt (1600 lines)")
    p.add_argument("--attributes-vocab", metavar="FILE", help="attributes_vocab.txt (400 lines)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``msp extract``; returns the exit status (2 for bad arguments/inputs)."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.given_boxes and args.boxes not in (None, "given"):
        logger.error("--boxes %s does not apply with --given-boxes (all are kept)", args.boxes)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from extract.run import extract

    try:
        extract(
            args.images,
            args.out,
            checkpoint=args.checkpoint,
            boxes=args.boxes or ("given" if args.given_boxes else "36"),
            given_boxes=args.given_boxes,
            selection=args.selection,
            preset=args.preset,
            batch_size=args.batch_size,
            limit=args.limit,
            progress=not args.no_progress,
            resize=args.resize,
            maxcount=args.maxcount,
            num_workers=args.workers,
            device=args.device,
            objects_vocab=args.objects_vocab,
            attributes_vocab=args.attributes_vocab,
        )
    except (CheckpointError, GivenBoxesError, FileNotFoundError, ValueError) as exc:
        logger.error("msp extract: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
