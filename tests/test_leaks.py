"""Nothing stays open after a failure or a capped read: shards, collection locks, S3 bodies,
and file objects are read no further than the size cap."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from fashion_clip.api.dataset import FCLIPDataset
from fashion_clip.errors import ImageLoadError, StoreError
from fashion_clip.media import images, s3
from fashion_clip.store import CollectionSpec
from fashion_clip.store.embedded import EmbeddedStore


def _held_under(folder: Path) -> int:
    """File descriptors and memory maps this process holds on files under `folder`."""
    fds = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds += os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder))
        except OSError:  # closed while listing
            continue
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return fds + sum(str(folder) in line for line in maps)


def test_a_failed_create_closes_the_shard_it_made(tmp_path, monkeypatch):
    import fashion_clip.store.embedded as embedded

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    store = EmbeddedStore(tmp_path)
    spec = CollectionSpec(model_id="m", dim=4)
    monkeypatch.setattr(embedded, "write_json_atomic", disk_full)  # the record, written last
    with pytest.raises(OSError, match="No space left") as failed:
        store.create("shop", spec)
    # The error (and its traceback, which holds the frames) is still alive here: whatever it
    # references must already be closed, not left for the garbage collector.
    assert failed.value is not None
    assert _held_under(tmp_path / "shop") == 0
    monkeypatch.undo()
    with EmbeddedStore(tmp_path) as again, again.create("shop", spec, recreate=True) as made:
        assert made.count() == 0  # the folder is reusable by this same process


def test_a_dataset_collection_is_closed_when_adding_its_payload_indexes_fails(
    tmp_path, monkeypatch, tiny_model
):
    import fashion_clip.api.catalog_vectors as catalog_vectors

    info = tiny_model.info
    spec = CollectionSpec(model_id=info.name, dim=tiny_model.dim, model_revision=info.revision)
    store = EmbeddedStore(tmp_path)
    store.create("vectors", spec).close()

    def refused(*args, **kwargs):
        raise StoreError("payload index refused by the engine")

    monkeypatch.setattr(catalog_vectors, "add_payload_indexes", refused)
    dataset = FCLIPDataset("mine", catalog=[{"id": 1, "image": "x.jpg", "caption": "a hat"}])
    with pytest.raises(StoreError, match="refused by the engine"):
        catalog_vectors.ensure_dataset_vectors(dataset, tiny_model, store, "vectors")
    # Its lock went with it: another store (as another process would) can open it.
    with EmbeddedStore(tmp_path) as other, other.open("vectors") as opened:
        assert opened.count() == 0


def test_every_s3_body_is_closed_after_a_capped_read(s3_bucket, monkeypatch):
    from botocore.response import StreamingBody

    closed = []
    close = StreamingBody.close
    monkeypatch.setattr(StreamingBody, "close", lambda body: closed.append(body) or close(body))
    client = s3.s3_client()
    client.put_object(Bucket=s3_bucket, Key="small.jpg", Body=b"x" * 100)
    client.put_object(Bucket=s3_bucket, Key="large.jpg", Body=b"y" * 5000)
    assert s3.read_bytes(f"s3://{s3_bucket}/small.jpg", max_bytes=1000) == b"x" * 100
    with pytest.raises(s3.S3Error, match="over the 1000-byte cap"):
        s3.read_bytes(f"s3://{s3_bucket}/large.jpg", max_bytes=1000)
    assert s3.read_bytes(f"s3://{s3_bucket}/small.jpg") == b"x" * 100  # no cap
    assert len(closed) == 3


class _Long(io.RawIOBase):
    """A binary stream of 16 MB of zeros (a pipe, a device), counting what is read."""

    def __init__(self) -> None:
        self.given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), 1 << 16, (16 << 20) - self.given)
        buffer[:size] = bytes(size)
        self.given += size
        return size


def test_a_file_object_is_read_no_further_than_the_cap():
    stream = io.BufferedReader(_Long())
    cap = 1 << 20
    with pytest.raises(ImageLoadError, match="over the 1048576-byte cap"):
        images.load_image(stream, max_bytes=cap)
    assert stream.raw.given <= cap + (1 << 17)  # the cap and a buffer's worth, not all
    text = io.StringIO("not bytes")
    with pytest.raises(ImageLoadError, match="binary mode"):
        images.load_image(text)
