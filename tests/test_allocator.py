"""glibc malloc tuning (`fashion_clip.model.allocator`): the app's arena cap, and who applies it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from fashion_clip.model.allocator import USER_ARENA_SETTINGS, USER_SETTINGS, _is_glibc

# Started like the app: the cap first (or not), then the model's malloc tuning, then threads.
# Each of THREADS live threads mallocs a 20 MB buffer (under the 32 MiB mmap threshold: a
# decoded upload's size), writes it and frees it, one thread at a time, so what stays resident
# is what the arenas kept, not what was in use at once.
THREADS_FREE_BUFFERS = textwrap.dedent(
    """
    import ctypes, sys, threading
    from fashion_clip.model.allocator import cap_arenas, keep_freed_memory

    def rss_mb():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    if sys.argv[1] == "capped":
        assert cap_arenas(2)
    assert keep_freed_memory()
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    SIZE, THREADS = 20 * 2**20, 12
    one_at_a_time, all_done = threading.Lock(), threading.Barrier(THREADS + 1)

    def allocate_and_free():
        with one_at_a_time:
            buffer = libc.malloc(SIZE)
            ctypes.memset(buffer, 1, SIZE)
            libc.free(buffer)
        all_done.wait()  # alive until all are done: a finished thread's arena is reused

    before = rss_mb()
    threads = [threading.Thread(target=allocate_and_free) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    all_done.wait()
    print(round(rss_mb() - before))
    for thread in threads:
        thread.join()
    """
)


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without the user's malloc settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS + USER_ARENA_SETTINGS}
    env.pop("GLIBC_TUNABLES", None)
    return {**env, **extra}


@pytest.mark.skipif(not _is_glibc(), reason="glibc's malloc arenas")
def test_capped_arenas_keep_less_of_what_threads_freed() -> None:
    def kept_mb(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", THREADS_FREE_BUFFERS, mode],
            capture_output=True,
            text=True,
            check=True,
            env=_clean_env(),
        )
        return int(run.stdout.strip())

    default, capped = kept_mb("default"), kept_mb("capped")
    # By default each thread gets an arena of its own (up to 8 per core, at least 8) and each
    # arena keeps its 20 MB: 240 MB measured on 2 cores. Two arenas keep 2-3 buffers: 60 MB.
    assert default >= 6 * 20, (default, capped)
    assert capped <= 4 * 20, (default, capped)


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (None, None, "True"),
        ("MALLOC_ARENA_MAX", "4", "False"),
        ("MALLOC_ARENA_TEST", "4", "False"),
        ("GLIBC_TUNABLES", "glibc.malloc.arena_max=4", "False"),
        ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072", "False"),
        ("MALLOC_TRIM_THRESHOLD_", "131072", "True"),  # the other tuning's opt-out only
    ],
)
def test_a_user_setting_opts_out_of_the_arena_cap(setting, value, expected) -> None:
    if expected == "True" and not _is_glibc():
        expected = "False"
    check = "from fashion_clip.model.allocator import cap_arenas; print(cap_arenas(2))"
    env = _clean_env(**({setting: value} if setting else {}))
    run = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, env=env
    )
    assert run.stdout.strip() == expected


def test_the_app_caps_arenas_before_the_model_loads_then_tunes_for_it(monkeypatch) -> None:
    import app
    import fashion_clip.model.allocator
    import fashion_clip.model.runtime
    from fashion_clip.errors import FashionCLIPError

    calls = []
    allocator = fashion_clip.model.allocator
    monkeypatch.setattr(allocator, "cap_arenas", lambda n: calls.append(("cap", n)))
    monkeypatch.setattr(allocator, "tune_for", lambda device: calls.append(("tune", device)))
    model = SimpleNamespace(device="cpu", info=SimpleNamespace(name="demo"), text_precision="")

    def load_configured_model(*args: object, **kwargs: object) -> tuple[object, None]:
        calls.append(("load", None))
        return model, None

    def open_store(settings: object) -> None:
        raise FashionCLIPError("stop here")

    monkeypatch.setattr(fashion_clip.model.runtime, "load_configured_model", load_configured_model)
    monkeypatch.setattr(app, "open_store", open_store)
    monkeypatch.setenv("FASHION_CLIP_MODEL", "demo")
    assert app.main([]) == 1
    assert calls == [("cap", allocator.arena_count()), ("load", None), ("tune", "cpu")]


def test_the_indexer_tunes_malloc_for_the_model_it_loaded(monkeypatch) -> None:
    import fashion_clip.model.allocator
    import indexer.commands
    from fashion_clip.errors import FashionCLIPError
    from indexer.__main__ import main

    calls = []

    def tune_for(device: str) -> None:
        calls.append(device)
        raise FashionCLIPError("stop here")  # before any indexing

    model = SimpleNamespace(device="cpu")
    monkeypatch.setattr(indexer.commands, "load_configured_model", lambda *a, **k: (model, None))
    monkeypatch.setattr(fashion_clip.model.allocator, "tune_for", tune_for)
    assert main(["demo"]) == 2
    assert calls == ["cpu"]
