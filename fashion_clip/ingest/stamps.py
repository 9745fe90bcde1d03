"""Has a row's image changed since the last run? Asked of the source before downloading.

A stamp is what the source says about the version of an image without sending it, stored in
the row's point: a local file's size, modification and change times and inode (what `git`
trusts before hashing); an S3 object's ETag and size, from one listing of its folder; a web
image's `ETag` / `Last-Modified`, sent back in a conditional GET that the server answers
`304 Not Modified` with no body. A stamp equal to the stored one means the stored content
hash still holds, so an unchanged catalog is re-run without reading its images. A source
that says nothing (a web server without validators, an S3 folder that cannot be listed) is
read and hashed as before.
"""

from __future__ import annotations

import json
import os

from fashion_clip.media import s3
from fashion_clip.media.images import fetch_bytes
from fashion_clip.media.web import fetch_http_if_changed


def fetch_unless_unchanged(
    source: str,
    stored: str | None,
    versions: s3.ObjectVersions,
    *,
    max_bytes: int,
    timeout: float,
    retries: int,
) -> tuple[bytes | None, str | None]:
    """`(None, stamp)` when the source's stamp equals `stored`: not downloaded. Otherwise
    `(bytes, stamp)`, the stamp None where the source gives none."""
    if source.startswith(("http://", "https://")):
        return _web(source, stored, max_bytes, timeout, retries)
    if source.startswith("s3://"):
        version = versions.version(source)
        stamp = f"s3:{version[0]}:{version[1]}" if version else None
    else:
        stamp = file_stamp(source)
    if stamp is not None and stamp == stored:
        return None, stamp
    return fetch_bytes(source, max_bytes=max_bytes, timeout=timeout, retries=retries), stamp


def file_stamp(path: str) -> str | None:
    """A local file's stamp (its size, times and inode, from one `stat`); None when it cannot
    be had."""
    try:
        st = os.stat(path)
    except OSError:  # missing, unreadable: the read says why
        return None
    # ctime too: a tool can set mtime back (rsync -t, a restore), nobody can set ctime.
    return f"file:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _web(
    url: str, stored: str | None, max_bytes: int, timeout: float, retries: int
) -> tuple[bytes | None, str | None]:
    validators = json.loads(stored[5:]) if stored and stored.startswith("http:") else None
    data, found = fetch_http_if_changed(
        url, validators, max_bytes=max_bytes, timeout=timeout, retries=retries
    )
    if data is None:
        return None, stored
    return data, ("http:" + json.dumps(found, sort_keys=True)) if found else None
