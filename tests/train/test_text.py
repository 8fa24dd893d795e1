"""Tokeniser: BERT uncased WordPiece ids and word-level position ids (LXMERT-S)."""

from __future__ import annotations

import pytest

from train.text import TextEncoder, load_label_names


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(max_len=20)


def test_wordpieces_of_a_word_share_a_position(encoder: TextEncoder) -> None:
    ids, pos = encoder.encode("A skateboarder, jumping")
    tokens = [encoder._tok.id_to_token(i) for i in ids]
    assert tokens == ["[CLS]", "a", "skate", "##board", "##er", ",", "jumping", "[SEP]"]
    assert pos == [0, 1, 2, 2, 2, 3, 4, 5]


def test_batch_pads_and_truncates(encoder: TextEncoder) -> None:
    long = " ".join(["word"] * 40)
    out = encoder.batch(["ball, car", long, ""])
    assert out["input_ids"].shape == (3, 20)
    assert out["attention_mask"].sum(1).tolist() == [5, 20, 2]
    assert out["input_ids"][1, -1].item() == encoder.sep_id  # truncation keeps [SEP]
    assert out["position_ids"][1].tolist() == list(range(20))
    assert out["input_ids"][2, :2].tolist() == [encoder.cls_id, encoder.sep_id]
    assert out["position_ids"][0].tolist()[:5] == [0, 1, 2, 3, 4]


def test_vocab_facts(encoder: TextEncoder) -> None:
    assert encoder.vocab_size == 30522
    assert (encoder.pad_id, encoder.cls_id, encoder.sep_id, encoder.mask_id) == (0, 101, 102, 103)
    assert encoder.first_word_id == 999  # "!" follows the [unusedN] block
    assert 103 in encoder.special_ids and 999 not in encoder.special_ids


def test_label_pieces_and_names(encoder: TextEncoder, tmp_path) -> None:
    path = tmp_path / "objects.txt"
    path.write_text("ball\ntennis racket,tennis racquet")
    names = load_label_names(path, 2)
    assert names == ["ball", "tennis racket"]
    table = encoder.label_pieces(names, max_pieces=4)
    pieces = encoder.encode("tennis racket")[0][1:-1]  # tennis, rack, ##et
    assert len(pieces) == 3
    assert table.tolist() == [[encoder.encode("ball")[0][1], -1, -1, -1], [*pieces, -1]]
    with pytest.raises(ValueError, match="num_objects"):
        load_label_names(path, 3)
    assert load_label_names(None, 2) == ["object_0", "object_1"]
