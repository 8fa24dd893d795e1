"""Detector class names as BERT WordPiece ids, and MSP stage-T text built from them.

The Visual Genome detector predicts 1600 object and 400 attribute classes; its label files
(``objects_vocab.txt``, ``attributes_vocab.txt``) come with the checkpoint: line i (0-based)
names class i, the ids stored in feature shards (``obj_ids``, ``attr_ids``). A line may list
synonyms separated by commas; the first is the display name, the name the stage-T text uses
(the token-labels job writes the same names).

Names to WordPieces (bert-base-uncased vocab, lower-cased like the trainer's tokenizer):

* **multi-word names** ("stop sign", "tennis racket", "pitcher's mound") become the pieces of
  every word in order: BERT's pre-tokeniser splits on spaces and punctuation, so "pitcher's"
  is ``pitcher ' s``; a hyphen likewise ("snow-covered" -> ``snow - covered``);
* **out-of-vocabulary words** ("giraffe", "racket") become their WordPiece sub-words
  (``gi ##raf ##fe``), as BERT itself reads them: a label is a sequence of ids, never a single
  new id. :meth:`LabelTokens.split_names` lists them;
* a name whose pieces include ``[UNK]`` (a character the vocab lacks) is replaced by its first
  synonym without one; when every synonym has it, the name keeps its ``[UNK]`` and
  :attr:`LabelTokens.unknown` lists it (none of the 2000 VG names needs this);
* without label files (a detector run without them) every class is a placeholder
  ``object_<i>`` / ``attribute_<i>`` whose tokens are one ``[UNK]``: the text then carries no
  wrong words, and :attr:`LabelTokens.placeholder` is True (a warning is logged).

Usage (the trainer)::

    labels = LabelTokens.from_files("objects_vocab.txt", "attributes_vocab.txt")
    labels.object_tokens(5)                  # -> [WordPiece ids]
    text = stage_t(labels, obj_ids, attr_ids=attr_ids, attr_conf=attr_conf)
    text.ids, text.roi, text.text            # ids without [CLS]/[SEP], RoI of each id, string

Imports only ``tokenizers`` (lazily) beside the standard library.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from corpora.vocab import NUM_ATTRIBUTES, NUM_OBJECTS, bert_vocab_file, read_label_file

logger = logging.getLogger(__name__)

UNK = "[UNK]"
DEFAULT_ATTR_THRESHOLD = 0.5


def _tokenizer(vocab_file: str | os.PathLike):
    from tokenizers import BertWordPieceTokenizer

    return BertWordPieceTokenizer(str(vocab_file), lowercase=True)


@dataclass(frozen=True)
class _Table:
    """Names and WordPiece ids of one label set (objects or attributes)."""

    kind: str
    names: tuple[str, ...]
    ids: tuple[tuple[int, ...], ...]
    pieces: tuple[tuple[str, ...], ...]

    def check(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self.names):
            raise IndexError(f"{self.kind} id {i} outside 0..{len(self.names) - 1}")
        return i


def _build(kind: str, synonyms: list[list[str]], tok, unk_id: int) -> tuple[_Table, list[str]]:
    """Tokenise each line's name: the first synonym without [UNK], else the first one."""
    names, ids, pieces, unknown = [], [], [], []
    for line in synonyms:
        encoded = [(s, tok.encode(s, add_special_tokens=False)) for s in line if s]
        usable = [(s, e) for s, e in encoded if e.ids and UNK not in e.tokens]
        if usable:
            name, enc = usable[0]
            names.append(name)
            ids.append(tuple(enc.ids))
            pieces.append(tuple(enc.tokens))
            continue
        name, enc = encoded[0] if encoded else ("", None)
        unknown.append(name)
        names.append(name)
        if enc is not None and enc.ids:  # keeps its [UNK] pieces
            ids.append(tuple(enc.ids))
            pieces.append(tuple(enc.tokens))
        else:  # an empty line: nothing to say but [UNK]
            ids.append((unk_id,))
            pieces.append((UNK,))
    return _Table(kind, tuple(names), tuple(ids), tuple(pieces)), unknown


