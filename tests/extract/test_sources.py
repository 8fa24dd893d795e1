"""Image sources (folder, shards, list file), decoding, rejects, and the given-boxes files."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from extract.given import GivenBoxesError, load_given_boxes
from extract.sources import (
    PreparedStream,
    Ready,
    Rejected,
    Skipped,
    count_inputs,
    iter_source,
    source_kind,
)

PRE = {"min_size": 32, "max_size": 64, "mode": "caffe"}


def _jpeg(size=(40, 30), color=(200, 10, 10), exif=None) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", **({"exif": exif} if exif else {}))
    return buf.getvalue()


def _items(src, **kwargs):
    return list(PreparedStream(src, preprocess_kwargs=PRE, **kwargs))


def test_folder_source_keys_are_stems(image_dir):
    (image_dir / "notes.txt").write_text("not an image")
    assert source_kind(image_dir) == "folder" and count_inputs(image_dir) == 3
    items = _items(image_dir)
    assert [i.key for i in items] == ["img1", "img2", "img3"]
    assert all(isinstance(i, Ready) for i in items)
    first = items[0].image
    assert (first.width, first.height) == (64, 48) and first.input_size == (32, 43)


def test_list_file_source_resolves_relative_paths(image_dir, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# images\nimages/img2.png\n\n" + str(image_dir / "img1.jpg") + "\nnope.jpg\n"
    )
    assert source_kind(listing) == "list" and count_inputs(listing) == 3
    items = _items(listing)
    assert [type(i).__name__ for i in items] == ["Ready", "Ready", "Rejected"]
    assert items[2].step == "decode" and "nope.jpg" in items[2].reason


def test_shard_source_reads_lait_samples_and_rejects_bad_ones(tmp_path):
    shard = tmp_path / "images-000000.tar"
    with wds.TarWriter(str(shard)) as sink:
        sink.write({"__key__": "a1b2", "jpg": _jpeg(), "json": json.dumps({"url": "u"}).encode()})
        sink.write({"__key__": "c3d4", "json": b"{}"})  # no image member
        sink.write({"__key__": "e5f6", "png": b"garbage", "json": b"{}"})
    for src in (shard, tmp_path, str(tmp_path / "images-{000000..000000}.tar")):
        assert source_kind(src) == "shards"
        assert [i.key for i in iter_source(src)] == ["a1b2", "c3d4", "e5f6"]
    items = _items(shard)
    assert isinstance(items[0], Ready) and items[0].image.width == 40
    assert (items[1].step, items[2].step) == ("source", "decode")
    assert "no image member" in items[1].reason
    assert count_inputs(shard) is None


def test_corrupt_duplicate_and_badly_named_inputs_are_rejects(image_dir):
    (image_dir / "img1.png").write_bytes((image_dir / "img2.png").read_bytes())  # same key
    (image_dir / "bad name.jpg").write_bytes(_jpeg())
    (image_dir / "broken.jpg").write_bytes(_jpeg()[:200])  # truncated
    items = {(i.key, type(i).__name__): i for i in _items(image_dir)}
    assert items[("img1", "Rejected")].reason.startswith("duplicate key")
    assert items[("bad name", "Rejected")].step == "source"
    assert items[("broken", "Rejected")].step == "decode"
    assert sum(isinstance(i, Ready) for i in items.values()) == 3


def test_skip_limit_and_given_boxes(image_dir):
    given = {"img1": np.array([[-5, 2, 100, 40]], np.float32), "img2": "no boxes given"}
    items = _items(image_dir, skip_keys={"img3"}, given=given)
    assert isinstance(items[0], Ready)
    np.testing.assert_array_equal(items[0].boxes, [[0, 2, 64, 40]])  # clipped to 64x48
    assert isinstance(items[1], Rejected) and items[1].step == "given_boxes"
    assert isinstance(items[2], Skipped)
    assert [i.key for i in _items(image_dir, limit=2)] == ["img1", "img2"]


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    (tmp_path / "rot.jpg").write_bytes(_jpeg(size=(40, 30), exif=exif.tobytes()))
    (item,) = _items(tmp_path)
    assert (item.image.width, item.image.height) == (30, 40)


def test_given_boxes_jsonl_and_vg_objects(tmp_path):
    jsonl = tmp_path / "boxes.jsonl"
    jsonl.write_text(
        '{"key": "1001", "boxes": [[1, 2, 30, 40], [0, 0, 5, 5]]}\n\n'
        '{"key": 7, "boxes": [[5, 5, 1, 9]]}\n{"key": "8", "boxes": []}\n'
    )
    got = load_given_boxes(jsonl)
    np.testing.assert_array_equal(got["1001"], [[1, 2, 30, 40], [0, 0, 5, 5]])
    assert got["1001"].dtype == np.float32
    assert "x2 < x1" in got["7"] and got["8"] == "no boxes given for this image"
    vg = tmp_path / "objects.json"
    objects = [{"x": 10, "y": 20, "w": 30, "h": 5, "names": ["man"]}]
    vg.write_text(json.dumps([{"image_id": 1001, "objects": objects}]))
    np.testing.assert_array_equal(load_given_boxes(vg)["1001"], [[10, 20, 40, 25]])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"key": "1", "boxes": [[0, 0, 1, 1]]}\n{oops}\n', r"boxes.txt:2: not JSON"),
        ('{"key": "1", "boxes": []}\n{"key": "1", "boxes": []}\n', "appears twice"),
        ('{"id": "1"}\n', "expected an object with 'key' and 'boxes'"),
        ('[{"image_id": 1, "objects": [{"x": 1}]}]', "objects need x, y, w, h"),
        ("key,boxes\n", "neither JSON Lines"),
    ],
)
def test_malformed_given_boxes_files_fail_with_the_place(tmp_path, text, match):
    path = tmp_path / "boxes.txt"
    path.write_text(text)
    with pytest.raises(GivenBoxesError, match=match):
        load_given_boxes(path)
