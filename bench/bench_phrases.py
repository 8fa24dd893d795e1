"""Stage-P phrases: job throughput with 1 and 2 workers; spaCy batched against one call per phrase.

    python bench/bench_phrases.py                 # 16,000 phrases through the job, 3,000 tagged
    python bench/bench_phrases.py --quick         # 4,000 / 1,000

Data: the sample corpus's region phrases (``corpora.sample``: attribute, relation and verb
phrases), each extended with one of 60 place phrases ("... near the lamp") so that every phrase
is distinct: the job's per-worker cache of tagged phrases then saves nothing and the figures
measure spaCy and Beam, not the cache. Eight phrases per image, written as a VG
``region_descriptions.json``.

1. The phrases job (read, normalise, tag, pack, write Parquet), timed from ``run()`` to the
   manifest, in three set-ups of Beam's FnApiRunner: in-process (one worker), and
   ``--direct_running_mode=multi_processing`` with 1 and with 2 worker processes. Peers: 2
   workers against 1 (same mode), multi-processing against in-process. The multi-processing
   runner's gRPC servers listen on every interface, so the script re-runs itself inside a
   private network namespace (``unshare -rn``, loopback only) and skips those set-ups when it
   cannot.
2. The verb tagger alone on the same phrases: ``nlp.pipe`` in batches of 256 against one
   ``nlp()`` call per phrase (the peer), best of two rounds each, decisions checked equal.

Figures are phrases per second of wall time; the ratios are what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NETNS_FLAG = "MSP_BENCH_PRIVATE_NET"
PLACES = [
    f"{prep} the {thing}"
    for prep in ("near", "behind", "under")
    for thing in (
        "lamp", "fence", "window", "bench", "wall", "tree", "door", "sign", "pole", "shelf",
        "rock", "bush", "cart", "tent", "post", "gate", "rail", "stool", "crate", "barrel",
    )
]  # fmt: skip
PER_IMAGE = 8

log = logging.getLogger("bench_phrases")


def make_phrases(n: int, workdir: Path) -> list[str]:
    """``n`` distinct phrases from the sample corpus's region phrases."""
    from corpora import sample

    root = workdir / "sample"
    sample.generate(root, seed=0, num_scenes=300)
    regions = json.loads((root / "vg" / "region_descriptions.json").read_text())
    base = sorted({r["phrase"] for im in regions for r in im["regions"]})
    out = [f"{p} {place}" for place in PLACES for p in base]
    if n > len(out):
        raise SystemExit(f"at most {len(out)} distinct phrases")
    return out[:n]


