"""Pages step: decode each page, keep English ones, list its image candidates.

This is where the job's inputs are born and counted (see ``pipeline.lait`` for the unit):

- a page with at least one image URL gives one input per distinct image URL, a *candidate*
  ``(page, image)``. Candidates of a page in another language, and candidates that are not
  dominant images (rule in ``pipeline.lait_dom``), are rejected here; the others go on;
- a page with no image URL, or one that could not be read (a truncated or damaged WARC record,
  unparsable HTML), is one input rejected here;
- a TSV line is one input: a candidate whose text is the given caption (a malformed line is
  rejected here).

Decoding (``decode_html``), first match wins:

1. a gzip body (``1f 8b``: stored compressed without a ``Content-Encoding`` the reader undid)
   is decompressed, at most ``MAX_HTML_BYTES``;
2. a byte-order mark;
3. UTF-16 without a BOM: markup is ASCII, so UTF-16 text has NUL bytes on one parity (even:
   big-endian, odd: little-endian) and HTML in any other encoding has none. This runs before
   the declared charsets because those may be wrong (a ``<meta charset=utf-16>`` cannot even be
   read from real UTF-16) and because UTF-16 of ASCII and Cyrillic text is also valid UTF-8;
4. the HTTP ``charset``, then ``<meta charset>`` / ``http-equiv``
   (``corpora.readers.sniff_meta_charset``); unknown labels are ignored;
5. strict UTF-8;
6. undeclared legacy encodings: ``charset_normalizer``'s guess, except that a guess in the
   Latin single-byte family (cp1250, latin-1, mac_roman...) becomes cp1252 when cp1252 decodes
   the bytes: it is the web's legacy default (WHATWG) and short English text with a few accented
   words is where the guessers confuse the family; a misread Central European page is still
   recognised as non-English;
7. cp1252 with replacement characters.

Language: ``langid`` (normalised probabilities) on the page's visible text, never on alt texts:
detectors are unreliable on a few words (alt texts get an English confidence in ``lait_text``).
A page with fewer than ``min_page_words`` visible words cannot be decided and is rejected.
"""

from __future__ import annotations

import codecs
import functools
import logging
import zlib
from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from corpora.readers import sniff_meta_charset
from pipeline.common import REJECTS, Counters, reject
from pipeline.lait_config import JOB, LaitConfig
from pipeline.lait_dom import find_candidates

logger = logging.getLogger(__name__)

STEP = "pages"
INVISIBLE_TAGS = ["script", "style", "noscript", "template", "svg", "head"]
MAX_LANG_CHARS = 20_000  # langid's decision settles long before this; bounds the cost
MAX_HTML_BYTES = 20_000_000  # a gzip page inflates to at most this (gzip bombs stop here)
LATIN_FAMILY = frozenset({"cp1250", "cp1252", "cp1254", "cp1257", "iso8859-1", "iso8859-2",
                          "iso8859-15", "iso8859-9", "mac-roman", "mac-latin2", "cp850",
                          "cp437"})  # fmt: skip
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))  # fmt: skip


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le`` / ``utf-16-be`` when the NUL bytes sit on one parity (rule 3), else None."""
    head = data[:8192]
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if even + odd < 8 or (even + odd) < len(head) // 20:
        return None
    if odd >= 0.95 * (even + odd):
        return "utf-16-le"
    if even >= 0.95 * (even + odd):
        return "utf-16-be"
    return None


def gunzip_page(data: bytes, limit: int = MAX_HTML_BYTES) -> bytes:
    """The page bytes, decompressed if they are a gzip stream (at most ``limit`` bytes)."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    try:
        return zlib.decompressobj(wbits=31).decompress(data, limit)
    except zlib.error:
        return data  # not really gzip: decode the bytes as they are


