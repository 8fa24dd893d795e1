"""Saved HTML pages from a folder and the charset helpers."""

from __future__ import annotations

import pytest

from corpora.readers import (
    HtmlFile,
    charset_from_content_type,
    iter_html_files,
    sniff_meta_charset,
)


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        (b'<html><head><meta charset="UTF-8"><title>x</title>', "utf-8"),
        (b"<html><head><META CHARSET=windows-1252>", "windows-1252"),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">',
            "iso-8859-1",
        ),
        (b"<meta content='text/html;charset=Shift_JIS' http-equiv='content-type'>", "shift_jis"),
        (b'<meta name="description" content="no charset here"><p>charset=utf-8</p>', None),
        (b"\xef\xbb\xbf<meta charset=latin1>", "utf-8"),  # the byte order mark wins
        (b"\xff\xfe<\x00h\x00", "utf-16-le"),
        (b"<!--" + b"x" * 5000 + b'--><meta charset="koi8-r">', None),  # past the pre-scan
        (b"", None),
    ],
)
def test_sniff_meta_charset(data, charset):
    assert sniff_meta_charset(data) == charset


@pytest.mark.parametrize(
    ("value", "charset"),
    [
        ("text/html; charset=UTF-8", "utf-8"),
        ('text/html; Charset="iso-8859-1"', "iso-8859-1"),
        ("text/html;foo=bar; charset=gbk ; x=y", "gbk"),
        ("text/html", None),
        ("text/html; notcharset=x", None),
        (None, None),
    ],
)
def test_charset_from_content_type(value, charset):
    assert charset_from_content_type(value) == charset


def test_iter_html_files(tmp_path):
    (tmp_path / "site" / "deep").mkdir(parents=True)
    a = tmp_path / "site" / "a.html"
    a.write_bytes(b'<html><head><meta charset="utf-8"></head><body>caf\xc3\xa9</body></html>')
    b = tmp_path / "site" / "deep" / "b.htm"
    b.write_bytes(b"<html><body>no declaration</body></html>")
    (tmp_path / "site" / "notes.txt").write_text("not a page")
    out = list(iter_html_files(tmp_path / "site"))
    assert out == [
        HtmlFile(str(a), a.resolve().as_uri(), a.read_bytes(), "utf-8"),
        HtmlFile(str(b), b.resolve().as_uri(), b.read_bytes(), None),
    ]
    assert [f.path for f in iter_html_files(tmp_path / "site", "*.html")] == [str(a)]
    with pytest.raises(FileNotFoundError, match="HTML folder not found"):
        iter_html_files(tmp_path / "nowhere")
