"""The image loader on a corpus of odd and bad files, and remote sources."""

from __future__ import annotations

import http.server
import io
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from fashion_clip.errors import ImageLoadError
from fashion_clip.media.images import (
    WEB_FORMATS,
    decode_image,
    decode_image_sized,
    image_from_array,
    load_image,
)
from tests.image_corpus import bad_files, exif_rotated_jpeg, good_files, jpeg_bytes, photo


@pytest.mark.parametrize("name", sorted(good_files()))
def test_odd_but_valid_files_load_as_rgb(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(good_files()[name])
    for source in (path, str(path), path.read_bytes(), path.open("rb")):
        image = load_image(source)
        assert image.mode == "RGB"
        assert image.width >= 1 and image.height >= 1


@pytest.mark.parametrize("name", sorted(bad_files()))
def test_bad_files_get_one_clear_error_naming_the_file(tmp_path: Path, name: str) -> None:
    data, word = bad_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    message = str(caught.value)
    assert name in message
    assert word.lower() in message.lower()


@pytest.mark.parametrize("name", sorted(good_files()))
def test_the_odd_files_are_all_in_web_formats(name: str) -> None:
    image = decode_image(good_files()[name], name=name, formats=WEB_FORMATS)
    assert image.mode == "RGB"


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (_encoded("TIFF"), "a TIFF image, not a JPEG, PNG, WebP, GIF, BMP or AVIF image"),
        (_encoded("PCX"), "not a JPEG, PNG, WebP, GIF, BMP or AVIF image (unknown format)"),
        (_encoded("SGI"), "not a JPEG, PNG, WebP, GIF, BMP or AVIF image (unknown format)"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1", "a HEIC image (an iPhone's; export it as JPEG)"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document, not a JPEG"),
        (b"plain words", "not an image (looks like text)"),
    ],
)
def test_only_web_formats_are_decoded_when_asked(data: bytes, problem: str) -> None:
    """The app's uploads: Pillow's other decoders (dozens of rare formats) never see them."""
    with pytest.raises(ImageLoadError) as refused:
        decode_image(data, name="upload", formats=WEB_FORMATS)
    assert str(refused.value) == f"upload: {problem}" or problem in str(refused.value)


def test_every_format_decodes_when_none_is_asked_for() -> None:
    for fmt in ("TIFF", "PCX", "SGI"):  # a catalog's files: whatever Pillow reads
        assert decode_image(_encoded(fmt)).size == (20, 10)


def test_exif_orientation_is_applied() -> None:
    image = load_image(exif_rotated_jpeg())
    assert image.size == (30, 60)  # stored 60x30, orientation 6 = rotated a quarter turn
    top = np.asarray(image)[:10].reshape(-1, 3).mean(axis=0)
    assert top[2] > top[0]  # the blue band, stored on the left, is now at the top


def test_alpha_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_keeps_its_grey_levels() -> None:
    values = np.full((8, 8), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    image = load_image(Image.fromarray(values))
    assert 120 <= image.getpixel((0, 0))[0] <= 135  # not clipped to white


def test_animated_gif_gives_its_first_frame() -> None:
    image = decode_image(good_files()["animated.gif"])
    assert image.getpixel((5, 5))[0] > 200  # the first frame is red


def test_cmyk_is_converted() -> None:
    image = decode_image(good_files()["cmyk.jpg"])
    reference = np.asarray(photo(), dtype=np.float32)
    assert np.abs(np.asarray(image, dtype=np.float32) - reference).mean() < 25


def test_draft_mode_keeps_the_short_side_at_least_the_target() -> None:
    data = jpeg_bytes(photo(1000, 1333))
    full = decode_image(data)
    small = decode_image(data, min_side=224)
    assert full.size == (1000, 1333)
    assert min(small.size) >= 224 and small.width < 1000


@pytest.mark.parametrize("orientation", [1, 6])
def test_draft_mode_for_display_keeps_the_long_side_and_tells_the_whole_size(orientation):
    # A picture shown 1,024 pixels wide need not be decoded at 4,000; what is said about it
    # (a peak's position) is still in the whole picture's pixels, turned upright (6 swaps).
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg_bytes(photo(4000, 1000), exif=exif.tobytes())
    upright = (4000, 1000) if orientation == 1 else (1000, 4000)
    image, size = decode_image_sized(data, min_long_side=1024)
    assert size == upright
    assert 1024 <= max(image.size) < 4000  # drafted: 2000x500 (or 500x2000 turned)
    assert (image.width > image.height) == (upright[0] > upright[1])
    # Nothing to gain (a PNG, or a JPEG already small enough): decoded whole.
    png = io.BytesIO()
    photo(300, 200).save(png, "PNG")
    for small in (png.getvalue(), jpeg_bytes(photo(300, 200))):
        image, size = decode_image_sized(small, min_long_side=1024)
        assert image.size == size == (300, 200)


def test_a_phones_multi_picture_jpeg_is_drafted_too() -> None:
    # Phones save MPO files (a JPEG plus depth or preview frames): Pillow calls them "MPO",
    # and they were decoded whole.
    buffer = io.BytesIO()
    photo(2000, 1500).save(buffer, "MPO", save_all=True, append_images=[photo(2000, 1500, 1)])
    image, size = decode_image_sized(buffer.getvalue(), min_side=224)
    assert size == (2000, 1500) and 224 <= min(image.size) < 1500


def test_pixel_cap_is_configurable() -> None:
    with pytest.raises(ImageLoadError, match="pixel cap"):
        decode_image(jpeg_bytes(photo(100, 100)), max_pixels=5_000)


def test_missing_file_and_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="unsupported scheme"):
        load_image("ftp://example.invalid/x.jpg")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    hits: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/flaky.jpg" and self.hits[self.path] == 1:
            self.send_error(503)
            return
        data = self.files.get(self.path.replace("/flaky.jpg", "/photo.jpg"))
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_base():
    _Handler.files = {"/photo.jpg": jpeg_bytes(photo()), "/big.jpg": b"x" * 5000}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_sources(http_base: str) -> None:
    assert load_image(f"{http_base}/photo.jpg").size == (120, 90)
    # a transient 503 is retried
    assert load_image(f"{http_base}/flaky.jpg").size == (120, 90)
    with pytest.raises(ImageLoadError, match="HTTP 404"):
        load_image(f"{http_base}/missing.jpg")
    with pytest.raises(ImageLoadError, match="cap"):
        load_image(f"{http_base}/big.jpg", max_bytes=1000)


def test_unreachable_url_is_reported_quickly() -> None:
    with pytest.raises(ImageLoadError, match="unreachable"):
        from fashion_clip.media.images import fetch_bytes

        fetch_bytes("http://127.0.0.1:9/x.jpg", timeout=2, retries=0)


def test_arrays_become_images_only_as_uint8():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(np.asarray(image_from_array(grey[:, :, None])), grey)  # (H, W, 1)
    assert image_from_array(np.dstack([grey] * 3)).mode == "RGB"
    with pytest.raises(ImageLoadError, match=r"<array \(3, 4\) float64>: .*must be uint8"):
        image_from_array(grey / 255.0)  # cast, a [0, 1] image would be black
    with pytest.raises(ImageLoadError, match=r"<array \(3, 4, 5\) uint8>: .*C of 1 to 4"):
        image_from_array(np.zeros((3, 4, 5), dtype=np.uint8))
