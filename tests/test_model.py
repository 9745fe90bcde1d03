"""Model loading and encoding, on a tiny random CLIP saved and re-loaded like a real one."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_clip.api.fclip import FashionCLIP
from fashion_clip.errors import (
    ConfigurationError,
    ImageLoadError,
    InvalidInputError,
    ModelLoadError,
    ModelUnavailableError,
)
from fashion_clip.model.checkpoints import resolve_source
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import resolve_model_name
from tests.image_corpus import jpeg_bytes, photo


def test_loads_a_local_folder(tiny_model: ClipModel, tiny_model_dir: Path) -> None:
    assert tiny_model.info.kind == "clip"
    assert tiny_model.dim == 16
    assert tiny_model.device == "cpu"
    assert tiny_model.info.name == str(tiny_model_dir)
    assert tiny_model.preprocessor.output_size == (32, 32)


def test_text_embeddings_are_unit_float32_and_padding_free(tiny_model: ClipModel) -> None:
    texts = ["red dress", "a photo of a black checked jacket with long sleeves", ""]
    batch = tiny_model.encode_text(texts)
    assert batch.shape == (3, 16) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # Each text alone (no padding at all) gives the same vector as inside a padded batch.
    for i, text in enumerate(texts):
        np.testing.assert_allclose(tiny_model.encode_text([text])[0], batch[i], atol=1e-5)
    raw = tiny_model.encode_text(texts, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_single_query_is_not_padded_to_77(tiny_model: ClipModel) -> None:
    tokens = tiny_model.tokenizer(["red dress"], padding=True, return_tensors="pt")
    assert tokens["input_ids"].shape[1] < 10


def test_image_embeddings_match_the_transformers_reference(
    tiny_model: ClipModel, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    images = [photo(300, 400, seed=i) for i in range(4)]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    ours = FashionCLIP(model=tiny_model).encode_images(paths, batch_size=3)
    reference_model = CLIPModel.from_pretrained(tiny_model_dir).eval()
    processor = CLIPImageProcessor.from_pretrained(tiny_model_dir)
    with torch.inference_mode():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        expected = reference_model.get_image_features(pixel_values=pixels).pooler_output
    expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    assert ours.shape == (4, 16) and ours.dtype == np.float32
    assert np.min(np.sum(ours * expected, axis=1)) > 0.999


def test_every_kind_of_image_source(tiny_model: ClipModel, tmp_path: Path) -> None:
    image = photo(64, 48)
    path = tmp_path / "x.jpg"
    data = jpeg_bytes(image, quality=95)
    path.write_bytes(data)
    fclip = FashionCLIP(model=tiny_model)
    vectors = fclip.encode_images([path, str(path), data, io.BytesIO(data), Image.open(path)])
    assert vectors.shape == (5, 16)
    assert np.min(vectors @ vectors[0]) > 0.9999  # the same picture, however it arrives


def test_batches_do_not_change_results(tiny_model: ClipModel) -> None:
    images = [photo(50, 70, seed=i) for i in range(5)]
    fclip = FashionCLIP(model=tiny_model)
    np.testing.assert_allclose(
        fclip.encode_images(images, batch_size=1),
        fclip.encode_images(images, batch_size=4),
        atol=1e-5,
    )
    assert fclip.encode_images([]).shape == (0, 16)


def test_bad_image_names_the_source(tiny_model: ClipModel, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a picture")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        FashionCLIP(model=tiny_model).encode_images([photo(), bad])


def test_fast_precisions_stay_close_to_fp32(tiny_model_dir: Path, tiny_model: ClipModel) -> None:
    texts = ["red dress", "blue shirt with long sleeves"]
    images = [photo(60, 60, seed=i) for i in range(3)]
    reference_text = tiny_model.encode_text(texts)
    reference_images = FashionCLIP(model=tiny_model).encode_images(images)
    bf16_text = ClipModel.load(str(tiny_model_dir), text_precision="bf16")
    assert np.min(np.sum(bf16_text.encode_text(texts) * reference_text, axis=1)) > 0.999
    # images in fp32 (not auto's bf16 on a native-bf16 CPU): this is about the text tower
    int8_text = ClipModel.load(str(tiny_model_dir), quantize="fp32", text_precision="int8")
    assert np.min(np.sum(int8_text.encode_text(texts) * reference_text, axis=1)) > 0.99
    fast_text = ClipModel.load(str(tiny_model_dir), text_precision="fast")  # the Space's
    assert (fast_text.text_precision, int8_text.text_precision) == ("fp32", "int8")  # small
    assert (tiny_model.text_precision, bf16_text.text_precision) == ("fp32", "bf16")
    # only the text tower changes: images come out exactly as in fp32
    same = FashionCLIP(model=int8_text).encode_images(images)
    np.testing.assert_allclose(same, reference_images, atol=1e-6)
    for mode in ("int8", "bf16"):
        fast = ClipModel.load(str(tiny_model_dir), quantize=mode)
        assert np.min(np.sum(fast.encode_text(texts) * reference_text, axis=1)) > 0.99
        vectors = FashionCLIP(model=fast).encode_images(images)
        assert vectors.dtype == np.float32
        assert np.min(np.sum(vectors * reference_images, axis=1)) > 0.99
    with pytest.raises(ConfigurationError, match="int4"):
        ClipModel.load(str(tiny_model_dir), quantize="int4")
    with pytest.raises(ConfigurationError, match="text_precision"):
        ClipModel.load(str(tiny_model_dir), text_precision="fp8")


def test_fast_text_is_int8_on_the_cpu_for_towers_large_enough_to_gain() -> None:
    from fashion_clip.model.precision import SMALL_TEXT_TOWER, text_mode

    assert text_mode("fast", "cpu", 63_000_000) == "int8"  # ViT-B/32's, FashionCLIP's
    assert text_mode("fast", "cpu", SMALL_TEXT_TOWER - 1) == "fp32"  # the demo model's
    assert text_mode("auto", "cpu", SMALL_TEXT_TOWER - 1) == "fp32"
    assert text_mode("fast", "cuda", 63_000_000) == text_mode("auto", "cuda") == "fp32"
    assert text_mode("int8", "cpu", 1000) == "int8"  # asked for by name: as asked


def test_zero_shot_classification(tiny_model: ClipModel) -> None:
    fclip = FashionCLIP(model=tiny_model)
    images = [photo(40, 40, seed=i) for i in range(3)]
    labels = ["dress", "shirt", "shoes"]
    probabilities = fclip.label_probabilities(images, labels)
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    best = fclip.zero_shot_classification(images, "dress, shirt ,shoes,,")
    assert best == [labels[i] for i in probabilities.argmax(axis=1)]
    with pytest.raises(InvalidInputError, match="no labels"):
        fclip.zero_shot_classification(images, " , ")
    with pytest.raises(InvalidInputError, match="template"):
        fclip.label_probabilities(images, labels, templates=["no slot"])


def test_aliases_and_sources() -> None:
    assert resolve_model_name("fashion-clip") == "patrickjohncyh/fashion-clip"
    assert resolve_model_name("openai/clip-vit-base-patch32") == "openai/clip-vit-base-patch32"
    source, local = resolve_source("demo")
    assert local and Path(source, "config.json").exists()
    assert resolve_source("someone/some-model") == ("someone/some-model", False)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        ClipModel.load(str(tmp_path / "no" / "such" / "model"))


def test_a_folder_without_weights_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ModelLoadError, match=str(tmp_path.name)):
        ClipModel.load(str(tmp_path))


def test_a_folder_without_tokenizer_files_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    # Without this check transformers builds a tokenizer of two special tokens and every
    # text gets the same embedding.
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        (tmp_path / name).write_bytes((tiny_model_dir / name).read_bytes())
    with pytest.raises(ModelLoadError, match=f"{tmp_path.name}.*tokenizer files are missing"):
        ClipModel.load(str(tmp_path))


def test_a_preprocessor_size_unlike_the_models_is_refused_at_load(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    for file in tiny_model_dir.iterdir():
        (tmp_path / file.name).write_bytes(file.read_bytes())
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    config["size"], config["crop_size"] = {"shortest_edge": 96}, {"height": 96, "width": 96}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=f"{tmp_path.name}.*96x96.*32x32"):
        ClipModel.load(str(tmp_path))


def test_a_non_clip_model_is_refused_with_the_choices(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="'bert'.*CLIP and SigLIP"):
        ClipModel.load(str(tmp_path))


def test_unreachable_hub_fails_fast_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import constants

    # A closed local port stands in for the hub; the cache is empty.
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="fashion-clip.*cannot be reached"):
        ClipModel.load("fashion-clip")
    assert time.monotonic() - start < 15  # no long retry loop before the fallback


def test_siglip_checkpoints_load_with_sigmoid_scores(tmp_path: Path) -> None:
    import torch
    from transformers import SiglipConfig, SiglipModel

    from fashion_clip.demo.tokenizer import build_tokenizer
    from fashion_clip.tasks.classify import label_probabilities

    torch.manual_seed(0)
    tokenizer = build_tokenizer(["red dress", "blue shirt"])
    config = SiglipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
    )
    SiglipModel(config).save_pretrained(tmp_path)
    tokenizer.model_max_length = 16
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "SiglipImageProcessor",
                "do_resize": True,
                "size": {"height": 32, "width": 32},
                "resample": 2,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
            }
        )
    )
    model = ClipModel.load(str(tmp_path))
    assert model.info.kind == "siglip" and model.logit_bias is not None
    assert model.preprocessor.output_size == (32, 32) and model.preprocessor.crop is None
    images = FashionCLIP(model=model).encode_images([photo(50, 30)])
    probabilities = label_probabilities(model, images, ["dress", "shirt", "hat"])
    assert probabilities.shape == (1, 3)
    assert np.all((probabilities > 0) & (probabilities < 1))
    assert not np.isclose(probabilities.sum(), 1.0)  # independent sigmoids, not a softmax


def test_the_demo_model_is_versioned_by_its_weights(demo_model, tiny_model) -> None:
    """A retrained demo model must not pass the store's guard with the old one's vectors."""
    import hashlib

    from fashion_clip.demo import DEMO_MODEL_DIR
    from fashion_clip.errors import ModelMismatchError
    from fashion_clip.store.meta import guard

    weights = (DEMO_MODEL_DIR / "model.safetensors").read_bytes()
    assert demo_model.info.revision == "sha256:" + hashlib.sha256(weights).hexdigest()[:12]
    assert tiny_model.info.revision.startswith("files:")  # other folders: sampled, below
    meta = {"model_id": "demo", "model_revision": "sha256:000000000000", "dim": demo_model.dim,
            "distance": "cosine"}  # fmt: skip
    with pytest.raises(ModelMismatchError, match="sha256"):
        guard("demo", meta, "demo", demo_model.info.revision, demo_model.dim)


def test_a_folder_is_known_by_its_files_wherever_it_lies_and_however_spelled(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's guard must take "./m", "../m" and a copy on another machine (a pulled
    snapshot) for the same model, and a retrained model in the same folder for another."""
    import shutil

    from fashion_clip.errors import ModelMismatchError
    from fashion_clip.store.meta import guard
    from tests.conftest import build_tiny_clip

    copy = shutil.copytree(tiny_model_dir, tmp_path / "elsewhere" / "m")
    monkeypatch.chdir(copy.parent)
    here = ClipModel.load("./m")
    (copy.parent / "sub").mkdir()
    monkeypatch.chdir(copy.parent / "sub")
    there = ClipModel.load("../m")
    original = ClipModel.load(str(tiny_model_dir))
    assert here.info.name != there.info.name != original.info.name  # names as written
    assert here.info.revision == there.info.revision == original.info.revision
    meta = {"model_id": here.info.name, "model_revision": here.info.revision, "dim": 16,
            "distance": "cosine"}  # fmt: skip
    guard("c", meta, there.info.name, there.info.revision, 16)  # accepted
    guard("c", meta, original.info.name, original.info.revision, 16)

    retrained = build_tiny_clip(tmp_path / "retrained" / "m", seed=5)
    other = ClipModel.load(retrained)
    assert other.info.revision != here.info.revision
    with pytest.raises(ModelMismatchError):
        guard("c", meta, other.info.name, other.info.revision, 16)
    # Retrained in place: the same name, other weights.
    with pytest.raises(ModelMismatchError):
        guard("c", {**meta, "model_id": other.info.name}, other.info.name, other.info.revision, 16)


def test_an_int8_text_tower_keeps_the_demo_models_retrieval(demo_model) -> None:
    """The opt-in int8 query tower, on a trained model: same ranking quality as fp32."""
    import json

    from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_CATALOG_FILE
    from fashion_clip.tasks.embed import encode_images
    from fashion_clip.tasks.metrics import retrieval_metrics

    rows = [json.loads(line) for line in DEMO_CATALOG_FILE.read_text().splitlines() if line]
    images = encode_images(demo_model, [DEMO_CATALOG_DIR / row["image"] for row in rows])
    captions = [row["caption"] for row in rows]
    fp32 = ClipModel.load("demo", text_precision="fp32").encode_text(captions)
    int8 = ClipModel.load("demo", text_precision="int8").encode_text(captions)
    assert np.min(np.sum(int8 * fp32, axis=1)) > 0.99
    exact = retrieval_metrics(fp32, images, ks=(1, 10))
    fast = retrieval_metrics(int8, images, ks=(1, 10))
    assert fast["recall@10"] >= exact["recall@10"] - 0.01, (fast, exact)
    assert fast["recall@1"] >= exact["recall@1"] - 0.03, (fast, exact)
