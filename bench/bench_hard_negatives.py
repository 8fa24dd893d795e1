"""Hard negatives: our Beam job against faiss's exact IndexFlatL2 and scikit-learn's BallTree.

    python bench/bench_hard_negatives.py            # N = 20,000 and 100,000 (about 15-40 min)
    python bench/bench_hard_negatives.py --quick    # N = 5,000 (about a minute)

Vectors: N random non-negative 2048-d float32 vectors (each the mean of a few ReLU'd normal
draws, like averaged ReLU RoI features) in an ``.npy``; top-100, Euclidean. Every contender
runs in its own child process, reads the ``.npy`` and is timed inside it; its peak memory is
the child's ``ru_maxrss`` (``os.wait4``):

* ours: the hard-negatives Beam job (``pipeline.hn_core.run_npy``) on the in-process runner,
  from the ``.npy`` to the Parquet files (reading, scoring, merging, writing);
* faiss: ``np.load`` + ``IndexFlatL2.add`` + ``search(X, k + 1)`` (self dropped);
* BallTree (the reference hard-sample file's method; N <= 20,000): build on all N, query a
  sample of them; in 2048-d it prunes nothing, so its query time grows linearly with the number
  of queries and the full time is extrapolated (``--balltree-queries all`` queries everything).

Agreement: for a sample of queries, the exact float64 distances to all N vectors; a contender's
list agrees when, rank by rank, the true distance of its neighbour equals the true r-th smallest
distance within 1e-6 relative (so only near-ties may swap), without the query itself.
"GFLOP/s" counts ``2 N^2 D`` (the full distance matrix, what faiss computes) as *effective*,
and the multiply-adds actually executed (ours scores each pair of images once) as *executed*,
which is compared with the matrix-multiply peak measured in the same run: the best float32 GEMM
rate seen (numpy's and faiss's BLAS, before and after), and the rate measured just before each
contender (on a shared machine the load changes from minute to minute).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NEAR_TIE = 1e-6


def make_vectors(path: Path, n: int, dim: int, seed: int = 0, draws: int = 4) -> None:
    """N non-negative float32 vectors, each the mean of ``draws`` ReLU'd normals, in chunks."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for lo in range(0, n, 5000):
        hi = min(n, lo + 5000)
        acc = np.zeros((hi - lo, dim), np.float32)
        for _ in range(draws):
            acc += np.maximum(rng.standard_normal((hi - lo, dim), dtype=np.float32), 0)
        out[lo:hi] = acc / draws
    out.flush()
    del out


def gemm_peak(repeats: int = 3) -> dict[str, float]:
    """Best float32 GEMM rate (GFLOP/s) of numpy's BLAS and of faiss's (the one our job uses)."""
    import faiss

    rng = np.random.default_rng(1)
    a = rng.random((4096, 4096), dtype=np.float32)
    b = rng.random((4096, 2048), dtype=np.float32)
    out = np.empty((4096, 4096), np.float32)
    rates = {}
    for name, fn, flops in (
        ("numpy 4096^3", lambda: a @ a, 2 * 4096**3),
        ("faiss 4096x4096x2048", lambda: faiss.pairwise_L2sqr(
            2048, 4096, faiss.swig_ptr(b), 4096, faiss.swig_ptr(b), faiss.swig_ptr(out)),
         2 * 4096 * 4096 * 2048),
    ):  # fmt: skip
        best = min(_timed(fn) for _ in range(repeats))
        rates[name] = flops / best / 1e9
    return rates


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def executed_flops(n: int, dim: int, block_size: int) -> float:
    """Multiply-adds our job executes: every block pair i <= j once, diagonals in full."""
    sizes = [min(block_size, n - lo) for lo in range(0, n, block_size)]
    total = sum(a * b for i, a in enumerate(sizes) for b in sizes[i:])
    return 2.0 * total * dim


