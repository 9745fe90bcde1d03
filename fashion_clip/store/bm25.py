"""BM25 term weights of text, by the embedded engine's `Bm25` (for both stores).

The same code weighs a point's words when it is written and a query's words when it is
searched, in the embedded store and for a server alike, so token ids always agree.
"""

from __future__ import annotations

import functools
from typing import Any

from fashion_clip.store.base import SparseVector


def document_vector(text: str) -> SparseVector:
    """The BM25 term weights of a point's keyword text by hashed token id (stemmed,
    stopwords out; empty for no words)."""
    vector = _bm25().embed_document(text)
    return SparseVector(tuple(vector.indices), tuple(vector.values))


def query_vector(text: str) -> SparseVector:
    """The terms of a typed query, each weighted 1 (the engine's IDF does the rest)."""
    vector = _bm25().embed_query(text)
    return SparseVector(tuple(vector.indices), tuple(vector.values))


@functools.cache
def _bm25() -> Any:
    import qdrant_edge as qe  # deferred: the embedded engine, which holds the BM25

    # English tokenization, lowercase, stemming, the standard k=1.2 and b=0.75; the same
    # defaults as a Qdrant server's `Bm25Config`, so the token ids agree with one.
    return qe.Bm25(qe.Bm25Config())
