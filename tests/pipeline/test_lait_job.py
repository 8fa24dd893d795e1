"""The whole LAIT job on a small crawl written here with warcio, plus HTML and TSV inputs.

Every candidate's fate (kept, or rejected at which step) is known in advance; the test checks
the outputs against it exactly, then the rerun/skip/--force behaviour.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from corpora.shards import ShardIndex, iter_raw, shard_urls
from pipeline import lait

HOST = "http://sample.msp.invalid/"
ENGLISH = (
    "<p>Our walk through the park on Sunday morning was full of surprises. The dogs ran "
    "across the meadow while children played near the old oak trees by the pond.</p>"
)
GERMAN = (
    "<p>Unser Spaziergang durch den Park am Sonntagmorgen war voller Überraschungen. Die "
    "Hunde liefen über die Wiese, während die Kinder am Teich spielten.</p>"
)


def jpeg(width: int, height: int, seed: int, fmt: str = "JPEG") -> bytes:
    """A distinct smooth image (a gradient tinted by ``seed``)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // width), (y * 255 // height), np.full_like(x, seed * 37 % 256)], -1)
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, fmt)
    return buf.getvalue()


def page(body: str, title: str = "A page") -> bytes:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>".encode()


def figure(src: str, caption: str, alt: str = "", size: str = 'width="400" height="320"') -> str:
    return (
        f'<figure><img src="{src}" alt="{alt}" {size}><figcaption>{caption}</figcaption></figure>'
    )


def write_warc(path: Path, records: list[tuple[str, str, bytes, str]], cut: int = 0) -> None:
    """records: (url, kind, payload, content type); kind response|revisit|request."""
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    for url, kind, payload, ctype in records:
        if kind == "response":
            headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            rec = writer.create_warc_record(
                url, "response", payload=io.BytesIO(payload), http_headers=headers
            )
        elif kind == "request":
            headers = StatusAndHeaders("GET / HTTP/1.1", [("Host", "x")], is_http_request=True)
            rec = writer.create_warc_record(url, "request", http_headers=headers)
        else:
            rec = writer.create_revisit_record(url, "sha1:AAAA", url, "2024-01-01T00:00:00Z")
        writer.write_record(rec)
    data = buf.getvalue()
    path.write_bytes(data[: len(data) - cut] if cut else data)


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> dict:
    """A WARC, a truncated WARC, an image folder behind a URL map, HTML files and a TSV."""
    root = tmp_path_factory.mktemp("crawl")
    web, img = root / "web", root / "web" / "img"
    img.mkdir(parents=True)
    (img / "spam.jpg").write_bytes(jpeg(400, 320, 3))
    (img / "tiny.jpg").write_bytes(jpeg(200, 150, 4))
    (img / "border.jpg").write_bytes(jpeg(400, 300, 5))  # height not > 300
    (img / "broken.jpg").write_bytes(b"<html>404 Not Found</html>")  # an error page
    (img / "cut.jpg").write_bytes(jpeg(400, 320, 6)[:600])
    for i in range(6):
        (img / f"product{i}.jpg").write_bytes(jpeg(420, 340, 10 + i))
    (img / "cat.jpg").write_bytes(jpeg(500, 400, 7))
    (img / "cat-copy.jpg").write_bytes(jpeg(500, 400, 7))  # same bytes, another URL
    good = page(
        '<header><img src="/img/site-logo.png" width="120" height="40"></header>'
        '<nav><img src="/img/home.png"></nav><main><article>'
        + figure("/img/dog.jpg", "A brown dog runs across the green meadow.", "dog")
        + ENGLISH
        + '<img src="/track/p.gif" width="1" height="1"></article></main>'
    )
    german = page(
        "<main>" + figure("/img/hund.jpg", "Ein brauner Hund läuft über die Wiese.") + GERMAN
    )
    spam = page(
        '<main><img src="/img/spam.jpg" alt="Buy cheap viagra now at the best price">'
        + ENGLISH
        + "</main>"
    )
    sized = page(
        "<main>"
        + figure("/img/tiny.jpg", "A small red bicycle leaning on a wall.", size="")
        + figure("/img/border.jpg", "A quiet harbour with fishing boats at dawn.", size="")
        + figure("/img/broken.jpg", "An old stone bridge over the river.", size="")
        + figure("/img/cut.jpg", "Snow on the mountain peaks in early spring.", size="")
        + figure("/img/missing.jpg", "A lighthouse on the rocky coast.", size="")
        + ENGLISH
        + "</main>"
    )
    shop = page(
        "<main>"
        + "".join(
            figure(f"/img/product{i}.jpg", "Product photo from our online store catalogue.")
            for i in range(6)
        )
        + ENGLISH
        + "</main>"
    )
    cat_a = page("<main>" + figure("/img/cat.jpg", "A grey cat sleeps on a sunny windowsill.")
                 + ENGLISH + "</main>")  # fmt: skip
    cat_b = page('<main><img src="/img/cat-copy.jpg" alt="my cat sleeping on the sill">'
                 + ENGLISH + "</main>")  # fmt: skip
    no_images = page(ENGLISH)
    html_type = "text/html; charset=utf-8"
    warc = web / "crawl-000.warc.gz"
    write_warc(
        warc,
        [
            (HOST + "good.html", "request", b"", ""),
            (HOST + "good.html", "response", good, html_type),
            (HOST + "img/dog.jpg", "response", jpeg(400, 320, 1), "image/jpeg"),
            (HOST + "de.html", "response", german, html_type),
            (HOST + "img/hund.jpg", "response", jpeg(400, 320, 2), "image/jpeg"),
            (HOST + "spam.html", "response", spam, html_type),
            (HOST + "sized.html", "response", sized, html_type),
            (HOST + "shop.html", "response", shop, html_type),
            (HOST + "cat-a.html", "response", cat_a, html_type),
            (HOST + "cat-b.html", "response", cat_b, html_type),
            (HOST + "text-only.html", "response", no_images, html_type),
            (HOST + "good.html", "revisit", b"", ""),
            (HOST + "style.css", "response", b"body{}", "text/css"),
        ],
    )
    write_warc(
        web / "crawl-001.warc.gz",
        [(HOST + "late.html", "response", good, html_type)] * 2,
        cut=200,
    )
    html_dir = web / "html"
    html_dir.mkdir()
    (img / "boat.png").write_bytes(jpeg(480, 360, 8, "PNG"))
    (html_dir / "boats.html").write_bytes(
        page(
            "<article>"
            + figure("../img/boat.png", "Two sailing boats leave the harbour.")
            + ENGLISH
            + "</article>"
        )  # fmt: skip
    )
    saved = root / "saved"  # outside the --url-map folder: the page keeps its file:// URI
    saved.mkdir()
    (img / "lake.jpg").write_bytes(jpeg(500, 360, 11))
    (saved / "lake.html").write_bytes(
        page(
            "<article>"
            + figure("../web/img/lake.jpg", "A calm lake below the hills at dusk.")
            + ENGLISH
            + "</article>"
        )  # fmt: skip
    )
    (img / "kite.jpg").write_bytes(jpeg(640, 480, 9))
    tsv = web / "captions.tsv"
    tsv.write_text(
        "A red kite flying high above the beach.\timg/kite.jpg\nonly one field\n", "utf-8"
    )
    return {"root": root, "web": web, "warc": warc, "tsv": tsv}


