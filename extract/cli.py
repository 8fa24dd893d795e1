"""``msp extract``: detectron2 RoI features of an image source into WebDataset shards."""

from __future__ import annotations

import argparse
import logging
import sys

from extract.boxes import SELECTIONS
from extract.checkpoint import CheckpointError
from extract.given import GivenBoxesError
from extract.precision import PRECISIONS
from extract.preprocess import RESIZE_MODES
from extract.presets import PRESETS

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="msp extract",
        description="VG bottom-up-attention RoI features (boxes, 2048-d features, object and "
        "attribute labels) of every image in SRC, written as resumable WebDataset shards. "
        "'msp extract merge-manifests DIR' merges the records of a job split with --num-workers.",
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
        default="full",
        metavar="|".join(sorted(PRESETS)) + "|FILE.json",
        help="full: reference settings (600/1000 px, 300 RoIs); demo: light for CPUs; or a "
        "JSON file of Preset fields (min_size, max_size, pre_nms_topk, post_nms_topk, "
        "pooler_resolution)",
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
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="compute precision of the convolutions: fp32 (reference), bf16 (CPUs with "
        "AVX512-BF16/AMX, GPUs), fp16 (GPUs); the deviation from fp32 on the first image is "
        "measured and written to the manifest",
    )
    p.add_argument(
        "--no-precision-check",
        action="store_true",
        help="skip the fp32 comparison of the first image under bf16/fp16",
    )
    p.add_argument(
        "--decode-workers",
        type=int,
        default=1,
        metavar="N",
        help="background processes decoding and resizing images (0: inline)",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=1,
        metavar="N",
        help="split the job among N workers (machines or GPUs) writing into the same --out",
    )
    p.add_argument(
        "--worker-index",
        type=int,
        default=0,
        metavar="I",
        help="this worker's index, 0..N-1 (inputs are split by a hash of their key)",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")
    p.add_argument("--objects-vocab", metavar="FILE", help="objects_vocab.txt (1600 lines)")
    p.add_argument("--attributes-vocab", metavar="FILE", help="attributes_vocab.txt (400 lines)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def merge_main(argv: list[str]) -> int:
    """``msp extract merge-manifests DIR``: merge the per-worker records of a split job."""
    p = argparse.ArgumentParser(
        prog="msp extract merge-manifests",
        description="Write DIR/manifest.json, config.json and rejects.jsonl from the records of "
        "every worker of a job run with --num-workers (done automatically by the last worker).",
    )
    p.add_argument("out", metavar="DIR")
    args = p.parse_args(argv)
    from extract.partition import merge_manifests

    try:
        manifest = merge_manifests(args.out)
    except (OSError, ValueError) as exc:
        logger.error("msp extract merge-manifests: %s", exc)
        return 2
    if manifest is None:
        logger.error("%s: not every worker has finished (no complete set of manifests)", args.out)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``msp extract``; returns the exit status (2 for bad arguments/inputs)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["merge-manifests"]:
        return merge_main(argv[1:])
    args = build_parser().parse_args(argv)
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
            precision=args.precision,
            precision_check=not args.no_precision_check,
            decode_workers=args.decode_workers,
            num_workers=args.num_workers,
            worker_index=args.worker_index,
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
