"""Localization heatmaps: shape, range and alignment, the masking fallback, errors, overlay
drawing, and the pointing accuracy of the default method with the demo model."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.localize_eval import evaluate, make_composites, score_heatmap
from fashion_clip.errors import ImageLoadError, InvalidInputError
from fashion_clip.model.clip import ClipModel
from fashion_clip.tasks.localize import (
    DEFAULT_METHOD,
    METHODS,
    heatmap_peak,
    letterbox,
    localize,
    resolve_method,
    unletterbox,
)
from fashion_clip.tasks.overlay import draw_heatmap

QUALITY_CASES = 48  # composites of seed 0; the benchmark measures on seed 1


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# ---------------------------------------------------------------------- shape and geometry
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size", [(50, 30), (30, 50), (32, 32), (7, 120)])
def test_map_has_the_image_size_and_unit_range(tiny_model, method, size) -> None:
    heatmap = localize(tiny_model, photo(*size), "red striped dress", method=method)
    assert heatmap.shape == (size[1], size[0]) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() == pytest.approx(1.0)
    x, y = heatmap_peak(heatmap)
    assert 0 <= x < size[0] and 0 <= y < size[1] and heatmap[y, x] == heatmap.max()


def test_a_map_sampled_at_another_size_is_the_full_map_scaled(tiny_model) -> None:
    image = photo(400, 200)
    full = localize(tiny_model, image, "red dress")
    small = localize(tiny_model, image, "red dress", size=(100, 50))
    assert small.shape == (50, 100) and small.max() == pytest.approx(1.0)
    # Every 4th pixel of the full map sits a pixel and a half from a small one's centre.
    np.testing.assert_allclose(small, full[1::4, 1::4], atol=0.05)
    for size in ((0, 10), (10,), (10.5, 20)):
        with pytest.raises(InvalidInputError, match="size must be"):
            localize(tiny_model, image, "red dress", size=size)


def test_higher_resolution_and_every_input_kind(tiny_model, tmp_path: Path) -> None:
    image = photo(64, 40)
    path = tmp_path / "look.png"
    image.save(path)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    maps = [
        localize(tiny_model, source, "blue shirt")
        for source in (image, str(path), path, buffer.getvalue(), np.asarray(image))
    ]
    for heatmap in maps[1:]:
        np.testing.assert_allclose(heatmap, maps[0], atol=1e-5)
    finer = localize(tiny_model, image, "blue shirt", resolution=64)  # 8x8 patches, not 4x4
    assert finer.shape == (40, 64) and not np.allclose(finer, maps[0], atol=1e-3)


def test_letterbox_and_back_keep_every_pixel_in_place() -> None:
    """A view-space map that is hot at one image point comes back hot at that point."""
    image = photo(300, 120)
    canvas, box = letterbox(image, 96)
    assert canvas.size == (96, 96) and box == (0, 29, 96, 67)  # 300x120 -> 96x38, centred
    # The letterbox's padding continues the image's border colour rather than grey.
    top_band = np.asarray(canvas)[: box[1]].reshape(-1, 3)
    assert np.all(top_band == top_band[0])
    for x, y in [(20, 30), (250, 100), (150, 60)]:
        grid = np.zeros((96, 96), dtype=np.float32)  # one cell per view pixel
        gx, gy = box[0] + (x + 0.5) * 96 / 300, box[1] + (y + 0.5) * 38 / 120
        grid[int(gy), int(gx)] = 1.0
        heatmap = unletterbox(grid, 96, box, image.size)
        px, py = heatmap_peak(heatmap)
        assert abs(px - x) <= 300 / 96 and abs(py - y) <= 120 / 38


# ---------------------------------------------------------------------- fallback
def _tiny_siglip(folder: Path) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipModel

    from fashion_clip.demo.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer(["red dress", "blue shirt"])
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = SiglipConfig(
        text_config={
            **tiny,
            "vocab_size": len(tokenizer),
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**tiny, "image_size": 32, "patch_size": 8, "num_attention_heads": 2},
    )
    logging.getLogger("transformers").setLevel(logging.ERROR)
    SiglipModel(config).save_pretrained(folder)
    tokenizer.model_max_length = 16
    tokenizer.save_pretrained(folder)
    processor = {
        "image_processor_type": "SiglipImageProcessor",
        "size": {"height": 32, "width": 32},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def test_models_without_a_single_pass_method_fall_back_to_masking(tmp_path: Path) -> None:
    # fp32 text: ClipModel.load's bf16 text path assumes CLIP's text_projection (reported).
    siglip = ClipModel.load(str(_tiny_siglip(tmp_path)), text_precision="fp32")
    assert resolve_method(siglip, "default") == "masking"
    assert resolve_method(siglip, DEFAULT_METHOD) == "masking"
    image = photo(40, 24)
    heatmap = localize(siglip, image, "red dress")
    assert heatmap.shape == (24, 40) and heatmap.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(heatmap, localize(siglip, image, "red dress", method="masking"))
    with pytest.raises(InvalidInputError, match="only available for CLIP"):
        localize(siglip, image, "red dress", resolution=64)


def test_clip_vits_use_the_single_pass_method_unless_masking_is_asked(tiny_model) -> None:
    assert resolve_method(tiny_model, "default") == DEFAULT_METHOD != "masking"
    assert resolve_method(tiny_model, "masking") == "masking"
    image = photo(40, 24)
    fast = localize(tiny_model, image, "red dress")
    slow = localize(tiny_model, image, "red dress", method="masking", grid=4)
    assert not np.allclose(fast, slow)


# ---------------------------------------------------------------------- errors
# Invisible text is refused as the app refuses it (`visible_text`): a zero-width space, a
# word joiner or a NUL shows nothing, and the model would answer it arbitrarily.
@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u200b", " \u200b\u2060 ", "\x00"])
def test_empty_text_is_refused(tiny_model, text) -> None:
    with pytest.raises(InvalidInputError, match="is empty; describe what to find"):
        localize(tiny_model, photo(32, 32), text)


def test_bad_arguments_get_messages_that_say_what_would_work(tiny_model) -> None:
    image = photo(32, 32)
    with pytest.raises(InvalidInputError, match=r"must be a string"):
        localize(tiny_model, image, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"'gradcam'.*available methods.*'masking'"):
        localize(tiny_model, image, "red dress", method="gradcam")
    with pytest.raises(InvalidInputError, match=r"\['stride'\].*available.*'grid'"):
        localize(tiny_model, image, "red dress", method="masking", stride=4)
    for resolution in (30, 0, 4, 48.0):
        with pytest.raises(InvalidInputError, match="multiple of the patch size 8"):
            localize(tiny_model, image, "red dress", resolution=resolution)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (b"", "empty file"),
        (b"<html>not found</html>", "not an image"),
        ("/no/such/look.jpg", "no such file"),
        (None, "not an image; give a path"),
        (42, "not an image; give a path"),
        (np.zeros((0, 5, 3), dtype=np.uint8), r"<array \(0, 5, 3\) uint8>: .*non-empty"),
        (np.zeros((5, 5, 5), dtype=np.uint8), r"\(5, 5, 5\) uint8>: .*C of 1 to 4"),
        (np.zeros((5, 5, 3), dtype=np.float64), r"float64>: .*must be uint8 \(0-255\)"),
    ],
)
def test_bad_images_are_refused_with_the_source_named(tiny_model, source, problem) -> None:
    with pytest.raises(ImageLoadError, match=problem):
        localize(tiny_model, source, "red dress")


def test_heatmap_peak_and_overlay_check_their_inputs() -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        heatmap_peak(np.zeros(5))
    with pytest.raises(InvalidInputError, match="does not match"):
        draw_heatmap(photo(10, 20), np.zeros((10, 20), dtype=np.float32))
    with pytest.raises(InvalidInputError, match="alpha"):
        draw_heatmap(photo(10, 20), np.zeros((20, 10), dtype=np.float32), alpha=1.5)


# ---------------------------------------------------------------------- overlay
def test_overlay_blends_colours_and_marks_the_peak() -> None:
    image = Image.new("RGB", (60, 40), (128, 128, 128))
    heatmap = np.zeros((40, 60), dtype=np.float32)
    heatmap[10, 45] = 1.0
    plain = draw_heatmap(image, heatmap, alpha=0.0, mark_peak=False)
    assert plain.mode == "RGB" and plain.size == image.size
    assert np.array_equal(np.asarray(plain), np.asarray(image))
    full = np.asarray(draw_heatmap(image, heatmap, alpha=1.0, mark_peak=False)).astype(int)
    cold, hot = full[30, 5], full[10, 45]
    assert cold[2] > cold[0] and hot[0] > hot[2]  # blue where cold, red where hot
    marked = np.asarray(draw_heatmap(image, heatmap, alpha=0.5)).astype(int)
    unmarked = np.asarray(draw_heatmap(image, heatmap, alpha=0.5, mark_peak=False)).astype(int)
    changed = np.argwhere(np.any(marked != unmarked, axis=-1))  # (k, 2) rows of (y, x)
    assert len(changed) and np.all(np.abs(changed - [10, 45]).max(axis=1) <= 8)


def test_a_border_patch_peak_is_that_patch_not_the_image_edge() -> None:
    # Resampled from a patch grid, a map is flat from a border patch's centre to the edge:
    # the peak used to be reported (and ringed) at x = 0, half its ring off the picture.
    grid = np.zeros((7, 7), dtype=np.float32)
    grid[3, 0] = 1.0  # the left border patch, half-way down
    heatmap = unletterbox(grid, 224, (0, 0, 224, 224), (224, 224))
    x, y = heatmap_peak(heatmap)
    assert 4 <= x < 16 and abs(y - 112) <= 1, (x, y)  # the flat stretch's middle, not 0
    assert heatmap_peak(np.array([[0.0, 1.0, 0.5]], dtype=np.float32)) == (1, 0)  # one maximum
    # Only values equal to rounding count as ties, at any scale; a flat map's peak is its
    # centre, found without index arrays the size of the map.
    assert heatmap_peak(np.array([[0, 9e-7, 1e-6, 5e-7, 3e-7]])) == (2, 0)
    assert heatmap_peak(np.array([[1000, 999.9995, 999.9991]], dtype=np.float32)) == (0, 0)
    assert heatmap_peak(np.ones((300, 500), dtype=np.float32)) == (250, 150)
    assert heatmap_peak(np.array([[1, 0, 0, 0, 1]])) in {(0, 0), (4, 0)}  # apart: one of them
    # The ring stays whole: as many marked pixels as for a peak in the middle.
    image = Image.new("RGB", (224, 224), (128, 128, 128))
    middle = np.zeros((224, 224), dtype=np.float32)
    middle[112, 112] = 1.0

    def ring_pixels(heatmap: np.ndarray) -> int:
        marked = np.asarray(draw_heatmap(image, heatmap, alpha=0.5)).astype(int)
        unmarked = np.asarray(draw_heatmap(image, heatmap, alpha=0.5, mark_peak=False))
        return int(np.count_nonzero(np.any(marked != unmarked, axis=-1)))

    assert ring_pixels(heatmap) >= 0.9 * ring_pixels(middle)


def test_scores_of_a_map_against_its_box() -> None:
    heatmap = np.zeros((100, 100), dtype=np.float32)
    heatmap[20:40, 30:60] = 1.0
    exact = score_heatmap(heatmap, (30, 20, 60, 40))
    assert exact == {"pointing": 1.0, "energy": 1.0, "iou": 1.0}
    elsewhere = score_heatmap(heatmap, (70, 70, 90, 90))
    assert elsewhere == {"pointing": 0.0, "energy": 0.0, "iou": 0.0}
    half = score_heatmap(heatmap, (45, 20, 100, 40))
    assert half["energy"] == pytest.approx(0.5) and half["iou"] == pytest.approx(15 / 70)


def test_composites_are_deterministic_with_one_caption_per_garment() -> None:
    first, again = make_composites(6, seed=3), make_composites(6, seed=3)
    for a, b in zip(first, again, strict=True):
        assert a.boxes == b.boxes and a.query == b.query
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        assert 2 <= len(a.boxes) <= 4 and len(set(a.captions)) == len(a.captions)
        categories = [caption.split()[-1] for caption in a.captions]
        colours = [caption.split()[0] for caption in a.captions]
        assert len(set(categories)) == len(categories) and len(set(colours)) == len(colours)
        for x0, y0, x1, y1 in a.boxes:
            assert 0 <= x0 < x1 <= a.image.width and 0 <= y0 < y1 <= a.image.height


# ---------------------------------------------------------------------- quality
@pytest.mark.slow
def test_default_method_points_at_the_named_garment(demo_model) -> None:
    """The issue's goal: pointing >= 0.85 with the demo model, and at least masking's."""
    cases = make_composites(QUALITY_CASES, seed=0)
    fast = evaluate(lambda case: localize(demo_model, case.image, case.query), cases)
    masked = evaluate(
        lambda case: localize(demo_model, case.image, case.query, method="masking"), cases
    )
    logging.getLogger(__name__).info("default %s, masking %s", fast, masked)
    assert fast["pointing"] >= 0.85, (fast, masked)
    assert fast["pointing"] >= masked["pointing"], (fast, masked)
    # Not an issue goal: a floor on how concentrated the map is. A uniform map scores the
    # boxes' share of the canvas, 0.12 on average here; the shipped demo model gives ~0.2.
    uniform = evaluate(lambda case: np.ones((case.image.height, case.image.width)), cases)
    assert fast["energy"] > uniform["energy"] + 0.04, (fast, uniform)
