"""Detector label names -> WordPiece ids, and stage-T text built from feature-shard labels."""

from __future__ import annotations

import logging
import pickle

import pytest
from tokenizers import BertWordPieceTokenizer

from corpora.vocab import bert_vocab_file
from corpora.wordpiece_labels import LabelTokens, StageTText, stage_t


@pytest.fixture(scope="module")
def tok() -> BertWordPieceTokenizer:
    return BertWordPieceTokenizer(str(bert_vocab_file()), lowercase=True)


@pytest.fixture(scope="module")
def labels(vg_labels_dir) -> LabelTokens:
    return LabelTokens.from_files(
        vg_labels_dir / "objects_vocab.txt", vg_labels_dir / "attributes_vocab.txt"
    )


def _index(labels: LabelTokens, name: str, kind: str = "object") -> int:
    size = labels.num_objects if kind == "object" else labels.num_attributes
    get = labels.object_name if kind == "object" else labels.attribute_name
    return next(i for i in range(size) if get(i) == name)


def test_real_label_files(labels, tok):
    vocab = tok.get_vocab()
    assert (labels.num_objects, labels.num_attributes) == (1600, 400)
    assert not labels.placeholder and labels.unknown == []
    # line 50 is "man" (the token-labels test uses the same ids)
    assert labels.object_name(50) == "man" and labels.object_tokens(50) == [vocab["man"]]
    # synonyms: the line's first name is used ("television,tv")
    assert labels.object_name(43) == "television"
    # multi-word names: the pieces of each word, in order
    stop = _index(labels, "stop sign")
    assert labels.object_tokens(stop) == [vocab["stop"], vocab["sign"]]
    # out-of-vocabulary words: WordPiece sub-words, not [UNK]
    giraffe = _index(labels, "giraffe")
    assert labels.object_pieces(giraffe) == ["gi", "##raf", "##fe"]
    assert "giraffe" in labels.split_names() and "man" not in labels.split_names()
    # punctuation inside a name is split off as BERT's pre-tokeniser does
    mound = _index(labels, "pitcher's mound")
    assert labels.object_pieces(mound) == ["pitcher", "'", "s", "mound"]
    snow = _index(labels, "snow-covered", "attribute")
    assert [tok.id_to_token(i) for i in labels.attribute_tokens(snow)] == ["snow", "-", "covered"]
    # every name of both files tokenises back to its own text
    for i in range(labels.num_objects):
        assert tok.decode(labels.object_tokens(i)).replace(" ' ", "'").replace(" - ", "-") == (
            labels.object_name(i)
        )
    with pytest.raises(IndexError, match="object id 1600"):
        labels.object_tokens(1600)
    with pytest.raises(IndexError, match="attribute id -1"):
        labels.attribute_tokens(-1)


def test_unknown_characters_fall_back_to_a_synonym(tmp_path, tok):
    objects = tmp_path / "objects.txt"
    objects.write_text("\u2603 man,snowman\ndog\n\u2603\n\ncat\n")  # U+2603 is not in the vocab
    attributes = tmp_path / "attributes.txt"
    attributes.write_text("white\n")
    labels = LabelTokens.from_files(objects, attributes, num_objects=5, num_attributes=1)
    assert labels.object_name(0) == "snowman"
    assert labels.object_tokens(0) == tok.encode("snowman", add_special_tokens=False).ids
    assert labels.object_tokens(2) == labels.object_tokens(3) == [tok.token_to_id("[UNK]")]
    assert labels.object_name(4) == "cat"  # a blank line keeps the ids of the lines after it
    assert labels.unknown == ["\u2603", ""]
    with pytest.raises(ValueError, match="has 5 lines; the detector has 1600"):
        LabelTokens.from_files(objects, attributes)


def test_placeholders_without_label_files(caplog, tok):
    with caplog.at_level(logging.WARNING):
        labels = LabelTokens.from_files(None, None)
    assert labels.placeholder and labels.num_objects == 1600 and labels.num_attributes == 400
    assert labels.object_name(7) == "object_7"
    assert labels.object_tokens(7) == [tok.token_to_id("[UNK]")]
    assert "placeholders" in caplog.text


def test_stage_t_text(labels, tok):
    man, shirt, car = 50, 51, 52
    giraffe = _index(labels, "giraffe")
    white = _index(labels, "white", "attribute")
    comma = tok.token_to_id(",")

    plain = stage_t(labels, [man, shirt, man, giraffe])
    assert plain.text == "man, shirt, man, giraffe"  # RoI order, repeats kept (MSP stage T)
    assert plain.ids == tok.encode(plain.text, add_special_tokens=False).ids
    assert plain.roi == [0, -1, 1, -1, 2, -1, 3, 3, 3]
    assert plain.ids[1] == comma and plain.rois == [0, 1, 2, 3]

    # the token-labels job's text: each label once, in first-seen order
    deduped = stage_t(labels, [man, shirt, man, car], dedupe=True)
    assert deduped.text == "man, shirt, car" and deduped.rois == [0, 1, 3]

    # attributes above the threshold name the RoI "<attribute> <object>"
    attrs = stage_t(labels, [man, car], attr_ids=[white, white], attr_conf=[0.9, 0.3])
    assert attrs.text == "white man, car"
    assert attrs.ids == tok.encode("white man, car", add_special_tokens=False).ids
    assert attrs.roi == [0, 0, -1, 1]
    lower = stage_t(labels, [man, car], attr_ids=[white, white], attr_conf=[0.9, 0.3],
                    attr_threshold=0.2)  # fmt: skip
    assert lower.text == "white man, white car"

    # a budget drops whole labels, never a piece of one: "man, giraffe" needs 5 ids
    short = stage_t(labels, [man, giraffe, car], max_tokens=4)
    assert short.text == "man, car" and short.rois == [0, 2] and len(short.ids) == 3
    assert stage_t(labels, [man, car], separator=None).ids == [labels.object_tokens(man)[0],
                                                              labels.object_tokens(car)[0]]  # fmt: skip
    assert stage_t(labels, []) == StageTText([], [], [], "")
    with pytest.raises(IndexError):
        stage_t(labels, [man, 1600])
    with pytest.raises(ValueError, match="go together"):
        stage_t(labels, [man], attr_ids=[white])
    with pytest.raises(ValueError, match="one entry per RoI"):
        stage_t(labels, [man, car], attr_ids=[white], attr_conf=[0.9])


def test_pickles_for_data_loader_workers(labels):
    labels.text_tokens(",")  # builds the tokenizer, which is not carried over
    copy = pickle.loads(pickle.dumps(labels))
    assert copy.object_tokens(50) == labels.object_tokens(50)
    assert stage_t(copy, [50, 51]).text == "man, shirt"
