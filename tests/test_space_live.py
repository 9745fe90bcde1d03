"""The Space as users' scripts see it: a live server on a free port, called with gradio_client.

Every public endpoint is called, bad input included; the server must answer each bad call
with a message that says what to do, and keep serving.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

from fashion_clip.demo import DEMO_CATALOG_DIR, DEMO_CATALOG_FILE
from space.app import build_demo
from space.startup import launch_options
from tests.image_corpus import bomb_png, jpeg_bytes, photo
from tests.space_support import open_shop, serving, serving_pictures, shared_shop

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = [  # Gradio's queue analytics use pandas options that pandas 3 deprecates
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
PICTURE = DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"
ENDPOINTS = {"/text_search", "/image_search", "/classify", "/localize"}


@pytest.fixture(scope="module")
def shop(tiny_model, tmp_path_factory):
    settings = shared_shop(tiny_model, tmp_path_factory)
    collection = open_shop(settings, tiny_model)
    yield settings, collection
    collection.close()


@pytest.fixture(scope="module")
def url(shop, tiny_model):
    settings, collection = shop
    demo = build_demo(tiny_model, collection, settings, notice="the demo model stands in")
    with serving(demo, **launch_options(settings)) as address:
        yield address


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def picture_server():
    with serving_pictures() as base:
        yield base


def test_every_endpoint_is_documented_with_named_parameters(client):
    api = client.view_api(return_format="dict", print_info=False)
    named = api["named_endpoints"]
    assert set(named) == ENDPOINTS  # /ping works but stays out of the documentation
    names = [p["parameter_name"] for p in named["/text_search"]["parameters"]]
    assert names[:8] == [
        "query", "negative", "categories", "colours", "brands", "price_min", "price_max", "limit",
    ]  # fmt: skip
    assert [p["parameter_name"] for p in named["/localize"]["parameters"]] == ["image", "text"]
    optional = {p["parameter_name"] for p in named["/text_search"]["parameters"][1:]}
    required = {
        p["parameter_name"]
        for p in named["/text_search"]["parameters"]
        if not p["parameter_has_default"]
    }
    assert required == {"query"} and "limit" in optional
    assert client.predict(api_name="/ping") == "ok"


def test_the_pages_own_events_are_not_callable(url):
    """Examples, notes, clicks on results: private to the page, never more API to keep."""
    import json

    with urllib.request.urlopen(url + "config", timeout=30) as response:
        dependencies = json.load(response)["dependencies"]
    callable_names = {d["api_name"] for d in dependencies if d["api_visibility"] != "private"}
    assert callable_names == {name.lstrip("/") for name in ENDPOINTS} | {"ping"}


@pytest.mark.parametrize("tab", ["text", "image"])
def test_more_results_pages_inputs_the_search_itself_kept(url, tab):
    """What "More results" pages is written by the search event, with its results: a page
    event keeping the inputs beside it could keep another press's (a second Search while
    the first runs), and More results would append that query's page under these results."""
    import json

    with urllib.request.urlopen(url + "config", timeout=30) as response:
        config = json.load(response)
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    events = config["dependencies"]
    (search,) = [d for d in events if d["api_name"] == f"{tab}_search"]
    (more,) = [d for d in events if [ids[f"{tab}-more"], "click"] in d["targets"]]
    states = {c["id"] for c in config["components"] if c["type"] == "state"}
    paged = set(more["inputs"]) & states
    assert paged and paged <= set(search["outputs"])
    writers = [d for d in events if paged & set(d["outputs"])]
    # only searches that show their results write it: the tab's search, "more like this"
    # (a search of the liked examples) and the ?q= link's search on the text tab
    assert all(set(d["outputs"]) & {ids[f"{tab}-results"]} for d in writers), writers


def test_text_search(client):
    gallery, hits = client.predict("red dress", limit=5, api_name="/text_search")
    assert len(gallery) == len(hits) == 5
    assert {"id", "score", "caption", "payload"} <= set(hits[0])
    assert gallery[0]["caption"].startswith(hits[0]["caption"])
    assert gallery[0]["image"]["url"].startswith("http")
    _, red = client.predict("dress", colours=["red"], price_max=60, api_name="/text_search")
    assert red and all(h["payload"]["color"] == "red" and h["payload"]["price"] <= 60 for h in red)
    _, similar = client.predict("", like_ids=hits[0]["id"], limit=3, api_name="/text_search")
    assert len(similar) == 3 and hits[0]["id"] not in {h["id"] for h in similar}
    liked = [hits[0]["id"], hits[1]["id"]]  # a list works as well as comma-separated text
    _, both = client.predict(
        "", like_ids=liked, unlike_ids=[hits[2]["id"]], api_name="/text_search"
    )
    assert not set(liked) & {h["id"] for h in both}


