"""A FashionCLIP's hold on its collection: shared in a process, released however it ends.

And a build that skipped rows: not marked complete (retried next time), and an error
naming the reasons when nothing at all could be indexed.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from fashion_clip import FashionCLIP, FCLIPDataset
from fashion_clip.api.fclip import collection_name
from fashion_clip.errors import CatalogError, StoreError
from fashion_clip.model.clip import ClipModel
from fashion_clip.settings import Settings
from fashion_clip.store import shared
from fashion_clip.store.embedded import EmbeddedStore
from tests.image_corpus import photo


def _dataset(folder: Path, n: int = 6, *, missing: tuple[int, ...] = ()) -> FCLIPDataset:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if i not in missing:
            photo(64, 80, seed=i).save(folder / f"p{i}.jpg")
    rows = [{"id": f"sku-{i}", "image": f"p{i}.jpg", "caption": f"item {i}"} for i in range(n)]
    return FCLIPDataset("shop", image_source_path=str(folder), catalog=rows)


def _unlocked(root: Path, name: str) -> bool:
    """Whether another store object (as another process would) can open the collection."""
    other = EmbeddedStore(root)
    try:
        other.open(name)
    finally:
        other.close()
    return True


class InterruptedModel(ClipModel):
    """The real model, interrupted (Ctrl-C) while it encodes the catalog's images."""

    def encode_crops(self, crops, *, normalize=True):
        raise KeyboardInterrupt


class DroppingModel(ClipModel):
    """The real model; while it encodes, the objects in `holder` lose their last reference."""

    holder: ClassVar[list[FashionCLIP]] = []

    def encode_crops(self, crops, *, normalize=True):
        type(self).holder.clear()
        return super().encode_crops(crops, normalize=normalize)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(qdrant_path=tmp_path / "qdrant")


def test_a_second_object_in_the_same_process_shares_the_collection(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings
) -> None:
    dataset = _dataset(tmp_path / "images")
    first = FashionCLIP(model=tiny_model, dataset=dataset, settings=settings)
    # Before: StoreLockedError "already open in another process (pid <this process>)".
    second = FashionCLIP(model=tiny_model, dataset=dataset, settings=settings, approx=False)
    assert (first.vectors_source, second.vectors_source) == ("computed", "store")
    expected = second.retrieval(["item 3"], top_k=6)
    assert len(expected[0]) == 6

    first.close()
    first.close()  # twice is harmless
    assert second.retrieval(["item 3"], top_k=6) == expected  # still open for `second`
    with pytest.raises(StoreError, match="was closed"):
        first.retrieval(["item 3"])
    second.close()
    assert _unlocked(settings.qdrant_path, collection_name(dataset, tiny_model))


def test_the_same_store_object_is_not_closed_under_another_user(
    tmp_path: Path, tiny_model: ClipModel
) -> None:
    store = EmbeddedStore(tmp_path / "qdrant")
    dataset = _dataset(tmp_path / "images")
    first = FashionCLIP(model=tiny_model, dataset=dataset, store=store)
    second = FashionCLIP(model=tiny_model, dataset=dataset, store=store)
    first.close()
    assert len(second.retrieval(["item 1"], top_k=3)[0]) == 3  # before: "collection is closed"
    second.close()
    assert not store.is_open(second_name := collection_name(dataset, tiny_model))
    assert _unlocked(tmp_path / "qdrant", second_name)


def test_garbage_collection_and_with_blocks_release_the_collection(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings
) -> None:
    dataset = _dataset(tmp_path / "images")
    name = collection_name(dataset, tiny_model)
    fclip = FashionCLIP(model=tiny_model, dataset=dataset, settings=settings)
    del fclip
    gc.collect()
    assert _unlocked(settings.qdrant_path, name)

    with FashionCLIP(model=tiny_model, dataset=dataset, settings=settings) as fclip:
        assert fclip.vectors_source == "store"
        assert len(fclip.retrieval("item 2", top_k=2)[0]) == 2
    assert _unlocked(settings.qdrant_path, name)
    with pytest.raises(StoreError, match=r"dataset 'shop'\) was closed"):
        fclip.retrieval("item 2")


