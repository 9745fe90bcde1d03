"""The Space's handlers as plain functions: no server, no browser.

A tiny random CLIP and 60 demo-catalog items in a temporary embedded store: the answers
are meaningless, the plumbing (filters, examples, composed queries, errors) is real.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from fashion_clip.demo import DEMO_CATALOG_DIR
from fashion_clip.ingest.choice import choose_collection
from fashion_clip.model.text import visible_text
from fashion_clip.settings import Settings, load_settings
from fashion_clip.store import CollectionSpec, Filter, Hit, Range
from fashion_clip.store.embedded import EmbeddedStore
from space import handlers, inputs
from space.filters import Facets, build_filter, read_facets
from space.handlers import Backend
from space.results import Pictures, hit_record, tile_caption
from space.startup import launch_options, open_collection
from tests.image_corpus import bad_files, good_files, jpeg_bytes, photo
from tests.space_support import demo_slice, open_shop, serving_pictures, shared_shop

PICTURE = DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"


@pytest.fixture(scope="module")
def backend(tiny_model, tmp_path_factory) -> Backend:
    settings = shared_shop(tiny_model, tmp_path_factory)
    collection = open_shop(settings, tiny_model)
    facets = read_facets(collection)
    yield Backend(tiny_model, collection, facets, Pictures([DEMO_CATALOG_DIR]))
    collection.close()


def search(backend: Backend, query: str = "red dress", **kwargs):
    return handlers.text_search(backend, query, **kwargs)


# ---------------------------------------------------------------------- text search
def test_text_search_returns_aligned_gallery_and_hits(backend):
    gallery, hits = search(backend, limit=7)
    assert len(gallery) == len(hits) == 7
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    for (picture, caption), hit in zip(gallery, hits, strict=True):
        assert set(hit) == {"id", "score", "caption", "payload"}
        assert Path(picture).is_file() and Path(picture).name == f"{hit['id']}.jpg"
        assert caption.startswith(hit["caption"]) and f"{hit['score']:.3f}" in caption
        assert not any(key.startswith("_") for key in hit["payload"])  # no bookkeeping


def test_result_tiles_name_price_and_brand_then_the_score(backend):
    gallery, hits = search(backend, limit=5)
    for (_, caption), hit in zip(gallery, hits, strict=True):
        price, brand = hit["payload"]["price"], hit["payload"]["brand"]
        assert caption == f"{hit['caption']} · {price:.2f} · {brand} · {hit['score']:.3f}"


def test_tile_captions_show_what_the_payload_has():
    def caption(**payload):
        return tile_caption(Hit(id=7, score=0.81234, payload=payload))

    assert caption(caption="red dress", price=30, brand="Kestrel") == (
        "red dress · 30.00 · Kestrel · 0.812"  # no currency sign: the catalog names none
    )
    assert caption(caption="red dress") == "red dress · 0.812"
    assert caption() == "7 · 0.812"
    assert caption(caption="hat", price_eur=9.5, designer="Nova") == "hat · 9.50 · Nova · 0.812"
    assert caption(caption="hat", price=float("nan"), brand=" ") == "hat · 0.812"
    assert caption(caption="hat", price=True, brands=["A", "B"]) == "hat · A, B · 0.812"
    assert caption(caption="hat", _price=1.0, price=None) == "hat · 0.812"


def test_filters_narrow_the_results(backend):
    _, hits = search(backend, colours=["red", "blue"], limit=48)
    assert hits and {h["payload"]["color"] for h in hits} <= {"red", "blue"}
    category = backend.facets.choices("category")[0]
    brand = backend.facets.choices("brand")[0]
    _, hits = search(backend, categories=[category], brands=[brand], limit=48)
    assert all(h["payload"]["category"] == category for h in hits)
    assert all(h["payload"]["brand"] == brand for h in hits)
    _, hits = search(backend, price_min=20, price_max=40, limit=48)
    assert hits and all(20 <= h["payload"]["price"] <= 40 for h in hits)


def test_filters_that_match_nothing_answer_empty_lists_and_a_note_that_says_so(backend):
    gallery, hits = search(backend, price_min=100_000)
    assert gallery == [] and hits == []
    assert "No products match these filters" in handlers.results_note(hits, price_min=100_000)
    assert "No products match" in handlers.results_note([], colours=["red"])
    assert "No products found" in handlers.results_note([], [], [], [], None, None)
    # What the page sends once the filters panel has been opened: zeros and blank choices.
    assert "No products found" in handlers.results_note([], [""], " ", [], 0, 0)
    assert handlers.results_note(search(backend)[1], colours=["red"]) == ""


def test_negative_text_and_disliked_examples_steer_away(backend):
    _, plain = search(backend, limit=10)
    _, steered = search(backend, negative="striped", limit=10)
    assert [h["id"] for h in steered] != [h["id"] for h in plain]
    disliked = plain[0]["id"]
    _, hits = search(backend, unlike_ids=disliked, limit=10)
    assert disliked not in [h["id"] for h in hits]


def test_liked_examples_run_more_like_this(backend):
    _, hits = search(backend, limit=5)
    liked = hits[0]["id"]
    _, similar = search(backend, "", like_ids=[liked], limit=5)
    assert len(similar) == 5 and liked not in [h["id"] for h in similar]
    nearest = backend.collection.recommend([liked], limit=5)
    assert [h["id"] for h in similar] == [h.id for h in nearest]


def test_examples_note_says_the_typed_text_is_not_used_while_examples_are_liked(backend):
    # The premise: with a liked example the typed query and "less of" text change nothing.
    liked = search(backend, limit=5)[1][0]["id"]
    _, steered = search(backend, "red summer dress", negative="stripes", like_ids=[liked])
    _, plain = search(backend, "", like_ids=[liked])
    assert [h["id"] for h in steered] == [h["id"] for h in plain]

    names = {liked: "Red dress"}
    note = handlers.examples_note({"like": [liked], "unlike": [], "names": names})
    assert "**More like:** `Red dress`" in note
    assert "Search and 'Less of' text is not used" in note
    assert "Press Search" in note  # how to get the text back
    # Disliked examples only: the text still leads the search, so nothing to warn about.
    only_disliked = handlers.examples_note({"like": [], "unlike": [liked], "names": names})
    assert only_disliked == "**Less like:** `Red dress`"
    assert handlers.examples_note({"like": [], "unlike": [], "names": {}}) == ""


def test_add_example_moves_ids_between_lists():
    hits = [{"id": "a", "caption": "A"}, {"id": "b", "caption": "B"}]
    assert handlers.add_example(hits, 0, "More like this", [], []) == (["a"], [])
    assert handlers.add_example(hits, 1, "Less like this", ["a"], []) == (["a"], ["b"])
    assert handlers.add_example(hits, 0, "Less like this", ["a"], ["b"]) == ([], ["b", "a"])
    with pytest.raises(Exception, match="search again"):
        handlers.add_example(hits, 5, "More like this", [], [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "   "}, "query is empty"),
        ({"limit": 0}, "between 1 and"),
        ({"limit": "many"}, "whole number"),
        ({"limit": float("inf")}, "whole number"),
        ({"limit": 3.7}, "whole number, not 3.7"),
        ({"limit": True}, "whole number, not True"),
        ({"price_min": 50, "price_max": 10}, "upside down"),
        ({"price_min": -5}, "price from cannot be negative"),
        ({"price_max": -0.5}, "price to cannot be negative"),
        ({"price_min": "-5", "price_max": 20}, "price from cannot be negative"),
        ({"like_ids": "no-such-id"}, "no-such-id"),
        ({"unlike_ids": "demo-0001, nope"}, "nope"),
        ({"query": "x" * 600}, "characters long"),
    ],
)
def test_text_search_refuses_bad_input_with_advice(backend, kwargs, message):
    kwargs = {"query": "red dress", **kwargs}
    with pytest.raises(gr.Error, match="(?i)" + message):
        handlers.text_search(backend, **kwargs)


def test_a_single_filter_value_sent_as_text_is_one_value(backend):
    _, hits = search(backend, colours="red", limit=48)
    assert hits and {h["payload"]["color"] for h in hits} == {"red"}
    category = backend.facets.choices("category")[0]
    _, hits = handlers.image_search(backend, str(PICTURE), categories=category, limit=48)
    assert hits and {h["payload"]["category"] for h in hits} == {category}


def test_unknown_liked_ids_are_refused_in_product_terms(backend):
    refused = r"Liked examples: .*no products with ids \['nope-1'\]; use ids from the hits"
    with pytest.raises(gr.Error, match=refused):
        search(backend, "", like_ids="nope-1")
    with pytest.raises(gr.Error, match=r"Disliked examples: .*\['nope-2'\]"):
        search(backend, "", like_ids="demo-0001", unlike_ids="nope-2")


@pytest.mark.parametrize("invisible", ["\u200b\u200b", "\u0000", " \ufeff\u200d\t", "\x1b"])
def test_text_with_nothing_visible_is_empty(backend, invisible):
    with pytest.raises(gr.Error, match="(?i)query is empty"):
        search(backend, invisible)
    with pytest.raises(gr.Error, match="(?i)text is empty"):
        handlers.localize(backend, str(PICTURE), invisible)
    with pytest.raises(gr.Error, match="(?i)no labels"):
        handlers.classify(backend, str(PICTURE), invisible)
    with pytest.raises(gr.Error, match="(?i)only one label"):
        handlers.classify(backend, str(PICTURE), f"dress, {invisible}")


def test_invisible_characters_are_dropped_from_visible_text(backend):
    assert visible_text("red\u200b dress\u0000 ") == "red dress"
    labels = handlers.classify(backend, str(PICTURE), "\ufeffdress, shi\u200brt")
    assert list(labels) == ["dress", "shirt"]


def test_a_filter_value_the_collection_lacks_is_refused_with_the_choices(backend):
    colours = backend.facets.choices("colour")
    refused = r"(?i)colour filter: 'reddish' is not one of .*" + colours[0]
    with pytest.raises(gr.Error, match=refused):
        search(backend, colours=[colours[0], "reddish"])
    search(backend, colours=colours[:2])  # the collection's own values pass


def test_gallery_data_is_what_the_gallery_component_makes_of_the_items(tmp_path):
    """The text search event skips Gradio's postprocessing: its own conversion must match."""
    from space.results import gallery_data

    local = tmp_path / "a.jpg"
    local.write_bytes(b"")
    items = [(str(local), "red dress · 0.5"), ("https://cdn.example/x/b.png?w=2", "b · 0.4")]
    expected = gr.Gallery().postprocess(items).model_dump()
    ours = gallery_data(items)
    for mine, theirs in zip(ours, expected, strict=True):
        assert mine["caption"] == theirs["caption"]
        for key in ("path", "orig_name", "mime_type", "meta"):
            assert mine["image"][key] == theirs["image"][key], key


