"""Stage data: feature shards joined with a stage's text table, streamed into batches.

One example = one text row whose ``image_id`` has a feature sample (stage S has several captions
per image, hence several examples per image). The stream is an explicit pipeline, webdataset
style, run inside each DataLoader worker:

    useful shards -> per-epoch shuffle -> split by worker -> read tar -> join texts
    -> shuffle buffer -> ITM negative draw -> decode -> batch

Every worker's stream is endless (epoch after epoch), so the DataLoader's round-robin over
workers is exact and global batch ``g`` is batch ``g // W`` of worker role ``g % W``. That makes
resuming deterministic: worker roles are rotated by the start batch and each role skips the
examples it already produced (whole epochs by arithmetic on the shard sidecars' key lists, the
current epoch by replaying the tar reads without decoding). Only shards that hold at least one
example are streamed, and a loader never uses more workers than such shards, so no worker idles.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from corpora.schema import FeatureSample
from corpora.shards import ShardIndex, completed_shards
from train.tables import read_hard_negatives, read_text_table
from train.text import TextEncoder

log = logging.getLogger(__name__)
FEATURE_PREFIX = "features"


@dataclass
class Batch:
    """A training or evaluation batch. B pairs, L = max text length, N = regions, D = feat dim.

    Inputs: ``input_ids``/``position_ids`` int64 [B,L], ``attention_mask`` bool [B,L];
    ``feats`` float32 [B,N,D] (detector features), ``boxes`` float32 [B,N,4] (x1,y1,x2,y2 divided
    by image width/height, in [0,1]), ``visual_mask`` bool [B,N] (False on padding);
    ``obj_ids``/``attr_ids`` int64 [B,N], ``obj_conf``/``attr_conf`` float32 [B,N];
    ``matched`` bool [B] (False where ITM replaced the image). ``text_keys``/``image_keys``: the
    image the text belongs to and the image shown. The corruption step (``train.tasks.corrupt``)
    fills the optional fields: ``input_ids_orig`` [B,L]; ``mlm_labels`` int64 [B,L] (-100 =
    ignore); ``feats_orig`` [B,N,D]; ``region_mask`` bool [B,N]; ``shuffled`` bool [B,N].
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    feats: torch.Tensor
    boxes: torch.Tensor
    visual_mask: torch.Tensor
    obj_ids: torch.Tensor
    obj_conf: torch.Tensor
    attr_ids: torch.Tensor
    attr_conf: torch.Tensor
    matched: torch.Tensor
    text_keys: list[str]
    image_keys: list[str]
    input_ids_orig: torch.Tensor | None = None
    mlm_labels: torch.Tensor | None = None
    feats_orig: torch.Tensor | None = None
    region_mask: torch.Tensor | None = None
    shuffled: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in values.items()})

    def to(self, device: torch.device | str) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self) -> Batch:
        """Called by the DataLoader's pin-memory thread (CUDA runs)."""
        return self._map(lambda t: t.pin_memory())


def decode_image(raw: dict[str, Any], num_boxes: int, feat_dim: int) -> dict[str, np.ndarray]:
    """A raw feature sample -> arrays padded/truncated to ``num_boxes`` regions.

    Returns feats float32 [N,D], boxes float32 [N,4] normalised, visual_mask bool [N], obj_ids,
    attr_ids int64 [N], obj_conf, attr_conf float32 [N]. Regions past ``num_boxes`` are dropped
    (the extractor stores them in detector order).
    """
    s = FeatureSample.from_wds(raw)
    if s.features.shape[1] != feat_dim:
        raise ValueError(
            f"sample {s.key!r}: features are {s.features.shape[1]}-d but "
            f"model.visual_feat_dim={feat_dim}"
        )
    n = min(s.num_boxes, num_boxes)
    w, h = float(s.info["image_w"]), float(s.info["image_h"])
    if w <= 0 or h <= 0:
        raise ValueError(f"sample {s.key!r}: image size {w}x{h} is not positive")
    out = {
        "feats": np.zeros((num_boxes, feat_dim), np.float32),
        "boxes": np.zeros((num_boxes, 4), np.float32),
        "visual_mask": np.zeros(num_boxes, bool),
        "obj_ids": np.zeros(num_boxes, np.int64),
        "obj_conf": np.zeros(num_boxes, np.float32),
        "attr_ids": np.zeros(num_boxes, np.int64),
        "attr_conf": np.zeros(num_boxes, np.float32),
    }
    out["feats"][:n] = s.features[:n]
    out["boxes"][:n] = np.clip(s.boxes[:n] / np.array([w, h, w, h], np.float32), 0.0, 1.0)
    out["visual_mask"][:n] = True
    for name in ("obj_ids", "obj_conf", "attr_ids", "attr_conf"):
        out[name][:n] = getattr(s, name)[:n]
    return out


