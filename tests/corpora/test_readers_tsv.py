"""Conceptual-Captions-style TSV reader."""

from __future__ import annotations

import gzip

import pytest

from corpora.readers import Malformed, ReaderError, TsvCaption, iter_caption_tsv

LINES = [
    b"a very typical bus station\thttp://lh6.ggpht.com/-IvRtNLNcG8o/s1600/bus-station.jpg\r\n",
    b"sierra looked stunning in this top\thttps://i.pinimg.com/736x/e1/2c/sierra.JPG?w=300\n",
    b"only one field\n",
    b"\thttp://host/empty-caption.jpg\n",
    b"a caption with no url\t  \n",
    b"three\tfields\there\n",
    b"caf\xe9 latin-1 bytes\thttp://host/cafe.jpg\n",
    b"images/local path works\timages/1001.jpg\n",
    b"a url without a file name\thttps://host/?img=3\n",
    b"\n",
]


@pytest.mark.parametrize("gz", [False, True])
def test_lenient_reads_every_line(tmp_path, gz):
    path = tmp_path / ("cc.tsv.gz" if gz else "cc.tsv")
    raw = b"".join(LINES)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = list(iter_caption_tsv(path, on_error="yield"))
    assert len(out) == len(LINES)  # one output per line: inputs = kept + rejected
    kept = [o for o in out if isinstance(o, TsvCaption)]
    assert kept == [
        TsvCaption(
            1,
            "a very typical bus station",
            "http://lh6.ggpht.com/-IvRtNLNcG8o/s1600/bus-station.jpg",
            "bus-station",
        ),
        TsvCaption(
            2,
            "sierra looked stunning in this top",
            "https://i.pinimg.com/736x/e1/2c/sierra.JPG?w=300",
            "sierra",
        ),
        TsvCaption(8, "images/local path works", "images/1001.jpg", "1001"),
        TsvCaption(9, "a url without a file name", "https://host/?img=3", None),
    ]
    bad = {o.index: o for o in out if isinstance(o, Malformed)}
    assert sorted(bad) == [3, 4, 5, 6, 7, 10]
    assert all(m.unit == "line" for m in bad.values())
    assert "got 1" in bad[3].reason and "got 3" in bad[6].reason
    assert bad[4].field == "caption" and bad[5].field == "url"
    assert "not UTF-8" in bad[7].reason
    assert bad[4].to_reject("cc")["input_id"] == f"{path.name}:line4"


def test_strict_names_file_and_line(tmp_path):
    path = tmp_path / "cc.tsv"
    path.write_bytes(b"".join(LINES))
    seen = []
    with pytest.raises(ReaderError) as info:
        for rec in iter_caption_tsv(path):
            seen.append(rec.line)
    assert seen == [1, 2]
    assert str(info.value) == (
        f"{path}: line 3: expected 2 tab-separated fields (caption, url), got 1"
    )


def test_header_detection_and_override(tmp_path):
    path = tmp_path / "with_header.tsv"
    path.write_bytes(b"\xef\xbb\xbfcaption\turl\nA dog.\thttp://h/d.jpg\n")
    assert [(r.line, r.caption) for r in iter_caption_tsv(path)] == [(2, "A dog.")]
    as_data = list(iter_caption_tsv(path, header=False))
    assert [(r.line, r.caption, r.image_key) for r in as_data] == [
        (1, "caption", "url"),
        (2, "A dog.", "d"),
    ]
    plain = tmp_path / "plain.tsv"
    plain.write_bytes(b"A cat.\thttp://h/c.jpg\nA dog.\thttp://h/d.jpg\n")
    assert [r.line for r in iter_caption_tsv(plain)] == [1, 2]  # no header detected
    assert [r.line for r in iter_caption_tsv(plain, header=True)] == [2]


def test_truncated_gzip_ends_with_a_rejection(tmp_path):
    lines = b"".join(b"caption %d\thttp://host/%d.jpg\n" % (i, i) for i in range(3000))
    packed = gzip.compress(lines)
    path = tmp_path / "cc.tsv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    out = list(iter_caption_tsv(path, on_error="yield"))
    kept, last = out[:-1], out[-1]
    assert all(isinstance(r, TsvCaption) for r in kept) and len(kept) > 100
    assert [r.image_key for r in kept] == [str(i) for i in range(len(kept))]
    assert isinstance(last, Malformed) and last.index == len(kept) + 1
    assert "truncated or damaged gzip file" in last.reason
    with pytest.raises(ReaderError, match=rf"cc.tsv.gz: line {len(kept) + 1}: truncated"):
        list(iter_caption_tsv(path))
