"""Images step: safe decoding and normalisation, fetchers, the LaitImages transform."""

from __future__ import annotations

import hashlib
import http.server
import io
import struct
import threading
import zlib
from functools import partial

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipeline.lait_config import LaitConfig
from pipeline.lait_fetch import FetchError, HttpFetcher, LocalFetcher, build_fetcher
from pipeline.lait_images import ImageReject, LaitImages, decode_image

LIMITS = {"min_side": 300, "max_pixels": 40_000_000, "max_bytes": 5_000_000}


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(w: int = 400, h: int = 320, mode: str = "RGB") -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)
    return Image.fromarray(rgb).convert(mode)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(data)


def reject_reason(data: bytes, **kw) -> str:
    with pytest.raises(ImageReject) as err:
        decode_image(data, **{**LIMITS, **kw})
    return str(err.value)


def test_rejects():
    jpeg = encode(photo(), "JPEG")
    assert reject_reason(b"") == "empty file"
    assert reject_reason(jpeg, max_bytes=100).startswith("too large")
    assert reject_reason(b"<html>not found</html>") == "corrupt: not a recognised image"
    assert reject_reason(jpeg[: len(jpeg) // 2]).startswith("truncated")
    assert reject_reason(encode(photo(300, 400), "PNG")) == "too small: 300x400"
    assert reject_reason(encode(photo(2000, 1000), "PNG"), max_pixels=1_000_000).startswith(
        "decompression bomb"
    )
    assert reject_reason(png_claiming(30000, 30000)).startswith("decompression bomb")


def test_plain_images_are_kept_as_found():
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")):
        data = encode(photo(), fmt)
        image = decode_image(data, **LIMITS)
        assert (image.ext, image.data, image.normalized) == (ext, data, "")
        assert image.image_id == hashlib.sha256(data).hexdigest()
        assert (image.width, image.height) == (400, 320)
    palette = encode(photo().convert("P"), "PNG")
    assert decode_image(palette, **LIMITS).data == palette


def test_normalised_images():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated = decode_image(encode(photo(), "JPEG", exif=exif), **LIMITS)
    assert (rotated.width, rotated.height, rotated.ext) == (320, 400, "jpg")
    assert rotated.normalized == "exif orientation 6"
    assert Image.open(io.BytesIO(rotated.data)).size == (320, 400)

    cmyk = decode_image(encode(photo(mode="CMYK"), "JPEG"), **LIMITS)
    assert cmyk.normalized == "CMYK to RGB" and Image.open(io.BytesIO(cmyk.data)).mode == "RGB"

    deep = np.full((320, 400), 65535, np.uint16)
    deep[:, :200] = 256
    sixteen = decode_image(encode(Image.fromarray(deep), "PNG"), **LIMITS)
    assert sixteen.normalized == "I;16 to 8-bit" and sixteen.ext == "png"
    pixels = np.asarray(Image.open(io.BytesIO(sixteen.data)))
    assert pixels.dtype == np.uint8 and pixels[0, 0] == 1 and pixels[0, 399] == 255

    frames = [photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    animated = decode_image(gif, **LIMITS)
    assert animated.normalized == "format GIF; animated: first frame"
    assert (animated.ext, animated.frames, animated.width) == ("png", 2, 400)
    assert animated.image_id == hashlib.sha256(gif).hexdigest()  # identity: bytes as fetched


def test_local_fetcher(tmp_path):
    (tmp_path / "web" / "img").mkdir(parents=True)
    (tmp_path / "web" / "img" / "a.jpg").write_bytes(b"A")
    (tmp_path / "secret.txt").write_bytes(b"S")
    fetcher = LocalFetcher([("http://h.invalid/", str(tmp_path / "web"))], [], 100)
    assert fetcher.fetch("http://h.invalid/img/a.jpg?size=large") == b"A"
    with pytest.raises(FetchError, match="escapes"):
        fetcher.fetch("http://h.invalid/../secret.txt")
    with pytest.raises(FetchError, match="outside the allowed roots"):
        fetcher.fetch((tmp_path / "secret.txt").as_uri())
    assert fetcher.fetch((tmp_path / "web" / "img" / "a.jpg").as_uri()) == b"A"
    with pytest.raises(FetchError, match="not found"):
        fetcher.fetch("http://h.invalid/img/b.jpg")
    offline = build_fetcher([], [], allow_network=False, timeout=1, max_bytes=10)
    with pytest.raises(FetchError, match="no source"):
        offline.fetch("http://elsewhere.invalid/x.jpg")


def test_http_fetcher_on_loopback(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"JPEGDATA")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        fetcher = HttpFetcher(timeout=5, max_bytes=100)
        assert fetcher.fetch(f"{base}/a.jpg") == b"JPEGDATA"
        with pytest.raises(FetchError, match="http status 404"):
            fetcher.fetch(f"{base}/b.jpg")
        with pytest.raises(FetchError, match="too large"):
            HttpFetcher(timeout=5, max_bytes=4).fetch(f"{base}/a.jpg")
    finally:
        server.shutdown()


def test_lait_images_transform(tmp_path):
    big, small = encode(photo(), "JPEG"), encode(photo(100, 80), "JPEG")
    (tmp_path / "f.jpg").write_bytes(big)
    cands = [
        {"input_id": "p1 w", "image_url": "http://h.invalid/w.jpg"},
        {"input_id": "p2 w", "image_url": "http://h.invalid/w.jpg"},
        {"input_id": "p1 f", "image_url": "http://h.invalid/f.jpg"},
        {"input_id": "p1 s", "image_url": "http://h.invalid/s.jpg"},
    ]
    bodies = [
        ("http://h.invalid/w.jpg", {"data": big, "content_type": "image/jpeg"}),
        ("http://h.invalid/s.jpg", {"data": small, "content_type": "image/jpeg"}),
        ("http://h.invalid/unused.jpg", {"data": small, "content_type": "image/jpeg"}),
    ]
    config = LaitConfig(inputs=[], out="", url_map=[f"http://h.invalid/={tmp_path}"])
    p = BeamTestPipeline(runner="FnApiRunner")
    pairs, payloads, rejects = (
        p | "C" >> beam.Create(cands),
        p | "B" >> beam.Create(bodies),
    ) | LaitImages(config)
    digest = hashlib.sha256(big).hexdigest()
    assert_that(
        pairs | beam.Map(lambda r: (r["input_id"], r["image_id"], r["width"], r["image_origin"])),
        equal_to(
            [
                ("p1 w", digest, 400, "warc"),
                ("p2 w", digest, 400, "warc"),
                ("p1 f", digest, 400, "fetched"),
            ]
        ),
        label="pairs",
    )
    assert_that(
        payloads | beam.MapTuple(lambda k, v: (k, v["ext"], len(v["data"]))),
        equal_to([(digest, "jpg", len(big))] * 2),  # once per URL
        label="payloads",
    )
    assert_that(
        rejects | beam.Map(lambda r: (r["input_id"], r["step"], r["reason"])),
        equal_to([("p1 s", "images", "too small: 100x80")]),
        label="rejects",
    )
    p.run().wait_until_finish()
