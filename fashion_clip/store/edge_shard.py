"""A Qdrant Edge shard's files: made, opened, counted, and swapped for a rebuilt copy.

An engine cannot add a vector space to an existing shard: a collection made before keyword
search is copied into a new shard beside it (`NEW_SUFFIX`) that is then swapped in, and a
crash during the swap leaves one of the two whole (`recover_shard`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from fashion_clip.errors import StoreError
from fashion_clip.store.base import VECTOR_NAMES, CollectionSpec
from fashion_clip.store.keywords import KEYWORDS_VECTOR

NEW_SUFFIX, OLD_SUFFIX = ".new", ".old"  # shard folders while the keyword space is added
SCHEMAS = {  # payload index types as the engine names them
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}


def create_shard(path: Path, spec: CollectionSpec) -> Any:
    """A new, empty shard at `path` holding the `image` and `text` spaces of `spec.dim`."""
    quantization = None
    if spec.quantization:
        # int8 copies pinned in RAM drive the search; originals rescore the candidates.
        quantization = qe.ScalarQuantizationConfig(
            qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned
        )
    memory = qe.Memory.Cold if spec.on_disk_vectors else None
    vectors = {
        name: qe.EdgeVectorParams(size=spec.dim, distance=qe.Distance.Cosine, memory=memory)
        for name in VECTOR_NAMES
    }
    config = qe.EdgeConfig(
        vectors=vectors,
        # BM25 term frequencies; the engine turns them into BM25 scores with its IDF
        sparse_vectors={KEYWORDS_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=qe.HnswIndexConfig(
            m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct, full_scan_threshold=10_000
        ),
        quantization_config=quantization,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=spec.indexing_threshold_kb),
        wal_enabled=True,  # what makes a returned write survive a crash (the default, pinned)
    )
    return engine("create the shard", qe.EdgeShard.create, str(path), config)


def swap_in(fresh: Path, path: Path) -> None:
    """Put the shard folder `fresh` in the place of `path`; a crash leaves one of them whole
    (`recover_shard` finishes the swap)."""
    retired = path.with_name(path.name + OLD_SUFFIX)
    shutil.rmtree(retired, ignore_errors=True)
    os.replace(path, retired)
    os.replace(fresh, path)
    shutil.rmtree(retired, ignore_errors=True)


def recover_shard(path: Path) -> None:
    """Finish a swap a crash interrupted: the new shard is complete once its folder is named."""
    fresh = path.with_name(path.name + NEW_SUFFIX)
    if not path.exists() and fresh.exists():
        os.replace(fresh, path)


def copy_points(source: Any, target: Any) -> None:
    """Every point of shard `source` (vectors and payload as stored) into shard `target`."""
    offset = None
    while True:
        request = qe.ScrollRequest(offset=offset, limit=512, with_payload=True, with_vector=True)
        records, offset = engine("scroll points", source.scroll, request)
        if records:
            points = [qe.Point(r.id, r.vector, r.payload) for r in records]
            engine("copy points", target.update, qe.UpdateOperation.upsert_points(points))
        if offset is None:
            return


def load_shard(path: Path) -> Any:
    """The shard whose files are at `path`, opened."""
    return engine("open the shard", qe.EdgeShard.load, str(path))


def count_shard(path: Path) -> int:
    """Open the shard at `path`, count its points and close it (checks a shard loads)."""
    shard = load_shard(path)
    try:
        return int(engine("count points", shard.count, qe.CountRequest(exact=True)))
    finally:
        shard.close()


def engine(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)`, the engine's errors as `StoreError`s saying what could not be done."""
    try:
        return fn(*args)
    except StoreError:
        raise
    except Exception as exc:  # the bindings raise bare Exception/ValueError with the cause
        raise StoreError(f"embedded store: could not {what}: {exc}") from exc