def _guess_legacy(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # optional: a transitive dependency of Beam's HTTP clients
        return None
    best = from_bytes(data[:65536]).best()
    enc = _codec(best.encoding) if best is not None else None
    if enc in LATIN_FAMILY:
        try:
            data.decode("cp1252")
            return "cp1252"
        except UnicodeDecodeError:
            pass
    return enc


def decode_html(data: bytes, http_charset: str | None = None) -> tuple[str, str]:
    """Page bytes -> (text, ``"<how>:<encoding>"``), in the order of the module docstring."""
    raw = gunzip_page(data)
    how = "gzip+" if raw is not data else ""
    for bom, enc in _BOMS:  # a byte-order mark cannot be wrong
        if raw.startswith(bom):
            return raw.decode(enc, errors="replace"), f"{how}bom:{enc}"
    if enc := utf16_without_bom(raw):
        return raw.decode(enc, errors="replace").replace("\x00", ""), f"{how}nul-pattern:{enc}"
    if enc := _codec(http_charset):
        return raw.decode(enc, errors="replace"), f"{how}http:{enc}"
    if enc := _codec(sniff_meta_charset(raw)):
        return raw.decode(enc, errors="replace"), f"{how}meta:{enc}"
    try:
        return raw.decode("utf-8"), f"{how}detected:utf-8"
    except UnicodeDecodeError:
        pass
    if enc := _guess_legacy(raw):
        return raw.decode(enc, errors="replace"), f"{how}detected:{enc}"
    return raw.decode("cp1252", errors="replace"), f"{how}fallback:cp1252"


@functools.cache
def _langid_model() -> Any:
    """langid's model, unpickled once per process (one to several seconds): the pages and the
    text steps' DoFns share it when they run in the same worker."""
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


class LanguageId:
    """``langid`` with normalised probabilities."""

    def __init__(self) -> None:
        self._identifier = _langid_model()

    def classify(self, text: str) -> tuple[str, float]:
        """(language code, probability) of ``text`` (its first ``MAX_LANG_CHARS`` characters)."""
        lang, prob = self._identifier.classify(text[:MAX_LANG_CHARS])
        return lang, float(prob)

    def confidence(self, text: str, lang: str, prior: float) -> float:
        """P(``lang`` | ``text``) when ``lang`` has prior probability ``prior`` and the other
        languages share the rest evenly: for a short text on a page already known to be in
        ``lang``, where an argmax over ~100 languages is unreliable ("Espresso in a red cup"
        comes out Italian; its English confidence with prior 0.5 is 0.8)."""
        probs = dict(self._identifier.rank(text[:MAX_LANG_CHARS]))  # uniform-prior posteriors
        p, others = probs.get(lang, 0.0), max(len(probs) - 1, 1)
        rest = max(1.0 - p, 0.0) / others
        den = prior * p + (1.0 - prior) * rest
        return float(prior * p / den) if den > 0 else 0.0


def visible_text(tree: Any) -> str:
    """The page's visible text (scripts, styles and the head removed). Mutates ``tree``."""
    tree.strip_tags(INVISIBLE_TAGS)
    root = tree.body if tree.body is not None else tree.root
    return " ".join((root.text(separator=" ") if root is not None else "").split())


class PagesFn(beam.DoFn):
    """A page record -> candidates (main output) and rejects; counts the job's inputs."""

    def __init__(self, config: LaitConfig) -> None:
        self.lang, self.min_prob = config.lang, config.min_lang_prob
        self.min_page_words, self.min_declared = config.min_page_words, config.min_declared
        self.counters = Counters(JOB)
        self._langid: LanguageId | None = None

    def setup(self) -> None:
        self._langid = LanguageId()

    def _reject(self, input_id: str, reason: str) -> beam.pvalue.TaggedOutput:
        self.counters.inc("inputs")
        return reject(input_id, STEP, reason)

    def process(self, page: dict[str, Any]) -> Iterator[Any]:
        from selectolax.lexbor import LexborHTMLParser

        self.counters.inc("in.pages")
        page_url = page["page_url"]
        if "error" in page:
            yield self._reject(page["input_id"], page["error"])
            return
        text, charset = decode_html(page["html"], page.get("http_charset"))
        try:
            tree = LexborHTMLParser(text)
        except Exception as exc:  # lexbor refuses very few inputs; never crash the bundle
            yield self._reject(page["input_id"], f"unparsable html: {exc}"[:200])
            return
        candidates = find_candidates(tree, page_url, self.min_declared)
        if not candidates:
            yield self._reject(page["input_id"], "no images")
            return
        words = visible_text(tree)
        n_words = len(words.split())
        assert self._langid is not None, "setup() not called"
        lang, prob = self._langid.classify(words) if n_words else ("", 0.0)
        language_reason = ""
        if n_words < self.min_page_words:
            language_reason = f"language: too little page text ({n_words} words)"
        elif lang != self.lang or prob < self.min_prob:
            language_reason = f"language: {lang} (p={prob:.2f})"
        self.counters.inc(f"language_{lang if lang == self.lang else 'other'}.pages")
        for cand in candidates:
            input_id = f"{page_url} {cand.image_url}"
            if language_reason:
                yield self._reject(input_id, language_reason)
            elif not cand.dominant:
                self.counters.inc(f"not_dominant_{cand.reason.replace(' ', '_')}.pages")
                yield self._reject(input_id, f"not dominant: {cand.reason}")
            else:
                self.counters.inc("inputs")
                self.counters.inc("out.pages")
                yield {
                    "input_id": input_id,
                    "page_url": page_url,
                    "image_url": cand.image_url,
                    "texts": cand.texts,
                    "lang": lang,
                    "lang_prob": round(prob, 4),
                    "charset": charset,
                    "dom": cand.dom,
                    "source": page.get("source", ""),
                }


class RowsFn(beam.DoFn):
    """A TSV row -> one candidate whose only text is its caption, or a reject."""

    def __init__(self) -> None:
        self.counters = Counters(JOB)

    def process(self, row: dict[str, Any]) -> Iterator[Any]:
        self.counters.inc("inputs")
        self.counters.inc("in.pages")
        if "error" in row:
            yield reject(row["input_id"], STEP, row["error"])
            return
        self.counters.inc("out.pages")
        yield {
            "input_id": row["input_id"],
            "page_url": row["input_id"],
            "image_url": row["image_url"],
            "texts": {"caption": " ".join(row["caption"].split())},
            "lang": None,
            "lang_prob": None,
            "charset": "utf-8",
            "dom": {},
            "source": "tsv",
        }


class LaitPages(beam.PTransform):
    """``{"pages": ..., "rows": ...}`` -> (candidates, rejects)."""

    def __init__(self, config: LaitConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, inputs: dict[str, Any]):
        pages = inputs["pages"] | "ParsePages" >> beam.ParDo(PagesFn(self.config)).with_outputs(
            REJECTS, main="candidates"
        )
        rows = inputs["rows"] | "TsvRows" >> beam.ParDo(RowsFn()).with_outputs(
            REJECTS, main="candidates"
        )
        candidates = (pages.candidates, rows.candidates) | "Candidates" >> beam.Flatten()
        rejects = (pages[REJECTS], rows[REJECTS]) | "PageRejects" >> beam.Flatten()
        return candidates, rejects
