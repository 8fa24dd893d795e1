"""The bytes the sample web serves: scene and photo images, site chrome and broken responses.

Every URL lives under :data:`HOST`. An asset is stored in one of three ways:

- ``warc``: as a response record inside the crawl's WARC files (URL path ``/media/...`` or
  ``/px/...``);
- ``file``: not crawled; the file sits at ``OUT/web/<url path>`` (``/img/NAME`` ->
  ``OUT/web/img/NAME``) and a fetcher resolves the URL to that folder;
- ``missing``: referenced by a page but served by nobody (fetching it fails).

The URL's file stem is the image key: ``/media/1007.jpg`` shows scene 1007, ``/img/90003.jpg``
photo 90003; chrome images have names (``logo``, ``icon-home``, ``pixel``).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

from corpora.sample.records import ImageRecord

HOST = "http://sample.msp.invalid"
WEB_JPEG_QUALITY = 85  # web copies are re-encoded (a reused scene drops 4 per extra use)


def probe(body: bytes | None) -> tuple[int, int] | None:
    """(width, height) of a fully decodable image, else None (empty, truncated, not an image)."""
    if not body:
        return None
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.load()
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


@dataclass
class Asset:
    """One URL and what it serves."""

    url: str
    body: bytes | None
    content_type: str
    key: str
    store: str = "warc"  # "warc", "file" or "missing"
    status: str = "200 OK"
    note: str = ""
    size: tuple[int, int] | None = field(init=False)

    def __post_init__(self) -> None:
        self.size = probe(self.body) if self.status.startswith("200") else None

    @property
    def path(self) -> str:
        """The URL's path without the leading slash (``img/1003.jpg``)."""
        return urlsplit(self.url).path.lstrip("/")

    @property
    def sha256(self) -> str | None:
        return None if self.body is None else hashlib.sha256(self.body).hexdigest()


