"""Pages step: decode each page, keep English ones, list its image candidates.

This is where the job's inputs are born and counted (see ``pipeline.lait`` for the unit):

- a page with at least one image URL gives one input per distinct image URL, a *candidate*
  ``(page, image)``. Candidates of a page in another language, and candidates that are not
  dominant images (rule in ``pipeline.lait_dom``), are rejected here; the others go on;
- a page with no image URL, or one that could not be read (a truncated or damaged WARC record,
  unparsable HTML), is one input rejected here;
- a TSV line is one input: a candidate whose text is the given caption (a malformed line is
  rejected here).

Decoding: a byte-order mark, else the HTTP ``charset``, else ``<meta charset>`` /
``http-equiv`` (``corpora.readers.sniff_meta_charset``), else strict UTF-8, else
``charset_normalizer``'s guess, else cp1252. Unknown labels are ignored.
Language: ``langid`` (normalised probabilities) on the page's visible text, never on alt texts:
detectors are unreliable on a few words. A page with fewer than ``min_page_words`` visible words
cannot be decided and is rejected.
"""

from __future__ import annotations

import codecs
import logging
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
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))  # fmt: skip


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_html(data: bytes, http_charset: str | None = None) -> tuple[str, str]:
    """Page bytes -> (text, ``"<how>:<encoding>"``), in the order of the module docstring."""
    for bom, enc in _BOMS:  # a byte-order mark cannot be wrong
        if data.startswith(bom):
            return data.decode(enc, errors="replace"), f"bom:{enc}"
    if enc := _codec(http_charset):
        return data.decode(enc, errors="replace"), f"http:{enc}"
    if enc := _codec(sniff_meta_charset(data)):
        return data.decode(enc, errors="replace"), f"meta:{enc}"
    try:
        return data.decode("utf-8"), "detected:utf-8"
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:65536]).best()
        if best is not None and (enc := _codec(best.encoding)):
            return data.decode(enc, errors="replace"), f"detected:{enc}"
    except ImportError:  # optional: a transitive dependency of Beam's HTTP clients
        pass
    return data.decode("cp1252", errors="replace"), "fallback:cp1252"


class LanguageId:
    """``langid`` with normalised probabilities (the model loads in about a second)."""

    def __init__(self) -> None:
        from langid.langid import LanguageIdentifier, model

        self._identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)

    def classify(self, text: str) -> tuple[str, float]:
        """(language code, probability) of ``text`` (its first ``MAX_LANG_CHARS`` characters)."""
        lang, prob = self._identifier.classify(text[:MAX_LANG_CHARS])
        return lang, float(prob)


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
