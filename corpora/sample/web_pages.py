"""Web pages of the sample crawl, their image candidates and the rules that judge each candidate.

A :class:`Page` is built block by block (headings, paragraphs, figures, site chrome); every
``<img>`` added becomes a :class:`Candidate` (page URL, image URL). :func:`judge` then applies the
LAIT rules below, in this order, and records the first that rejects a candidate as its reason
(and every rule that fires in ``also``). The generator states the reason it meant each case to
get and :func:`judge` refuses a corpus where the rules disagree, so the ground truth always
follows the documented rules.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urljoin

from corpora.sample.web_assets import HOST, Asset

# Rejection reasons in pipeline order (page, DOM, image, text, then corpus-wide aggregation).
REASONS = (
    "non_english",
    "not_dominant",
    "broken_image",
    "tiny_image",
    "no_text",
    "boilerplate_text",
    "text_length",
    "spam_text",
    "adult_text",
    "oov_text",
    "non_english_text",
    "non_natural",
    "shared_description",
    "duplicate_image",
)
RULES = {
    "non_english": "the page's visible text is not English (all its candidates go)",
    "not_dominant": "site furniture, not content: the <img> sits in <header>, <nav>, <footer> or "
    "<aside>, or its class says logo/icon/pixel/divider/ad, or role=presentation, or a declared "
    "width or height below 100 px",
    "broken_image": "no decodable image at the URL: zero bytes, a truncated JPEG, a non-image "
    "served as image/jpeg, an HTTP error, or a URL nobody serves",
    "tiny_image": "decoded width or height of 300 px or less (ImageBERT keeps both sides > 300)",
    "no_text": "no alt, title, figcaption or surrounding text at all",
    "boilerplate_text": "every text source is boilerplate ('click here', 'image', 'logo', a file name)",
    "text_length": "the chosen text has fewer than 3 or more than 50 words",
    "spam_text": "the chosen text is spam (casino, viagra, 'buy now cheap', ...)",
    "adult_text": "the chosen text has adult words (porn, xxx, nude, ...)",
    "oov_text": "most words of the chosen text are not English words",
    "non_english_text": "the chosen text is in another language than the (English) page: "
    "its English confidence given an English page is low",
    "non_natural": "the image is not a natural photo or scene but mostly text (a page of text, "
    "a screenshot, a quote card): the text-area cue of the non-natural image filter",
    "shared_description": "more than 5 distinct images (by bytes) share the same text "
    "(compared case-insensitively): all of them go",
    "duplicate_image": "the same image bytes are paired with several texts: the pair with the "
    "most words in its text is kept (ties: the smallest page_url), the others go",
}
TEXT_SOURCES = ("alt", "title", "figcaption", "surrounding")
MIN_WORDS, MAX_WORDS, MIN_SIDE, MAX_SHARED = 3, 50, 300, 5
BOILERPLATE = frozenset(
    (
        "click here",
        "image",
        "img",
        "photo",
        "picture",
        "pic",
        "logo",
        "icon",
        "banner",
        "untitled",
        "thumbnail",
        "advertisement",
        "ad",
        "spacer",
        "placeholder",
        "read more",
        "more",
        "home",
        "search",
        "null",
        "none",
        "undefined",
    )
)
_FILENAME = re.compile(
    r"^[\w.-]+\.(jpe?g|png|gif|webp|bmp)$|^(img|dsc|dscn|image|photo)[_ -]?\d+$", re.I
)


def clean(text: str | None) -> str:
    """Whitespace collapsed and trimmed (HTML entities are already decoded here)."""
    return re.sub(r"\s+", " ", text or "").strip()


def is_boilerplate(text: str) -> bool:
    t = clean(text).lower().strip(" .!:-")
    return t in BOILERPLATE or bool(_FILENAME.match(t))


@dataclass
class Candidate:
    """One (page, image) pair and its ground truth."""

    page: Page
    asset: Asset
    src: str  # as written in the HTML (absolute, root-relative or relative)
    sources: dict[str, str]  # alt/title/figcaption/surrounding -> text (decoded, as written)
    dominant: bool
    flag: str | None  # a text reason the case was written to have (spam_text ...)
    expect: str | None  # the reason the case was written to get (None: kept)
    note: str
    cid: str = ""
    reasons: list[str] = field(default_factory=list)
    group: str | None = None  # duplicate group id

    @property
    def image_url(self) -> str:
        return urljoin(self.page.url, self.src)

    def text(self) -> tuple[str, str | None]:
        """(text, source): the first non-boilerplate source in alt, title, figcaption,
        surrounding order; else the first non-empty one; else ("", None)."""
        present = [
            (s, clean(self.sources.get(s))) for s in TEXT_SOURCES if clean(self.sources.get(s))
        ]
        for s, t in present:
            if not is_boilerplate(t):
                return t, s
        return (present[0][1], present[0][0]) if present else ("", None)

    @property
    def reason(self) -> str | None:
        return self.reasons[0] if self.reasons else None


@dataclass
class Page:
    """A page under construction; ``store`` is ``warc`` or ``html`` (a file in web/html/)."""

    slug: str
    title: str
    lang: str = "en"
    store: str = "warc"
    kind: str = "article"
    charset: str = "utf-8"  # the encoding of the bytes
    header_charset: bool = True  # charset in the HTTP Content-Type header
    meta_charset: bool = True  # <meta charset> in the page
    gzip: bool = False  # Content-Encoding: gzip
    src_style: str = "absolute"  # how <img src> is written: absolute, root or relative
    blocks: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    header: str = ""  # site chrome around <main>
    footer: str = ""

    @property
    def url(self) -> str:
        folder = "pages" if self.store == "warc" else "html"
        return f"{HOST}/{folder}/{self.slug}.html"

    def _src(self, asset: Asset) -> str:
        if self.store == "html" or self.src_style == "relative":
            return "../" + asset.url[len(HOST) + 1 :]  # pages sit one folder below the root
        if self.src_style == "root":
            return asset.url[len(HOST) :]
        return asset.url

    def _img(
        self,
        asset: Asset,
        *,
        alt=None,
        title=None,
        cls=None,
        width=None,
        height=None,
        role=None,
        dominant=True,
        flag=None,
        expect=None,
        note="",
        caption=None,
        surrounding=None,
    ) -> str:
        if self.store == "html" and asset.store == "warc":
            raise ValueError(f"{self.slug}: saved pages can only show files or missing URLs")
        src = self._src(asset)
        attrs = [
            ("src", src),
            ("alt", alt),
            ("title", title),
            ("class", cls),
            ("width", width),
            ("height", height),
            ("role", role),
        ]
        text = " ".join(
            f'{k}="{html.escape(str(v), quote=True)}"' for k, v in attrs if v is not None
        )
        sources = {
            "alt": alt or "",
            "title": title or "",
            "figcaption": caption or "",
            "surrounding": surrounding or "",
        }
        self.candidates.append(Candidate(self, asset, src, sources, dominant, flag, expect, note))
        return f"<img {text}>"

    def h1(self, text: str) -> None:
        self.blocks.append(f"<h1>{html.escape(text)}</h1>")

    def p(self, text: str) -> None:
        self.blocks.append(f"<p>{html.escape(text)}</p>")

    def figure(
        self, asset: Asset, *, caption: str | None = None, caption_html: str | None = None, **kw
    ) -> None:
        """``<figure><img><figcaption>``; ``caption_html`` is written as is (entities, breaks)."""
        size = kw.pop("size", asset.size)
        img = self._img(
            asset,
            caption=caption,
            width=size[0] if size else None,
            height=size[1] if size else None,
            **kw,
        )
        cap = (
            caption_html
            if caption_html is not None
            else (html.escape(caption) if caption else None)
        )
        self.blocks.append(
            f"<figure>{img}" + (f"<figcaption>{cap}</figcaption>" if cap else "") + "</figure>"
        )

    def inline(self, asset: Asset, before: str, **kw) -> None:
        """An image inside a paragraph: the paragraph's text is the surrounding text."""
        img = self._img(asset, surrounding=before, **kw)
        self.blocks.append(f"<p>{html.escape(before)} {img}</p>")

    def bare(self, asset: Asset, **kw) -> None:
        """An image alone in a ``<div class="photo">``, no text anywhere near it."""
        self.blocks.append(f'<div class="photo">{self._img(asset, **kw)}</div>')

    def linked(self, asset: Asset, alt: str, **kw) -> None:
        """An image inside a link and nothing else (``<a href><img alt></a>``)."""
        self.blocks.append(f'<p><a href="/gallery/">{self._img(asset, alt=alt, **kw)}</a></p>')

    def furniture(
        self,
        asset: Asset,
        alt: str,
        cls: str,
        size: tuple[int, int],
        note: str,
        role: str | None = None,
    ) -> str:
        """An ``<img>`` that is site furniture (logo, icon, pixel ...): never a dominant image."""
        return self._img(asset, alt=alt, cls=cls, width=size[0], height=size[1], role=role,
                         dominant=False, expect="not_dominant", note=note)  # fmt: skip

    def aside(self, asset: Asset, cls: str, alt: str, note: str) -> None:
        img = self.furniture(asset, alt, cls, asset.size or (0, 0), note)
        self.blocks.append(f'<aside class="{cls}">{img}</aside>')

    def divider(self, asset: Asset) -> None:
        self.blocks.append(
            self.furniture(
                asset, "", "divider", (600, 6), "decorative divider line", "presentation"
            )
        )

    def render(self) -> str:
        """The page's HTML text."""
        head = [f'<meta charset="{self.charset}">'] if self.meta_charset else []
        head += [
            f"<title>{html.escape(self.title)}</title>",
            f'<link rel="canonical" href="{self.url}">',
        ]
        body = "\n".join(self.blocks)
        return (
            f'<!DOCTYPE html>\n<html lang="{self.lang}">\n<head>\n'
            + "\n".join(head)
            + "\n</head>\n"
            f"<body>\n{self.header}<main>\n<article>\n{body}\n</article>\n</main>\n{self.footer}"
            "</body>\n</html>\n"
        )


