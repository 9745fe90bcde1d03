"""The scripts that build the bundled demo: the catalog generator and the training script.

The shipped catalog and model are checked for quality in `test_demo_quality.py`; here the
scripts themselves run (training for a few steps only) and their outputs load as promised.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_clip.demo import DEMO_CATALOG_DIR
from fashion_clip.demo.make_catalog import CATALOG_SEED, write_catalog
from fashion_clip.demo.train import TRAIN_SEED, _zoom_out, evaluate_folder, main, train
from fashion_clip.demo.trainset import SIZES, TrainingPool
from fashion_clip.model.clip import ClipModel


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_catalog_generator_rebuilds_the_shipped_catalog(tmp_path: Path) -> None:
    write_catalog(tmp_path, CATALOG_SEED)
    shipped, rebuilt = _digest(DEMO_CATALOG_DIR), _digest(tmp_path)
    assert rebuilt == {name: shipped[name] for name in rebuilt}
    assert len(shipped) >= 401  # catalog.jsonl and its 400 images


def test_the_training_script_saves_a_folder_that_loads(tmp_path: Path) -> None:
    summary = train(tmp_path / "model", minutes=3, steps=3, pool_size=400, batch_size=16)
    assert summary["steps"] == 3 and summary["images"] == 400
    names = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "preprocessor_config.json" in names
    model = ClipModel.load(str(tmp_path / "model"))  # the library's own from_pretrained path
    vectors = model.encode_text(["red striped dress", "a photo of a hat"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    figures = evaluate_folder(tmp_path / "model")  # plain transformers, on the shipped catalog
    assert figures["n_items"] == 400 and 0.0 <= figures["recall@10"] <= 1.0


def test_training_refuses_the_catalog_seed() -> None:
    assert TRAIN_SEED != CATALOG_SEED
    with pytest.raises(SystemExit):
        main(["--seed", str(CATALOG_SEED), "--steps", "1"])


def test_every_rendered_chunk_holds_each_combination_once() -> None:
    with TrainingPool(800, seed=5, image_size=32, jpeg_quality=85) as pool:
        assert pool.refresh(wait=True) >= 400
        combos = pool.attrs[:400] @ np.array([SIZES[1] * SIZES[2], SIZES[2], 1])
        assert sorted(combos.tolist()) == list(range(400))
        batch = pool.batch(32, np.random.default_rng(0))
        assert len(batch) == 32 and batch.max() < pool.ready
        assert pool.images[: pool.ready].std() > 0  # real pictures, not the empty buffer


def test_zoom_out_shrinks_onto_the_backdrop_and_leaves_the_rest() -> None:
    side = 48
    pixels = torch.full((4, 3, side, side), -1.0)  # a backdrop of -1 ...
    pixels[:, :, 8:40, 8:40] = 2.0  # ... with a garment of 2 filling most of the frame
    rng = np.random.default_rng(3)
    untouched = _zoom_out(pixels, rng, share=0.0)
    assert torch.equal(untouched, pixels)
    zoomed = _zoom_out(pixels, rng, share=1.0, smallest=0.3)
    assert zoomed.shape == pixels.shape
    for image in zoomed:
        garment = (image[0] > 0.5).sum().item()
        assert 0 < garment < (pixels[0, 0] > 0.5).sum().item()  # smaller, still there
        assert (image[0] == -1.0).sum() > (pixels[0, 0] == -1.0).sum()  # more backdrop around it


def test_the_shipped_model_folder_is_a_standard_one() -> None:
    from fashion_clip.demo import DEMO_MODEL_DIR

    config = json.loads((DEMO_MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "clip"
    assert config["vision_config"]["image_size"] == 96