def test_filter_on_a_field_the_collection_lacks_is_refused(backend):
    bare = Backend(backend.model, backend.collection, Facets(), backend.pictures)
    with pytest.raises(gr.Error, match="(?i)no brand field"):
        search(bare, brands=["Northwind"])
    with pytest.raises(gr.Error, match="(?i)no price field"):
        search(bare, price_max=10)


# ---------------------------------------------------------------------- image search
def test_image_search_by_upload_array_and_modifier(backend):
    gallery, hits = handlers.image_search(backend, str(PICTURE), limit=5)
    assert len(gallery) == len(hits) == 5
    assert hits[0]["id"] == "demo-0001"  # the catalog's own picture is its nearest neighbour
    array = np.asarray(Image.open(PICTURE).convert("RGB"))
    _, from_array = handlers.image_search(backend, array, limit=5)
    assert from_array[0]["id"] == "demo-0001"
    _, modified = handlers.image_search(backend, str(PICTURE), "same, but in blue", limit=5)
    assert [h["id"] for h in modified] != [h["id"] for h in hits]
    _, filtered = handlers.image_search(backend, str(PICTURE), colours=["blue"], limit=5)
    assert all(h["payload"]["color"] == "blue" for h in filtered)


def test_a_float_array_upload_is_refused_rather_than_searched_as_black(backend):
    # A float image in [0, 1], cast to uint8, would be a black picture with black results.
    floats = np.asarray(Image.open(PICTURE).convert("RGB")) / 255.0
    with pytest.raises(gr.Error, match=r"float64>: an image array must be uint8 .*\* 255"):
        handlers.image_search(backend, floats, limit=5)


