"""Decoding and cropping the indexer's images, and where that happens.

On a CPU the model takes ~50 ms per image and decoding ~4, so the fetch threads decode too.
On a GPU the model takes a fraction of a millisecond, and threads decoding beside the thread
that drives the GPU slow that thread down: they contend with it for the GIL, which every
PyTorch call gives up and takes back (H100, benchmarks/HISTORY.md: 643 images/s decoding in threads,
757 in processes, the model alone 3,500). So there rows are prepared in worker processes
(`ingest.workers`) and come back as (H, W, 3) uint8 crops, a quarter of the float32 input.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

import numpy as np

from fashion_clip.errors import FashionCLIPError, ImageLoadError, InvalidInputError
from fashion_clip.media.images import decode_image
from fashion_clip.model.preprocess import ImagePreprocessor

DECODE_MODES = ("auto", "threads", "processes")


class DecoderFailed(FashionCLIPError):
    """The decoding processes died (killed, or a decoder crashed); the run cannot go on."""


def decode_crop(
    data: bytes, source: str, preprocessor: ImagePreprocessor
) -> tuple[np.ndarray | None, str]:
    """(crop, "") or (None, why the image was refused). Runs in a thread or a process."""
    try:
        image = decode_image(data, name=source, min_side=preprocessor.min_decode_side)
        return preprocessor.crop_pixels(image), ""
    except ImageLoadError as exc:
        return None, str(exc)
    except Exception as exc:  # a decoder surprise costs one row, not the run
        return None, f"unexpected {type(exc).__name__}: {exc}"


def decode_mode(mode: str, device: str) -> str:
    """ "threads" or "processes": `mode`, with "auto" meaning processes when the model is on
    a GPU (or any accelerator) and threads on the CPU."""
    if mode not in DECODE_MODES:
        raise InvalidInputError(f"decode mode {mode!r} is not one of {', '.join(DECODE_MODES)}")
    if mode == "auto":
        return "threads" if device == "cpu" else "processes"
    return mode


def become_a_decoder(parent: int) -> None:
    """Set up a decoding process: it ignores Ctrl-C (the indexer stops it) and dies with the
    indexer, even one killed by SIGKILL, instead of waiting on its queue forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1  # from <sys/prctl.h>: a signal for us when the parent dies
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(pr_set_pdeathsig, signal.SIGKILL) == 0 and os.getppid() == parent:
            return
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)
