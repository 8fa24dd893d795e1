"""Read step: WARC, HTML and TSV files -> pages, image bodies and rows; skips counted."""

from __future__ import annotations

import io

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.common import read_counters
from pipeline.lait_read import BODIES, PAGES, ROWS, ReadLaitInputs, input_kind

H = "http://h.invalid/"


def response(writer: WARCWriter, url: str, body: bytes, ctype: str, status: str = "200 OK"):
    headers = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
    return writer.create_warc_record(
        url, "response", payload=io.BytesIO(body), http_headers=headers
    )


def _summary(page: dict) -> tuple:
    url = page["page_url"]
    short = url.replace(H, "/") if url.startswith(H) else url.rsplit("/", 1)[-1]
    return short, page.get("http_charset"), page.get("html"), page.get("error", "")[:20]


def test_input_kind():
    assert [input_kind(p) for p in ("a.warc.gz", "b.WARC", "c.html", "d.tsv", "e.jpg")] == [
        "warc", "warc", "html", "tsv", "unknown"]  # fmt: skip


def test_read_inputs(tmp_path):
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    writer.write_record(
        response(writer, H + "a.html", b"<p>a</p>", "text/html; charset=ISO-8859-1")
    )
    writer.write_record(response(writer, H + "x.jpg", b"JPEG", "image/jpeg"))
    writer.write_record(response(writer, H + "gone.html", b"gone", "text/html", "404 Not Found"))
    writer.write_record(response(writer, H + "s.css", b"p{}", "text/css"))
    writer.write_record(writer.create_revisit_record(H + "a.html", "sha1:A", H + "a.html", "2024"))
    writer.write_record(response(writer, H + "b.html", b"<p>b</p>" * 100, "text/html"))
    data = buf.getvalue()
    (tmp_path / "c.warc.gz").write_bytes(data[:-150])  # the last record is cut
    (tmp_path / "p.html").write_bytes(b"<p>file</p>")
    (tmp_path / "c.tsv").write_text("A kite\timg/k.jpg\nbad line\n")
    (tmp_path / "notes.bin").write_bytes(b"?")

    (tmp_path / "site" / "html").mkdir(parents=True)
    (tmp_path / "site" / "html" / "saved page.html").write_bytes(b"<p>saved</p>")

    p = BeamTestPipeline(runner="FnApiRunner")
    # a folder input stands for every file below it; a --url-map folder gives saved pages URLs
    read = p | ReadLaitInputs([str(tmp_path)], [f"{H}={tmp_path / 'site'}"])
    assert_that(
        read[PAGES] | beam.Map(_summary),
        equal_to(
            [
                ("/a.html", "iso-8859-1", b"<p>a</p>", ""),
                ("p.html", None, b"<p>file</p>", ""),
                ("/html/saved%20page.html", None, b"<p>saved</p>", ""),
                ("c.warc.gz:record5", None, None, f"{tmp_path}"[:20]),
            ]
        ),
        label="pages",
    )
    assert_that(read[BODIES], equal_to([(H + "x.jpg", {"data": b"JPEG", "content_type": "image/jpeg"})]),
                label="bodies")  # fmt: skip
    assert_that(
        read[ROWS] | beam.Map(lambda r: (r["input_id"], r.get("image_url"), "error" in r)),
        equal_to(
            [
                ("c.tsv:line1", (tmp_path / "img" / "k.jpg").as_uri(), False),
                ("c.tsv:line2", None, True),
            ]
        ),  # fmt: skip
        label="rows",
    )
    result = p.run()
    result.wait_until_finish()
    counts = read_counters(result, "lait")
    assert counts["skipped.read"] == 4
    assert {k for k in counts if k.startswith("skipped_")} == {
        "skipped_http_status_404.read",
        "skipped_content_type_text_css.read",
        "skipped_revisit_record.read",
        "skipped_not_an_input_file.read",  # notes.bin
    }
