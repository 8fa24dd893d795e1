"""The sample corpus's web crawl and LAIT ground truth, checked with warcio, Pillow and langid."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
from PIL import Image
from warcio.archiveiterator import ArchiveIterator

from corpora.sample import MIN_SCENES, generate

HOST = "http://sample.msp.invalid"
REQUIRED_REASONS = {
    "tiny_image", "non_english", "spam_text", "adult_text", "shared_description",
    "duplicate_image", "broken_image", "not_dominant", "no_text", "boilerplate_text",
}  # fmt: skip


class _Page(HTMLParser):
    """Image sources, canonical link and visible text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.canonical: str | None = None
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a["src"])
        elif tag == "link" and a.get("rel") == "canonical":
            self.canonical = a["href"]
        elif tag in ("title", "footer"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("title", "footer"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample_web") / "corpus"
    generate(out, seed=3, num_scenes=MIN_SCENES)
    return out


@pytest.fixture(scope="module")
def crawl(corpus) -> dict[str, dict]:
    """Every WARC response: URL -> {status, headers, body (decoded content), file}."""
    out: dict[str, dict] = {}
    requests = set()
    for path in sorted((corpus / "web").glob("*.warc.gz")):
        with open(path, "rb") as fh:
            records = list(_read(fh, path.name, out, requests))
        assert records[0] == "warcinfo"
    assert requests == set(out)  # every response has its request
    return out


def _read(fh, name, out, requests):
    for rec in ArchiveIterator(fh):
        url = rec.rec_headers.get_header("WARC-Target-URI")
        if rec.rec_type == "response":
            assert url not in out, f"{url} stored twice"
            out[url] = {"status": rec.http_headers.get_statuscode(), "file": f"web/{name}",
                        "type": rec.http_headers.get_header("Content-Type"),
                        "encoding": rec.http_headers.get_header("Content-Encoding"),
                        "body": rec.content_stream().read()}  # fmt: skip
        elif rec.rec_type == "request":
            requests.add(url)
        yield rec.rec_type


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _page_html(corpus: Path, crawl: dict, page: dict) -> str:
    if page["page_source"] == "warc":
        rec = crawl[page["page_url"]]
        return rec["body"].decode(page["charset"])
    return (corpus / page["page_file"]).read_text(encoding=page["charset"])


def _page_of(corpus: Path, cand: dict) -> dict:
    pages = _jsonl(corpus / "ground_truth" / "pages.jsonl")
    return next(p for p in pages if p["page_url"] == cand["page_url"])


def _image_bytes(corpus: Path, crawl: dict, cand: dict) -> bytes | None:
    if cand["image_source"] == "warc":
        rec = crawl[cand["image_url"]]
        return rec["body"] if rec["status"] == "200" else None
    path = corpus / "web" / cand["image_url"][len(HOST) + 1 :]  # the documented URL -> folder map
    return path.read_bytes() if path.is_file() else None


def test_every_page_and_image_is_where_the_ground_truth_says(corpus, crawl):
    pages = _jsonl(corpus / "ground_truth" / "pages.jsonl")
    cands = {c["candidate_id"]: c for c in _jsonl(corpus / "ground_truth" / "lait.jsonl")}
    assert 40 <= len(pages) <= 80
    assert sum(p["page_source"] == "html" for p in pages) >= 3
    for page in pages:
        if page["page_source"] == "warc":
            assert crawl[page["page_url"]]["file"] == page["page_file"]
        else:
            assert (
                page["page_url"].startswith(f"{HOST}/html/")
                and (corpus / page["page_file"]).is_file()
            )
        parser = _Page()
        parser.feed(_page_html(corpus, crawl, page))
        assert parser.canonical == page["page_url"]
        resolved = [urljoin(page["page_url"], s) for s in parser.srcs]
        assert resolved == [cands[c]["image_url"] for c in page["candidates"]]
    for cand in cands.values():
        body = _image_bytes(corpus, crawl, cand)
        if cand["image_source"] == "missing":
            assert body is None
            continue
        if cand["image_source"] == "warc":
            assert crawl[cand["image_url"]]["file"] == cand["image_file"]
        else:
            assert (
                cand["image_url"].startswith(f"{HOST}/img/")
                and (corpus / cand["image_file"]).is_file()
            )
        if body is not None and cand["image_sha256"]:
            assert hashlib.sha256(body).hexdigest() == cand["image_sha256"]
    assert not [p for p in pages if p["page_source"] == "html" and "/media/" in json.dumps(p)]


def test_charsets_and_content_encoding(corpus, crawl):
    pages = _jsonl(corpus / "ground_truth" / "pages.jsonl")
    cp1252 = [p for p in pages if p["charset"] == "windows-1252"]
    assert (
        len(cp1252) == 1
        and cp1252[0]["charset_in_http_header"]
        and not cp1252[0]["charset_in_meta"]
    )
    rec = crawl[cp1252[0]["page_url"]]
    assert "windows-1252" in rec["type"]
    with pytest.raises(UnicodeDecodeError):
        rec["body"].decode("utf-8")
    assert "café" in rec["body"].decode("windows-1252")
    gz = [p for p in pages if p["content_encoding"] == "gzip"]
    assert len(gz) == 1 and crawl[gz[0]["page_url"]]["encoding"] == "gzip"
    assert crawl[gz[0]["page_url"]]["body"].startswith(b"<!DOCTYPE html>")  # decoded by warcio
    raw = (corpus / gz[0]["page_file"]).read_bytes()
    assert gzip.decompress(raw)  # the WARC file itself is a gzip stream
    assert any(not p["charset_in_meta"] for p in pages if p["charset"] == "utf-8")
    assert any(not p["charset_in_http_header"] for p in pages if p["page_source"] == "warc")


def test_ground_truth_covers_every_filter_and_follows_its_rules(corpus, crawl):
    cands = _jsonl(corpus / "ground_truth" / "lait.jsonl")
    filters = json.loads((corpus / "ground_truth" / "filters.json").read_text())
    reasons = Counter(c["reason"] for c in cands)
    assert set(reasons) >= REQUIRED_REASONS, REQUIRED_REASONS - set(reasons)
    for reason, spec in filters["filters"].items():
        assert spec["must_reject"] == [c["candidate_id"] for c in cands if c["reason"] == reason]
        assert spec["also_matches"] == [c["candidate_id"] for c in cands if reason in c["also"]]
    assert filters["kept"] == [c["candidate_id"] for c in cands if c["expected"] == "kept"]
    assert all((c["expected"] == "kept") == (c["reason"] is None) for c in cands)
    entity = [c for c in cands if c["expected"] == "kept" and "&" in c["text"]]
    assert entity and all("&amp;" in _page_html(corpus, crawl, _page_of(corpus, c)) for c in entity)
    kept_pages = {c["page_url"] for c in cands if c["expected"] == "kept"}
    pages = _jsonl(corpus / "ground_truth" / "pages.jsonl")
    assert len(kept_pages) > len(pages) / 2  # most pages are good English pages
    for c in cands:
        body = _image_bytes(corpus, crawl, c)
        decoded = None
        if body:
            try:
                with Image.open(io.BytesIO(body)) as im:
                    im.load()
                    decoded = im.size
            except OSError:
                decoded = None
        assert (decoded is None) == ("broken_image" in [c["reason"], *c["also"]]), c
        if c["expected"] == "kept":
            assert decoded and min(decoded) > 300 and c["lang"] == "en"
            assert 3 <= len(c["text"].split()) <= 50
        if c["reason"] == "tiny_image":
            assert decoded and min(decoded) <= 300
    shared = [c for c in cands if c["reason"] == "shared_description"]
    assert (
        len({c["text"].lower() for c in shared}) == 1
        and len({c["image_sha256"] for c in shared}) > 5
    )
    groups = defaultdict(list)
    for c in cands:
        if c["duplicate_group"]:
            groups[c["duplicate_group"]].append(c)
    assert len(groups) >= 2 and groups.keys() == filters["duplicate_groups"].keys()
    for gid, members in groups.items():
        assert len({c["image_sha256"] for c in members}) == 1 and len(members) >= 2
        kept = [c for c in members if c["expected"] == "kept"]
        assert (
            len(kept) == 1 and kept[0]["candidate_id"] == filters["duplicate_groups"][gid]["kept"]
        )
        assert len(kept[0]["text"].split()) > max(
            len(c["text"].split()) for c in members if c is not kept[0]
        )
    assert any(
        len({c["image_url"] for c in m}) > 1 for m in groups.values()
    )  # same bytes, other URLs
    assert filters["pages_without_images"]


def test_kept_pairs_show_training_images_only(corpus):
    manifest = json.loads((corpus / "manifest.json").read_text())
    train = {str(i) for i in manifest["splits"]["train"]}
    kept = [c for c in _jsonl(corpus / "ground_truth" / "lait.jsonl") if c["expected"] == "kept"]
    assert len(kept) >= 30
    assert {c["image_key"] for c in kept} <= train
    assert len({c["image_key"] for c in kept}) == len(kept)  # each image kept once
    captions = {}
    for split in ("train",):
        data = json.loads((corpus / "coco" / f"captions_{split}.json").read_text())
        for ann in data["annotations"]:
            captions.setdefault(str(ann["image_id"] - 500000), []).append(ann["caption"])
    scene_kept = [c for c in kept if int(c["image_key"]) < 90000]
    assert sum(c["text"] in captions[c["image_key"]] for c in scene_kept) >= len(scene_kept) - 2


def test_page_language_is_identifiable(corpus, crawl):
    langid = pytest.importorskip("langid")
    ident = langid.langid.LanguageIdentifier.from_modelstring(langid.langid.model, norm_probs=True)
    ident.set_languages(["en", "de", "fr", "es", "it"])
    for page in _jsonl(corpus / "ground_truth" / "pages.jsonl"):
        parser = _Page()
        parser.feed(_page_html(corpus, crawl, page))
        text = " ".join(" ".join(parser.text).split())
        lang, prob = ident.classify(text)
        assert lang == page["lang"] and prob > 0.9, (page["page_url"], lang, prob, text[:80])
