"""What the Python API does with odd arguments: one image, bad batch sizes, odd labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_clip import FashionCLIP, FCLIPDataset
from fashion_clip.errors import (
    ConfigurationError,
    ImageLoadError,
    InvalidInputError,
    ModelLoadError,
)
from fashion_clip.model.clip import ClipModel
from fashion_clip.store.embedded import EmbeddedStore
from tests.image_corpus import jpeg_bytes, photo


@pytest.fixture
def fclip(tiny_model: ClipModel) -> FashionCLIP:
    return FashionCLIP(model=tiny_model)


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "demo-0001.jpg"
    path.write_bytes(jpeg_bytes(photo(64, 48), quality=95))
    return path


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "8"])
def test_batch_size_must_be_a_positive_whole_number(
    fclip: FashionCLIP, tiny_model: ClipModel, picture: Path, batch_size: object
) -> None:
    # 0 used to return uninitialised memory (NaNs), -1 garbage, others raw range() errors.
    with pytest.raises(InvalidInputError, match="batch_size"):
        fclip.encode_images([picture, picture], batch_size=batch_size)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="batch_size"):
        fclip.encode_text(["a", "b"], batch_size=batch_size)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="batch_size"):
        tiny_model.encode_text(["a", "b"], batch_size=batch_size)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="batch_size"):
        fclip.label_probabilities(picture, ["dress"], batch_size=batch_size)  # type: ignore[arg-type]


def test_a_single_image_is_a_list_of_one(fclip: FashionCLIP, picture: Path) -> None:
    expected = fclip.encode_images([picture])
    data = picture.read_bytes()
    with Image.open(picture) as opened:
        for single in (str(picture), picture, data, bytearray(data), opened):
            vectors = fclip.encode_images(single)
            assert vectors.shape == (1, 16)
            np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert fclip.label_probabilities(str(picture), ["dress", "shirt"]).shape == (1, 2)
    assert len(fclip.zero_shot_classification(data, ["dress", "shirt"])) == 1


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([b"", None], r"images\[1\] is of type NoneType"),
        ([Image.new("RGB", (4, 4)), 7], r"images\[1\] is of type int"),
        ([np.zeros((8, 8, 3), np.uint8)], r"images\[0\] is of type ndarray"),
        (np.zeros((8, 8, 3), np.uint8), "numpy array.*fromarray"),
        (None, "images is of type NoneType"),
        (3, "images is of type int"),
    ],
)
def test_unsupported_images_name_the_position_and_the_type(
    fclip: FashionCLIP, images: object, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fclip.encode_images(images)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=message):
        fclip.zero_shot_classification(images, ["dress"])  # type: ignore[arg-type]


@pytest.fixture
def shop(tiny_model: ClipModel, tmp_path: Path) -> Iterator[FashionCLIP]:
    """A FashionCLIP bound to six products, p0.jpg .. p5.jpg in `tmp_path / "images"`."""
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for i in range(6):
        photo(80, 100, seed=i).save(folder / f"p{i}.jpg")
        rows.append({"id": f"sku-{i}", "image": f"p{i}.jpg", "caption": f"item {i}"})
    dataset = FCLIPDataset("shop", image_source_path=str(folder), catalog=rows)
    store = EmbeddedStore(tmp_path / "qdrant")
    fclip = FashionCLIP(model=tiny_model, dataset=dataset, store=store, approx=False)
    yield fclip
    fclip.close()
    store.close()


def test_image_retrieval_takes_a_single_image(shop: FashionCLIP, tmp_path: Path) -> None:
    assert shop.image_retrieval(str(tmp_path / "images" / "p3.jpg"), top_k=1) == [["sku-3"]]


@pytest.mark.parametrize("top_k", [0, -1, 2.5, None])
def test_top_k_must_be_a_positive_whole_number(
    shop: FashionCLIP, tmp_path: Path, top_k: object
) -> None:
    # -1 raised OverflowError and 2.5 TypeError from deep in the store.
    with pytest.raises(InvalidInputError, match="top_k"):
        shop.retrieval(["red dress"], top_k=top_k)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="top_k"):
        shop.image_retrieval(tmp_path / "images" / "p0.jpg", top_k=top_k)  # type: ignore[arg-type]
    assert len(shop.retrieval("red dress", top_k=np.int64(2))[0]) == 2


@pytest.mark.parametrize("name", [None, 3])
def test_a_model_name_that_is_not_text_is_named(name: object) -> None:
    with pytest.raises(ModelLoadError, match=f"must be text, got {type(name).__name__}"):
        FashionCLIP(name)  # type: ignore[arg-type]


@pytest.mark.parametrize(("device", "message"), [("gpu", "not a torch device"), ("mps", "MPS")])
def test_an_unusable_device_is_a_configuration_error(
    tiny_model_dir: Path, device: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fashion_clip.model.clip._mps_available", lambda: False)  # as on Linux
    with pytest.raises(ConfigurationError, match=f"'{device}'.*{message}"):
        FashionCLIP(str(tiny_model_dir), device=device)


def test_a_pil_image_without_pixels_is_refused(fclip: FashionCLIP) -> None:
    # It reached the resize and raised ZeroDivisionError.
    with pytest.raises(ImageLoadError, match=r"PIL image: image has no pixels \(0x0\)"):
        fclip.encode_images([Image.new("RGB", (0, 0))])


def test_premultiplied_grey_alpha_is_composited_on_white() -> None:
    from fashion_clip.media.images import load_image

    # Mode "La" has no direct conversion to RGBA in PIL: it raised a raw ValueError.
    premultiplied = Image.new("LA", (4, 4), (200, 0)).convert("La")
    assert load_image(premultiplied).getpixel((0, 0)) == (255, 255, 255)  # transparent
    opaque = Image.new("LA", (4, 4), (200, 255)).convert("La")
    assert load_image(opaque).getpixel((0, 0)) == (200, 200, 200)


@pytest.mark.parametrize("source", [None, 3, 2.5, ["x.jpg"]])
def test_load_image_names_an_unsupported_type(source: object) -> None:
    from fashion_clip.media.images import load_image

    # It used to fail inside os.fspath with a bare TypeError.
    with pytest.raises(InvalidInputError, match=f"type {type(source).__name__}"):
        load_image(source)  # type: ignore[arg-type]


def test_zero_shot_keeps_the_callers_labels(fclip: FashionCLIP) -> None:
    images = [photo(40, 40, seed=i) for i in range(4)]
    # Labels used to be deduplicated case-blind and whitespace-normalised: 2 columns for 3
    # labels, and 't shirt' returned where the caller wrote 't  shirt'.
    probabilities = fclip.label_probabilities(images, ["dress", "Dress", "shirt", "dress"])
    assert probabilities.shape == (4, 4)
    np.testing.assert_array_equal(probabilities[:, 0], probabilities[:, 3])
    labels = [" dress ", "t  shirt"]
    best = fclip.zero_shot_classification(images, labels)
    spaced = fclip.label_probabilities(images, labels)
    assert best == [labels[i] for i in spaced.argmax(axis=1)]
    assert fclip.zero_shot_classification(images, ["t  shirt"]) == ["t  shirt"] * 4
    # The prompt text is still normalised: the model reads 't shirt' either way.
    np.testing.assert_allclose(spaced, fclip.label_probabilities(images, ["dress", "t shirt"]))


@pytest.mark.parametrize(
    ("labels", "message"),
    [(["dress", "  "], "label 1"), (["\u200b", "dress"], "label 0"), ([], "no labels")],
)
def test_an_empty_label_is_named(fclip: FashionCLIP, labels: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fclip.zero_shot_classification([photo(40, 40)], labels)


def test_labels_are_read_like_the_apps_one_per_line_and_invisible_characters_aside() -> None:
    from fashion_clip.tasks.classify import label_list, parse_labels, prompt_text

    assert label_list("dress\nshirt, bag") == parse_labels("dress\nshirt, bag") == [
        "dress", "shirt", "bag"
    ]  # fmt: skip
    assert prompt_text("\ufeffshi\u200brt\u0000") == "shirt"


def test_the_app_still_reads_labels_forgivingly() -> None:
    from fashion_clip.tasks.classify import parse_labels

    assert parse_labels("Dress, dress , t  shirt,,") == ["Dress", "t shirt"]


def test_fashionclip_honours_the_text_precision_variable(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FashionCLIP loaded its model with ClipModel.load's own default, ignoring the variable.
    monkeypatch.setenv("FASHION_CLIP_TEXT_PRECISION", "int8")
    assert FashionCLIP(str(tiny_model_dir)).model.text_precision == "int8"
    monkeypatch.delenv("FASHION_CLIP_TEXT_PRECISION")
    # Unset: the README's Python default, auto (fp32 for a text tower this small).
    assert FashionCLIP(str(tiny_model_dir)).model.text_precision == "fp32"
