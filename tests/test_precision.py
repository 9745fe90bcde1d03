"""The image tower's precision: bf16 by default on CPUs with native bf16, fp32 elsewhere.

The quality guard: bf16 image vectors stay within cosine 0.999 of fp32 on a ViT-B/32 of
FashionCLIP's shapes, and the demo model's retrieval and zero-shot figures move by < 0.01.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_clip.api.fclip import FashionCLIP
from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_CATALOG_FILE
from fashion_clip.errors import ConfigurationError
from fashion_clip.model import precision
from fashion_clip.model.clip import ClipModel, ModelInfo
from fashion_clip.model.preprocess import ImagePreprocessor
from fashion_clip.model.runtime import load_configured_model
from fashion_clip.settings import load_settings
from fashion_clip.tasks.classify import best_labels, label_probabilities
from fashion_clip.tasks.embed import encode_images
from fashion_clip.tasks.metrics import classification_metrics, retrieval_metrics

# /proc/cpuinfo's lines as Linux writes them, cut short
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ICE_LAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
ZEN_2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"cpuinfo-{len(text)}"
    path.write_text(text, encoding="utf-8")
    return path


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    flags = precision.cpu_flags(_cpuinfo(tmp_path, SAPPHIRE_RAPIDS))
    assert {"avx512_bf16", "amx_bf16"} <= flags
    assert precision.native_bf16(flags)
    assert precision.native_bf16(["avx512_bf16"])  # Cooper Lake, Zen 4: no AMX
    # AVX-512 without its BF16 extension, or AVX2 only: bf16 would be emulated, slower
    assert not precision.native_bf16(precision.cpu_flags(_cpuinfo(tmp_path, ICE_LAKE)))
    assert not precision.native_bf16(precision.cpu_flags(_cpuinfo(tmp_path, ZEN_2)))
    assert precision.cpu_flags(tmp_path / "absent") == frozenset()  # not Linux: fp32


def test_auto_runs_images_in_bf16_only_where_the_cpu_has_it() -> None:
    native = ClipModel.load("demo", native_bf16=True)
    assert native.image_precision == "bf16"
    assert native.torch_model.vision_model.embeddings.patch_embedding.weight.dtype == torch.bfloat16
    assert native.torch_model.visual_projection.weight.dtype == torch.bfloat16
    assert native.torch_model.text_model.embeddings.token_embedding.weight.dtype == torch.float32
    emulated = ClipModel.load("demo", native_bf16=False)
    assert (emulated.image_precision, emulated.text_precision) == ("fp32", "fp32")
    assert emulated.torch_model.visual_projection.weight.dtype == torch.float32
    # this machine's own answer is the flags' answer
    default = ClipModel.load("demo")
    assert default.image_precision == ("bf16" if precision.native_bf16() else "fp32")
    assert precision.image_mode("auto", "cuda", native=True) == "fp32"  # a GPU: fp32


def test_an_explicit_precision_overrides_auto() -> None:
    assert ClipModel.load("demo", quantize="fp32", native_bf16=True).image_precision == "fp32"
    forced = ClipModel.load("demo", quantize="bf16", native_bf16=False)
    assert (forced.image_precision, forced.text_precision) == ("bf16", "fp32")
    int8 = ClipModel.load("demo", quantize="int8", native_bf16=True)
    assert (int8.image_precision, int8.text_precision) == ("int8", "int8")
    with pytest.raises(ConfigurationError, match="quantize='fp16'.*'auto', 'fp32', 'bf16'"):
        ClipModel.load("demo", quantize="fp16")


def test_the_image_precision_setting_reaches_the_model() -> None:
    settings = load_settings({"FASHION_CLIP_IMAGE_PRECISION": "FP32"})
    assert settings.image_precision == "fp32"
    model, _ = load_configured_model(settings, "demo")
    assert model.image_precision == "fp32"
    model, _ = load_configured_model(settings, "demo", quantize="int8")  # --quantize wins
    assert model.image_precision == "int8"
    api = FashionCLIP("demo", settings=settings)  # the Python API reads it too
    assert api.model.image_precision == "fp32"
    assert FashionCLIP("demo", settings=settings, quantize="bf16").model.image_precision == "bf16"
    assert load_settings({}).image_precision is None
    with pytest.raises(ConfigurationError, match="FASHION_CLIP_IMAGE_PRECISION='fp16'.*bf16"):
        load_settings({"FASHION_CLIP_IMAGE_PRECISION": "fp16"})


def _demo_catalog() -> list[dict]:
    return [json.loads(line) for line in DEMO_CATALOG_FILE.read_text().splitlines() if line]


def test_bf16_images_stay_within_cosine_0_999_of_fp32_on_vit_b32() -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    fp32 = CLIPModel(CLIPConfig()).eval()  # ViT-B/32: FashionCLIP's compute, random weights
    bf16, vision_dtype = precision.apply(copy.deepcopy(fp32), "bf16", "fp32", "cpu")
    preprocessor = ImagePreprocessor.from_config(CLIPImageProcessor().to_dict())
    info = ModelInfo("vit-b32", None, "clip", 512)
    photos = [DEMO_CATALOG_DIR / item["image"] for item in _demo_catalog()[:24]]
    vectors = [
        encode_images(ClipModel(model, None, preprocessor, info, "cpu", vision_dtype=dtype), photos)
        for model, dtype in ((fp32, None), (bf16, vision_dtype))
    ]
    cosines = np.sum(vectors[0] * vectors[1], axis=1)
    assert float(cosines.min()) >= 0.999, cosines
    assert float(cosines.min()) < 1.0  # bf16 did run: its vectors are not fp32's


def _demo_figures(model: ClipModel, catalog: list[dict]) -> dict[str, float]:
    images = encode_images(model, [DEMO_CATALOG_DIR / item["image"] for item in catalog])
    captions = model.encode_text([item["caption"] for item in catalog])
    figures = retrieval_metrics(captions, images, ks=(1, 5, 10))
    for field in ("category", "color", "pattern"):
        labels = sorted({item[field] for item in catalog})
        predicted = best_labels(label_probabilities(model, images, labels), labels)
        truth = [item[field] for item in catalog]
        figures[f"{field}_accuracy"] = classification_metrics(truth, predicted)["accuracy"]
    return figures


def test_the_demo_models_figures_in_bf16_are_fp32s_within_0_01(demo_model: ClipModel) -> None:
    catalog = _demo_catalog()
    bf16 = ClipModel.load("demo", native_bf16=True)  # what auto gives on this kind of CPU
    assert (demo_model.image_precision, bf16.image_precision) == ("fp32", "bf16")
    reference, figures = _demo_figures(demo_model, catalog), _demo_figures(bf16, catalog)
    assert sorted(figures) == sorted(reference)
    for name, value in figures.items():
        assert abs(value - reference[name]) <= 0.01, (name, value, reference[name])
