"""Stream the elements of a top-level JSON array (multi-GB Visual Genome files) one at a time.

Standard library only: the text is read in chunks and each element is decoded with
``json.JSONDecoder.raw_decode`` at the current offset. Memory holds one chunk plus the element
being decoded. When an element does not decode, the decoder's error position tells a truncated
chunk (error at the end of the buffer, or an unterminated string) from invalid JSON (error well
inside the buffer): the first is retried with more text, the second is reported at once instead of
reading the rest of the file. The buffer grows geometrically, so a large element costs O(size).

After a syntax error the array cannot be resynchronised in general, so the stream ends there with
a :class:`JsonStreamError` naming the element index.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import IO, Any

from corpora.readers.common import GZIP_ERRORS, ReaderError, Source, open_text, source_name

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_CHARS = 1 << 20
DEFAULT_MAX_ELEMENT_CHARS = 256 << 20
# Errors this far (in characters) before the end of the buffer cannot be caused by a chunk
# boundary: no JSON token needs more look-ahead than this (strings are handled separately).
_LOOKAHEAD = 32
_WS = re.compile(r"[ \t\n\r]*")


class JsonStreamError(ReaderError):
    """The file is not a well-formed JSON array.

    ``index`` is the element where reading stopped (None when the file does not start an array
    at all), ``reason`` what was wrong, ``offset`` the character offset in the file.
    """

    def __init__(self, source: str, index: int | None, reason: str, offset: int) -> None:
        where = source if index is None else f"{source}: element {index}"
        super().__init__(f"{where}: {reason} (offset {offset})")
        self.source = source
        self.index = index
        self.reason = reason
        self.offset = offset


class _Buffer:
    """A sliding text window over a stream: ``text[pos:]`` is unread; ``base`` counts the
    characters dropped from the front, so ``base + pos`` is the offset in the file."""

    def __init__(self, fh: IO[str], chunk_chars: int) -> None:
        self.fh = fh
        self.chunk_chars = chunk_chars
        self.text = ""
        self.pos = 0
        self.base = 0
        self.eof = False

    def fill(self, at_least: int = 0) -> bool:
        """Read at least one more chunk (``at_least`` chars when larger); False at end of file."""
        if self.eof:
            return False
        chunk = self.fh.read(max(self.chunk_chars, at_least))
        self.base += self.pos
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        if not chunk:
            self.eof = True
        return bool(chunk)

    def peek(self) -> str:
        """Skip whitespace and return the next character, or "" at end of file."""
        while True:
            self.pos = _WS.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.fill():
                return ""

    def offset(self, pos: int | None = None) -> int:
        return self.base + (self.pos if pos is None else pos)


def iter_json_array(
    source: Source | IO[str],
    *,
    name: str | None = None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    max_element_chars: int = DEFAULT_MAX_ELEMENT_CHARS,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, value)`` for each element of the JSON array in ``source``.

    ``source`` is a path (plain or gzip, detected by content) or an open text stream; ``name`` is
    the file name used in messages. Raises :class:`JsonStreamError` naming the file and element
    index when the array is truncated, invalid or has an element over ``max_element_chars``.
    """
    label = source_name(source, name)
    if isinstance(source, str | bytes) or hasattr(source, "__fspath__"):
        with open_text(source) as fh:
            yield from _iter_array(fh, label, chunk_chars, max_element_chars)
    else:
        yield from _iter_array(source, label, chunk_chars, max_element_chars)


def _iter_array(
    fh: IO[str], label: str, chunk_chars: int, max_element_chars: int
) -> Iterator[tuple[int, Any]]:
    buf = _Buffer(fh, chunk_chars)
    decoder = json.JSONDecoder()
    try:
        first = buf.peek()
    except (UnicodeDecodeError, *GZIP_ERRORS) as exc:
        raise JsonStreamError(label, None, f"unreadable: {type(exc).__name__}: {exc}", 0) from None
    if first != "[":
        what = "empty file" if first == "" else f"starts with {first!r}"
        raise JsonStreamError(label, None, f"not a JSON array ({what})", buf.offset())
    buf.pos += 1
    index = 0
    try:
        if buf.peek() == "]":
            buf.pos += 1
        else:
            while True:
                value = _decode_element(buf, decoder, label, index, max_element_chars)
                yield index, value
                index += 1
                sep = buf.peek()
                if sep == "]":
                    buf.pos += 1
                    break
                if sep == "":
                    reason = f"truncated file: the array is not closed after element {index - 1}"
                    raise JsonStreamError(label, index, reason, buf.offset())
                if sep != ",":
                    reason = f"invalid JSON: expected ',' or ']' after element {index - 1}"
                    raise JsonStreamError(label, index, f"{reason}, found {sep!r}", buf.offset())
                buf.pos += 1
        trailing = buf.peek()
    except UnicodeDecodeError as exc:
        raise JsonStreamError(label, index, f"not UTF-8 text: {exc}", buf.offset()) from None
    except GZIP_ERRORS as exc:
        reason = f"truncated or damaged gzip file: {type(exc).__name__}: {exc}"
        raise JsonStreamError(label, index, reason, buf.offset()) from None
    if trailing:
        reason = f"data after the end of the array: {trailing!r}"
        raise JsonStreamError(label, index, reason, buf.offset())
    logger.debug("%s: %d elements", label, index)


def _decode_element(
    buf: _Buffer, decoder: json.JSONDecoder, label: str, index: int, max_chars: int
) -> Any:
    """Decode the element starting at ``buf.pos`` (after whitespace), reading more as needed."""
    start_char = buf.peek()
    if start_char == "":
        raise JsonStreamError(label, index, "truncated file: expected an element", buf.offset())
    if start_char == "]":
        raise JsonStreamError(label, index, "invalid JSON: trailing comma", buf.offset())
    while True:
        try:
            value, end = decoder.raw_decode(buf.text, buf.pos)
        except json.JSONDecodeError as exc:
            incomplete = exc.pos + _LOOKAHEAD >= len(buf.text) or exc.msg.startswith(
                "Unterminated string"
            )
            if buf.eof or not incomplete:
                kind = "truncated file" if incomplete else "invalid JSON"
                raise JsonStreamError(
                    label, index, f"{kind}: {exc.msg}", buf.offset(exc.pos)
                ) from None
            _grow(buf, label, index, max_chars)
            continue
        if end == len(buf.text) and not buf.eof:
            # A number (or the element) may go on in the next chunk: decode again with more text.
            _grow(buf, label, index, max_chars)
            continue
        buf.pos = end
        return value


def _grow(buf: _Buffer, label: str, index: int, max_chars: int) -> None:
    pending = len(buf.text) - buf.pos
    if pending > max_chars:
        reason = f"element larger than max_element_chars={max_chars}"
        raise JsonStreamError(label, index, reason, buf.offset())
    buf.fill(pending)
