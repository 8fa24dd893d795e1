"""Image-text relevance scorers behind ``pipeline.lait_score.Scorer``: a weak offline model and CLIP.

``labels`` (the default, ``LabelEmbeddingScorer``): ImageBERT scores pairs with "a weak
image-text semantic model". Without image-text weights to be had offline, this one is built
from two packaged models: the image is described by its top ImageNet labels (EfficientNet-lite0,
computed once per image by the filters step, ``pipeline.lait_filters``), each label is embedded
as the sentence "a photo of a <label>" with the MiniLM sentence model, and the caption with the
same model::

    relevance = sum_k p_k * cos(caption, label_k) / sum_k p_k      (top-5 labels, probs p_k)

a number in about [-0.1, 0.8] (MiniLM cosines); the pair's ``score`` adds a text-quality prior
(``pipeline.lait_score``). It knows
ImageNet's 1000 things only, so it ranks an image's several texts and catches captions about
something else entirely, no more. Label embeddings are cached per worker.

``clip:FOLDER`` (``ClipScorer``): a CLIP checkpoint saved with transformers
(``CLIPModel.save_pretrained`` plus its tokenizer and image processor) in a local folder;
``score`` = cosine of the image and text embeddings. It reads the stored image bytes.

Models load in ``setup()`` (once per worker); ``score_batch`` embeds a whole batch at once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pipeline.lait_score import ImageView, Scorer, TextView

logger = logging.getLogger(__name__)

LABEL_PROMPT = "a photo of a {}"


def label_text(label: str) -> str:
    """The sentence embedded for an ImageNet label (its first synonym)."""
    return LABEL_PROMPT.format(label.split(",")[0].strip())


class LabelEmbeddingScorer(Scorer):
    """ImageNet labels x MiniLM caption similarity (module docstring)."""

    name = "labels"
    needs_pixels = False
    needs_labels = True
    blends_text_prior = True

    def __init__(self, text_model: str = "", threads: int = 1) -> None:
        self.text_model, self.threads = text_model, threads
        self.embedder: Any = None
        self._cache: dict[str, np.ndarray] = {}

    def setup(self) -> None:
        from pipeline.lait_models import TextEmbedder

        self.embedder = TextEmbedder(self.text_model, self.threads).load()

    def _labels(self, names: set[str]) -> None:
        missing = sorted(n for n in names if n not in self._cache)
        if missing:
            vectors = self.embedder.encode([label_text(n) for n in missing])
            self._cache.update(zip(missing, vectors, strict=True))

    def score(self, image: ImageView, text: TextView) -> float:
        return self.score_batch([(image, text)])[0]

    def score_batch(self, items: list[tuple[ImageView, TextView]]) -> list[float]:
        assert self.embedder is not None, "setup() not called"
        if any(not image.labels for image, _ in items):
            raise ValueError("the labels scorer needs ImageNet labels (the image filters step)")
        self._labels({name for image, _ in items for name, _ in image.labels})
        captions = self.embedder.encode([text.text for _, text in items])
        out = []
        for (image, _), caption in zip(items, captions, strict=True):
            probs = np.array([p for _, p in image.labels], np.float64)
            sims = np.array([float(self._cache[n] @ caption) for n, _ in image.labels])
            out.append(round(float((probs * sims).sum() / max(probs.sum(), 1e-9)), 6))
        return out


class ClipScorer(Scorer):
    """A local CLIP checkpoint (transformers format): cosine of image and text embeddings."""

    name = "clip"
    needs_pixels = True
    blends_text_prior = True

    def __init__(self, folder: str, threads: int = 1) -> None:
        self.folder, self.threads = folder, threads
        self.model: Any = None
        self.tokenizer: Any = None
        self.processor: Any = None

    def setup(self) -> None:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        import transformers
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        self.model = CLIPModel.from_pretrained(self.folder).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.processor = AutoImageProcessor.from_pretrained(self.folder)
        logger.info("lait relevance: CLIP from %s", self.folder)

    def score(self, image: ImageView, text: TextView) -> float:
        return self.score_batch([(image, text)])[0]

    def score_batch(self, items: list[tuple[ImageView, TextView]]) -> list[float]:
        import torch

        from pipeline.lait_filters import to_rgb

        assert self.model is not None, "setup() not called"
        ids = sorted({image.image_id for image, _ in items})
        data = {image.image_id: image.data for image, _ in items}
        if any(data[i] is None for i in ids):
            raise ValueError("the CLIP scorer needs the image bytes")
        max_len = getattr(self.model.config.text_config, "max_position_embeddings", 77)
        with torch.inference_mode():
            pixels = self.processor(images=[to_rgb(data[i]) for i in ids], return_tensors="pt")
            img = self.model.get_image_features(pixel_values=pixels["pixel_values"])
            tokens = self.tokenizer([t.text for _, t in items], padding=True, truncation=True,
                                    max_length=max_len, return_tensors="pt")  # fmt: skip
            txt = self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
        img = _unit(img)
        txt = _unit(txt)
        row = {image_id: k for k, image_id in enumerate(ids)}
        return [
            round(float(img[row[image.image_id]] @ txt[j]), 6) for j, (image, _) in enumerate(items)
        ]


def _unit(features: Any) -> np.ndarray:
    """Model output (a tensor, or an output object holding one) -> L2-normalised numpy rows."""
    tensor = getattr(features, "pooler_output", features)
    arr = tensor.detach().numpy().astype(np.float64)
    return arr / np.maximum(np.linalg.norm(arr, axis=-1, keepdims=True), 1e-12)
