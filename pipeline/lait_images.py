"""Images step: get each candidate's image bytes, decode them safely, keep large enough images.

Bytes come from the WARC when it holds a response for the image URL (joined by URL with a
``CoGroupByKey``), else from the configured fetcher (``pipeline.lait_fetch``). Each URL is
fetched and decoded once, however many candidates point to it.

``decode_image`` rejects, with these reasons: ``empty file``; ``too large`` (bytes);
``corrupt`` (not an image, or undecodable); ``decompression bomb`` (more pixels than
``max_pixels``: checked on the header before decoding, and Pillow's own bomb error);
``truncated``; ``too small`` (width or height not larger than ``min_side``, after EXIF
rotation). An image is identified by the sha256 of its bytes as fetched (``image_id``).

Stored bytes are the fetched bytes when they are a plain JPEG, PNG or WebP. Otherwise the image
is normalised and re-encoded (JPEG q95 for JPEG-like sources, else PNG), and ``normalized``
says why: EXIF orientation applied (so pixels match the recorded width/height), CMYK/YCbCr to
RGB, 16-bit and float modes scaled to 8 bits, animations reduced to their first frame, other
formats (GIF, BMP, TIFF, MPO) converted. Palette and alpha images stay as they are when found
as PNG or WebP: every reader converts them.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from pipeline.common import REJECTS, Counters, reject
from pipeline.lait_config import JOB, LaitConfig
from pipeline.lait_fetch import FetchError, build_fetcher

STEP = "images"
PAYLOADS = "payloads"
STORED_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
EXIF_ORIENTATION = 0x0112


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ImageReject(Exception):
    """An image that cannot be kept; ``str(err)`` is the reject reason."""


@dataclass
class DecodedImage:
    """A checked image: sizes in pixels of the stored bytes, ``data`` = stored bytes."""

    image_id: str
    width: int
    height: int
    format: str
    mode: str
    ext: str
    data: bytes
    normalized: str
    frames: int


def _to_8bit(img: Any) -> Any:
    """16-bit / 32-bit / float greyscale -> 8-bit ``L`` (16-bit: top byte; others clipped)."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(img)
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.max(initial=0) > 255):
        arr = np.right_shift(arr.astype(np.uint32), 8)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def _normalize(img: Any, src_format: str) -> tuple[bytes, str, Any]:
    """Re-encode ``img`` (first frame, EXIF applied, 8-bit RGB/L/RGBA): (bytes, ext, image)."""
    from PIL import ImageOps

    out = ImageOps.exif_transpose(img)
    if out.mode in DEEP_MODES:
        out = _to_8bit(out)
    elif out.mode in ("P", "PA"):
        out = out.convert("RGBA" if "transparency" in out.info or out.mode == "PA" else "RGB")
    elif out.mode not in ("RGB", "L", "RGBA", "LA"):
        out = out.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1
    buf = io.BytesIO()
    if src_format in ("JPEG", "MPO") and out.mode in ("RGB", "L"):
        out.save(buf, "JPEG", quality=95)
        return buf.getvalue(), "jpg", out
    out.save(buf, "PNG")
    return buf.getvalue(), "png", out


