"""Tiny real data for the trainer: feature shards (FeatureSample + ShardWriter), Parquet text
tables for three stages, a hard-negatives table, a class-name file, and a tiny config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpora.schema import FeatureSample
from corpora.shards import ShardWriter
from train.config import EvalConfig, ModelConfig, StageConfig, TrainConfig

NAMES = ["ball", "car", "tree", "dog", "man", "tennis racket"]
N_BOXES, FEAT_DIM, N_ATTR = 6, 16, 4
CAPTIONS = ["a man with a dog", "a red car near a tree", "the ball is on the grass"]


@dataclass
class TinyData:
    root: Path
    features: Path
    text_token: Path
    text_sentence: Path
    hard_negatives: Path
    objects_vocab: Path
    keys: list[str]
    missing_key: str


def write_table(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def make_tiny_data(root: Path, n_images: int = 10, per_shard: int = 4, seed: int = 0) -> TinyData:
    rng = np.random.default_rng(seed)
    keys = [f"img{i:03d}" for i in range(n_images)]
    features = root / "features"
    with ShardWriter(features, prefix="features", maxcount=per_shard) as writer:
        for key in keys:
            n = N_BOXES if key != keys[-1] else N_BOXES - 2  # one image with fewer boxes
            xy = rng.uniform(0, 200, (n, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(10, 100, (n, 2))], axis=1)
            sample = FeatureSample(
                key=key,
                boxes=boxes,
                features=rng.uniform(0, 2, (n, FEAT_DIM)),
                obj_ids=rng.integers(0, len(NAMES), n),
                obj_conf=rng.uniform(0.3, 1, n),
                attr_ids=rng.integers(0, N_ATTR, n),
                attr_conf=rng.uniform(0.3, 1, n),
                info={"image_w": 320, "image_h": 240, "box_mode": "fixed36"},
            )
            writer.write(sample.to_wds())
    missing = "img_nofeat"
    token_rows = [{"image_id": k, "text": ", ".join(NAMES[i % 6] for i in range(3))} for k in keys]
    token_rows.append({"image_id": missing, "text": "ball, car"})
    sentence_rows = []
    for i, key in enumerate(keys):
        split = "test" if i >= n_images - 4 else "train"
        for j in range(2):
            sentence_rows.append(
                {"image_id": key, "text": CAPTIONS[(i + j) % 3] + f" {i}", "split": split}
            )
    sentence_rows.append({"image_id": missing, "text": "a dog", "split": "train"})
    neg_rows = [
        {
            "image_id": k,
            "neighbours": [k] + [keys[(i + d) % n_images] for d in (1, 2, 3)],
            "similarities": [1.0, 0.9, 0.8, 0.7],
        }
        for i, k in enumerate(keys[:-2])  # the last two images have no neighbours
    ]
    vocab = root / "objects_vocab.txt"
    vocab.write_text("\n".join(NAMES[:-1] + ["tennis racket,tennis racquet"]))
    return TinyData(
        root=root,
        features=features,
        text_token=write_table(root / "text_token.parquet", token_rows),
        text_sentence=write_table(root / "text_sentence.parquet", sentence_rows),
        hard_negatives=write_table(root / "hard_negatives.parquet", neg_rows),
        objects_vocab=vocab,
        keys=keys,
        missing_key=missing,
    )


def tiny_config(data: TinyData, out: Path, steps: tuple[int, int] = (4, 4)) -> TrainConfig:
    """Two stages (T-like and S-like), hidden 32, one cross layer."""
    return TrainConfig(
        features=str(data.features),
        hard_negatives=str(data.hard_negatives),
        objects_vocab=str(data.objects_vocab),
        out=str(out),
        device="cpu",
        num_workers=0,
        threads=1,
        shuffle_buffer=8,
        log_every=2,
        checkpoint_every=2,
        keep_checkpoints=2,
        model=ModelConfig(
            hidden=32,
            heads=2,
            cross_layers=1,
            intermediate=64,
            visual_feat_dim=FEAT_DIM,
            num_boxes=N_BOXES,
            num_objects=len(NAMES),
            num_attributes=N_ATTR,
        ),
        stages=[
            StageConfig(
                name="T",
                text=str(data.text_token),
                tasks=["mlm", "mrfr", "moc", "ifrs"],
                steps=steps[0],
                batch_size=4,
                lr=1e-3,
                shuffle_prob=0.5,
            ),
            StageConfig(
                name="S",
                text=str(data.text_sentence),
                tasks=["mlm", "mrfr", "moc", "tits", "itm_hs"],
                steps=steps[1],
                batch_size=4,
                lr=1e-3,
            ),
        ],
        eval=EvalConfig(captions=str(data.text_sentence), split="test", batch_size=16),
    )


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> TinyData:
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def make_config():
    return tiny_config


@pytest.fixture(scope="session")
def parquet_writer():
    return write_table
