"""Vector store benchmark: the embedded store (Qdrant Edge) beside qdrant-client's local mode.

    python -m benchmarks.search --n 100000
    python -m benchmarks.search --n 1000000 --quantization --no-reference

Loads N clustered synthetic 512-d unit vectors with a payload (category, brand, price,
in_stock) into each store, builds the index, then reopens the store in a fresh process and
measures there: reopen time, p50/p99 latency of top-10 searches, p50 of filtered searches
(category == c and price < 250), p50 of hybrid searches (vector and keywords fused in one
request; each point's keywords are its text fields), recall@10 against exact brute force
(numpy) and the resident memory of that process. Each query goes through our
`Collection.search` (hybrid ones through `Collection.query`), as the app calls them.
The last line is `RESULT {json}` (embedded-store keys, plus `local_mode_*` for the reference).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fashion_clip.store import CollectionSpec, Filter, Point, Range

CATEGORIES = 20
PRICE_CUT = 250.0  # filtered queries keep category == c and price < this: about 2.5% of points


def clustered(n: int, dim: int, seed: int, clusters: int) -> np.ndarray:
    """`(n, dim)` float32 unit vectors around `clusters` centres (cosine to centre ~0.8)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in chunks: 1M x 512 temporaries would double memory
        m = min(100_000, n - start)
        noise = rng.normal(scale=0.75 / np.sqrt(dim), size=(m, dim)).astype(np.float32)
        chunk = centres[rng.integers(0, clusters, size=m)] + noise
        out[start : start + m] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def payloads(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    return {
        "category": rng.integers(0, CATEGORIES, size=n),
        "brand": rng.integers(0, 200, size=n),
        "price": np.round(rng.uniform(5, 500, size=n), 2),
        "in_stock": rng.random(n) < 0.8,
    }


def truth(data: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None):
    """Exact top-k row indices per query, `(q, k)`."""
    result = []
    for q in queries:
        scores = data @ q
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        top = np.argpartition(-scores, k)[:k]
        result.append(top[np.argsort(-scores[top])])
    return np.array(result)


def load(args, kind: str, root: Path, data: np.ndarray, meta: dict[str, np.ndarray]) -> dict:
    """Create the collection and upsert everything; return the time it took."""
    store = open_kind(kind, root)
    spec = CollectionSpec(
        model_id="benchmark/synthetic",
        dim=data.shape[1],
        payload_indexes={"category": "keyword", "brand": "keyword", "price": "float"},
        hnsw_m=args.m,
        hnsw_ef_construct=args.ef_construct,
        quantization=args.quantization,
        on_disk_vectors=args.quantization,  # originals mmapped; int8 copies in RAM
    )
    col = store.create("bench", spec, recreate=True)
    batch = 1000 if kind == "embedded" else 256
    start = time.perf_counter()
    for s in range(0, len(data), batch):
        col.upsert(
            [
                Point(
                    f"item-{i}",
                    {"image": data[i]},
                    {
                        "category": f"cat-{meta['category'][i]}",
                        "brand": f"brand-{meta['brand'][i]}",
                        "price": float(meta["price"][i]),
                        "in_stock": bool(meta["in_stock"][i]),
                    },
                )
                for i in range(s, min(s + batch, len(data)))
            ]
        )
    upsert_s = time.perf_counter() - start
    store.close()
    return {"upsert_s": upsert_s}


def build(kind: str, root: Path) -> float:
    """Build the index of the loaded collection; return the time it took."""
    store = open_kind(kind, root)
    col = store.open("bench")
    start = time.perf_counter()
    col.optimize()
    seconds = time.perf_counter() - start
    store.close()
    return seconds


def open_kind(kind: str, root: Path):
    if kind == "embedded":
        from fashion_clip.store.embedded import EmbeddedStore

        return EmbeddedStore(root)
    from qdrant_client import QdrantClient

    from fashion_clip.store.remote import RemoteStore

    return RemoteStore(client=QdrantClient(path=str(root)))


def serve(job: dict) -> dict:
    """In a fresh process: reopen, query, measure. Returns the figures as a dict."""
    files = np.load(job["queries"])
    start = time.perf_counter()
    store = open_kind(job["kind"], Path(job["root"]))
    col = store.open("bench")
    reopen_s = time.perf_counter() - start
    queries, cats = files["queries"], files["cats"]
    n_plain, n_filtered = job["plain"], job["filtered"]
    for q in queries[: min(5, n_plain)]:  # warm-up: first touches of pages and caches
        col.search(q, limit=10, ef=job["ef"])
    latencies, found = [], []
    for q in queries[:n_plain]:
        t = time.perf_counter()
        hits = col.search(q, limit=10, ef=job["ef"])
        latencies.append(time.perf_counter() - t)
        found.append([int(h.id.split("-")[1]) for h in hits])
    filtered_latencies, filtered_found = [], []
    for q, c in zip(queries[:n_filtered], cats[:n_filtered], strict=True):
        wanted = Filter(equals={"category": f"cat-{c}"}, ranges={"price": Range(lt=PRICE_CUT)})
        t = time.perf_counter()
        hits = col.search(q, filter=wanted, limit=10, ef=job["ef"])
        filtered_latencies.append(time.perf_counter() - t)
        filtered_found.append([int(h.id.split("-")[1]) for h in hits])
    hybrid = hybrid_latencies(col, queries[:n_plain], cats, job["ef"])
    rss_mb = rss_now_mb()
    store.close()
    return {
        **hybrid,
        "reopen_s": reopen_s,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "filtered_p50_ms": 1000 * float(np.percentile(filtered_latencies, 50)),
        "recall_at_10": recall(found, files["truth"]),
        "filtered_recall_at_10": recall(filtered_found, files["filtered_truth"]),
        "rss_mb": rss_mb,
    }


def hybrid_latencies(col, queries: np.ndarray, cats: np.ndarray, ef: int) -> dict[str, float]:
    """p50 of hybrid searches ("brand-B cat-C" keywords fused with the vector by DBSF, as the
    app's text search sends them), unfiltered and with the filtered searches' filter."""
    from fashion_clip.store.base import Ranking
    from fashion_clip.store.bm25 import query_vector

    plain, filtered = [], []
    for i, q in enumerate(queries):
        c = int(cats[i % len(cats)])
        words = query_vector(f"brand-{(i * 7) % 200} cat-{c}")
        where = Filter(equals={"category": f"cat-{c}"}, ranges={"price": Range(lt=PRICE_CUT)})
        for latencies, wanted in ((plain, None), (filtered, where)):
            ranking = Ranking(dense=q, keywords=words, fusion="dbsf", filter=wanted, ef=ef)
            t = time.perf_counter()
            col.query(ranking)
            latencies.append(time.perf_counter() - t)
    return {
        "hybrid_p50_ms": 1000 * float(np.percentile(plain[5:], 50)),  # after a warm-up
        "hybrid_filtered_p50_ms": 1000 * float(np.percentile(filtered[5:], 50)),
    }


def recall(found: list[list[int]], expected: np.ndarray) -> float:
    hits = sum(len(set(f) & set(e.tolist())) for f, e in zip(found, expected, strict=False))
    return hits / (10 * len(found))


def rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(args, kind: str, workdir: Path, data, meta, query_file: Path, plain: int, filt: int):
    root = workdir / kind
    # Each phase saves its figures, so --reuse resumes where a run stopped (or measures again).
    loaded, built = workdir / f"{kind}-load.json", workdir / f"{kind}-build.json"
    if args.reuse and loaded.is_file():
        figures = json.loads(loaded.read_text())
    else:
        print(f"[{kind}] loading {len(data):,} points ...", file=sys.stderr, flush=True)
        figures = load(args, kind, root, data, meta)
        loaded.write_text(json.dumps(figures))
    if args.reuse and built.is_file():
        figures.update(json.loads(built.read_text()))
    else:
        print(f"[{kind}] loaded {figures}; building the index", file=sys.stderr, flush=True)
        figures["index_build_s"] = build(kind, root)
        built.write_text(json.dumps({"index_build_s": figures["index_build_s"]}))
    print(f"[{kind}] loaded: {figures}; reopening in a fresh process", file=sys.stderr, flush=True)
    job = {"kind": kind, "root": str(root), "queries": str(query_file), "ef": args.ef,
           "plain": plain, "filtered": filt}  # fmt: skip
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.search", "--serve", json.dumps(job)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures.update(json.loads(child.stdout.strip().splitlines()[-1]))
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="points to load")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200, help="timed queries (embedded)")
    parser.add_argument("--filtered-queries", type=int, default=100)
    parser.add_argument("--reference-queries", type=int, default=20, help="for local mode")
    parser.add_argument("--ef", type=int, default=128, help="HNSW search breadth")
    parser.add_argument("--m", type=int, default=16, help="HNSW links per node")
    parser.add_argument("--ef-construct", type=int, default=100)
    parser.add_argument("--quantization", action="store_true", help="int8 + rescoring")
    parser.add_argument("--no-reference", action="store_true", help="skip local mode")
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given")
    parser.add_argument("--reuse", action="store_true", help="reuse stores built in --workdir")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        print(json.dumps(serve(json.loads(args.serve))))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="search-", dir=_out()))
    workdir.mkdir(parents=True, exist_ok=True)
    clusters = max(16, args.n // 200)
    data = clustered(args.n, args.dim, seed=7, clusters=clusters)
    meta = payloads(args.n, seed=7)
    nq = max(args.queries, args.filtered_queries)
    queries = clustered(nq, args.dim, seed=99, clusters=clusters)
    cats = np.random.default_rng(5).integers(0, CATEGORIES, size=nq)
    print("computing exact neighbours ...", file=sys.stderr, flush=True)
    keep = meta["price"] < PRICE_CUT
    filtered_truth = np.array(
        [
            truth(data, q[None], 10, keep & (meta["category"] == c))[0]
            for q, c in zip(queries, cats, strict=True)
        ]
    )
    query_file = workdir / "queries.npz"
    np.savez(query_file, queries=queries, cats=cats, truth=truth(data, queries, 10),
             filtered_truth=filtered_truth)  # fmt: skip

    results = {"embedded": measure(args, "embedded", workdir, data, meta, query_file,
                                   args.queries, args.filtered_queries)}  # fmt: skip
    if not args.no_reference:
        r = args.reference_queries
        results["local mode"] = measure(args, "local", workdir, data, meta, query_file, r, r)
    report(args, results)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


def report(args, results: dict[str, dict]) -> None:
    rows = [
        ("upsert (s)", "upsert_s", "{:.1f}"),
        ("index build (s)", "index_build_s", "{:.1f}"),
        ("p50 latency (ms)", "p50_ms", "{:.2f}"),
        ("p99 latency (ms)", "p99_ms", "{:.2f}"),
        ("filtered p50 (ms)", "filtered_p50_ms", "{:.2f}"),
        ("hybrid p50 (ms)", "hybrid_p50_ms", "{:.2f}"),
        ("hybrid filtered p50 (ms)", "hybrid_filtered_p50_ms", "{:.2f}"),
        ("recall@10", "recall_at_10", "{:.3f}"),
        ("filtered recall@10", "filtered_recall_at_10", "{:.3f}"),
        ("resident memory (MB)", "rss_mb", "{:.0f}"),
        ("reopen (s)", "reopen_s", "{:.2f}"),
    ]
    names = list(results)
    print(f"\nN={args.n:,} dim={args.dim} ef={args.ef} m={args.m} "
          f"ef_construct={args.ef_construct} quantization={args.quantization}")  # fmt: skip
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, key, fmt in rows:
        print(f"| {label} | " + " | ".join(fmt.format(results[k][key]) for k in names) + " |")
    if args.no_reference:
        print("(qdrant-client local mode skipped: --no-reference)")
    flat = {"n": args.n, "dim": args.dim, "ef": args.ef, **results["embedded"]}
    for key, value in results.get("local mode", {}).items():
        flat[f"local_mode_{key}"] = value
    print("RESULT " + json.dumps({k: round(v, 4) for k, v in flat.items()}))


def _out() -> Path:
    out = Path("benchmarks/out")
    out.mkdir(parents=True, exist_ok=True)
    return out


if __name__ == "__main__":
    main()
