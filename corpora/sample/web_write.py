"""Write the sample web: WARC files, saved HTML pages, image files and the LAIT ground truth.

WARC files are written with warcio: each starts with a ``warcinfo`` record; every page is a
``request`` + ``response`` pair, followed by the request/response pairs of the images it shows
that the crawl stored (each image URL once, in the file of the first page that shows it). Record
ids and dates derive from the seed, and gzip members carry no timestamp, so the bytes are the
same on every run.
"""

from __future__ import annotations

import gzip
import io
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from corpora.sample.web_assets import HOST, Asset
from corpora.sample.web_pages import (
    MAX_SHARED,
    MAX_WORDS,
    MIN_SIDE,
    MIN_WORDS,
    REASONS,
    RULES,
    TEXT_SOURCES,
    Candidate,
    Page,
)

PAGES_PER_WARC = 20
CRAWL_START = datetime(2024, 5, 1, 12, 0, 0)
USER_AGENT = "msp-sample-crawler/1.0"


class _Warc:
    """One WARC file being written, with deterministic record ids and dates."""

    def __init__(self, fh, name: str, seed: int, clock: list[int]) -> None:
        self.writer = WARCWriter(fh, gzip=True)
        self.name, self.seed, self.clock, self.count = name, seed, clock, 0

    def _ids(self) -> tuple[str, str]:
        self.count += 1
        self.clock[0] += 1
        rid = uuid.uuid5(uuid.NAMESPACE_URL, f"msp-sample:{self.seed}:{self.name}:{self.count}")
        date = (CRAWL_START + timedelta(seconds=self.clock[0])).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"<urn:uuid:{rid}>", date

    def warcinfo(self, fields: dict[str, str]) -> None:
        rid, date = self._ids()
        payload = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode()
        headers = {
            "WARC-Record-ID": rid,
            "WARC-Date": date,
            "WARC-Filename": self.name,
            "Content-Type": "application/warc-fields",
        }
        record = self.writer.create_warc_record(
            "",
            "warcinfo",
            payload=io.BytesIO(payload),
            length=len(payload),
            warc_headers_dict=headers,
        )
        self.writer.write_record(record)

    def exchange(self, url: str, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        """A request record then its response record (``WARC-Concurrent-To`` links them)."""
        req_id, req_date = self._ids()
        resp_id, resp_date = self._ids()
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        req_http = StatusAndHeaders(
            f"GET {target} HTTP/1.1",
            [("Host", parts.netloc), ("User-Agent", USER_AGENT), ("Accept", "*/*")],
            is_http_request=True,
        )
        request = self.writer.create_warc_record(
            url,
            "request",
            payload=io.BytesIO(b""),
            length=0,
            http_headers=req_http,
            warc_headers_dict={
                "WARC-Record-ID": req_id,
                "WARC-Date": req_date,
                "WARC-Concurrent-To": resp_id,
            },
        )
        http_date = (CRAWL_START + timedelta(seconds=self.clock[0])).strftime(
            "%a, %d %b %Y %H:%M:%S GMT"
        )
        resp_http = StatusAndHeaders(
            status,
            headers
            + [("Content-Length", str(len(body))), ("Date", http_date), ("Server", "sample")],
            protocol="HTTP/1.1",
        )
        response = self.writer.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(body),
            length=len(body),
            http_headers=resp_http,
            warc_headers_dict={"WARC-Record-ID": resp_id, "WARC-Date": resp_date},
        )
        self.writer.write_record(request)
        self.writer.write_record(response)


