"""The original Python API over a catalog: FCLIPDataset, and FashionCLIP bound to a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_clip import FashionCLIP, FCLIPDataset
from fashion_clip.api.fclip import collection_name
from fashion_clip.errors import CatalogError, ConfigurationError, InvalidInputError
from fashion_clip.model.clip import ClipModel
from fashion_clip.store.embedded import EmbeddedStore
from fashion_clip.store.snapshot import push_snapshot
from fashion_clip.tasks.embed import encode_images
from tests.image_corpus import photo

COLORS = ["red", "blue", "green", "black", "white", "pink"]
KINDS = ["dress", "shirt", "skirt", "bag"]


def _catalog(folder: Path, n: int = 24) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        photo(80, 100, seed=i).save(folder / f"p{i}.jpg")
        caption = f"{COLORS[i % len(COLORS)]} {KINDS[i % len(KINDS)]}"
        rows.append({"id": f"sku-{i}", "image": f"p{i}.jpg", "caption": caption, "price": 10 + i})
    return rows


class CountingModel(ClipModel):
    """The real model, counting how often the image tower runs."""

    pixel_calls = 0

    def encode_pixels(self, pixel_values, *, normalize=True):
        type(self).pixel_calls += len(pixel_values)
        return super().encode_pixels(pixel_values, normalize=normalize)

    def encode_crops(self, crops, *, normalize=True):  # the indexer's way in
        type(self).pixel_calls += len(crops)
        return super().encode_crops(crops, normalize=normalize)


@pytest.fixture
def counting_model(tiny_model: ClipModel) -> CountingModel:
    CountingModel.pixel_calls = 0
    model = CountingModel.__new__(CountingModel)
    model.__dict__.update(tiny_model.__dict__)
    return model


@pytest.fixture
def dataset(tmp_path: Path) -> FCLIPDataset:
    folder = tmp_path / "images"
    return FCLIPDataset("shop", image_source_path=str(folder), catalog=_catalog(folder))


def test_dataset_lookup_hash_and_grid(dataset: FCLIPDataset, tmp_path: Path) -> None:
    assert len(dataset) == 24 and "sku-3" in dataset
    assert dataset["sku-3"]["caption"] == "black bag"
    assert dataset.image_source("sku-3") == str((tmp_path / "images" / "p3.jpg").resolve())
    # The hash ignores key order and object identity, and sees any change of content.
    reordered = [dict(reversed(list(row.items()))) for row in dataset.catalog]
    same = FCLIPDataset("shop", str(tmp_path / "images"), catalog=reordered)
    assert same.hash == dataset.hash
    changed = dataset.catalog
    changed[5]["caption"] = "purple hat"
    assert FCLIPDataset("shop", str(tmp_path / "images"), catalog=changed).hash != dataset.hash
    grid = dataset.display_products(["sku-0", "sku-1", "sku-2", "sku-3", "sku-4"], columns=3)
    assert isinstance(grid, Image.Image) and grid.size == (3 * 192, 2 * (192 + 34))
    with pytest.raises(KeyError, match="sku-99"):
        dataset["sku-99"]


def test_dataset_errors_name_the_rows(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "image": "a.jpg", "caption": "a"},
        {"id": 2, "caption": "b"},
        {"id": 1, "image": "c.jpg", "caption": "c"},
        "not a dict",
        {"id": 7.0, "image": "d.jpg"},
        {"id": True, "image": "e.jpg"},
        {"id": "  ", "image": "f.jpg"},
    ]
    with pytest.raises(CatalogError) as caught:
        FCLIPDataset("bad", catalog=rows)
    message = str(caught.value)
    assert "dataset 'bad': 6 bad row(s)" in message
    assert "row 2: missing image" in message
    assert "row 3: duplicate id 1 (first in row 1)" in message
    assert "row 4: not a dict" in message
    # The indexer's rules, which used to skip these rows only at indexing time:
    assert "row 5: id 7.0 is not a string or an integer" in message
    assert "row 6: id True is not a string or an integer" in message
    assert "row 7: missing id" in message
    with pytest.raises(CatalogError, match="available: demo"):
        FCLIPDataset("no-such-dataset")
    with pytest.raises(ConfigurationError, match="image_source_type"):
        FCLIPDataset("x", "s3://b/p", image_source_type="ftp", catalog=rows[:1])
    with pytest.raises(ConfigurationError, match="s3://bucket/prefix"):
        FCLIPDataset("x", "some/folder", image_source_type="s3", catalog=rows[:1])
    with pytest.raises(ConfigurationError, match="no such directory"):
        FCLIPDataset("x", str(tmp_path / "missing"), catalog=rows[:1])


def test_dataset_ids_are_kept_as_the_indexer_stores_them(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    rows = [dict(row) for row in _catalog(folder, n=4)]
    rows[0]["id"] = " 7 "  # stored and returned by retrieval as "7"
    rows[1]["id"] = np.int64(8)  # what pandas hands over: an int
    rows[2]["image"] = " p2.jpg "
    del rows[3]["caption"]  # recommended, not required (as in the indexer)
    dataset = FCLIPDataset("shop", image_source_path=str(folder), catalog=rows)
    assert dataset.ids == ["7", 8, "sku-2", "sku-3"]
    assert type(dataset.ids[1]) is int
    assert dataset["7"]["caption"] == "red dress" and dataset[8]["price"] == 11
    assert dataset.image_source("sku-2") == str((folder / "p2.jpg").resolve())
    assert "caption" not in dataset["sku-3"] and dataset.captions()[3] == ""
    with pytest.raises(CatalogError, match=r"row 2: duplicate id '7' \(first in row 1\)"):
        FCLIPDataset("shop", str(folder), catalog=[rows[0], {**rows[1], "id": "7"}])


def test_every_product_is_indexed_and_found_by_the_id_retrieval_returns(
    tmp_path: Path, tiny_model: ClipModel
) -> None:
    folder = tmp_path / "images"
    rows = [dict(row) for row in _catalog(folder, n=4)]
    rows[0]["id"], rows[1]["id"] = " 7 ", np.int64(8)
    del rows[3]["caption"]
    dataset = FCLIPDataset("shop", image_source_path=str(folder), catalog=rows)
    store = EmbeddedStore(tmp_path / "qdrant")
    fclip = FashionCLIP(model=tiny_model, dataset=dataset, store=store)
    assert fclip.collection.count() == 4  # before: np.int64 rejected at indexing, 3
    found = fclip.retrieval(["red dress"], top_k=4)[0]
    assert sorted(map(str, found)) == ["7", "8", "sku-2", "sku-3"]
    assert all(product_id in dataset for product_id in found)
    assert dataset[found[0]]["id"] == found[0]
    assert dataset.display_products(found).width > 0
    fclip.close()
    store.close()


def test_the_original_apis_spellings_work(dataset: FCLIPDataset, tmp_path: Path) -> None:
    again = FCLIPDataset("shop", dataset.image_source_path, "LOCAL", catalog=dataset.catalog)
    assert again.image_source_type == "local"
    with pytest.raises(ConfigurationError, match="s3://bucket/prefix"):  # "S3" means s3
        FCLIPDataset("x", str(tmp_path), image_source_type="S3", catalog=dataset.catalog)
    assert dataset.hash() == dataset.hash and len(dataset.hash) == 16
    assert dataset.captions[3] == "black bag" and dataset.captions() == dataset.captions
    grid = dataset.display_products(np.array(["sku-0", "sku-1"]))  # ids as numpy gives them
    assert grid.size == (2 * 192, 192 + 34)


def test_a_pre_included_dataset_by_name(tmp_path: Path, tiny_model: ClipModel) -> None:
    store = EmbeddedStore(tmp_path / "qdrant")
    fclip = FashionCLIP("demo", dataset="demo", model=tiny_model, store=store)
    assert isinstance(fclip.dataset, FCLIPDataset) and fclip.dataset.name == "demo"
    assert fclip.collection.count() == len(fclip.dataset)
    fclip.close()
    store.close()


def test_pre_included_demo_dataset() -> None:
    demo = FCLIPDataset("demo")
    assert len(demo) >= 300
    first = demo.ids[0]
    assert demo.image(first).mode == "RGB"
    assert demo.hash == FCLIPDataset("demo").hash


def test_vectors_are_computed_once_then_reused(
    dataset: FCLIPDataset, counting_model: CountingModel, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "qdrant")
    first = FashionCLIP(model=counting_model, dataset=dataset, store=store)
    assert first.vectors_source == "computed"
    assert CountingModel.pixel_calls == len(dataset)
    assert first.collection.count() == len(dataset)
    first.close()

    CountingModel.pixel_calls = 0
    second = FashionCLIP(model=counting_model, dataset=dataset, store=store)
    assert second.vectors_source == "store"
    assert CountingModel.pixel_calls == 0  # nothing re-encoded
    assert second.collection.name == collection_name(dataset, counting_model)
    second.close()

    changed = dataset.catalog
    changed.append({"id": "sku-new", "image": "p0.jpg", "caption": "new red dress"})
    bigger = FCLIPDataset("shop", dataset.image_source_path, catalog=changed)
    third = FashionCLIP(model=counting_model, dataset=bigger, store=store)
    assert third.vectors_source == "computed"
    assert third.collection.name != collection_name(dataset, counting_model)
    assert third.collection.count() == len(bigger)
    third.close()
    store.close()


def test_exact_retrieval_equals_brute_force(
    dataset: FCLIPDataset, tiny_model: ClipModel, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "qdrant")
    fclip = FashionCLIP(model=tiny_model, dataset=dataset, store=store, approx=False)
    queries = ["red dress", "black bag", "a green skirt"]
    found = fclip.retrieval(queries, top_k=5)
    images = encode_images(tiny_model, [dataset.image_source(i) for i in dataset.ids])
    scores = tiny_model.encode_text(queries) @ images.T
    expected = [[dataset.ids[j] for j in np.argsort(-row, kind="stable")[:5]] for row in scores]
    assert found == expected
    by_image = fclip.image_retrieval([dataset.image_source("sku-7")], top_k=1)
    assert by_image == [["sku-7"]]
    fclip.close()
    store.close()


def test_vectors_come_from_an_s3_snapshot(
    dataset: FCLIPDataset, counting_model: CountingModel, tmp_path: Path, s3_bucket: str
) -> None:
    built = EmbeddedStore(tmp_path / "built")
    source = FashionCLIP(model=counting_model, dataset=dataset, store=built)
    name = source.collection.name
    expected = source.retrieval(["red dress"], top_k=3)
    source.close()
    push_snapshot(built, name, f"s3://{s3_bucket}/snapshots/{name}.snapshot")
    built.close()

    CountingModel.pixel_calls = 0
    space = EmbeddedStore(tmp_path / "space")
    pulled = FashionCLIP(
        model=counting_model, dataset=dataset, store=space, snapshots=f"s3://{s3_bucket}/snapshots"
    )
    assert pulled.vectors_source == "snapshot"
    assert CountingModel.pixel_calls == 0
    assert pulled.retrieval(["red dress"], top_k=3) == expected
    pulled.close()
    space.close()


def test_retrieval_without_a_dataset_says_what_to_do(tiny_model: ClipModel) -> None:
    with pytest.raises(ConfigurationError, match="no dataset"):
        FashionCLIP(model=tiny_model).retrieval(["red dress"])
    closed = FashionCLIP(model=tiny_model)
    closed.close()  # still "no dataset", not "was closed": a dataset is what it lacks
    with pytest.raises(ConfigurationError, match="no dataset"):
        closed.retrieval(["red dress"])


def test_retrieval_modes_find_typed_ids_and_words(
    dataset: FCLIPDataset, tiny_model: ClipModel, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "qdrant")
    fclip = FashionCLIP(model=tiny_model, dataset=dataset, store=store, approx=False)
    # a random tiny model cannot read "sku-17"; the keywords can
    assert fclip.retrieval("sku-17", top_k=3, mode="hybrid")[0][0] == "sku-17"
    assert fclip.retrieval(["sku-17"], top_k=1, mode="keyword") == [["sku-17"]]
    words = fclip.retrieval("red dress", top_k=24, mode="keyword")[0]
    assert words and all("red" in dataset[i]["caption"] or "dress" in dataset[i]["caption"]
                         for i in words)  # fmt: skip
    with pytest.raises(InvalidInputError, match="mode 'fuzzy'"):
        fclip.retrieval("red dress", mode="fuzzy")
    fclip.close()
    store.close()


def test_grid_captions_draw_accented_letters_not_boxes() -> None:
    """'Größe', 'café': Pillow's own default font has no such letters and drew boxes."""
    from fashion_clip.api.dataset import caption_font

    font = caption_font()
    unknown = font.getmask("\U000f0000")  # private use: no font draws it, a box stands in
    for letter in "öéß–ñ":
        mask = font.getmask(letter)
        assert (mask.size, list(mask)) != (unknown.size, list(unknown)), letter
