"""Let freed activation memory be reused instead of handed back to the kernel at once.

A CPU forward pass allocates and frees large activation tensors (a ViT-B/32 batch of 32
makes MLP outputs of 20 MB each). glibc serves blocks that size with fresh `mmap`s and gives
them back on `free` whenever its adaptive mmap threshold sits below them, so the next batch
touches those pages anew. Measured through `ClipModel.encode_crops` (BENCHMARKS.md): the
opt-in int8 model took 220,000 page faults per batch of 32 and ran 1.4x faster without
them; fp32 took 36,000-39,000 and gained 1-4%. Raising glibc's mmap threshold to its maximum
(32 MiB on 64-bit) and its trim threshold to 256 MiB keeps those blocks in the heap, where
the next batch reuses them; the process keeps at most 256 MiB of freed memory beyond what it
still uses (peak RSS unchanged, measured).

This is process-wide. `ClipModel.load` calls it for models on the CPU; elsewhere (musl,
macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = 256 * 1024 * 1024

_applied = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for large, short-lived tensors; True when it took effect."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
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
