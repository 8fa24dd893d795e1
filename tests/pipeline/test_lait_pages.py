"""Pages step: charset decoding, the dominant-image rule, image texts, the LaitPages transform."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from selectolax.lexbor import LexborHTMLParser

from pipeline.lait_config import LaitConfig
from pipeline.lait_dom import best_srcset, declared_size, find_candidates
from pipeline.lait_pages import LaitPages, LanguageId, decode_html

URL = "http://site.invalid/blog/post.html"
TEXT = (
    "<p>We spent the afternoon at the harbour watching the fishing boats come home. "
    "The light was soft and the water was calm after the storm.</p>"
)


def candidates(body: str, head: str = "") -> dict[str, tuple[bool, str]]:
    tree = LexborHTMLParser(f"<html><head>{head}</head><body>{body}</body></html>")
    return {c.image_url: (c.dominant, c.reason) for c in find_candidates(tree, URL, 100)}


def test_decode_http_charset_first_then_meta_then_detection():
    latin = "<meta charset='utf-8'><p>café</p>".encode("latin-1")
    assert decode_html(latin, "iso-8859-1") == (
        "<meta charset='utf-8'><p>café</p>",
        "http:iso8859-1",
    )
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>café</p>'
    text, how = decode_html(meta.encode("cp1252"))
    assert how == "meta:cp1252" and "café" in text
    assert decode_html("<p>naïve café</p>".encode())[1] == "detected:utf-8"
    assert decode_html(b"\xef\xbb\xbf<p>x</p>", "latin-1")[1] == "bom:utf-8-sig"
    assert decode_html(b"<p>x</p>", "no-such-charset")[1] == "detected:utf-8"


ENGLISH = ("<p>Our caf\u00e9\u2019s cr\u00e8me br\u00fbl\u00e9e and espresso are the best in town "
           "\u2014 come and try them. We roast the beans ourselves every morning.</p>")  # fmt: skip
RUSSIAN = ("<p>Мы провели день в гавани, наблюдая, как рыбацкие лодки возвращаются домой. Свет "
           "был мягким, а вода спокойной после шторма.</p>")  # fmt: skip
POLISH = ("<p>Spędziliśmy popołudnie w porcie, obserwując powracające łodzie rybackie. Światło "
          "było miękkie, a woda spokojna po burzy.</p>")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "encoding", "how"),
    [
        (ENGLISH, "utf-16-le", "nul-pattern:utf-16-le"),  # UTF-16 without a BOM
        (ENGLISH, "utf-16-be", "nul-pattern:utf-16-be"),
        (RUSSIAN, "utf-16-le", "nul-pattern:utf-16-le"),  # also valid UTF-8 byte for byte
        (ENGLISH, "cp1252", "detected:cp1252"),  # undeclared legacy encodings
        (RUSSIAN, "cp1251", "detected:cp1251"),
        (RUSSIAN, "koi8-r", "detected:koi8-r"),
    ],
)
def test_decode_undeclared_encodings(text, encoding, how):
    html = f"<html><body>{text}<img src='a.jpg'></body></html>"
    assert decode_html(html.encode(encoding)) == (html, how)


def test_decode_gzip_wrong_declarations_and_misread_latin2():
    import gzip

    html = f"<html><body>{ENGLISH}</body></html>"
    assert decode_html(gzip.compress(html.encode()), "utf-8") == (html, "gzip+http:utf-8")
    # the NUL pattern outranks a wrong HTTP charset (UTF-16 is never what a header says here)
    assert decode_html(html.encode("utf-16-le"), "utf-8") == (html, "nul-pattern:utf-16-le")
    # undeclared Central European text is read as cp1252: mangled, but still not English
    polish, how = decode_html(f"<html><body>{POLISH}</body></html>".encode("cp1250"))
    assert how == "detected:cp1252" and "popo³udnie" in polish
    lang, prob = LanguageId().classify(polish)
    assert lang == "pl" and prob > 0.9


@pytest.mark.parametrize(
    ("img", "reason"),
    [
        ('<img src="/a.jpg" hidden>', "hidden"),
        ('<div style="display: none"><img src="/a.jpg"></div>', "hidden"),
        ('<img src="/a.jpg" width="1" height="1">', "tracking pixel"),
        ('<img src="https://stats.doubleclick.net/x.gif">', "tracking pixel"),
        ('<img src="/img/spacer.gif">', "tracking pixel"),
        ('<img src="/static/site-logo.png">', "decorative"),
        ('<img src="/a.jpg" class="share-icon">', "decorative"),
        ('<img src="/a.jpg" class="social">', "decorative"),
        ('<img src="/line.png" role="presentation">', "decorative"),
        ('<nav><img src="/a.jpg"></nav>', "page chrome"),
        ('<header><img src="/a.jpg"></header>', "page chrome"),
        ('<div class="sidebar-widget"><img src="/a.jpg"></div>', "page chrome"),
        ('<div role="navigation"><img src="/a.jpg"></div>', "page chrome"),
        ('<img src="/a.jpg" width="80" height="60">', "small declared size"),
        ('<a href="https://ad.doubleclick.net/c?x=1"><img src="/a.jpg"></a>', "decorative"),
        (
            '<a href="/go/affiliate/123"><img src="/a.jpg" width="600" height="400"></a>',
            "decorative",
        ),
        ('<img src="/a.jpg" style="width:64px;height:64px">', "small declared size"),
    ],
)
def test_not_dominant_reasons(img, reason):
    assert list(candidates(img + TEXT).values()) == [(False, reason)]


def test_dominant_images_and_urls():
    body = (
        '<header><img src="/banner.jpg"></header><main><article><header>'
        '<img src="hero.jpg" width="800" height="400"></header>'
        '<img src="data:image/gif;base64,R0lGOD" data-src="/lazy.jpg">'
        '<img srcset="small.jpg 320w, large.jpg 1280w, medium.jpg 640w" src="fallback.jpg">'
        '<img src="data:image/png;base64,AAAA">'
        f"{TEXT}</article></main>"
        '<aside><img src="/side.jpg"></aside><div><img src="/outside.jpg"></div>'
        '<figure><img src="/fig.jpg#frag"></figure>'
        '<figure><picture><source srcset="/pic-800.webp 800w, /pic-1600.webp 1600w" '
        'type="image/webp"><img src="/pic.jpg"></picture></figure>'
        '<figure><a href="/photos/big.jpg"><img src="/linked.jpg"></a></figure>'
    )
    got = candidates(body)
    assert got == {
        "http://site.invalid/banner.jpg": (False, "page chrome"),
        "http://site.invalid/blog/hero.jpg": (True, ""),  # an article's own header is content
        "http://site.invalid/lazy.jpg": (True, ""),
        "http://site.invalid/blog/large.jpg": (True, ""),
        "http://site.invalid/side.jpg": (False, "page chrome"),
        "http://site.invalid/outside.jpg": (False, "outside content"),
        "http://site.invalid/fig.jpg": (True, ""),
        "http://site.invalid/pic-1600.webp": (True, ""),  # the widest <picture> source
        "http://site.invalid/linked.jpg": (True, ""),  # a link to a larger image is fine
    }
    # <base href> changes how relative URLs resolve; without a content root all may count
    based = candidates('<img src="pic.jpg">' + TEXT, head='<base href="http://cdn.invalid/m/">')
    assert based == {"http://cdn.invalid/m/pic.jpg": (True, "")}


def test_helpers():
    assert best_srcset("a.jpg 1x, b.jpg 2x") == "b.jpg"
    assert best_srcset("a.jpg") == "a.jpg"
    assert declared_size({"width": "400", "height": "50%"}) == (400, None)
    assert declared_size({"style": "height: 120px; width:300px"}) == (300, 120)


def test_image_texts():
    body = (
        '<main><figure><a href="/x" title="Link title"><img src="/boat.jpg" alt=" Two  boats "></a>'
        "<figcaption>Two <b>sailing</b> boats.</figcaption></figure>"
        "<p>They left at dawn. Nobody saw them return.</p>"
        '<p>First one. Right before <a href="/y"><img src="/inline.jpg" title="Inline"></a> it. '
        'Last one.</p><p><img src="/lead.jpg"> Leads the paragraph. Then more.</p>'
        '<div class="photo"><img src="/bare.jpg"></div><p>A neighbouring paragraph.</p></main>'
    )
    tree = LexborHTMLParser(f"<html><body>{body}</body></html>")
    texts = {c.image_url.rsplit("/", 1)[1]: c.texts for c in find_candidates(tree, URL, 100)}
    assert texts["boat.jpg"] == {  # the next paragraph is not the image's own text
        "alt": "Two boats",
        "title": "Link title",
        "figcaption": "Two sailing boats.",
    }
    assert texts["inline.jpg"] == {"title": "Inline", "surrounding": "Right before"}
    assert texts["lead.jpg"] == {"surrounding": "Leads the paragraph."}
    assert texts["bare.jpg"] == {}


def _page(url: str, body: str, lang_text: str = TEXT) -> dict:
    html = f"<html><body><main>{body}{lang_text}</main></body></html>".encode()
    return {"input_id": url, "page_url": url, "html": html, "http_charset": "utf-8",
            "source": "warc"}  # fmt: skip


def test_lait_pages_transform():
    german = "<p>Wir haben den Nachmittag am Hafen verbracht und die Fischerboote beobachtet.</p>"
    pages = [
        _page("http://a.invalid/en", '<img src="/a.jpg" alt="x"><img src="/logo.png">'),
        _page("http://a.invalid/de", '<img src="/b.jpg">', german),
        _page("http://a.invalid/short", '<img src="/c.jpg">', "<p>Hello there</p>"),
        _page("http://a.invalid/none", ""),
        {"input_id": "urn:1", "page_url": "urn:1", "error": "truncated record"},
    ]
    rows = [
        {"input_id": "c.tsv:line1", "caption": " A  kite ", "image_url": "file:///k.jpg"},
        {"input_id": "c.tsv:line2", "error": "malformed TSV line"},
    ]
    p = BeamTestPipeline(runner="FnApiRunner")
    cands, rejects = {
        "pages": p | "Pages" >> beam.Create(pages),
        "rows": p | "Rows" >> beam.Create(rows),
    } | LaitPages(LaitConfig(inputs=[], out=""))
    assert_that(
        cands | beam.Map(lambda c: (c["input_id"], c["texts"], c["lang"])),
        equal_to(
            [
                ("http://a.invalid/en http://a.invalid/a.jpg", {"alt": "x"}, "en"),
                ("c.tsv:line1", {"caption": "A kite"}, None),
            ]
        ),
        label="candidates",
    )
    assert_that(
        rejects | beam.Map(lambda r: (r["input_id"], r["step"], r["reason"].split(" (")[0])),
        equal_to(
            [
                ("http://a.invalid/en http://a.invalid/logo.png", "pages", "not dominant: decorative"),
                ("http://a.invalid/de http://a.invalid/b.jpg", "pages", "language: de"),
                ("http://a.invalid/short http://a.invalid/c.jpg", "pages", "language: too little page text"),
                ("http://a.invalid/none", "pages", "no images"),
                ("urn:1", "pages", "truncated record"),
                ("c.tsv:line2", "pages", "malformed TSV line"),
            ]
        ),
        label="rejects",
    )  # fmt: skip
    result = p.run()
    result.wait_until_finish()
    from pipeline.common import read_counters

    counts = read_counters(result, "lait")
    assert counts["inputs"] == 2 + 6  # every candidate and every candidate-less page once
