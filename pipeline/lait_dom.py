"""Dominant images of a parsed web page and the texts that describe each one (pure functions).

ImageBERT (section 3) keeps only a page's *dominant* images, "detected by HTML tags and DOM tree
features", because the others (navigation, logos, icons, ads, tracking pixels) are unrelated to
the page's content. This foundation rule uses tags and attributes only (no rendering):

**Which URL.** For each ``<img>``: a lazy-loading attribute (``data-src``, ``data-lazy-src``,
``data-original``, ``data-lazy``, ``data-url``) wins, since ``src`` then holds a placeholder;
else the widest ``srcset`` (or ``data-srcset``) entry (``w`` descriptors, or the highest ``x``
density), the ``srcset`` of the ``<source>`` elements of an enclosing ``<picture>`` included;
else ``src``.
``data:`` URIs and empty values give no URL: such an ``<img>`` is no candidate. URLs resolve
against ``<base href>`` (itself resolved against the page URL) or the page URL; fragments go.
One page gives one candidate per distinct URL (the first dominant occurrence, else the first).

**Not dominant** when the first of these holds (that check names the reason):

1. ``hidden``: ``hidden`` or ``aria-hidden="true"`` attribute, or ``display:none`` /
   ``visibility:hidden`` in the inline style of the image or an ancestor;
2. ``tracking pixel``: declared width or height <= 2 px, a tracker word among the URL host or
   path tokens (``pixel``, ``beacon``, ``doubleclick``, ``analytics``, ``1x1``...), or a file
   named like a spacer (``spacer``, ``blank``, ``transparent``, ``clear``, ``dot``...);
3. ``decorative``: a word such as ``icon``, ``logo``, ``sprite``, ``avatar``, ``badge``,
   ``button``, ``emoji``, ``ad``/``ads``/``advert`` among the tokens of the URL path or of the
   image's ``class``/``id`` (there also ``sponsor``, ``social``, ``share``, ``rating``), or
   ``role="presentation"``, or an enclosing link (``<a href>``) whose host or path names an ad
   or affiliate service (``doubleclick``, ``adclick``, ``adserver``, ``affiliate``, ...: a
   banner, whatever its size; a link to a page or a larger image is not a reason);
4. ``page chrome``: inside ``<nav>`` or ``<aside>``, inside a ``<header>``/``<footer>`` that is not
   part of an ``<article>``/``<main>``, or inside an element with role ``navigation``,
   ``banner``, ``contentinfo`` or ``complementary`` or with a class/id token such as ``nav``,
   ``menu``, ``sidebar``, ``footer``, ``masthead``, ``breadcrumb``;
5. ``small declared size``: a declared width or height (attribute or inline style, px) below
   ``min_declared`` (display size, so large images shown as thumbnails are still filtered here);
6. ``outside content``: the page marks its content (``<main>``, ``<article>``, ``role=main``)
   and the image is neither inside it nor inside a ``<figure>``.

Otherwise the image is dominant. The actual pixel size is checked later, on the decoded image.

**Texts** per image: ``alt``; ``title`` (of the image, else of an enclosing link); ``figcaption``
of the enclosing ``<figure>``; ``surrounding``: when the image sits inside a paragraph (``p``,
``li``, ``td``, ``dd``, ``blockquote``, through inline elements such as ``<a>`` only), the
sentence just before it in that paragraph, else the one just after it. Text of neighbouring
paragraphs is not used: on real pages it is as often about something else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
TRACKER_TOKENS = frozenset({"pixel", "beacon", "doubleclick", "analytics", "tracking", "tracker",
                            "1x1"})  # fmt: skip
TRACKER_STEMS = frozenset({"spacer", "blank", "transparent", "clear", "dot", "empty", "px"})
DECOR_TOKENS = frozenset({  # URL path, class and id tokens
    "icon", "icons", "favicon", "logo", "logos", "sprite", "sprites", "avatar", "avatars",
    "gravatar", "badge", "badges", "button", "buttons", "btn", "emoji", "emoticon", "smiley",
    "ad", "ads", "advert", "adverts", "advertisement", "divider",
})  # fmt: skip
DECOR_ATTR_TOKENS = DECOR_TOKENS | {"sponsor", "sponsored", "social", "share", "rating", "stars"}
AD_LINK_TOKENS = frozenset({"ads", "adclick", "adserver", "adservice", "doubleclick",
                            "googlesyndication", "affiliate", "affiliates", "sponsored",
                            "banners", "clicktrack", "adnxs"})  # fmt: skip
CHROME_TOKENS = frozenset({
    "nav", "navbar", "navigation", "menu", "menubar", "footer", "sidebar", "masthead",
    "breadcrumb", "breadcrumbs", "topbar", "toolbar",
})  # fmt: skip
CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary"})
TEXT_BLOCKS = frozenset({"p", "li", "td", "dd", "blockquote"})
INLINE_TAGS = frozenset({"a", "span", "em", "strong", "b", "i", "u", "small", "picture", "mark"})
_TOKEN_RE = re.compile(r"[a-z0-9]+")
_PX_RE = re.compile(r"^\s*(\d+)(?:\.\d+)?\s*(?:px)?\s*$")
_STYLE_RE = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*(\d+)(?:\.\d+)?px", re.I)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_WS_RE = re.compile(r"\s+")


@dataclass
class Candidate:
    """One image of a page: its URL, why it is (not) dominant, its texts and DOM features."""

    image_url: str
    dominant: bool
    reason: str = ""
    texts: dict[str, str] = field(default_factory=dict)
    dom: dict[str, Any] = field(default_factory=dict)


def _tokens(value: str | None) -> set[str]:
    return set(_TOKEN_RE.findall((value or "").lower()))


def _px(value: str | None) -> int | None:
    match = _PX_RE.match(value or "")
    return int(match.group(1)) if match else None


def declared_size(attrs: dict[str, Any]) -> tuple[int | None, int | None]:
    """Declared (width, height) in px from attributes, else from the inline style."""
    width, height = _px(attrs.get("width")), _px(attrs.get("height"))
    for prop, value in _STYLE_RE.findall(attrs.get("style") or ""):
        if prop.lower() == "width" and width is None:
            width = int(value)
        elif prop.lower() == "height" and height is None:
            height = int(value)
    return width, height


def best_srcset(srcset: str) -> str | None:
    """The widest (``w``) or densest (``x``) URL of a ``srcset`` value."""
    best, best_key = None, -1.0
    for part in srcset.split(","):
        bits = part.split()
        if not bits or bits[0].startswith("data:"):
            continue
        key = 1.0
        if len(bits) > 1 and bits[1][-1:] in ("w", "x"):
            try:
                key = float(bits[1][:-1]) * (1.0 if bits[1].endswith("w") else 1000.0)
            except ValueError:
                key = 1.0
        if key > best_key:
            best, best_key = bits[0], key
    return best


def chosen_url(
    attrs: dict[str, Any], picture_srcsets: Sequence[str] = ()
) -> tuple[str | None, str]:
    """The URL to fetch for an ``<img>`` and where it came from (``lazy``/``srcset``/``src``).

    ``picture_srcsets``: the ``srcset`` values of an enclosing ``<picture>``'s ``<source>``s."""
    for name in LAZY_ATTRS:
        value = (attrs.get(name) or "").strip()
        if value and not value.startswith("data:"):
            return value, "lazy"
    srcsets = [v for v in (attrs.get("srcset"), attrs.get("data-srcset")) if v]
    if (srcsets or picture_srcsets) and (
        url := best_srcset(",".join([*srcsets, *picture_srcsets]))
    ):
        return url, "srcset"
    src = (attrs.get("src") or "").strip()
    if src and not src.startswith("data:"):
        return src, "src"
    return None, ""


