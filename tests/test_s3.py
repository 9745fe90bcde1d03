"""The S3 client against a real S3 endpoint (moto's server mode), through boto3."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from fashion_clip.media import s3


def test_many_threads_share_the_client_without_dropping_connections(s3_bucket, caplog):
    """The indexer reads a batch's images from as many threads as it has workers (16 or more
    on a GPU machine); botocore's default pool of 10 connections would drop and reopen the
    extra ones, with a warning per object ("Connection pool is full")."""
    client = s3.s3_client()
    for i in range(64):
        client.put_object(Bucket=s3_bucket, Key=f"p/{i}.jpg", Body=f"image {i}".encode())
    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(32) as pool:
        bodies = list(
            pool.map(lambda i: s3.read_bytes(f"s3://{s3_bucket}/p/{i}.jpg", 100), range(64))
        )
    assert bodies == [f"image {i}".encode() for i in range(64)]
    assert "Connection pool is full" not in caplog.text
