"""Text step: choose and clean each candidate's description; reject candidates without a good one.

A candidate carries up to four texts from its page (``pipeline.lait_dom``): ``figcaption``,
``alt``, ``title``, ``surrounding`` (a TSV row carries one, ``caption``). Each is cleaned
(URLs removed, characters repeated three times or more squeezed to one, whitespace collapsed,
edge punctuation trimmed), then checked in this order; the first failed check is its reason:

1. ``empty``: nothing left after cleaning;
2. ``boilerplate``: a stock phrase (``click here``, ``image``, ``logo``, ``read more``...), a
   file name (``IMG_0042.jpg``, ``dsc01234``) or a stock phrase inside (``click to enlarge``);
3. ``adult`` / ``spam``: a word or phrase of the small lists below;
4. ``too short`` / ``too long``: word count outside ``[min_words, max_words]``;
5. ``oov``: more than ``max_oov`` of its alphabetic words are unknown to ``wordfreq``'s English
   list (321k words with web words such as "selfie");
6. ``not english``: its English confidence is below ``min_text_en``. The page's language was
   decided on the whole page; a few words cannot be classified reliably by an argmax (langid
   calls "Espresso in a red cup" Italian), so the text gets P(English | text) with the page's
   language as prior (``LanguageId.confidence``, prior ``text_en_prior``): a German alt text on
   an English page scores ~0, a short English one ~0.8-1.

The best-ranked text that passes becomes the caption, ranked ``figcaption``/``caption`` above
``alt`` above ``title`` above ``surrounding`` (an author's caption is written for the image; a
nearby sentence only may be). Adult and spam words taint the whole candidate: if *any* of its
texts has one, the candidate is rejected even if another text passes, since such words mark the
image itself as an ad or adult content. A candidate whose texts all fail is rejected with the
reason of its best-ranked text, e.g. ``boilerplate (alt)``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from pipeline.common import REJECTS, Counters, reject
from pipeline.lait_config import JOB, LaitConfig

STEP = "text"
SOURCE_RANK = {"figcaption": 0, "caption": 0, "alt": 1, "title": 2, "surrounding": 3}
BOILERPLATE = frozenset(
    {
        "image", "images", "img", "photo", "photos", "picture", "pictures", "pic", "pics",
        "logo", "icon", "banner", "thumbnail", "thumb", "untitled", "placeholder", "click here",
        "click here to enlarge", "read more", "more info", "learn more", "see more", "view more",
        "view image", "view larger", "enlarge", "zoom", "loading", "spacer", "blank", "null",
        "undefined", "none", "n a", "default image", "image not found", "no image available",
        "advertisement", "header", "footer", "home", "back", "next", "previous", "download",
        "share", "print", "main image", "featured image", "product image", "cover image",
        "hero image", "alt text", "alt", "title", "caption",
    }
)  # fmt: skip
BOILERPLATE_WORDS = frozenset(" ".join(BOILERPLATE).split())
BOILERPLATE_PHRASES = ("click here", "click to enlarge", "click for larger", "read more",
                       "image not found", "no image available", "placeholder image")  # fmt: skip
SPAM_WORDS = frozenset({
    "viagra", "cialis", "casino", "casinos", "poker", "jackpot", "bitcoin", "crypto", "forex",
    "loan", "loans", "payday", "replica", "rolex", "pharmacy", "pills", "weightloss", "clickbait",
    "giveaway",
})  # fmt: skip
SPAM_PHRASES = ("buy now", "order now", "free shipping", "best price", "cheap price",
                "lowest price", "discount code", "promo code", "limited offer", "act now",
                "make money", "earn money", "work from home", "click the link", "% off",
                "subscribe now", "free trial", "win a free", "hot deal")  # fmt: skip
ADULT_WORDS = frozenset({
    "porn", "porno", "xxx", "sex", "sexy", "nude", "nudes", "naked", "nsfw", "erotic", "escort",
    "escorts", "hentai", "milf", "camgirl", "stripper", "fetish",
})  # fmt: skip
_URL_RE = re.compile(r"(?:https?://|ftp://|www\.)\S+|\S+@\S+\.\w+", re.I)
_REPEAT_RE = re.compile(r"([^\d\s])\1{2,}")
_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[.,]\d+)?")
_ALPHA_RE = re.compile(r"[a-z]+")
_FILENAME_RE = re.compile(
    r"^(\S+\.(jpe?g|png|gif|webp|bmp|tiff?|svg)|(img|dsc|dscn|dscf|dcim|pxl|p|photo|image|"
    r"screenshot|screen shot)[\s_\-]*\d[\w\-]*)$",
    re.I,
)
_EDGE = " \t-|:;,.·•*#_~/\\\"'()[]{}<>"


def clean_text(text: str) -> str:
    """URLs removed, long character runs squeezed, whitespace collapsed, edges trimmed."""
    text = _URL_RE.sub(" ", text)
    text = _REPEAT_RE.sub(r"\1", text)
    return " ".join(text.split()).strip(_EDGE)


def words(text: str) -> list[str]:
    """Words (letters with inner apostrophes) and numbers of ``text``."""
    return _WORD_RE.findall(text)


@functools.lru_cache(maxsize=200_000)
def in_vocabulary(word: str) -> bool:
    """True when ``word`` (lower case) is in wordfreq's English list."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en") > 0.0


