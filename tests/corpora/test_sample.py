"""The sample corpus: determinism, layout, VG/COCO/CC consistency, vocabulary, drawing, CLI."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from corpora.sample import MIN_SCENES, generate, main
from corpora.sample.draw import DRAWERS, render_object
from corpora.sample.photos import PHOTOS
from corpora.sample.vocab import vocabulary

N = MIN_SCENES  # the smallest corpus: fastest to make


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "corpus"
    generate(out, seed=0, num_scenes=N)
    return out


def _load(corpus: Path, rel: str):
    return json.loads((corpus / rel).read_text(encoding="utf-8"))


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _vocab_file(path: Path) -> set[str]:
    return {name.strip() for line in path.read_text().splitlines() for name in line.split(",")}


def test_same_seed_gives_identical_bytes(corpus, tmp_path):
    again = tmp_path / "again"
    generate(again, seed=0, num_scenes=N)
    first, second = _hashes(corpus), _hashes(again)
    assert len(first) > 100
    assert first == second
    other = tmp_path / "other"
    generate(other, seed=1, num_scenes=N)
    third = _hashes(other)
    assert third["images/1001.jpg"] != first["images/1001.jpg"]


def test_layout_and_manifest(corpus):
    for rel in (
        "README.md", "manifest.json", "images/1001.jpg", f"images/{1000 + N}.jpg",
        "vg/image_data.json", "vg/region_descriptions.json", "vg/objects.json",
        "vg/attributes.json", "vg/relationships.json", "coco/captions_train.json",
        "coco/captions_val.json", "coco/captions_test.json", "coco/dataset_karpathy.json",
        "cc/captions.tsv", "web/crawl-00000.warc.gz", "ground_truth/lait.jsonl",
        "ground_truth/pages.jsonl", "ground_truth/filters.json", "ground_truth/cc.json",
    ):  # fmt: skip
        assert (corpus / rel).is_file(), rel
    assert list((corpus / "web" / "html").glob("*.html"))
    assert list((corpus / "web" / "img").glob("*.jpg"))
    manifest = _load(corpus, "manifest.json")
    assert manifest["seed"] == 0 and manifest["num_scenes"] == N
    assert manifest["counts"]["scenes"] == N
    assert manifest["counts"]["photos"] == len(PHOTOS)
    assert len(list((corpus / "images").glob("*.jpg"))) == manifest["counts"]["images"]
    on_disk = _hashes(corpus)
    on_disk.pop("manifest.json")
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == on_disk
    assert manifest["total_bytes"] < 30_000_000
    readme = (corpus / "README.md").read_text()
    for needle in (
        "## Layout",
        "ground_truth/lait.jsonl",
        "web/img/",
        "duplicate_image",
        "tiny_image",
    ):
        assert needle in readme
    assert str(corpus) not in readme and str(corpus) not in (corpus / "manifest.json").read_text()


def test_vg_files_are_consistent(corpus):
    image_data = _load(corpus, "vg/image_data.json")
    sizes = {d["image_id"]: (d["width"], d["height"]) for d in image_data}
    assert len(sizes) == len(image_data) == N + len(PHOTOS)
    for image_id, size in sizes.items():
        with Image.open(corpus / "images" / f"{image_id}.jpg") as im:
            assert im.size == size
    objects = {e["image_id"]: e["objects"] for e in _load(corpus, "vg/objects.json")}
    all_ids = [o["object_id"] for objs in objects.values() for o in objs]
    assert len(all_ids) == len(set(all_ids))
    for image_id, objs in objects.items():
        w, h = sizes[image_id]
        assert len(objs) >= 3  # background + at least two things (photos: several objects)
        for o in objs:
            assert o["w"] > 0 and o["h"] > 0 and o["x"] >= 0 and o["y"] >= 0, o
            assert o["x"] + o["w"] <= w and o["y"] + o["h"] <= h, o
            assert len(o["names"]) == 1 and o["synsets"] == []
    by_id = {o["object_id"]: (image_id, o) for image_id, objs in objects.items() for o in objs}
    for entry in _load(corpus, "vg/attributes.json"):
        assert [a["object_id"] for a in entry["attributes"]] == [
            o["object_id"] for o in objects[entry["image_id"]]
        ]
    n_rels = 0
    for entry in _load(corpus, "vg/relationships.json"):
        for r in entry["relationships"]:
            for end in (r["subject"], r["object"]):
                image_id, obj = by_id[end["object_id"]]
                assert image_id == entry["image_id"]
                assert (end["x"], end["y"], end["w"], end["h"]) == (
                    obj["x"],
                    obj["y"],
                    obj["w"],
                    obj["h"],
                )
                assert end["name"] == obj["names"][0]
            n_rels += 1
    assert n_rels > 2 * N
    for entry in _load(corpus, "vg/region_descriptions.json"):
        w, h = sizes[entry["id"]]
        assert len(entry["regions"]) >= 3
        for r in entry["regions"]:
            assert r["image_id"] == entry["id"] and r["phrase"].strip()
            assert (
                r["x"] >= 0
                and r["x"] + r["width"] <= w
                and r["y"] >= 0
                and r["y"] + r["height"] <= h
            )


def test_every_word_is_in_the_detector_vocabulary(corpus, vg_labels_dir):
    objects = _vocab_file(vg_labels_dir / "objects_vocab.txt")
    attributes = _vocab_file(vg_labels_dir / "attributes_vocab.txt")
    relations = _vocab_file(vg_labels_dir / "relations_vocab.txt")
    assert len(objects) > 1600 and len(attributes) > 400
    used = vocabulary()
    assert used["objects"] <= objects, used["objects"] - objects
    assert used["attributes"] <= attributes, used["attributes"] - attributes
    assert used["predicates"] <= relations, used["predicates"] - relations
    names = {o["names"][0] for e in _load(corpus, "vg/objects.json") for o in e["objects"]}
    attrs = {
        a
        for e in _load(corpus, "vg/attributes.json")
        for o in e["attributes"]
        for a in o["attributes"]
    }
    preds = {
        r["predicate"] for e in _load(corpus, "vg/relationships.json") for r in e["relationships"]
    }
    assert names <= objects, names - objects
    assert attrs <= attributes, attrs - attributes
    assert preds <= relations, preds - relations
    assert len(names) >= 15 and len(attrs) >= 10


def test_coco_and_karpathy_splits(corpus):
    coco_ids = {d["coco_id"]: d["image_id"] for d in _load(corpus, "vg/image_data.json")}
    splits = {}
    for split in ("train", "val", "test"):
        data = _load(corpus, f"coco/captions_{split}.json")
        ids = {im["id"] for im in data["images"]}
        for im in data["images"]:
            assert im["file_name"] == f"{coco_ids[im['id']]}.jpg"
            assert (corpus / "images" / im["file_name"]).is_file()
        per_image = {}
        for ann in data["annotations"]:
            assert ann["image_id"] in ids and ann["caption"].endswith(".")
            per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
        assert set(per_image.values()) == {5} and set(per_image) == ids
        splits[split] = ids
    assert splits["train"].isdisjoint(splits["test"]) and splits["train"].isdisjoint(splits["val"])
    assert splits["val"].isdisjoint(splits["test"])
    assert splits["train"] | splits["val"] | splits["test"] == set(coco_ids)
    assert len(splits["test"]) == len(splits["val"]) == round(0.1 * N)
    karpathy = _load(corpus, "coco/dataset_karpathy.json")["images"]
    assert {(im["cocoid"], im["split"]) for im in karpathy} == {
        (i, s) for s, ids in splits.items() for i in ids
    }
    for im in karpathy:
        assert len(im["sentences"]) == 5
        for s in im["sentences"]:
            assert s["tokens"] == re.findall(r"[a-z0-9]+", s["raw"].lower())


def test_captions_and_phrases_describe_the_scene(corpus):
    objects = {e["image_id"]: e["objects"] for e in _load(corpus, "vg/objects.json")}
    attrs = {e["image_id"]: e["attributes"] for e in _load(corpus, "vg/attributes.json")}
    coco_ids = {d["coco_id"]: d["image_id"] for d in _load(corpus, "vg/image_data.json")}
    captions: dict[int, list[str]] = {}
    for split in ("train", "val", "test"):
        for ann in _load(corpus, f"coco/captions_{split}.json")["annotations"]:
            captions.setdefault(coco_ids[ann["image_id"]], []).append(ann["caption"].lower())
    for image_id in range(1001, 1001 + N):
        text = " ".join(captions[image_id])
        things = [
            a
            for a in attrs[image_id]
            if any(a["attributes"][1:2] == [s] for s in ("small", "large"))
        ]
        assert len(things) >= 2
        for thing in things:  # every thing is named with its colour somewhere in the captions
            assert f"{thing['attributes'][0]} {thing['names'][0]}" in text, (image_id, thing, text)
        assert len(set(captions[image_id])) == 5
        assert {o["names"][0] for o in objects[image_id]} & {"sky", "wall"}
    phrases = [
        r["phrase"] for e in _load(corpus, "vg/region_descriptions.json") for r in e["regions"]
    ]
    joined = "\n".join(phrases)
    assert re.search(r"\b(is|are) \w+ing\b", joined)  # auxiliary + participle
    assert re.search(r"^\w+ing \w+", joined, re.M) or "parked" in joined  # participle as adjective
    assert "dining table" in joined or "parked" in joined
    assert any(" next to " in p or " left of " in p for p in phrases)


@pytest.mark.parametrize("name", sorted(DRAWERS))
def test_drawn_objects_have_tight_boxes(name):
    canvas = Image.new("RGBA", (200, 160), (0, 0, 0, 0))
    box, parts = render_object(canvas, name, "red", 30, 20, 120, 110, accent="white")
    assert box == canvas.getchannel("A").getbbox()
    assert 30 <= box[0] < box[2] <= 150 and 20 <= box[1] < box[3] <= 130
    for part in parts:
        x0, y0, x1, y1 = part.box
        assert box[0] <= x0 < x1 <= box[2] and box[1] <= y0 < y1 <= box[3]


def test_cc_file_matches_its_ground_truth(corpus):
    truth = _load(corpus, "ground_truth/cc.json")
    lines = (corpus / "cc" / "captions.tsv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == truth["lines"] >= 30
    bad = {m["line"]: m["reason"] for m in truth["malformed"]}
    assert {"no_tab", "empty_caption", "extra_field", "missing_image"} == set(bad.values())
    for n, line in enumerate(lines, 1):
        fields = line.split("\t")
        ok = len(fields) == 2 and fields[0].strip() and (corpus / "cc" / fields[1]).is_file()
        assert bool(ok) == (n not in bad), (n, line)
    assert {v["line"] for v in truth["valid"]} == set(range(1, len(lines) + 1)) - set(bad)


def test_cli_dispatch_skip_and_refusals(corpus, tmp_path, capsys):
    from corpora.cli import main as msp

    before = _hashes(corpus)
    assert msp(["sample", "--out", str(corpus), "--num-scenes", str(N)]) == 0
    assert json.loads(capsys.readouterr().out)["seconds"] is None  # complete: skipped
    assert _hashes(corpus) == before
    stray = tmp_path / "busy"
    stray.mkdir()
    (stray / "notes.txt").write_text("not a corpus")
    with pytest.raises(FileExistsError):
        main(["--out", str(stray), "--num-scenes", str(N)])
    with pytest.raises(ValueError):
        generate(tmp_path / "small", num_scenes=MIN_SCENES - 1)
