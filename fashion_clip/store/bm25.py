"""BM25 term weights of text, by the embedded engine's `Bm25` (for both stores).

The same code weighs a point's words when it is written and a query's words when it is
searched, in the embedded store and for a server alike, so token ids always agree.
"""

from __future__ import annotations

from fashion_clip.store.base import SparseVector


def document_vector(text: str) -> SparseVector:
    """The BM25 term weights of a point's keyword text (empty for no words)."""
    from fashion_clip.store import edge  # loads the embedded engine, which holds the BM25

    return edge.bm25_document(text)


def query_vector(text: str) -> SparseVector:
    """The terms of a typed query, each weighted 1 (the engine's IDF does the rest)."""
    from fashion_clip.store import edge  # loads the embedded engine, which holds the BM25

    return edge.bm25_query(text)
