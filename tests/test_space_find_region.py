"""The Localize tab's "Find this in the catalog": the region around the heatmap's peak,
searched as the image search searches a box."""

from __future__ import annotations

import gradio as gr
import pytest

from fashion_clip.demo import DEMO_CATALOG_DIR
from space import handlers
from space.filters import read_facets
from space.handlers import Backend
from space.results import Pictures
from tests.space_support import open_shop, shared_shop

PICTURE = DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"  # 256 x 256


@pytest.fixture(scope="module")
def backend(tiny_model, tmp_path_factory) -> Backend:
    settings = shared_shop(tiny_model, tmp_path_factory)
    collection = open_shop(settings, tiny_model)
    yield Backend(tiny_model, collection, read_facets(collection), Pictures([DEMO_CATALOG_DIR]))
    collection.close()


@pytest.mark.parametrize(
    ("peak", "size", "box"),
    [
        ([100, 120], [256, 256], [36, 56, 164, 184]),  # half the shorter side, centred
        ([3, 250], [256, 256], [0, 128, 128, 256]),  # pushed inside at the corner
        ([900, 10], [1000, 200], [850, 0, 950, 100]),  # oblong picture: its shorter side
    ],
)
def test_the_box_is_a_square_around_the_peak_inside_the_picture(peak, size, box):
    assert handlers.peak_box({"peak": peak, "size": size, "text": "collar"}) == box


def test_find_this_searches_the_region_around_the_peak(backend):
    _, found = handlers.localize(backend, str(PICTURE), "collar")
    gallery, hits = handlers.find_peak_region(backend, str(PICTURE), found)
    box = handlers.peak_box(found)
    _, same = handlers.image_search(backend, str(PICTURE), box=box)
    assert hits and len(gallery) == len(hits)
    assert [h["id"] for h in hits] == [h["id"] for h in same]


@pytest.mark.parametrize("found", [None, {}, {"peak": "here", "size": [1, 1]}])
def test_find_this_before_localizing_says_to_localize_first(backend, found):
    with pytest.raises(gr.Error, match="localize a concept in the picture first"):
        handlers.find_peak_region(backend, str(PICTURE), found)