def decode_image(data: bytes, *, min_side: int, max_pixels: int, max_bytes: int) -> DecodedImage:
    """Check and, where needed, normalise one image; raise ``ImageReject`` (module docstring)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageReject("empty file")
    if len(data) > max_bytes:
        raise ImageReject(f"too large: {len(data)} bytes")
    image_id = _sha(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageReject(f"decompression bomb: {width}x{height} pixels")
            orientation = img.getexif().get(EXIF_ORIENTATION)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            if width <= min_side or height <= min_side:
                raise ImageReject(f"too small: {width}x{height}")
            img.load()
        except ImageReject:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageReject(f"decompression bomb: {exc}"[:120]) from None
        except UnidentifiedImageError:
            raise ImageReject("corrupt: not a recognised image") from None
        except (OSError, EOFError, SyntaxError, ValueError) as exc:
            kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
            raise ImageReject(f"{kind}: {exc}"[:120]) from None
        except Exception as exc:  # any decoder failure is this image's problem only
            raise ImageReject(f"corrupt: {type(exc).__name__}") from None
    fmt, frames = img.format or "", int(getattr(img, "n_frames", 1) or 1)
    why = []
    if fmt not in STORED_EXT:
        why.append(f"format {fmt or 'unknown'}")
    if frames > 1:
        why.append("animated: first frame")
    if orientation not in (None, 0, 1):
        why.append(f"exif orientation {orientation}")
    if img.mode in DEEP_MODES:
        why.append(f"{img.mode} to 8-bit")
    elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
        why.append(f"{img.mode} to RGB")
    if not why:
        return DecodedImage(image_id, width, height, fmt, img.mode, STORED_EXT[fmt], data, "", 1)
    stored, ext, out = _normalize(img, fmt)
    return DecodedImage(
        image_id, out.width, out.height, fmt, img.mode, ext, stored, "; ".join(why), frames
    )


class ImagesFn(beam.DoFn):
    """(url, {"candidates", "bodies"}) -> one pair per candidate, or a reject per candidate.

    Also emits the stored bytes once per URL on the ``payloads`` output.
    """

    def __init__(self, config: LaitConfig) -> None:
        self.config = config
        self.counters = Counters(JOB)
        self.fetcher: Any = None

    def setup(self) -> None:
        from PIL import Image

        c = self.config
        Image.MAX_IMAGE_PIXELS = c.max_pixels  # Pillow's own bomb guard, same limit
        self.fetcher = build_fetcher(
            c.url_map,
            c.local_roots,
            allow_network=c.allow_network,
            timeout=c.fetch_timeout,
            max_bytes=c.max_bytes,
        )

    def process(self, item: tuple[str, dict[str, Any]]) -> Iterator[Any]:
        url, grouped = item
        candidates = list(grouped["candidates"])
        if not candidates:
            self.counters.inc("unreferenced.images")  # a WARC image no kept page points to
            return
        self.counters.inc("in.images", len(candidates))
        # a URL captured more than once: the same choice on every run (non-empty, smallest hash)
        bodies = sorted(grouped["bodies"], key=lambda b: (not b["data"], _sha(b["data"])))
        c = self.config
        try:
            if bodies:
                data, origin = bodies[0]["data"], "warc"
            else:
                data, origin = self.fetcher.fetch(url), "fetched"
            image = decode_image(
                data, min_side=c.min_side, max_pixels=c.max_pixels, max_bytes=c.max_bytes
            )
        except (FetchError, ImageReject) as exc:
            reason = str(exc)
            self.counters.inc(f"reason_{reason.split(':')[0].replace(' ', '_')}.images")
            for cand in candidates:
                yield reject(cand["input_id"], STEP, reason)
            return
        self.counters.inc("out.images", len(candidates))
        yield beam.pvalue.TaggedOutput(
            PAYLOADS, (image.image_id, {"data": image.data, "ext": image.ext})
        )
        for cand in candidates:
            yield {
                **cand,
                "image_id": image.image_id,
                "width": image.width,
                "height": image.height,
                "image_format": image.format,
                "image_mode": image.mode,
                "image_ext": image.ext,
                "image_bytes": len(image.data),
                "image_origin": origin,
                "normalized": image.normalized,
                "frames": image.frames,
            }


class LaitImages(beam.PTransform):
    """(captioned candidates, WARC image bodies) -> (pairs, payloads, rejects).

    ``payloads`` are ``(image_id, {"data": stored bytes, "ext"})``, possibly repeated when the
    same bytes sit at several URLs.
    """

    def __init__(self, config: LaitConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, inputs: tuple[Any, Any]):
        candidates, bodies = inputs
        keyed = candidates | "KeyByImageUrl" >> beam.Map(lambda c: (c["image_url"], c))
        out = (
            {"candidates": keyed, "bodies": bodies}
            | "JoinBodies" >> beam.CoGroupByKey()
            | "FetchAndDecode"
            >> beam.ParDo(ImagesFn(self.config)).with_outputs(REJECTS, PAYLOADS, main="pairs")
        )
        return out.pairs, out[PAYLOADS], out[REJECTS]
