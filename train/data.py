"""Stage data: feature shards joined with a stage's text table, streamed into batches.

One example = one text row whose ``image_id`` has a feature sample (stage S has several captions
per image, hence several examples per image). The stream is an explicit pipeline, webdataset
style, run inside each DataLoader worker of each rank:

    useful shards -> per-epoch shuffle -> split by (rank, worker) -> read tar -> join texts
    -> shuffle buffer -> ITM negative draw (fetched by key) -> decode -> batch

Every (rank, worker) role streams endlessly, epoch after epoch, so every rank yields exactly the
batches it is asked for (no rank runs dry and leaves the others waiting in an all-reduce), and the
DataLoader's round-robin over workers is exact: a rank's batch ``g`` is batch ``g // W`` of its
worker role ``g % W``. Roles take whole shards when there are at least as many shards as roles;
with fewer shards every role reads every shard and keeps every R-th example (R = ranks x
workers), so a small corpus still splits without overlap.

Resuming is deterministic: worker roles are rotated by the start batch and each role skips the
examples it already produced (whole epochs by arithmetic on the shard sidecars' key lists, the
current epoch by replaying the tar reads without decoding).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from corpora.shards import ShardIndex, completed_shards
from train.batch import Batch, collate, decode_image
from train.tables import read_hard_negatives, read_text_table
from train.text import TextEncoder

log = logging.getLogger(__name__)
FEATURE_PREFIX = "features"
__all__ = ["FEATURE_PREFIX", "Batch", "StageStream", "StreamStats", "decode_image", "make_loader"]


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
        label_pieces: image key -> WordPiece ids of its label names (the topic tasks' set L);
            None leaves L to the detector classes of the regions.
        rank, world: this process's rank and the number of ranks (DistributedDataParallel).
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
        label_pieces: Mapping[str, Sequence[int]] | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        super().__init__()
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in [0, {world})")
        self.rank, self.world = rank, world
        self.label_pieces = label_pieces
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
    def examples_per_epoch(self) -> int:
        return self.stats.rows_used

    def workers_for(self, requested: int) -> int:
        """DataLoader workers to use: no more than the shards each rank can own (0 stays 0)."""
        return min(requested, max(1, len(self.shards) // self.world))

    # -------------------------------------------------------------- the pipeline
    def _epoch_plan(self, epoch: int, role: int, roles: int) -> tuple[list[str], int | None, int]:
        """(shards to read, keep-every-``roles``-th offset or None, examples for this role)."""
        order = list(self.shards)
        random.Random(f"{self.seed}:{self.stage_index}:{epoch}:shards").shuffle(order)
        if len(order) >= roles:  # whole shards per role
            mine = order[role::roles]
            return mine, None, sum(self.counts[s] for s in mine)
        total = sum(self.counts[s] for s in order)  # fewer shards than roles: split examples
        return order, role, max(0, (total - role + roles - 1) // roles)

    def _examples(
        self, shards: list[str], offset: int | None, roles: int
    ) -> Iterator[tuple[dict, str]]:
        """(raw image sample, text) in shard order; every ``roles``-th from ``offset`` if set."""
        index = 0
        for raw in wds.tarfile_samples([{"url": url} for url in shards]):
            for text in self.texts.get(raw["__key__"], ()):
                if offset is None or index % roles == offset:
                    yield raw, text
                index += 1

    def _plan(
        self, examples: Iterator[tuple[dict, str]], rng: random.Random
    ) -> Iterator[tuple[dict, str, str | None]]:
        """(raw image sample, text, negative image key or None) through the shuffle buffer."""
        buf: list[tuple[dict, str]] = []
        for item in examples:
            if len(buf) < self.shuffle_buffer:
                buf.append(item)
                continue
            j = rng.randrange(len(buf))
            (out, buf[j]) = (buf[j], item)
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

    def _collate(self, pending: list[tuple]) -> Batch:
        images, texts, matched, text_keys, image_keys = map(list, zip(*pending, strict=True))
        pieces = None
        if self.label_pieces is not None:
            pieces = [self.label_pieces.get(k, ()) for k in image_keys]
        return collate(images, texts, self.encoder, matched, text_keys, image_keys, pieces)

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        local = (worker + self.start_batch) % workers  # this worker's role within its rank
        role, roles = self.rank * workers + local, self.world * workers
        skip = max(0, -(-(self.start_batch - local) // workers)) * self.batch_size
        pending: list[tuple] = []
        epoch = 0
        while True:
            shards, offset, size = self._epoch_plan(epoch, role, roles)
            if size == 0:
                raise RuntimeError(f"data role {role} of {roles} has no examples in epoch {epoch}")
            if skip >= size:  # skip a whole epoch without reading it
                skip -= size
                epoch += 1
                continue
            rng = random.Random(f"{self.seed}:{self.stage_index}:{epoch}:{role}")
            for raw, text, negative in self._plan(self._examples(shards, offset, roles), rng):
                if skip:
                    skip -= 1
                    continue
                pending.append(self._decode(raw, text, negative))
                if len(pending) == self.batch_size:
                    yield self._collate(pending)
                    pending = []
            epoch += 1


def make_loader(stream: StageStream, num_workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over the stream; workers are capped at the shards each rank can own."""
    workers = stream.workers_for(num_workers)
    if workers < num_workers:
        log.info(
            "using %d DataLoader workers (%d shards hold examples, %d ranks)",
            workers,
            len(stream.shards),
            stream.world,
        )
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
        # its own generator: iter() would otherwise draw a base seed from the global RNG that
        # dropout uses, and a resumed run would draw once more than an uninterrupted one
        generator=torch.Generator().manual_seed(stream.seed),
    )
