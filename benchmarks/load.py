"""Load test of the Space: concurrent `gradio_client` callers over mixed endpoints.

    python -m benchmarks.load                          # demo model, demo catalog (400 items)
    python -m benchmarks.load --model vitb32 --points 100000

The app runs in its own process (as on a Space), the callers in this one: each of `--clients`
threads holds its own `Client` and, for `--seconds`, calls an endpoint drawn from a fixed mix
(mostly text search, plus image search, classify, localize and the hidden trivial `/ping`),
timing every round trip. `/ping` does nothing, so its latency in the same run is the floor of
Gradio's queue and the client's round trip on this machine; what text search adds to it is
the app's own cost. Files come back as URLs (`download_files=False`), as a browser gets them.
Then one caller calls each endpoint `--alone` times: with nothing queued, that is what each
endpoint costs by itself (round trip, and the app's CPU time per call).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from app import QUERY_PRECISION
from benchmarks.common import OUT, machine, print_table, result_line

# Endpoint mix (weights): a search UI is mostly text queries.
MIX = {"text_search": 60, "ping": 20, "image_search": 8, "classify": 8, "localize": 4}
COLOURS = ["red", "blue", "green", "black", "white", "pink", "yellow", "brown", "purple"]
PATTERNS = ["striped", "dotted", "checked", "solid", "floral"]
KINDS = ["dress", "shirt", "t-shirt", "skirt", "trousers", "jacket", "shoes", "bag", "shorts"]
STYLES = ["long", "short", "slim", "oversized", "vintage", "summer", "winter", "cotton",
          "linen", "leather", "casual", "formal"]  # fmt: skip
AUDIENCES = ["", "for women", "for men", "for kids", "for the office"]
BRANDS = ["Urban Loom", "Atelier Nova", "Northwind", "Kestrel", "Maison Verde", "Lumen & Co"]


# ---------------------------------------------------------------------- the server process
def build_store(
    model_name: str, points: int, folder: Path, text_precision: str = QUERY_PRECISION
) -> tuple[object, object]:
    """Model and collection: the demo catalog indexed, or `points` random vectors."""
    from fashion_clip.model.clip import ClipModel
    from fashion_clip.settings import Settings
    from fashion_clip.store import open_store

    if model_name == "vitb32":
        from benchmarks.common import vitb32_folder

        model_name = str(vitb32_folder())
    model = ClipModel.load(model_name, text_precision=text_precision)
    settings = Settings(model=model.info.name, qdrant_path=folder, collection="load")
    store = open_store(settings)
    if not points:
        from fashion_clip.ingest.job import index_demo
        from fashion_clip.ingest.pipeline import IndexOptions

        collection, _ = index_demo(store, model, options=IndexOptions(progress=True), name="load")
        return model, collection
    return model, random_collection(store, model, points)


def random_collection(store, model, points: int):
    """`points` random unit vectors with catalog-like payloads (built once, then reused)."""
    from fashion_clip.demo import DEMO_CATALOG_DIR
    from fashion_clip.store import CollectionSpec, Point

    info = model.info
    if store.exists("load"):
        collection = store.open("load", model_id=info.name, dim=info.dim)
        if collection.count() == points and collection.info().extra.get("complete"):
            return collection
        collection.close()
    spec = CollectionSpec(
        model_id=info.name,
        model_revision=info.revision,
        dim=info.dim,
        payload_indexes={"category": "keyword", "color": "keyword", "brand": "keyword",
                         "pattern": "keyword", "price": "float"},
    )  # fmt: skip
    collection = store.create("load", spec, recreate=True)
    pictures = sorted((DEMO_CATALOG_DIR / "images").glob("*.jpg"))
    rng = np.random.default_rng(0)
    batch = 2000
    for start in range(0, points, batch):
        n = min(batch, points - start)
        vectors = rng.normal(size=(n, info.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunk = []
        for i in range(n):
            k = start + i
            colour, pattern, kind = COLOURS[k % 9], PATTERNS[k % 5], KINDS[(k // 45) % 9]
            chunk.append(
                Point(
                    id=f"item-{k:06d}",
                    vectors={"image": vectors[i]},
                    payload={
                        "caption": f"{colour} {pattern} {kind}",
                        "category": kind,
                        "color": colour,
                        "pattern": pattern,
                        "brand": BRANDS[k % 6],
                        "price": round(10 + (k * 7919 % 19000) / 100, 2),
                        "_image_source": str(pictures[k % len(pictures)]),
                    },
                )
            )
        collection.upsert(chunk)
        logging.info("upserted %d / %d points", start + n, points)
    logging.info("building the HNSW index (minutes for 100,000 points)")
    collection.optimize()
    collection.set_extra({"complete": True, "images_root": str(DEMO_CATALOG_DIR)})
    return collection


def serve(args: argparse.Namespace) -> None:
    """Run the app until killed; print `READY <url>` once it answers."""
    from fashion_clip.model.allocator import arena_count, cap_arenas

    cap_arenas(arena_count())  # as app.py does, before the app's threads allocate

    import space.app
    from space.app import build_demo

    if args.concurrency:
        space.app.VISION_CONCURRENCY = args.concurrency
    if args.search_concurrency:  # -1: no limit, no queue
        limit = args.search_concurrency
        space.app.SEARCH_CONCURRENCY = None if limit < 0 else limit

    if args.null_search:
        _answer_every_text_search_with_one_result()

    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", args.model).strip("_")
    folder = OUT / f"load-store-{tag}-{args.points}"
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    model, collection = build_store(args.model, args.points, folder, args.text_precision)
    demo = build_demo(model, collection)
    demo.launch(
        server_name="127.0.0.1", server_port=args.port, prevent_thread_lock=True, quiet=True
    )
    print(f"READY http://127.0.0.1:{args.port}/ {collection.count()}", flush=True)
    threading.Event().wait()


def _answer_every_text_search_with_one_result() -> None:
    """`--null-search`: text search keeps its inputs, outputs and queue but does no work (its
    first answer is returned to every call), so what it adds is Gradio's cost for an endpoint
    of its shape: the floor under the real handler."""
    from space import handlers

    real = handlers.text_search
    answer: list = []

    @functools.wraps(real)
    def text_search(backend: object, *args: object, **kwargs: object) -> object:
        if not answer:
            answer.append(real(backend, "red dress"))
        return answer[0]

    handlers.text_search = text_search


# ---------------------------------------------------------------------- the callers
def caller(
    url: str,
    seed: int,
    until: float,
    mix: dict[str, int],
    ssl_verify: bool,
    samples: dict,
    failures: dict,
    lock: threading.Lock,
) -> None:
    from gradio_client import Client

    from fashion_clip.demo import DEMO_CATALOG_DIR

    rng = random.Random(seed)
    # gradio_client 2.7 builds two httpx clients per call, each loading the CA bundle (~35 ms
    # of CPU here) even for http://. That is the stock client users run (and the floor the
    # issue measured); `--lean-client` skips it, so the callers saturate the app instead.
    client = Client(
        url, verbose=False, download_files=False, ssl_verify=ssl_verify, analytics_enabled=False
    )
    pictures = sorted((DEMO_CATALOG_DIR / "images").glob("*.jpg"))[:50]
    names, weights = list(mix), list(mix.values())
    while time.perf_counter() < until:
        name = rng.choices(names, weights)[0]
        args, kwargs = make_call(name, rng, pictures)
        start = time.perf_counter()
        try:
            client.predict(*args, api_name=f"/{name}", **kwargs)
            ok = True
        except Exception as exc:
            ok = False
            logging.warning("%s failed: %s", name, exc)
        elapsed = (time.perf_counter() - start) * 1000
        with lock:
            (samples if ok else failures)[name].append(elapsed)


def make_call(name: str, rng: random.Random, pictures: list[Path]) -> tuple[tuple, dict]:
    """Arguments for one call of endpoint `name`."""
    from gradio_client import handle_file

    # ~24,000 distinct queries: the app's text cache rarely helps, as with real traffic.
    words = (
        f"{rng.choice(STYLES)} {rng.choice(COLOURS)} {rng.choice(PATTERNS)} "
        f"{rng.choice(KINDS)} {rng.choice(AUDIENCES)}"
    ).strip()
    picture = handle_file(str(rng.choice(pictures)))
    if name == "text_search":
        kwargs: dict = {"query": words, "limit": 12}
        if rng.random() < 0.3:
            kwargs["colours"] = [rng.choice(COLOURS)]
        if rng.random() < 0.2:
            kwargs["negative"] = rng.choice(PATTERNS)
        return (), kwargs
    if name == "image_search":
        return (picture,), {"limit": 12}
    if name == "classify":
        return (picture, ", ".join(KINDS)), {}
    if name == "localize":
        return (picture, rng.choice(KINDS)), {}
    return (), {}


def one_at_a_time(
    url: str, server_pid: int, mix: dict[str, int], calls: int, ssl_verify: bool
) -> dict[str, tuple[float, float]]:
    """Each endpoint called `calls` times by one caller: (p50 wall ms, app CPU ms per call).

    Without concurrency nothing queues, so this is what each endpoint itself costs; the app's
    CPU time (all its threads, from /proc) is robust to other load on the machine.
    """
    from gradio_client import Client

    from fashion_clip.demo import DEMO_CATALOG_DIR

    client = Client(
        url, verbose=False, download_files=False, ssl_verify=ssl_verify, analytics_enabled=False
    )
    pictures = sorted((DEMO_CATALOG_DIR / "images").glob("*.jpg"))[:50]
    rng = random.Random(1)
    figures = {}
    for name in mix:
        walls = []
        cpu_before = process_cpu_s(server_pid)
        for _ in range(calls):
            args, kwargs = make_call(name, rng, pictures)
            start = time.perf_counter()
            client.predict(*args, api_name=f"/{name}", **kwargs)
            walls.append((time.perf_counter() - start) * 1000)
        cpu_ms = (process_cpu_s(server_pid) - cpu_before) * 1000 / calls
        figures[name] = (statistics.median(walls), cpu_ms)
    return figures


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="demo, vitb32 or a model name/folder")
    parser.add_argument("--points", type=int, default=0, help="random points (0: demo catalog)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=7893)
    parser.add_argument(
        "--lean-client",
        action="store_true",
        help="callers skip loading the CA bundle on every call (ssl_verify=False): ~70 ms less "
        "client CPU per call, so 16 callers saturate the app (a stress test)",
    )
    parser.add_argument(
        "--mix",
        default=",".join(f"{k}={v}" for k, v in MIX.items()),
        help="endpoint weights, e.g. text_search=80,ping=20",
    )
    parser.add_argument(
        "--alone", type=int, default=20, help="calls per endpoint by a single caller, after"
    )
    parser.add_argument("--torch-threads", type=int, default=0, help="0: the app's choice")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="vision group size (0: the app's choice)"
    )
    parser.add_argument(
        "--text-precision", default=QUERY_PRECISION,
        help=f"the app's text tower: auto, fast, fp32, bf16, int8 (default: {QUERY_PRECISION}, "
        "the app's)",
    )  # fmt: skip
    parser.add_argument(
        "--search-concurrency",
        type=int,
        default=0,
        help="text search group size (0: the app's choice, -1: no limit)",
    )
    parser.add_argument(
        "--null-search", action="store_true",
        help="text search does no work (one cached answer): Gradio's floor for its shape",
    )  # fmt: skip
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.serve:
        serve(args)
        return

    OUT.mkdir(parents=True, exist_ok=True)
    mix = parse_mix(args.mix)
    command = [sys.executable, "-m", "benchmarks.load", "--serve", "--model", args.model,
               "--points", str(args.points), "--port", str(args.port),
               "--torch-threads", str(args.torch_threads),
               "--concurrency", str(args.concurrency),
               "--search-concurrency", str(args.search_concurrency),
               "--text-precision", args.text_precision]  # fmt: skip
    if args.null_search:
        command.append("--null-search")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = ""
        while not line.startswith("READY"):
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                raise SystemExit("the app process exited before it was ready")
        _, url, count = line.split()
        # Warm up (first calls load lazy parts of Gradio and torch), then measure.
        run_callers(url, args.clients, args.warmup, mix, not args.lean_client)
        started = time.perf_counter()
        samples, failures = run_callers(url, args.clients, args.seconds, mix, not args.lean_client)
        wall = time.perf_counter() - started
        alone = one_at_a_time(url, server.pid, mix, args.alone, not args.lean_client)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(args, mix, samples, failures, wall, int(count), alone)


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        if name.strip() not in MIX:
            raise SystemExit(f"--mix: unknown endpoint {name!r}; use {', '.join(MIX)}")
        mix[name.strip()] = int(weight or 1)
    if "text_search" not in mix or "ping" not in mix:
        raise SystemExit("--mix must include text_search and ping (the floor)")
    return mix


def run_callers(
    url: str, clients: int, seconds: float, mix: dict[str, int], ssl_verify: bool = True
) -> tuple[dict, dict]:
    samples: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    until = time.perf_counter() + seconds
    threads = [
        threading.Thread(
            target=caller, args=(url, seed, until, mix, ssl_verify, samples, failures, lock)
        )
        for seed in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples, failures


def report(
    args: argparse.Namespace,
    mix: dict[str, int],
    samples: dict,
    failures: dict,
    wall: float,
    count: int,
    alone: dict[str, tuple[float, float]],
) -> None:
    print(f"machine: {machine()}")
    print(
        f"model {args.model}, {count} points, {args.clients} callers, {args.seconds:.0f} s, "
        f"{'lean' if args.lean_client else 'stock'} gradio_client, mix {json.dumps(mix)}"
        + (", text search does no work (--null-search)" if args.null_search else "")
    )
    rows = []
    figures: dict[str, float] = {}
    total = 0
    for name in mix:
        values = samples.get(name, [])
        total += len(values)
        p50 = statistics.median(values) if values else float("nan")
        p99 = percentile(values, 99) if values else float("nan")
        rows.append((name, str(len(values)), str(len(failures.get(name, []))),
                     f"{p50:.0f}", f"{p99:.0f}"))  # fmt: skip
        key = "trivial" if name == "ping" else name
        figures[f"{key}_p50_ms"] = p50
        figures[f"{key}_p99_ms"] = p99
    print_table(rows, ("endpoint", "calls", "failures", "p50 ms", "p99 ms"))
    figures["failures"] = sum(len(v) for v in failures.values())
    figures["text_search_added_p50_ms"] = figures["text_search_p50_ms"] - figures["trivial_p50_ms"]
    figures["requests_per_s"] = total / wall
    figures["points"] = count
    print(
        f"text search adds {figures['text_search_added_p50_ms']:.0f} ms p50 to the trivial "
        f"endpoint; {figures['requests_per_s']:.0f} requests/s in all"
    )
    print(f"\none caller at a time, {args.alone} calls per endpoint:")
    rows = [(name, f"{wall_ms:.0f}", f"{cpu_ms:.0f}") for name, (wall_ms, cpu_ms) in alone.items()]
    print_table(rows, ("endpoint", "p50 ms", "app CPU ms/call"))
    for name, (wall_ms, cpu_ms) in alone.items():
        key = "trivial" if name == "ping" else name
        figures[f"alone_{key}_p50_ms"] = wall_ms
        figures[f"alone_{key}_cpu_ms"] = cpu_ms
    figures["alone_text_search_added_p50_ms"] = alone["text_search"][0] - alone["ping"][0]
    print(f"alone, text search adds {figures['alone_text_search_added_p50_ms']:.0f} ms p50")
    print(result_line(figures))


if __name__ == "__main__":
    main()
