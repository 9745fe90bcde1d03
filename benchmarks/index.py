"""Indexing speed end to end: a JPEG catalog into the embedded store, beside the reference.

    python -m benchmarks.index [--n 256] [--batch-size 32] [--repeat 1] [--no-int8] [--bf16]

N product photos of 1000x1333 (made once) and a JSONL catalog of them are indexed with a
random ViT-B/32 CLIP (FashionCLIP's compute) three ways, each in a fresh process so that peak
memory is its own:

- ours: `indexer.job.index_catalog` into the embedded Qdrant Edge store (draft-mode decoding
  and preprocessing in threads overlapped with the fp32 model, batched upserts, index build);
- reference: what a typical user writes: sequential full PIL decode, `CLIPImageProcessor`,
  fp32 `get_image_features` in batches of 32, `qdrant-client` local mode upserts;
- int8: ours with the opt-in dynamic int8 model;
- bf16 (with `--bf16`): ours with the opt-in bfloat16 model (`--quantize bf16`), fast only
  on CPUs with native bf16 kernels (AVX-512 BF16 / AMX) and on GPUs.

Model loading is left out of every timing; creating the collection and writing every point
durably is in. The model alone on ready-made pixel batches gives the ceiling.
"""

from __future__ import annotations

import argparse
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


def write_catalog(n: int) -> tuple[Path, Path]:
    """The photos and a JSONL catalog naming them relative to their folder."""
    photos = write_photos(OUT / "photos", n)
    catalog = OUT / f"index-catalog-{n}.jsonl"
    with open(catalog, "w", encoding="utf-8") as f:
        for i, path in enumerate(photos):
            row = {"id": f"sku-{i:05d}", "image": path.name, "category": CATEGORIES[i % 8]}
            f.write(json.dumps({**row, "price": round(9.99 + i % 50, 2)}) + "\n")
    return catalog, OUT / "photos"


def cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system): the work done, whatever the load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def gpu() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)} (the model runs there)"
    return "GPU: none (CPU figures only)"


def _warm_up(encode) -> None:
    # oneDNN (or CUDA) sets up on the first call; neither side should pay for it in the timing.
    encode(np.zeros((2, 3, 224, 224), dtype=np.float32))


def run_ours(catalog: Path, photos: Path, work: Path, batch: int, quantize: str | None) -> dict:
    from fashion_clip.model import ClipModel
    from fashion_clip.store.embedded import EmbeddedStore
    from indexer.job import collection_spec, index_catalog, open_catalog
    from indexer.pipeline import IndexOptions
    from indexer.report import Reporter
    from indexer.sources import ImageRoot

    model = ClipModel.load(str(vitb32_folder()), quantize=quantize, text_precision="fp32")
    _warm_up(model.encode_pixels)
    options = IndexOptions(batch_size=batch, progress=False, precision=quantize or "fp32")
    store = EmbeddedStore(work / "qdrant")
    start, cpu_start = time.perf_counter(), cpu_seconds()
    with open_catalog(str(catalog)) as opened, Reporter() as reporter:
        collection = store.create("bench", collection_spec(model, opened))
        summary = index_catalog(
            opened, ImageRoot(str(photos)), collection, model, reporter, options
        )
        collection.close()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    with store.open("bench") as collection:
        points = sorted(collection.iter_points(with_vectors=True), key=lambda p: str(p.id))
    np.save(work / "vectors.npy", np.stack([p.vectors["image"] for p in points]))
    if summary.skipped or summary.indexed != opened.total:
        raise RuntimeError(f"not every row was indexed: {summary.line()}")
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_rss_mb()}


def run_reference(catalog: Path, photos: Path, work: Path, batch: int) -> dict:
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
    for first in range(0, len(rows), batch):
        chunk = rows[first : first + batch]
        images = [Image.open(photos / row["image"]).convert("RGB") for row in chunk]
        inputs = processor(images=images, return_tensors="pt").to(device)
        with torch.inference_mode():
            features = model.get_image_features(**inputs).pooler_output
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
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_rss_mb()}


def run_model_only(photos: Path, n: int, batch: int) -> dict:
    from fashion_clip.images import load_image
    from fashion_clip.model import ClipModel

    model = ClipModel.load(str(vitb32_folder()), text_precision="fp32")
    _warm_up(model.encode_pixels)
    side = model.preprocessor.min_decode_side
    paths = sorted(photos.glob("photo-1000x1333-*.jpg"))[:n]
    pixels = model.preprocessor([load_image(p, min_side=side) for p in paths])
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for first in range(0, n, batch):
        model.encode_pixels(pixels[first : first + batch])
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_rss_mb()}


