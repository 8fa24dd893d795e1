"""The LAIT job's configuration: one dataclass, built from the command line, written as config.json.

Every threshold of every step lives here so that a rerun with the same values is recognised as
complete (``pipeline.common.job_complete`` compares this config with the stored one).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

JOB = "lait"  # the Beam Metrics namespace and the manifest's job name


@dataclass
class LaitConfig:
    """Resolved parameters of one ``msp pipeline lait`` run."""

    inputs: list[str]
    out: str
    # pages
    lang: str = "en"
    min_lang_prob: float = 0.5  # langid's normalised probability of ``lang`` on the page text
    min_page_words: int = 5  # fewer visible words than this: language cannot be decided
    min_declared: int = 100  # declared <img> width/height below this: not a dominant image
    # text
    min_words: int = 3
    max_words: int = 50
    max_oov: float = 0.3  # share of words unknown to wordfreq's English list
    # images
    min_side: int = 300  # width and height must both be strictly larger (ImageBERT section 3)
    max_pixels: int = 40_000_000  # decompression-bomb limit (Pillow's MAX_IMAGE_PIXELS)
    max_bytes: int = 20_000_000
    url_map: list[str] = field(default_factory=list)  # "PREFIX=FOLDER" entries
    local_roots: list[str] = field(default_factory=list)  # folders file:// images may come from
    allow_network: bool = False
    fetch_timeout: float = 10.0
    # scoring and aggregation
    scorer: str = "heuristic"
    min_score: float = 0.0
    max_shared: int = 5
    # outputs
    shard_size: int = 1000

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON types (what ``config.json`` holds)."""
        return dataclasses.asdict(self)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's own flags; Beam's flags are left for ``PipelineOptions``."""
    d = LaitConfig(inputs=[], out="")
    a = parser.add_argument
    a(
        "--input",
        dest="inputs",
        action="append",
        required=True,
        help="WARC (.warc, .warc.gz), HTML (.html, .htm) or TSV (caption<TAB>image) files: "
        "a glob or a folder; repeatable",
    )
    a("--out", required=True, help="output folder")
    a("--lang", default=d.lang, help="language to keep (langid code)")
    a("--min-lang-prob", type=float, default=d.min_lang_prob)
    a("--min-page-words", type=int, default=d.min_page_words)
    a(
        "--min-declared",
        type=int,
        default=d.min_declared,
        help="declared <img> width/height (px) below which an image is not dominant",
    )
    a("--min-words", type=int, default=d.min_words)
    a("--max-words", type=int, default=d.max_words)
    a("--max-oov", type=float, default=d.max_oov, help="max share of out-of-vocabulary words")
    a(
        "--min-side",
        type=int,
        default=d.min_side,
        help="keep images whose width and height are both larger than this (px)",
    )
    a("--max-pixels", type=int, default=d.max_pixels, help="decompression-bomb limit (pixels)")
    a("--max-bytes", type=int, default=d.max_bytes, help="largest image file accepted (bytes)")
    a(
        "--url-map",
        action="append",
        default=[],
        metavar="PREFIX=FOLDER",
        help="serve image URLs starting with PREFIX from FOLDER (repeatable)",
    )
    a(
        "--local-root",
        dest="local_roots",
        action="append",
        default=[],
        metavar="FOLDER",
        help="folder file:// images may be read from (default: the inputs' parent folders)",
    )
    a("--allow-network", action="store_true", help="fetch http(s) images over the network")
    a("--fetch-timeout", type=float, default=d.fetch_timeout)
    a("--scorer", default=d.scorer, help="'heuristic' or 'package.module:ScorerClass'")
    a("--min-score", type=float, default=d.min_score, help="drop pairs scored below this")
    a(
        "--max-shared",
        type=int,
        default=d.max_shared,
        help="drop a description used by more than this many images",
    )
    a("--shard-size", type=int, default=d.shard_size, help="images per images-NNNNNN.tar shard")


def from_args(args: argparse.Namespace) -> LaitConfig:
    """The config from parsed flags (unknown attributes such as ``force`` are ignored)."""
    names = {f.name for f in dataclasses.fields(LaitConfig)}
    return LaitConfig(**{k: v for k, v in vars(args).items() if k in names})