# -- children -----------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    queries = np.load(args.queries_file)
    result: dict = {}
    if args.child == "ours":
        from pipeline.hn_core import run_npy
        from pipeline.hn_write import read_neighbours

        n = np.lib.format.open_memmap(args.npy, mode="r").shape[0]
        ids = [f"{i:07d}" for i in range(n)]
        start = time.perf_counter()
        files = run_npy(args.npy, ids, args.out, metric="euclidean", k=args.k,
                        block_size=args.block_size)  # fmt: skip
        result["seconds"] = time.perf_counter() - start
        rows = read_neighbours(args.out, [ids[q] for q in queries])
        lists = [[int(x) for x in rows[ids[q]]["neighbours"]] for q in queries]
        result["files"] = len(files)
    elif args.child == "faiss":
        import faiss

        start = time.perf_counter()
        x = np.load(args.npy)
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
        _, found = index.search(x, args.k + 1)
        result["seconds"] = time.perf_counter() - start
        lists = [[int(j) for j in found[q] if j != q][: args.k] for q in queries]
    else:
        from sklearn.neighbors import BallTree

        start = time.perf_counter()
        x = np.load(args.npy)
        tree = BallTree(x)
        built = time.perf_counter() - start
        asked = np.load(args.balltree_file)
        start = time.perf_counter()
        _, found = tree.query(x[asked], k=args.k + 1)
        queried = time.perf_counter() - start
        result.update(build_seconds=built, query_seconds=queried, queried=len(asked))
        result["seconds"] = built + queried * len(x) / len(asked)
        where = {int(q): i for i, q in enumerate(asked)}
        lists = [[int(j) for j in found[where[int(q)]] if j != q][: args.k] for q in queries]
    result["lists"] = lists
    Path(args.result).write_text(json.dumps(result))


