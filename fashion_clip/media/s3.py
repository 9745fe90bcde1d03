"""S3 access: the one module that imports boto3.

The client is configured from the settings (the environment or `.env`, see
`fashion_clip.settings`, which also holds the `AWS_SECRET_KEY` alias): `AWS_ENDPOINT_URL`
points it at any S3-compatible server. Credentials not given there follow boto3's usual chain
(profile, instance role).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any

from fashion_clip.errors import ConfigurationError, FashionCLIPError
from fashion_clip.settings import Settings, load_settings

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64


class S3Error(FashionCLIPError):
    """An S3 object or bucket could not be read or written."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> (`bucket`, `some/key`)."""
    if not uri.startswith("s3://"):
        raise ConfigurationError(f"{uri}: not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigurationError(f"{uri}: the S3 URI names no bucket")
    return bucket, key


def join_s3(prefix_uri: str, relative: str) -> str:
    """Join a relative key onto an `s3://bucket/prefix` URI."""
    bucket, prefix = parse_s3_uri(prefix_uri)
    key = f"{prefix.rstrip('/')}/{relative.lstrip('/')}" if prefix else relative.lstrip("/")
    return f"s3://{bucket}/{key}"


@functools.lru_cache(maxsize=8)
def _client(
    endpoint_url: str | None,
    key_id: str | None,
    secret: str | None,
    region: str | None,
    session_token: str | None = None,
):
    import boto3  # deferred: boto3 is heavy, and only S3 needs it
    from botocore.config import Config  # deferred: with boto3

    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=10,
        # One connection per thread that reads at once: the indexer fetches a batch with as
        # many threads as workers (16 and more on a GPU machine); botocore's pool of 10
        # would close the extra connections after each read, with a warning for each.
        max_pool_connections=MAX_CONNECTIONS,
    )
    kwargs: dict[str, Any] = {"config": config}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if key_id and secret:
        kwargs["aws_access_key_id"] = key_id
        kwargs["aws_secret_access_key"] = secret
        if session_token:  # keys given here hide the environment's token from boto3
            kwargs["aws_session_token"] = session_token
    kwargs["region_name"] = region or "us-east-1"
    # A client (unlike a session) is safe to share between threads.
    return boto3.client("s3", **kwargs)


def s3_client(settings: Settings | None = None):
    """A shared boto3 S3 client for `settings` (default: `load_settings()`, read each call, so
    a changed environment or `.env` is seen; clients are cached by their configuration)."""
    if settings is None:
        settings = load_settings()
    return _client(
        settings.aws_endpoint_url,
        settings.aws_access_key_id,
        settings.aws_secret_access_key,
        settings.aws_region,
        settings.aws_session_token,
    )


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _explain(uri: str, exc: Exception) -> S3Error:
    code = _error_code(exc)
    if code in ("NoSuchKey", "404", "NotFound"):
        return S3Error(f"{uri}: no such key")
    if code == "NoSuchBucket":
        return S3Error(f"{uri}: no such bucket")
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return S3Error(f"{uri}: access denied ({code}); check the AWS credentials")
    return S3Error(f"{uri}: {type(exc).__name__}: {exc}")


def read_bytes(uri: str, max_bytes: int | None = None) -> bytes:
    """Read a whole object; refuse objects larger than `max_bytes`."""
    bucket, key = parse_s3_uri(uri)
    try:
        response = s3_client().get_object(Bucket=bucket, Key=key)
        # Closed however the read ends: a body read only to the cap keeps its connection
        # checked out of the pool until it is.
        with contextlib.closing(response["Body"]) as body:
            size = response.get("ContentLength")
            if max_bytes is not None and size is not None and size > max_bytes:
                raise S3Error(f"{uri}: object is {size} bytes, over the {max_bytes}-byte cap")
            data = body.read() if max_bytes is None else body.read(max_bytes + 1)
    except S3Error:
        raise
    except Exception as exc:  # botocore raises many unrelated classes; all mean "could not read"
        raise _explain(uri, exc) from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise S3Error(f"{uri}: object is over the {max_bytes}-byte cap")
    return data


def download_file(uri: str, destination: str | os.PathLike[str]) -> Path:
    bucket, key = parse_s3_uri(uri)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3_client().download_file(bucket, key, str(destination))
    except Exception as exc:
        raise _explain(uri, exc) from exc
    return destination


def upload_file(source: str | os.PathLike[str], uri: str) -> None:
    bucket, key = parse_s3_uri(uri)
    try:
        s3_client().upload_file(str(source), bucket, key)
    except Exception as exc:
        raise _explain(uri, exc) from exc


def exists(uri: str) -> bool:
    bucket, key = parse_s3_uri(uri)
    try:
        s3_client().head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise _explain(uri, exc) from exc
    return True


class ObjectVersions:
    """The ETag and size of S3 objects, from one listing per folder: for one indexing run
    to tell which objects changed since the last without a request per object.

    Keep one per run: a listing is a snapshot, and a later run must list again.
    """

    def __init__(self) -> None:
        self._folders: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}
        self._lock = threading.Lock()

    def version(self, uri: str) -> tuple[str, int] | None:
        """`(etag, size)` of the object at `uri` as listed, or None (not listed, or the
        listing was refused: then every object is read, as without this)."""
        bucket, key = parse_s3_uri(uri)
        folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        with self._lock:  # the first thread to ask lists; the others wait for its answer
            listing = self._folders.get((bucket, folder))
            if listing is None:
                listing = self._folders[(bucket, folder)] = _list_folder(bucket, folder)
        return listing.get(key)


# Pages (1,000 keys each) listed per folder at most: a catalog naming a few objects of a
# folder of millions should not list them all (nor hold them); past it, objects not listed
# are read, as without a listing.
MAX_LIST_PAGES = 200


def _list_folder(bucket: str, folder: str) -> dict[str, tuple[str, int]]:
    """key -> (etag, size) for the objects directly in `folder` (1,000 per request)."""
    found: dict[str, tuple[str, int]] = {}
    try:
        pages = s3_client().get_paginator("list_objects_v2")
        listed = pages.paginate(Bucket=bucket, Prefix=folder, Delimiter="/")
        for page in itertools.islice(listed, MAX_LIST_PAGES):
            for item in page.get("Contents", ()):
                found[item["Key"]] = (item["ETag"], int(item["Size"]))
    except Exception as exc:  # no s3:ListBucket, say: each object is read, as before
        log.info("cannot list s3://%s/%s (%s); every image there is read", bucket, folder, exc)
        return {}
    return found
