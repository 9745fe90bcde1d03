"""Indexing speed end to end: a JPEG catalog into the embedded store, beside the reference.

    python -m benchmarks.index [--n 256] [--batch-size 32] [--repeat 1] [--no-int8] [--bf16]
        [--fp32]
        [--workers N] [--distinct N] [--reference-n N] [--switch-interval SECONDS]
        [--decode auto|threads|processes] [--pipeline-only] [--without-keywords]

N product photos of 1000x1333 (made once) and a JSONL catalog of them are indexed with a
random ViT-B/32 CLIP (FashionCLIP's compute) three ways, each in a fresh process so that peak
memory is its own:

- ours: `ingest.job.index_catalog` into the embedded Qdrant Edge store (draft-mode decoding
  and preprocessing in threads overlapped with the model, batched upserts, index build), the
  image model in the indexer's default precision: bf16 on CPUs with native bf16 (AVX-512
  BF16 / AMX), else fp32;
- reference: what a typical user writes: sequential full PIL decode, `CLIPImageProcessor`,
  fp32 `get_image_features` in batches of 32, `qdrant-client` local mode upserts;
- int8: ours with the opt-in dynamic int8 model;
- bf16 (with `--bf16`): ours with the bfloat16 image model forced (`--quantize bf16`), fast
  only on CPUs with native bf16 kernels (AVX-512 BF16 / AMX) and on GPUs;
- fp32 (with `--fp32`): ours with the fp32 image model forced (`--quantize fp32`): the path
  of CPUs without native bf16.

Model loading is left out of every timing; creating the collection, writing every point
durably and building the index are in. The model alone on ready-made pixel batches gives the
ceiling. Where CUDA is available every run uses the GPU (int8 is CPU-only and is left out).

For GPU runs, where the model takes a fraction of a millisecond per image: `--distinct 1024`
lets N rows share 1024 photo files (each row is still read, hashed, decoded and embedded;
making a photo costs ~0.4 s of CPU), and `--reference-n 1024` times the sequential reference
on its first 1024 rows only (it runs at tens of images/s; its rate does not depend on N).
`--switch-interval 0.0005` adds a run of ours with a shorter GIL switch interval (`switched`
says why), for the GPU, where the thread driving the model competes for the GIL.
`--pipeline-only` adds a run of ours with the image model replaced by free unit vectors: how
fast the pipeline around the model goes on its own (`pipeline_only_images_per_s`). Ours' CPU
is also split between the main thread (the loop and the model), the process's other threads
and the decoding processes (`cpu_split` says why that matters on a GPU).
`--without-keywords` adds a run of ours that writes no BM25 `keywords` vectors (as the indexer
did before keyword search): what keywords cost the indexer (`keywords_over_without`, the rate
with them over the rate without); with `--pipeline-only` too, also against the pipeline alone,
where nothing hides their cost (`pipeline_keywords_over_without`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    OUT,
    machine,
    peak_rss_mb,
    print_table,
    result_line,
    vitb32_folder,
    write_photos,
)

CATEGORIES = ["dress", "shirt", "skirt", "jacket", "trousers", "bag", "shoes", "hat"]


def write_catalog(n: int, distinct: int) -> tuple[Path, Path]:
    """The photos and a JSONL catalog of `n` rows naming them relative to their folder."""
    photos = write_photos(OUT / "photos", min(n, distinct))
    catalog = OUT / f"index-catalog-{n}-{distinct}.jsonl"
    with open(catalog, "w", encoding="utf-8") as f:
        for i in range(n):
            path = photos[i % len(photos)]
            row = {"id": f"sku-{i:07d}", "image": path.name, "category": CATEGORIES[i % 8]}
            f.write(json.dumps({**row, "price": round(9.99 + i % 50, 2)}) + "\n")
    return catalog, OUT / "photos"


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its finished children (decoding processes),
    user + system: the work done, whatever the load."""
    return sum(cpu_split().values())


