"""Image-content filters (ImageBERT section 3): non-natural images and adult content.

Runs after ``lait_images`` (decoded, large enough images) and before scoring. Each image is
analysed once, however many pairs show it; images are batched for the models
(``pipeline.lait_models``, loaded once per worker in ``setup()``). Every score is kept on the
pair (and in the pairs table), kept or not; a score over its threshold rejects the pair:

``adult image`` (checked first): ``adult_image`` = NudeNet's highest score on an exposed-body
class, above ``max_adult``. The caption's word lists are the text half of this filter
(``lait_text``).

``non-natural`` (clip art, logos, charts, screenshots, text images), any of three cues:

- ``nonphoto_mass`` > ``max_nonphoto``: EfficientNet-lite0's summed probability over ImageNet
  classes that are pictures of screens, print and graphics (``NONPHOTO_CLASSES``: web site,
  comic book, menu, envelope, ...). It separates screenshots and pages from photos;
- ``text_area`` > ``max_text_area``: share of the image covered by detected text lines
  (rapidocr's detector): text images, quotes, scans, screenshots;
- ``graphic`` > ``max_graphic``: a drawn-image statistic (no model) for clip art, logos and
  charts, which the classifier misses: ``min(flat, palette)``, where ``flat`` is the share of
  pixels whose grey-level gradient ``|dx| + |dy|`` is below 2 (at 320 px) and ``palette`` the
  share of pixels in the 8 most frequent colours (4 bits per channel, at 160 px). Photos have
  noise and shading, so one of the two stays low; a flat-colour drawing has both high.

A threshold of 1 or more turns that cue off (its score is still computed and kept).

Defaults, from measurements (``tests/pipeline/test_lait_filters.py`` holds the labelled set):
on eleven packaged photos (skimage, scikit-learn, matplotlib) ``nonphoto_mass`` <= 0.04,
``text_area`` <= 0.03, ``graphic`` <= 0.54 (a rocket against a flat night sky) and
``adult_image`` = 0; rendered text pages and screenshots reach ``text_area`` 0.31-0.49 (a
three-line quote card 0.12) and ``nonphoto_mass`` 0.6-0.86; charts, logos and clip-art scenes
``graphic`` 0.82-0.93. Misses seen: shaded clip art and logos with photographic texture
(``graphic`` 0.5-0.58). On the 300 clip-art scenes of the sample corpus ``graphic`` is 0.65-0.94
and ``nonphoto_mass`` up to 0.77: with the defaults they are non-natural, which they are; their
``text_area`` stays <= 0.03 and ``adult_image`` = 0, so with ``--max-graphic 1 --max-nonphoto 1``
all of them pass. The three models take about 0.2 s per image on one core.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np

from pipeline.common import REJECTS, Counters, reject
from pipeline.lait_config import JOB, LaitConfig

logger = logging.getLogger(__name__)

STEP = "filters"
MODEL_SIDE = 1024  # images are reduced to at most this side before analysis (px)
TOP_LABELS = 5  # ImageNet labels kept per image (for the pairs table and the relevance scorer)
NONPHOTO_CLASSES = ("web site", "comic book", "crossword puzzle", "book jacket", "menu",
                    "envelope", "packet", "jigsaw puzzle", "scoreboard", "screen", "monitor",
                    "binder")  # fmt: skip


@dataclass
class ImageScores:
    """What the image models say about one image (all in 0..1 except ``text_lines``)."""

    nonphoto_mass: float
    text_area: float
    text_lines: int
    graphic: float
    adult_image: float
    labels: list[tuple[str, float]]  # top ImageNet labels, most probable first

    def as_fields(self) -> dict[str, Any]:
        return {
            "nonphoto_mass": round(self.nonphoto_mass, 4),
            "text_area": round(self.text_area, 4),
            "text_lines": self.text_lines,
            "graphic": round(self.graphic, 4),
            "adult_image": round(self.adult_image, 4),
            "imagenet_top": [[name, round(p, 4)] for name, p in self.labels],
        }


def to_rgb(data: bytes, max_side: int = MODEL_SIDE) -> np.ndarray:
    """Stored image bytes -> ``uint8 [H, W, 3]`` RGB, longer side at most ``max_side``.

    Transparent images are composited on white (how a page shows them).
    """
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale directly
    img.load()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    img = img.convert("RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.array(img)  # writable: torch and cv2 take it without a warning


def graphic_score(rgb: np.ndarray) -> float:
    """``min(flat, palette)`` of the module docstring, in 0..1."""
    from PIL import Image

    img = Image.fromarray(rgb)
    grey = np.asarray(img.convert("L").resize((320, 240), Image.Resampling.BILINEAR), np.int16)
    dx = np.abs(np.diff(grey, axis=1))[:-1, :]
    dy = np.abs(np.diff(grey, axis=0))[:, :-1]
    flat = float(((dx + dy) < 2).mean())
    small = np.asarray(img.resize((160, 120), Image.Resampling.BILINEAR), np.int32) >> 4
    codes = (small[..., 0] << 8) | (small[..., 1] << 4) | small[..., 2]
    counts = np.sort(np.bincount(codes.ravel(), minlength=4096))[::-1]
    palette = float(counts[:8].sum() / codes.size)
    return min(flat, palette)


class ImageModels:
    """The three image models together, loaded once; ``analyse`` runs them on a batch."""

    def __init__(self, config: LaitConfig) -> None:
        from pipeline.lait_models import AdultDetector, ImageNetClassifier, TextAreaDetector

        t = config.model_threads
        self.classifier = ImageNetClassifier(config.classifier_weights, t)
        self.text = TextAreaDetector(config.text_detector_model, t)
        self.adult = AdultDetector(config.adult_model, t)
        self.nonphoto: np.ndarray | None = None

    def load(self) -> ImageModels:
        self.classifier.load()
        self.text.load()
        self.adult.load()
        names = self.classifier.classes
        self.nonphoto = np.array([names.index(c) for c in NONPHOTO_CLASSES])
        logger.info("lait image models: %s; %s; %s", self.classifier.source,
                    self.text.source, self.adult.source)  # fmt: skip
        return self

    def analyse(self, images: list[np.ndarray]) -> list[ImageScores]:
        """One batched pass of each model over ``images`` (``uint8 [H, W, 3]`` RGB)."""
        assert self.nonphoto is not None, "load() first"
        probs = self.classifier.predict(images)
        adult = self.adult.predict(images)
        out = []
        for i, rgb in enumerate(images):
            area, lines = self.text.measure(rgb)
            top = np.argsort(-probs[i])[:TOP_LABELS]
            labels = [(self.classifier.classes[j], float(probs[i, j])) for j in top]
            out.append(ImageScores(float(probs[i, self.nonphoto].sum()), area, lines,
                                   graphic_score(rgb), float(adult[i]), labels))  # fmt: skip
        return out


def verdict(scores: ImageScores, config: LaitConfig) -> str:
    """The reject reason of the module docstring, or ``""`` when the image passes."""
    if scores.adult_image > config.max_adult:
        return f"adult image: {scores.adult_image:.2f} > {config.max_adult}"
    cues = [
        ("non-photo classes", scores.nonphoto_mass, config.max_nonphoto),
        ("text area", scores.text_area, config.max_text_area),
        ("graphic", scores.graphic, config.max_graphic),
    ]
    over = [f"{name} {value:.2f} > {limit}" for name, value, limit in cues if value > limit]
    return f"non-natural: {'; '.join(over)}" if over else ""


class ImageFiltersFn(beam.DoFn):
    """A batch of (image_id, {"pairs", "payloads"}) -> pairs with scores, and rejects."""

    def __init__(self, config: LaitConfig) -> None:
        self.config = config
        self.counters = Counters(JOB)
        self.models: ImageModels | None = None

    def setup(self) -> None:
        self.models = ImageModels(self.config).load()

    def process(self, batch: list[tuple[str, dict[str, Any]]]) -> Iterator[Any]:
        assert self.models is not None, "setup() not called"
        groups, images = [], []
        for _, grouped in batch:
            pairs = list(grouped["pairs"])
            payload = next(iter(grouped["payloads"]), None)
            if not pairs:
                continue  # bytes of an image whose pairs were all rejected earlier
            self.counters.inc("in.filters", len(pairs))
            try:
                if payload is None:
                    raise ValueError("no stored bytes")
                images.append(to_rgb(payload["data"]))
                groups.append(pairs)
            except Exception as exc:  # decoded once already; never fail the bundle
                for pair in pairs:
                    yield reject(pair["input_id"], STEP, f"unreadable image: {exc}"[:120])
        for pairs, scores in zip(groups, self.models.analyse(images), strict=True):
            reason = verdict(scores, self.config)
            fields = scores.as_fields()
            for pair in pairs:
                if reason:
                    kind = reason.split(":")[0].replace(" ", "_").replace("-", "_")
                    self.counters.inc(f"reason_{kind}.filters")
                    yield reject(pair["input_id"], STEP, reason)
                else:
                    self.counters.inc("out.filters")
                    yield {**pair, **fields}


class LaitImageFilters(beam.PTransform):
    """(pairs, payloads) -> (pairs with image scores, rejects)."""

    def __init__(self, config: LaitConfig, max_batch: int = 16) -> None:
        super().__init__()
        self.config, self.max_batch = config, max_batch

    def expand(self, inputs: tuple[Any, Any]):
        pairs, payloads = inputs
        keyed = pairs | "KeyByImage" >> beam.Map(lambda p: (p["image_id"], p))
        out = (
            {"pairs": keyed, "payloads": payloads}
            | "JoinPixels" >> beam.CoGroupByKey()
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.max_batch)
            | "Analyse"
            >> beam.ParDo(ImageFiltersFn(self.config)).with_outputs(REJECTS, main="pairs")
        )
        return out.pairs, out[REJECTS]
