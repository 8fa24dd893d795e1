"""The whole LAIT job with its real models on a hostile little crawl, on three runners.

In process (FnApiRunner), every hostile input (a truncated WARC record, a PNG decompression bomb,
a zero-byte image, pages in undeclared legacy encodings and UTF-16 without a BOM, a page with no
images, a drawing and a text image) ends as a counted rejection or a correct pair. Then the
same job runs with ``--direct_running_mode=multi_processing`` (worker processes, inside a
private network namespace because its gRPC servers listen on all interfaces) and through Beam's
portable Job API (``PortableRunner`` -> Beam's own job service -> an external worker pool, the
path Flink, Spark and Dataflow take): both must give exactly the in-process pairs and rejects.
Every wait is bounded: a hang fails the test.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw, ImageFont
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline import lait

HOST = "http://hostile.msp.invalid/"
ENGLISH = ("We spent the whole afternoon at the harbour watching the fishing boats come home. "
           "The light was soft and the water was calm after the storm had passed.")  # fmt: skip
GERMAN = ("Wir haben den ganzen Nachmittag am Hafen verbracht und die Fischerboote beobachtet. "
          "Das Licht war weich und das Wasser war nach dem Sturm ruhig.")  # fmt: skip
NEEDS_UNSHARE = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
RUN_JOB = "import sys; from pipeline.lait import run; sys.exit(run(sys.argv[1:]))"
PORTABLE = r"""
import os, socket, subprocess, sys, time
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
job, pool = free_port(), free_port()
beam = "apache_beam.runners."
procs = [subprocess.Popen([sys.executable, "-m", beam + "portability.local_job_service_main",
                           "--port", str(job)]),
         subprocess.Popen([sys.executable, "-m", beam + "worker.worker_pool_main",
                           f"--service_port={pool}"])]