def _encode(image: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _logo() -> Image.Image:
    image = Image.new("RGB", (120, 40), (255, 255, 255))
    d = ImageDraw.Draw(image)
    d.ellipse([4, 4, 36, 36], fill=(200, 30, 40))
    d.ellipse([24, 4, 56, 36], fill=(30, 80, 190))
    for k in range(3):
        d.rectangle([64, 8 + k * 10, 114 - k * 12, 13 + k * 10], fill=(40, 40, 40))
    return image


def _icon(kind: str) -> Image.Image:
    image = Image.new("RGBA", (24, 24), (0, 0, 0, 0))
    d = ImageDraw.Draw(image)
    if kind == "home":
        d.polygon([(2, 12), (12, 2), (22, 12)], fill=(60, 60, 60, 255))
        d.rectangle([5, 12, 19, 22], fill=(60, 60, 60, 255))
    else:
        d.ellipse([2, 2, 15, 15], outline=(60, 60, 60, 255), width=3)
        d.line([(13, 13), (22, 22)], fill=(60, 60, 60, 255), width=3)
    return image


def _ad_banner() -> Image.Image:
    image = Image.new("RGB", (300, 250), (250, 220, 40))
    d = ImageDraw.Draw(image)
    d.rectangle([10, 10, 290, 240], outline=(200, 30, 40), width=8)
    for k in range(4):
        d.rectangle([40, 50 + k * 40, 260 - k * 30, 70 + k * 40], fill=(200, 30, 40))
    return image


class AssetFactory:
    """Makes assets, gives each a unique URL and remembers them all (in creation order)."""

    def __init__(self, scenes: list[ImageRecord], reserve: int) -> None:
        if len(scenes) < reserve:
            raise ValueError(
                f"the web pages need {reserve} training scenes for their kept pairs, "
                f"only {len(scenes)} exist: ask for more scenes"
            )
        self.kept_pool = list(scenes[:reserve])  # one scene per kept pair, never reused
        self.other_pool = list(scenes[reserve:]) or list(scenes)  # the rest, reused if needed
        self.kept_next = 0
        self.other_next = 0
        self.uses: dict[int, int] = {}
        self.assets: dict[str, Asset] = {}

    def _add(self, asset: Asset) -> Asset:
        if asset.url in self.assets:
            raise ValueError(f"URL used twice: {asset.url}")
        self.assets[asset.url] = asset
        return asset

    def _url(self, store: str, key: str, ext: str, sub: str = "") -> str:
        base = "media" if store == "warc" else "img"
        url = f"{HOST}/{base}/{sub}{key}.{ext}"
        n = 2
        while url in self.assets:  # the same key under another folder: v2/, v3/ ...
            url = f"{HOST}/{base}/{sub}v{n}/{key}.{ext}"
            n += 1
        return url

    def take_scene(self, kept: bool) -> ImageRecord:
        """The next scene for a kept pair (each once) or for anything else (cycling)."""
        if kept:
            rec = self.kept_pool[self.kept_next]  # IndexError: more kept pairs than reserved
            self.kept_next += 1
            return rec
        rec = self.other_pool[-1 - self.other_next % len(self.other_pool)]
        self.other_next += 1
        return rec

    def _jpeg(self, rec: ImageRecord, resize=None, crop=None) -> bytes:
        """A re-encoded copy of a scene or photo; each further copy gets a lower quality."""
        uses = self.uses.get(rec.image_id, 0)
        self.uses[rec.image_id] = uses + 1
        with Image.open(io.BytesIO(rec.jpeg)) as src:
            image = src.convert("RGB")
        if crop:
            image = image.crop(crop)
        if resize:
            image = image.resize(resize, Image.Resampling.BILINEAR)
        return _encode(image, quality=WEB_JPEG_QUALITY - 4 * uses)

    def image(
        self, rec: ImageRecord, store: str = "warc", *, resize=None, crop=None, sub=""
    ) -> Asset:
        """A JPEG copy of a scene or photo, optionally cropped then resized (w, h)."""
        body = self._jpeg(rec, resize, crop)
        return self._add(
            Asset(self._url(store, rec.key, "jpg", sub), body, "image/jpeg", rec.key, store)
        )

    def copy(self, asset: Asset, store: str) -> Asset:
        """The same bytes under another URL (a re-post of one image)."""
        url = self._url(store, asset.key, "jpg")
        return self._add(Asset(url, asset.body, asset.content_type, asset.key, store, note="copy"))

    def chrome(self, name: str) -> Asset:
        """Site furniture: ``logo``, ``icon-home``, ``icon-search``, ``divider``, ``ad``."""
        url = f"{HOST}/media/site/{name}.{'jpg' if name == 'ad' else 'png'}"
        if url in self.assets:
            return self.assets[url]
        if name == "logo":
            body = _encode(_logo(), "PNG")
        elif name.startswith("icon-"):
            body = _encode(_icon(name[5:]), "PNG")
        elif name == "divider":
            body = _encode(Image.new("RGB", (600, 6), (200, 200, 200)), "PNG")
        elif name == "ad":
            body = _encode(_ad_banner(), quality=WEB_JPEG_QUALITY)
        else:
            raise ValueError(name)
        return self._add(Asset(url, body, "image/jpeg" if name == "ad" else "image/png", name))

    def render(self, name: str, image: Image.Image) -> Asset:
        """A rendered image (``corpora.sample.graphics``) as a JPEG under ``/media/graphics/``."""
        url = f"{HOST}/media/graphics/{name}.jpg"
        body = _encode(image.convert("RGB"), quality=WEB_JPEG_QUALITY)
        return self._add(Asset(url, body, "image/jpeg", name))

    def pixel(self, page_slug: str) -> Asset:
        """A 1 x 1 tracking GIF, one URL per page (the same bytes everywhere)."""
        body = _encode(Image.new("P", (1, 1), 0), "GIF", transparency=0)
        url = f"{HOST}/px/pixel.gif?page={page_slug}"
        return self._add(Asset(url, body, "image/gif", "pixel"))

    def broken(self, rec: ImageRecord, how: str, store: str = "warc") -> Asset:
        """An image URL that yields no image: ``empty``, ``truncated``, ``not_image``, ``http_404``
        or ``missing`` (no file anywhere)."""
        url = self._url(store, rec.key, "jpg")
        if how == "empty":
            return self._add(Asset(url, b"", "image/jpeg", rec.key, store, note="zero-byte body"))
        if how == "truncated":
            body = self._jpeg(rec)
            return self._add(
                Asset(
                    url,
                    body[: len(body) // 2],
                    "image/jpeg",
                    rec.key,
                    store,
                    note="JPEG cut in half",
                )
            )
        if how == "not_image":
            body = b"<html><body><p>Sorry, this photo was moved.</p></body></html>\n"
            return self._add(
                Asset(
                    url,
                    body,
                    "image/jpeg",
                    rec.key,
                    store,
                    note="an HTML page served as image/jpeg",
                )
            )
        if how == "http_404":
            body = b"<html><body><h1>404 Not Found</h1></body></html>\n"
            return self._add(
                Asset(
                    url, body, "text/html", rec.key, store, status="404 Not Found", note="HTTP 404"
                )
            )
        if how == "missing":
            url = self._url("file", rec.key, "jpg")
            return self._add(
                Asset(
                    url,
                    None,
                    "image/jpeg",
                    rec.key,
                    "missing",
                    note="referenced but served by nobody",
                )
            )
        raise ValueError(how)
