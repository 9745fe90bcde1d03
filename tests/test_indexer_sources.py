"""Image references: joined onto each kind of root, and never allowed to leave it."""

from __future__ import annotations

import pytest

from fashion_clip.errors import ConfigurationError, ImageLoadError
from fashion_clip.ingest.sources import ImageRoot


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    return tmp_path / "images"


def test_local_root(folder):
    root = ImageRoot(str(folder))
    assert root.resolve("a.jpg") == str(folder.resolve() / "a.jpg")
    assert root.resolve("./sub/../sub/b.jpg") == str(folder.resolve() / "sub" / "b.jpg")
    assert root.resolve(str(folder / "sub" / "c.jpg")) == str(folder / "sub" / "c.jpg")


@pytest.mark.parametrize(
    "reference", ["../secret.jpg", "sub/../../secret.jpg", "..", "/etc/passwd", "a/../../../x"]
)
def test_references_that_leave_the_root_are_refused(folder, reference):
    for root in (str(folder), "s3://bucket/images", "https://cdn.example.com/images/"):
        with pytest.raises(ImageLoadError, match="root"):
            ImageRoot(root).resolve(reference)


def test_remote_roots_join_and_quote():
    assert ImageRoot("s3://bucket/shop").resolve("x/y.jpg") == "s3://bucket/shop/x/y.jpg"
    assert ImageRoot("s3://bucket").resolve("y.jpg") == "s3://bucket/y.jpg"
    http = ImageRoot("https://cdn.example.com/media")
    assert http.resolve("a b/%2e%2e.jpg") == "https://cdn.example.com/media/a%20b/%252e%252e.jpg"


def test_absolute_urls_pass_through_and_other_schemes_are_refused(folder):
    root = ImageRoot(str(folder))
    assert root.resolve("https://x.org/a.jpg") == "https://x.org/a.jpg"
    assert root.resolve("s3://other/a.jpg") == "s3://other/a.jpg"
    with pytest.raises(ImageLoadError, match="unsupported scheme 'ftp'"):
        root.resolve("ftp://x.org/a.jpg")


def test_default_root_is_the_catalogs_folder(tmp_path):
    catalog = tmp_path / "shop" / "catalog.csv"
    catalog.parent.mkdir()
    root = ImageRoot(None, str(catalog))
    assert root.resolve("a.jpg") == str(catalog.parent.resolve() / "a.jpg")
    # Without an explicit root the catalog may name its own files by absolute path.
    assert root.resolve("/data/elsewhere/b.jpg") == "/data/elsewhere/b.jpg"
    s3_root = ImageRoot(None, "s3://bucket/shop/catalog.jsonl")
    assert s3_root.resolve("img/a.jpg") == "s3://bucket/shop/img/a.jpg"


def test_bad_roots_are_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="no such directory"):
        ImageRoot(str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="unsupported scheme"):
        ImageRoot("ftp://host/images")
    with pytest.raises(ConfigurationError, match="no bucket"):
        ImageRoot("s3:///images")
