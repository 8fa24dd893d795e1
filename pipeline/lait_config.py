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
    min_text_en: float = 0.5  # English confidence of the chosen text (lait_text, check 6)
    text_en_prior: float = 0.5  # prior P(English) of a text on an English page
    # images
    min_side: int = 300  # width and height must both be strictly larger (ImageBERT section 3)
    max_pixels: int = 40_000_000  # decompression-bomb limit (Pillow's MAX_IMAGE_PIXELS)
    max_bytes: int = 20_000_000
    # image-content filters (pipeline.lait_filters; a threshold >= 1 turns a cue off)
    image_filters: bool = True  # False: skip the image models (inputs filtered already)
    max_adult: float = 0.6  # NudeNet exposed-class score; its own cut-off 0.2 fires on faces
    max_nonphoto: float = 0.5  # ImageNet probability mass on screen/print classes
    max_text_area: float = 0.08  # share of the image covered by text lines
    max_graphic: float = 0.6  # flat-colour drawing statistic (clip art, logos, charts)
    classifier_weights: str = ""  # EfficientNet-lite0 state dict; "" = the packaged one
    text_detector_model: str = ""  # DBNet ONNX text detector; "" = rapidocr's
    adult_model: str = ""  # NudeNet-format ONNX; "" = nudenet's 320n
    model_threads: int = 1  # threads per worker for each model (Beam runs the workers)
    url_map: list[str] = field(default_factory=list)  # "PREFIX=FOLDER" entries
    local_roots: list[str] = field(default_factory=list)  # folders file:// images may come from
    allow_network: bool = False
    fetch_timeout: float = 10.0
    # scoring and aggregation
    scorer: str = "labels"  # "labels", "clip:FOLDER", "heuristic" or "package.module:Class"
    text_model: str = ""  # sentence-model folder for the labels scorer; "" = packaged MiniLM
    text_weight: float = 0.5  # score = relevance + text_weight * text prior (model scorers)
    min_score: float = -1.0  # pairs scored below this are dropped (-1: keep all)
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
    a("--min-text-en", type=float, default=d.min_text_en,
      help="min English confidence of the chosen text")  # fmt: skip
    a("--text-en-prior", type=float, default=d.text_en_prior,
      help="prior P(English) of a text on an English page")  # fmt: skip
    a(
        "--min-side",
        type=int,
        default=d.min_side,
        help="keep images whose width and height are both larger than this (px)",
    )
    a("--max-pixels", type=int, default=d.max_pixels, help="decompression-bomb limit (pixels)")
    a("--max-bytes", type=int, default=d.max_bytes, help="largest image file accepted (bytes)")
    a("--no-image-filters", dest="image_filters", action="store_false",
      help="skip the image models (non-natural and adult filters); needs a scorer without "
      "labels, e.g. --scorer heuristic")  # fmt: skip
    a("--max-adult", type=float, default=d.max_adult, help="adult-image score threshold")
    a("--max-nonphoto", type=float, default=d.max_nonphoto,
      help="ImageNet screen/print class mass threshold (>= 1: off)")  # fmt: skip
    a("--max-text-area", type=float, default=d.max_text_area,
      help="text-line area share threshold (>= 1: off)")  # fmt: skip
    a("--max-graphic", type=float, default=d.max_graphic,
      help="flat-colour drawing statistic threshold (>= 1: off)")  # fmt: skip
    a("--classifier-weights", default=d.classifier_weights, metavar="PTH",
      help="EfficientNet-lite0 state dict replacing the packaged weights")  # fmt: skip
    a("--text-detector-model", default=d.text_detector_model, metavar="ONNX",
      help="text detector (DBNet ONNX) replacing rapidocr's")  # fmt: skip
    a("--adult-model", default=d.adult_model, metavar="ONNX",
      help="NudeNet-format detector replacing nudenet's 320n")  # fmt: skip
    a("--model-threads", type=int, default=d.model_threads, help="threads per model per worker")
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
    a("--scorer", default=d.scorer,
      help="'labels', 'clip:FOLDER', 'heuristic' or 'package.module:ScorerClass'")  # fmt: skip
    a("--text-model", default=d.text_model, metavar="FOLDER",
      help="sentence model for the labels scorer (default: the packaged MiniLM)")  # fmt: skip
    a("--text-weight", type=float, default=d.text_weight,
      help="weight of the text-quality prior added to a model's relevance")  # fmt: skip
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
    config = LaitConfig(**{k: v for k, v in vars(args).items() if k in names})
    check(config)
    return config


def check(config: LaitConfig) -> None:
    """Refuse combinations that cannot run (raises ``ValueError``)."""
    if config.scorer == "labels" and not config.image_filters:
        raise ValueError(
            "--scorer labels uses the image filters' ImageNet labels: drop --no-image-filters "
            "or choose another scorer (e.g. --scorer heuristic)"
        )
