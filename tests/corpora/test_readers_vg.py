"""Visual Genome readers on hand-written files with the real files' field layout."""

from __future__ import annotations

import gzip
import json

import pytest

from corpora.readers import (
    JsonStreamError,
    Malformed,
    ReaderError,
    VGImage,
    VGImageObjects,
    VGImageRegions,
    VGImageRelationships,
    iter_vg_attributes,
    iter_vg_images,
    iter_vg_objects,
    iter_vg_regions,
    iter_vg_relationships,
)

VG = "https://cs.stanford.edu/people/rak248"
IMAGE_DATA = [
    {"width": 800, "url": f"{VG}/VG_100K/1.jpg", "height": 600, "image_id": 1,
     "coco_id": None, "flickr_id": None},
    {"width": 800, "url": f"{VG}/VG_100K_2/10.jpg", "height": 533, "id": 10,
     "coco_id": 139, "flickr_id": 6315},
]  # fmt: skip


def region(rid, image_id, phrase, x=10, y=20, w=30, h=40):
    return {"region_id": rid, "width": w, "height": h, "image_id": image_id,
            "phrase": phrase, "y": y, "x": x}  # fmt: skip


REGIONS = [
    {"regions": [region(1382, 1, "the clock is green in colour"),
                 region(1383, 1, "shade is along the street ")], "id": 1},
    {"regions": [region(2001, 2, "man riding a horse"),
                 {"region_id": 2002, "width": 5, "height": 5, "image_id": 2, "y": 0, "x": 0},
                 region(2003, 2, "   ")], "id": 2},
    {"regions": [], "id": 3},
    {"regions": [region(4001, 4, "a dog")], "id": None},
    {"id": 5},
]  # fmt: skip


def write(tmp_path, name, data, gz=False):
    path = tmp_path / name
    raw = json.dumps(data).encode()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_images(tmp_path, gz):
    path = write(tmp_path, "image_data.json" + (".gz" if gz else ""), IMAGE_DATA, gz)
    got = list(iter_vg_images(path, chunk_chars=16))
    assert got == [
        VGImage(1, f"{VG}/VG_100K/1.jpg", 800, 600, None, None),
        VGImage(10, f"{VG}/VG_100K_2/10.jpg", 800, 533, 139, 6315),
    ]
    assert [g.key for g in got] == ["1", "10"]


def test_image_with_string_width_is_rejected(tmp_path):
    bad = [dict(IMAGE_DATA[0], width="800")]
    path = write(tmp_path, "image_data.json", bad)
    with pytest.raises(ReaderError, match=r"image_data.json: element 0 \(id 1\): field 'width'"):
        list(iter_vg_images(path))


def test_regions_lenient_mode_counts_every_input(tmp_path):
    path = write(tmp_path, "region_descriptions.json", REGIONS)
    out = list(iter_vg_regions(path, on_error="yield"))
    records = [o for o in out if isinstance(o, VGImageRegions)]
    rejects = [o for o in out if isinstance(o, Malformed)]

    assert [r.image_id for r in records] == [1, 2, 3]
    assert [g.phrase for g in records[0].regions] == [
        "the clock is green in colour",
        "shade is along the street",
    ]
    assert (records[0].regions[0].x, records[0].regions[0].height) == (10, 40)
    assert [g.region_id for g in records[1].regions] == [2001]  # two bad regions dropped
    assert records[2].regions == ()  # an image without regions is a record, not an error

    by_field = {(m.index, m.sub_index): m for m in rejects}
    assert set(by_field) == {(1, 1), (1, 2), (3, None), (4, None)}
    assert by_field[1, 1].field == "phrase" and by_field[1, 1].record_id == 2
    assert "item 1 (region_id 2002): field 'phrase': missing" in by_field[1, 1].reason
    assert "field 'phrase': empty" in by_field[1, 2].reason
    assert by_field[3, None].field == "id" and by_field[3, None].record_id is None
    assert by_field[4, None].field == "regions" and by_field[4, None].record_id == 5
    # whole elements: 5 = 3 records + 2 element rejections; regions: 7 = 4 kept + 2 + 1 lost
    assert len(records) + sum(m.sub_index is None for m in rejects) == len(REGIONS)
    # the item rejections of an image come before the image's record
    assert out.index(by_field[1, 2]) < out.index(records[1])


def test_regions_strict_mode_names_file_element_id_and_field(tmp_path):
    path = write(tmp_path, "region_descriptions.json", REGIONS)
    seen = []
    with pytest.raises(ReaderError) as info:
        for rec in iter_vg_regions(path):
            seen.append(rec.image_id)
    assert seen == [1]
    assert str(info.value) == (
        f"{path}: element 1 (id 2): item 1 (region_id 2002): field 'phrase': missing"
    )


def test_null_image_id_strict(tmp_path):
    path = write(tmp_path, "r.json", [REGIONS[3]])
    with pytest.raises(
        ReaderError, match=r"r.json: element 0: field 'id': expected an integer, got None"
    ):
        list(iter_vg_regions(path))


