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
import urllib.request
from typing import Any

from fashion_clip.errors import ImageLoadError

HTTP_TIMEOUT_S = 15.0
HTTP_RETRIES = 2  # extra attempts after a transient failure (timeout, 5xx, connection reset)
PRIVATE_URLS_SETTING = "FASHION_CLIP_ALLOW_PRIVATE_URLS"
_USER_AGENT = "fashion-clip-space/0.1 (+https://github.com/)"
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


class _ConnectsToPublicOnly:
    """Mixed into http.client's connections: they open their socket through
    `_create_connection`, which they set per instance."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_public


class _PublicHTTPConnection(_ConnectsToPublicOnly, http.client.HTTPConnection):
    pass


class _PublicHTTPSConnection(_ConnectsToPublicOnly, http.client.HTTPSConnection):
    pass


class _PublicHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_PublicHTTPConnection, req)


class _PublicHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_PublicHTTPSConnection, req, context=self._context)


class _WebOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects within http(s) only: urllib would also follow one to ftp://, unchecked."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(
                newurl, code, f"redirected to {newurl[:100]!r}, not a web address", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@functools.cache
def _public_opener() -> urllib.request.OpenerDirector:
    # No proxies from the environment: through a proxy the address checked would be the
    # proxy's, not the one fetched.
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _PublicHTTPHandler,
        _PublicHTTPSHandler,
        _WebOnlyRedirects,
    )


def fetch_http(
    url: str,
    *,
    max_bytes: int,
    timeout: float = HTTP_TIMEOUT_S,
    retries: int = HTTP_RETRIES,
    public_only: bool = False,
) -> bytes:
    """The body behind `url`, at most `max_bytes`; transient failures retried with backoff.

    `public_only`: refuse hosts that are not on the public internet (see the module's doc).
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    open_url = _public_opener().open if public_only else urllib.request.urlopen
    last_problem = "unreachable"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.5 * 2**attempt, 4.0))  # back off before retrying a transient failure
        try:
            with open_url(request, timeout=timeout) as response:
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise ImageLoadError(url, f"response is {declared} bytes, over the cap")
                data = response.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ImageLoadError(url, f"response is over the {max_bytes}-byte cap")
            return data
        except _NotPublic as exc:
            where = exc.host if exc.host == exc.address else f"{exc.host} ({exc.address})"
            raise ImageLoadError(
                url,
                f"{where} is a private or local address, and only public web addresses are "
                f"fetched here ({PRIVATE_URLS_SETTING}=1 allows them on a private deployment)",
            ) from None
        except urllib.error.HTTPError as exc:
            last_problem = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in _TRANSIENT_HTTP:
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last_problem = f"unreachable ({reason})"
    raise ImageLoadError(url, last_problem)