try:
    for port in (job, pool):
        deadline = time.time() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or any(p.poll() is not None for p in procs):
                    sys.exit(f"service on port {port} did not start")
                time.sleep(0.3)
    from pipeline.lait import run
    sys.exit(run(sys.argv[1:] + ["--runner=PortableRunner", f"--job_endpoint=localhost:{job}",
                                 "--environment_type=EXTERNAL",
                                 f"--environment_config=localhost:{pool}"]))
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
"""


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def text_image(w: int = 640, h: int = 480) -> bytes:
    """A JPEG of a page of typed text (what a text-image filter must catch)."""
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    words = ENGLISH.split()
    for k, y in enumerate(range(16, h - 24, 26)):
        line = " ".join(words[(k * 3 + i) % len(words)] for i in range(9))
        draw.text((16, y), line, fill=(20, 20, 20), font=ImageFont.load_default(size=18))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def html(body: str, lang_text: str = ENGLISH) -> str:
    return f"<html><head><title>Page</title></head><body><main><p>{lang_text}</p>{body}</main></body></html>"


def figure(src: str, caption: str) -> str:
    return f'<figure><img src="{src}" width="480" height="360"><figcaption>{caption}</figcaption></figure>'


def write_warc(path: Path, records: list[tuple[str, bytes, str]], cut: int = 0) -> None:
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    for url, payload, ctype in records:
        headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload),
                                                      http_headers=headers))  # fmt: skip
    data = buf.getvalue()
    path.write_bytes(data[: len(data) - cut] if cut else data)


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> Path:
    return write_crawl(tmp_path_factory.mktemp("hostile"))


def write_crawl(root: Path) -> Path:
    """Two WARC files in ``root``: every case of ``EXPECTED``, the second file cut short."""
    from corpora.sample.photos import load_photos
    from corpora.sample.scenes import make_scene

    photos = {photo.name: rec.jpeg for photo, rec in load_photos()}
    h, page = "text/html; charset=utf-8", "text/html"  # the second declares no charset
    cafe = html(figure("/i/astro.jpg", "A smiling astronaut beside a white helmet, on the café\u2019s wall"),
                "Our café\u2019s crème brûlée is the best in town \u2014 " + ENGLISH)  # fmt: skip
    records = [
        (HOST + "good.html", html(figure("/i/coffee.jpg", "An espresso in a red cup on a wooden table")).encode(), h),
        (HOST + "i/coffee.jpg", photos["coffee"], "image/jpeg"),
        (HOST + "cafe.html", cafe.encode("cp1252"), page),
        (HOST + "i/astro.jpg", photos["astronaut"], "image/jpeg"),
        (HOST + "utf16.html", html(figure("/i/rocket.jpg", "A rocket on the launch pad at night")).encode("utf-16-le"), page),
        (HOST + "i/rocket.jpg", photos["rocket"], "image/jpeg"),
        (HOST + "de.html", html(figure("/i/hund.jpg", "Ein Hund im Park"), GERMAN).encode("latin-1"), page),
        (HOST + "bomb.html", html(figure("/i/bomb.png", "A harbour at dawn with fishing boats")).encode(), h),
        (HOST + "i/bomb.png", png_bomb(), "image/png"),
        (HOST + "zero.html", html(figure("/i/zero.jpg", "An old stone bridge over a river")).encode(), h),
        (HOST + "i/zero.jpg", b"", "image/jpeg"),
        (HOST + "noimg.html", html("").encode(), h),
        (HOST + "drawing.html", html(figure("/i/scene.jpg", "A cartoon kitchen with a table and a cup")).encode(), h),
        (HOST + "i/scene.jpg", make_scene(0, 3, 1004).jpeg, "image/jpeg"),
        (HOST + "text.html", html(figure("/i/text.jpg", "Our quarterly report, page one of three")).encode(), h),
        (HOST + "i/text.jpg", text_image(), "image/jpeg"),
        (HOST + "china-a.html", html(figure("/i/china.jpg", "A temple on a hill above the lake in summer")).encode(), h),
        (HOST + "china-b.html", html(figure("/i/china.jpg", "Temple")).encode(), h),
        (HOST + "china-c.html", html(figure("/i/china.jpg", "Trees and a temple")).encode(), h),
        (HOST + "i/china.jpg", photos["china"], "image/jpeg"),
    ]  # fmt: skip
    write_warc(root / "crawl-0.warc.gz", records)
    write_warc(root / "crawl-1.warc.gz", [(HOST + "late.html", html("").encode(), h)] * 2, cut=150)
    return root


EXPECTED = {  # input id -> (step, reason prefix); "kept" for a kept pair
    "good.html i/coffee.jpg": ("kept", ""),
    "cafe.html i/astro.jpg": ("kept", ""),
    "utf16.html i/rocket.jpg": ("kept", ""),
    "china-a.html i/china.jpg": ("kept", ""),
    "de.html i/hund.jpg": ("pages", "language: de"),
    "bomb.html i/bomb.png": ("images", "decompression bomb"),
    "zero.html i/zero.jpg": ("images", "empty file"),
    "noimg.html": ("pages", "no images"),
    "late.html": ("pages", "no images"),  # the cut file's first record is whole
    "drawing.html i/scene.jpg": ("filters", "non-natural: graphic"),
    "text.html i/text.jpg": ("filters", "non-natural: non-photo classes"),
    "china-b.html i/china.jpg": ("text", "too short"),
    "china-c.html i/china.jpg": ("aggregate", "duplicate image"),
}


def outcomes(out: Path) -> tuple[dict[str, tuple], dict[str, tuple], dict]:
    """(kept pairs by input id, rejects by input id, manifest) with host names stripped."""
    short = lambda s: s.replace(HOST, "")  # noqa: E731
    pairs = {short(r["input_id"]): (r["image_id"], r["caption"], round(r["score"], 4),
                                    r["text_source"], round(r["graphic"], 4))
             for f in sorted(out.glob("pairs-*.parquet")) for r in pq.read_table(f).to_pylist()}  # fmt: skip
    rejects = {short(r["input_id"]): (r["step"], r["reason"])
               for f in out.glob("rejects-*.jsonl") for r in map(json.loads, f.open())}  # fmt: skip
    return pairs, rejects, json.loads((out / "manifest.json").read_text())


def job_argv(crawl: Path, out: Path) -> list[str]:
    return ["--input", str(crawl / "*.warc.gz"), "--out", str(out), "--shard-size", "2"]


@pytest.fixture(scope="module")
def in_process(crawl, tmp_path_factory) -> tuple[dict, dict, dict]:
    out = tmp_path_factory.mktemp("in-process")
    assert lait.run(job_argv(crawl, out)) == 0
    return outcomes(out)


def test_hostile_inputs_are_counted_rejections(in_process):
    pairs, rejects, manifest = in_process
    truncated = [k for k, (step, reason) in rejects.items() if "truncated" in reason]
    assert len(truncated) == 1 and rejects[truncated[0]][0] == "pages"  # the cut record
    got = {k: ("kept", "") for k in pairs} | {k: (s, r) for k, (s, r) in rejects.items()}
    got.pop(truncated[0])
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in EXPECTED.items()}
    for key, (_, prefix) in EXPECTED.items():
        assert got[key][1].startswith(prefix), (key, got[key])
    assert manifest["inputs"] == len(EXPECTED) + 1 == manifest["kept"] + manifest["rejected"]
    assert manifest["kept"] == len(pairs) == 4 and manifest["rejected"] == len(rejects)
    steps = manifest["steps"]
    assert steps["pages"]["rejected"] == 4 and steps["images"]["rejected"] == 2
    assert steps["filters"]["rejected"] == 2 and steps["filters"]["out"] == 5  # china twice
    # undeclared cp1252 and BOM-less UTF-16 pages were decoded, not mangled
    assert pairs["cafe.html i/astro.jpg"][1].endswith("on the café\u2019s wall")
    assert pairs["utf16.html i/rocket.jpg"][1] == "A rocket on the launch pad at night"
    assert manifest["models"]["classifier"].startswith("efficientnet-lite0")


def _run_bounded(cmd: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout kill that group and fail."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{cmd[:3]} did not finish in {timeout} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-5000:]
    return subprocess.CompletedProcess(cmd, proc.returncode, output)


def in_netns(*cmd: str) -> list[str]:
    """``cmd`` inside a private network namespace with only loopback up."""
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *cmd]


def _same_as_in_process(out: Path, in_process: tuple) -> None:
    pairs, rejects, manifest = outcomes(out)
    want_pairs, want_rejects, want_manifest = in_process
    assert pairs == want_pairs
    assert rejects == want_rejects
    for key in ("inputs", "kept", "rejected", "steps"):
        assert manifest[key] == want_manifest[key], key


@NEEDS_UNSHARE
def test_multi_processing_gives_the_same_pairs(crawl, in_process, tmp_path):
    out = tmp_path / "mp"
    argv = [*job_argv(crawl, out), "--runner=FnApiRunner", "--direct_running_mode=multi_processing",
            "--direct_num_workers=2"]  # fmt: skip
    _run_bounded(in_netns(sys.executable, "-c", RUN_JOB, *argv), timeout=300)
    _same_as_in_process(out, in_process)


@NEEDS_UNSHARE
def test_portable_runner_gives_the_same_pairs(crawl, in_process, tmp_path):
    out = tmp_path / "portable"
    _run_bounded(in_netns(sys.executable, "-c", PORTABLE, *job_argv(crawl, out)), timeout=300)
    _same_as_in_process(out, in_process)
