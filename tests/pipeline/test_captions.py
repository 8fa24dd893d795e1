"""Stage-S caption tables: COCO / Karpathy / VG / CC sources, splits and split isolation."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import captions
from pipeline.text_splits import _KarpathyImages, max_split, split_from_name


def _image(i: int) -> dict:
    return {"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480}


def _ann(ann_id, image_id, caption) -> dict:
    return {"id": ann_id, "image_id": image_id, "caption": caption}


def _coco(root: Path) -> tuple[Path, Path]:
    train = {
        "images": [_image(1), _image(2), _image(3), {"id": 9, "width": 1, "height": 1}],
        "annotations": [
            _ann(101, 1, "A man  riding a horse.\n"),
            _ann(102, 1, "A horse on a beach."),
            _ann(103, 2, "Two dogs."),  # image 2 is also in the test file
            _ann(104, 3, "A red bus."),
            _ann(105, 9, "No file name for this image."),
            _ann(106, 77, "Unknown image."),
            _ann(107, 3, "   "),
            _ann(108, 3, None),
        ],
    }
    test = {"images": [_image(2)], "annotations": [_ann(201, 2, "Two dogs playing.")]}
    (root / "captions_train2017.json").write_text(json.dumps(train))
    (root / "captions_test2017.json").write_text(json.dumps(test))
    return root / "captions_train2017.json", root / "captions_test2017.json"


def _vg(root: Path) -> Path:
    vg = root / "vg"
    vg.mkdir()

    def region(rid, image_id, phrase):
        return {"region_id": rid, "image_id": image_id, "phrase": phrase, "x": 0, "y": 0,
                "width": 9, "height": 9}  # fmt: skip

    regions = [
        {"id": 10, "regions": [region(1001, 10, "dogs on grass")]},  # COCO twin 2 is test
        {
            "id": 11,
            "regions": [
                region(1101, 11, "A white cloud"),
                region(1102, 11, "white cloud."),
                region(1103, 11, "man riding a bike"),
            ],
        },  # fmt: skip
    ]
    images = [
        {
            "image_id": i,
            "url": f"https://h/VG_100K/{i}.jpg",
            "width": 9,
            "height": 9,
            "coco_id": coco,
            "flickr_id": None,
        }  # fmt: skip
        for i, coco in ((10, 2), (11, None))
    ]
    (vg / "region_descriptions.json").write_text(json.dumps(regions))
    (vg / "image_data.json").write_text(json.dumps(images))
    return vg


def _tsv(root: Path) -> Path:
    path = root / "Train_GCC-training.tsv"
    lines = [
        "caption\turl",
        "a cat on a sofa\thttps://img.example/cats/cat01.jpg",
        "the same cat again\thttps://img.example/cats/cat01.jpg",
        "too\tmany\tfields",
        "no file name\thttps://img.example/",
        "a lake\thttps://a.example/photos/image.jpg",
        "a forest\thttps://b.example/other/image.jpg",  # same stem as the lake, another image
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(out: Path) -> list[dict]:
    rows = [r for f in sorted(out.glob("captions-*.parquet")) for r in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: (r["source"], r["image_id"], r["text"]))


def _rejects(out: Path) -> dict[str, str]:
    lines = [json.loads(x) for f in out.glob("rejects-*.jsonl") for x in f.read_text().splitlines()]
    return {r["input_id"]: r["step"] for r in lines}


def test_coco_vg_tsv_with_file_splits(tmp_path):
    train, test = _coco(tmp_path)
    out = tmp_path / "out"
    argv = ["--coco", str(train), str(test), "--vg", str(_vg(tmp_path)),
            "--tsv", str(_tsv(tmp_path)), "--out", str(out)]  # fmt: skip
    assert captions.run(argv) == 0
    rows = _rows(out)
    got = [(r["source"], r["image_id"], r["split"], r["text"]) for r in rows]
    assert got == [
        ("cc", "cat01", "train", "a cat on a sofa"),
        ("cc", "cat01", "train", "the same cat again"),
        ("coco", "000000000001", "train", "A horse on a beach."),
        ("coco", "000000000001", "train", "A man riding a horse."),
        ("coco", "000000000002", "test", "Two dogs playing."),
        ("coco", "000000000003", "train", "A red bus."),
        ("vg", "11", "train", "A white cloud"),
        ("vg", "11", "train", "man riding a bike"),  # stage S keeps verbs
    ]
    # the point of the split rules: no image is both a train and a test image
    train_ids = {r["image_id"] for r in rows if r["split"] == "train"}
    test_ids = {r["image_id"] for r in rows if r["split"] == "test"}
    assert test_ids == {"000000000002"} and not train_ids & test_ids
    coco_one = next(r for r in rows if r["image_id"] == "000000000001")
    assert coco_one["coco_id"] == 1 and coco_one["caption_id"] in {"101", "102"}

    rejects = _rejects(out)
    assert rejects == {
        "103": "split",  # train caption of the test image 2
        "9": "read",  # image entry without file_name
        "105": "read",  # its caption
        "106": "read",  # caption of an image not in the file
        "107": "read",  # blank caption
        "108": "read",  # null caption
        "10/1001": "heldout",  # VG image whose COCO twin is a test image
        "11/1102": "duplicate",  # "white cloud." repeats "A white cloud"
        "Train_GCC-training.tsv:line4": "read",  # three fields
        "Train_GCC-training.tsv:line5": "key",  # URL without a file name
        "Train_GCC-training.tsv:line6": "key",  # "image" names two different URLs
        "Train_GCC-training.tsv:line7": "key",
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (20, 8, 12)
    assert manifest["counters"]["kept.vg"] == 2


def test_karpathy_splits_decide(tmp_path):
    train, _ = _coco(tmp_path)
    karpathy = tmp_path / "dataset_coco.json"
    entries = [(1, "test"), (2, "restval")]  # image 3 is not in the split file
    karpathy.write_text(json.dumps({"dataset": "coco", "images": [
        {"filepath": "train2017", "filename": f"{i:012d}.jpg", "imgid": i, "cocoid": i,
         "split": split, "sentences": [{"raw": "x", "tokens": ["x"], "sentid": i}]}
        for i, split in entries
    ]}))  # fmt: skip
    out = tmp_path / "out"
    assert captions.run(["--coco", str(train), "--karpathy", str(karpathy), "--out", str(out)]) == 0
    splits = {(r["image_id"], r["split"]) for r in _rows(out)}
    assert splits == {("000000000001", "test"), ("000000000002", "train")}
    rejects = _rejects(out)
    assert rejects["104"] == "split"  # image 3: not in the Karpathy file
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["kept"] + manifest["rejected"] == 9


def test_coco_file_without_split_needs_karpathy(tmp_path):
    path = tmp_path / "my_captions.json"
    path.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(SystemExit):
        captions.run(["--coco", str(path), "--out", str(tmp_path / "out")])


def test_split_rules_from_names_and_karpathy_files(tmp_path):
    assert split_from_name("captions_train2014.json") == "train"
    assert split_from_name("/data/captions_val2017.json") == "val"
    assert split_from_name("Validation_GCC-1.1.0-Validation.tsv") == "val"
    assert split_from_name("Train_GCC-training.tsv") == "train"
    assert split_from_name("contest_captions.json") is None
    assert max_split(["train", "test", "val"]) == "test"

    flickr = tmp_path / "dataset_flickr30k.json"
    flickr.write_text(json.dumps({"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "test", "sentences": [
            {"raw": "Two young guys.", "tokens": ["two"], "sentid": 0},
            {"raw": "Two men.", "tokens": ["two"], "sentid": 1}]},
        {"filename": "10002456.jpg", "imgid": 1, "split": "restval",
         "sentences": [{"raw": "Workers.", "tokens": ["workers"], "sentid": 2}]},
        {"filename": "", "imgid": 2, "split": "train", "sentences": []},
    ]}))  # fmt: skip
    pairs = list(_KarpathyImages("test").process(str(flickr)))
    # one pair per image (not per sentence); Flickr files key held-out twins by the photo id
    assert pairs == [
        ("1000092795", ("test", "flickr:1000092795")),
        ("10002456", ("train", "flickr:10002456")),
    ]


def _lait(root: Path) -> Path:
    """A LAIT output folder: pairs-*.parquet in the LAIT job's layout (a subset of its columns)."""
    folder = root / "lait"
    folder.mkdir()
    pairs = [
        ("a3f1", "Sunset over the harbour", "https://w.example/a.jpg", "page1#img0"),
        ("b7c2", "  A red   tram in the city ", "https://w.example/b.jpg", "page2#img3"),
        (None, "no image id", "https://w.example/c.jpg", "page3#img0"),
        ("d9e4", "   ", "https://w.example/d.jpg", "page4#img1"),
    ]
    table = pa.table({
        "image_id": [p[0] for p in pairs], "caption": [p[1] for p in pairs],
        "score": [0.9, 0.8, 0.7, 0.6], "image_url": [p[2] for p in pairs],
        "page_url": ["https://w.example/"] * 4, "input_id": [p[3] for p in pairs],
    })  # fmt: skip
    pq.write_table(table, folder / "pairs-00000-of-00001.parquet")
    return folder


