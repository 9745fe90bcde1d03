"""A slow image URL cannot hold the vision queue: the URL box's fetch has a total deadline,
no retries, and runs before the request takes the model, so other callers go on meanwhile.

The slow server drips one byte a second and never finishes; the order of events (its
connection accepted, another caller's classify answered, the connection still held) is
checked with threading events, not with timings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from fashion_clip.demo import DEMO_CATALOG_DIR
from fashion_clip.errors import ImageLoadError
from fashion_clip.media.web import fetch_http
from space.app import build_demo
from space.startup import launch_options
from tests.space_support import open_shop, serving, shared_shop

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
PICTURE = DEMO_CATALOG_DIR / "images" / "demo-0001.jpg"
WAIT_S = 120  # only bounds a hang; every wait below ends on an event long before


@dataclass
class Drip:
    """A server that answers every request one byte a second, forever, until released."""

    url: str = ""
    connected: threading.Event = field(default_factory=threading.Event)
    client_left: threading.Event = field(default_factory=threading.Event)  # the fetcher hung up
    release: threading.Event = field(default_factory=threading.Event)  # the server hangs up
    connections: int = 0


@contextlib.contextmanager
def dripping() -> Iterator[Drip]:
    drip = Drip()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            drip.connections += 1
            drip.connected.set()
            answer = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Slow: " + b"a" * 10_000
            for byte in answer:
                readable, _, _ = select.select([conn], [], [], 1.0)  # a byte a second
                if readable and not conn.recv(1):
                    drip.client_left.set()
                    return
                if drip.release.is_set():
                    return
                conn.sendall(bytes([byte]))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    drip.url = f"http://127.0.0.1:{server.server_address[1]}/slow.jpg"
    try:
        yield drip
    finally:
        drip.release.set()
        server.shutdown()
        server.server_close()


def test_a_fetch_ends_at_its_deadline_however_slowly_the_server_answers():
    with dripping() as drip:
        with pytest.raises(ImageLoadError, match=r"no complete answer within 1\.5 s") as failed:
            fetch_http(drip.url, max_bytes=1 << 20, timeout=30, retries=3, deadline=1.5)
        assert drip.url in str(failed.value)
        assert drip.client_left.wait(WAIT_S)  # the connection is closed, not left dripping
        assert drip.connections == 1  # the deadline covers the retries: none was started


def test_malformed_urls_are_told_apart_from_unreachable_ones():
    for url, problem in (
        ("http://example.com:abc/x.jpg", "not a valid web address"),
        ("http://[::1/x.jpg", "not a valid web address"),
    ):
        with pytest.raises(ImageLoadError, match=problem):
            fetch_http(url, max_bytes=1 << 20, public_only=True)


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory):
    settings = shared_shop(tiny_model, tmp_path_factory)
    settings = dataclasses.replace(settings, allow_private_urls=True)  # the drip is local
    collection = open_shop(settings, tiny_model)
    demo = build_demo(tiny_model, collection, settings)
    with serving(demo, **launch_options(settings)) as address:
        yield address
    collection.close()


def test_a_slow_image_url_does_not_hold_other_callers(client, monkeypatch):
    import space.inputs

    monkeypatch.setattr(space.inputs, "URL_DEADLINE_S", 600.0)  # the release ends this fetch
    slow_caller, other_caller = Client(client, verbose=False), Client(client, verbose=False)
    with dripping() as drip:
        searching = slow_caller.submit(None, url=drip.url, api_name="/image_search")
        assert drip.connected.wait(WAIT_S)
        classified = other_caller.submit(
            handle_file(str(PICTURE)), "dress, shirt", api_name="/classify"
        )
        label = classified.result(timeout=WAIT_S)  # answered while the drip goes on
        assert not drip.client_left.is_set() and not searching.done()
        assert set(c["label"] for c in label["confidences"]) == {"dress", "shirt"}
        drip.release.set()
        with pytest.raises(AppError, match="not valid HTTP|unreachable") as failed:
            searching.result(timeout=WAIT_S)
        assert drip.url in str(failed.value)
        assert drip.connections == 1  # the box does not retry


def test_the_url_box_gives_up_at_its_deadline_with_a_clear_message(client, monkeypatch):
    import space.inputs

    monkeypatch.setattr(space.inputs, "URL_DEADLINE_S", 1.5)
    caller = Client(client, verbose=False)
    with dripping() as drip:
        with pytest.raises(AppError, match=r"no complete answer within 1\.5 s") as failed:
            caller.predict(None, url=drip.url, api_name="/image_search")
        assert drip.url in str(failed.value) and "paste an image URL" in str(failed.value)
        assert drip.client_left.wait(WAIT_S)
    assert caller.predict(api_name="/ping") == "ok"


@contextlib.contextmanager
def answering(raw: bytes) -> Iterator[str]:
    """A server that reads the request and answers `raw` as is, then hangs up."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            request = b""
            while b"\r\n\r\n" not in request and (chunk := self.request.recv(4096)):
                request += chunk
            self.request.sendall(raw)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/x.jpg"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT HTTP AT ALL\r\n\r\n",  # BadStatusLine
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a little",  # IncompleteRead
    ],
    ids=["bad status line", "incomplete body"],
)
def test_a_server_breaking_http_is_an_image_load_error(raw):
    with answering(raw) as url, pytest.raises(ImageLoadError, match="not valid HTTP") as failed:
        fetch_http(url, max_bytes=1 << 20, retries=0)
    assert url in str(failed.value)
