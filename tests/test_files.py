"""`fashion_clip.files.write_atomic`: the one way files are written whole (the embedded store's
records, the app's pictures)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fashion_clip.files import write_atomic


@pytest.mark.parametrize("durable", [True, False])
def test_a_failed_write_leaves_the_old_file_and_nothing_else(tmp_path: Path, durable) -> None:
    target = tmp_path / "meta.json"
    write_atomic(target, b"old", durable=durable)
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes", durable=durable)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


def test_concurrent_writers_never_mix_or_trip_over_each_other(tmp_path: Path) -> None:
    target = tmp_path / "picture.jpg"
    payloads = [bytes([i]) * 200_000 for i in range(6)]
    errors: list[BaseException] = []

    def write(data: bytes) -> None:
        try:
            for _ in range(15):
                write_atomic(target, data, durable=False)
        except BaseException as exc:  # a shared temporary name: one writer's replace fails
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(data,)) for data in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["picture.jpg"]