def expected(crawl: dict) -> dict[str, str]:
    """input_id -> "kept" or the step that must reject it."""
    h = HOST
    lake = (crawl["root"] / "saved" / "lake.html").resolve().as_uri()
    img_uri = (crawl["web"] / "img").resolve().as_uri()
    out = {
        f"{h}good.html {h}img/dog.jpg": "kept",
        f"{h}good.html {h}img/site-logo.png": "pages",
        f"{h}good.html {h}img/home.png": "pages",
        f"{h}good.html {h}track/p.gif": "pages",
        f"{h}de.html {h}img/hund.jpg": "pages",
        f"{h}spam.html {h}img/spam.jpg": "text",
        f"{h}sized.html {h}img/tiny.jpg": "images",
        f"{h}sized.html {h}img/border.jpg": "images",
        f"{h}sized.html {h}img/broken.jpg": "images",
        f"{h}sized.html {h}img/cut.jpg": "images",
        f"{h}sized.html {h}img/missing.jpg": "images",
        f"{h}cat-a.html {h}img/cat.jpg": "kept",
        f"{h}cat-b.html {h}img/cat-copy.jpg": "aggregate",
        f"{h}text-only.html": "pages",
        # the cut file's first record is whole: good.html again under another URL; its dog
        # pair ties with good.html's and loses on the page URL (deterministic tie-break)
        f"{h}late.html {h}img/dog.jpg": "aggregate",
        f"{h}late.html {h}img/site-logo.png": "pages",
        f"{h}late.html {h}img/home.png": "pages",
        f"{h}late.html {h}track/p.gif": "pages",
        f"{h}html/boats.html {h}img/boat.png": "kept",  # a saved page under the URL map
        f"{lake} {img_uri}/lake.jpg": "kept",
        "captions.tsv:line1": "kept",
        "captions.tsv:line2": "pages",
    }
    out.update({f"{h}shop.html {h}img/product{i}.jpg": "aggregate" for i in range(6)})
    return out


