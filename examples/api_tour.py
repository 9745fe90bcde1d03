"""A walk through the Python API on the bundled demo dataset, offline.

    python examples/api_tour.py            # store in QDRANT_PATH (default data/qdrant)

This stands in for the original project's notebook: every call in the README's
"Python API" section, run on the demo model and the 400-product demo catalog.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

# `python examples/api_tour.py` puts examples/, not the repository root, on sys.path, and
# requirements.txt installs the dependencies only, not this package: make it importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fashion_clip import FashionCLIP, FCLIPDataset
from fashion_clip.tasks.overlay import draw_heatmap


def main(out_dir: Path = Path("data/tour")) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out_dir.mkdir(parents=True, exist_ok=True)

    # A pre-included dataset, by name; your own is FCLIPDataset(name, image_source_path=…,
    # image_source_type="local" | "s3" | "url", catalog=[{"id", "image", "caption", …}, …]).
    dataset = FCLIPDataset("demo")
    print(f"{dataset}: hash {dataset.hash}")

    # The model bound to the dataset: vectors are computed once, then reused from Qdrant.
    fclip = FashionCLIP("demo", dataset, approx=True)
    print(f"vectors for {fclip.collection.name}: {fclip.vectors_source}")

    # Embeddings: float32 (n, dim), unit length.
    first_ids = dataset.ids[:4]
    images = [dataset.image_source(product_id) for product_id in first_ids]
    image_vectors = fclip.encode_images(images, batch_size=32)
    text_vectors = fclip.encode_text(["red striped dress", "black bag"], batch_size=32)
    print(f"image vectors {image_vectors.shape}, text vectors {text_vectors.shape}")

    # Zero-shot classification: the best label per image, and the probabilities.
    labels = sorted({row["category"] for row in dataset})
    predicted = fclip.zero_shot_classification(images, labels)
    for product_id, label in zip(first_ids, predicted, strict=True):
        print(f"{product_id}: {dataset[product_id]['caption']!r} -> {label}")

    # Retrieval: catalog ids per text query, and by image.
    for query, ids in zip(
        ["red striped dress", "blue hat"],
        fclip.retrieval(["red striped dress", "blue hat"], top_k=5),
        strict=True,
    ):
        print(f"{query!r}: {[dataset[i]['caption'] for i in ids]}")
    similar = fclip.image_retrieval(images[:1], top_k=4)[0]
    print(f"looks like {first_ids[0]}: {similar}")
    dataset.display_products(similar).save(out_dir / "similar.png")

    # Localization: where in the image a concept sits, and an overlay to look at.
    heatmap = fclip.localize(images[0], dataset[first_ids[0]]["caption"])
    draw_heatmap(dataset.image(first_ids[0]), heatmap).save(out_dir / "heatmap.png")
    print(f"heatmap {heatmap.shape}, saved pictures to {out_dir}")
    fclip.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/tour"))
