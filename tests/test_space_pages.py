"""The page's "More results" (the next page appended), the region chosen by two clicks on
the picture, and "more like this" clicks ranked by the tab's mode, sort and diversity: the
handlers the page's events call, on the demo shop."""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image

from fashion_clip.demo import DEMO_CATALOG_DIR
from fashion_clip.media.region import frame_region
from space import handlers
from space.app import build_demo
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


def ids(hits):
    return [h["id"] for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_more_results_appends_the_next_page_of_the_same_search(backend, mode):
    def page(offset):
        return handlers.text_search(backend, "red dress", limit=5, mode=mode, offset=offset)

    gallery, hits = page(0)
    for _ in range(2):
        gallery, hits = handlers.more_results(gallery, hits, page)
    _, whole = handlers.text_search(backend, "red dress", limit=15, mode=mode)
    assert ids(hits) == ids(whole) and len(gallery) == len(hits)
    assert len(set(ids(hits))) == len(hits)  # no product twice


def test_more_results_of_an_image_search_and_of_liked_examples(backend):
    def by_picture(offset):
        return handlers.image_search(backend, str(PICTURE), limit=4, offset=offset)

    _, hits = handlers.more_results(*by_picture(0), by_picture)
    assert ids(hits) == ids(handlers.image_search(backend, str(PICTURE), limit=8)[1])
    liked = [hits[0]["id"]]

    def by_examples(offset):
        return handlers.text_search(backend, "", limit=4, like_ids=liked, offset=offset)

    _, more = handlers.more_results(*by_examples(0), by_examples)
    assert ids(more) == ids(handlers.text_search(backend, "", limit=8, like_ids=liked)[1])
    assert len(set(ids(more))) == 8 and liked[0] not in ids(more)


def test_the_search_on_show_is_paged_by_the_inputs_it_ran_with(backend):
    asked = {"query": "red dress", "negative": "", "limit": 5, "mode": "keyword", "sort": None}
    page = handlers.search_on_show(handlers.text_search, backend, asked)
    _, hits = handlers.more_results(*page(0), page)
    assert ids(hits) == ids(handlers.text_search(backend, "red dress", limit=10, mode="keyword")[1])
    with pytest.raises(gr.Error, match="no results to add to yet; search first"):
        handlers.search_on_show(handlers.text_search, backend, None)


def test_a_page_that_no_longer_matches_its_gallery_is_refused(backend):
    gallery, hits = handlers.text_search(backend, "red dress", limit=4)
    with pytest.raises(gr.Error, match="search again"):
        handlers.more_results(gallery[:2], hits, lambda offset: ([], []))


@pytest.mark.parametrize(
    ("hits", "limit", "more"),
    [([{}] * 12, 12, True), ([{}] * 5, 12, False), ([], 12, False), ([{}] * 3, "x", False)],
)
def test_more_results_shows_only_after_a_full_page(hits, limit, more):
    assert handlers.more_available(hits, limit) is more


def test_two_clicks_on_the_picture_give_the_box_in_its_pixels():
    corner = handlers.region_corner("", [200, 40])
    assert corner == "[200, 40]"  # shown in the box until the second click
    assert handlers.region_corner(corner, [30, 180]) == "[30, 40, 201, 181]"
    assert handlers.region_corner("[30, 40, 201, 181]", [5, 6]) == "[5, 6]"  # a new region
    assert handlers.region_corner(corner, None) == ""  # a click beside the picture


def test_liked_examples_are_ranked_by_the_sort_and_diversity_chosen(backend):
    _, first = handlers.text_search(backend, "dress", limit=6)
    liked = [first[0]["id"]]
    _, plain = handlers.text_search(backend, "dress", limit=8, like_ids=liked)
    _, cheap = handlers.text_search(backend, "dress", limit=8, like_ids=liked, sort="price_asc")
    prices = [h["payload"]["price"] for h in cheap]
    assert prices == sorted(prices) and liked[0] not in ids(cheap)
    assert prices != [h["payload"]["price"] for h in plain]
    _, varied = handlers.text_search(backend, "dress", limit=8, like_ids=liked, diversity=0.9)
    assert ids(varied) != ids(plain) and liked[0] not in ids(varied)


def test_a_collections_collapse_field_gives_one_product_per_family(backend):
    collection = backend.collection
    _, plain = handlers.text_search(backend, "red", limit=12)
    assert len({h["payload"]["category"] for h in plain}) < 12  # several per category
    collection.set_extra({"collapse": "category"})  # e.g. a product family id
    try:
        _, collapsed = handlers.text_search(backend, "red", limit=12)
        _, later = handlers.text_search(backend, "red", limit=4, offset=4)
    finally:
        collection.set_extra({"collapse": None})
    categories = [h["payload"]["category"] for h in collapsed]
    assert len(set(categories)) == len(categories) > 1
    assert ids(later) == ids(collapsed)[4:8]


def test_the_region_shown_is_the_region_searched(backend):
    shown = handlers.region_searched(str(PICTURE), "[128, 0, 256, 128]")
    expected = frame_region(Image.open(PICTURE), (128, 0, 256, 128))
    assert shown.size == expected.size and shown.tobytes() == expected.tobytes()
    assert handlers.region_searched(str(PICTURE), "") is None
    assert handlers.region_searched(None, "[0, 0, 10, 10]") is None
    with pytest.raises(gr.Error, match="outside the picture"):
        handlers.region_searched(str(PICTURE), "[0, 0, 300, 10]")


def test_the_tab_bar_holds_the_four_tabs_only(backend):
    # A component made while wiring events (outside every tab) lands among the tabs, and the
    # page then showed the selected tab twice in place of the last one.
    demo = build_demo(backend.model, backend.collection, facets=backend.facets)
    tabs = next(block for block in demo.blocks.values() if isinstance(block, gr.Tabs))
    assert [type(child).__name__ for child in tabs.children] == ["Tab"] * 4
