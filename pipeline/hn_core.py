"""The hard-negatives job from vectors: ``.npy`` segments in, exact top-k Parquet files out.

:class:`ExactTopK` is the Beam core of ``msp pipeline hard-negatives`` (the feature-shard front
end, :mod:`pipeline.hn_shards`, only turns shards into segments); :func:`run_npy` runs it on a
``.npy`` of vectors. Steps, each labelled:

``Scan`` (digest and sum the rows of each segment) -> ``Index`` (one combine: kept rows, sorted
ids, pictures, centre, blocks; :mod:`pipeline.hn_index`) -> ``ScoreDiagonal`` (every block with
itself; each image's k-th best value there bounds its global k-th best) -> ``Tasks`` (the other
block pairs, in squares of up to 4 x 4) -> ``ScorePairs`` (:func:`pipeline.hn_blocks.pair_top_k`
with those bounds) -> ``MergeTopK`` (a CombinePerKey over blocks of uint64 keys) ->
``SplitFiles`` / ``GroupFiles`` -> ``WriteFiles`` (:mod:`pipeline.hn_write`). Block lists and
tasks are spread over workers by Reshuffles.

Memory: a scoring worker holds at most 8 blocks (``block_size * D * 4`` bytes each), one score
matrix (``block_size^2 * 4``) and partial lists; vectors never pass through a shuffle. What grows
with the number of images N is small: the index (ids and ranks, a side input) and the top-k keys
(``N * k * 8`` bytes over all workers). Exactness and ties: :mod:`pipeline.hn_blocks`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa

from pipeline import common
from pipeline.hn_blocks import kth_values, merge_keys, pair_top_k, thread_workspace
from pipeline.hn_index import Index, build_index, scan_segment, square_tasks
from pipeline.hn_store import BlockRef, load_block, npy_segments
from pipeline.hn_write import TABLE, duplicate_members, file_path, num_files, write_file
from pipeline.text_io import output_files

logger = logging.getLogger(__name__)

TASK_SIDE = 4  # a scoring task covers up to TASK_SIDE x TASK_SIDE block pairs


class _BuildIndex(beam.CombineFn):
    """Segment summaries -> the :class:`pipeline.hn_index.Index` of the whole input."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size

    def create_accumulator(self):
        return []

    def add_input(self, acc, summary):
        acc.append(summary)
        return acc

    def merge_accumulators(self, accs):
        return [s for acc in accs for s in acc]

    def extract_output(self, acc):
        return build_index(acc, self.block_size)


class _ScoreDiagonal(beam.DoFn):
    """A block with itself -> its partial top-k, and (``bounds`` output) each image's k-th
    best value within its own block: an upper bound on its k-th best over all blocks."""

    def __init__(self, metric: str, k: int) -> None:
        self.metric, self.k = metric, k

    def start_bundle(self) -> None:
        self.work = thread_workspace()

    def finish_bundle(self) -> None:
        self.work.clear()

    def process(self, ref: BlockRef, index: Index):
        a = load_block(ref, self.metric, index.center)
        for block, keys in pair_top_k(a, a, self.metric, self.k, work=self.work):
            yield beam.pvalue.TaggedOutput("bounds", (block, kth_values(keys, self.k)))
            yield block, (a.ranks, keys)


class _ScorePairs(beam.DoFn):
    """A task of block pairs -> ``(block index, (ranks, keys))`` partial lists, both ways."""

    def __init__(self, metric: str, k: int) -> None:
        self.metric, self.k = metric, k

    def start_bundle(self) -> None:
        self.work = thread_workspace()

    def finish_bundle(self) -> None:
        self.work.clear()

    def process(self, task, index: Index, bounds):
        rows, cols, pairs = task
        load = lambda ref: load_block(ref, self.metric, index.center)  # noqa: E731
        row_blocks = [load(ref) for ref in rows]
        col_blocks = row_blocks if cols is None else [load(ref) for ref in cols]
        merged: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # one partial per block and task
        for i, j in pairs:
            a, b = row_blocks[i], col_blocks[j]
            ranks = {a.index: a.ranks, b.index: b.ranks}
            found = pair_top_k(
                a, b, self.metric, self.k, bounds[a.index], bounds[b.index], work=self.work
            )
            for block, keys in found:
                if block in merged:
                    keys = merge_keys([merged[block][1], keys], self.k, pad=False)
                merged[block] = (ranks[block], keys)
        yield from merged.items()


class _MergeTopK(beam.CombineFn):
    """Partial ``(ranks, keys)`` of one block -> its best ``k`` keys per image."""

    def __init__(self, k: int) -> None:
        self.k = k

    def create_accumulator(self):
        return None

    def add_input(self, acc, partial):
        return self.merge_accumulators([acc, partial])

    def merge_accumulators(self, accs):
        accs = [a for a in accs if a is not None]
        if not accs:
            return None
        return accs[0][0], merge_keys([keys for _, keys in accs], self.k)

    def extract_output(self, acc):
        return acc


def _split_files(element, rows_per_file: int):
    _, (ranks, keys) = element
    shard = ranks // rows_per_file
    for s in np.unique(shard):
        sel = shard == s
        yield int(s), (ranks[sel], keys[sel])