def _flickr(root: Path) -> Path:
    path = root / "dataset_flickr30k.json"
    path.write_text(json.dumps({"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "test", "sentences": [
            {"raw": "Two young guys with shaggy hair.", "tokens": ["two"], "sentid": 0},
            {"raw": "Two men in green shirts.", "tokens": ["two"], "sentid": 1}]},
        {"filename": "10002456.jpg", "imgid": 1, "split": "restval", "sentences": [
            {"raw": "Several men in hard hats.", "tokens": ["several"], "sentid": 2},
            {"tokens": ["no", "raw"], "sentid": 3}]},  # malformed: no "raw"
    ]}))  # fmt: skip
    return path


def _coco_karpathy(root: Path) -> Path:
    path = root / "dataset_coco.json"
    path.write_text(json.dumps({"dataset": "coco", "images": [
        {"filepath": "train2017", "filename": "000000000003.jpg", "imgid": 3, "cocoid": 3,
         "split": "train", "sentences": [
             {"raw": "a red bus", "tokens": ["a"], "sentid": 30},  # repeats COCO caption 104
             {"raw": "A bus parked by the kerb.", "tokens": ["a"], "sentid": 31}]},
    ]}))  # fmt: skip
    return path


def _vg_flickr_twin(root: Path) -> Path:
    vg = root / "vg2"
    vg.mkdir()
    region = {"region_id": 5001, "image_id": 50, "phrase": "man with shaggy hair", "x": 0,
              "y": 0, "width": 9, "height": 9}  # fmt: skip
    (vg / "region_descriptions.json").write_text(json.dumps([{"id": 50, "regions": [region]}]))
    (vg / "image_data.json").write_text(json.dumps([
        {"image_id": 50, "url": "https://h/VG_100K/50.jpg", "width": 9, "height": 9,
         "coco_id": None, "flickr_id": 1000092795}]))  # fmt: skip
    return vg