def test_truncated_array_lenient_and_strict(tmp_path):
    text = json.dumps(REGIONS[:3])
    cut = text.index('"id": 3')  # inside the third element
    path = tmp_path / "region_descriptions.json"
    path.write_text(text[:cut])
    out = list(iter_vg_regions(path, on_error="yield", chunk_chars=32))
    assert [type(o).__name__ for o in out] == [
        "VGImageRegions",
        "Malformed",
        "Malformed",
        "VGImageRegions",
        "Malformed",
    ]
    last = out[-1]
    assert last.index == 2 and last.record_id is None and "truncated file" in last.reason
    text = json.dumps([REGIONS[0], REGIONS[2]])
    path.write_text(text[: text.index('"id": 3')])
    seen = []
    with pytest.raises(JsonStreamError, match=r"region_descriptions.json: element 1: truncated"):
        for rec in iter_vg_regions(path, on_error="raise", chunk_chars=32):
            seen.append(rec.image_id)
    assert seen == [1]


def test_not_an_array_always_raises(tmp_path):
    path = write(tmp_path, "r.json", {"regions": []})
    with pytest.raises(JsonStreamError, match="not a JSON array"):
        list(iter_vg_regions(path, on_error="yield"))


def obj(oid, names, x=0, key="names", **extra):
    return {"synsets": ["tree.n.01"], "h": 50, "object_id": oid, key: names, "w": 60,
            "y": 5, "x": x, "merged_object_ids": [], **extra}  # fmt: skip


def test_objects_names_and_old_name_field(tmp_path):
    data = [
        {"image_id": 1, "objects": [obj(1058549, ["trees"]), obj(1058534, "man", key="name")],
         "image_url": f"{VG}/VG_100K/1.jpg"},
        {"image_id": 2, "objects": [{"object_id": 7, "x": 1, "y": 1, "w": 1, "h": 1}]},
    ]  # fmt: skip
    path = write(tmp_path, "objects.json", data)
    out = list(iter_vg_objects(path, on_error="yield"))
    first = out[0]
    assert isinstance(first, VGImageObjects) and first.key == "1"
    assert [o.names for o in first.objects] == [("trees",), ("man",)]
    assert first.objects[0].synsets == ("tree.n.01",)
    assert first.objects[0].attributes == ()
    assert isinstance(out[1], Malformed) and out[1].field == "names"
    assert out[2] == VGImageObjects(2, ())


def test_attributes_file(tmp_path):
    data = [
        {"image_id": 1, "attributes": [obj(1, ["clock"], attributes=["green", " tall "]),
                                       obj(2, ["shade"])]},
        {"image_id": 2, "attributes": [obj(3, ["sign"], attributes="red")]},
    ]  # fmt: skip
    path = write(tmp_path, "attributes.json", data)
    out = list(iter_vg_attributes(path, on_error="yield"))
    assert [o.attributes for o in out[0].objects] == [("green", "tall"), ()]
    assert isinstance(out[1], Malformed) and out[1].field == "attributes"
    assert "item 0 (object_id 3)" in out[1].reason
    assert out[2].objects == ()


def test_relationships(tmp_path):
    subject = obj(1058529, "shade", key="name")
    data = [
        {"relationships": [
            {"predicate": "ON ", "object": obj(5046, ["street"]), "relationship_id": 15927,
             "synsets": ["along.r.01"], "subject": subject},
            {"predicate": "wears", "relationship_id": 15928, "synsets": [], "subject": subject},
            {"predicate": "has", "relationship_id": 15929, "synsets": [], "subject": subject,
             "object": dict(obj(9, ["hat"]), x=None)},
        ], "image_id": 1},
    ]  # fmt: skip
    path = write(tmp_path, "relationships.json", data)
    out = list(iter_vg_relationships(path, on_error="yield"))
    assert [m.field for m in out[:2]] == ["object", "object.x"]
    rec = out[2]
    assert isinstance(rec, VGImageRelationships) and len(rec.relationships) == 1
    rel = rec.relationships[0]
    assert (rel.subject.names, rel.predicate, rel.object.names) == (("shade",), "ON", ("street",))
    assert rel.synsets == ("along.r.01",) and rel.object.object_id == 5046


def test_on_error_is_checked_at_call_time(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        iter_vg_regions(tmp_path / "missing.json", on_error="skip")


def test_truncated_gzip_file(tmp_path):
    data = [{"id": i, "regions": [region(i, i, f"phrase {i}")]} for i in range(3000)]
    packed = gzip.compress(json.dumps(data).encode())
    path = tmp_path / "region_descriptions.json.gz"
    path.write_bytes(packed[: len(packed) // 2])
    out = list(iter_vg_regions(path, on_error="yield", chunk_chars=4096))
    records, last = out[:-1], out[-1]
    assert [r.image_id for r in records] == list(range(len(records))) and len(records) > 100
    assert isinstance(last, Malformed) and last.index == len(records)
    assert "truncated or damaged gzip file" in last.reason
