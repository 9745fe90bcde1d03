"""HTTP(S) fetching of images: a timeout, a size cap, retries, and a public-only mode.

The public-only mode is for URLs typed by anyone on the internet (the app's image URL box):
without it, a public Space would fetch `http://localhost:…`, the cloud's metadata address or
any host of the private network it runs in, and its error messages would tell the caller
which ports answer (server-side request forgery). The check is made on the addresses each
connection is about to use, after the name is resolved: so a redirect to a private host and
a name that resolves to one (DNS rebinding included) are refused like a private address
typed as is. Catalog images (the indexer, the Python API) are fetched without it: their
owner may keep them on a private host.

Written on urllib rather than taken from safehttpx (Gradio's own guard, for its uploads):
that one is async-only, has no size cap, and asks dns.google when the local resolver fails.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from fashion_clip.errors import ImageLoadError
from fashion_clip.media.deadline import Deadline, current_deadline, deadline_for_this_thread
from fashion_clip.redact import HIDDEN

HTTP_TIMEOUT_S = 15.0
HTTP_RETRIES = 2  # extra attempts after a transient failure (timeout, 5xx, connection reset)
PRIVATE_URLS_SETTING = "FASHION_CLIP_ALLOW_PRIVATE_URLS"
_USER_AGENT = "fashion-clip-space/0.1 (+https://github.com/)"
# What a server says identifies a version of a resource, and the conditional request header
# that asks "has it changed since?" with each.
VALIDATORS = ("ETag", "Last-Modified")
_CONDITIONS = {"ETag": "If-None-Match", "Last-Modified": "If-Modified-Since"}
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
# NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits; a gateway turns it into that.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, link-local,
    shared, reserved, multicast or unspecified), IPv4 carried in IPv6 judged as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (`%eth0`) aside
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    return ip.is_global and not ip.is_multicast


class _NotPublic(Exception):
    """Raised while connecting (not an OSError, so urllib neither wraps nor retries it)."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(host, address)
        self.host, self.address = host, address


def _connect_public(
    address: tuple[str, int], timeout: Any = None, source_address: Any = None
) -> socket.socket:
    """`socket.create_connection`, refusing a host any of whose addresses is not public."""
    host, port = address
    found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    for *_, sockaddr in found:
        if not is_public_address(sockaddr[0]):
            raise _NotPublic(host, sockaddr[0])
    last_error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, sockaddr in found:
        sock = socket.socket(family, kind, proto)
        try:
            if isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)  # the address just checked: no second lookup to rebind
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error


class _WatchedConnection:
    """Mixed into http.client's connections, which open their socket through
    `_create_connection` (set per instance): public-only where asked, and each socket handed
    to the running fetch's deadline, if it has one."""

    public_only = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = self._open_socket

    def _open_socket(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        connect = _connect_public if self.public_only else socket.create_connection
        sock = connect(address, timeout, source_address)
        deadline = current_deadline()
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _HTTPConnection(_WatchedConnection, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, http.client.HTTPSConnection):
    pass


class _PublicHTTPConnection(_WatchedConnection, http.client.HTTPConnection):
    public_only = True


class _PublicHTTPSConnection(_WatchedConnection, http.client.HTTPSConnection):
    public_only = True


class _HTTPHandler(urllib.request.HTTPHandler):
    connection = _HTTPConnection

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    connection = _HTTPSConnection

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.connection, req, context=self._context)


class _PublicHTTPHandler(_HTTPHandler):
    connection = _PublicHTTPConnection


class _PublicHTTPSHandler(_HTTPSHandler):
    connection = _PublicHTTPSConnection


class _WebOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects within http(s) only: urllib would also follow one to ftp://, unchecked."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(
                newurl, code, f"redirected to {newurl[:100]!r}, not a web address", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@functools.cache
def _opener(public_only: bool) -> urllib.request.OpenerDirector:
    if public_only:
        # No proxies from the environment: through a proxy the address checked would be the
        # proxy's, not the one fetched.
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            _PublicHTTPHandler,
            _PublicHTTPSHandler,
            _WebOnlyRedirects,
        )
    return urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)


def fetch_http(
    url: str,
    *,
    max_bytes: int,
    timeout: float = HTTP_TIMEOUT_S,
    retries: int = HTTP_RETRIES,
    public_only: bool = False,
    deadline: float | None = None,
) -> bytes:
    """The body behind `url`, at most `max_bytes`; transient failures retried with backoff.

    `timeout`: seconds one connection or read may wait. `deadline`: seconds the whole fetch
    may take, connecting, redirects, the body and retries included (None: no limit).
    `public_only`: refuse hosts that are not on the public internet (see the module's doc).
    """
    data, _ = _fetch(url, max_bytes, timeout, retries, public_only, deadline, {})
    if data is None:  # a 304 to a request that asked no question
        raise ImageLoadError(url, "HTTP 304 Not Modified to an unconditional request")
    return data


