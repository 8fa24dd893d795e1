"""Conceptual-Captions-style TSV: ``caption<TAB>image URL or path`` per line, streamed.

The files have no header; a first line whose two fields are both column names (``caption``,
``url``, ``image`` ...) is taken as one and skipped (``header=None``), or the caller says
``header=True``/``False``. Lines are decoded one by one as UTF-8 (gzip files are read through),
so a bad byte rejects one line, not the file. Line numbers are 1-based and count the header.

A line is malformed when it does not have exactly two tab-separated fields, when the caption
or the URL is blank, or when it is not UTF-8.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from corpora.readers.common import (
    GZIP_ERRORS,
    Malformed,
    OnError,
    Source,
    check_on_error,
    image_key,
    open_source,
    reject,
    source_name,
)

logger = logging.getLogger(__name__)

HEADER_NAMES = frozenset(
    {
        "caption",
        "captions",
        "text",
        "title",
        "url",
        "image",
        "image_url",
        "imageurl",
        "img_url",
        "path",
        "image_path",
        "filepath",
        "file_name",
        "filename",
    }
)


@dataclass(frozen=True, slots=True)
class TsvCaption:
    """One caption line. ``image_key`` is the URL's file stem, None when the URL has no file name
    (``https://host/?img=3``): such images are keyed by content further down the pipeline."""

    line: int
    caption: str
    url: str
    image_key: str | None


def is_header(fields: list[str]) -> bool:
    """True when every field is a known column name (case-insensitive)."""
    return bool(fields) and all(f.strip().lower() in HEADER_NAMES for f in fields)


def iter_caption_tsv(
    path: Source,
    *,
    on_error: OnError = "raise",
    header: bool | None = None,
    name: str | None = None,
) -> Iterator[TsvCaption | Malformed]:
    """Yield one :class:`TsvCaption` per line of a caption TSV (``Malformed`` in yield mode).

    ``header``: None detects a header line, True always skips the first line, False never does.
    """
    mode = check_on_error(on_error)
    return _iter(path, mode, header, source_name(path, name))


def _iter(path: Source, mode: OnError, header: bool | None, label: str) -> Iterator[Any]:
    kept = rejected = 0
    with open_source(path) as fh:
        lines = enumerate(fh, start=1)
        number = 0
        while True:
            try:
                number, raw = next(lines)
            except StopIteration:
                break
            except GZIP_ERRORS as exc:
                rejected += 1
                reason = f"truncated or damaged gzip file: {type(exc).__name__}: {exc}"
                yield reject(_bad(label, number + 1, reason), mode)
                break
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                rejected += 1
                yield reject(
                    _bad(label, number, f"not UTF-8: {exc.reason} at byte {exc.start}"), mode
                )
                continue
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            fields = text.rstrip("\r\n").split("\t")
            if number == 1 and (header or (header is None and is_header(fields))):
                logger.debug("%s: header line %r skipped", label, fields)
                continue
            if len(fields) != 2:
                rejected += 1
                reason = f"expected 2 tab-separated fields (caption, url), got {len(fields)}"
                yield reject(_bad(label, number, reason), mode)
                continue
            caption, url = fields[0].strip(), fields[1].strip()
            if not caption or not url:
                rejected += 1
                field = "caption" if not caption else "url"
                yield reject(_bad(label, number, f"field {field!r}: empty", field), mode)
                continue
            try:
                key: str | None = image_key(url)
            except ValueError:
                key = None
            kept += 1
            yield TsvCaption(number, caption, url, key)
    logger.info("%s: %d captions, %d rejected lines", label, kept, rejected)


def _bad(label: str, number: int, reason: str, field: str | None = None) -> Malformed:
    return Malformed(label, number, None, reason, unit="line", field=field)
