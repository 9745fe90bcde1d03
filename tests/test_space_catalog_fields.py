"""The page and the API offer what the served collection supports, through a live app and
`gradio_client`: a catalog whose price column is `Preis (€)` and that has no brands sorts by
`Preis (€)` (and not by a `price` it lacks), and its brand filter is declared as one to leave
empty, not as an empty list of choices that no value fits."""

from __future__ import annotations

import gradio as gr
import pytest

from space.app import build_demo
from space.startup import launch_options
from tests.space_support import demo_records, index_records, open_shop, serving

pytest.importorskip("gradio_client")
from gradio_client import Client
from gradio_client.exceptions import AppError

pytestmark = [  # Gradio's queue analytics use pandas options that pandas 3 deprecates
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
PREIS = "Preis (€)"
SORTS = ["relevance", f"{PREIS}_asc", f"{PREIS}_desc"]


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory):
    records = demo_records(24)
    for record in records:
        record[PREIS] = record.pop("price")
        del record["brand"]
    settings = index_records(tiny_model, tmp_path_factory.mktemp("preis") / "store", records)
    collection = open_shop(settings, tiny_model)
    demo = build_demo(tiny_model, collection, settings)
    with serving(demo, **launch_options(settings)) as address:
        yield demo, Client(address, verbose=False, download_files=False)
    collection.close()


def parameters(client: Client, endpoint: str) -> dict[str, dict]:
    api = client.view_api(return_format="dict", print_info=False)
    return {p["parameter_name"]: p for p in api["named_endpoints"][endpoint]["parameters"]}


@pytest.mark.parametrize("endpoint", ["/text_search", "/image_search"])
def test_the_api_declares_the_sorts_the_collection_supports(served, endpoint):
    _, client = served
    assert parameters(client, endpoint)["sort"]["type"]["enum"] == SORTS


def test_the_page_offers_the_sorts_the_collection_supports(served):
    demo, _ = served
    for tab in ("text", "image"):
        sort = next(b for b in demo.blocks.values() if b.elem_id == f"{tab}-sort")
        assert isinstance(sort, gr.Dropdown)
        assert [value for _, value in sort.choices] == SORTS


def test_a_sort_offered_sorts_and_the_one_not_offered_names_those_that_are(served):
    _, client = served
    _, hits = client.predict("dress", sort=f"{PREIS}_asc", limit=24, api_name="/text_search")
    prices = [hit["payload"][PREIS] for hit in hits]
    assert prices and prices == sorted(prices)
    with pytest.raises(AppError, match=r"expected one of relevance, Preis \(€\)_asc"):
        client.predict("dress", sort="price_asc", api_name="/text_search")


@pytest.mark.parametrize("endpoint", ["/text_search", "/image_search"])
def test_a_filter_the_collection_lacks_is_declared_as_one_to_leave_empty(served, endpoint):
    _, client = served
    declared = parameters(client, endpoint)
    brands = declared["brands"]["python_type"]
    assert brands == {
        "type": "list[str]",
        "description": "this collection has no brand field: leave it empty",
    }
    assert declared["categories"]["type"]["items"]["enum"]  # the filters it has: their values


def test_a_brand_sent_for_a_collection_without_brands_is_refused_by_name(served):
    _, client = served
    _, hits = client.predict("dress", brands=[], api_name="/text_search")
    assert hits
    with pytest.raises(AppError, match="no brand field"):
        client.predict("dress", brands=["Northwind"], api_name="/text_search")
