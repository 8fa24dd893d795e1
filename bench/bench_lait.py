"""LAIT job: pairs per second on Beam's in-process runner (1 and 2 workers) against a plain loop.

    python bench/bench_lait.py                    # 160 pages in 8 WARC files
    python bench/bench_lait.py --pages 48         # quicker

Data: a crawl written here, ``--pages`` English pages, each showing one photo and a site logo
(the logo is rejected as not dominant). The photos are the packaged ones of the sample corpus
(``corpora.sample.photos``), each page's copy randomly cropped, flipped and re-encoded, so every
image is distinct (its own content hash: the models see each once) and natural (it passes the
filters). Captions are the photos' own five, each used at most five times (none is "shared").

Set-ups, each in a fresh process, all with the job's default filters and relevance model:

1. **loop** (the peer): the job's own per-record code (the DoFns' ``setup``/``process`` of every
   step, the same batch sizes) called in a plain Python loop, timed by phase: *parsing* (WARC
   reading, page decoding, DOM, language, text cleaning), *decoding* (image decoding and
   normalisation), *models* (the image models and the relevance model, including loading them
   and decoding pixels for them), *rest* (aggregation, Parquet and shard writing);
2. **beam-1**: ``msp pipeline lait`` with ``--runner=FnApiRunner`` (one worker);
3. **beam-2**: the same with ``--direct_running_mode=multi_processing --direct_num_workers=2``,
   inside a private network namespace (``unshare -rn``, its gRPC servers listen on every
   interface); skipped without ``unshare``.

Pairs per second = kept pairs / wall seconds from process start to outputs written (imports
and model loading included, as in a real run). The set-ups alternate for ``--rounds`` rounds
and each keeps its fastest round: on a shared machine the slower rounds measure the neighbours.
CPU seconds (user + system, the process and every worker process it waited for) are printed
beside: they do not depend on contention, so beam-1 CPU / loop CPU is the steadier measure of
Beam's own cost. *Beam itself* = beam-1 minus the loop (wall and CPU). Goals: beam-1 <= 1.5x the
loop's time; beam-2 >= 1.6x beam-1's speed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HOST = "http://bench.msp.invalid/"
FILLER = ("We spent the afternoon walking through the old town and stopped at every corner "
          "that caught our eye. The weather held, the light was soft, and we came home with "
          "far more pictures than we expected to take.")  # fmt: skip
log = logging.getLogger("bench_lait")


def make_crawl(folder: Path, pages: int, files: int, seed: int = 0) -> Path:
    """``pages`` pages with one distinct photo each, in ``files`` WARC files."""
    import io

    from PIL import Image, ImageOps
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from corpora.sample.photos import PHOTOS, load_photos

    rng = random.Random(seed)
    photos = [(p, Image.open(io.BytesIO(rec.jpeg)).convert("RGB")) for p, rec in load_photos()]
    captions = {p.name: list(p.captions) for p in PHOTOS}
    folder.mkdir(parents=True, exist_ok=True)
    logo = io.BytesIO()
    Image.new("RGB", (120, 40), (200, 30, 40)).save(logo, "PNG")
    buffers = [io.BytesIO() for _ in range(files)]
    writers = [WARCWriter(b, gzip=True) for b in buffers]

    def put(k: int, url: str, body: bytes, ctype: str) -> None:
        headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
        writers[k].write_record(writers[k].create_warc_record(
            url, "response", payload=io.BytesIO(body), http_headers=headers))  # fmt: skip

    for n in range(pages):
        photo, img = photos[n % len(photos)]
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = img.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        buf = io.BytesIO()
        crop.save(buf, "JPEG", quality=rng.randint(82, 92))
        caption = captions[photo.name][(n // len(photos)) % 5]
        k = n % files
        body = (f'<html><head><title>Post {n}</title></head><body><header><img src="/logo.png" '
                f'class="logo"></header><main><article><p>{FILLER}</p><figure><img '
                f'src="/img/{n}.jpg" width="480" height="360"><figcaption>{caption}</figcaption>'
                f"</figure><p>{FILLER}</p></article></main></body></html>")  # fmt: skip
        put(k, f"{HOST}post/{n}.html", body.encode(), "text/html; charset=utf-8")
        put(k, f"{HOST}img/{n}.jpg", buf.getvalue(), "image/jpeg")
    for k in range(files):
        put(k, f"{HOST}logo.png", logo.getvalue(), "image/png")
        (folder / f"crawl-{k:03d}.warc.gz").write_bytes(buffers[k].getvalue())
    return folder


class Phases:
    """Wall time per named phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def __call__(self, name: str):
        phases = self

        class _Timer:
            def __enter__(self) -> None:
                self.start = time.perf_counter()

            def __exit__(self, *exc: Any) -> None:
                phases.seconds[name] += time.perf_counter() - self.start

        return _Timer()


