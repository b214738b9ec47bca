"""Browser safety for every HTTP adapter (contract: Browser safety).

One ASGI middleware, `BrowserSafety`, that each adapter's app puts in front of
its routes:

- a request a browser sends from another origin that could change something
  (any method but GET, HEAD and OPTIONS, and a WebSocket handshake) is 403
  unless `--cors-origin` allows that origin: forms and `text/plain` JSON need
  no preflight, so without this any page could post as its visitor;
- CORS headers and preflight answers only for the allowed origins;
- every HTML response gets the strict Content-Security-Policy, and every
  answer to a read `nosniff` and `no-referrer`.

A request without `Origin` (curl, scripts, the Go clients) is never refused.
Event streams and posts are passed through untouched (their `send` is not
wrapped): the SSE fast path, which writes beneath ASGI, costs nothing more per
message, and a post only the look-up of two headers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.types import Message, Receive, Scope, Send

from roomchat.adapters import AdapterSettings
from roomchat.adapters.http.errors import error
from roomchat.adapters.http.identity import trusted_networks

App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Scripts, styles, images, fetches and streams from this origin only; no
# inline script or style, no plugins, no framing, no <base>, forms only here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_EVERY_RESPONSE = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_HTML_RESPONSE = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY")]
_READS = frozenset({"GET", "HEAD"})
ALLOWED_METHODS = "GET, POST, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
EXPOSED_HEADERS = "Retry-After, Idempotent-Replayed, WWW-Authenticate"
PREFLIGHT_MAX_AGE = "600"  # seconds a browser may cache a preflight answer
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def origin(value: str) -> str:
    """A `--cors-origin` value as browsers send `Origin`: `scheme://host[:port]`, lower case,
    no default port. ValueError says what is wrong with it."""
    parts = urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"--cors-origin {value!r} must be an origin such as https://chat.example.com")
    return _without_default_port(parts.scheme, parts.netloc.lower())


def _without_default_port(scheme: str, host: str) -> str:
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and host.endswith(":" + default):
        host = host[: -len(default) - 1]
    return f"{scheme}://{host}"


class CorsOrigins:
    """The origins whose pages may post and delete: one per app, changed in place by a reload."""

    __slots__ = ("allowed",)

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.allowed = frozenset(origin(value) for value in values)

    def replace(self, values: Iterable[str]) -> None:
        """Allow these instead (ValueError for one that is not an origin, and nothing changes)."""
        self.allowed = frozenset(origin(value) for value in values)


class BrowserSafety:
    """The ASGI middleware; `streams` are the path prefixes of event streams."""

    def __init__(
        self,
        app: App,
        cors: CorsOrigins | None = None,
        trust_proxy: Iterable[str] = (),
        streams: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.cors = cors or CorsOrigins()
        self.trust_proxy = tuple(trust_proxy)
        self.streams = streams

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """A plain function, not a coroutine: a passed-through stream keeps no frame of ours alive."""
        if scope["type"] not in ("http", "websocket"):
            return self.app(scope, receive, send)
        seen = _Headers(scope)
        allowed = seen.origin is not None and seen.origin in self.cors.allowed
        if scope["type"] == "websocket":
            if not allowed and self._cross_origin(scope, seen):
                return _refuse_websocket(send)
            return self.app(scope, receive, send)
        method = scope["method"]
        cors = seen.origin if allowed else None
        if method in _READS:
            if cors is None and scope["path"].startswith(self.streams):
                return self.app(scope, receive, send)  # the fast path: nothing between the stream and uvicorn
            return self.app(scope, receive, _with_headers(send, cors))  # a page, perhaps: the headers
        if method == "OPTIONS" and seen.preflight:
            if cors is not None:
                return _preflight(cors, send)
            refused = f"cross-origin requests from {seen.origin or 'another origin'} are not allowed"
            return _refuse(scope, receive, send, f"{refused}: allow that origin with --cors-origin")
        if cors is None and method != "OPTIONS" and self._cross_origin(scope, seen):
            what = f"cross-origin {method} from {seen.origin or 'another site'} refused"
            return _refuse(scope, receive, send, f"{what}: allow that origin with --cors-origin")
        if cors is not None:
            return self.app(scope, receive, _with_headers(send, cors))
        # A write answers JSON or a redirect, never a page: posts, the hot path, pass straight through.
        return self.app(scope, receive, send)

    def _cross_origin(self, scope: Scope, seen: _Headers) -> bool:
        """Whether a browser sent this from another origin: by `Sec-Fetch-Site`, else by `Origin`."""
        if seen.fetch_site == "cross-site":
            return True
        if seen.fetch_site == "same-origin":
            return False  # the browser knows, even behind a proxy that changes the scheme or host
        if seen.origin is None:
            return False  # not sent by a browser, or a browser's GET-like navigation
        return seen.origin != self._own_origin(scope, seen)

    def _own_origin(self, scope: Scope, seen: _Headers) -> str:
        """This server's origin as the browser sees it: `Host`, and the scheme, which a
        `--trust-proxy` address may name in `X-Forwarded-Proto` (TLS ended at the proxy)."""
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        peer = scope.get("client")
        if seen.forwarded_proto in _DEFAULT_PORTS and peer and self._from_proxy(peer[0]):
            scheme = seen.forwarded_proto
        return _without_default_port(scheme, seen.host)

    def _from_proxy(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted_networks(self.trust_proxy))


class _Headers:
    """The few request headers browser safety reads (a dict built in C: this runs on every request)."""

    __slots__ = ("_headers", "fetch_site", "origin", "preflight")

    def __init__(self, scope: Scope) -> None:
        self._headers: dict[bytes, bytes] = dict(scope["headers"])
        self.origin = self._get(b"origin")
        self.fetch_site = self._get(b"sec-fetch-site")
        self.preflight = b"access-control-request-method" in self._headers

    def _get(self, name: bytes) -> str | None:
        value = self._headers.get(name)
        return None if value is None else value.decode("latin-1").strip().lower()

    @property
    def host(self) -> str:
        return self._get(b"host") or ""

    @property
    def forwarded_proto(self) -> str | None:
        proto = self._get(b"x-forwarded-proto")
        return None if proto is None else proto.split(",")[0].strip()


def _with_headers(send: Send, cors_origin: str | None) -> Send:
    """`send` adding the security headers (and CORS ones for an allowed origin) to the response."""
    added = _EVERY_RESPONSE if cors_origin is None else _EVERY_RESPONSE + _cors(cors_origin)

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", ())
            page = any(name == b"content-type" and value.startswith(b"text/html") for name, value in headers)
            message["headers"] = [*headers, *added, *_HTML_RESPONSE] if page else [*headers, *added]
        await send(message)

    return sending


def _cors(allowed_origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", allowed_origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
        (b"vary", b"Origin"),
    ]


async def _preflight(allowed_origin: str, send: Send) -> None:
    headers = [
        *_cors(allowed_origin)[:2],
        (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
        (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
        (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
        (b"vary", b"Origin"),
        *_EVERY_RESPONSE,
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    """403 before the body is read: nothing of it is stored."""
    await error(403, message)(scope, receive, _with_headers(send, None))


async def _refuse_websocket(send: Send) -> None:
    """Closing before accepting makes the server answer the handshake with 403."""
    await send({"type": "websocket.close", "code": 1008})


def browser_safety(settings: AdapterSettings, streams: tuple[str, ...], cors: CorsOrigins) -> Middleware:
    """`BrowserSafety` as a Starlette app's middleware, set from the command line's options.

    The options are checked now (ValueError): Starlette builds its middleware on the first request.
    `cors` is the app's to keep: a reload replaces its origins.
    """
    trusted_networks(settings.trust_proxy)
    return Middleware(BrowserSafety, cors=cors, trust_proxy=settings.trust_proxy, streams=streams)
