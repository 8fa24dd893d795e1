"""Read the LAIT job's inputs (WARC, HTML and caption TSV files) with ``corpora.readers``.

``ReadLaitInputs`` matches the input globs, reads each file in one worker (a ``Reshuffle``
then spreads the records) and returns a dict of three PCollections:

- ``pages``: one dict per web page, ``{"input_id", "page_url", "html" (bytes),
  "http_charset", "source"}``; a WARC record the reader finds damaged (truncated, unparsable)
  is a page dict with an ``"error"`` reason instead of ``"html"``: a page that is lost, so an
  input rejected in the pages step. A saved HTML file inside a ``--url-map`` folder gets the
  URL that folder mirrors (``page_url_of``), else its ``file://`` URI;
- ``bodies``: ``(image_url, {"data": bytes, "content_type"})`` for HTTP 200 image responses
  inside WARC files, joined with candidates by URL in the images step;
- ``rows``: one dict per TSV line, ``{"input_id", "caption", "image_url"}`` or, for a
  malformed line, ``{"input_id", "error"}``.

WARC records the reader skips on purpose (``warcinfo``, ``request``, ``revisit``, ``metadata``
records, HTTP statuses other than 200, content types other than HTML and images) are not inputs
of the job: they are counted as ``skipped.read`` and ``skipped_<reason>.read``, and so are
files of other kinds (an input folder also holds the images its pages show). An input that is a
folder stands for every file below it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urldefrag, urljoin

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes

from pipeline.common import Counters
from pipeline.lait_config import JOB
from pipeline.lait_fetch import parse_url_map

logger = logging.getLogger(__name__)

PAGES, BODIES, ROWS = "pages", "bodies", "rows"
_SLUG_RE = re.compile(r"[^a-z0-9]+")


def file_uri(path: str) -> str:
    """A URI for a matched path: local paths become ``file://`` URIs, others stay as they are."""
    if "://" in path:
        return path
    return PurePosixPath(path).as_uri() if path.startswith("/") else path


def normalize_url(url: str) -> str:
    """The join key of an image URL: fragment dropped, surrounding blanks stripped."""
    return urldefrag(url.strip())[0]


def input_kind(path: str) -> str:
    """``warc``, ``html``, ``tsv`` or ``unknown`` from the file name."""
    name = path.lower()
    if name.endswith((".warc", ".warc.gz")):
        return "warc"
    if name.endswith((".html", ".htm", ".xhtml")):
        return "html"
    if name.endswith((".tsv", ".tsv.gz")):
        return "tsv"
    return "unknown"


def expand_input(pattern: str) -> str:
    """A folder (local, or any path ending in ``/``) stands for every file below it."""
    if pattern.endswith("/") or ("://" not in pattern and os.path.isdir(pattern)):
        return pattern.rstrip("/") + "/**"
    return pattern


def page_url_of(path: str, url_map: list[tuple[str, str]]) -> str:
    """The URL of a saved page: ``PREFIX + relative path`` when ``path`` lies in a ``--url-map``
    folder (the folder mirrors that URL space, so relative image links resolve to URLs the
    fetcher serves), else the file's own URI."""
    if "://" not in path:
        resolved = Path(path).resolve()
        for prefix, folder in url_map:
            try:
                rel = resolved.relative_to(Path(folder).resolve())
            except ValueError:
                continue
            return prefix + quote(rel.as_posix())
    return file_uri(path)


class ReadFile(beam.DoFn):
    """One matched file -> page, image-body and TSV-row records (tagged outputs)."""

    def __init__(self, url_map: list[str]) -> None:
        self.url_map = parse_url_map(url_map)
        self.counters = Counters(JOB)

    def process(self, readable: fileio.ReadableFile) -> Iterator[Any]:
        path = readable.metadata.path
        kind = input_kind(path)
        self.counters.inc(f"files_{kind}.read")
        if kind == "warc":
            # the reader undoes the per-record gzip members itself: hand it the raw bytes
            with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as stream:
                yield from self._warc(stream, path)
        elif kind == "html":
            data = readable.read(mime_type="application/octet-stream")
            self.counters.inc("pages.read")
            url = page_url_of(path, self.url_map)
            page = {"input_id": url, "page_url": url, "html": data, "http_charset": None,
                    "source": "html"}  # fmt: skip
            yield beam.pvalue.TaggedOutput(PAGES, page)
        elif kind == "tsv":
            yield from self._tsv(path)
        else:  # images and notes beside the pages in an input folder
            self.counters.inc("skipped.read")
            self.counters.inc("skipped_not_an_input_file.read")

    def _warc(self, stream: Any, path: str) -> Iterator[Any]:
        from corpora.readers import Malformed, Skipped, iter_warc

        for item in iter_warc(stream, on_error="yield", on_skip="yield", name=path):
            if isinstance(item, Skipped):
                why = _SLUG_RE.sub("_", item.reason.lower()).strip("_")[:40]
                self.counters.inc("skipped.read")
                self.counters.inc(f"skipped_{why}.read")
            elif isinstance(item, Malformed):  # a damaged record: a page we lost
                self.counters.inc("pages.read")
                yield beam.pvalue.TaggedOutput(
                    PAGES, _error_page(item.input_id, item.describe()[:300])
                )
            elif item.kind == "image":
                self.counters.inc("images.read")
                body = {"data": item.body, "content_type": item.content_type}
                yield beam.pvalue.TaggedOutput(BODIES, (normalize_url(item.uri), body))
            else:
                self.counters.inc("pages.read")
                page = {"input_id": item.uri, "page_url": item.uri, "html": item.body,
                        "http_charset": item.charset, "source": "warc"}  # fmt: skip
                yield beam.pvalue.TaggedOutput(PAGES, page)

    def _tsv(self, path: str) -> Iterator[Any]:
        from corpora.readers import Malformed, iter_caption_tsv

        base = file_uri(path)
        for item in iter_caption_tsv(path, on_error="yield"):
            self.counters.inc("rows.read")
            if isinstance(item, Malformed):
                row = {"input_id": item.input_id, "error": f"malformed TSV line: {item.reason}"}
            else:
                row = {
                    "input_id": f"{os.path.basename(path)}:line{item.line}",
                    "caption": item.caption,
                    "image_url": normalize_url(urljoin(base, item.url)),
                }
            yield beam.pvalue.TaggedOutput(ROWS, row)


def _error_page(input_id: str, reason: str) -> dict[str, Any]:
    return {"input_id": input_id, "page_url": input_id, "error": reason}


class ReadLaitInputs(beam.PTransform):
    """Input globs -> a dict of ``pages``, ``bodies`` and ``rows`` (see the module docstring)."""

    def __init__(self, patterns: list[str], url_map: list[str] | None = None) -> None:
        super().__init__()
        self.patterns = [expand_input(p) for p in patterns]
        self.url_map = list(url_map or [])

    def expand(self, pbegin):
        records = (
            pbegin
            | "Patterns" >> beam.Create(self.patterns)
            | "MatchAll" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            | "ReadMatches" >> fileio.ReadMatches()
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadRecords" >> beam.ParDo(ReadFile(self.url_map)).with_outputs(PAGES, BODIES, ROWS)
        )
        # a file is read by one worker: spread its pages and rows before the parsing work
        return {
            PAGES: records[PAGES] | "SpreadPages" >> beam.Reshuffle(),
            BODIES: records[BODIES],
            ROWS: records[ROWS] | "SpreadRows" >> beam.Reshuffle(),
        }