def test_a_collected_object_never_waits_for_a_build_in_another_thread(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings
) -> None:
    dataset = _dataset(tmp_path / "images")
    name = collection_name(dataset, tiny_model)
    held = [FashionCLIP(model=tiny_model, dataset=dataset, settings=settings)]
    building, finish = threading.Event(), threading.Event()

    class Built:
        name = "other"

        def close(self) -> None:
            pass

    def slow_build(store: object, sole_user: bool) -> tuple[Built, str]:
        building.set()
        finish.wait(30)
        return Built(), "computed"

    leases = []
    builder = threading.Thread(
        target=lambda: leases.append(shared.lease_collection("other", slow_build, store=object()))
    )
    builder.start()
    assert building.wait(30)
    # The last reference dies in another thread (as in an indexer worker the build waits for).
    dropper = threading.Thread(target=held.clear)
    dropper.start()
    dropper.join(5)
    assert not dropper.is_alive()  # before: blocked until the build ended (a deadlock there)
    finish.set()
    builder.join(30)
    assert _unlocked(settings.qdrant_path, name)  # released once the build let go
    leases[0][0].release()  # not left in the process-wide table for later tests


def test_a_lease_handed_over_as_its_holder_lets_go_is_not_stranded(monkeypatch) -> None:
    closed: list[str] = []

    class Built:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            closed.append(self.name)

    store = object()
    first, _ = shared.lease_collection("a", lambda s, sole: (Built("a"), None), store=store)
    # The worst moment: another thread drops `first` after the holder's last look at the
    # handed-over leases, while it still holds the lock.
    original, handed = shared._release_pending, []

    def last_look_then_handover() -> None:
        original()
        if not handed:
            handed.append(True)
            dropper = threading.Thread(target=first.release_soon)
            dropper.start()
            dropper.join(5)

    monkeypatch.setattr(shared, "_release_pending", last_look_then_handover)
    second, _ = shared.lease_collection("b", lambda s, sole: (Built("b"), None), store=store)
    assert handed and closed == ["a"]  # before: left open until some later lease or release
    second.release()
    assert closed == ["a", "b"]


def test_the_collection_stays_open_while_a_second_object_builds_it(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings
) -> None:
    folder = tmp_path / "images"
    dataset = _dataset(folder, missing=(4,))
    DroppingModel.holder = [FashionCLIP(model=tiny_model, dataset=dataset, settings=settings)]
    photo(64, 80, seed=4).save(folder / "p4.jpg")  # so the second object builds sku-4
    model = DroppingModel.__new__(DroppingModel)
    model.__dict__.update(tiny_model.__dict__)
    # The first object dies mid-build: its release must not close the collection being built.
    with FashionCLIP(model=model, dataset=dataset, settings=settings) as fclip:
        assert DroppingModel.holder == []
        assert fclip.vectors_source == "computed"
        assert fclip.collection.count() == len(dataset)


def test_an_interrupted_build_releases_the_collection(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings
) -> None:
    dataset = _dataset(tmp_path / "images")
    interrupted = InterruptedModel.__new__(InterruptedModel)
    interrupted.__dict__.update(tiny_model.__dict__)
    with pytest.raises(KeyboardInterrupt):
        FashionCLIP(model=interrupted, dataset=dataset, settings=settings)
    assert _unlocked(settings.qdrant_path, collection_name(dataset, tiny_model))
    # And the next construction finishes the build.
    with FashionCLIP(model=tiny_model, dataset=dataset, settings=settings) as fclip:
        assert fclip.vectors_source == "computed"
        assert fclip.collection.count() == len(dataset)


def test_skipped_rows_are_retried_on_the_next_construction(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings
) -> None:
    folder = tmp_path / "images"
    dataset = _dataset(folder, missing=(4,))
    fclip = FashionCLIP(model=tiny_model, dataset=dataset, settings=settings)
    assert fclip.collection.count() == len(dataset) - 1
    fclip.close()
    photo(64, 80, seed=4).save(folder / "p4.jpg")  # the missing image turns up
    fclip = FashionCLIP(model=tiny_model, dataset=dataset, settings=settings)
    assert fclip.vectors_source == "computed"  # before: "store", sku-4 never indexed
    assert fclip.collection.count() == len(dataset)
    assert fclip.image_retrieval([folder / "p4.jpg"], top_k=1) == [["sku-4"]]
    fclip.close()
    fclip = FashionCLIP(model=tiny_model, dataset=dataset, settings=settings)
    assert fclip.vectors_source == "store"  # complete now: nothing left to retry
    fclip.close()


