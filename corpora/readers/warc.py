"""WARC files (``.warc``, ``.warc.gz``): HTTP 200 responses carrying HTML pages or images.

Built on warcio. Every record is read to its end and checked against its declared length, so a
record cut short (a file truncated while written or copied) becomes a :class:`Malformed`
naming that record instead of a short body passed on as if whole. warcio ends the iteration
quietly when a gzip member is cut before its record headers; the bytes left over after the last
complete record are therefore checked too and reported as a truncated record.

Records that are well-formed but not wanted (``warcinfo``, ``request``, ``revisit``,
``metadata``, ``resource``; HTTP statuses other than 200; other content types; bodies over
``max_body_bytes``) are :class:`Skipped` with a reason, yielded only when ``on_skip="yield"``.
Record indexes are 0-based positions in the file, counting every record.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

from corpora.readers.common import (
    Malformed,
    OnError,
    Skipped,
    Source,
    check_on_error,
    reject,
    source_name,
)
from corpora.readers.htmlfiles import charset_from_content_type, mime_type

logger = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
KINDS = ("html", "image")
_TAIL = 256  # bytes of the stream end kept to tell trailing blank lines from a cut record
_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class WarcResponse:
    """One HTTP 200 response. ``content_type`` is the bare media type (``"text/html"``),
    ``charset`` the HTTP header's charset parameter (None when absent), ``body`` the payload
    with transfer and content encodings undone, ``http_headers`` the (name, value) pairs."""

    index: int
    record_id: str
    uri: str
    kind: str
    content_type: str
    charset: str | None
    http_headers: tuple[tuple[str, str], ...]
    body: bytes
    date: str | None = None

    def header(self, name: str) -> str | None:
        """The first HTTP header called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.http_headers if k.lower() == wanted), None)


def content_kind(content_type: str) -> str | None:
    """``"html"`` or ``"image"`` for a bare media type, else None."""
    if content_type in HTML_TYPES:
        return "html"
    if content_type.startswith("image/"):
        return "image"
    return None


class _CountingReader:
    """Counts the bytes warcio reads and keeps the last few, for the end-of-file check."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.count = 0
        self.tail = b""
        self.eof = False

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.eof = self.eof or (size != 0 and not data)
        self.count += len(data)
        self.tail = data[-_TAIL:] if len(data) >= _TAIL else (self.tail + data)[-_TAIL:]
        return data

    def tell(self) -> int:
        return self.count


def iter_warc(
    source: Source | IO[bytes],
    *,
    on_error: OnError = "raise",
    on_skip: Literal["drop", "yield"] = "drop",
    kinds: Collection[str] = KINDS,
    max_body_bytes: int | None = None,
    name: str | None = None,
) -> Iterator[WarcResponse | Skipped | Malformed]:
    """Yield a :class:`WarcResponse` per HTTP 200 response whose content kind is in ``kinds``.

    ``source`` is a path or an open binary stream (gzip is detected by warcio). Damaged input is
    a :class:`Malformed` (``unit="record"``) in yield mode; after a record warcio cannot parse
    the stream ends, since the next record boundary is unknown.
    """
    mode = check_on_error(on_error)
    if on_skip not in ("drop", "yield"):
        raise ValueError(f"on_skip must be 'drop' or 'yield', got {on_skip!r}")
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"kinds must be among {KINDS}, got {sorted(unknown)}")
    label = source_name(source, name)
    return _iter(source, label, mode, on_skip == "yield", frozenset(kinds), max_body_bytes)


def _iter(
    source: Source | IO[bytes],
    label: str,
    mode: OnError,
    yield_skips: bool,
    kinds: frozenset[str],
    max_body: int | None,
) -> Iterator[Any]:
    from warcio.archiveiterator import ArchiveIterator  # imported here: keeps corpora light

    owned = isinstance(source, str | os.PathLike)
    fh: IO[bytes] = open(source, "rb") if owned else source  # noqa: SIM115 - closed below
    tally: Counter[str] = Counter()
    try:
        reader = _CountingReader(fh)
        archive = ArchiveIterator(reader)
        records = iter(archive)
        index = end = start = 0  # end of the last record read; start of the next one
        while True:
            record_id = None
            try:
                record = next(records)
                record_id = record.rec_headers.get_header("WARC-Record-ID")
                outcome = _read(record, label, index, record_id, kinds, max_body)
                end = archive.get_record_offset() + archive.get_record_length()
                start = archive.offset  # after the blank lines that close a plain WARC record
            except StopIteration:
                break
            except Exception as exc:  # warcio raises many exception types on damaged input
                reason = f"unreadable record at byte {start}: {type(exc).__name__}: {exc}"
                if reader.eof:  # most often a record cut short by the end of the file
                    reason += f" (the file ends {reader.count - start} bytes after it starts)"
                tally["malformed"] += 1
                yield reject(Malformed(label, index, record_id, reason, unit="record"), mode)
                return
            index += 1
            if isinstance(outcome, WarcResponse):
                tally[outcome.kind] += 1
                yield outcome
            elif isinstance(outcome, Skipped):
                tally["skipped"] += 1
                if yield_skips:
                    yield outcome
            else:
                tally["malformed"] += 1
                yield reject(outcome, mode)
        leftover = reader.count - end
        if leftover and (leftover > len(reader.tail) or reader.tail[-leftover:].strip()):
            rest = reader.count - start
            reason = f"truncated record at byte {start}: the last {rest} bytes are not a record"
            tally["malformed"] += 1
            yield reject(Malformed(label, index, None, reason, unit="record"), mode)
    finally:
        if owned:
            fh.close()
        logger.info("%s: %s", label, dict(sorted(tally.items())))


def _read(
    record: Any,
    label: str,
    index: int,
    record_id: str | None,
    kinds: frozenset[str],
    max_body: int | None,
) -> WarcResponse | Skipped | Malformed:
    """Read ``record`` to its end; return the response, the reason to skip it, or the damage."""
    if record.format != "warc":  # warcio reads unknown text as an ARC header line
        raise ValueError(f"not a WARC record (its first line parses as {record.format})")
    uri = record.rec_headers.get_header("WARC-Target-URI")
    http = record.http_headers
    skip = None
    body = b""
    if record.rec_type != "response":
        skip = f"{record.rec_type} record"
    elif http is None or not http.protocol.upper().startswith("HTTP"):
        skip = "response without HTTP headers"
    elif http.get_statuscode() != "200":
        skip = f"http status {http.get_statuscode()}"
    else:
        content_type = mime_type(http.get_header("Content-Type"))
        kind = content_kind(content_type)
        if kind is None or kind not in kinds:
            skip = f"content type {content_type or 'missing'}"
        else:
            stream = record.content_stream()
            body = stream.read() if max_body is None else stream.read(max_body + 1)
            if max_body is not None and len(body) > max_body:
                skip = f"body larger than {max_body} bytes"
    while record.raw_stream.read(_BLOCK):
        pass
    missing = record.raw_stream.limit
    if missing > 0:
        have = record.length - missing
        reason = f"truncated record: {have} of {record.length} bytes present"
        return Malformed(label, index, record_id, reason, unit="record")
    if skip is not None:
        return Skipped(label, index, record_id, skip, uri)
    return WarcResponse(
        index=index,
        record_id=record_id or "",
        uri=uri or "",
        kind=kind,
        content_type=content_type,
        charset=charset_from_content_type(http.get_header("Content-Type")),
        http_headers=tuple((str(k), str(v)) for k, v in http.headers),
        body=body,
        date=record.rec_headers.get_header("WARC-Date"),
    )
