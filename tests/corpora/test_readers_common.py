"""image_key, the reject record, and the streaming JSON array parser."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from corpora.readers import JsonStreamError, Malformed, ReaderError, image_key, iter_json_array
from corpora.readers.common import check_on_error, reject


@pytest.mark.parametrize(
    ("ref", "key"),
    [
        ("images/1001.jpg", "1001"),
        ("1001.jpg", "1001"),
        ("https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg", "1"),
        ("http://host/a%20b.png?w=300#top", "a b"),
        ("val2014/COCO_val2014_000000391895.jpg", "COCO_val2014_000000391895"),
        ("C:\\data\\img\\7.jpeg", "7"),
        ("noext", "noext"),
        (Path("shards/x/42.webp"), "42"),
    ],
)
def test_image_key_is_the_file_stem(ref, key):
    assert image_key(ref) == key


@pytest.mark.parametrize("ref", ["", "http://host/dir/", "images/"])
def test_image_key_without_file_name_raises(ref):
    with pytest.raises(ValueError, match="no file name"):
        image_key(ref)


def test_malformed_message_and_reject_row():
    bad = Malformed(
        "regions.json", 3, 17, "item 1 (region_id 9): field 'phrase': missing", sub_index=1
    )
    assert bad.describe() == (
        "regions.json: element 3 (id 17): item 1 (region_id 9): field 'phrase': missing"
    )
    assert bad.to_reject("phrases") == {
        "input_id": "17/1",
        "step": "phrases",
        "reason": bad.describe(),
    }
    anon = Malformed("/data/cc.tsv", 12, None, "field 'url': empty", unit="line")
    assert anon.input_id == "cc.tsv:line12"
    assert reject(anon, "yield") is anon
    with pytest.raises(ReaderError, match=r"cc.tsv: line 12: field 'url': empty") as info:
        reject(anon, "raise")
    assert info.value.malformed is anon
    with pytest.raises(ValueError, match="on_error"):
        check_on_error("ignore")


# Elements chosen to put chunk boundaries inside strings, escapes, numbers and literals.
ELEMENTS = [
    {"id": i, "phrase": 'a "quoted" caf\u00e9 \\ ' * (i % 7), "xs": [1.5e3, -2, True, None]}
    for i in range(120)
] + [123456789, "tail \u2603", [], {}, False, None, -0.25]


@pytest.mark.parametrize("chunk", [1, 3, 17, 1 << 20])
def test_json_array_streams_every_element(chunk):
    text = json.dumps(ELEMENTS, indent=1)
    got = list(iter_json_array(io.StringIO(text), chunk_chars=chunk))
    assert [i for i, _ in got] == list(range(len(ELEMENTS)))
    assert [v for _, v in got] == ELEMENTS


def test_json_array_reads_gzip_and_bom(tmp_path):
    plain = tmp_path / "a.json"
    plain.write_bytes(b"\xef\xbb\xbf" + json.dumps(ELEMENTS[:5]).encode())
    packed = tmp_path / "a.json.gz"
    packed.write_bytes(gzip.compress(json.dumps(ELEMENTS[:5]).encode()))
    assert [v for _, v in iter_json_array(plain)] == ELEMENTS[:5]
    assert [v for _, v in iter_json_array(packed, chunk_chars=8)] == ELEMENTS[:5]
    (tmp_path / "empty.json").write_text(" [ ] \n")
    assert list(iter_json_array(tmp_path / "empty.json")) == []


def test_truncation_anywhere_is_reported_with_the_element_index():
    text = json.dumps(ELEMENTS[:40])
    for cut in range(2, len(text) - 1, 37):
        seen = []
        with pytest.raises(JsonStreamError, match="truncated file") as info:
            for _, value in iter_json_array(
                io.StringIO(text[:cut]), name="cut.json", chunk_chars=64
            ):
                seen.append(value)
        assert seen == ELEMENTS[: len(seen)]  # complete elements come through intact
        assert json.dumps(seen)[:-1] in text[:cut]
        assert info.value.index == len(seen), cut  # the error names the first missing element
        assert str(info.value).startswith(f"cut.json: element {len(seen)}: ")


def test_truncated_after_an_element_names_the_next_index():
    text = json.dumps([{"id": 1}, {"id": 2}])[:-1]  # drop the closing bracket
    seen = []
    with pytest.raises(JsonStreamError) as info:
        for _, value in iter_json_array(io.StringIO(text), name="r.json"):
            seen.append(value["id"])
    assert seen == [1, 2]
    assert info.value.index == 2
    assert "array is not closed after element 1" in str(info.value)


def test_invalid_json_is_reported_without_reading_the_rest():
    good = json.dumps([{"id": i, "pad": "x" * 100} for i in range(20000)])  # ~2.4 MB
    broken = '[{"id": 0}, {"id": 1, "phrase": tru}, ' + good[1:]
    stream = io.StringIO(broken)
    with pytest.raises(JsonStreamError, match=r"element 1: invalid JSON") as info:
        list(iter_json_array(stream, name="b.json", chunk_chars=4096))
    assert info.value.index == 1
    assert stream.tell() <= 2 * 4096  # stopped at the error, not at the end of the file


@pytest.mark.parametrize(
    ("text", "index", "message"),
    [
        ("", None, "not a JSON array \\(empty file\\)"),
        ('{"images": []}', None, "not a JSON array"),
        ("[1, 2,]", 2, "trailing comma"),
        ("[1 2]", 1, "expected ',' or ']'"),
        ("[1, 2] [3]", 2, "data after the end of the array"),
    ],
)
def test_structural_errors(text, index, message):
    with pytest.raises(JsonStreamError, match=message) as info:
        list(iter_json_array(io.StringIO(text)))
    assert info.value.index == index


def test_oversized_element_is_refused():
    text = json.dumps([{"a": "x" * 5000}])
    with pytest.raises(JsonStreamError, match="larger than max_element_chars=1000"):
        list(iter_json_array(io.StringIO(text), chunk_chars=100, max_element_chars=1000))
