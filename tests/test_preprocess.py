"""Our preprocessing must reproduce the transformers processors closely."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from fashion_clip.media.images import decode_image
from fashion_clip.model.preprocess import ImagePreprocessor
from tests.image_corpus import jpeg_bytes, photo

SIZES = [(1000, 1333), (1333, 1000), (224, 224), (640, 480), (300, 1200), (100, 80), (225, 500)]


def _reference_processor(**kwargs):
    from transformers import CLIPImageProcessor

    logging.getLogger("transformers").setLevel(logging.ERROR)
    return CLIPImageProcessor(**kwargs)


@pytest.mark.parametrize("size", SIZES)
def test_matches_clip_image_processor(size: tuple[int, int]) -> None:
    reference = _reference_processor()
    ours = ImagePreprocessor.from_config(reference.to_dict())
    image = photo(*size, seed=sum(size))
    expected = reference(images=[image], return_tensors="np")["pixel_values"]
    got = ours([image])
    assert got.shape == expected.shape == (1, 3, 224, 224)
    assert got.dtype == np.float32
    # One 8-bit level is 1/255/std ~ 0.015 after normalisation; allow a couple of pixels there.
    assert np.abs(got - expected).mean() < 1e-3
    assert np.abs(got - expected).max() < 0.05


def test_matches_a_small_model_config() -> None:
    reference = _reference_processor(
        size={"shortest_edge": 96},
        crop_size={"height": 96, "width": 96},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
    )
    ours = ImagePreprocessor.from_config(reference.to_dict())
    image = photo(256, 256, seed=3)
    expected = reference(images=[image], return_tensors="np")["pixel_values"]
    assert np.abs(ours([image]) - expected).max() < 0.05


def test_siglip_style_square_resize_without_crop() -> None:
    config = {
        "do_resize": True,
        "size": {"height": 64, "width": 64},
        "resample": 2,
        "do_center_crop": False,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "rescale_factor": 1 / 255,
    }
    ours = ImagePreprocessor.from_config(config)
    image = photo(100, 50)
    expected = (np.asarray(image.resize((64, 64), Image.Resampling.BILINEAR)) / 255 - 0.5) / 0.5
    assert np.abs(ours([image])[0] - expected.transpose(2, 0, 1)).max() < 1e-5


def test_small_images_are_padded_like_the_processor() -> None:
    reference = _reference_processor(do_resize=False)
    ours = ImagePreprocessor.from_config(reference.to_dict())
    image = photo(100, 80)
    expected = reference(images=[image], return_tensors="np")["pixel_values"]
    assert np.abs(ours([image]) - expected).max() < 1e-5


def test_draft_decoding_stays_close_to_a_full_decode() -> None:
    ours = ImagePreprocessor()
    data = jpeg_bytes(photo(1000, 1333, seed=7), quality=90)
    full = ours([decode_image(data)])
    draft = ours([decode_image(data, min_side=ours.min_decode_side)])
    cosine = float((full.ravel() @ draft.ravel()) / np.linalg.norm(full) / np.linalg.norm(draft))
    assert cosine > 0.999