def _checks(c: Candidate) -> list[str]:
    text, _ = c.text()
    words = len(text.split())
    size = c.asset.size
    fired = {
        "non_english": c.page.lang != "en",
        "not_dominant": not c.dominant,
        "broken_image": size is None,
        "tiny_image": size is not None and min(size) <= MIN_SIDE,
        "no_text": not text,
        "boilerplate_text": bool(text) and is_boilerplate(text),
        "text_length": bool(text) and not (MIN_WORDS <= words <= MAX_WORDS),
        "spam_text": c.flag == "spam_text",
        "adult_text": c.flag == "adult_text",
        "oov_text": c.flag == "oov_text",
        "non_english_text": c.flag == "non_english_text",
        "non_natural": c.flag == "non_natural",
    }
    return [r for r in REASONS if fired.get(r)]


def judge(pages: list[Page]) -> dict[str, dict]:
    """Give every candidate an id and its reasons; returns the duplicate groups.

    Raises ValueError where a candidate's computed reason is not the one its case meant.
    """
    for p in pages:  # candidates in document order (chrome is added before the body is)
        doc = p.render()
        p.candidates.sort(key=lambda c: doc.index(f'src="{html.escape(c.src, quote=True)}"'))
    cands = [c for p in pages for c in p.candidates]
    for n, c in enumerate(cands, 1):
        c.cid = f"c{n:04d}"
        c.reasons = _checks(c)
    by_text: dict[str, list[Candidate]] = defaultdict(list)
    for c in cands:
        if not c.reasons:
            by_text[c.text()[0].lower()].append(c)
    for group in by_text.values():
        if len({c.asset.sha256 for c in group}) > MAX_SHARED:
            for c in group:
                c.reasons.append("shared_description")
    by_image: dict[str, list[Candidate]] = defaultdict(list)
    for c in cands:
        if not c.reasons:
            by_image[c.asset.sha256 or ""].append(c)
    groups = {}
    for group in by_image.values():
        if len(group) < 2:
            continue
        best = min(group, key=lambda c: (-len(c.text()[0].split()), c.page.url))
        gid = f"dup-{len(groups) + 1}"
        groups[gid] = {
            "candidates": [c.cid for c in group],
            "kept": best.cid,
            "image_sha256": best.asset.sha256,
        }
        for c in group:
            c.group = gid
            if c is not best:
                c.reasons.append("duplicate_image")
    wrong = [
        f"{c.page.slug} {c.image_url}: meant {c.expect}, got {c.reason}"
        for c in cands
        if c.expect != c.reason
    ]
    if wrong:
        raise ValueError("sample web cases disagree with the rules:\n" + "\n".join(wrong))
    return groups
