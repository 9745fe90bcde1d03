"""Image embeddings through the class-token-only last layer, and the malloc tuning."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_clip.model.clip import ClipModel
from fashion_clip.model.vision import image_features, is_clip_vit


def _pixels(model: ClipModel, n: int, seed: int = 0) -> torch.Tensor:
    height, width = model.preprocessor.output_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, height, width, generator=generator)


@pytest.mark.parametrize("name", ["tiny_model", "demo_model"])
def test_matches_get_image_features(name: str, request: pytest.FixtureRequest) -> None:
    model: ClipModel = request.getfixturevalue(name)
    pixels = _pixels(model, 5).to(model.device)
    torch_model = model.torch_model
    assert is_clip_vit(torch_model)
    with torch.inference_mode():
        expected = torch_model.get_image_features(pixel_values=pixels).pooler_output
        ours = image_features(torch_model, pixels)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    cosines = torch.nn.functional.cosine_similarity(ours, expected)
    assert float(cosines.min()) > 0.99999


@pytest.mark.parametrize("quantize", ["bf16", "int8"])
def test_matches_get_image_features_in_the_fast_precisions(quantize: str) -> None:
    model = ClipModel.load("demo", quantize=quantize, device="cpu")
    pixels = _pixels(model, 5)
    if quantize == "bf16":
        pixels = pixels.to(torch.bfloat16)
    with torch.inference_mode():
        expected = model.torch_model.get_image_features(pixel_values=pixels).pooler_output
        ours = image_features(model.torch_model, pixels)
    cosines = torch.nn.functional.cosine_similarity(ours.float(), expected.float())
    # bf16 rounds the same operations; int8 quantizes the last layer's class-token rows alone
    assert float(cosines.min()) > 0.999, cosines


def test_the_last_layer_runs_for_the_class_token_alone(tiny_model: ClipModel) -> None:
    layers = tiny_model.torch_model.vision_model.encoder.layers
    rows: dict[str, int] = {}

    def record(name: str):
        def hook(_module, inputs, _output) -> None:
            rows[name] = inputs[0].shape[1]  # tokens per image asking for attention

        return hook

    handles = [
        layers[-1].self_attn.q_proj.register_forward_hook(record("last")),
        layers[0].self_attn.q_proj.register_forward_hook(record("first")),
        # QuickGELU folded into the matrix products: the MLP module itself never runs
        layers[0].mlp.register_forward_hook(record("mlp")),
    ]
    try:
        embeddings = tiny_model.encode_pixels(_pixels(tiny_model, 2).numpy())
    finally:
        for handle in handles:
            handle.remove()
    tokens = 1 + (32 // 8) ** 2  # the class token and the tiny model's 4x4 patches
    assert rows == {"first": tokens, "last": 1}
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_other_architectures_take_get_image_features() -> None:
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(0)
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = SiglipConfig(
        text_config={**small, "num_attention_heads": 2, "vocab_size": 99},
        vision_config={**small, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
    )
    siglip = SiglipModel(config).eval()
    pixels = torch.randn(2, 3, 32, 32)
    assert not is_clip_vit(siglip)  # pooled by an attention head over every token
    with torch.inference_mode():
        expected = siglip.get_image_features(pixel_values=pixels).pooler_output
        torch.testing.assert_close(image_features(siglip, pixels), expected)


ALLOCATE_AND_COUNT_FAULTS = textwrap.dedent(
    """
    import resource, sys, torch
    from fashion_clip.model.allocator import keep_freed_memory
    if sys.argv[1] == "tuned":
        assert keep_freed_memory()
    F = torch.nn.functional
    x = torch.randn(1600, 768)  # a ViT-B/32 batch of 32: 32 x 50 tokens of width 768
    w1, w2 = torch.randn(3072, 768), torch.randn(768, 3072)
    def forward():  # MLP blocks' worth of activations: 20 MB and 5 MB tensors
        h = x
        for _ in range(4):
            a = F.linear(h, w1)
            a = a * torch.sigmoid(a)
            h = F.linear(a, w2) + h
        return h
    forward()
    faults = []
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        forward()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(sum(faults))
    """
)


def _glibc_without_huge_pages() -> bool:
    from fashion_clip.model.allocator import _is_glibc

    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    # With transparent huge pages always on, a 2 MiB page is one fault: the counts below shrink.
    return _is_glibc() and not (thp.exists() and "[always]" in thp.read_text())


@pytest.mark.skipif(not _glibc_without_huge_pages(), reason="counts glibc's page faults")
def test_tuned_malloc_reuses_activation_memory() -> None:
    def faults(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", ALLOCATE_AND_COUNT_FAULTS, mode],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(run.stdout.strip())

    default, tuned = faults("default"), faults("tuned")
    # Each page of a block handed back and mapped again costs a fault: 43,000-93,000 over
    # the six passes by default, measured; with the blocks kept in the heap, 0 or 4,800
    # (one 20 MB block, when the heap grows once more).
    assert default > 20_000, default
    assert tuned < 10_000, (tuned, default)


def test_a_user_setting_opts_out_of_the_tuning() -> None:
    check = "from fashion_clip.model.allocator import keep_freed_memory; print(keep_freed_memory())"
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    run = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, env=env
    )
    assert run.stdout.strip() == "False"


def test_loading_a_model_leaves_malloc_to_the_program(tiny_model_dir, monkeypatch) -> None:
    import fashion_clip.model.allocator

    calls = []
    monkeypatch.setattr(fashion_clip.model.allocator, "keep_freed_memory", lambda: calls.append(1))
    model = ClipModel.load(str(tiny_model_dir), device="cpu")
    assert calls == []  # process-wide: the app and the indexer ask for it, not the library
    fashion_clip.model.allocator.tune_for(model.device)
    fashion_clip.model.allocator.tune_for("cuda")  # only a CPU model's activations gain
    assert calls == [1]