def _read_outputs(out: Path) -> tuple[list[dict], list[dict], dict]:
    rows = [r for f in sorted(out.glob("pairs-*.parquet")) for r in pq.read_table(f).to_pylist()]
    rejects = [json.loads(x) for f in out.glob("rejects-*.jsonl") for x in f.open()]
    return rows, rejects, json.loads((out / "manifest.json").read_text())


def test_lait_job_end_to_end(crawl, tmp_path):
    out = tmp_path / "out"
    web = crawl["web"]
    argv = ["--input", str(web / "crawl-*.warc.gz"), "--input", str(web / "html" / "*.html"),
            "--input", str(crawl["root"] / "saved" / "*.html"),
            "--input", str(crawl["tsv"]), "--out", str(out), "--url-map", f"{HOST}={web}/",
            "--shard-size", "2",
            # gradients stand in for photos here: the image models are tested elsewhere
            "--no-image-filters", "--scorer", "heuristic"]  # fmt: skip
    assert lait.run(argv) == 0
    rows, rejects, manifest = _read_outputs(out)
    want = expected(crawl)

    # the cut file's second record is a lost page
    cut = [r for r in rejects if r["step"] == "pages" and "truncated" in r["reason"]]
    assert len(cut) == 1, rejects
    want[cut[0]["input_id"]] = "pages"
    seen = {r["input_id"]: r["step"] for r in rejects}
    seen.update({r["input_id"]: "kept" for r in rows})
    assert seen == want

    # accounting: every input once, kept + rejected = inputs
    assert len(rejects) == len({r["input_id"] for r in rejects})
    assert manifest["inputs"] == len(want) == manifest["kept"] + manifest["rejected"]
    assert manifest["kept"] == len(rows) == 5
    assert manifest["rejected"] == len(rejects)
    assert manifest["steps"]["read"]["skipped"] == 3  # request, revisit, CSS
    reasons = {r["input_id"]: r["reason"] for r in rejects}
    assert reasons[f"{HOST}de.html {HOST}img/hund.jpg"].startswith("language: de")
    assert reasons[f"{HOST}spam.html {HOST}img/spam.jpg"].startswith("spam")
    assert reasons[f"{HOST}sized.html {HOST}img/tiny.jpg"] == "too small: 200x150"
    assert reasons[f"{HOST}sized.html {HOST}img/border.jpg"] == "too small: 400x300"
    assert reasons[f"{HOST}sized.html {HOST}img/broken.jpg"].startswith("corrupt")
    assert reasons[f"{HOST}sized.html {HOST}img/cut.jpg"].startswith("truncated")
    assert reasons[f"{HOST}sized.html {HOST}img/missing.jpg"] == "fetch: not found"
    assert reasons[f"{HOST}good.html {HOST}img/site-logo.png"] == "not dominant: decorative"
    assert reasons[f"{HOST}good.html {HOST}img/home.png"] == "not dominant: page chrome"
    assert reasons[f"{HOST}good.html {HOST}track/p.gif"] == "not dominant: tracking pixel"
    assert reasons[f"{HOST}shop.html {HOST}img/product0.jpg"].startswith("shared description")

    by_url = {r["image_url"]: r for r in rows}
    cat = by_url[f"{HOST}img/cat.jpg"]
    assert cat["caption"] == "A grey cat sleeps on a sunny windowsill"
    assert cat["text_source"] == "figcaption" and cat["n_pairs"] == 2
    assert (cat["width"], cat["height"]) == (500, 400)
    kite = next(r for r in rows if r["source"] == "tsv")
    assert kite["caption"].startswith("A red kite") and kite["text_source"] == "caption"

    # image shards: every kept image once, keyed by content hash, bytes as found
    index = ShardIndex(out, "images")
    assert sorted(index.keys()) == sorted(r["image_id"] for r in rows)
    assert [Path(u).name for u in shard_urls(out, "images")] == [
        "images-000000.tar", "images-000001.tar", "images-000002.tar"]  # fmt: skip
    sample = index.get(cat["image_id"])
    assert sample["jpg"] == (crawl["web"] / "img" / "cat.jpg").read_bytes()
    assert json.loads(sample["json"])["caption"] == cat["caption"]
    assert len(list(iter_raw(shard_urls(out, "images")))) == 5

    # rerun: complete, skipped; --force redoes it
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert lait.run(argv) == 0
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert lait.run([*argv, "--force"]) == 0
    assert (out / "manifest.json").stat().st_mtime_ns != stamp
    assert json.loads((out / "manifest.json").read_text())["kept"] == 5


def test_lait_job_refuses_labels_without_image_filters(tmp_path):
    with pytest.raises(SystemExit):  # argparse's error exit, before any work
        lait.run(["--input", str(tmp_path), "--out", str(tmp_path / "o"), "--no-image-filters"])
    assert not (tmp_path / "o").exists()
