"""Shared benchmark helpers: timing, test photos, and FashionCLIP-sized random models.

A ViT-B/32 CLIP built from `CLIPConfig()` with random weights has exactly FashionCLIP's
compute, so every speed figure uses it (pretrained weights cannot be downloaded here).
"""

from __future__ import annotations

import io
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(os.environ.get("BENCHMARK_OUT", "benchmarks/out"))


def machine() -> str:
    """One line describing where the figures were taken."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (
        f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__} "
        f"({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best wall time of `repeat` runs (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def median_ms(fn: Callable[[], object], runs: int = 30, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def product_photo(width: int = 1000, height: int = 1333, seed: int = 0) -> Image.Image:
    """A product-photo-like image: a garment-ish shape with texture on a lit backdrop."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    backdrop = rng.uniform(180, 245, size=3) * (1 - 0.25 * y) + rng.normal(0, 3, (height, 1, 3))
    image = Image.fromarray(
        np.clip(np.broadcast_to(backdrop, (height, width, 3)), 0, 255).astype(np.uint8)
    )
    draw = ImageDraw.Draw(image)
    color = tuple(int(c) for c in rng.integers(20, 230, size=3))
    cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6)
    w, h = width * rng.uniform(0.3, 0.5), height * rng.uniform(0.35, 0.6)
    draw.polygon(
        [
            (cx - w / 2, cy - h / 2),
            (cx + w / 2, cy - h / 2),
            (cx + w / 1.6, cy + h / 2),
            (cx - w / 1.6, cy + h / 2),
        ],
        fill=color,
    )
    for stripe in range(int(rng.integers(0, 12))):
        top = cy - h / 2 + stripe * h / 12
        draw.rectangle(
            (cx - w / 2, top, cx + w / 2, top + h / 40), fill=tuple(255 - c for c in color)
        )
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    noise = rng.normal(0, 4, size=(height, width, 3))  # sensor noise: JPEGs of photos are not flat
    return Image.fromarray(
        np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    )


def write_photos(folder: Path, n: int, size: tuple[int, int] = (1000, 1333)) -> list[Path]:
    """`n` JPEG product photos (quality 90), made once (on every core) and reused between runs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo-{size[0]}x{size[1]}-{i:05d}.jpg" for i in range(n)]
    missing = [(path, i, size) for i, path in enumerate(paths) if not path.exists()]
    if len(missing) > 8:
        with ProcessPoolExecutor() as pool:  # ~0.4 s of CPU per photo
            list(pool.map(_write_photo, missing, chunksize=8))
    else:
        for job in missing:
            _write_photo(job)
    return paths


def _write_photo(job: tuple[Path, int, tuple[int, int]]) -> None:
    path, seed, size = job
    buffer = io.BytesIO()
    product_photo(*size, seed=seed).save(buffer, "JPEG", quality=90)
    partial = path.with_suffix(".part")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)  # a killed run leaves no half-written photo behind


def vitb32_folder() -> Path:
    """A saved ViT-B/32 CLIP with random weights (FashionCLIP's shapes), built once."""
    folder = OUT / "vitb32-random"
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from fashion_clip.demo.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer(_vocabulary_texts())
    config = CLIPConfig()
    config.text_config.bos_token_id = tokenizer.bos_token_id
    config.text_config.eos_token_id = tokenizer.eos_token_id
    config.text_config.pad_token_id = tokenizer.pad_token_id
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)  # FashionCLIP's own: 224, bicubic, OpenAI stats
    (folder / "README.txt").write_text("Random ViT-B/32 CLIP for speed measurements only.\n")
    return folder


def _vocabulary_texts() -> list[str]:
    words = [
        "a",
        "photo",
        "of",
        "the",
        "red",
        "blue",
        "green",
        "black",
        "white",
        "striped",
        "dotted",
        "checked",
        "solid",
        "dress",
        "shirt",
        "t-shirt",
        "skirt",
        "trousers",
        "jacket",
        "shoes",
        "bag",
        "hat",
        "with",
        "long",
        "short",
        "sleeves",
        "cotton",
        "summer",
    ]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=8)) for _ in range(500)]


def result_line(figures: dict[str, float]) -> str:
    """The benchmark's last line: `RESULT` and one JSON object of flat numbers."""
    return "RESULT " + json.dumps({k: round(float(v), 4) for k, v in figures.items()})


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
