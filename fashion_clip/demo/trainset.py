"""Training images for the demo model, rendered in the background while training runs.

A worker process renders chunks of garments into uint8 arrays; training starts as soon as the
first chunk is in and samples from whatever has arrived. Each chunk holds every (category,
colour, pattern) once, so any prefix of the pool is balanced.
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future, ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context

import numpy as np

from fashion_clip.demo.garments import CATEGORIES, COLORS, PATTERNS, render_array

__all__ = ["SIZES", "TrainingPool"]

SIZES = (len(CATEGORIES), len(COLORS), len(PATTERNS))
_COMBOS = np.array(list(itertools.product(*(range(n) for n in SIZES))), np.int64)  # (400, 3)


class TrainingPool:
    """Up to `size` images (n, image_size, image_size, 3) uint8 with attributes (n, 3).

    Attribute rows are (category, colour, pattern) indices into CATEGORIES, COLORS, PATTERNS.
    Use as a context manager, so the worker is stopped however training ends.
    """

    def __init__(self, size: int, seed: int, image_size: int, jpeg_quality: int) -> None:
        chunk = len(_COMBOS)
        order_rng = np.random.default_rng([seed, 1])
        blocks = -(-size // chunk)
        order = np.concatenate([order_rng.permutation(chunk) for _ in range(blocks)])[:size]
        self.attrs = _COMBOS[order]
        self.images = np.empty((size, image_size, image_size, 3), np.uint8)
        self.ready = 0
        self._by_combo: list[list[int]] = [[] for _ in range(chunk)]
        render = partial(render_array, size=256, out_size=image_size, jpeg_quality=jpeg_quality)
        names = [(CATEGORIES[c], COLORS[k], PATTERNS[p]) for c, k, p in self.attrs]
        # fork: works from any caller (spawn re-imports __main__); the child only runs numpy
        # and PIL, so torch's threads in the parent cannot hang it
        self._executor = ProcessPoolExecutor(1, mp_context=get_context("fork"))
        self._pending: list[Future[np.ndarray]] = [
            self._executor.submit(render, names[s : s + chunk], seed, s)
            for s in range(0, size, chunk)
        ]

    def __enter__(self) -> TrainingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def refresh(self, wait: bool = False) -> int:
        """Take in the chunks rendered so far (with `wait`, at least one more); returns how
        many images are ready."""
        while self._pending and (wait or self._pending[0].done()):
            part = self._pending.pop(0).result()
            wait = False
            end = self.ready + len(part)
            self.images[self.ready : end] = part
            for i in range(self.ready, end):
                c, k, p = self.attrs[i]
                self._by_combo[(c * SIZES[1] + k) * SIZES[2] + p].append(i)
            self.ready = end
        return self.ready

    def batch(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Indices of ready images: half at random, half in groups of up to 4 that differ in
        one attribute only.

        The groups are the hard negatives: a red striped dress beside a red striped skirt and
        shirt makes the model read the shape, not just the colour.
        """
        chosen = list(rng.integers(self.ready, size=size // 2))
        while len(chosen) < size:
            anchor = self.attrs[rng.integers(self.ready)].copy()
            # colour is learned first and easily; shape and pattern need the harder contrasts
            axis = int(rng.choice(3, p=[0.5, 0.15, 0.35]))
            for value in rng.choice(SIZES[axis], size=min(4, SIZES[axis]), replace=False):
                anchor[axis] = value
                same = self._by_combo[(anchor[0] * SIZES[1] + anchor[1]) * SIZES[2] + anchor[2]]
                chosen.append(same[int(rng.integers(len(same)))])
        return np.array(chosen[:size])