def test_image_search_needs_an_image_and_only_web_urls(backend):
    with pytest.raises(gr.Error, match="(?i)no image given"):
        handlers.image_search(backend, None)
    with pytest.raises(gr.Error, match="(?i)must start with http"):
        handlers.image_search(backend, None, url="/etc/passwd")
    with pytest.raises(gr.Error, match="(?i)must start with http"):
        handlers.image_search(backend, None, url="s3://bucket/key.jpg")


def test_uploads_in_formats_off_the_web_are_refused_by_name(backend, tmp_path):
    scan = tmp_path / "scan.tif"
    Image.open(PICTURE).save(scan, "TIFF")
    with pytest.raises(gr.Error) as refused:
        handlers.classify(backend, str(scan), "dress, shirt")
    assert refused.value.message == (
        "Cannot read the image scan.tif: a TIFF image, not a JPEG, PNG, WebP, GIF, BMP or AVIF "
        f"image. {inputs.IMAGE_HINT}"
    )


def test_image_urls_on_private_hosts_are_fetched_only_when_the_setting_allows(backend):
    with serving_pictures() as base:
        address = f"{base}/demo-0001.jpg"
        with pytest.raises(gr.Error) as refused:
            handlers.image_search(backend, None, url=address)
        assert refused.value.message == (
            f"Cannot read the image {address}: 127.0.0.1 is a private or local address, and "
            "only public web addresses are fetched here (FASHION_CLIP_ALLOW_PRIVATE_URLS=1 "
            f"allows them on a private deployment). {inputs.IMAGE_OR_URL_HINT}"
        )
        allowed = load_settings({"FASHION_CLIP_ALLOW_PRIVATE_URLS": "true"}).allow_private_urls
        trusting = Backend(
            backend.model, backend.collection, backend.facets, backend.pictures, allowed
        )
        _, hits = handlers.image_search(trusting, None, url=address, limit=3)
        assert hits[0]["id"] == "demo-0001"