def _clean(text: str | None) -> str:
    return _WS_RE.sub(" ", text or "").strip()


def _is_hidden(attrs: dict[str, Any]) -> bool:
    style = (attrs.get("style") or "").replace(" ", "").lower()
    return (
        "hidden" in attrs
        or (attrs.get("aria-hidden") or "").lower() == "true"
        or "display:none" in style
        or "visibility:hidden" in style
    )


def _ancestors(node: Any) -> list[Any]:
    out, cur = [], node.parent
    while cur is not None and cur.tag not in ("html", "-undef", "#document"):
        out.append(cur)
        cur = cur.parent
    return out


def not_dominant_reason(
    node: Any, url: str, ancestors: list[Any], has_content_root: bool, min_declared: int
) -> str:
    """The first rule of the module docstring that the image breaks, or ``""`` if dominant."""
    attrs = node.attributes
    if _is_hidden(attrs) or any(_is_hidden(a.attributes) for a in ancestors):
        return "hidden"
    width, height = declared_size(attrs)
    parts = urlsplit(url)
    url_tokens = _tokens(unquote(parts.path))
    if (width is not None and width <= 2) or (height is not None and height <= 2):
        return "tracking pixel"
    stem = unquote(parts.path).rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    if (url_tokens | _tokens(parts.hostname)) & TRACKER_TOKENS or stem in TRACKER_STEMS:
        return "tracking pixel"
    link = next((a for a in ancestors if a.tag == "a"), None)
    href = urlsplit((link.attributes.get("href") or "") if link is not None else "")
    if (
        url_tokens & DECOR_TOKENS
        or (_tokens(attrs.get("class")) | _tokens(attrs.get("id"))) & DECOR_ATTR_TOKENS
        or (attrs.get("role") or "").lower() in ("presentation", "none")
        or (_tokens(href.hostname) | _tokens(unquote(href.path))) & AD_LINK_TOKENS
    ):
        return "decorative"
    for i, anc in enumerate(ancestors):
        tag, a = anc.tag, anc.attributes
        outer = {x.tag for x in ancestors[i + 1 :]}
        if tag in ("nav", "aside") or (a.get("role") or "").lower() in CHROME_ROLES:
            return "page chrome"
        if tag in ("header", "footer") and not outer & {"article", "main"}:
            return "page chrome"
        if (_tokens(a.get("class")) | _tokens(a.get("id"))) & CHROME_TOKENS:
            return "page chrome"
    if (width is not None and width < min_declared) or (
        height is not None and height < min_declared
    ):
        return "small declared size"
    if has_content_root:
        in_content = any(
            a.tag in ("main", "article", "figure") or (a.attributes.get("role") or "") == "main"
            for a in ancestors
        )
        if not in_content:
            return "outside content"
    return ""


