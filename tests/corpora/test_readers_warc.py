"""WARC reader on archives written with warcio's WARCWriter, whole and truncated."""

from __future__ import annotations

import gzip
import io
import random

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from corpora.readers import Malformed, ReaderError, Skipped, WarcResponse, iter_warc

PAGE = (
    "<html><head><title>Caf\u00e9</title></head><body><img src='/a.jpg' alt='a cat'></body></html>"
)
PAGE_BYTES = PAGE.encode("iso-8859-1")
GZ_PAGE = b"<html><body>compressed on the wire</body></html>"
IMAGE = b"\xff\xd8\xff\xe0" + random.Random(0).randbytes(200_000)  # incompressible


def _response(writer, uri, body, content_type, status="200 OK", extra=()):
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
    return writer.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http)


def write_warc(path, gz):
    """Write a small crawl; return the byte offset where each record starts."""
    offsets = []
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=gz)
        request = StatusAndHeaders(
            "GET /page HTTP/1.1", [("Host", "example.com")], is_http_request=True
        )
        records = [
            writer.create_warcinfo_record(path.name, {"software": "test"}),
            writer.create_warc_record(
                "http://example.com/page", "request", payload=io.BytesIO(b""), http_headers=request
            ),
            _response(
                writer, "http://example.com/page", PAGE_BYTES, "text/html; charset=ISO-8859-1"
            ),
            writer.create_revisit_record(
                "http://example.com/page",
                "sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "http://example.com/page",
                "2024-01-01T00:00:00Z",
            ),
            _response(
                writer, "http://example.com/gone", b"<html>404</html>", "text/html", "404 Not Found"
            ),
            _response(writer, "http://example.com/doc.pdf", b"%PDF-1.4", "application/pdf"),
            _response(
                writer,
                "http://example.com/gz",
                gzip.compress(GZ_PAGE),
                "application/xhtml+xml",
                extra=[("Content-Encoding", "gzip")],
            ),
            _response(writer, "http://example.com/a.jpg", IMAGE, "image/jpeg"),
        ]
        for record in records:
            offsets.append(fh.tell())
            writer.write_record(record)
        offsets.append(fh.tell())
    return offsets


@pytest.fixture(params=[True, False], ids=["warc.gz", "warc"])
def warc(tmp_path, request):
    path = tmp_path / ("crawl.warc.gz" if request.param else "crawl.warc")
    return path, write_warc(path, request.param)


def test_responses_and_skips(warc):
    path, _ = warc
    out = list(iter_warc(path, on_skip="yield"))
    responses = [o for o in out if isinstance(o, WarcResponse)]
    skips = {o.index: o.reason for o in out if isinstance(o, Skipped)}
    assert skips == {
        0: "warcinfo record",
        1: "request record",
        3: "revisit record",
        4: "http status 404",
        5: "content type application/pdf",
    }
    assert [(r.index, r.kind, r.content_type, r.charset) for r in responses] == [
        (2, "html", "text/html", "iso-8859-1"),
        (6, "html", "application/xhtml+xml", None),
        (7, "image", "image/jpeg", None),
    ]
    page, zipped, image = responses
    assert page.body.decode(page.charset) == PAGE
    assert page.uri == "http://example.com/page" and page.record_id.startswith("<urn:uuid:")
    assert page.header("content-length") == str(len(PAGE_BYTES)) and page.date
    assert zipped.body == GZ_PAGE  # content encoding undone
    assert image.body == IMAGE
    assert not any(isinstance(o, Malformed) for o in out)


def test_filters(warc):
    path, _ = warc
    assert [r.kind for r in iter_warc(path, kinds=("image",))] == ["image"]
    small = list(iter_warc(path, max_body_bytes=1000, on_skip="yield"))
    assert [r.index for r in small if isinstance(r, WarcResponse)] == [2, 6]
    assert small[-1].reason == "body larger than 1000 bytes"
    with open(path, "rb") as stream:  # an open stream, as Beam's ReadableFile.open() gives
        assert [r.index for r in iter_warc(stream, name="crawl")] == [2, 6, 7]
    with pytest.raises(ValueError, match="kinds"):
        iter_warc(path, kinds=("pdf",))


def test_truncated_last_record_is_reported_not_a_crash(warc):
    path, offsets = warc
    data = path.read_bytes()
    path.write_bytes(data[: offsets[-2] + (offsets[-1] - offsets[-2]) // 2])  # half the image
    out = list(iter_warc(path, on_error="yield"))
    assert [o.index for o in out if isinstance(o, WarcResponse)] == [2, 6]
    bad = out[-1]
    assert isinstance(bad, Malformed) and bad.index == 7 and bad.unit == "record"
    assert "truncated" in bad.reason
    seen = []
    with pytest.raises(ReaderError, match=r"record 7.*truncated"):
        for rec in iter_warc(path):
            seen.append(rec.index)
    assert seen == [2, 6]


@pytest.mark.parametrize(
    ("gz", "reason"),
    [
        (True, "truncated record at byte {start}: the last 40 bytes are not a record"),
        (False, "unreadable record at byte {start}: "),
    ],
)
def test_record_cut_inside_its_headers(tmp_path, gz, reason):
    path = tmp_path / "crawl.warc"
    offsets = write_warc(path, gz=gz)
    path.write_bytes(path.read_bytes()[: offsets[-2] + 40])  # 40 bytes of the last record
    out = list(iter_warc(path, on_error="yield"))
    assert [o.index for o in out if isinstance(o, WarcResponse)] == [2, 6]
    assert isinstance(out[-1], Malformed) and out[-1].index == 7 and len(out) == 3
    assert reason.format(start=offsets[-2]) in out[-1].reason


def test_uncompressed_truncated_body_names_the_record(tmp_path):
    path = tmp_path / "crawl.warc"
    offsets = write_warc(path, gz=False)
    path.write_bytes(path.read_bytes()[: offsets[-1] - 1000])
    bad = list(iter_warc(path, on_error="yield"))[-1]
    assert isinstance(bad, Malformed) and bad.record_id.startswith("<urn:uuid:")
    assert "truncated record: " in bad.reason and "bytes present" in bad.reason


def test_garbage_is_an_error_for_the_record(tmp_path):
    path = tmp_path / "junk.warc"
    path.write_bytes(b"this is not a warc file\r\n" * 3)
    out = list(iter_warc(path, on_error="yield"))
    assert len(out) == 1 and isinstance(out[0], Malformed) and out[0].index == 0
    assert "unreadable record at byte 0" in out[0].reason
    with pytest.raises(ReaderError, match="junk.warc: record 0"):
        list(iter_warc(path))