def test_filters_that_match_nothing_return_empty_lists(client):
    assert client.predict("dress", price_min=100_000, api_name="/text_search") == ([], [])
    picture = handle_file(str(PICTURE))
    assert client.predict(picture, price_min=100_000, api_name="/image_search") == ([], [])


def test_api_inputs_are_read_alike_on_every_endpoint(client):
    """One filter value as plain text, and bad counts and ids named as the text search does."""
    picture = handle_file(str(PICTURE))
    _, red = client.predict("dress", colours="red", api_name="/text_search")
    assert red and {h["payload"]["color"] for h in red} == {"red"}
    _, red = client.predict(picture, colours="red", api_name="/image_search")
    assert red and {h["payload"]["color"] for h in red} == {"red"}
    for limit in (0, -3, 1e9):
        with pytest.raises(AppError, match="number of results must be between 1 and 48"):
            client.predict(picture, limit=limit, api_name="/image_search")
    with pytest.raises(AppError, match="'mauve-ish' is not one of"):
        client.predict(picture, colours=["mauve-ish"], api_name="/image_search")
    with pytest.raises(AppError, match=r"no products with ids \['nope-1'\]; use ids"):
        client.predict("", like_ids="nope-1", api_name="/text_search")
    assert client.predict(api_name="/ping") == "ok"


def test_image_search_by_upload_and_by_url(client, picture_server):
    _, hits = client.predict(handle_file(str(PICTURE)), limit=4, api_name="/image_search")
    assert len(hits) == 4 and hits[0]["id"] == "demo-0001"
    _, composed = client.predict(
        handle_file(str(PICTURE)), "same, but in blue", limit=4, api_name="/image_search"
    )
    assert len(composed) == 4
    # By URL: this app runs with the defaults, so a host on this machine is refused (a public
    # Space must not fetch its own network's addresses for strangers); the server goes on.
    address = f"{picture_server}/demo-0001.jpg"
    with pytest.raises(AppError, match=r"127\.0\.0\.1 is a private or local address") as refused:
        client.predict(None, url=address, limit=4, api_name="/image_search")
    assert address in str(refused.value) and "FASHION_CLIP_ALLOW_PRIVATE_URLS=1" in str(
        refused.value
    )
    assert client.predict(api_name="/ping") == "ok"


def test_classify(client):
    label = client.predict(handle_file(str(PICTURE)), "dress, shirt, shoes", api_name="/classify")
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert set(confidences) == {"dress", "shirt", "shoes"}
    assert abs(sum(confidences.values()) - 1) < 1e-4
    assert label["label"] == max(confidences, key=confidences.get)


def test_classify_returns_every_label_over_the_api(client):
    labels = [f"style {i}" for i in range(30)]  # more than a screenful, under the 64 allowed
    label = client.predict(handle_file(str(PICTURE)), ", ".join(labels), api_name="/classify")
    confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert set(confidences) == set(labels)
    assert abs(sum(confidences.values()) - 1) < 1e-4


@pytest.mark.parametrize("labels", ["dress\nshirt\nshoes", ["dress", "shirt", "shoes"]])
def test_classify_takes_labels_one_per_line_or_as_a_list(client, labels):
    label = client.predict(handle_file(str(PICTURE)), labels, api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"dress", "shirt", "shoes"}


def test_localize(client):
    overlay, peak = client.predict(handle_file(str(PICTURE)), "collar", api_name="/localize")
    assert overlay["url"].startswith("http")
    assert peak["size"] == [256, 256]
    assert all(0 <= v < 256 for v in peak["peak"])


