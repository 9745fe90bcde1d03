"""Fetching images over HTTP: the public-only mode that guards the app's image URL box.

Real servers on loopback addresses. Which addresses count as public is the one thing a test
changes (`is_public_address`, patched to trust 127.0.0.1 alone), to stand a "public" host
that redirects to a private one on a machine with no public address of its own.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from fashion_clip.errors import ImageLoadError
from fashion_clip.media import web
from fashion_clip.media.web import fetch_http, is_public_address

BODY = b"\xff\xd8 not really a jpeg, bytes are all fetching needs"


@dataclass
class Server:
    base: str
    paths: list[str] = field(default_factory=list)  # every request it was sent


def _serve(host: str, redirect_to: str | None = None) -> tuple[Server, http.server.HTTPServer]:
    server_record = Server("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_record.paths.append(self.path)
            if redirect_to:
                self.send_response(302)
                self.send_header("Location", redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
    server_record.base = f"http://{host}:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return server_record, httpd


@pytest.fixture
def serve() -> Iterator:
    started = []

    def start(host: str = "127.0.0.1", redirect_to: str | None = None) -> Server:
        record, httpd = _serve(host, redirect_to)
        started.append(httpd)
        return record

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def no_backoff(monkeypatch) -> list[float]:
    """Records the waits before retries instead of sleeping them."""
    waits: list[float] = []
    monkeypatch.setattr(web.time, "sleep", waits.append)
    return waits


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_addresses(address):
    assert is_public_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "0.0.0.0", "10.1.2.3", "172.16.5.4", "172.31.255.255",
        "192.168.1.1", "169.254.169.254",  # the cloud metadata service
        "100.64.0.1",  # carrier-grade NAT, shared
        "192.0.2.1", "198.18.0.1", "240.0.0.1", "255.255.255.255", "224.0.0.1",
        "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254",  # IPv4 in IPv6 is judged as IPv4
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "localhost", "not an address", "",
    ],
)  # fmt: skip
def test_private_local_and_odd_addresses(address):
    assert not is_public_address(address)


def test_a_loopback_url_is_refused_before_any_request(serve, no_backoff):
    server = serve()
    with pytest.raises(ImageLoadError) as refused:
        fetch_http(server.base + "/a.jpg", max_bytes=1000, public_only=True)
    message = str(refused.value)
    assert "127.0.0.1 is a private or local address" in message
    assert "only public web addresses" in message and web.PRIVATE_URLS_SETTING in message
    assert server.paths == [] and no_backoff == []  # never connected, never retried
    # The same URL without the guard (catalogs, the Python API) is fetched as before.
    assert fetch_http(server.base + "/a.jpg", max_bytes=1000) == BODY
    assert server.paths == ["/a.jpg"]


def test_an_https_url_to_a_loopback_host_is_refused_before_connecting(no_backoff):
    import socket

    with socket.socket() as listener:  # no TLS needed: nothing may reach it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        address = f"https://127.0.0.1:{listener.getsockname()[1]}/a.jpg"
        with pytest.raises(ImageLoadError, match=r"127\.0\.0\.1 is a private or local"):
            fetch_http(address, max_bytes=1000, public_only=True)
        with pytest.raises(TimeoutError):
            listener.accept()  # never connected to
    assert no_backoff == []


def test_a_name_is_judged_by_the_address_it_resolves_to(serve):
    server = serve()
    named = server.base.replace("127.0.0.1", "localhost")
    with pytest.raises(ImageLoadError, match=r"localhost \((127\.0\.0\.1|::1)\) is a private"):
        fetch_http(named + "/a.jpg", max_bytes=1000, public_only=True)
    assert server.paths == []


def test_a_public_host_redirecting_to_a_private_one_is_refused(serve, monkeypatch, no_backoff):
    monkeypatch.setattr(web, "is_public_address", lambda address: address == "127.0.0.1")
    inside = serve("127.0.0.2")
    outside = serve("127.0.0.1", redirect_to=inside.base + "/secret")
    plain = serve("127.0.0.1")
    # The patched rule lets a "public" host through, so the refusal below is the redirect's.
    assert fetch_http(plain.base + "/a.jpg", max_bytes=1000, public_only=True) == BODY
    with pytest.raises(ImageLoadError, match=r"127\.0\.0\.2 is a private or local address"):
        fetch_http(outside.base + "/a.jpg", max_bytes=1000, public_only=True)
    assert outside.paths == ["/a.jpg"] and inside.paths == [] and no_backoff == []


def test_a_redirect_off_the_web_is_refused(serve, monkeypatch):
    monkeypatch.setattr(web, "is_public_address", lambda address: address == "127.0.0.1")
    outside = serve("127.0.0.1", redirect_to="ftp://127.0.0.2/secret")
    with pytest.raises(ImageLoadError, match=r"HTTP 302 redirected to 'ftp://127\.0\.0\.2/secret'"):
        fetch_http(outside.base + "/a.jpg", max_bytes=1000, public_only=True)


@pytest.mark.parametrize("public_only", [False, True])
def test_a_url_with_a_login_is_refused_without_showing_its_password(serve, public_only):
    server = serve()
    host = server.base.removeprefix("http://")
    for login in ("bob:s3cret-pw", "ghp_s3cretToken"):  # a token is often the user name
        with pytest.raises(ImageLoadError) as caught:
            fetch_http(f"http://{login}@{host}/x.jpg", max_bytes=1000, public_only=public_only)
        message = str(caught.value)
        assert "user name or password is not fetched" in message and f"***@{host}" in message
        assert "s3cret" not in message and "nonnumeric port" not in message
    assert server.paths == []  # nothing sent: not the password, not the request