def test_lait_karpathy_sources_and_cross_source_isolation(tmp_path):
    train, test = _coco(tmp_path)
    tsv = tmp_path / "cc_train.tsv"
    tsv.write_text("a dog and a ball\thttps://img.example/000000000002.jpg\n"  # COCO test key
                   "a cat on a mat\thttps://img.example/mat.jpg\n")  # fmt: skip
    out = tmp_path / "out"
    argv = ["--coco", str(train), str(test), "--tsv", str(tsv), "--lait", str(_lait(tmp_path)),
            "--karpathy-captions", str(_flickr(tmp_path)), str(_coco_karpathy(tmp_path)),
            "--vg", str(_vg_flickr_twin(tmp_path)), "--out", str(out)]  # fmt: skip
    assert captions.run(argv) == 0
    rows = _rows(out)
    got = {(r["source"], r["image_id"], r["split"], r["text"]) for r in rows}
    assert {r for r in got if r[0] in ("lait", "flickr30k", "cc")} == {
        ("lait", "a3f1", "train", "Sunset over the harbour"),
        ("lait", "b7c2", "train", "A red tram in the city"),
        ("flickr30k", "1000092795", "test", "Two young guys with shaggy hair."),
        ("flickr30k", "1000092795", "test", "Two men in green shirts."),
        ("flickr30k", "10002456", "train", "Several men in hard hats."),
        ("cc", "mat", "train", "a cat on a mat"),
    }
    assert ("coco", "000000000003", "train", "A bus parked by the kerb.") in got  # Karpathy row
    lait = next(r for r in rows if r["image_id"] == "a3f1")
    assert lait["url"] == "https://w.example/a.jpg" and lait["caption_id"] == "page1#img0"
    flickr = next(r for r in rows if r["source"] == "flickr30k")
    assert flickr["coco_id"] is None and flickr["caption_id"] in {"0", "1"}
    # no key is both a training image and a held-out one, whatever the source
    by_split: dict[str, set[str]] = {}
    for r in rows:
        by_split.setdefault(r["split"], set()).add(r["image_id"])
    assert not by_split["train"] & (by_split["test"] | by_split.get("val", set()))

    rejects = _rejects(out)
    assert {k: v for k, v in rejects.items() if not k.isdigit()} == {
        "page3#img0": "read",  # LAIT pair without image id
        "page4#img1": "read",  # blank caption
        "dataset_flickr30k.json:1/1": "read",  # image 1, sentence 1: no "raw"
        "cc_train.tsv:line1": "split",  # its key is the COCO test image 000000000002
        "dataset_coco.json:30": "duplicate",  # "a red bus" repeats COCO caption 104
        "50/5001": "heldout",  # VG image whose Flickr twin is a Karpathy test image
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["kept"] + manifest["rejected"]
    assert manifest["kept"] == len(rows) and manifest["counters"]["kept.lait"] == 2


def test_sample_corpus_splits_never_leak(tmp_path):
    sample = pytest.importorskip("corpora.sample")
    root = tmp_path / "sample"
    sample.generate(root, seed=0, num_scenes=50)
    coco = root / "coco"
    out = tmp_path / "out"
    argv = ["--coco", *(str(coco / f"captions_{s}.json") for s in ("train", "val", "test")),
            "--karpathy", str(coco / "dataset_karpathy.json"), "--vg", str(root / "vg"),
            "--tsv", str(root / "cc" / "captions.tsv"), "--out", str(out)]  # fmt: skip
    assert captions.run(argv) == 0
    rows = _rows(out)
    karpathy = json.loads((coco / "dataset_karpathy.json").read_text())["images"]
    held = {Path(im["filename"]).stem for im in karpathy if im["split"] in ("val", "test")}
    train_keys = {r["image_id"] for r in rows if r["split"] == "train"}
    assert held and not train_keys & held  # VG, CC and COCO rows of held-out images are gone
    assert {r["image_id"] for r in rows if r["split"] == "test"} <= held
    assert {r["source"] for r in rows} == {"coco", "vg", "cc"}
    truth = json.loads((root / "ground_truth" / "cc.json").read_text())
    rejects = _rejects(out)
    unreadable = {f"captions.tsv:line{m['line']}" for m in truth["malformed"]
                  if m["reason"] != "missing_image"}  # fmt: skip
    assert {k for k, step in rejects.items() if step == "read" and "captions.tsv" in k} == (
        unreadable
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["inputs"] == manifest["kept"] + manifest["rejected"] == (len(rows) + len(rejects))
    )