def test_identical_localize_answers_at_once_each_download_whole(client, tmp_path):
    # Several visitors localizing the same photo at once get the same overlay. Gradio's
    # cache rewrote that file in place for each answer, so a download running meanwhile was
    # cut short (0 bytes, or a closed connection); the app now saves each picture whole
    # before it takes its name. Downloads run in a loop while identical answers arrive.
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(photo(1024, 1024), quality=95))  # a long write to run into
    first, _ = client.predict(handle_file(str(path)), "collar", api_name="/localize")
    stop, bodies, problems = threading.Event(), [], []

    def download() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(first["url"], timeout=30) as response:
                    bodies.append(response.read())
            except Exception as exc:  # a connection closed mid-body: what this test catches
                problems.append(repr(exc))

    downloaders = [threading.Thread(target=download) for _ in range(4)]
    for thread in downloaders:
        thread.start()
    try:
        jobs = [
            client.submit(handle_file(str(path)), "collar", api_name="/localize") for _ in range(12)
        ]
        answers = [job.result(timeout=120)[0] for job in jobs]
    finally:
        stop.set()
        for thread in downloaders:
            thread.join()
    assert not problems, problems[:3]
    assert bodies and len(set(bodies)) == 1, sorted({len(body) for body in bodies})
    assert Image.open(io.BytesIO(bodies[0])).size == (1024, 1024)
    assert all(answer["url"] == first["url"] for answer in answers)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (("not a picture",), "not an image"),
        (("empty",), "empty"),
        (("bomb",), "pixel"),
    ],
)
def test_bad_uploads_are_answered_and_the_server_keeps_serving(client, tmp_path, call, message):
    kind = call[0]
    path = tmp_path / {"not a picture": "notes.jpg", "empty": "empty.png", "bomb": "bomb.png"}[kind]
    path.write_bytes(
        {"not a picture": b"just some text, no pixels\n" * 4, "empty": b"", "bomb": bomb_png()}[
            kind
        ]
    )
    for endpoint, args in (
        ("/classify", (handle_file(str(path)), "dress, shirt")),
        ("/image_search", (handle_file(str(path)),)),
        ("/localize", (handle_file(str(path)), "collar")),
    ):
        with pytest.raises(AppError) as caught:
            client.predict(*args, api_name=endpoint)
        text = str(caught.value)
        assert message in text.lower() and path.name in text and "Upload a JPEG" in text, text
    assert client.predict(api_name="/ping") == "ok"


@pytest.mark.parametrize(
    ("endpoint", "args", "message"),
    [
        ("/text_search", ("  ",), "query is empty"),
        ("/text_search", ("\u200b\u200b",), "query is empty"),
        ("/text_search", ("\u0000",), "query is empty"),
        ("/classify", (handle_file(str(PICTURE)), "\u200b"), "no labels"),
        ("/text_search", ("dress", "", [], ["mauve-ish"]), "'mauve-ish' is not one of"),
        ("/text_search", ("dress", "", [], [], [], 90, 10), "upside down"),
        ("/classify", (handle_file(str(PICTURE)), " , "), "no labels given: give at least two"),
        ("/classify", (handle_file(str(PICTURE)), []), "no labels given: give at least two"),
        ("/text_search", ("dress", "", [], [], [], -5), "price from cannot be negative"),
        ("/image_search", (handle_file(str(PICTURE)), "", [], [], [], 0, -1), "price to cannot"),
        ("/classify", (handle_file(str(PICTURE)), "dress"), "only one label"),
        ("/localize", (handle_file(str(PICTURE)), ""), "text is empty"),
        ("/image_search", (None,), "no image given"),
        ("/image_search", (None, "", [], [], [], None, None, 5, "file:///etc/passwd"), "http"),
    ],
)
def test_empty_and_bad_input_get_advice(client, endpoint, args, message):
    with pytest.raises(AppError, match=f"(?i){message}"):
        client.predict(*args, api_name=endpoint)


def test_a_user_input_error_logs_one_line_and_a_failure_its_traceback(
    shop, tiny_model, capfd, caplog, monkeypatch
):
    settings, collection = shop
    demo = build_demo(tiny_model, collection, settings)
    with serving(demo) as address:
        client = Client(address, verbose=False, download_files=False)
        capfd.readouterr()
        caplog.clear()
        with caplog.at_level("INFO"), pytest.raises(AppError, match="query is empty"):
            client.predict("  ", api_name="/text_search")
        printed = "".join(capfd.readouterr())
        ours = [r for r in caplog.records if r.name.startswith(("space", "fashion_clip"))]
        assert "Traceback" not in printed + caplog.text, printed + caplog.text
        assert [r.getMessage() for r in ours] == ["text_search refused: The query is empty: "
                                                   "type what you are looking for, e.g. "
                                                   "'red summer dress'"]  # fmt: skip

        def broken(*args, **kwargs):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(collection, "query", broken)  # every text search asks the store this
        caplog.clear()
        with caplog.at_level("INFO"), pytest.raises(AppError, match="went wrong on our side"):
            client.predict("red dress", api_name="/text_search")
        printed = "".join(capfd.readouterr())
        # The traceback, once: in the log, where the server's operator looks.
        assert "disk on fire" in caplog.text and caplog.text.count("Traceback") == 1
        assert "Traceback" not in printed, printed


