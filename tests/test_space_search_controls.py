"""The search controls of issue 19 through a live app and `gradio_client`: mode, sort,
offset (pages), diversity and the image search's box, with good and bad values."""

from __future__ import annotations

import pytest

from fashion_clip.demo import DEMO_CATALOG_DIR
from space.app import build_demo
from space.startup import launch_options
from tests.space_support import open_shop, serving, shared_shop

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

PICTURE = DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"  # 256 x 256


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory):
    settings = shared_shop(tiny_model, tmp_path_factory)
    collection = open_shop(settings, tiny_model)
    demo = build_demo(tiny_model, collection, settings, notice="the demo model stands in")
    with serving(demo, **launch_options(settings)) as address:
        yield Client(address, verbose=False, download_files=False)
    collection.close()


def ids(hits):
    return [h["id"] for h in hits]


def test_an_id_typed_in_comes_first_in_hybrid_and_keyword_modes(client):
    _, some = client.predict("shoes", limit=12, mode="semantic", api_name="/text_search")
    wanted = some[-1]["id"]  # a product of this shop, not its best match for anything
    for mode in ("hybrid", "keyword"):
        _, hits = client.predict(wanted, limit=5, mode=mode, api_name="/text_search")
        assert hits[0]["id"] == wanted
    _, hits = client.predict("Northwind", limit=10, mode="keyword", api_name="/text_search")
    assert hits and all(h["payload"]["brand"] == "Northwind" for h in hits)


def test_sort_by_price_orders_the_relevant_results(client):
    # Meaning only, so that the relevance ranking is the one the floor is taken from (the
    # sorted products are its first ones; which, the demo-model test checks).
    asked = {"limit": 48, "mode": "semantic", "api_name": "/text_search"}
    _, up = client.predict("dress", sort="price_asc", **asked)
    prices = [h["payload"]["price"] for h in up]
    assert 0 < len(prices) < 48 and prices == sorted(prices)  # cut below the 60 products
    _, relevant = client.predict("dress", **asked)
    assert {h["id"] for h in up} == {h["id"] for h in relevant[: len(up)]}
    _, down = client.predict("dress", sort="price_desc", **asked)
    falling = [h["payload"]["price"] for h in down]
    assert falling == sorted(prices, reverse=True)  # the same products, the other way


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "keyword"])
def test_sorted_hits_are_scored_by_their_relevance(client, mode):
    asked = {"mode": mode, "api_name": "/text_search"}
    gallery, cheap = client.predict("red dress", sort="price_asc", limit=48, **asked)
    # The whole shop (60 products) by relevance, in two pages: every sorted one is in it.
    relevance = {
        hit["id"]: hit["score"]
        for offset in (0, 48)
        for hit in client.predict("red dress", limit=48, offset=offset, **asked)[1]
    }
    assert len(cheap) > 1  # each scored as the relevance ranking scores it, not 1.0 throughout
    for tile, hit in zip(gallery, cheap, strict=True):
        assert hit["score"] == pytest.approx(relevance[hit["id"]], abs=1e-5)
        assert tile["caption"].endswith(f" · {hit['score']:.3f}")  # the tile says the same


def test_pages_do_not_repeat_and_are_stable(client):
    pages = [
        ids(client.predict("red", limit=6, offset=o, api_name="/text_search")[1])
        for o in (0, 6, 12)
    ]
    _, whole = client.predict("red", limit=18, api_name="/text_search")
    assert sum(pages, []) == ids(whole) and len(set(ids(whole))) == 18  # noqa: RUF017
    picture = handle_file(str(PICTURE))
    first = ids(client.predict(picture, limit=4, api_name="/image_search")[1])
    second = ids(client.predict(picture, limit=4, offset=4, api_name="/image_search")[1])
    assert not set(first) & set(second)


def test_diversity_spreads_the_results(client):
    picture = handle_file(str(PICTURE))
    plain = ids(client.predict(picture, limit=8, api_name="/image_search")[1])
    diverse = ids(client.predict(picture, limit=8, diversity=0.9, api_name="/image_search")[1])
    assert plain != diverse and plain[0] == diverse[0]


def test_a_box_searches_that_region_of_the_picture_in_its_own_pixels(client, tmp_path):
    from PIL import Image

    from fashion_clip.media.region import frame_region

    product = Image.open(PICTURE).convert("RGB")  # 256 x 256
    canvas = Image.new("RGB", (1024, 256), "white")
    canvas.paste(product, (768, 0))
    path = tmp_path / "wide.jpg"  # a JPEG: the app may decode it reduced, but not for a box
    canvas.save(path, quality=95)
    framed = tmp_path / "framed.png"  # the same region, cut and framed here
    frame_region(Image.open(path), (768, 0, 1024, 256)).save(framed)
    picture = handle_file(str(path))
    region = client.predict(picture, box=[768, 0, 1024, 256], limit=4, api_name="/image_search")
    as_text = client.predict(picture, box="[768, 0, 1024, 256]", limit=4, api_name="/image_search")
    expected = client.predict(handle_file(str(framed)), limit=4, api_name="/image_search")
    whole = client.predict(picture, limit=4, api_name="/image_search")
    assert ids(region[1]) == ids(expected[1]) == ids(as_text[1])
    assert ids(whole[1]) != ids(region[1])


@pytest.mark.parametrize(
    ("endpoint", "inputs", "message"),
    [
        ("/text_search", {"mode": "fuzzy"}, "mode"),
        ("/text_search", {"sort": "colour_asc"}, "sort"),
        ("/text_search", {"sort": "cheapest"}, "sort"),
        ("/text_search", {"offset": -1}, "offset"),
        ("/text_search", {"offset": 2.5}, "offset"),
        ("/text_search", {"diversity": 2}, "diversity"),
        ("/image_search", {"box": [0, 0, 300, 100]}, "outside the picture, which is 256x256"),
        ("/image_search", {"box": [50, 50, 50, 90]}, "empty"),
        ("/image_search", {"box": "[1, 2, 3]"}, "box"),
        ("/image_search", {"offset": -3}, "offset"),
    ],
)
def test_bad_values_are_refused_naming_the_input(client, endpoint, inputs, message):
    first = "dress" if endpoint == "/text_search" else handle_file(str(PICTURE))
    with pytest.raises(AppError, match=f"(?i){message}"):
        client.predict(first, api_name=endpoint, **inputs)
    assert client.predict(api_name="/ping") == "ok"  # and it keeps serving
