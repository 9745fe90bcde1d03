"""Gradio's sweep of its file cache (`delete_cache`), made safe to run while uploads arrive.

Gradio (6.31) sweeps the files it saved for uploads and outputs in a worker thread, iterating
the very sets each new upload is added to. An upload that lands during a sweep raises
"Set changed size during iteration", which ends the scheduled task for good: from then on
nothing is deleted until the app restarts (the soak benchmark, `benchmarks/soak.py`: about
535 uploaded files per 1,000 requests, kept forever). It also leaves each file's folder
(Gradio names one per file, by its content hash) behind, empty.

`sweep` does the sweep's job over a snapshot of each set and removes the folders it empties;
`install` puts it in place of Gradio's function, which both the scheduled sweep and the final
one at shutdown look up when they run. The test of this module checks that Gradio's own
function still fails that way, so a Gradio that fixes it is noticed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradio import route_utils
from gradio.utils import get_upload_folder

log = logging.getLogger(__name__)

# Gradio's own function once `install` replaced it: its test checks it still needs replacing.
gradio_sweep: Callable[[Any, int | None], None] | None = None


def sweep(blocks: Any, age: int | None) -> None:
    """Delete the app's cached files older than `age` seconds (all of them if None), as
    Gradio's `delete_files_created_by_app` does, and the per-file folders left empty."""
    cache = Path(get_upload_folder()).resolve()
    keep: set[str] = set()
    for component in list(blocks.blocks.values()):
        keep.update(getattr(component, "keep_in_cache", ()))
    now = time.time()
    for files in list(blocks.temp_file_sets):
        # A snapshot: uploads arriving meanwhile are added to `files`, not to this list.
        removed = set()
        for file in list(files):
            if file in keep:
                continue
            try:
                if age is None or now - os.lstat(file).st_ctime > age:
                    os.remove(file)
                    removed.add(file)
            except FileNotFoundError:
                continue
            _remove_if_empty(Path(file).parent, cache)
        files -= removed  # in place, in one step: the set Gradio keeps adding to


def _remove_if_empty(folder: Path, cache: Path) -> None:
    """Remove a file's folder if it is empty and inside the cache (never the cache itself)."""
    with contextlib.suppress(OSError):  # not empty, gone already, or not ours
        if folder.resolve().parent.is_relative_to(cache):
            folder.rmdir()


def install() -> bool:
    """Make Gradio's cache sweeps use `sweep`; False (and nothing changed) where this Gradio
    has no such function to replace."""
    global gradio_sweep

    current = getattr(route_utils, "delete_files_created_by_app", None)
    if current is sweep:
        return True
    if not callable(current):
        log.warning("Gradio's cache sweep was not found where expected; it is left as it is")
        return False
    gradio_sweep = current
    route_utils.delete_files_created_by_app = sweep
    return True
