"""Let freed activation memory be reused instead of handed back to the kernel at once.

A CPU forward pass allocates and frees large activation tensors (a ViT-B/32 batch of 32
makes MLP outputs of 20 MB each). glibc serves blocks that size with fresh `mmap`s and gives
them back on `free` whenever its adaptive mmap threshold sits below them, so the next batch
touches those pages anew. Measured through `ClipModel.encode_crops` (benchmarks/HISTORY.md): the
opt-in int8 model took 220,000 page faults per batch of 32 and ran 1.4x faster without
them; fp32 took 36,000-39,000 and gained 1-4%. Raising glibc's mmap threshold to its maximum
(32 MiB on 64-bit) and its trim threshold to 256 MiB keeps those blocks in the heap, where
the next batch reuses them. The cost: freed memory is handed back to the kernel later (up to
256 MiB at the main heap's top; peak RSS unchanged in the benchmarks). Tensors over 32 MiB
(a ViT-L/14's activations at batch 32) are still mapped anew.

This is process-wide, so the library never applies it by itself: programs do, once their
model is loaded, with `tune_for(model.device)` (the app and `python -m indexer` do; a script
or notebook may too). It does nothing where malloc is not glibc's, or where the user already
tuned it (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`, or malloc settings in
`GLIBC_TUNABLES`): setting one of those also opts out.

`cap_arenas` bounds how many malloc arenas serve the process's threads. glibc gives threads
that allocate at the same time arenas of their own, up to 8 per core, and an arena keeps what
its threads freed: with the tuning above, a decoded upload under 32 MiB (a 3000x3000 photo:
27 MB) stays in the arena of whichever of the server's threads decoded it. A soak of the app
(`benchmarks.soak`, 2 cores) climbed to ~1,500 MB that way, and stayed at ~750 MB with 2
arenas, at no measurable cost in latency or throughput (benchmarks/HISTORY.md, Space). The app calls
it first thing (`app.py`), before its threads allocate: a cap does not shrink the arenas
already made. It opts out where the user set `MALLOC_ARENA_MAX`, `MALLOC_ARENA_TEST` or
malloc settings in `GLIBC_TUNABLES`. The indexer does not call it.
"""

from __future__ import annotations

import ctypes
import logging
import os

from fashion_clip.machine import usable_cores

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = 256 * 1024 * 1024
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
USER_ARENA_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST")

_applied = False


def tune_for(device: str) -> bool:
    """The malloc tuning for a process running a model on `device`: `keep_freed_memory()` on
    the CPU, nothing elsewhere. True when it took effect.

        model = ClipModel.load("fashion-clip")
        allocator.tune_for(model.device)  # once, from the program's entry point
    """
    return device == "cpu" and keep_freed_memory()


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for large, short-lived tensors; True when it took effect."""
    global _applied
    if _applied:
        return True
    if not _is_glibc() or _user_tuned(USER_SETTINGS):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    # Both are needed: with the mmap threshold alone, freed blocks at the heap's top are
    # trimmed (returned to the kernel) and faulted in again by the next batch.
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("malloc tuned for tensor reuse: %s", _applied)
    return _applied


def cap_arenas(count: int) -> bool:
    """Let at most `count` malloc arenas serve this process's threads; True when it took effect.

    Call it before threads allocate: arenas made before the call are kept and used.
    """
    if not _is_glibc() or _user_tuned(USER_ARENA_SETTINGS):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    capped = bool(mallopt(M_ARENA_MAX, max(1, count)))
    log.debug("malloc arenas capped at %d: %s", count, capped)
    return capped


def arena_count() -> int:
    """The cap the app sets: one arena per usable core (no more threads than that run malloc
    at once), at least 2."""
    return max(2, usable_cores())


def _mallopt():
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the libc this process already runs on
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not POSIX, or not glibc
        return False


def _user_tuned(names: tuple[str, ...]) -> bool:
    return any(name in os.environ for name in names) or "malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    )
