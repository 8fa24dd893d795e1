"""COCO captions and Karpathy split files, with the real files' field layout."""

from __future__ import annotations

import gzip
import json

import pytest

from corpora.readers import (
    Caption,
    Malformed,
    ReaderError,
    iter_coco_captions,
    iter_karpathy_captions,
)

COCO = {
    "info": {"description": "COCO 2014 Dataset"},
    "licenses": [],
    "images": [
        {"license": 5, "file_name": "COCO_val2014_000000391895.jpg", "coco_url": "http://x",
         "height": 360, "width": 640, "date_captured": "2013-11-14 11:18:45", "id": 391895},
        {"license": 4, "file_name": "COCO_val2014_000000522418.jpg", "height": 480,
         "width": 640, "id": 522418},
        {"license": 4, "height": 480, "width": 640, "id": 184613},
    ],
    "annotations": [
        {"image_id": 391895, "id": 770337,
         "caption": "A man with a red helmet on a small moped on a dirt road. "},
        {"image_id": 522418, "id": 775, "caption": "A woman wearing a net on her head."},
        {"image_id": 522418, "id": 776, "caption": "  "},
        {"image_id": 999, "id": 777, "caption": "An orphan caption."},
        {"image_id": 184613, "id": 778, "caption": "A child holding a flowered umbrella."},
        {"image_id": 391895, "caption": "no id"},
    ],
}  # fmt: skip


def write(tmp_path, name, data, gz=False):
    path = tmp_path / name
    raw = json.dumps(data).encode()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_coco_lenient(tmp_path, gz):
    path = write(tmp_path, "captions_val2014.json", COCO, gz)
    out = list(iter_coco_captions(path, on_error="yield", split="val2014"))
    caps = [o for o in out if isinstance(o, Caption)]
    bad = [o for o in out if isinstance(o, Malformed)]
    assert caps == [
        Caption(
            770337,
            391895,
            "COCO_val2014_000000391895",
            "COCO_val2014_000000391895.jpg",
            "A man with a red helmet on a small moped on a dirt road.",
            "val2014",
            (),
            640,
            360,
        ),
        Caption(
            775,
            522418,
            "COCO_val2014_000000522418",
            "COCO_val2014_000000522418.jpg",
            "A woman wearing a net on her head.",
            "val2014",
            (),
            640,
            480,
        ),
    ]
    assert [(m.unit, m.index, m.record_id, m.field) for m in bad] == [
        ("image", 2, 184613, "file_name"),
        ("annotation", 2, 776, "caption"),
        ("annotation", 3, 777, "image_id"),
        ("annotation", 4, 778, "image_id"),
        ("annotation", 5, None, "id"),
    ]
    assert "image 999 is not in 'images'" in bad[2].reason
    assert "image 184613 was rejected" in bad[3].reason
    # every annotation is either a caption or a rejection
    assert len(caps) + sum(m.unit == "annotation" for m in bad) == len(COCO["annotations"])


def test_coco_strict_names_the_annotation(tmp_path):
    data = dict(COCO, images=COCO["images"][:2])
    path = write(tmp_path, "captions_val2014.json", data)
    seen = []
    with pytest.raises(ReaderError) as info:
        for cap in iter_coco_captions(path):
            seen.append(cap.caption_id)
    assert seen == [770337, 775]
    assert str(info.value) == f"{path}: annotation 2 (id 776): field 'caption': empty"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"images": [], "annotations": [', "not a readable JSON file"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"images": []}', "field 'annotations': missing or not a list"),
    ],
)
def test_coco_file_level_errors_raise_in_both_modes(tmp_path, content, message):
    path = tmp_path / "captions.json"
    path.write_bytes(content)
    with pytest.raises(ReaderError, match=message):
        list(iter_coco_captions(path, on_error="yield"))


KARPATHY_COCO = {
    "images": [
        {"filepath": "val2014", "sentids": [770337, 771687], "filename":
         "COCO_val2014_000000391895.jpg", "imgid": 0, "split": "test", "sentences": [
             {"tokens": ["a", "man", "with", "a", "red", "helmet"], "raw":
              "A man with a red helmet.", "imgid": 0, "sentid": 770337},
             {"tokens": [], "raw": "", "imgid": 0, "sentid": 771687}],
         "cocoid": 391895},
        {"filepath": "train2014", "filename": "COCO_train2014_000000057870.jpg", "imgid": 1,
         "split": "restval", "sentences": [{"tokens": ["a", "table"], "raw": "A table.",
                                            "imgid": 1, "sentid": 787980}], "cocoid": 57870},
        {"filepath": "val2014", "imgid": 2, "split": "val", "sentences": [], "cocoid": 1},
    ],
    "dataset": "coco",
}  # fmt: skip


def test_karpathy_coco_lenient(tmp_path):
    path = write(tmp_path, "dataset_coco.json", KARPATHY_COCO)
    out = list(iter_karpathy_captions(path, on_error="yield"))
    assert out[0] == Caption(
        770337,
        391895,
        "COCO_val2014_000000391895",
        "val2014/COCO_val2014_000000391895.jpg",
        "A man with a red helmet.",
        "test",
        ("a", "man", "with", "a", "red", "helmet"),
    )
    assert isinstance(out[1], Malformed)
    assert (out[1].index, out[1].sub_index, out[1].record_id) == (0, 1, 391895)
    assert out[1].describe() == f"{path}: image 0 (id 391895): sentence 1: field 'raw': empty"
    assert out[2].split == "restval" and out[2].file_name.startswith("train2014/")
    assert isinstance(out[3], Malformed) and out[3].field == "filename" and out[3].index == 2
    assert len(out) == 4


def test_karpathy_split_filter_and_flickr_layout(tmp_path):
    flickr = {
        "images": [
            {"sentids": [0], "imgid": 0, "sentences": [{"tokens": ["two", "dogs"],
             "raw": "Two dogs.", "imgid": 0, "sentid": 0}], "split": "train",
             "filename": "1000092795.jpg"},
            {"sentids": [5], "imgid": 1, "sentences": [{"tokens": ["a", "cat"],
             "raw": "A cat.", "imgid": 1, "sentid": 5}], "split": "test",
             "filename": "10002456.jpg"},
        ],
        "dataset": "flickr30k",
    }  # fmt: skip
    path = write(tmp_path, "dataset_flickr30k.json", flickr)
    test = list(iter_karpathy_captions(path, splits={"test"}))
    assert [(c.image_id, c.image_key, c.file_name, c.caption_id) for c in test] == [
        (1, "10002456", "10002456.jpg", 5)
    ]
    assert len(list(iter_karpathy_captions(path))) == 2
    with pytest.raises(ReaderError, match=r"image 0 \(id 391895\): sentence 1: field 'raw'"):
        list(iter_karpathy_captions(write(tmp_path, "k.json", KARPATHY_COCO)))