# ---------------------------------------------------------------------- classify, localize
def test_classify_gives_probabilities_per_label(backend):
    result = handlers.classify(backend, str(PICTURE), "dress, shirt , t-shirt,, dress")
    assert list(result) == ["dress", "shirt", "t-shirt"]
    assert abs(sum(result.values()) - 1) < 1e-5 and all(0 <= p <= 1 for p in result.values())


@pytest.mark.parametrize(
    "labels",
    ["dress\nshirt\nshoes", "dress\r\nshirt, shoes\n\n", ["dress", "shirt", "shoes"],
     "['dress', 'shirt', 'shoes']"],
)  # fmt: skip
def test_classify_reads_labels_one_per_line_or_as_a_list(backend, labels):
    assert list(handlers.classify(backend, str(PICTURE), labels)) == ["dress", "shirt", "shoes"]


def test_classify_refuses_a_single_label_that_would_always_score_100(backend):
    for labels in ("dress", "dress\n", ["dress"], "dress, \u200b"):
        with pytest.raises(gr.Error, match="(?i)only one label .*'dress'.*always gets 100%"):
            handlers.classify(backend, str(PICTURE), labels)
    # Two labels typed that read as one: said so, not "only one label given".
    with pytest.raises(gr.Error, match="'dress', 'Dress' read as one label, 'dress'"):
        handlers.classify(backend, str(PICTURE), "dress\nDress ")


def test_classify_refuses_empty_and_oversized_label_lists(backend):
    for labels in ("", " , ,", None, [], ["\u200b"]):
        # The app compares labels: the message asks for two, as a single one is refused too.
        with pytest.raises(gr.Error, match="(?i)no labels given: give at least two labels"):
            handlers.classify(backend, str(PICTURE), labels)
    many = ", ".join(f"label {i}" for i in range(inputs.MAX_LABELS + 1))
    with pytest.raises(gr.Error, match="(?i)at most"):
        handlers.classify(backend, str(PICTURE), many)


def test_localize_returns_overlay_and_peak_in_input_pixels(backend, tmp_path):
    path = tmp_path / "wide.jpg"
    path.write_bytes(jpeg_bytes(photo(300, 200)))
    overlay, peak = handlers.localize(backend, str(path), "collar")
    assert overlay.size == (300, 200)
    assert peak["size"] == [300, 200]
    x, y = peak["peak"]
    assert 0 <= x < 300 and 0 <= y < 200
    with pytest.raises(gr.Error, match="(?i)text is empty"):
        handlers.localize(backend, str(path), "  ")


def test_localize_draws_a_large_photo_at_display_size_but_answers_in_its_pixels(
    backend, tmp_path, monkeypatch
):
    from fashion_clip.tasks import overlay
    from fashion_clip.tasks.localize import heatmap_peak, localize

    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(photo(3000, 1500)))
    drawn: list[tuple[int, int]] = []
    real_draw = overlay.draw_heatmap

    def draw(image, heatmap, **kwargs):
        drawn.append(image.size)
        return real_draw(image, heatmap, **kwargs)

    import fashion_clip.tasks.localize as library

    mapped: list[tuple[int, int]] = []
    real_localize = library.localize

    def locate(model, picture, text, **kwargs):
        mapped.append(picture.size)
        return real_localize(model, picture, text, **kwargs)

    monkeypatch.setattr(overlay, "draw_heatmap", draw)
    monkeypatch.setattr(library, "localize", locate)
    image, peak = handlers.localize(backend, str(path), "collar")
    assert mapped == [(1500, 750)]  # decoded in draft mode: half the sides, still >= 1024
    assert drawn == [(1024, 512)]  # never drawn at full size, only to be shrunk
    assert image.size == (1024, 512) and max(image.size) == handlers.MAX_OVERLAY_SIDE
    assert peak["size"] == [3000, 1500]
    # The peak is in the photo's pixels, where the library's full-size map has it (to
    # within one shown pixel: 3000 / 1024 of the photo's).
    x, y = heatmap_peak(localize(backend.model, str(path), "collar"))
    assert abs(peak["peak"][0] - x) <= 3 and abs(peak["peak"][1] - y) <= 3, (peak, x, y)


