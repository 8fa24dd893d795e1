"""What every reader shares: reject records, the strict/lenient switch, image keys, file opening.

A reader meets malformed input in one of two modes, chosen by the caller:

- ``on_error="raise"``: raise :class:`ReaderError` whose message names the file, the position
  (element index, line number, record number), the record id when known and the field.
- ``on_error="yield"``: yield a :class:`Malformed` in place of the record and go on where the
  format allows it. Beam jobs route these to their dead-letter output and count them.

Readers that also pass over well-formed records on purpose (a WARC ``request`` record, an HTTP
404) report those as :class:`Skipped` when asked to.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Literal
from urllib.parse import unquote, urlsplit

OnError = Literal["raise", "yield"]
# What reading a damaged or truncated gzip file raises (besides EOFError for a cut member).
GZIP_ERRORS: tuple[type[Exception], ...] = (EOFError, gzip.BadGzipFile, zlib.error)
ON_ERROR_CHOICES = ("raise", "yield")
GZIP_MAGIC = b"\x1f\x8b"

Source = str | os.PathLike


@dataclass(frozen=True, slots=True)
class Malformed:
    """One input that could not be read as a record.

    ``source`` is the file, ``index`` the position of the input in it (0-based element or record
    index, 1-based line number: ``unit`` says which), ``record_id`` the input's id when it could be
    read, ``reason`` what was wrong (naming the field), ``sub_index`` the position of a rejected
    item inside an element (a region of an image) or None when the whole element is rejected.
    """

    source: str
    index: int
    record_id: str | int | None
    reason: str
    unit: str = "element"
    sub_index: int | None = None
    field: str | None = None

    def describe(self) -> str:
        """The full message: file, position, id and reason."""
        where = f"{self.source}: {self.unit} {self.index}"
        if self.record_id is not None:
            where += f" (id {self.record_id})"
        return f"{where}: {self.reason}"

    @property
    def input_id(self) -> str:
        """A stable id for the rejected input: the record id, else file name and position."""
        base = (
            str(self.record_id)
            if self.record_id is not None
            else (f"{os.path.basename(self.source)}:{self.unit}{self.index}")
        )
        return base if self.sub_index is None else f"{base}/{self.sub_index}"

    def to_reject(self, step: str) -> dict[str, str]:
        """The ``rejects.jsonl`` row (``input_id``, ``step``, ``reason``) for this input."""
        return {"input_id": self.input_id, "step": step, "reason": self.describe()}


@dataclass(frozen=True, slots=True)
class Skipped:
    """A well-formed input passed over on purpose (e.g. a WARC request record), with the reason."""

    source: str
    index: int
    record_id: str | None
    reason: str
    uri: str | None = None


class ReaderError(ValueError):
    """Malformed input in strict mode; ``malformed`` holds the structured details when known."""

    def __init__(self, message: str, malformed: Malformed | None = None) -> None:
        super().__init__(message)
        self.malformed = malformed

    @classmethod
    def from_malformed(cls, bad: Malformed) -> ReaderError:
        return cls(bad.describe(), bad)


def check_on_error(on_error: str) -> OnError:
    """Validate the ``on_error`` argument of a reader."""
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    return on_error  # type: ignore[return-value]


def reject(bad: Malformed, on_error: OnError) -> Malformed:
    """Raise ``bad`` as a :class:`ReaderError` in strict mode, else return it for yielding."""
    if on_error == "raise":
        raise ReaderError.from_malformed(bad)
    return bad


def image_key(path_or_url: str | os.PathLike) -> str:
    """The project's image key: the file stem of a path or URL.

    ``"images/1001.jpg"`` -> ``"1001"``; ``"https://host/VG_100K/2.jpg?x=1"`` -> ``"2"`` (query
    and fragment are ignored, percent-escapes decoded). Raises ValueError when there is no file
    name (an empty string, a URL or path ending in ``/``).
    """
    text = os.fspath(path_or_url)
    path = unquote(urlsplit(text).path) if "://" in text else text
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    stem = PurePosixPath(name).stem if name else ""
    if not stem:
        raise ValueError(f"no file name to take an image key from in {text!r}")
    return stem


def source_name(source: Source | IO, name: str | None = None) -> str:
    """The name used for ``source`` in messages: ``name``, the path, or the stream's name."""
    if name is not None:
        return name
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return str(getattr(source, "name", "<stream>"))


def is_gzip(path: Source) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_source(path: Source) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing gzip (detected by its magic bytes)."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # noqa: SIM115


def open_text(path: Source, encoding: str = "utf-8-sig") -> io.TextIOWrapper:
    """Open ``path`` (plain or gzip) as text; a UTF-8 byte order mark is dropped."""
    return io.TextIOWrapper(open_source(path), encoding=encoding)