def _split(outputs: Any) -> tuple[list[Any], dict[str, list[Any]]]:
    import apache_beam as beam

    main, tagged = [], defaultdict(list)
    for item in outputs or ():
        if isinstance(item, beam.pvalue.TaggedOutput):
            tagged[item.tag].append(item.value)
        else:
            main.append(item)
    return main, tagged


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run_loop(crawl: Path, out: Path) -> dict[str, Any]:
    """The job's per-record code in a plain loop (set-up 1 of the module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from apache_beam.io import fileio
    from apache_beam.io.filesystems import FileSystems

    from corpora.shards import tar_bytes
    from pipeline.lait import resolve_config
    from pipeline.lait_aggregate import BestPairFn, SharedDescriptionsFn, description_key
    from pipeline.lait_config import LaitConfig
    from pipeline.lait_filters import ImageFiltersFn
    from pipeline.lait_images import ImagesFn
    from pipeline.lait_pages import PagesFn
    from pipeline.lait_read import ReadFile
    from pipeline.lait_score import ScoreFn
    from pipeline.lait_text import TextFn
    from pipeline.lait_write import PAIR_SCHEMA, to_row

    started = time.perf_counter()
    config = resolve_config(
        argparse.Namespace(**LaitConfig(inputs=[str(crawl)], out=str(out)).to_dict())
    )
    t, rejected = Phases(), 0
    with t("parsing"):
        pages, bodies = [], defaultdict(list)
        for path in sorted(crawl.glob("*.warc.gz")):
            meta = FileSystems.match([str(path)])[0].metadata_list[0]
            _, tagged = _split(ReadFile(config.url_map).process(fileio.ReadableFile(meta)))
            pages += tagged["pages"]
            for url, body in tagged["bodies"]:
                bodies[url].append(body)
        pages_fn, text_fn = PagesFn(config), TextFn(config)
        pages_fn.setup()
        text_fn.setup()
        captioned = []
        for page in pages:
            cands, tagged = _split(pages_fn.process(page))
            rejected += len(tagged["rejects"])
            for cand in cands:
                kept, tagged = _split(text_fn.process(cand))
                captioned += kept
                rejected += len(tagged["rejects"])
    with t("decoding"):
        images_fn = ImagesFn(config)
        images_fn.setup()
        by_url = defaultdict(list)
        for cand in captioned:
            by_url[cand["image_url"]].append(cand)
        pairs, payloads = [], {}
        for url, cands in by_url.items():
            kept, tagged = _split(
                images_fn.process((url, {"candidates": cands, "bodies": bodies[url]}))
            )
            pairs += kept
            payloads.update(dict(tagged["payloads"]))
            rejected += len(tagged["rejects"])
    with t("models"):
        filters_fn, score_fn = ImageFiltersFn(config), ScoreFn(config)
        filters_fn.setup()
        score_fn.setup()
        groups = defaultdict(list)
        for pair in pairs:
            groups[pair["image_id"]].append(pair)
        grouped = [(i, {"pairs": ps, "payloads": [payloads[i]]}) for i, ps in groups.items()]
        filtered = []
        for batch in _batches(grouped, 16):
            kept, tagged = _split(filters_fn.process(batch))
            filtered += kept
            rejected += len(tagged["rejects"])
        groups = defaultdict(list)
        for pair in filtered:
            groups[pair["image_id"]].append(pair)
        scored = []
        for batch in _batches([(i, {"pairs": ps, "payloads": []}) for i, ps in groups.items()], 64):
            kept, tagged = _split(score_fn.process(batch))
            scored += kept
            rejected += len(tagged["rejects"])
    with t("rest"):
        by_text = defaultdict(list)
        for pair in scored:
            by_text[description_key(pair["caption"])].append(pair)
        shared_fn, best_fn = SharedDescriptionsFn(config.max_shared), BestPairFn()
        by_image = defaultdict(list)
        for item in by_text.items():
            kept, tagged = _split(shared_fn.process(item))
            rejected += len(tagged["rejects"])
            for pair in kept:
                by_image[pair["image_id"]].append(pair)
        final = []
        for item in by_image.items():
            kept, tagged = _split(best_fn.process(item))
            final += kept
            rejected += len(tagged["rejects"])
        out.mkdir(parents=True, exist_ok=True)
        rows = [to_row(p) for p in final]
        pq.write_table(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), out / "pairs.parquet")
        samples = sorted(({"__key__": p["image_id"], payloads[p["image_id"]]["ext"]:
                           payloads[p["image_id"]]["data"], "json": json.dumps(to_row(p)).encode()}
                          for p in final), key=lambda s: s["__key__"])  # fmt: skip
        for k, chunk in enumerate(_batches(samples, config.shard_size)):
            (out / f"images-{k:06d}.tar").write_bytes(tar_bytes(chunk)[0])
    return {"seconds": time.perf_counter() - started, "pairs": len(final), "rejected": rejected,
            "phases": dict(t.seconds)}  # fmt: skip


def run_beam(crawl: Path, out: Path, workers: int) -> dict[str, Any]:
    from pipeline import lait

    argv = ["--input", str(crawl), "--out", str(out), "--runner=FnApiRunner"]
    if workers > 1:
        argv += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    started = time.perf_counter()
    assert lait.run(argv) == 0
    seconds = time.perf_counter() - started
    manifest = json.loads((out / "manifest.json").read_text())
    return {"seconds": seconds, "pairs": manifest["kept"], "rejected": manifest["rejected"]}


def child(args: argparse.Namespace) -> None:
    """One set-up in this fresh process; prints its result as one JSON line."""
    crawl, out = Path(args.crawl), Path(args.out)
    result = run_loop(crawl, out) if args.setup == "loop" else run_beam(crawl, out, args.workers)
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


def measure(setup: str, crawl: Path, out: Path, workers: int = 1) -> dict[str, Any] | None:
    import resource

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", setup, "--crawl", str(crawl), "--out", str(out),
           "--workers", str(workers)]  # fmt: skip
    if workers > 1:
        if shutil.which("unshare") is None:
            log.warning("no unshare(1): skipping the multi-processing set-up")
            return None
        cmd = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{setup} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**result, "seconds": wall, "inner_seconds": result["seconds"], "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=160)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", dest="setup", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--crawl", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.setup:
        logging.getLogger().setLevel(logging.WARNING)
        child(args)
        return 0
    setups = (("loop", "loop", 1), ("beam-1", "beam", 1), ("beam-2", "beam", 2))
    results: dict[str, dict[str, Any] | None] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lait-") as tmp:
        crawl = make_crawl(Path(tmp) / "crawl", args.pages, args.files)
        for round_ in range(args.rounds):
            for name, setup, workers in setups:
                log.info("round %d: %s ...", round_ + 1, name)
                r = measure(setup, crawl, Path(tmp) / name, workers)
                best = results.get(name)
                if r is not None and (best is None or r["seconds"] < best["seconds"]):
                    results[name] = r
                elif r is None:
                    results[name] = None
    loop, one, two = results["loop"], results["beam-1"], results["beam-2"]
    assert loop is not None and one is not None
    log.info("%d pages, %d WARC files, best of %d rounds; load average %s", args.pages,
             args.files, args.rounds, " ".join(f"{x:.1f}" for x in os.getloadavg()))  # fmt: skip
    log.info("%-8s %6s %9s %8s %9s", "set-up", "pairs", "wall s", "pairs/s", "CPU s")
    for name, r in results.items():
        if r is not None:
            log.info("%-8s %6d %9.1f %8.2f %9.1f", name, r["pairs"], r["seconds"],
                     r["pairs"] / r["seconds"], r["cpu"])  # fmt: skip
    phases = {k: round(v, 1) for k, v in loop["phases"].items()}
    log.info("loop time split (s): %s; beam itself: %.1f s wall, %.1f s CPU", phases,
             one["seconds"] - loop["seconds"], one["cpu"] - loop["cpu"])  # fmt: skip
    log.info("beam-1 / loop: %.2fx wall, %.2fx CPU (goal <= 1.5x)", one["seconds"] / loop["seconds"],
             one["cpu"] / loop["cpu"])  # fmt: skip
    if two is not None:
        log.info(
            "beam-2 speed-up over beam-1: %.2fx (goal >= 1.6x)", one["seconds"] / two["seconds"]
        )
    if len({r["pairs"] for r in results.values() if r is not None}) != 1:
        log.error("set-ups kept different numbers of pairs: %s", results)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
