"""A Qdrant server, cluster or Qdrant Cloud through `qdrant-client` (which only this module,
`remote_collection` and `remote_query` import): the connection and its collections.

The collection record lives in the collection's own `metadata` (Qdrant >= 1.16), under the key
`fashion_clip`. `qdrant-client`'s local mode (`location=":memory:"` or `path=`) speaks the same
API and stands in for a server in the tests.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from fashion_clip.errors import ConfigurationError, StoreError
from fashion_clip.redact import public_url, scrub, url_secrets
from fashion_clip.store.base import (
    VECTOR_NAMES,
    Collection,
    CollectionSpec,
    Store,
)
from fashion_clip.store.keywords import KEYWORDS_VECTOR
from fashion_clip.store.meta import (
    META_KEY,
    check_name,
    guard,
    new_meta,
    parse_meta,
)
from fashion_clip.store.remote_collection import RemoteCollection

log = logging.getLogger(__name__)


class RemoteStore(Store):
    """Collections on a Qdrant server (`url`, `api_key`) or in a given `QdrantClient`.

    `prefer_grpc` sends requests (bulk upserts above all) over gRPC on `grpc_port`.
    """

    kind = "remote"

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        client: QdrantClient | None = None,
        location: str | None = None,
        prefer_grpc: bool = False,
        grpc_port: int = 6334,
        timeout: int = 60,
    ) -> None:
        self._owns_client = client is None
        if client is None:
            if not url and not location:
                raise ConfigurationError("a remote store needs QDRANT_URL (or a client)")
            client = QdrantClient(
                url=url, location=location, api_key=api_key, prefer_grpc=prefer_grpc,
                grpc_port=grpc_port, timeout=timeout,
                # No request at construction: an unreachable server fails the first call with
                # one clear StoreError instead of a warning and a stall here.
                check_compatibility=False,
            )  # fmt: skip
        self.client = client
        # Shown in messages and `indexer info`: never the URL's user:password or ?api_key=.
        self.location = public_url(url) if url else location or "a given qdrant client"
        self._secrets = [*url_secrets(url), api_key or ""]

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a client call, turning its many exception classes into one clear StoreError."""
        try:
            with warnings.catch_warnings():
                # Local mode (the tests' stand-in) warns that indexes and search params are
                # no-ops there: expected, and never seen against a server.
                warnings.filterwarnings("ignore", message=".*local (mode|qdrant)")
                return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            # The client's own text may quote the URL it was given, credentials and all.
            problem = scrub(str(exc), self._secrets)
            raise StoreError(f"Qdrant at {self.location}: could not {what}: {problem}") from exc

    def list_collections(self) -> list[str]:
        response = self.call("list collections", self.client.get_collections)
        return sorted(c.name for c in response.collections)

    def exists(self, name: str) -> bool:
        return bool(self.call("look up a collection", self.client.collection_exists, name))

    def create(self, name: str, spec: CollectionSpec, *, recreate: bool = False) -> Collection:
        check_name(name)
        meta = new_meta(spec)
        if self.exists(name):
            if not recreate:
                raise StoreError(
                    f"collection {name!r} already exists on {self.location}; open it, or "
                    "pass recreate (`--recreate`) to rebuild it"
                )
            self.drop(name)
        quantization = None
        if spec.quantization:
            quantization = qm.ScalarQuantization(
                scalar=qm.ScalarQuantizationConfig(
                    type=qm.ScalarType.INT8, quantile=0.99, always_ram=True
                )
            )
        optimizers = None
        if spec.indexing_threshold_kb is not None:
            optimizers = qm.OptimizersConfigDiff(indexing_threshold=spec.indexing_threshold_kb)
        vectors = {
            v: qm.VectorParams(
                size=spec.dim, distance=qm.Distance.COSINE, on_disk=spec.on_disk_vectors or None
            )
            for v in VECTOR_NAMES
        }
        self.call(
            f"create collection {name!r}",
            self.client.create_collection,
            name,
            vectors_config=vectors,
            # BM25 term frequencies (computed here, `keywords`); the server applies the IDF
            sparse_vectors_config={
                KEYWORDS_VECTOR: qm.SparseVectorParams(modifier=qm.Modifier.IDF)
            },
            shard_number=spec.shard_number,
            replication_factor=spec.replication_factor,
            hnsw_config=qm.HnswConfigDiff(m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct),
            optimizers_config=optimizers,
            quantization_config=quantization,
            metadata={META_KEY: meta},
        )
        collection = RemoteCollection(self, name, meta)
        for field_name, field_type in spec.payload_indexes.items():
            collection.index_field(field_name, field_type)
        return collection

    def open(
        self,
        name: str,
        *,
        model_id: str | None = None,
        model_revision: str | None = None,
        dim: int | None = None,
    ) -> Collection:
        check_name(name)
        if not self.exists(name):
            known = ", ".join(self.list_collections()) or "none"
            raise StoreError(
                f"no collection {name!r} on {self.location} (collections: {known}); "
                "index a catalog into it first"
            )
        described = self.call(f"read collection {name!r}", self.client.get_collection, name)
        raw = (described.config.metadata or {}).get(META_KEY)
        meta = parse_meta(name, raw, self.location)
        guard(name, meta, model_id, model_revision, dim)
        return RemoteCollection(self, name, meta)

    def drop(self, name: str) -> None:
        check_name(name)
        if self.exists(name):
            self.call(f"delete collection {name!r}", self.client.delete_collection, name)

    def close(self) -> None:
        if self._owns_client:  # a client passed in is its owner's to close
            self.call("close the client", self.client.close)
