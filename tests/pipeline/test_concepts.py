"""MVPTR phrase concepts: the scene-graph rules on the real spaCy model and the Beam job."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import BertWordPieceTokenizer

from corpora.vocab import bert_vocab_file
from pipeline import concepts
from pipeline.concepts_steps import wordpiece_positions
from pipeline.sg_parse import SceneGraphParser


@pytest.fixture(scope="module")
def parser() -> SceneGraphParser:
    return SceneGraphParser()


@pytest.fixture(scope="module")
def tok() -> BertWordPieceTokenizer:
    return BertWordPieceTokenizer(str(bert_vocab_file()), lowercase=True)


# caption -> tuples that must be found (kind, words...) and tuples that must not
RULES = {
    "A man riding a horse on a beach.": (
        {("object", "man"), ("object", "horse"), ("relation", "man", "ride", "horse"),
         ("relation", "man", "ride on", "beach")},  # "riding" is ride, not spaCy's "rid"
        {("relation", "man", "rid", "horse")},
    ),
    "A red and white bus parked on the street.": (
        {("attribute", "bus", "red"), ("attribute", "bus", "white"),
         ("relation", "bus", "park on", "street")},
        set(),
    ),
    "Two men standing next to a stop sign.": (
        {("attribute", "man", "two"), ("object", "stop sign"),
         ("relation", "man", "stand next to", "stop sign")},
        {("object", "sign")},  # the compound is one object
    ),
    "A horse ridden by a woman.": ({("relation", "woman", "ride", "horse")}, set()),
    "The cat is on the table and the bus is red.": (
        {("relation", "cat", "on", "table"), ("attribute", "bus", "red")},
        set(),
    ),
    "A cup of coffee and a plate in front of a laptop.": (
        {("relation", "cup", "of", "coffee"), ("relation", "plate", "in front of", "laptop")},
        {("object", "front")},
    ),
    "The small cloud is to the left of the orange kite.": (
        {("relation", "cloud", "to left of", "kite"), ("attribute", "kite", "orange")},
        {("object", "left"), ("object", "orange kite")},  # a colour is an attribute
    ),
    "A picture of a dog sitting on a sofa.": (
        {("relation", "dog", "sit on", "sofa")},
        {("object", "picture"), ("relation", "picture", "of", "dog")},  # a frame, not a thing
    ),
    "It is sitting on the table.": ({("object", "table")}, {("object", "it")}),
    "An orange on a white plate.": ({("relation", "orange", "on", "plate")}, set()),
}  # fmt: skip


def test_scene_graph_rules(parser):
    captions = list(RULES)
    for caption, tuples in zip(captions, parser.parse(captions), strict=True):
        keys = {t.key for t in tuples}
        wanted, unwanted = RULES[caption]
        assert wanted <= keys, (caption, sorted(wanted - keys))
        assert not unwanted & keys, (caption, sorted(unwanted & keys))
    (tuples,) = parser.parse(["A man riding a horse on a beach."])
    covered = {t.text: " ".join(captions[0][a:b] for a, b in t.spans) for t in tuples}
    assert covered["man ride horse"] == "man riding horse"
    assert covered["man ride on beach"] == "man riding on beach"


def test_wordpiece_positions_cover_sub_words(tok):
    text = "A giraffe eating leaves."
    offsets = tok.encode(text, add_special_tokens=False).offsets  # a gi ##raf ##fe eating ...
    assert wordpiece_positions(offsets, [(2, 9)]) == [1, 2, 3]
    assert wordpiece_positions(offsets, [(2, 9), (10, 16)]) == [1, 2, 3, 4]
    assert wordpiece_positions(offsets, []) == []


def _caption_table(path: Path) -> Path:
    rows = [  # the captions job's layout (extra columns are ignored)
        ("1", "A man riding a horse.", "train", "101"),
        ("1", "A man riding a brown horse on the beach.", "train", "102"),
        ("2", "The man is riding a horse.", "train", "103"),
        ("2", "A dog on a red sofa.", "train", "104"),
        ("3", "A dog on a red sofa next to a lamp.", "val", "105"),  # not counted
        ("3", "A dog on a red sofa, sleeping.", "val", "106"),
        ("4", None, "train", "107"),  # null text
        (None, "A cat.", "train", "108"),  # null image id
        ("5", "   ", "train", "109"),  # blank text
    ]
    table = pa.table({
        "image_id": [r[0] for r in rows], "text": [r[1] for r in rows],
        "split": [r[2] for r in rows], "source": ["coco"] * len(rows),
        "coco_id": [None] * len(rows), "caption_id": [r[3] for r in rows],
    })  # fmt: skip
    pq.write_table(table, path)
    return path


def _coco_file(path: Path) -> Path:
    data = {
        "images": [{"id": 7, "file_name": "000000000007.jpg", "width": 9, "height": 9}],
        "annotations": [
            {"id": 201, "image_id": 7, "caption": "A  man riding a horse."},
            {"id": 202, "image_id": 7, "caption": None},  # malformed
            {"id": 203, "image_id": 99, "caption": "A dog."},  # unknown image
        ],
    }
    path.write_text(json.dumps(data))
    return path


def _read(out: Path, name: str) -> list[dict]:
    return [r for f in sorted(out.glob(f"{name}-*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_concepts_job_end_to_end(tmp_path, tok):
    table = _caption_table(tmp_path / "captions-00000-of-00001.parquet")
    coco = _coco_file(tmp_path / "captions_train2017.json")
    out = tmp_path / "out"
    assert concepts.run(["--captions", str(table), str(coco), "--out", str(out),
                         "--min-count", "3"]) == 0  # fmt: skip

    vocab = _read(out, "concept_vocab")
    got = {(v["kind"], tuple(v["words"])): v["sentences"] for v in vocab}
    # train sentences: 101, 102, 103, 104 and 201; "dog"/"sofa" reach 3 only with val captions
    assert got == {
        ("object", ("man",)): 4,
        ("object", ("horse",)): 4,
        ("relation", ("man", "ride", "horse")): 4,
    }
    assert [v["concept_id"] for v in vocab] == [30522, 30523, 30524]
    by_text = {v["concept"]: v for v in vocab}
    assert (
        by_text["man ride horse"]["wordpiece_ids"]
        == tok.encode("man ride horse", add_special_tokens=False).ids
    )

    rows = {r["caption_id"]: r for r in _read(out, "concepts")}
    assert set(rows) == {"101", "102", "103", "104", "105", "106", "201"}
    row = rows["102"]
    pieces = tok.encode(row["text"], add_special_tokens=False).tokens
    spelled = {c: [pieces[p] for p in ps]
               for c, ps in zip(row["concepts"], row["concept_tokens"], strict=True)}  # fmt: skip
    assert spelled == {"man": ["man"], "horse": ["horse"],
                       "man ride horse": ["man", "riding", "horse"]}  # fmt: skip
    assert row["concepts"] == ["man", "man ride horse", "horse"]  # text order
    assert rows["104"]["concept_ids"] == [] and rows["105"]["split"] == "val"
    assert (
        rows["201"]["text"] == "A man riding a horse." and rows["201"]["image_id"] == "000000000007"
    )
    assert rows["201"]["split"] == "train" and rows["201"]["source"] == "coco"

    rejects = {
        json.loads(x)["input_id"]: json.loads(x)["step"]
        for f in out.glob("rejects-*.jsonl")
        for x in f.read_text().splitlines()
    }
    assert rejects == {"107": "read", "108": "read", "109": "read", "202": "read", "203": "read"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (12, 7, 5)
    assert manifest["vocab_size"] == 3 and manifest["counters"]["with_concepts"] == 4


def test_empty_vocabulary_is_reported(tmp_path):
    table = _caption_table(tmp_path / "t.parquet")
    out = tmp_path / "out"
    assert concepts.run(["--captions", str(table), "--out", str(out), "--min-count", "99"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["vocab_size"] == 0 and "vocabulary is empty" in manifest["warnings"][0]
    assert all(r["concept_ids"] == [] for r in _read(out, "concepts"))
    with pytest.raises(SystemExit):
        concepts.run(["--captions", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")])


def test_sample_corpus_counts_match_a_recount(tmp_path):
    sample = pytest.importorskip("corpora.sample")
    sample.generate(tmp_path / "sample", seed=0, num_scenes=50)
    coco = tmp_path / "sample" / "coco"
    files = [str(coco / f"captions_{s}.json") for s in ("train", "val", "test")]
    out = tmp_path / "out"
    assert concepts.run(["--captions", *files, "--out", str(out), "--min-count", "5"]) == 0
    vocab = _read(out, "concept_vocab")
    rows = _read(out, "concepts")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["kept"] == len(rows) and manifest["rejected"] == 0
    # the distributed count equals a recount of the train captions' written concepts
    recount = Counter(c for r in rows if r["split"] == "train" for c in set(r["concept_ids"]))
    assert {v["concept_id"]: v["sentences"] for v in vocab} == dict(recount)
    assert min(recount.values()) >= 5
    assert [v["concept_id"] for v in vocab] == list(range(30522, 30522 + len(vocab)))
    counts = [v["sentences"] for v in vocab]
    assert counts == sorted(counts, reverse=True)
    kinds = Counter(v["kind"] for v in vocab)
    assert kinds["object"] and kinds["attribute"] and kinds["relation"]
    texts = {v["concept"] for v in vocab}
    assert {"dog", "white cloud", "dining table", "room with table"} <= texts
