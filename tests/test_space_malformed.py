"""Every malformed input gets a message naming it, never an apology and a traceback.

A table of malformed inputs goes through `gradio_client` to a live server, across the four
endpoints: odd and malformed URLs, wrong JSON types for every parameter, huge and empty
values, unknown ids. Each must end as an `AppError` whose message names the input; the
server's log holds no traceback, and a normal query works afterwards.
"""

from __future__ import annotations

import logging
import re

import pytest

from fashion_clip.demo import DEMO_CATALOG_DIR
from space.app import build_demo
from tests.space_support import open_shop, serving, shared_shop

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
PICTURE = str(DEMO_CATALOG_DIR / "images" / "demo-0001.jpg")
LONG_HOST = "a" * 300

# (endpoint, arguments by name, a regular expression the message must match: the input)
CASES: list[tuple[str, dict, str]] = [
    # text_search: every parameter with a wrong JSON type, huge and empty values
    ("/text_search", {"query": ""}, "query is empty"),
    ("/text_search", {"query": None}, "query is empty"),
    ("/text_search", {"query": 12345}, "query"),
    ("/text_search", {"query": ["red", "dress"]}, "query"),
    ("/text_search", {"query": {"text": "red"}}, "query"),
    ("/text_search", {"query": True}, "query"),
    ("/text_search", {"query": "x" * 5000}, "query is 5000 characters"),
    ("/text_search", {"query": "dress", "negative": 42}, "'less of' text"),
    ("/text_search", {"query": "dress", "negative": ["a"]}, "'less of' text"),
    ("/text_search", {"query": "dress", "negative": "y" * 900}, "'less of' text is 900"),
    ("/text_search", {"query": "dress", "categories": ["robes"]}, "'robes'"),
    ("/text_search", {"query": "dress", "categories": True}, "category filter"),
    ("/text_search", {"query": "dress", "categories": [1, 2]}, "categor"),
    ("/text_search", {"query": "dress", "categories": {"a": 1}}, "categor"),
    ("/text_search", {"query": "dress", "colours": ["mauve"]}, "'mauve'"),
    ("/text_search", {"query": "dress", "colours": 7}, "colour"),
    ("/text_search", {"query": "dress", "brands": ["Nobody"]}, "'Nobody'"),
    ("/text_search", {"query": "dress", "brands": [["Kestrel"]]}, "brand"),
    ("/text_search", {"query": "dress", "price_min": "cheap"}, "price"),
    ("/text_search", {"query": "dress", "price_max": [10]}, "price"),
    ("/text_search", {"query": "dress", "price_min": {"v": 1}}, "price"),
    ("/text_search", {"query": "dress", "price_min": 90, "price_max": 10}, "price"),
    ("/text_search", {"query": "dress", "limit": 0}, "number of results"),
    ("/text_search", {"query": "dress", "limit": 1000}, "number of results"),
    ("/text_search", {"query": "dress", "limit": 3.5}, "number of results"),
    ("/text_search", {"query": "dress", "limit": "ten"}, "number of results"),
    ("/text_search", {"query": "dress", "limit": [5]}, "number of results"),
    ("/text_search", {"query": "dress", "limit": True}, "number of results"),
    ("/text_search", {"query": "", "like_ids": 123}, "liked example ids"),
    ("/text_search", {"query": "", "like_ids": 1.5}, "liked example ids"),
    ("/text_search", {"query": "", "like_ids": {"id": "x"}}, "liked example ids"),
    ("/text_search", {"query": "", "like_ids": True}, "liked example ids"),
    ("/text_search", {"query": "", "like_ids": [["a", "b"]]}, "liked example"),
    ("/text_search", {"query": "", "like_ids": ["nope-1"]}, r"liked examples.*'nope-1'"),
    ("/text_search", {"query": "", "like_ids": "nope-1, nope-2"}, r"liked examples.*nope-2"),
    ("/text_search", {"query": "", "like_ids": "x" * 30_000}, "liked example ids are 30000"),
    ("/text_search", {"query": "", "like_ids": [str(i) for i in range(150)]}, "150 liked"),
    ("/text_search", {"query": "dress", "unlike_ids": 3.5}, "disliked example ids"),
    ("/text_search", {"query": "dress", "unlike_ids": {"a": 1}}, "disliked example ids"),
    ("/text_search", {"query": "dress", "unlike_ids": ["ghost"]}, r"disliked.*'ghost'"),
    # image_search: malformed and odd URLs, wrong types
    ("/image_search", {"image": None}, "no image given"),
    ("/image_search", {"image": None, "url": "http://example.com:abc/x.jpg"}, "example.com:abc"),
    ("/image_search", {"image": None, "url": "http://[::1/x.jpg"}, r"\[::1/x\.jpg"),
    ("/image_search", {"image": None, "url": "ftp://example.com/x.jpg"}, "ftp://example.com"),
    ("/image_search", {"image": None, "url": "file:///etc/passwd"}, "file:///etc/passwd"),
    ("/image_search", {"image": None, "url": "javascript:alert(1)"}, "javascript:alert"),
    ("/image_search", {"image": None, "url": "http://"}, "image URL 'http://'|http://:"),
    ("/image_search", {"image": None, "url": "https:///x.jpg"}, "https:///x.jpg"),
    ("/image_search", {"image": None, "url": "http://127.0.0.1:1/x.jpg"}, "127.0.0.1"),
    ("/image_search", {"image": None, "url": "http://10.1.2.3/x.jpg"}, "10.1.2.3"),
    ("/image_search", {"image": None, "url": "http://localhost/x.jpg"}, "localhost"),
    ("/image_search", {"image": None, "url": f"http://{LONG_HOST}.com/x.jpg"}, "aaaa"),
    ("/image_search", {"image": None, "url": "http://example.com/a b\x00.jpg"}, "example.com"),
    ("/image_search", {"image": None, "url": 123}, "image URL"),
    ("/image_search", {"image": None, "url": ["http://example.com/x.jpg"]}, "image URL"),
    ("/image_search", {"image": None, "url": {"href": "x"}}, "image URL"),
    ("/image_search", {"image": None, "url": "x" * 100_000}, "image URL"),
    ("/image_search", {"image": 123}, "image"),
    ("/image_search", {"image": PICTURE, "modifier": ["blue"]}, "modifier"),
    ("/image_search", {"image": PICTURE, "modifier": "z" * 2000}, "modifier is 2000"),
    ("/image_search", {"image": PICTURE, "limit": -1}, "number of results"),
    ("/image_search", {"image": PICTURE, "price_max": "lots"}, "price"),
    # the box and the ranking controls
    ("/image_search", {"image": PICTURE, "box": [1, 2, 3]}, "box"),
    ("/image_search", {"image": PICTURE, "box": [0, 0, "wide", 5]}, "box"),
    ("/image_search", {"image": PICTURE, "box": {"x0": 1}}, "box"),
    ("/image_search", {"image": PICTURE, "box": [500, 500, 10, 10]}, "box"),
    ("/image_search", {"image": PICTURE, "box": [0, 0, 99999, 99999]}, "box"),
    ("/image_search", {"image": PICTURE, "sort": 5}, "sort"),
    ("/image_search", {"image": PICTURE, "offset": -1}, "offset"),
    ("/image_search", {"image": PICTURE, "offset": "many"}, "offset"),
    ("/image_search", {"image": PICTURE, "diversity": 2}, "diversity"),
    ("/image_search", {"image": PICTURE, "diversity": [0.5]}, "diversity"),
    ("/text_search", {"query": "dress", "mode": "fuzzy"}, "mode"),
    ("/text_search", {"query": "dress", "mode": 3}, "mode"),
    ("/text_search", {"query": "dress", "sort": ["price_asc"]}, "sort"),
    ("/text_search", {"query": "dress", "sort": "colour_sideways"}, "sort"),
    # classify
    ("/classify", {"image": PICTURE, "labels": None}, "label"),
    ("/classify", {"image": PICTURE, "labels": 123}, "label"),
    ("/classify", {"image": PICTURE, "labels": ["dress"]}, "only one label"),
    ("/classify", {"image": PICTURE, "labels": {"a": "b"}}, "label"),
    ("/classify", {"image": PICTURE, "labels": "x" * 600 + ", shirt"}, "label 'xxx"),
    ("/classify", {"image": PICTURE, "labels": ", ".join(f"l{i}" for i in range(100))}, "100 lab"),
    ("/classify", {"image": PICTURE, "labels": "q" * 50_000}, "labels are 50000"),
    ("/classify", {"image": None, "labels": "dress, shirt"}, "no image given"),
    ("/classify", {"image": 3.5, "labels": "dress, shirt"}, "image"),
    # localize
    ("/localize", {"image": None, "text": None}, "no image and no text"),
    ("/localize", {"image": None, "text": "collar"}, "no image given"),
    ("/localize", {"image": PICTURE, "text": 123}, "text"),
    ("/localize", {"image": PICTURE, "text": ["collar"]}, "text"),
    ("/localize", {"image": PICTURE, "text": "w" * 1000}, "text is 1000"),
    ("/localize", {"image": PICTURE, "text": ""}, "text is empty"),
]


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory):
    settings = shared_shop(tiny_model, tmp_path_factory)
    collection = open_shop(settings, tiny_model)
    demo = build_demo(tiny_model, collection, settings)
    with serving(demo) as address:
        yield Client(address, verbose=False, download_files=False)
    collection.close()


def _sent(value):
    return handle_file(value) if value == PICTURE else value


def test_the_table_is_large():
    assert len(CASES) >= 50
    assert {endpoint for endpoint, _, _ in CASES} == {
        "/text_search", "/image_search", "/classify", "/localize",
    }  # fmt: skip


@pytest.mark.parametrize(("endpoint", "arguments", "names"), CASES, ids=range(len(CASES)))
def test_a_malformed_input_is_answered_with_a_message_naming_it(
    client, capfd, caplog, endpoint, arguments, names
):
    capfd.readouterr()
    caplog.clear()
    sent = {key: _sent(value) for key, value in arguments.items()}
    with caplog.at_level(logging.INFO), pytest.raises(AppError) as refused:
        client.predict(**sent, api_name=endpoint)
    message = str(refused.value)
    assert "went wrong on our side" not in message, message
    assert re.search(names, message, re.IGNORECASE), message
    printed = "".join(capfd.readouterr())
    assert "Traceback" not in printed + caplog.text, printed + caplog.text
    _, hits = client.predict("red dress", limit=2, api_name="/text_search")
    assert len(hits) == 2