class LabelTokens:
    """WordPiece ids of every object and attribute class of the detector.

    Build it with :meth:`from_files`. ``object_tokens(i)`` / ``attribute_tokens(i)`` return the
    ids of class ``i`` (0-based line of the label file), without [CLS]/[SEP].
    """

    def __init__(
        self, objects: _Table, attributes: _Table, vocab_file: str, *, placeholder: bool
    ) -> None:
        self._objects = objects
        self._attributes = attributes
        self.vocab_file = vocab_file
        self.placeholder = placeholder
        self.unknown: list[str] = []
        self._tok = None  # built on first use; not pickled (DataLoader workers rebuild it)
        self._encoded: dict[str, list[int]] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tok": None}

    def text_tokens(self, text: str) -> list[int]:
        """WordPiece ids of any short text (a separator, a name) without [CLS]/[SEP]; cached."""
        if text not in self._encoded:
            if self._tok is None:
                self._tok = _tokenizer(self.vocab_file)
            self._encoded[text] = self._tok.encode(text, add_special_tokens=False).ids
        return list(self._encoded[text])

    @classmethod
    def from_files(
        cls,
        objects_vocab: str | os.PathLike | None,
        attributes_vocab: str | os.PathLike | None = None,
        bert_vocab: str | os.PathLike | None = None,
        *,
        num_objects: int | None = NUM_OBJECTS,
        num_attributes: int | None = NUM_ATTRIBUTES,
    ) -> LabelTokens:
        """Read the label files (None: placeholders) and tokenise every name.

        ``bert_vocab``: the WordPiece ``vocab.txt`` (default: the installed bert-base-uncased
        file, :func:`corpora.vocab.bert_vocab_file`). ``num_objects``/``num_attributes``: the
        line counts the detector needs (ValueError otherwise; None accepts any count).
        """
        vocab_file = str(bert_vocab or bert_vocab_file())
        tok = _tokenizer(vocab_file)
        unk_id = tok.token_to_id(UNK)
        if unk_id is None:
            raise ValueError(f"{vocab_file} has no {UNK} token: not a BERT vocab")
        tables, unknown = [], []
        placeholder = False
        for kind, path, count, default in (
            ("object", objects_vocab, num_objects, NUM_OBJECTS),
            ("attribute", attributes_vocab, num_attributes, NUM_ATTRIBUTES),
        ):
            if path is None:
                placeholder = True
                size = count or default
                logger.warning(
                    "no %s label file: the %d %s classes are placeholders whose text is [UNK]",
                    kind, size, kind,
                )  # fmt: skip
                names = tuple(f"{kind}_{i}" for i in range(size))
                table = _Table(kind, names, ((unk_id,),) * size, ((UNK,),) * size)
            else:
                table, missing = _build(kind, read_label_file(path, count), tok, unk_id)
                unknown += missing
            tables.append(table)
        out = cls(tables[0], tables[1], vocab_file, placeholder=placeholder)
        out.unknown = unknown
        if unknown:
            logger.warning("label names with characters outside the vocab: %s", unknown[:10])
        return out

    @property
    def num_objects(self) -> int:
        return len(self._objects.names)

    @property
    def num_attributes(self) -> int:
        return len(self._attributes.names)

    def object_name(self, i: int) -> str:
        """The name of object class ``i`` that the text uses."""
        return self._objects.names[self._objects.check(i)]

    def attribute_name(self, i: int) -> str:
        return self._attributes.names[self._attributes.check(i)]

    def object_tokens(self, i: int) -> list[int]:
        """WordPiece ids of object class ``i`` (IndexError outside the label file)."""
        return list(self._objects.ids[self._objects.check(i)])

    def attribute_tokens(self, i: int) -> list[int]:
        """WordPiece ids of attribute class ``i`` (IndexError outside the label file)."""
        return list(self._attributes.ids[self._attributes.check(i)])

    def object_pieces(self, i: int) -> list[str]:
        """The WordPiece strings of object class ``i`` (``["gi", "##raf", "##fe"]``)."""
        return list(self._objects.pieces[self._objects.check(i)])

    def split_names(self, kind: str = "object") -> dict[str, list[str]]:
        """Names with a word that is not one WordPiece (out-of-vocabulary words), and pieces."""
        table = self._objects if kind == "object" else self._attributes
        return {
            name: list(pieces)
            for name, pieces in zip(table.names, table.pieces, strict=True)
            if any(p.startswith("##") for p in pieces)
        }