def test_only_the_skipped_rows_are_retried(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings, caplog
) -> None:
    from fashion_clip.api.catalog_vectors import SKIPPED_KEY

    folder = tmp_path / "images"
    dataset = _dataset(folder, missing=(4,))
    with FashionCLIP(model=tiny_model, dataset=dataset, settings=settings) as fclip:
        assert fclip.collection.info().extra[SKIPPED_KEY] == ["sku-4"]
    (folder / "p0.jpg").unlink()  # a full pass would now skip sku-0 and say so
    photo(64, 80, seed=4).save(folder / "p4.jpg")
    caplog.clear()
    with FashionCLIP(model=tiny_model, dataset=dataset, settings=settings) as fclip:
        assert fclip.vectors_source == "computed" and fclip.collection.count() == 6
        assert fclip.collection.info().extra[SKIPPED_KEY] == []
    assert "p0.jpg" not in caplog.text  # only sku-4 was read again


def test_a_dataset_with_no_usable_image_is_refused_with_the_reasons(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings
) -> None:
    dataset = _dataset(tmp_path / "images", n=3, missing=(0, 1, 2))
    with pytest.raises(CatalogError) as caught:
        FashionCLIP(model=tiny_model, dataset=dataset, settings=settings)
    message = str(caught.value)
    assert "dataset 'shop': none of its 3 products could be indexed" in message
    assert "row 1 (id 'sku-0')" in message and "p0.jpg" in message
    assert _unlocked(settings.qdrant_path, collection_name(dataset, tiny_model))


def test_a_qdrant_client_store_is_shared_and_reused_the_same_way(
    tmp_path: Path, tiny_model: ClipModel
) -> None:
    from fashion_clip.store.remote import RemoteStore

    store = RemoteStore(location=":memory:")
    dataset = _dataset(tmp_path / "images")
    first = FashionCLIP(model=tiny_model, dataset=dataset, store=store)
    second = FashionCLIP(model=tiny_model, dataset=dataset, store=store)
    assert (first.vectors_source, second.vectors_source) == ("computed", "store")
    assert second.collection is first.collection
    first.close()
    assert len(second.retrieval("item 1", top_k=3)[0]) == 3
    second.close()
    store.close()


def test_a_handed_over_collection_that_fails_to_close_does_not_fail_the_next_user(
    caplog,
) -> None:
    class Failing:
        name = "a"

        def close(self) -> None:
            raise StoreError("disk gone")

    class Fine:
        name = "b"

        def close(self) -> None:
            pass

    store = object()
    first, _ = shared.lease_collection("a", lambda s, sole: (Failing(), None), store=store)
    with shared._LOCK:  # held elsewhere: the release is handed over
        dropper = threading.Thread(target=first.release_soon)
        dropper.start()
        dropper.join(5)
        second, result = shared.lease_collection("b", lambda s, sole: (Fine(), "ok"), store=store)
    assert result == "ok" and "disk gone" in caplog.text
    second.release()


def test_a_datasets_older_integer_index_is_widened_on_the_next_construction(
    tmp_path: Path, tiny_model: ClipModel, settings: Settings
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        photo(64, 80, seed=i).save(folder / f"p{i}.jpg")
    rows = [{"id": i, "image": f"p{i}.jpg", "price": [10, 19.99, 30][i]} for i in range(3)]
    dataset = FCLIPDataset("shop", image_source_path=str(folder), catalog=rows)
    with FashionCLIP(model=tiny_model, dataset=dataset, settings=settings) as fclip:
        fclip.collection.create_payload_index("price", "integer")  # as older versions chose
    with FashionCLIP(model=tiny_model, dataset=dataset, settings=settings) as fclip:
        assert fclip.collection.info().payload_indexes["price"] == "float"