def in_subprocess(role: str, args: argparse.Namespace, work: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.index", "--role", role, "--n", str(args.n),
               "--batch-size", str(args.batch_size), "--work", str(work)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("ROLE ")]
    if result.returncode or not lines:
        raise RuntimeError(f"{role} run failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("ROLE ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="number of 1000x1333 JPEGs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 run")
    parser.add_argument(
        "--bf16", action="store_true", help="also run --quantize bf16 (fast on native-bf16 CPUs)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per role; the best counts")
    parser.add_argument("--role", help=argparse.SUPPRESS)  # internal: one measurement
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    catalog, photos = write_catalog(args.n)
    vitb32_folder()

    if args.role:
        runs = {
            "ours": lambda: run_ours(catalog, photos, args.work, args.batch_size, None),
            "int8": lambda: run_ours(catalog, photos, args.work, args.batch_size, "int8"),
            "bf16": lambda: run_ours(catalog, photos, args.work, args.batch_size, "bf16"),
            "reference": lambda: run_reference(catalog, photos, args.work, args.batch_size),
            "model_only": lambda: run_model_only(photos, args.n, args.batch_size),
        }
        print("ROLE " + json.dumps(runs[args.role]()))
        return

    roles = ["model_only", "ours", "reference"] + ([] if args.no_int8 else ["int8"])
    if args.bf16:
        roles.append("bf16")
    results: dict[str, dict] = {}
    vectors = {}
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        for attempt in range(args.repeat):  # interleaved, so a busy spell hits every role
            for role in roles:
                work = Path(tmp) / f"{role}-{attempt}"
                work.mkdir()
                run = in_subprocess(role, args, work)
                best = results.setdefault(role, run)
                best["seconds"] = min(best["seconds"], run["seconds"])
                best["cpu_seconds"] = min(best["cpu_seconds"], run["cpu_seconds"])
                best["peak_rss_mb"] = max(best["peak_rss_mb"], run["peak_rss_mb"])
                if (work / "vectors.npy").exists():
                    vectors[role] = np.load(work / "vectors.npy")

    n = args.n
    rate = {role: n / results[role]["seconds"] for role in roles}
    cosine = np.sum(vectors["ours"] * vectors["reference"], axis=1)
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
        "cpu_ms_per_image": 1000 * results["ours"]["cpu_seconds"] / n,
        "reference_cpu_ms_per_image": 1000 * results["reference"]["cpu_seconds"] / n,
        "model_only_cpu_ms_per_image": 1000 * results["model_only"]["cpu_seconds"] / n,
        "cpu_ratio": results["reference"]["cpu_seconds"] / results["ours"]["cpu_seconds"],
    }
    if "int8" in rate:
        int8_cosine = np.sum(vectors["int8"] * vectors["ours"], axis=1)
        figures |= {
            "int8_images_per_s": rate["int8"],
            "int8_ratio": rate["int8"] / rate["reference"],
            "int8_peak_rss_mb": results["int8"]["peak_rss_mb"],
            "int8_cosine_min": float(int8_cosine.min()),
        }
    if "bf16" in rate:
        bf16_cosine = np.sum(vectors["bf16"] * vectors["ours"], axis=1)
        figures |= {
            "bf16_images_per_s": rate["bf16"],
            "bf16_ratio": rate["bf16"] / rate["reference"],
            "bf16_cosine_min": float(bf16_cosine.min()),
        }
    print(f"machine: {machine()}; {gpu()}")
    print(
        f"{n} JPEGs of 1000x1333 -> embedded store, batch {args.batch_size}; a fresh process "
        f"per run, best of {args.repeat}"
    )
    rows = []
    for role in roles:
        run = results[role]
        ratio = f"{rate[role] / rate['reference']:.2f}x"
        cpu = f"{1000 * run['cpu_seconds'] / n:.0f}"
        rows.append(
            (
                role,
                f"{rate[role]:.2f}",
                f"{run['seconds']:.1f}",
                cpu,
                f"{run['peak_rss_mb']:.0f}",
                ratio,
            )
        )
    header = ("run", "images/s", "seconds", "CPU ms/image", "peak RSS MB", "vs reference")
    print_table(rows, header)
    print(result_line(figures))


if __name__ == "__main__":
    main()