def _first_sentence(text: str, last: bool = False) -> str:
    sentences = [s for s in _SENTENCE_RE.split(_clean(text)) if s]
    if not sentences:
        return ""
    return sentences[-1] if last else sentences[0]


def surrounding_sentence(node: Any, ancestors: list[Any]) -> str:
    """The sentence next to an image inside its own paragraph (module docstring), or ``""``."""
    block = None
    for anc in ancestors:
        if anc.tag in TEXT_BLOCKS:
            block = anc
            break
        if anc.tag not in INLINE_TAGS:
            return ""
    if block is None:
        return ""
    before: list[str] = []
    after: list[str] = []
    seen = False
    for item in block.traverse(include_text=True):
        if item.mem_id == node.mem_id:
            seen = True
        elif item.is_text_node:
            (after if seen else before).append(item.text_content or "")
    return _first_sentence(" ".join(before), last=True) or _first_sentence(" ".join(after))


def image_texts(node: Any, ancestors: list[Any]) -> dict[str, str]:
    """The non-empty texts of one image: alt, title, figcaption, surrounding."""
    attrs = node.attributes
    texts = {"alt": _clean(attrs.get("alt")), "title": _clean(attrs.get("title"))}
    if not texts["title"]:
        link = next((a for a in ancestors if a.tag == "a"), None)
        texts["title"] = _clean(link.attributes.get("title")) if link is not None else ""
    figure = next((a for a in ancestors if a.tag == "figure"), None)
    caption = figure.css_first("figcaption") if figure is not None else None
    texts["figcaption"] = _clean(caption.text(separator=" ")) if caption is not None else ""
    texts["surrounding"] = surrounding_sentence(node, ancestors)
    return {k: v for k, v in texts.items() if v}


def find_candidates(tree: Any, page_url: str, min_declared: int) -> list[Candidate]:
    """All distinct image URLs of a parsed page (``selectolax.lexbor``), dominant or not."""
    base_node = tree.css_first("base[href]")
    base = page_url
    if base_node is not None and (href := (base_node.attributes.get("href") or "").strip()):
        base = urljoin(page_url, href)
    has_content_root = tree.css_first("main, article, [role=main]") is not None
    found: dict[str, Candidate] = {}
    for node in tree.css("img"):
        parent = node.parent
        sources = []
        if parent is not None and parent.tag == "picture":
            sources = [v for src in parent.css("source") if (v := src.attributes.get("srcset"))]
        raw, origin = chosen_url(node.attributes, sources)
        if raw is None:
            continue
        url = urldefrag(urljoin(base, raw))[0]
        if urlsplit(url).scheme not in ("http", "https", "file"):
            continue
        if url in found and found[url].dominant:
            continue
        ancestors = _ancestors(node)
        reason = not_dominant_reason(node, url, ancestors, has_content_root, min_declared)
        width, height = declared_size(node.attributes)
        dom = {
            "url_from": origin,
            "declared_w": width,
            "declared_h": height,
            "in_figure": any(a.tag == "figure" for a in ancestors),
        }
        if url not in found or not reason:
            found[url] = Candidate(url, not reason, reason, image_texts(node, ancestors), dom)
    return list(found.values())
