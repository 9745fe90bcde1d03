"""Let freed activation memory be reused instead of handed back to the kernel at once.

A CPU forward pass allocates and frees large activation tensors (a ViT-B/32 batch of 32
makes MLP outputs of 20 MB each). glibc serves blocks that size with fresh `mmap`s and gives
them back on `free` whenever its adaptive mmap threshold sits below them, so the next batch
touches those pages anew. Measured through `ClipModel.encode_crops` (BENCHMARKS.md): the
opt-in int8 model took 220,000 page faults per batch of 32 and ran 1.4x faster without
them; fp32 took 36,000-39,000 and gained 1-4%. Raising glibc's mmap threshold to its maximum
(32 MiB on 64-bit) and its trim threshold to 256 MiB keeps those blocks in the heap, where
the next batch reuses them. The cost: freed memory is handed back to the kernel later (up to
256 MiB at the main heap's top; peak RSS unchanged in the benchmarks). Tensors over 32 MiB
(a ViT-L/14's activations at batch 32) are still mapped anew.

This is process-wide. `ClipModel.load` calls it for models on the CPU. It does nothing where
malloc is not glibc's, or where the user already tuned it (`MALLOC_TRIM_THRESHOLD_`,
`MALLOC_MMAP_THRESHOLD_`, or malloc settings in `GLIBC_TUNABLES`): setting one of those
also opts out.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = 256 * 1024 * 1024
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

_applied = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for large, short-lived tensors; True when it took effect."""
    global _applied
    if _applied:
        return True
    if not _is_glibc() or _user_tuned():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the libc this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Both are needed: with the mmap threshold alone, freed blocks at the heap's top are
    # trimmed (returned to the kernel) and faulted in again by the next batch.
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("malloc tuned for tensor reuse: %s", _applied)
    return _applied


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not POSIX, or not glibc
        return False


def _user_tuned() -> bool:
    return any(name in os.environ for name in USER_SETTINGS) or "malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    )