def run_child(kind: str, common: list[str], result: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, *common, "--result", str(result)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{kind} child failed with status {status}")
    out = json.loads(result.read_text())
    out["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return out


# -- agreement ----------------------------------------------------------------------------------
def true_distances(npy: Path, queries: np.ndarray) -> np.ndarray:
    """float64 [Q, N] exact Euclidean distances, streamed over the vectors."""
    x = np.load(npy, mmap_mode="r")
    q = np.asarray(x[queries], np.float64)
    qn = (q * q).sum(axis=1)
    out = np.empty((len(queries), x.shape[0]))
    for lo in range(0, x.shape[0], 8192):
        chunk = np.asarray(x[lo : lo + 8192], np.float64)
        d2 = qn[:, None] + (chunk * chunk).sum(axis=1)[None, :] - 2.0 * q @ chunk.T
        out[:, lo : lo + len(chunk)] = np.sqrt(np.maximum(d2, 0.0))
    return out


def agreement(lists: list[list[int]], truth: np.ndarray, queries: np.ndarray, k: int) -> dict:
    agree = identical = 0
    worst = 0.0
    for row, (q, got) in enumerate(zip(queries, lists, strict=True)):
        d = truth[row].copy()
        d[q] = np.inf
        order = np.lexsort((np.arange(len(d)), d))[:k]
        want = d[order]
        ok = len(got) == k and len(set(got)) == k and q not in got
        if ok:
            rel = np.abs(d[got] - want) / np.maximum(want, 1e-300)
            worst = max(worst, float(rel.max()))
            ok = bool((rel <= NEAR_TIE).all())
        agree += ok
        identical += got == order.tolist()
    return {"agree": agree, "identical": identical, "queries": len(queries), "worst_rel": worst}


# -- driver -------------------------------------------------------------------------------------
def bench_size(args: argparse.Namespace, n: int, tmp: Path, peak: float) -> list[dict]:
    npy = tmp / f"vectors-{n}.npy"
    if not npy.exists():
        make_vectors(npy, n, args.dim)
    rng = np.random.default_rng(n)
    queries = np.sort(rng.choice(n, size=min(args.queries, n), replace=False))
    np.save(tmp / "queries.npy", queries)
    asked = queries
    if args.balltree_queries != "all" and int(args.balltree_queries) > len(queries):
        rest = np.setdiff1d(np.arange(n), queries)
        extra = rng.choice(rest, size=min(len(rest), int(args.balltree_queries) - len(queries)),
                           replace=False)  # fmt: skip
        asked = np.concatenate([queries, extra])
    elif args.balltree_queries == "all":
        asked = np.arange(n)
    np.save(tmp / "balltree.npy", asked)
    common = ["--npy", str(npy), "--k", str(args.k), "--block-size", str(args.block_size),
              "--queries-file", str(tmp / "queries.npy"), "--balltree-file",
              str(tmp / "balltree.npy")]  # fmt: skip
    kinds = ["ours", "faiss"] + (["balltree"] if n <= args.balltree_max else [])
    results = []
    for kind in kinds:
        out = tmp / f"out-{kind}-{n}"
        near = max(gemm_peak(repeats=2).values())  # the machine's rate just before, same load
        r = run_child(kind, [*common, "--out", str(out)], tmp / f"{kind}.json")
        r.update(kind=kind, n=n, gemm_near=near)
        results.append(r)
        print(
            f"  {kind:8s} N={n}: {r['seconds']:.1f} s, peak {r['peak_rss_mb']:.0f} MB", flush=True
        )
    truth = true_distances(npy, queries)
    full = 2.0 * n * n * args.dim
    for r in results:
        r.update(agreement(r.pop("lists"), truth, queries, args.k))
        r["effective_gflops"] = full / r["seconds"] / 1e9
        executed = executed_flops(n, args.dim, args.block_size) if r["kind"] == "ours" else full
        r["executed_gflops"] = executed / r["seconds"] / 1e9 if r["kind"] != "balltree" else None
        r["fraction_of_peak"] = r["executed_gflops"] / peak if r["executed_gflops"] else None
        r["fraction_of_near"] = (
            r["executed_gflops"] / r["gemm_near"] if r["executed_gflops"] else None
        )
    return results


def report(results: list[dict], peaks: dict) -> None:
    print(
        f"\nmatrix-multiply peak measured in this run: {max(peaks.values()):.0f} GFLOP/s  {peaks}"
    )
    head = f"{'N':>7} {'contender':9} {'seconds':>9} {'ours x':>8} {'eff GF/s':>9} "
    print(
        head + f"{'exec GF/s':>9} {'of peak':>8} {'of near':>8} {'peak MB':>8} {'agree':>9} "
        f"{'identical':>9}"
    )
    for n in sorted({r["n"] for r in results}):
        group = [r for r in results if r["n"] == n]
        ours = next(r for r in group if r["kind"] == "ours")
        for r in group:
            speedup = r["seconds"] / ours["seconds"]
            exe = f"{r['executed_gflops']:.0f}" if r["executed_gflops"] else "-"
            frac = f"{r['fraction_of_peak']:.2f}" if r["fraction_of_peak"] else "-"
            near = f"{r['fraction_of_near']:.2f}" if r["fraction_of_near"] else "-"
            print(f"{n:>7} {r['kind']:9} {r['seconds']:9.1f} {speedup:8.2f} "
                  f"{r['effective_gflops']:9.1f} {exe:>9} {frac:>8} {near:>8} {r['peak_rss_mb']:8.0f} "
                  f"{r['agree']:>4}/{r['queries']:<4} {r['identical']:>4}/{r['queries']:<4}")  # fmt: skip
    print("'ours x' = contender seconds / our seconds (our speed relative to it); 'of peak':")
    print("executed GFLOP/s over the best GEMM rate of the run; 'of near': over the GEMM rate")
    print("measured just before that contender ran (the same load on a shared machine)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 5,000 only")
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--queries", type=int, default=200, help="agreement sample")
    parser.add_argument("--balltree-queries", default="1000", help="a number, or 'all'")
    parser.add_argument("--balltree-max", type=int, default=20000, help="largest N for BallTree")
    parser.add_argument("--keep", help="folder for vectors and outputs (default: a temp folder)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", choices=("ours", "faiss", "balltree"), help=argparse.SUPPRESS)
    for name in ("--npy", "--out", "--result", "--queries-file", "--balltree-file"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    sizes = [5000] if args.quick else [int(s) for s in args.sizes.split(",")]
    tmp_ctx = tempfile.TemporaryDirectory(prefix="bench-hn-") if not args.keep else None
    tmp = Path(args.keep or tmp_ctx.name)
    tmp.mkdir(parents=True, exist_ok=True)
    peaks = {f"{k} (before)": v for k, v in gemm_peak().items()}
    print(f"matrix-multiply peak before: {peaks}", flush=True)
    results = []
    for n in sizes:
        results += bench_size(args, n, tmp, max(peaks.values()))
        peaks.update({f"just before {r['kind']} N={n}": r["gemm_near"] for r in results})
    peaks.update({f"{k} (after)": v for k, v in gemm_peak().items()})
    for r in results:  # the fraction of peak uses the best rate seen in the whole run
        if r["executed_gflops"]:
            r["fraction_of_peak"] = r["executed_gflops"] / max(peaks.values())
    report(results, peaks)
    if args.json:
        Path(args.json).write_text(json.dumps({"peaks": peaks, "results": results}, indent=1))
    if tmp_ctx is not None:
        tmp_ctx.cleanup()


if __name__ == "__main__":
    main()
