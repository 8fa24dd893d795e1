"""Training data throughput: the trainer's data path from feature shards, with no model.

    python bench/bench_loader.py                 # 2,000 images, 10,000 captions, 0/1/2 workers
    python bench/bench_loader.py --quick         # 400 images, fewer batches (a smoke run)

Data, written by the script with the project's own writers (a temporary folder, removed after):
``--images`` synthetic feature samples (``corpora.schema.FeatureSample``: 36 boxes, 2048-d
float16 features, object/attribute ids and confidences, image size) in shards of 1,000 written
by ``corpora.shards.ShardWriter``, as the extractor writes them; a stage-S text table with
``--captions`` captions per image (COCO has five) of 8-14 words; a hard-negatives table with 100
neighbours per image.

Measured: ``train.data.StageStream`` + ``train.data.make_loader`` exactly as a stage-S training
part configures them (ITM-HS on: half of the pairs get a hard-negative image fetched by key from
the shards; shuffle buffer 1,000 per worker; batch 32, 36 boxes, 20 tokens) with 0, 1 and 2
DataLoader workers: read tar -> join texts -> shuffle -> negative draw -> decode (float16 ->
float32, padding) -> tokenise -> collate. The first batch (worker start-up and the shuffle
buffer's fill) is timed apart; samples/s is the steady rate over the following batches.

The model's consumption is our fp32 training step (``bench_train.Ours``: LXMERT-S with every
pre-training loss, batch 32) timed in the same run; the ratio loader/model must exceed 5 for
the loader never to hold training up. Both are measured alone: in training the two share the
cores, so each worker's time is taken from the model.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from corpora.schema import FeatureSample  # noqa: E402
from corpora.shards import ShardWriter  # noqa: E402
from train.data import FEATURE_PREFIX, StageStream, make_loader  # noqa: E402
from train.text import TextEncoder  # noqa: E402

CAPTION_WORDS = (
    "a man woman child dog cat horse bus train plate of food on the table next to red blue green "
    "small large old young standing sitting riding holding in front with near under over street "
    "field beach kitchen room two three people group white black wooden tall"
)


def write_data(root: Path, images: int, captions: int, per_shard: int, seed: int = 0) -> dict:
    """Feature shards, a caption table and a hard-negatives table under ``root``."""
    rng = np.random.default_rng(seed)
    keys = [f"img{i:07d}" for i in range(images)]
    features = root / "features"
    with ShardWriter(features, prefix=FEATURE_PREFIX, maxcount=per_shard) as writer:
        for key in keys:
            xy = rng.uniform(0, 400, (36, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(10, 200, (36, 2))], axis=1)
            sample = FeatureSample(
                key=key,
                boxes=boxes,
                features=np.maximum(rng.standard_normal((36, 2048), np.float32), 0),
                obj_ids=rng.integers(0, 1600, 36),
                obj_conf=rng.uniform(0.2, 1, 36),
                attr_ids=rng.integers(0, 400, 36),
                attr_conf=rng.uniform(0.2, 1, 36),
                info={"image_w": 640, "image_h": 480, "box_mode": "fixed36"},
            )
            writer.write(sample.to_wds())
    pick, words = random.Random(seed), CAPTION_WORDS.split()
    rows = [
        {
            "image_id": key,
            "text": " ".join(pick.choices(words, k=pick.randint(8, 14))),
            "split": "train",
        }
        for key in keys
        for _ in range(captions)
    ]
    text = root / "captions.parquet"
    pq.write_table(pa.Table.from_pylist(rows), text)
    negatives = [
        {"image_id": key, "neighbours": [key, *pick.sample(keys, 100)], "similarities": [1.0] * 101}
        for key in keys
    ]
    hard = root / "hard_negatives.parquet"
    pq.write_table(pa.Table.from_pylist(negatives), hard)
    size = sum(p.stat().st_size for p in features.glob("*.tar"))
    return {"features": features, "text": text, "hard": hard, "rows": len(rows), "bytes": size}


def time_loader(data: dict, encoder: TextEncoder, workers: int, batches: int, batch: int) -> dict:
    """Seconds to the first batch, then the steady samples/s over ``batches`` more."""
    stream = StageStream(
        data["features"],
        data["text"],
        encoder,
        batch_size=batch,
        num_boxes=36,
        feat_dim=2048,
        negative_prob=0.5,
        hard_negatives=data["hard"],
        shuffle_buffer=1000,
    )
    start = time.perf_counter()
    it = iter(make_loader(stream, workers))
    first = next(it)
    first_s = time.perf_counter() - start
    assert first.feats.shape == (batch, 36, 2048) and first.input_ids.shape[1] <= 20
    matched = 0
    start = time.perf_counter()
    for _ in range(batches):
        matched += int(next(it).matched.sum())
    seconds = time.perf_counter() - start
    del it
    return {
        "workers": workers,
        "first_batch_s": first_s,
        "samples_per_s": batches * batch / seconds,
        "negatives": 1 - matched / (batches * batch),
    }


def model_rate(batch: int, steps: int) -> dict:
    """Samples/s of our fp32 training step (best and median of ``steps`` timed steps)."""
    from bench_train import Ours, make_batch

    ours = Ours(make_batch(batch, 36, 20), "fp32")
    ours.step()  # warm-up
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        ours.step()
        times.append(time.perf_counter() - t)
    return {"best": batch / min(times), "median": batch / statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--captions", type=int, default=5, help="captions per image")
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=100, help="timed batches per set-up")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", help="where to write the data (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.batches, args.per_shard, args.model_steps = 400, 20, 200, 1
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="bench_loader_", dir=args.workdir))
    try:
        t = time.perf_counter()
        data = write_data(root, args.images, args.captions, args.per_shard)
        print(
            f"wrote {args.images} feature samples ({data['bytes'] / 1e6:.0f} MB in shards of "
            f"{args.per_shard}) and {data['rows']} captions in {time.perf_counter() - t:.0f} s"
        )
        encoder = TextEncoder()
        rows = [time_loader(data, encoder, w, args.batches, args.batch) for w in args.workers]
        model = model_rate(args.batch, args.model_steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\nmodel (ours, fp32, batch {args.batch}, {args.threads} threads): "
        f"{model['best']:.2f} samples/s best, {model['median']:.2f} median"
    )
    print(
        f"{'workers':>7s} {'first batch s':>13s} {'samples/s':>9s} {'x model':>7s} {'negatives':>9s}"
    )
    for row in rows:
        row["ratio"] = row["samples_per_s"] / model["best"]
        print(
            f"{row['workers']:7d} {row['first_batch_s']:13.2f} {row['samples_per_s']:9.0f} "
            f"{row['ratio']:6.1f}x {row['negatives']:9.0%}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model, "loader": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