def cpu_split() -> dict[str, float]:
    """CPU seconds so far of this thread (where the indexer runs its loop and the model), the
    process's other threads, and its finished children (the decoding processes).

    On a GPU the main thread gives up the GIL at every PyTorch call and waits to get it back
    while another thread of the process runs Python: the other threads' CPU is what it
    competes with. (On a CPU they include the model's own intra-op threads.)
    """
    process, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    main = time.thread_time()
    return {
        "main_thread": main,
        "other_threads": process.ru_utime + process.ru_stime - main,
        "children": children.ru_utime + children.ru_stime,
    }


class FreeModel:
    """Stands in for the model's image tower: unit vectors at no cost, so that a run measures
    the pipeline around the model (fetch, hash, decode, hand-over, store) on its own."""

    def __init__(self, model) -> None:
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((4096, model.dim)).astype(np.float32)
        self._vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def __call__(self, crops: np.ndarray, *, normalize: bool = True) -> np.ndarray:
        return self._vectors[: len(crops)]


def gpu() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)} (the model runs there)"
    return "GPU: none (CPU figures only)"


def _warm_up(encode) -> None:
    # oneDNN (or CUDA) sets up on the first call; neither side should pay for it in the timing.
    encode(np.zeros((2, 3, 224, 224), dtype=np.float32))


def run_ours(
    catalog: Path,
    photos: Path,
    work: Path,
    batch: int,
    quantize: str | None,
    workers: int | None,
    decode: str,
    *,
    free_model: bool = False,
    keywords: bool = True,
) -> dict:
    from fashion_clip.ingest.pipeline import IndexOptions, default_workers
    from fashion_clip.model import allocator
    from fashion_clip.model.clip import ClipModel
    from fashion_clip.store.embedded import EmbeddedStore

    model = ClipModel.load(str(vitb32_folder()), quantize=quantize, text_precision="fp32")
    allocator.tune_for(model.device)  # as the indexer's command does after loading
    model.encode_crops(np.zeros((2, 224, 224, 3), dtype=np.uint8))  # warm up, as below
    if free_model:
        model.encode_crops = FreeModel(model)
    workers = workers or default_workers()
    options = IndexOptions(
        batch_size=batch,
        workers=workers,
        progress=False,
        decode=decode,
    )
    store = EmbeddedStore(work / "qdrant")
    start, cpu_start = time.perf_counter(), cpu_split()
    summary = index_into(store, catalog, photos, model, options, keywords=keywords)
    seconds = time.perf_counter() - start
    cpu = {name: value - cpu_start[name] for name, value in cpu_split().items()}
    with store.open("bench") as collection:
        points = sorted(collection.iter_points(with_vectors=True), key=lambda p: str(p.id))
    np.save(work / "vectors.npy", np.stack([p.vectors["image"] for p in points]))
    return {
        "images": summary.indexed,
        "seconds": seconds,
        "cpu_seconds": sum(cpu.values()),
        **{f"cpu_{name}_s": value for name, value in cpu.items()},
        "peak_rss_mb": peak_rss_mb(),
        "workers": workers,
        "image_precision": model.image_precision,
        # where the time went: waiting for decoded images, the model, the store, the index
        **{f"stage_{name}": value for name, value in summary.stages.items()},
        "stage_index_build_s": seconds - summary.seconds,
    }


def index_into(store, catalog: Path, photos: Path, model, options, *, keywords: bool = True):
    """`ingest.job.index_catalog` of the catalog into a new collection `bench` of `store`;
    every row must be indexed. Returns the run's summary. Without `keywords`, the collection
    says it keeps none, so no point's BM25 vector is made or written (the indexer before
    keyword search)."""
    from fashion_clip.ingest.job import collection_spec, index_catalog, open_catalog
    from fashion_clip.ingest.report import Reporter
    from fashion_clip.ingest.sources import ImageRoot

    with open_catalog(str(catalog)) as opened, Reporter() as reporter:
        collection = store.create("bench", collection_spec(model, opened))
        if not keywords:
            collection.keyword_fields = lambda: None
            collection.set_keyword_fields = lambda fields=None: False
        summary = index_catalog(
            opened, ImageRoot(str(photos)), collection, model, reporter, options
        )
        collection.close()
    if summary.skipped or summary.indexed != opened.total:
        raise RuntimeError(f"not every row was indexed: {summary.line()}")
    return summary


