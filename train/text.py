"""Text side: BERT uncased WordPiece tokenisation with word-level position ids, label names.

LXMERT-S gives every WordPiece of one word the same position id (its public code): "[CLS] a
skate ##board ##er jumps [SEP]" gets positions 0 1 2 2 2 3 4. Punctuation counts as a word
(BERT's pre-tokeniser splits it off). Texts are truncated to ``max_len`` WordPieces including
[CLS] and [SEP].
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np
import torch

from corpora.vocab import bert_vocab_file

log = logging.getLogger(__name__)

_SPECIAL_RE = re.compile(r"^\[.*\]$")


default_vocab_file = bert_vocab_file  # the bert-base-uncased vocab.txt (30522 lines)


class TextEncoder:
    """WordPiece tokeniser producing ``input_ids`` and word-level ``position_ids``.

    Args:
        vocab_file: BERT ``vocab.txt``; default: :func:`default_vocab_file`.
        max_len: WordPieces per text including [CLS] and [SEP].
    """

    def __init__(self, vocab_file: str | os.PathLike | None = None, max_len: int = 20) -> None:
        from tokenizers import BertWordPieceTokenizer

        if max_len < 2:
            raise ValueError(f"max_len={max_len}: need room for [CLS] and [SEP]")
        self.vocab_file = str(vocab_file or default_vocab_file())
        self.max_len = max_len
        self._tok = BertWordPieceTokenizer(self.vocab_file, lowercase=True)
        self._tok.enable_truncation(max_length=max_len)
        vocab = self._tok.get_vocab()
        self.vocab_size = self._tok.get_vocab_size()
        self.pad_id, self.cls_id = vocab["[PAD]"], vocab["[CLS]"]
        self.sep_id, self.mask_id = vocab["[SEP]"], vocab["[MASK]"]
        # special and [unusedN] entries form a prefix of the BERT vocab; MLM's random
        # replacement draws from the ids after it
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        self.first_word_id = next(i for tok, i in by_id if not _SPECIAL_RE.match(tok))
        self.special_ids = sorted(i for tok, i in vocab.items() if _SPECIAL_RE.match(tok))

    def encode(self, text: str) -> tuple[list[int], list[int]]:
        """One text -> (WordPiece ids, word-level position ids), both of length <= max_len."""
        enc = self._tok.encode(text)
        positions, last = [], 0
        for word in enc.word_ids:
            if word is None:  # [CLS] is position 0; [SEP] follows the last word
                positions.append(0 if not positions else last + 1)
            else:
                last = word + 1
                positions.append(last)
        return list(enc.ids), positions

    def batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise and pad to ``max_len``.

        Returns ``input_ids`` int64 [B,L], ``position_ids`` int64 [B,L] and ``attention_mask``
        bool [B,L] (True on real tokens), L = max_len.
        """
        ids = torch.full((len(texts), self.max_len), self.pad_id, dtype=torch.long)
        pos = torch.zeros((len(texts), self.max_len), dtype=torch.long)
        for row, text in enumerate(texts):
            tok_ids, tok_pos = self.encode(text)
            ids[row, : len(tok_ids)] = torch.tensor(tok_ids)
            pos[row, : len(tok_pos)] = torch.tensor(tok_pos)
        return {"input_ids": ids, "position_ids": pos, "attention_mask": ids != self.pad_id}

    def label_pieces(self, names: list[str], max_pieces: int = 8) -> torch.Tensor:
        """WordPiece ids of each class name: int64 [C, max_pieces], -1 padded (no [CLS]/[SEP])."""
        table = np.full((len(names), max_pieces), -1, dtype=np.int64)
        for c, name in enumerate(names):
            pieces = self._tok.encode(name, add_special_tokens=False).ids[:max_pieces]
            table[c, : len(pieces)] = pieces
        return torch.from_numpy(table)


def load_label_names(path: str | os.PathLike | None, count: int) -> list[str]:
    """Detector class names, one class per line (first of comma-separated synonyms).

    Read with the extractor's own reader, so the trainer and the extractor agree on ids. Without
    a file the names are placeholders (``object_17``) that match no text: topic tasks
    (TITP/TITS) then have empty targets, which is logged as a warning.
    """
    from extract.labels import load_vocab, placeholder_vocab

    if path is None:
        log.warning(
            "no objects_vocab given: detector labels get placeholder names, so TITP/TITS "
            "topic sets (text words that are also region labels) will be empty"
        )
        return placeholder_vocab("object", count)
    try:
        return load_vocab(path, count)
    except ValueError as exc:
        raise ValueError(f"{exc} (model.num_objects={count})") from None


def label_piece_sets(encoder: TextEncoder, labels: dict[str, list[str]]) -> dict[str, list[int]]:
    """image key -> sorted distinct WordPiece ids of its label names (the topic tasks' set L)."""
    out = {}
    for key, names in labels.items():
        pieces = encoder.label_pieces(sorted(set(names))) if names else None
        out[key] = [] if pieces is None else sorted({int(i) for i in pieces.flatten() if i >= 0})
    return out
