"""Query vector arithmetic: one unit-length vector from weighted query vectors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fashion_clip.errors import InvalidInputError, ModelMismatchError


def compose(terms: Sequence[tuple[np.ndarray, float]], dim: int) -> np.ndarray:
    """The unit-length weighted sum of `(vector, weight)` terms, `(dim,)` float32."""
    if not terms:
        raise InvalidInputError("a composed query needs at least one (vector, weight) term, not 0")
    total = np.zeros(dim, dtype=np.float64)
    for vector, weight in terms:
        if np.shape(vector) != (dim,):
            raise ModelMismatchError(
                f"a query vector has shape {np.shape(vector)}; the collection holds {dim}-d vectors"
            )
        total += float(weight) * np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(total))
    if not math.isfinite(norm) or norm < 1e-9:
        weights = ", ".join(f"{float(weight):g}" for _, weight in terms)
        raise InvalidInputError(
            f"the weighted query vectors cancel out (weights {weights}); change the weights"
        )
    return (total / norm).astype(np.float32)