@dataclass(frozen=True)
class StageTText:
    """Stage-T text of one image.

    ``ids``: WordPiece ids without [CLS]/[SEP]; ``roi``: for each id, the RoI (0-based index
    into the sample's boxes) whose label it spells, -1 for a separator; ``rois``: the RoIs named,
    in text order; ``text``: the same as a string (what the token-labels job writes).
    """

    ids: list[int]
    roi: list[int]
    rois: list[int]
    text: str


def stage_t(
    labels: LabelTokens,
    obj_ids: Sequence[int],
    *,
    attr_ids: Sequence[int] | None = None,
    attr_conf: Sequence[float] | None = None,
    attr_threshold: float = DEFAULT_ATTR_THRESHOLD,
    dedupe: bool = False,
    separator: str | None = ",",
    max_tokens: int | None = None,
) -> StageTText:
    """Build stage-T text from one sample's detector labels, in RoI order.

    MSP's stage T gives the text side the category label of each RoI in the RoI order (so a
    masked label can be predicted from its region). Options:

    * ``attr_ids``/``attr_conf``: a RoI whose attribute confidence is >= ``attr_threshold``
      is named "<attribute> <object>" ("white car");
    * ``dedupe``: name each distinct label once, at its first RoI (the token-labels job's text);
    * ``separator``: a token between labels (default ","; None: labels follow each other);
    * ``max_tokens``: a WordPiece budget without [CLS]/[SEP]; labels that do not fit whole are
      left out (never cut), so the text ends at a label boundary.
    """
    if (attr_ids is None) != (attr_conf is None):
        raise ValueError("attr_ids and attr_conf go together")
    if attr_ids is not None and not (len(attr_ids) == len(attr_conf) == len(obj_ids)):
        raise ValueError("obj_ids, attr_ids and attr_conf must have one entry per RoI")
    sep_ids = labels.text_tokens(separator) if separator else []
    ids: list[int] = []
    roi: list[int] = []
    rois: list[int] = []
    words: list[str] = []
    seen: set[str] = set()
    for r, obj in enumerate(obj_ids):
        name = labels.object_name(obj)
        pieces = labels.object_tokens(obj)
        if attr_ids is not None and float(attr_conf[r]) >= attr_threshold:
            name = f"{labels.attribute_name(attr_ids[r])} {name}"
            pieces = labels.attribute_tokens(attr_ids[r]) + pieces
        if dedupe and name in seen:
            continue
        glue = sep_ids if ids else []
        if max_tokens is not None and len(ids) + len(glue) + len(pieces) > max_tokens:
            continue
        seen.add(name)
        ids += glue + pieces
        roi += [-1] * len(glue) + [r] * len(pieces)
        rois.append(r)
        words.append(name)
    joiner = f"{separator} " if separator else " "
    return StageTText(ids, roi, rois, joiner.join(words))


def label_file_paths(folder: str | os.PathLike) -> tuple[Path, Path]:
    """``objects_vocab.txt`` and ``attributes_vocab.txt`` in a checkpoint's folder."""
    root = Path(folder)
    return root / "objects_vocab.txt", root / "attributes_vocab.txt"