def test_oversized_upload_is_refused_before_the_handler(client, tmp_path):
    path = tmp_path / "huge.jpg"
    path.write_bytes(b"\xff" * (26 * 1024 * 1024))  # over the 25 MB upload cap
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        client.predict(handle_file(str(path)), "dress", api_name="/classify")
    assert client.predict(api_name="/ping") == "ok"


def test_page_shows_header_and_banner(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        page = response.read().decode()
    assert "collection `shop`" in page and "60 items" in page
    assert "The demo model stands in" in page


def test_auth_puts_the_app_behind_a_login(shop, tiny_model):
    settings, collection = shop
    from dataclasses import replace

    locked = replace(settings, auth=("ann", "s3cret"))
    demo = build_demo(tiny_model, collection, locked)
    with serving(demo, **launch_options(locked)) as address:
        with pytest.raises(Exception):  # noqa: B017 (the client's error type varies by version)
            Client(address, verbose=False)
        signed_in = Client(address, auth=("ann", "s3cret"), verbose=False, download_files=False)
        assert signed_in.predict(api_name="/ping") == "ok"


def test_text_search_queues_apart_from_the_vision_tower(shop, tiny_model):
    settings, collection = shop
    demo = build_demo(tiny_model, collection, settings)
    groups = {fn.api_name: (fn.concurrency_id, fn.concurrency_limit) for fn in demo.fns.values()}
    vision = {groups[name] for name in ("image_search", "classify", "localize")}
    # A few at once, to fetch and decode their pictures; the model runs one at a time under
    # `Backend.vision_slot` (tests/test_space_url_deadline.py).
    assert vision == {("vision", 4)}, groups
    assert groups["text_search"] == ("search", None), groups  # searches never wait in line
    assert groups["ping"][1] is None  # the health check never queues
    assert demo.enable_queue is not False
    assert demo._queue.max_size == 64  # one client cannot queue thousands of picture requests


def test_readme_api_example_runs_against_a_local_server(url, capsys, tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using the API", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    local = 'Client("http://127.0.0.1:7860/")'
    assert local in code
    # The same call, with the test server's port and the downloads kept in the test's folder.
    code = code.replace(local, f"Client({url!r}, download_files={str(tmp_path)!r})")
    temp = Path(tempfile.gettempdir())
    before = set(temp.iterdir())
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:  # gradio_client 2.7 leaves an empty temporary folder behind per downloaded file
        for left in set(temp.iterdir()) - before:
            if re.fullmatch(r"[0-9a-f]{40}", left.name) and left.is_dir():
                with contextlib.suppress(OSError):
                    left.rmdir()  # only if empty
    printed = capsys.readouterr().out
    assert "'peak'" in printed and "demo-" in printed


def test_pictures_are_served_and_the_catalog_folder_is_not(client, url):
    """The catalog's image folder holds the catalog file too (and on a Space may be the app's
    own, `.env` included): only the pictures the gallery hands out can be fetched."""
    gallery, _ = client.predict("red dress", limit=2, api_name="/text_search")
    with urllib.request.urlopen(gallery[0]["image"]["url"], timeout=30) as response:
        assert response.read(3) == b"\xff\xd8\xff"  # the JPEG itself
    for private in (DEMO_CATALOG_FILE, DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}gradio_api/file={private}", timeout=30)
        assert refused.value.code == 403


def test_a_live_app_sweeps_every_upload_while_uploads_keep_coming(shop, tiny_model, monkeypatch):
    settings, collection = shop
    monkeypatch.setattr("space.app.CACHE_LIFETIME", (1, 1))  # every second, files over 1 s old
    demo = build_demo(tiny_model, collection, settings)
    uploaded: list[str] = []
    stop = threading.Event()

    def upload_until_stopped(base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set():
                name = f"{uuid.uuid4().hex}.jpg"
                answer = client.post("gradio_api/upload", files={"files": (name, os.urandom(256))})
                answer.raise_for_status()
                uploaded.extend(answer.json())

    with serving(demo, **launch_options(settings)) as base:
        uploaders = [threading.Thread(target=upload_until_stopped, args=(base,)) for _ in (1, 2)]
        for thread in uploaders:
            thread.start()
        time.sleep(4)  # four sweeps with uploads landing all along
        stop.set()
        for thread in uploaders:
            thread.join()
        assert len(uploaded) > 20
        deadline = time.monotonic() + 20
        left = uploaded
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = [f for f in uploaded if Path(f).exists() or Path(f).parent.exists()]
        assert left == [], f"{len(left)} of {len(uploaded)} uploads (or their folders) left"