def oov_ratio(text: str) -> float:
    """Share of alphabetic words of ``text`` unknown to wordfreq's English list (0 if none)."""
    alpha = _ALPHA_RE.findall(text.lower())
    if not alpha:
        return 0.0
    return sum(not in_vocabulary(w) for w in alpha) / len(alpha)


@dataclass
class TextCheck:
    """The verdict on one cleaned text; ``reason`` is empty when it passes."""

    text: str
    reason: str
    word_count: int
    oov: float
    english: float | None = None  # English confidence, when it was computed


def check_text(
    raw: str,
    min_words: int,
    max_words: int,
    max_oov: float,
    english: Callable[[str], float] | None = None,
    min_en: float = 0.0,
) -> TextCheck:
    """Clean ``raw`` and apply the checks of the module docstring in order.

    ``english`` maps a text to its English confidence (check 6; skipped when None)."""
    text = clean_text(raw)
    tokens = words(text)
    lower = " ".join(w.lower() for w in tokens)
    low_set = set(lower.split())
    n, oov = len(tokens), 0.0
    if not text or not tokens:
        return TextCheck(text, "empty", n, oov)
    if (
        lower in BOILERPLATE
        or all(t[0].isdigit() for t in tokens)
        or _FILENAME_RE.match(text)
        or any(p in text.lower() for p in BOILERPLATE_PHRASES)
        or (n <= 3 and low_set <= BOILERPLATE_WORDS)
    ):
        return TextCheck(text, "boilerplate", n, oov)
    if low_set & ADULT_WORDS:
        return TextCheck(text, f"adult: {sorted(low_set & ADULT_WORDS)[0]!r}", n, oov)
    spam = sorted(low_set & SPAM_WORDS) or [p for p in SPAM_PHRASES if p in text.lower()]
    if spam:
        return TextCheck(text, f"spam: {spam[0]!r}", n, oov)
    if n < min_words:
        return TextCheck(text, f"too short: {n} words", n, oov)
    if n > max_words:
        return TextCheck(text, f"too long: {n} words", n, oov)
    oov = oov_ratio(text)
    if oov > max_oov:
        return TextCheck(text, f"oov: {oov:.2f} of words unknown", n, oov)
    en = english(text) if english is not None else None
    if en is not None and en < min_en:
        return TextCheck(text, f"not english: confidence {en:.2f}", n, oov, en)
    return TextCheck(text, "", n, oov, en)


def choose_text(
    texts: dict[str, str],
    min_words: int,
    max_words: int,
    max_oov: float,
    english: Callable[[str], float] | None = None,
    min_en: float = 0.0,
) -> tuple[str, TextCheck | None, dict[str, str]]:
    """(source, check) of the caption, or ("", None) with the reason in the third item.

    The third item maps every present source to its reason (empty when it passed).
    """
    order = sorted(texts, key=lambda s: (SOURCE_RANK.get(s, 9), s))
    checks = {s: check_text(texts[s], min_words, max_words, max_oov, english, min_en)
              for s in order}  # fmt: skip
    reasons = {s: c.reason for s, c in checks.items()}
    tainted = [s for s in order if reasons[s].startswith(("adult", "spam"))]
    if tainted:
        return "", None, {"": f"{reasons[tainted[0]]} ({tainted[0]})", **reasons}
    for source in order:
        if not reasons[source]:
            return source, checks[source], reasons
    if not order:
        return "", None, {"": "no text: no caption, alt, title or surrounding sentence"}
    best = order[0]
    return "", None, {"": f"{reasons[best]} ({best})", **reasons}


class TextFn(beam.DoFn):
    """A candidate -> the candidate with its caption fields, or a reject."""

    def __init__(self, config: LaitConfig) -> None:
        self.min_words, self.max_words = config.min_words, config.max_words
        self.max_oov = config.max_oov
        self.min_en, self.prior = config.min_text_en, config.text_en_prior
        self.counters = Counters(JOB)
        self._english: Callable[[str], float] | None = None

    def setup(self) -> None:
        from pipeline.lait_pages import LanguageId

        in_vocabulary("the")  # loads wordfreq's English list once per worker
        langid = LanguageId()
        self._english = lambda text: langid.confidence(text, "en", self.prior)

    def process(self, cand: dict[str, Any]) -> Iterator[Any]:
        self.counters.inc("in.text")
        source, check, reasons = choose_text(
            cand.get("texts") or {},
            self.min_words,
            self.max_words,
            self.max_oov,
            self._english,
            self.min_en,
        )
        if check is None:
            reason = reasons[""]
            self.counters.inc(
                f"reason_{reason.split(':')[0].split(' (')[0].replace(' ', '_')}.text"
            )
            yield reject(cand["input_id"], STEP, reason)
            return
        self.counters.inc("out.text")
        self.counters.inc(f"source_{source}.text")
        yield {
            **cand,
            "caption": check.text,
            "text_source": source,
            "word_count": check.word_count,
            "oov_ratio": round(check.oov, 4),
            "text_en": None if check.english is None else round(check.english, 4),
            "texts_failed": {s: r for s, r in reasons.items() if r and s},
        }


class LaitText(beam.PTransform):
    """candidates -> (captioned candidates, rejects)."""

    def __init__(self, config: LaitConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, candidates):
        out = candidates | "ChooseText" >> beam.ParDo(TextFn(self.config)).with_outputs(
            REJECTS, main="captioned"
        )
        return out.captioned, out[REJECTS]
