"""Who an HTTP request comes from: its token and its client address.

Every HTTP adapter (and the WebSocket endpoint) asks `identify`, which hands
the token to the Manager; the policy itself is the core's (roomchat.core.identity).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from roomchat.core import Manager
from roomchat.core.identity import Identity

COOKIE = "roomchat_token"
QUERY = "access_token"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def bearer(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (HTTP header or gRPC metadata)."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_of(scope: Mapping[str, Any]) -> str | None:
    """`Authorization: Bearer <token>`, else the `roomchat_token` cookie, else `?access_token=`."""
    cookie_header = None
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            token = bearer(value.decode("latin-1"))
            if token is not None:
                return token
        elif name == b"cookie":
            cookie_header = value.decode("latin-1")
    if cookie_header:
        try:
            morsel = SimpleCookie(cookie_header).get(COOKIE)
        except CookieError:
            morsel = None
        if morsel is not None and morsel.value:
            return str(morsel.value)
    query = scope.get("query_string", b"")
    if QUERY.encode() in query:
        for name, value in parse_qsl(query.decode("latin-1"), max_num_fields=64):
            if name == QUERY and value:
                return str(value)
    return None


@lru_cache(maxsize=32)
def trusted_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """`--trust-proxy` values as networks; ValueError names a bad one."""
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_trusted(address: str, networks: Sequence[Network]) -> bool:
    """Whether `address` is in one of the trusted proxies' networks."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(scope: Mapping[str, Any], trust_proxy: Iterable[str] = ()) -> str | None:
    """The client's IP: the peer's, or, when the peer is a trusted proxy, the
    right-most address of `X-Forwarded-For` that is not itself a trusted proxy."""
    peer = scope.get("client")
    address = str(peer[0]) if peer else None
    networks = trusted_networks(tuple(trust_proxy))
    if address is None or not networks or not is_trusted(address, networks):
        return address
    forwarded: list[str] = [
        value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"
    ]
    hops = [hop.strip() for line in forwarded for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop
        address = hop
    return address


def identify(manager: Manager, scope: Mapping[str, Any], trust_proxy: Iterable[str] = ()) -> Identity:
    """The request's Identity; Unauthenticated for a bad or expired token."""
    return manager.identify(token_of(scope), client_address(scope, trust_proxy))
