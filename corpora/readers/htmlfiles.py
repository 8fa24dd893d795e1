"""Saved HTML pages from a folder, plus the charset helpers the WARC reader shares.

A page's declared charset is, in the HTML standard's order of precedence, its byte order mark,
else a ``<meta charset=...>`` or ``<meta http-equiv="Content-Type" content="...; charset=...">``
in the first :data:`META_PRESCAN_BYTES` bytes. Labels are returned lower-cased as declared
(``"iso-8859-1"``, ``"utf-8"``); decoding, and what to do with unknown labels, is the caller's.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpora.readers.common import Malformed, OnError, check_on_error, reject

logger = logging.getLogger(__name__)

# The HTML standard pre-scans 1024 bytes; real pages put long scripts before their meta tags.
META_PRESCAN_BYTES = 4096
DEFAULT_PATTERNS = ("**/*.html", "**/*.htm", "**/*.xhtml")

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_META = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE)
_PARAM_CHARSET = re.compile(r"""(?:^|;)\s*charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class HtmlFile:
    """One page: ``path`` as found, ``url`` its ``file://`` URI, ``data`` the raw bytes."""

    path: str
    url: str
    data: bytes
    charset: str | None


def sniff_meta_charset(data: bytes, limit: int = META_PRESCAN_BYTES) -> str | None:
    """The charset a page declares itself (BOM, then ``<meta>``), lower-cased; None if none."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    head = data[:limit]
    for tag in _META.finditer(head):
        found = _META_CHARSET.search(tag.group(0))
        if found:
            return found.group(1).decode("ascii").lower()
    return None


def charset_from_content_type(value: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header value, lower-cased; None if absent."""
    if not value:
        return None
    params = value.split(";", 1)
    found = _PARAM_CHARSET.search(";" + params[1]) if len(params) == 2 else None
    return found.group(1).lower() if found else None


def mime_type(value: str | None) -> str:
    """The bare media type of a Content-Type header value, lower-cased (``""`` if absent)."""
    return (value or "").split(";", 1)[0].strip().lower()


def iter_html_files(
    root: str | os.PathLike,
    patterns: str | tuple[str, ...] = DEFAULT_PATTERNS,
    *,
    on_error: OnError = "raise",
) -> Iterator[HtmlFile | Malformed]:
    """Yield every file under ``root`` matching the glob ``patterns``, sorted by path.

    A file that cannot be read (permissions, vanished) is a :class:`Malformed` with
    ``unit="file"`` in yield mode. A missing ``root`` raises FileNotFoundError.
    """
    mode = check_on_error(on_error)
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"HTML folder not found: {base}")
    pats = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    return _iter(base, pats, mode)


def _iter(base: Path, patterns: tuple[str, ...], mode: OnError) -> Iterator[Any]:
    paths = sorted({p for pat in patterns for p in base.glob(pat) if p.is_file()})
    kept = 0
    for index, path in enumerate(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield reject(Malformed(str(path), index, None, f"unreadable: {exc}", unit="file"), mode)
            continue
        kept += 1
        yield HtmlFile(str(path), path.resolve().as_uri(), data, sniff_meta_charset(data))
    logger.info("%s: %d HTML files read of %d found", base, kept, len(paths))
