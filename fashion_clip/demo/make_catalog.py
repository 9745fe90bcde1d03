"""Write the shipped demo catalog: one product per (category, colour, pattern), 400 in all.

    python -m fashion_clip.demo.make_catalog [--out DIR] [--seed 2022]

Writes `catalog.jsonl` and `images/demo-NNNN.jpg` (256x256, JPEG quality 85). The same seed
gives byte-identical files. The demo model never trains on this seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from fashion_clip.demo import DEMO_CATALOG_DIR
from fashion_clip.demo.garments import generate_items

__all__ = ["CATALOG_SEED", "write_catalog"]

CATALOG_SEED = 2022
JPEG_QUALITY = 85
_BRANDS = ("Northwind", "Atelier Nova", "Lumen & Co", "Kestrel", "Maison Verde", "Urban Loom")
# Typical price ranges per category, in the shop's currency: keeps range filters meaningful.
_PRICES = {
    "t-shirt": (9, 35), "shirt": (25, 80), "dress": (35, 160), "skirt": (25, 90),
    "trousers": (30, 110), "shorts": (15, 50), "jacket": (60, 240), "shoes": (40, 180),
    "bag": (30, 260), "hat": (12, 60),
}  # fmt: skip

log = logging.getLogger(__name__)


def write_catalog(out_dir: Path = DEMO_CATALOG_DIR, seed: int = CATALOG_SEED) -> Path:
    """Render the 400-item catalog into `out_dir`, replacing its images; returns the jsonl path."""
    images = out_dir / "images"
    if images.exists():
        shutil.rmtree(images)  # a stale image from an older run must not ship
    images.mkdir(parents=True)
    extras = np.random.default_rng([seed, 1])  # prices and brands, apart from the pixels
    lines = []
    for number, (item, image) in enumerate(generate_items(None, seed=seed), start=1):
        item_id = f"demo-{number:04d}"
        low, high = _PRICES[item["category"]]
        row = {
            "id": item_id,
            "image": f"images/{item_id}.jpg",
            "caption": item["caption"],
            "category": item["category"],
            "color": item["color"],
            "pattern": item["pattern"],
            "price": round(float(extras.integers(low, high + 1)) - 0.01, 2),
            "brand": _BRANDS[int(extras.integers(len(_BRANDS)))],
        }
        image.save(out_dir / row["image"], "JPEG", quality=JPEG_QUALITY)
        lines.append(json.dumps(row, ensure_ascii=False))
    catalog = out_dir / "catalog.jsonl"
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return catalog


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO_CATALOG_DIR)
    parser.add_argument("--seed", type=int, default=CATALOG_SEED)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = write_catalog(args.out, args.seed)
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