def test_display_size_and_input_pixels():
    assert handlers.display_size((300, 200)) == (300, 200)  # small pictures stay as they are
    assert handlers.display_size((8000, 8000)) == (1024, 1024)
    assert handlers.display_size((1000, 3000)) == (341, 1024)
    assert handlers.to_input_pixels((0, 0), (1024, 512), (3000, 1500)) == (1, 1)
    assert handlers.to_input_pixels((1023, 511), (1024, 512), (3000, 1500)) == (2998, 1498)
    assert handlers.to_input_pixels((5, 7), (300, 200), (300, 200)) == (5, 7)


# ---------------------------------------------------------------------- bad uploads
@pytest.mark.parametrize("name", sorted(bad_files()))
def test_bad_uploads_get_a_message_naming_the_file(backend, tmp_path, name):
    data, word = bad_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    for call, has_url_box in (
        (lambda: handlers.classify(backend, str(path), "dress, shirt"), False),
        (lambda: handlers.image_search(backend, str(path)), True),
        (lambda: handlers.localize(backend, str(path), "collar"), False),
    ):
        with pytest.raises(gr.Error) as caught:
            call()
        message = caught.value.message
        assert name in message and word.lower() in message.lower(), message
        assert str(tmp_path) not in message  # the server's temporary path stays private
        assert "Upload a JPEG" in message
        assert ("image URL" in message) == has_url_box, message  # only that tab has the box


def test_each_tab_asks_for_what_it_lacks_in_one_message(backend):
    for call, expected in (
        (lambda: handlers.classify(backend, None, "dress, shirt"), "no image given: upload"),
        (lambda: handlers.localize(backend, None, "collar"), "no image given: upload"),
        (lambda: handlers.localize(backend, None, "  "), "no image and no text given"),
        (lambda: handlers.image_search(backend, None), "(or paste an image URL)"),
    ):
        with pytest.raises(gr.Error) as caught:
            call()
        message = caught.value.message.lower()
        assert expected.lower() in message, message
        assert ("image url" in message) == ("URL" in expected)