def run_reference(catalog: Path, photos: Path, work: Path, batch: int, limit: int) -> dict:
    import torch
    from PIL import Image
    from qdrant_client import QdrantClient, models
    from transformers import CLIPImageProcessor, CLIPModel

    folder = vitb32_folder()
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the typical user's one line
    model = CLIPModel.from_pretrained(folder).eval().to(device)
    processor = CLIPImageProcessor.from_pretrained(folder)
    with torch.inference_mode():
        _warm_up(lambda x: model.get_image_features(pixel_values=torch.from_numpy(x).to(device)))
    client = QdrantClient(path=str(work / "local"))
    start, cpu_start = time.perf_counter(), cpu_seconds()
    client.create_collection(
        "bench",
        vectors_config={"image": models.VectorParams(size=512, distance=models.Distance.COSINE)},
    )
    rows = [json.loads(line) for line in catalog.read_text(encoding="utf-8").splitlines()]
    rows = rows[:limit]
    for first in range(0, len(rows), batch):
        chunk = rows[first : first + batch]
        images = [Image.open(photos / row["image"]).convert("RGB") for row in chunk]
        inputs = processor(images=images, return_tensors="pt").to(device)
        with torch.inference_mode():
            features = model.get_image_features(**inputs)
        features = getattr(features, "pooler_output", features)  # transformers 4 or 5
        vectors = torch.nn.functional.normalize(features, dim=-1).cpu().numpy()
        client.upsert(
            "bench",
            points=[
                models.PointStruct(id=first + i, vector={"image": v.tolist()}, payload=row)
                for i, (v, row) in enumerate(zip(vectors, chunk, strict=True))
            ],
        )
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    records = client.retrieve("bench", list(range(len(rows))), with_vectors=True)
    by_id = sorted(records, key=lambda r: rows[r.id]["id"])
    np.save(work / "vectors.npy", np.stack([np.asarray(r.vector["image"]) for r in by_id]))
    client.close()
    return {
        "images": len(rows),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_model_only(photos: Path, n: int, distinct: int, batch: int) -> dict:
    from fashion_clip.media.images import load_image
    from fashion_clip.model import allocator
    from fashion_clip.model.clip import ClipModel

    model = ClipModel.load(str(vitb32_folder()), text_precision="fp32")
    allocator.tune_for(model.device)  # as ours
    model.encode_crops(np.zeros((2, 224, 224, 3), dtype=np.uint8))  # warm up, as below
    side = model.preprocessor.min_decode_side
    paths = sorted(photos.glob("photo-1000x1333-*.jpg"))[: min(n, distinct)]
    crops = np.stack([model.preprocessor.crop_pixels(load_image(p, min_side=side)) for p in paths])
    batches = itertools.cycle([crops[i : i + batch] for i in range(0, len(crops), batch)])
    start, cpu_start = time.perf_counter(), cpu_seconds()
    done = 0
    while done < n:  # n images, cycling over the distinct ones, as the indexer feeds them
        crop_batch = next(batches)[: n - done]
        model.encode_crops(crop_batch)
        done += len(crop_batch)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    return {"images": n, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_rss_mb()}


def switched(interval: float, ours_args: tuple, args: argparse.Namespace) -> dict:
    """Ours with a shorter GIL switch interval. A thread that gives up the GIL waits up to the
    interval to get it back while other threads run Python; on a GPU the thread driving the
    model gives it up at every operation. (A 256-point store upsert beside one busy Python
    thread took 1.3 s at the default 5 ms, 0.25 s at 0.5 ms, on the 2-core machine.)"""
    sys.setswitchinterval(interval)
    return run_ours(*ours_args, None, args.workers, args.decode)


def in_subprocess(role: str, args: argparse.Namespace, work: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.index", "--role", role, "--n", str(args.n),
               "--batch-size", str(args.batch_size), "--work", str(work),
               "--distinct", str(args.distinct),
               "--reference-n", str(args.reference_n)]  # fmt: skip
    if args.workers:
        command += ["--workers", str(args.workers)]
    command += ["--decode", args.decode]
    if args.switch_interval:
        command += ["--switch-interval", str(args.switch_interval)]
    if args.pipeline_only:
        command += ["--pipeline-only"]
    if args.without_keywords:
        command += ["--without-keywords"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("ROLE ")]
    if result.returncode or not lines:
        raise RuntimeError(f"{role} run failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("ROLE ") :])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of 1000x1333 JPEGs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 run")
    parser.add_argument(
        "--bf16", action="store_true", help="also run --quantize bf16 (fast on native-bf16 CPUs)"
    )
    parser.add_argument(
        "--fp32", action="store_true",
        help="also run ours with --quantize fp32 (the path of CPUs without native bf16)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="runs per role; the best counts")
    parser.add_argument("--workers", type=int, help="ours' --workers (default: the indexer's)")
    parser.add_argument(
        "--decode", choices=("auto", "threads", "processes"), default="auto",
        help="where our run decodes (default: the indexer's: processes on a GPU, else threads)",
    )  # fmt: skip
    parser.add_argument(
        "--distinct", type=int, help="distinct photo files the N rows cycle over (default: N)"
    )
    parser.add_argument(
        "--reference-n", type=int, help="rows the sequential reference indexes (default: N)"
    )
    parser.add_argument(
        "--switch-interval", type=float,
        help="also run ours with sys.setswitchinterval(SECONDS) (Python's default: 0.005)",
    )  # fmt: skip
    parser.add_argument(
        "--pipeline-only", action="store_true",
        help="also run ours with the image model replaced by free unit vectors: the rate and "
        "CPU of everything around the model",
    )  # fmt: skip
    parser.add_argument(
        "--without-keywords", action="store_true",
        help="also run ours writing no BM25 keyword vectors: what keywords cost the indexer",
    )  # fmt: skip
    parser.add_argument("--role", help=argparse.SUPPRESS)  # internal: one measurement
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    args.distinct = min(args.distinct or args.n, args.n)
    args.reference_n = min(args.reference_n or args.n, args.n)
    catalog, photos = write_catalog(args.n, args.distinct)
    vitb32_folder()
    if args.role:
        print("ROLE " + json.dumps(run_role(args, catalog, photos)))
        return
    roles = roles_to_run(args)
    results, vectors = measure(roles, args)
    rate = {role: results[role]["images"] / results[role]["seconds"] for role in roles}
    cpu_ms = {role: 1000 * results[role]["cpu_seconds"] / results[role]["images"] for role in roles}
    figures = main_figures(results, vectors, rate, cpu_ms) | optional_figures(
        args, results, vectors, rate
    )
    print(f"machine: {machine()}; {gpu()}")
    print(
        f"{args.n} rows of 1000x1333 JPEGs ({args.distinct} distinct files) -> embedded store, "
        f"batch {args.batch_size}, {results['ours']['workers']} workers; the reference on "
        f"{args.reference_n} rows; a fresh process per run, best of {args.repeat}; ours' "
        f"image model in {results['ours']['image_precision']}"
    )
    rows = []
    for role in roles:
        run = results[role]
        # The pipeline alone runs no model: no comparison with the reference.
        ratio = "-" if role.startswith("pipeline") else f"{rate[role] / rate['reference']:.2f}x"
        rows.append(
            (
                role,
                f"{rate[role]:.2f}",
                f"{run['seconds']:.1f}",
                f"{cpu_ms[role]:.0f}",
                f"{run['peak_rss_mb']:.0f}",
                ratio,
            )
        )
    header = ("run", "images/s", "seconds", "CPU ms/image", "peak RSS MB", "vs reference")
    print_table(rows, header)
    print(result_line(figures))


def run_role(args: argparse.Namespace, catalog: Path, photos: Path) -> dict:
    """One measurement, in this (fresh) process: `args.role`'s run."""
    ours_args = (catalog, photos, args.work, args.batch_size)
    runs = {
        "ours": lambda: run_ours(*ours_args, None, args.workers, args.decode),
        "int8": lambda: run_ours(*ours_args, "int8", args.workers, args.decode),
        "bf16": lambda: run_ours(*ours_args, "bf16", args.workers, args.decode),
        "fp32": lambda: run_ours(*ours_args, "fp32", args.workers, args.decode),
        "switch": lambda: switched(args.switch_interval, ours_args, args),
        "pipeline": lambda: run_ours(*ours_args, None, args.workers, args.decode, free_model=True),
        "without_keywords": lambda: run_ours(
            *ours_args, None, args.workers, args.decode, keywords=False
        ),
        "pipeline_without_keywords": lambda: run_ours(
            *ours_args, None, args.workers, args.decode, free_model=True, keywords=False
        ),
        "reference": lambda: run_reference(
            catalog, photos, args.work, args.batch_size, args.reference_n
        ),
        "model_only": lambda: run_model_only(photos, args.n, args.distinct, args.batch_size),
    }
    return runs[args.role]()


def roles_to_run(args: argparse.Namespace) -> list[str]:
    on_gpu = not gpu().startswith("GPU: none")
    if on_gpu and not args.no_int8:
        print("CUDA is available: every run uses the GPU; int8 (CPU only) is left out")
    roles = ["model_only", "ours", "reference"] + ([] if args.no_int8 or on_gpu else ["int8"])
    if args.bf16:
        roles.append("bf16")
    if args.fp32:
        roles.append("fp32")
    if args.switch_interval:
        roles.append("switch")
    if args.pipeline_only:
        roles.append("pipeline")
    if args.without_keywords:
        roles.append("without_keywords")
    if args.without_keywords and args.pipeline_only:  # keywords against the pipeline alone
        roles.append("pipeline_without_keywords")
    return roles


def measure(roles: list[str], args: argparse.Namespace) -> tuple[dict[str, dict], dict]:
    """Each role's best run (a fresh process each), and the vectors each role stored."""
    results: dict[str, dict] = {}
    vectors = {}
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        for attempt in range(args.repeat):  # interleaved, so a busy spell hits every role
            for role in roles:
                work = Path(tmp) / f"{role}-{attempt}"
                work.mkdir()
                run = in_subprocess(role, args, work)
                best = results.get(role, run)
                fastest = run if run["seconds"] <= best["seconds"] else best  # stages go with it
                # CPU figures from the same run as the time (their split adds up).
                results[role] = fastest | {
                    "peak_rss_mb": max(best["peak_rss_mb"], run["peak_rss_mb"]),
                }
                if (work / "vectors.npy").exists() and not role.startswith("pipeline"):
                    vectors[role] = np.load(work / "vectors.npy")
    return results, vectors


def main_figures(results: dict, vectors: dict, rate: dict, cpu_ms: dict) -> dict[str, float]:
    """Ours against the reference and the model alone, and where our run's time went."""
    compared = len(vectors["reference"])  # the reference's rows are ours' first ones
    cosine = np.sum(vectors["ours"][:compared] * vectors["reference"], axis=1)
    figures = {
        "images_per_s": rate["ours"],
        "reference_images_per_s": rate["reference"],
        "ratio": rate["ours"] / rate["reference"],
        "model_only_images_per_s": rate["model_only"],
        "ours_over_model_only": rate["ours"] / rate["model_only"],
        "peak_rss_mb": results["ours"]["peak_rss_mb"],
        "reference_peak_rss_mb": results["reference"]["peak_rss_mb"],
        "image_cosine_min": float(cosine.min()),
        # CPU seconds per image: the work each path does, robust to other processes' load.
        "cpu_ms_per_image": cpu_ms["ours"],
        "reference_cpu_ms_per_image": cpu_ms["reference"],
        "model_only_cpu_ms_per_image": cpu_ms["model_only"],
        "cpu_ratio": cpu_ms["reference"] / cpu_ms["ours"],
        "workers": results["ours"]["workers"],
    }
    return figures | {  # where our run's time and CPU went, in ms per image
        f"{name.removesuffix('_s')}_ms_per_image": 1000 * value / results["ours"]["images"]
        for name, value in results["ours"].items()
        if name.startswith(("stage_", "cpu_")) and name != "cpu_seconds"
    }


def optional_figures(
    args: argparse.Namespace, results: dict, vectors: dict, rate: dict
) -> dict[str, float]:
    """The figures of the runs asked for by options: pipeline only, int8, switch, bf16, fp32."""
    figures: dict[str, float] = {}
    if "pipeline" in rate:
        figures |= {
            "pipeline_only_images_per_s": rate["pipeline"],
            **{
                f"pipeline_only_{name.removesuffix('_s')}_ms_per_image": 1000
                * value
                / results["pipeline"]["images"]
                for name, value in results["pipeline"].items()
                if name.startswith("cpu_") and name != "cpu_seconds"
            },
        }
    if "int8" in rate:
        int8_cosine = np.sum(vectors["int8"] * vectors["ours"], axis=1)
        figures |= {
            "int8_images_per_s": rate["int8"],
            "int8_ratio": rate["int8"] / rate["reference"],
            "int8_peak_rss_mb": results["int8"]["peak_rss_mb"],
            "int8_cosine_min": float(int8_cosine.min()),
        }
    if "switch" in rate:
        figures |= {
            "switch_interval_s": args.switch_interval,
            "switch_images_per_s": rate["switch"],
            "switch_encode_ms_per_image": 1000
            * results["switch"]["stage_encode_s"]
            / results["switch"]["images"],
        }
    if "pipeline_without_keywords" in rate:
        without = results["pipeline_without_keywords"]
        figures |= {
            "pipeline_without_keywords_images_per_s": rate["pipeline_without_keywords"],
            "pipeline_keywords_over_without": rate["pipeline"] / rate["pipeline_without_keywords"],
            "pipeline_without_keywords_cpu_ms_per_image": 1000
            * without["cpu_seconds"]
            / without["images"],
            "pipeline_cpu_ms_per_image": 1000
            * results["pipeline"]["cpu_seconds"]
            / results["pipeline"]["images"],
        }
    if "without_keywords" in rate:
        figures |= {
            "without_keywords_images_per_s": rate["without_keywords"],
            "keywords_over_without": rate["ours"] / rate["without_keywords"],
            "without_keywords_cpu_ms_per_image": 1000
            * results["without_keywords"]["cpu_seconds"]
            / results["without_keywords"]["images"],
        }
    if "bf16" in rate:
        bf16_cosine = np.sum(vectors["bf16"] * vectors["ours"], axis=1)
        figures |= {
            "bf16_images_per_s": rate["bf16"],
            "bf16_ratio": rate["bf16"] / rate["reference"],
            "bf16_cosine_min": float(bf16_cosine.min()),
        }
    if "fp32" in rate:
        compared = len(vectors["reference"])  # the reference's rows are ours' first ones
        fp32_cosine = np.sum(vectors["fp32"][:compared] * vectors["reference"], axis=1)
        figures |= {
            "fp32_images_per_s": rate["fp32"],
            "fp32_ratio": rate["fp32"] / rate["reference"],
            "fp32_cosine_min": float(fp32_cosine.min()),
        }
    return figures


if __name__ == "__main__":
    main()