def collate(
    images: list[dict[str, np.ndarray]],
    texts: list[str],
    encoder: TextEncoder,
    matched: list[bool],
    text_keys: list[str],
    image_keys: list[str],
) -> Batch:
    """Stack decoded images (``decode_image``) and tokenise texts into a :class:`Batch`."""
    arrays = {k: torch.from_numpy(np.stack([im[k] for im in images])) for k in images[0]}
    return Batch(
        **encoder.batch(texts),
        **arrays,
        matched=torch.tensor(matched, dtype=torch.bool),
        text_keys=list(text_keys),
        image_keys=list(image_keys),
    )


@dataclass
class StreamStats:
    """Sample accounting for one stage: text rows = used + missing features + held out."""

    text_rows: int
    rows_used: int
    rows_missing_features: int
    images_missing_features: int
    rows_held_out: int
    images_held_out: int
    images_with_text: int
    feature_images: int
    feature_images_without_text: int
    shards: int
    shards_used: int
    hard_negative_images: int


class StageStream(IterableDataset):
    """Endless stream of collated :class:`Batch` es for one stage (see the module docstring).

    Args:
        features_dir: folder of ``features-*.tar`` shards with sidecars.
        text_table: Parquet file or folder (``image_id``, ``text`` [, ``split``]).
        encoder: the tokeniser.
        batch_size: examples per batch.
        num_boxes, feat_dim: region padding and expected feature size.
        split: rows kept when the table has a ``split`` column (None keeps all).
        negative_prob: probability of replacing the image (ITM); 0 disables.
        hard_negatives: Parquet of neighbours; None draws random negatives only.
        hard_negatives_top: draw from the first M neighbours.
        seed, stage_index: the random stream's identity.
        shuffle_buffer: examples held per worker for shuffling.
        start_batch: global batch index to start from (resume).
        held_out: image keys never used, neither as text images nor as negatives (the
            evaluation split's images).
    """

    def __init__(
        self,
        features_dir: str | os.PathLike,
        text_table: str | os.PathLike,
        encoder: TextEncoder,
        batch_size: int,
        num_boxes: int,
        feat_dim: int,
        split: str | None = "train",
        negative_prob: float = 0.0,
        hard_negatives: str | os.PathLike | None = None,
        hard_negatives_top: int = 100,
        seed: int = 0,
        stage_index: int = 0,
        shuffle_buffer: int = 1000,
        start_batch: int = 0,
        held_out: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.features_dir = Path(features_dir)
        self.encoder, self.batch_size = encoder, batch_size
        self.num_boxes, self.feat_dim = num_boxes, feat_dim
        self.negative_prob, self.top = negative_prob, hard_negatives_top
        self.seed, self.stage_index = seed, stage_index
        self.shuffle_buffer, self.start_batch = max(1, shuffle_buffer), start_batch
        self._index: ShardIndex | None = None

        shards = completed_shards(self.features_dir, FEATURE_PREFIX)
        if not shards:
            raise FileNotFoundError(f"no complete {FEATURE_PREFIX}-*.tar shards in {features_dir}")
        shard_keys = {
            str(p): json.loads(p.with_suffix(".json").read_text())["keys"] for p in shards
        }
        feature_keys = {k for keys in shard_keys.values() for k in keys}
        texts, text_rows = read_text_table(text_table, split)
        held = sorted(k for k in texts if k in held_out)
        rows_held = sum(len(texts[k]) for k in held)
        if held:
            log.info(
                "%s: %d text rows of %d held-out (evaluation) images left out",
                text_table,
                rows_held,
                len(held),
            )
        missing = sorted(k for k in texts if k not in feature_keys and k not in held_out)
        rows_missing = sum(len(texts[k]) for k in missing)
        if missing:
            log.warning(
                "%s: %d text rows of %d images have no features and are skipped (e.g. %s)",
                text_table,
                rows_missing,
                len(missing),
                ", ".join(missing[:5]),
            )
        usable = feature_keys - set(held_out)
        self.texts = {k: v for k, v in texts.items() if k in usable}
        self.counts = {
            url: sum(len(self.texts.get(k, ())) for k in keys) for url, keys in shard_keys.items()
        }
        self.shards = [url for url in shard_keys if self.counts[url] > 0]
        if not self.shards:
            raise ValueError(f"{text_table}: no text row matches an image in {features_dir}")
        self.pool = sorted(usable)  # random ITM negatives come from every usable feature image
        self.neighbours: dict[str, list[str]] = {}
        self.duplicates: dict[str, set[str]] = {}
        if negative_prob > 0 and hard_negatives is not None:
            table, duplicates = read_hard_negatives(hard_negatives)
            for key, ns in table.items():
                kept = [n for n in ns if n != key and n in usable][: self.top]
                if kept:
                    self.neighbours[key] = kept
            self.duplicates = {k: set(v) for k, v in duplicates.items()}
        if negative_prob > 0 and len(self.pool) < 2:
            raise ValueError("ITM needs at least two feature images to draw negatives")
        self.stats = StreamStats(
            text_rows=text_rows,
            rows_used=sum(len(v) for v in self.texts.values()),
            rows_missing_features=rows_missing,
            images_missing_features=len(missing),
            rows_held_out=rows_held,
            images_held_out=len(held),
            images_with_text=len(self.texts),
            feature_images=len(feature_keys),
            feature_images_without_text=len(usable) - len(self.texts),
            shards=len(shards),
            shards_used=len(self.shards),
            hard_negative_images=len(self.neighbours),
        )
        if text_rows != self.stats.rows_used + rows_missing + rows_held:
            raise AssertionError(f"{text_table}: text rows lost in the join: {self.stats}")

    @property
    def max_workers(self) -> int:
        """More DataLoader workers than useful shards would leave some without data."""
        return len(self.shards)

    # -------------------------------------------------------------- the pipeline
    def _epoch_shards(self, epoch: int, role: int, world: int) -> list[str]:
        order = list(self.shards)
        random.Random(f"{self.seed}:{self.stage_index}:{epoch}:shards").shuffle(order)
        return order[role::world]

    def _plan(
        self, shards: list[str], rng: random.Random
    ) -> Iterator[tuple[dict, str, str | None]]:
        """(raw image sample, text, negative image key or None) in shuffled order."""
        source = wds.tarfile_samples([{"url": url} for url in shards])
        buf: list[tuple[dict, str]] = []
        for raw in source:
            for text in self.texts.get(raw["__key__"], ()):
                if len(buf) < self.shuffle_buffer:
                    buf.append((raw, text))
                    continue
                j = rng.randrange(len(buf))
                (out, buf[j]) = (buf[j], (raw, text))
                yield (*out, self._negative(out[0]["__key__"], rng))
        rng.shuffle(buf)
        for out in buf:
            yield (*out, self._negative(out[0]["__key__"], rng))

    def _negative(self, key: str, rng: random.Random) -> str | None:
        if self.negative_prob <= 0 or rng.random() >= self.negative_prob:
            return None
        hard = self.neighbours.get(key)
        if hard:
            return rng.choice(hard)
        same = self.duplicates.get(key, ())
        for _ in range(1000):  # a random image when the image has no hard negatives
            other = self.pool[rng.randrange(len(self.pool))]
            if other != key and other not in same:
                return other
        raise ValueError(f"no image other than {key!r} and its duplicates to draw a negative from")

    def _decode(self, raw: dict, text: str, negative: str | None) -> tuple:
        """-> (decoded image, text, matched, the text's image key, the shown image key)."""
        key = raw["__key__"]
        if negative is None:
            return decode_image(raw, self.num_boxes, self.feat_dim), text, True, key, key
        if self._index is None:
            self._index = ShardIndex(self.features_dir, FEATURE_PREFIX)
        image = decode_image(self._index.get(negative), self.num_boxes, self.feat_dim)
        return image, text, False, key, negative

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        world, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        if world > len(self.shards):
            raise RuntimeError(f"{world} workers but only {len(self.shards)} shards hold examples")
        role = (worker + self.start_batch) % world
        skip = max(0, -(-(self.start_batch - role) // world)) * self.batch_size
        pending: list[tuple] = []
        epoch = 0
        while True:
            shards = self._epoch_shards(epoch, role, world)
            size = sum(self.counts[s] for s in shards)
            if skip >= size:  # skip a whole epoch without reading it
                skip -= size
                epoch += 1
                continue
            rng = random.Random(f"{self.seed}:{self.stage_index}:{epoch}:{role}")
            for raw, text, negative in self._plan(shards, rng):
                if skip:
                    skip -= 1
                    continue
                pending.append(self._decode(raw, text, negative))
                if len(pending) == self.batch_size:
                    images, texts, matched, text_keys, image_keys = map(
                        list, zip(*pending, strict=True)
                    )
                    yield collate(images, texts, self.encoder, matched, text_keys, image_keys)
                    pending = []
            epoch += 1


def make_loader(stream: StageStream, num_workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over the stream; workers are capped at the shards that hold examples."""
    workers = min(num_workers, stream.max_workers)
    if workers < num_workers:
        log.info("using %d DataLoader workers (%d shards hold examples)", workers, workers)
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
        # its own generator: iter() would otherwise draw a base seed from the global RNG that
        # dropout uses, and a resumed run would draw once more than an uninterrupted one
        generator=torch.Generator().manual_seed(stream.seed),
    )