class _WriteFile(beam.DoFn):
    """``(file number, [(ranks, keys), ...])`` -> one Parquet file (:mod:`pipeline.hn_write`)."""

    def __init__(self, out_dir: str, metric: str, rows_per_file: int, namespace: str) -> None:
        self.out_dir, self.metric, self.rows_per_file = out_dir, metric, rows_per_file
        self.counters = common.Counters(namespace)
        self._ids: tuple[int, pa.Array, dict] | None = None

    def process(self, element, index: Index):
        shard, parts = element
        if self._ids is None or self._ids[0] != id(index):  # convert once per worker
            ids = pa.array(index.sorted_ids.tolist(), pa.string())
            self._ids = (id(index), ids, duplicate_members(index.groups))
        _, ids, dups = self._ids
        ranks = np.concatenate([r for r, _ in parts])
        keys = np.concatenate([k for _, k in parts])
        path = file_path(self.out_dir, shard, num_files(len(ids), self.rows_per_file))
        n = write_file(path, ids, ranks, keys, self.metric, dups)
        self.counters.inc("kept", n)
        yield str(path)


class ExactTopK(beam.PTransform):
    """``Segment``s -> written Parquet paths (main output ``files``) and ``rejects``.

    ``out_dir``: where the files go (one folder every worker sees); ``metric``: cosine or
    euclidean; ``k``: neighbours per image; ``block_size``: images per scored block;
    ``rows_per_file``: images per output file; ``namespace``: the Beam counters' namespace.
    """

    def __init__(
        self, out_dir: str, *, metric: str, k: int, block_size: int, rows_per_file: int,
        namespace: str,
    ) -> None:  # fmt: skip
        super().__init__()
        self.out_dir, self.metric, self.k = str(out_dir), metric, k
        self.block_size, self.rows_per_file, self.namespace = block_size, rows_per_file, namespace

    def expand(self, segments):
        size, metric, k = self.block_size, self.metric, self.k
        index = (
            segments
            | "Scan" >> beam.Map(scan_segment)
            | "Index" >> beam.CombineGlobally(_BuildIndex(size))
        )
        index_side = beam.pvalue.AsSingleton(index)
        rejects = index | "Repeated" >> beam.FlatMap(
            lambda ix: [  # the dead-letter records themselves (this output is the rejects)
                common.reject(i, "vector", "image id appears more than once in the input").value
                for i in ix.repeated
            ]
        )
        diagonal = (
            index
            | "Blocks" >> beam.FlatMap(lambda ix: ix.blocks)
            | "SpreadBlocks" >> beam.Reshuffle()
            | "ScoreDiagonal"
            >> beam.ParDo(_ScoreDiagonal(metric, k), index=index_side).with_outputs(
                "bounds", main="partials"
            )
        )
        pairs = (
            index
            | "Tasks" >> beam.FlatMap(lambda ix: square_tasks(ix.blocks, TASK_SIDE))
            | "SpreadTasks" >> beam.Reshuffle()
            | "ScorePairs"
            >> beam.ParDo(
                _ScorePairs(metric, k), index=index_side, bounds=beam.pvalue.AsDict(diagonal.bounds)
            )
        )
        # combine each output where it is produced (lifted combiners), then the few results
        files = (
            (
                diagonal.partials | "MergeDiagonal" >> beam.CombinePerKey(_MergeTopK(k)),
                pairs | "MergePairs" >> beam.CombinePerKey(_MergeTopK(k)),
            )
            | "AllPartials" >> beam.Flatten()
            | "MergeTopK" >> beam.CombinePerKey(_MergeTopK(k))
            | "SplitFiles" >> beam.FlatMap(_split_files, rows_per_file=self.rows_per_file)
            | "GroupFiles" >> beam.GroupByKey()
            | "WriteFiles"
            >> beam.ParDo(
                _WriteFile(self.out_dir, metric, self.rows_per_file, self.namespace),
                index=index_side,
            )
        )
        return {"files": files, common.REJECTS: rejects}


def run_npy(
    npy_path: str,
    ids: Sequence[str],
    out_dir: str,
    *,
    metric: str = "euclidean",
    k: int = 100,
    block_size: int = 4096,
    rows_per_file: int = 20_000,
    hashes: Sequence[str | None] | None = None,
    beam_args: Sequence[str] = (),
) -> list[str]:
    """Run the core on a 2-d ``.npy`` of vectors (row ``i`` is image ``ids[i]``); returns the
    written files. ``hashes``: optional content hash per row. Beam options pass in ``beam_args``
    (the in-process runner unless one is named)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    segments = npy_segments(npy_path, ids)
    if hashes is not None:
        for seg in segments:
            seg.hashes = list(hashes[seg.start : seg.stop])
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        args.insert(0, f"--runner={common.DEFAULT_RUNNER}")
    with beam.Pipeline(options=PipelineOptions(args)) as p:
        _ = (
            p
            | "Segments" >> beam.Create(segments)
            | "TopK" >> ExactTopK(out_dir, metric=metric, k=k, block_size=block_size,
                                  rows_per_file=rows_per_file, namespace="hard_negatives")
        )  # fmt: skip
    return [str(p) for p in output_files(out_dir, TABLE)]