def write_vg(phrases: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(0, len(phrases), PER_IMAGE):
        image_id = 1 + i // PER_IMAGE
        regions = [
            {"region_id": 10 * i + k, "image_id": image_id, "phrase": p, "x": 0, "y": 0,
             "width": 10, "height": 10}
            for k, p in enumerate(phrases[i : i + PER_IMAGE])
        ]  # fmt: skip
        images.append({"id": image_id, "regions": regions})
    (folder / "region_descriptions.json").write_text(json.dumps(images))
    return folder


def time_job(vg: Path, out: Path, beam_args: list[str]) -> tuple[float, dict]:
    from pipeline import phrases

    start = time.perf_counter()
    assert phrases.run(["--vg", str(vg), "--out", str(out), "--force", *beam_args]) == 0
    seconds = time.perf_counter() - start
    return seconds, json.loads((out / "manifest.json").read_text())


def bench_job(n: int, workdir: Path, private_net: bool) -> dict[str, float]:
    vg = write_vg(make_phrases(n, workdir), workdir / "vg")
    setups = {"in-process, 1 worker": []}
    if private_net:
        mp = ["--direct_running_mode=multi_processing"]
        setups["multi-processing, 1 worker"] = [*mp, "--direct_num_workers=1"]
        setups["multi-processing, 2 workers"] = [*mp, "--direct_num_workers=2"]
    else:
        log.warning("no private network namespace: multi-processing set-ups skipped")
    rates: dict[str, float] = {}
    kept = set()
    for name, args in setups.items():
        seconds, manifest = time_job(vg, workdir / "out", args)
        rates[name] = manifest["inputs"] / seconds
        kept.add((manifest["kept"], manifest["rejected"]))
        log.info("job %-28s %6d phrases in %6.1f s = %7.0f phrases/s (kept %d, rejected %d)",
                 name, manifest["inputs"], seconds, rates[name], manifest["kept"],
                 manifest["rejected"])  # fmt: skip
    if len(kept) != 1:
        raise SystemExit(f"set-ups disagree on the outcome: {kept}")
    return rates


def bench_tagger(n: int, workdir: Path) -> dict[str, float]:
    from pipeline.text_verbs import VerbTagger

    phrases = make_phrases(n, workdir)
    tagger = VerbTagger()
    tagger.reasons(phrases[:50])  # warm-up
    best = {"nlp.pipe (batch 256)": float("inf"), "nlp() per phrase": float("inf")}
    results = {}
    for _ in range(2):
        for name, fn in (("nlp.pipe (batch 256)", tagger.reasons),
                         ("nlp() per phrase", tagger.reasons_one_by_one)):  # fmt: skip
            start = time.perf_counter()
            results[name] = fn(phrases)
            best[name] = min(best[name], time.perf_counter() - start)
    if len(set(map(tuple, results.values()))) != 1:
        raise SystemExit("batched and per-phrase tagging disagree")
    rates = {name: n / seconds for name, seconds in best.items()}
    for name, rate in rates.items():
        log.info("tagger %-22s %6d phrases in %6.2f s = %7.0f phrases/s",
                 name, n, best[name], rate)  # fmt: skip
    return rates


def reexec_in_private_net(argv: list[str]) -> int | None:
    """Run this script again inside ``unshare -rn`` (loopback only); None if not possible."""
    if os.environ.get(NETNS_FLAG) or not (shutil.which("unshare") and shutil.which("ip")):
        return None
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        return None
    script = " ".join([sys.executable, str(Path(__file__).resolve()), *argv])
    env = {**os.environ, NETNS_FLAG: "1"}
    cmd = ["unshare", "-rn", "sh", "-c", f"ip link set lo up && exec {script}"]
    return subprocess.run(cmd, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job-phrases", type=int, default=16000)
    parser.add_argument("--tag-phrases", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="4,000 / 1,000 phrases")
    args = parser.parse_args(argv)
    # results go to stdout; Beam's worker processes log to stderr (hide it with 2>/dev/null)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger().setLevel(logging.WARNING)  # Beam and the job: warnings only
    log.setLevel(logging.INFO)
    code = reexec_in_private_net(argv)
    if code is not None:
        return code
    if args.quick:
        args.job_phrases, args.tag_phrases = 4000, 1000
    private_net = bool(os.environ.get(NETNS_FLAG))
    with tempfile.TemporaryDirectory(prefix="bench-phrases-") as tmp:
        work = Path(tmp)
        tag = bench_tagger(args.tag_phrases, work)
        job = bench_job(args.job_phrases, work, private_net)
    log.info("ratio nlp.pipe / per-phrase nlp(): %.2fx",
             tag["nlp.pipe (batch 256)"] / tag["nlp() per phrase"])  # fmt: skip
    if "multi-processing, 2 workers" in job:
        two, one = job["multi-processing, 2 workers"], job["multi-processing, 1 worker"]
        log.info("ratio job 2 workers / 1 worker (multi-processing): %.2fx", two / one)
        log.info("ratio job multi-processing 1 worker / in-process: %.2fx",
                 one / job["in-process, 1 worker"])  # fmt: skip
    log.info("cpu cores visible: %d (shared with other work: ratios, not absolutes)",
             os.cpu_count() or 0)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
