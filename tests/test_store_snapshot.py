"""Snapshots of embedded collections: to a file and back, and through a real HTTP S3 endpoint
(moto's server on 127.0.0.1) with real boto3 calls."""

from __future__ import annotations

import errno
import shutil
import tarfile

import numpy as np
import pytest

from fashion_clip.errors import ModelMismatchError, StoreError
from fashion_clip.media import s3
from fashion_clip.store.embedded import EmbeddedStore
from fashion_clip.store.remote import RemoteStore
from fashion_clip.store.snapshot import (
    export_snapshot,
    import_snapshot,
    pull_snapshot,
    push_snapshot,
    read_manifest,
)
from tests.store_fixtures import DIM, MODEL, catalog, spec


@pytest.fixture
def bucket(s3_bucket):
    return f"s3://{s3_bucket}"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An indexed (HNSW-built) collection "shop", built once for the module."""
    cat = catalog(n=600)
    root = tmp_path_factory.mktemp("built")
    store = EmbeddedStore(root)
    col = store.create("shop", spec(indexing_threshold_kb=10))
    col.upsert(cat.points())
    col.optimize()
    col.set_extra({"built_by": "test"})
    expected = [h.id for h in col.search(cat.image[9], limit=10)]
    store.close()
    return root, cat, expected


@pytest.fixture
def source(tmp_path, built):
    """A private copy of the built store (closed), its catalog and a query's expected ids."""
    root, cat, expected = built
    shutil.copytree(root, tmp_path / "built")
    return EmbeddedStore(tmp_path / "built"), cat, expected


def test_file_round_trip_keeps_points_index_and_record(tmp_path, source):
    store, cat, expected = source
    path = export_snapshot(store, "shop", tmp_path / "out" / "shop.tar")
    manifest = read_manifest(path)
    assert manifest["count"] == 600 and manifest["collection"]["model_id"] == MODEL
    target = EmbeddedStore(tmp_path / "space")
    info = import_snapshot(target, path, model_id=MODEL, dim=DIM)
    assert (info.name, info.count, info.extra) == ("shop", 600, {"built_by": "test"})
    # Preallocated engine files travel without their zero tails and get their size back.
    assert path.stat().st_size < 5_000_000
    src, dst = store.directory("shop"), target.directory("shop")
    for file in src.rglob("*"):
        if file.is_file() and file.name != ".lock":
            assert (dst / file.relative_to(src)).stat().st_size == file.stat().st_size
    col = target.open("shop", model_id=MODEL)
    assert col.indexed_count() >= 600  # the HNSW index came along: nothing to rebuild
    assert [h.id for h in col.search(cat.image[9], limit=10)] == expected
    (point,) = col.retrieve([cat.ids[4]], with_vectors=True)
    np.testing.assert_allclose(point.vectors["image"], cat.image[4], atol=1e-6)
    target.close()


def test_export_of_an_open_collection_and_import_under_another_name(tmp_path, source):
    store, _, _ = source
    col = store.open("shop")
    path = export_snapshot(store, "shop", tmp_path / "shop.tar.gz")
    assert store.is_open("shop") and col.count() == 600  # still open and usable
    info = import_snapshot(store, path, "shop-copy")
    assert info.count == 600 and store.list_collections() == ["shop", "shop-copy"]
    store.close()


def test_snapshot_of_another_model_is_refused_before_anything_changes(tmp_path, source):
    store, _, _ = source
    path = export_snapshot(store, "shop", tmp_path / "shop.tar")
    target = EmbeddedStore(tmp_path / "space")
    with pytest.raises(ModelMismatchError) as err:
        import_snapshot(target, path, model_id="other/model")
    assert MODEL in str(err.value) and "other/model" in str(err.value)
    assert target.list_collections() == []
    target.create("shop", spec()).close()
    with pytest.raises(StoreError, match="already exists"):
        import_snapshot(target, path)
    assert import_snapshot(target, path, recreate=True).count == 600


def test_damaged_or_foreign_files_are_refused(tmp_path, source):
    store, _, _ = source
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all")
    with pytest.raises(StoreError, match="not a readable snapshot") as err:
        import_snapshot(store, junk)
    assert "\n" not in str(err.value)  # one line, not tarfile's list of tried compressions
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        tar.add(__file__, arcname="something.py")
    with pytest.raises(StoreError, match="not a FashionCLIP snapshot"):
        import_snapshot(store, foreign)
    good = export_snapshot(store, "shop", tmp_path / "shop.tar")
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    target = EmbeddedStore(tmp_path / "space")
    with pytest.raises(StoreError):
        import_snapshot(target, truncated)
    assert target.list_collections() == []


def test_push_to_a_folder_writes_the_collections_snapshot_file_inside_it(tmp_path, source):
    store, _, _ = source
    existing = tmp_path / "snaps"
    existing.mkdir()
    assert push_snapshot(store, "shop", str(existing)) == str(existing / "shop.snapshot")
    new = tmp_path / "new" / "dir"
    assert push_snapshot(store, "shop", f"{new}/") == str(new / "shop.snapshot")
    for path in (existing, new):
        assert read_manifest(path / "shop.snapshot")["count"] == 600
    assert sorted(p.name for p in tmp_path.rglob("*.partial")) == []


def test_an_unwritable_destination_is_one_error_and_leaves_no_partial_file(
    tmp_path, source, monkeypatch
):
    store, _, _ = source
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StoreError, match="cannot write the snapshot"):
        push_snapshot(store, "shop", str(blocker / "shop.snapshot"))
    # A disk that fills up halfway through (root ignores permissions, so no chmod here).
    from fashion_clip.store import snapshot

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(snapshot, "_add_trimmed", disk_full)
    with pytest.raises(StoreError, match="No space left"):
        export_snapshot(store, "shop", tmp_path / "out" / "shop.snapshot")
    assert list((tmp_path / "out").iterdir()) == []  # no .partial left behind


def test_push_and_pull_through_s3(tmp_path, source, bucket):
    store, cat, expected = source
    uri = f"{bucket}/spaces/shop.tar.gz"
    assert push_snapshot(store, "shop", uri) == uri
    assert s3.exists(uri)
    space = EmbeddedStore(tmp_path / "space")
    info = pull_snapshot(space, uri, model_id=MODEL)
    assert info.count == 600
    assert [h.id for h in space.open("shop").search(cat.image[9], limit=10)] == expected
    with pytest.raises(ModelMismatchError):
        pull_snapshot(EmbeddedStore(tmp_path / "other"), uri, model_id="other/model")
    with pytest.raises(s3.S3Error, match="no such key"):
        pull_snapshot(EmbeddedStore(tmp_path / "other"), f"{bucket}/missing.tar.gz")
    assert push_snapshot(store, "shop", f"{bucket}/spaces/") == f"{bucket}/spaces/shop.snapshot"
    assert s3.exists(f"{bucket}/spaces/shop.snapshot")
    space.close()


def test_snapshots_of_a_server_collection_point_to_qdrant(tmp_path):
    remote = RemoteStore(location=":memory:")
    with pytest.raises(StoreError, match="Qdrant server"):
        push_snapshot(remote, "shop", str(tmp_path / "x.tar.gz"))
