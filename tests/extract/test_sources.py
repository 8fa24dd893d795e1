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


def _hostile_folder(tmp_path):
    """Inputs that break naive decoders, plus the pixel each decodable one must yield."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "trunc.jpg").write_bytes(_jpeg(size=(64, 48))[:300])
    Image.new("1", (10_000, 9_000)).save(folder / "bomb.png")  # 90 Mpx in a ~10 kB file
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(folder / "cmyk.jpg")  # red in CMYK
    ramp = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "gray16.png")  # 16-bit grayscale, 0..64491
    frames = [Image.new("RGB", (32, 24), c) for c in ((0, 0, 255), (255, 255, 0))]
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:], duration=50)
    frames[0].save(folder / "apng.png", save_all=True, append_images=frames[1:], duration=50)
    Image.new("RGBA", (30, 20), (0, 200, 0, 0)).save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 270 degrees when displayed
    (folder / "rotated.jpg").write_bytes(_jpeg(size=(60, 20), exif=exif.tobytes()))
    return folder


def test_hostile_images_are_rejected_with_a_reason_or_decoded_right(tmp_path):
    from extract.sources import SourceItem, decode_image

    folder = _hostile_folder(tmp_path)
    items = {i.key: i for i in _items(folder)}
    rejected = {k: i.reason for k, i in items.items() if isinstance(i, Rejected)}
    assert sorted(rejected) == ["bomb", "trunc", "zero"]
    assert "decompression bomb" in rejected["bomb"] and "90000000 pixels" in rejected["bomb"]
    assert "UnidentifiedImageError" in rejected["zero"] and "truncated" in rejected["trunc"].lower()

    def pixels(name: str) -> np.ndarray:
        return np.asarray(decode_image(SourceItem(name, path=folder / name)), dtype=int)

    assert np.abs(pixels("cmyk.jpg")[15, 20] - (255, 0, 0)).max() <= 3
    gray = pixels("gray16.png")[:, :, 0]
    assert gray[0, 0] == 0 and 245 <= gray[-1, -1] <= 255  # scaled, not clipped to white
    lower = decode_image(SourceItem("cmyk", path=folder / "cmyk.jpg"), max_pixels=1200)
    assert lower.size == (40, 30)
    with pytest.raises(ValueError, match="decompression bomb: 64x48 = 3072 pixels"):
        decode_image(SourceItem("gray16", path=folder / "gray16.png"), max_pixels=3000)
    assert np.all(np.diff(gray.flatten()) >= 0) and len(np.unique(gray)) > 200
    assert np.abs(pixels("anim.webp")[5, 5] - (0, 0, 255)).max() <= 8  # first frame (lossy)
    np.testing.assert_array_equal(pixels("apng.png")[5, 5], (0, 0, 255))
    np.testing.assert_array_equal(pixels("alpha.png")[5, 5], (0, 200, 0))  # alpha dropped
    assert (items["rotated"].image.width, items["rotated"].image.height) == (20, 60)


def test_a_job_over_hostile_images_finishes_and_accounts_for_each(tmp_path, test_detector):
    from corpora.schema import FeatureSample
    from corpora.shards import ShardIndex
    from extract.run import extract

    folder = _hostile_folder(tmp_path)
    out = tmp_path / "out"
    manifest = extract(
        folder, out, preset=test_detector.preset, detector=test_detector, progress=False
    )
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (9, 6, 3)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["input_id"] for r in rejects) == ["bomb", "trunc", "zero"]
    assert all(r["step"] == "decode" and r["reason"] for r in rejects)
    index = ShardIndex(out, "features")
    rotated = FeatureSample.from_wds(index.get("rotated"))
    assert (rotated.info["image_w"], rotated.info["image_h"]) == (20, 60)
    assert rotated.boxes[:, 2].max() <= 20 + 1e-3 and rotated.boxes[:, 3].max() <= 60 + 1e-3
