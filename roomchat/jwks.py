"""`--jwt-jwks URL`: verification keys from an identity provider's JWKS, with PyJWT's PyJWKClient.

The key set is fetched at start-up (an unreachable URL stops the server with one
line) and kept. A token whose `kid` is not in it makes one fetch, at most once a
minute (`REFRESH`), so a provider's key rotation is picked up and a stream of
made-up `kid`s costs the provider nothing. A fetch blocks the process for at
most `TIMEOUT` seconds; it happens at most once a minute.
The algorithm comes from the key (its `alg`, or its type), never from the token;
symmetric (`oct`) keys are ignored: a published key set holds public keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from roomchat.core.errors import Unauthenticated

REFRESH = 60.0  # seconds: the least time between two fetches
TIMEOUT = 2.0  # seconds a fetch may take
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
log = logging.getLogger("roomchat.jwks")


class JwksKeys:
    """The provider's signing keys by `kid`."""

    def __init__(self, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=TIMEOUT)
        self._clock = clock
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched = clock()
        try:
            self._keys = self._fetch()
        except jwt.PyJWKClientError as exc:
            raise ValueError(f"--jwt-jwks {url}: {exc}") from None

    def key_for(self, token: str) -> tuple[Any, str]:
        """The key and algorithm that verify `token`; Unauthenticated for a `kid` it cannot find."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        key = self._keys.get(kid)
        if key is None and self._clock() - self._fetched >= REFRESH:
            self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("invalid token: its kid is not among the identity provider's keys")
        return key.key, key.algorithm_name

    def _refresh(self) -> None:
        self._fetched = self._clock()
        try:
            self._keys = self._fetch()
        except jwt.PyJWKClientError as exc:  # keep the keys we have
            log.warning("cannot refresh the keys from --jwt-jwks %s: %s", self._url, exc)

    def _fetch(self) -> dict[str | None, PyJWK]:
        found = self._client.get_jwk_set(refresh=True).keys
        keys = {key.key_id: key for key in found if key.algorithm_name in _ASYMMETRIC}
        log.info("--jwt-jwks: %d signing keys (%s)", len(keys), ", ".join(str(kid) for kid in keys))
        return keys