@pytest.mark.parametrize("name", sorted(good_files()))
def test_odd_but_valid_uploads_work(backend, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(good_files()[name])
    assert len(handlers.classify(backend, str(path), "dress, shirt")) == 2


def test_unexpected_failures_become_a_short_apology(backend, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(backend.collection, "query", broken)  # what searches call
    with pytest.raises(gr.Error, match="(?i)went wrong on our side") as caught:
        search(backend)
    assert "disk on fire" not in caught.value.message


# ---------------------------------------------------------------------- filters, pictures
def test_facets_come_from_the_payload(backend):
    facets = backend.facets
    assert facets.fields == {"category": "category", "colour": "color", "brand": "brand"}
    assert "red" in facets.choices("colour") and facets.price_field == "price"
    low, high = facets.price_range
    assert 0 < low < high
    assert "solid" in facets.presets["pattern"] and "red" in facets.presets["colour"]
    assert facets.sorts() == ["relevance", "price_asc", "price_desc"]  # the demo's, as ever


def test_the_sorts_offered_are_the_collections_numeric_fields_the_price_first(tmp_path):
    indexes = {"amount": "integer", "price": "float", "weight": "float", "color": "keyword"}
    with EmbeddedStore(tmp_path / "qdrant") as store:
        spec = CollectionSpec(model_id="test/tiny", dim=16, payload_indexes=indexes)
        with store.create("shop", spec) as collection:
            facets = read_facets(collection)
    assert facets.sorts() == [
        "relevance", "price_asc", "price_desc", "amount_asc", "amount_desc",
        "weight_asc", "weight_desc",
    ]  # fmt: skip


def test_a_field_with_one_value_leaves_its_label_preset_as_it_was(tmp_path):
    """Classify compares two labels at least: a catalog of dresses only keeps the default
    category labels, where its own would be one label that classify refuses."""
    from fashion_clip.store import Point
    from space.filters import DEFAULT_PRESETS

    indexes = {"category": "keyword", "color": "keyword"}
    rng = np.random.default_rng(0)
    with EmbeddedStore(tmp_path / "qdrant") as store:
        spec = CollectionSpec(model_id="test/tiny", dim=16, payload_indexes=indexes)
        with store.create("dresses", spec) as collection:
            collection.upsert([
                Point(f"d{i}", {"image": rng.normal(size=16).astype(np.float32)},
                      {"category": "dress", "color": ["red", "blue"][i % 2]})
                for i in range(4)
            ])  # fmt: skip
            facets = read_facets(collection)
    assert facets.presets["category"] == DEFAULT_PRESETS["category"]
    assert facets.presets["colour"] in ("red, blue", "blue, red")  # two: the catalog's own


def test_build_filter():
    facets = Facets(fields={"colour": "color"}, values={"colour": ["red"]}, price_field="price")
    assert build_filter(facets) is None
    assert build_filter(facets, colours=[], price_min=None, price_max="") is None
    assert build_filter(facets, colours=["red"], price_max=30) == Filter(
        any_of={"color": ["red"]}, ranges={"price": Range(gte=None, lte=30.0)}
    )
    assert build_filter(facets, exclude_ids=["a"]) == Filter(exclude_ids=("a",))
    assert build_filter(facets, price_min=0, price_max=0) is None  # a number box shown empty
    assert build_filter(facets, price_min=5, price_max=0) == Filter(
        ranges={"price": Range(gte=5.0, lte=None)}
    )


def test_pictures_serve_local_files_in_place_and_never_fail(tmp_path):
    pictures = Pictures([DEMO_CATALOG_DIR], cache_dir=tmp_path / "cache")
    linked = Path(pictures({"_image_source": str(PICTURE)}))  # a hard link, in the app's folder
    assert linked.name == PICTURE.name and linked.samefile(PICTURE)
    assert linked.is_relative_to(tmp_path / "cache")
    assert pictures.static_paths == [tmp_path / "cache"]
    assert pictures({"image": "images/demo-0001.jpg"}) == str(linked)
    url = "https://example.com/a.jpg"
    assert pictures({"_image_source": url}) == url
    placeholder = pictures({"_image_source": str(tmp_path / "missing.jpg")})
    assert Path(placeholder).name == "placeholder.png"
    outside = tmp_path / "outside.jpg"  # not under a served root: shown as a cached thumbnail
    outside.write_bytes(jpeg_bytes(photo(900, 600)))
    thumb = Path(pictures({"_image_source": str(outside)}))
    assert thumb.parent == tmp_path / "cache" and max(Image.open(thumb).size) == 384
    assert hit_record(type("H", (), {"id": 1, "score": 0.5, "payload": {}})())["caption"] == "1"


def test_pictures_the_app_makes_are_kept_whole_and_only_the_newest(tmp_path, monkeypatch):
    from space import results

    monkeypatch.setattr(results, "KEPT_PICTURES", 3)
    pictures = Pictures([], cache_dir=tmp_path / "cache")
    made = [Path(pictures.keep(photo(64, 48, seed=seed))) for seed in range(5)]
    assert Path(pictures.keep(photo(64, 48, seed=4))) == made[4]  # the same picture, one file
    assert sorted(p.name for p in (tmp_path / "cache" / "made").iterdir()) == sorted(
        p.name for p in made[2:]
    )  # no partial files left, and the two oldest gone
    assert Image.open(made[4]).size == (64, 48)


# ---------------------------------------------------------------------- start-up
def test_empty_store_gets_the_demo_catalog_then_reopens_it(tiny_model, tmp_path, monkeypatch):
    from fashion_clip.store import open_store

    # A 40-row demo catalog keeps this quick; the code path is the one `python app.py` takes.
    monkeypatch.setattr("fashion_clip.demo.DEMO_CATALOG_FILE", demo_slice(tmp_path / "cat", 40))
    settings = Settings(model="tiny", qdrant_path=tmp_path / "store")
    with open_store(settings) as store:
        collection = open_collection(settings, store, tiny_model)
        assert collection.name == "demo" and collection.count() == 40
        assert collection.info().extra["indexed_at"]
        collection.close()
        again = open_collection(settings, store, tiny_model)  # no re-indexing the second time
        assert again.count() == 40
        again.close()


def test_the_demo_is_rebuilt_for_another_model_and_a_missing_catalog_is_told(
    tiny_model, tmp_path, monkeypatch, caplog
):
    from fashion_clip.errors import FashionCLIPError
    from fashion_clip.model.clip import ClipModel
    from fashion_clip.store import open_store
    from tests.conftest import build_tiny_clip

    monkeypatch.setattr("fashion_clip.demo.DEMO_CATALOG_FILE", demo_slice(tmp_path / "cat", 12))
    other = ClipModel.load(str(build_tiny_clip(tmp_path / "other", seed=3)), text_precision="fp32")
    settings = Settings(model="tiny", qdrant_path=tmp_path / "store")
    with open_store(settings) as store:
        open_collection(settings, store, tiny_model).close()
        with caplog.at_level("WARNING"):
            rebuilt = open_collection(settings, store, other)
        assert rebuilt.info().model_id == other.info.name and rebuilt.count() == 12
        rebuilt.close()
        assert "rebuilding collection 'demo'" in caplog.text

        missing = tmp_path / "none" / "catalog.jsonl"
        monkeypatch.setattr("fashion_clip.demo.DEMO_CATALOG_FILE", missing)
        store.drop("demo")
        with pytest.raises(FashionCLIPError, match="the bundled demo catalog is missing"):
            open_collection(settings, store, tiny_model)


def test_a_missing_named_collection_stops_with_advice(tiny_model, tmp_path):
    from fashion_clip.errors import StoreError
    from fashion_clip.store import open_store

    settings = Settings(qdrant_path=tmp_path / "store", collection="shop")
    with open_store(settings) as store, pytest.raises(StoreError, match="indexer index"):
        open_collection(settings, store, tiny_model)
    assert choose_collection(Settings(qdrant_path=tmp_path / "none"), store).name == "demo"


def test_the_app_shows_the_last_indexed_catalog_not_a_python_datasets_cache(tmp_path):
    from fashion_clip.api.catalog_vectors import DATASET_CATALOG_PREFIX
    from fashion_clip.errors import StoreError
    from fashion_clip.store import open_store
    from tests.store_fixtures import spec

    settings = Settings(qdrant_path=tmp_path / "store")
    with open_store(settings) as store:
        # The README's Python example leaves its dataset's collection in the same store.
        api = store.create("demo-298a2a679e3d-a8cfb03f", spec(catalog=f"{DATASET_CATALOG_PREFIX}x"))
        api.close()
        assert choose_collection(settings, store).name == "demo"
        for name, when in (("spring", "2026-03-01T10:00:00+00:00"), ("summer", "2026-06-01")):
            with store.create(name, spec(catalog=f"{name}.csv")) as shop:
                shop.set_extra({"indexed_at": when})
        assert choose_collection(settings, store).name == "summer"
        # Held by another process (here: another store object): its record still tells. A
        # catalog stays the choice (opening it then names the holder); a dataset cache not.
        other = EmbeddedStore(tmp_path / "store")
        with store.open("summer"), store.open("demo-298a2a679e3d-a8cfb03f"):
            assert choose_collection(settings, other).name == "summer"
            with pytest.raises(StoreError, match="already open"):
                other.open("summer")  # what the start then says, naming the holder


def test_the_heatmap_offers_share_only_on_a_space(monkeypatch):
    from space.tabs.localize import heatmap_buttons

    monkeypatch.delenv("SPACE_ID", raising=False)
    assert heatmap_buttons() == ["download", "fullscreen"]  # share fails off Spaces
    monkeypatch.setenv("SPACE_ID", "someone/fashion-clip")
    assert heatmap_buttons() == ["download", "fullscreen", "share"]


def test_share_and_auth_options(tmp_path, monkeypatch):
    assert launch_options(Settings())["share"] is False
    assert launch_options(Settings(), share=True)["share"] is True  # --share
    monkeypatch.delenv("FASHION_CLIP_SHARE", raising=False)
    (tmp_path / ".env").write_text("FASHION_CLIP_SHARE=1\n")  # a setting: .env works too
    assert launch_options(load_settings(dotenv_path=tmp_path / ".env"))["share"] is True
    assert launch_options(load_settings({"FASHION_CLIP_SHARE": "0"}))["share"] is False
    assert "auth" not in launch_options(Settings())
    options = launch_options(Settings(auth=("ann", "secret")), share=True)
    assert options["auth"] == ("ann", "secret") and options["share"] is True


def test_importing_the_app_loads_no_model_or_store_engine():
    code = (
        "import sys, space.app, space.handlers, space.startup, space.components\n"
        "heavy = {'torch', 'transformers', 'qdrant_edge', 'qdrant_client'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_text_cache_gives_the_model_vectors_and_forgets_the_oldest(tiny_model):
    from space.textcache import CachedText

    cache = CachedText(tiny_model, size=2)
    texts = ["red dress", "blue shirt", "red dress"]
    vectors = cache.encode_text(texts)
    np.testing.assert_allclose(vectors, tiny_model.encode_text(texts), atol=1e-6)
    assert (cache.hits, cache.misses) == (0, 2)  # a repeat inside one call is encoded once
    cache.encode_text(["blue shirt"])
    assert cache.hits == 1
    cache.encode_text(["green skirt"])  # evicts "red dress", the least recently used
    cache.encode_text(["red dress"])
    assert cache.misses == 4
    assert cache.encode_text([]).shape == (0, tiny_model.dim)
    returned = cache.encode_text(["blue shirt"])
    returned[0, 0] = 9.0  # callers get a copy: the remembered vector stays as it was
    np.testing.assert_allclose(cache.encode_text(["blue shirt"]), vectors[1:2], atol=1e-6)
    assert cache.logit_scale == tiny_model.logit_scale


def test_text_cache_remembers_each_vector_alone_not_its_batch(tiny_model):
    """One label kept from a 64-label call must not keep the other 63's vectors alive."""
    from space.textcache import CachedText

    cache = CachedText(tiny_model, size=1)
    labels = [f"style {i}" for i in range(64)]
    cache.encode_text(labels)
    (remembered,) = cache._vectors.values()  # the last label: the one the size leaves
    held = remembered if remembered.base is None else remembered.base
    assert held.nbytes == tiny_model.dim * 4


def test_each_request_sets_its_own_torch_threads(backend, monkeypatch):
    """Text queries run on one core, the vision tower on torch's choice, per serving thread."""
    import threading

    import torch

    from fashion_clip.model.clip import ClipModel

    assert backend.threads["query"] == 1 and backend.threads["vision"] >= 1
    seen: list[tuple[str, int]] = []
    real_text, real_pixels = ClipModel.encode_text, ClipModel.encode_pixels

    def text(self, *args, **kwargs):
        seen.append(("text", torch.get_num_threads()))
        return real_text(self, *args, **kwargs)

    def pixels(self, *args, **kwargs):
        seen.append(("pixels", torch.get_num_threads()))
        return real_pixels(self, *args, **kwargs)

    monkeypatch.setattr(ClipModel, "encode_text", text)
    monkeypatch.setattr(ClipModel, "encode_pixels", pixels)
    after: list[int] = []

    def serve() -> None:  # one server thread, taking one request after another
        torch.set_num_threads(3)  # the thread's own setting, to be left as it was
        search(backend, "a query only this test sends")
        handlers.classify(backend, photo(64, 64), "a label only this test sends, and another")
        after.append(torch.get_num_threads())

    worker = threading.Thread(target=serve)
    worker.start()
    worker.join()
    vision = backend.threads["vision"]
    assert seen[0] == ("text", 1), seen
    assert seen[1:] and all(threads == vision for _, threads in seen[1:]), seen
    assert {kind for kind, _ in seen[1:]} == {"pixels", "text"}  # classify: image and labels
    assert after == [3]


def test_query_photos_are_decoded_as_the_indexer_decodes_the_catalog(
    backend, tmp_path, monkeypatch
):
    from fashion_clip.ingest.decoding import decode_crop

    model = backend.model
    big = tmp_path / "phone.jpg"
    big.write_bytes(jpeg_bytes(photo(1600, 1200, seed=3)))
    side = model.preprocessor.min_decode_side
    picture = inputs.read_image(str(big), min_side=side)
    assert side <= min(picture.size) and picture.width <= 1600 // 2  # a reduced scale
    crop, _ = decode_crop(big.read_bytes(), str(big), model.preprocessor)
    stored = model.encode_crops(crop[None].copy())[0]  # what `indexer index` stores for it
    np.testing.assert_allclose(handlers._image_vector(model, picture), stored, atol=1e-5)

    asked = []
    real = inputs.load_image_sized

    def spy(source, **kwargs):
        asked.append(kwargs.get("min_side"))
        return real(source, **kwargs)

    monkeypatch.setattr(inputs, "load_image_sized", spy)
    handlers.classify(backend, str(big), "dress, shirt")
    handlers.image_search(backend, str(big))
    assert asked == [side, side]
