"""Text embeddings remembered between requests: queries repeat, label prompts repeat more.

A user changing a filter, paging "more like this" or following a shared `?q=` link sends
the same query text again, and the classify tab's presets send the same label prompts on
every call. Encoding a text costs a forward pass of the text tower (about ten milliseconds
for FashionCLIP on two CPU cores); a lookup costs microseconds and gives the same vector.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from fashion_clip.model.clip import ClipModel


class CachedText:
    """`model.encode_text` with an LRU of the last `size` texts; thread-safe.

    It also passes the model's `logit_scale` and `logit_bias` through, so it can stand in
    for the model wherever only text is encoded (`fashion_clip.tasks.classify`).
    """

    def __init__(self, model: ClipModel, size: int = 4096) -> None:
        self.model = model
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def logit_scale(self) -> float:
        return self.model.logit_scale

    @property
    def logit_bias(self) -> float | None:
        return self.model.logit_bias

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Texts -> (n, dim) float32 unit embeddings (read-only rows: they are shared)."""
        texts = [texts] if isinstance(texts, str) else [str(text) for text in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                if text in self._vectors:
                    self._vectors.move_to_end(text)
                    found[text] = self._vectors[text]
            self.hits += len(texts) - sum(text not in found for text in texts)
        missing = list(dict.fromkeys(text for text in texts if text not in found))
        if missing:
            # Encoded outside the lock: two requests may encode one new text at once, which
            # costs a little work but never makes one request wait for another's model call.
            vectors = self.model.encode_text(missing, batch_size=batch_size)  # (m, dim)
            with self._lock:
                self.misses += len(missing)
                for text, row in zip(missing, vectors, strict=True):
                    # A copy: a row view would keep its whole batch (up to 64 label prompts)
                    # alive for as long as any one of them stays remembered.
                    vector = row.copy()
                    vector.setflags(write=False)
                    self._vectors[text] = vector
                    found[text] = vector
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.empty((0, self.model.dim), dtype=np.float32)
        return np.stack([found[text] for text in texts])