def fetch_http_if_changed(
    url: str,
    validators: Mapping[str, str] | None,
    *,
    max_bytes: int,
    timeout: float = HTTP_TIMEOUT_S,
    retries: int = HTTP_RETRIES,
) -> tuple[bytes | None, dict[str, str]]:
    """`(body, validators)` of `url`, or `(None, validators)` when the server answers that
    the version `validators` describe (`ETag`, `Last-Modified`, as a last fetch returned
    them) is still current: a conditional GET, answered 304 Not Modified with no body."""
    given = dict(validators or {})
    ask = {_CONDITIONS[name]: value for name, value in given.items() if name in _CONDITIONS}
    data, found = _fetch(url, max_bytes, timeout, retries, False, None, ask)
    return (None, given) if data is None else (data, found)


def _fetch(
    url: str,
    max_bytes: int,
    timeout: float,
    retries: int,
    public_only: bool,
    deadline: float | None,
    headers: dict[str, str],
) -> tuple[bytes | None, dict[str, str]]:
    _refuse_credentials(url)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **headers})
    except ValueError as exc:  # `http://[::1/x.jpg`: urllib cannot even split it
        raise ImageLoadError(url, f"not a valid web address ({exc})") from None
    with deadline_for_this_thread(deadline) as limit:
        return _fetch_with_retries(request, url, max_bytes, timeout, retries, public_only, limit)


def _refuse_credentials(url: str) -> None:
    """Refuse `https://user:password@host/…`. The address is kept with the product and
    handed to the browsers that show its picture, so its password would be too (and urllib,
    which sends no login from a URL, read `password@host` as a port: "nonnumeric port")."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return  # refused as not a valid web address, by the request
    if "@" in parts.netloc:
        # The user name hidden too: a token is often given as one (`https://TOKEN@host`).
        host = parts.netloc.rpartition("@")[2]
        raise ImageLoadError(
            f"{parts.scheme}://{HIDDEN}@{host}/…",
            "a web address with a user name or password is not fetched: the password would "
            "be kept and shown with it (a product's picture address goes to every visitor's "
            "browser); use an address without a login, or S3 with the indexer's credentials",
        )


def _fetch_with_retries(
    request: urllib.request.Request,
    url: str,
    max_bytes: int,
    timeout: float,
    retries: int,
    public_only: bool,
    limit: Deadline | None,
) -> tuple[bytes | None, dict[str, str]]:
    """(body, validators), or (None, {}) for a 304 Not Modified."""
    open_url = _opener(public_only).open
    last_problem = "unreachable"
    for attempt in range(retries + 1):
        if attempt:
            pause = min(0.5 * 2**attempt, 4.0)  # back off before retrying a transient failure
            if limit is not None and pause >= limit.remaining():
                break
            time.sleep(pause)
        wait = timeout if limit is None else min(timeout, limit.remaining())
        try:
            with open_url(request, timeout=wait) as response:
                data = _read_body(response, url, max_bytes, limit)
                found = {
                    name: response.headers[name] for name in VALIDATORS if response.headers[name]
                }
            if data is None:  # cut short by the deadline
                break
            return data, found
        except _NotPublic as exc:
            where = exc.host if exc.host == exc.address else f"{exc.host} ({exc.address})"
            raise ImageLoadError(
                url,
                f"{where} is a private or local address, and only public web addresses are "
                f"fetched here ({PRIVATE_URLS_SETTING}=1 allows them on a private deployment)",
            ) from None
        except urllib.error.HTTPError as exc:
            if exc.code == 304:  # the version asked about is still current: no body
                return None, {}
            last_problem = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in _TRANSIENT_HTTP:
                break
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last_problem = f"unreachable ({reason})"
        except (http.client.InvalidURL, ValueError) as exc:
            # `http://host:abc/` (a port that is no number), a host name the IDNA codec
            # refuses (a label over 63 characters), control characters in the path.
            raise ImageLoadError(url, f"not a valid web address ({exc})") from None
        except http.client.HTTPException as exc:  # BadStatusLine, IncompleteRead: not OSErrors
            last_problem = f"the server's answer is not valid HTTP ({type(exc).__name__})"
        if limit is not None and (limit.expired or limit.remaining() <= 0):
            break
    if limit is not None and (limit.expired or limit.remaining() <= 0):
        last_problem = f"no complete answer within {limit.seconds:g} s"
    raise ImageLoadError(url, last_problem)


def _read_body(
    response: http.client.HTTPResponse, url: str, max_bytes: int, limit: Deadline | None
) -> bytes | None:
    """The response's body, at most `max_bytes`; None when the deadline cut it short."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ImageLoadError(url, f"response is {declared} bytes, over the cap")
    data = response.read(max_bytes + 1)
    if limit is not None and limit.expired:
        return None
    if declared and declared.isdigit() and len(data) < int(declared):
        # read(n) returns what came before the server hung up, without a word
        raise http.client.IncompleteRead(data, int(declared) - len(data))
    if len(data) > max_bytes:
        raise ImageLoadError(url, f"response is over the {max_bytes}-byte cap")
    return data