def _page_bytes(page: Page) -> tuple[list[tuple[str, str]], bytes]:
    body = page.render().encode(page.charset)
    ctype = f"text/html; charset={page.charset}" if page.header_charset else "text/html"
    headers = [("Content-Type", ctype)]
    if page.gzip:
        body = gzip.compress(body, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    return headers, body


def write_web(out: Path, pages: list[Page], assets: dict[str, Asset], seed: int) -> dict[str, Any]:
    """Write ``web/`` under ``out``; returns where each page and stored image went."""
    web = out / "web"
    (web / "html").mkdir(parents=True, exist_ok=True)
    warc_pages = [p for p in pages if p.store == "warc"]
    page_file: dict[str, str] = {}
    image_file: dict[str, str] = {}
    clock = [0]
    for start in range(0, len(warc_pages), PAGES_PER_WARC):
        name = f"crawl-{start // PAGES_PER_WARC:05d}.warc.gz"
        with open(web / name, "wb") as fh:
            warc = _Warc(fh, name, seed, clock)
            warc.warcinfo(
                {
                    "software": "msp-vlp corpora.sample",
                    "format": "WARC File Format 1.0",
                    "isPartOf": "msp-sample-crawl",
                    "robots": "ignore",
                    "description": "synthetic crawl of the sample corpus",
                }
            )
            for page in warc_pages[start : start + PAGES_PER_WARC]:
                headers, body = _page_bytes(page)
                warc.exchange(page.url, "200 OK", headers, body)
                page_file[page.url] = f"web/{name}"
                for c in page.candidates:
                    a = c.asset
                    if a.store == "warc" and a.url not in image_file:
                        warc.exchange(
                            a.url, a.status, [("Content-Type", a.content_type)], a.body or b""
                        )
                        image_file[a.url] = f"web/{name}"
    for page in pages:
        if page.store == "html":
            (web / "html" / f"{page.slug}.html").write_bytes(page.render().encode(page.charset))
            page_file[page.url] = f"web/html/{page.slug}.html"
    for a in assets.values():
        if a.store == "file" and a.body is not None:
            path = web / a.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(a.body)
        elif a.store == "warc" and a.url not in image_file:
            raise ValueError(f"stored image {a.url} is on no crawled page")
    return {"page_file": page_file, "image_file": image_file}


def candidate_record(c: Candidate, where: dict[str, Any]) -> dict[str, Any]:
    """One line of ``ground_truth/lait.jsonl``."""
    text, source = c.text()
    a = c.asset
    return {
        "candidate_id": c.cid,
        "page_url": c.page.url,
        "image_url": c.image_url,
        "image_src": c.src,
        "image_key": a.key,
        "text": text,
        "text_source": source,
        "expected": "rejected" if c.reasons else "kept",
        "reason": c.reason,
        "also": c.reasons[1:],
        "duplicate_group": c.group,
        "note": c.note,
        "lang": c.page.lang,
        "page_source": c.page.store,
        "page_file": where["page_file"][c.page.url],
        "image_source": a.store,
        "image_file": where["image_file"].get(a.url)
        or (f"web/{a.path}" if a.store == "file" else None),
        "image_sha256": a.sha256,
        "image_width": a.size[0] if a.size else None,
        "image_height": a.size[1] if a.size else None,
    }


def page_record(p: Page, where: dict[str, Any]) -> dict[str, Any]:
    """One line of ``ground_truth/pages.jsonl``."""
    return {
        "page_url": p.url,
        "kind": p.kind,
        "lang": p.lang,
        "page_source": p.store,
        "page_file": where["page_file"][p.url],
        "charset": p.charset,
        "charset_in_http_header": p.store == "warc" and p.header_charset,
        "charset_in_meta": p.meta_charset,
        "content_encoding": "gzip" if p.gzip else None,
        "candidates": [c.cid for c in p.candidates],
    }


def write_ground_truth(
    out: Path, pages: list[Page], groups: dict, where: dict[str, Any]
) -> dict[str, int]:
    """``ground_truth/lait.jsonl``, ``pages.jsonl`` and ``filters.json``; returns counts."""
    gt = out / "ground_truth"
    gt.mkdir(parents=True, exist_ok=True)
    cands = [c for p in pages for c in p.candidates]
    lines = [json.dumps(candidate_record(c, where), ensure_ascii=False) for c in cands]
    (gt / "lait.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = [json.dumps(page_record(p, where), ensure_ascii=False) for p in pages]
    (gt / "pages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    filters = {
        reason: {
            "rule": RULES[reason],
            "must_reject": [c.cid for c in cands if c.reason == reason],
            "also_matches": [c.cid for c in cands if reason in c.reasons[1:]],
        }
        for reason in REASONS
    }
    summary = {
        "order": list(REASONS),
        "text_sources": list(TEXT_SOURCES),
        "thresholds": {
            "min_side_exclusive": MIN_SIDE,
            "min_words": MIN_WORDS,
            "max_words": MAX_WORDS,
            "max_shared_images": MAX_SHARED,
        },
        "url_map": {f"{HOST}/img/": "web/img/", f"{HOST}/html/": "web/html/"},
        "filters": filters,
        "kept": [c.cid for c in cands if not c.reasons],
        "duplicate_groups": groups,
        "pages_without_images": [p.url for p in pages if not p.candidates],
    }
    (gt / "filters.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    counts = {"candidates": len(cands), "kept": len(summary["kept"])}
    counts.update({f"rejected_{r}": len(filters[r]["must_reject"]) for r in REASONS})
    return counts
