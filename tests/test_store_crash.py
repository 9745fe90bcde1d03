"""Durability of the embedded store: SIGKILLed writers lose nothing acknowledged, and a second
process gets a clear error instead of corrupting a collection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fashion_clip.errors import StoreLockedError
from fashion_clip.store.embedded import EmbeddedStore
from tests.store_fixtures import DIM, MODEL, unit

REPO = Path(__file__).resolve().parents[1]
BATCH = 20

WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from fashion_clip.store import Point
    from fashion_clip.store.embedded import EmbeddedStore
    from tests.store_fixtures import spec, unit

    store = EmbeddedStore(sys.argv[1])
    mode = sys.argv[2]
    col = store.create("crash", spec(indexing_threshold_kb=1))
    rng = np.random.default_rng(0)
    if mode == "stream":  # write batch after batch; each printed number is acknowledged
        batch = 0
        while True:
            v = unit(rng, BATCH)
            col.upsert([Point(f"p{batch}-{j}", {"image": v[j]}, {"batch": batch})
                        for j in range(BATCH)])
            print(batch, flush=True)
            batch += 1
    elif mode == "optimize":  # get killed while the HNSW index is being built
        v = unit(rng, 1500)
        col.upsert([Point(f"q{j}", {"image": v[j]}, {"n": j}) for j in range(1500)])
        print("loaded", flush=True)
        col.optimize()
        print("optimized", flush=True)
        time.sleep(60)
    """
).replace("BATCH", str(BATCH))


def start(root: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_sigkilled_writer_loses_no_acknowledged_point(tmp_path):
    writer = start(tmp_path, "stream")
    acknowledged = -1
    try:
        for line in writer.stdout:
            acknowledged = int(line)
            if acknowledged >= 40:
                break
    finally:
        kill(writer)
    assert acknowledged >= 40

    rng = np.random.default_rng(0)
    store = EmbeddedStore(tmp_path)
    col = store.open("crash", model_id=MODEL, dim=DIM)  # the dead writer's lock is gone
    for batch in range(acknowledged + 1):
        expected = unit(rng, BATCH)
        ids = [f"p{batch}-{j}" for j in range(BATCH)]
        found = {p.id: p for p in col.retrieve(ids, with_vectors=True)}
        assert sorted(found) == sorted(ids), f"batch {batch} lost points"
        for j, pid in enumerate(ids):
            np.testing.assert_allclose(found[pid].vectors["image"], expected[j], atol=1e-6)
            assert found[pid].payload["batch"] == batch
    assert col.count() >= (acknowledged + 1) * BATCH
    store.close()


def test_kill_during_index_build_leaves_a_working_collection(tmp_path):
    writer = start(tmp_path, "optimize")
    try:
        assert writer.stdout.readline().strip() == "loaded"
    finally:
        kill(writer)  # most likely mid-optimize; either way nothing may be lost
    store = EmbeddedStore(tmp_path)
    col = store.open("crash")
    assert col.count() == 1500
    v = unit(np.random.default_rng(0), 1500)
    assert col.search(v[42], limit=1, exact=True)[0].id == "q42"
    col.optimize()
    assert col.search(v[42], limit=1)[0].id == "q42"
    store.close()


@pytest.fixture
def holder(tmp_path):
    """A child process holding collection "held" open."""
    code = textwrap.dedent(
        """
        import sys, time
        from fashion_clip.store.embedded import EmbeddedStore
        store = EmbeddedStore(sys.argv[1])
        store.open("held")
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    from tests.store_fixtures import spec

    EmbeddedStore(tmp_path).create("held", spec()).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout.readline().strip() == "ready"
    yield process
    if process.poll() is None:
        kill(process)


def test_collection_open_in_another_process_is_refused_clearly(tmp_path, holder):
    store = EmbeddedStore(tmp_path)
    with pytest.raises(StoreLockedError) as err:
        store.open("held")
    message = str(err.value)
    assert "already open in another process" in message and str(holder.pid) in message
    assert "QDRANT_URL" in message
    with pytest.raises(StoreLockedError):
        store.drop("held")
    kill(holder)  # the kernel drops a dead holder's lock
    assert store.open("held").count() == 0
    store.close()
