"""JSON Web Tokens for `--auth jwt` (contract: Identity and permissions), with PyJWT.

`JwtAuthenticator` verifies a token into the core's `Identity`; `mint` makes
one for `roomchat token`. The algorithm comes from the key (an HS256 secret,
or a PEM public key: RSA -> RS256, EC P-256 -> ES256, Ed25519 -> EdDSA), never
from the token, so `alg: none` and algorithm confusion are refused.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from roomchat.core import ValidationError, validation
from roomchat.core.errors import Unauthenticated
from roomchat.core.identity import Identity, room_patterns
from roomchat.jwks import JwksKeys

LEEWAY = 30.0  # seconds of clock skew allowed on exp and nbf
MIN_SECRET = 32  # bytes: shorter HS256 secrets can be brute-forced offline
_CACHE = 4096  # verified tokens kept, so a client's next request costs a dict lookup
_CACHED_TOKEN = 4096  # characters: a longer token is verified every time, so the cache stays ~16 MiB at most


def load_key(value: str) -> tuple[Any, str]:
    """`--jwt-key`: a PEM public key file, or the HS256 secret itself. ValueError says what is wrong."""
    path = Path(value)
    if "-----BEGIN" not in value and path.is_file():
        value = path.read_text()
    if "-----BEGIN" in value:
        try:
            key = load_pem_public_key(value.encode())
        except ValueError as exc:
            raise ValueError(f"--jwt-key is not a PEM public key: {exc}") from None
        if isinstance(key, rsa.RSAPublicKey):
            return key, "RS256"
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
            return key, "ES256"
        if isinstance(key, ed25519.Ed25519PublicKey):
            return key, "EdDSA"
        raise ValueError("--jwt-key must be an RSA, EC P-256 or Ed25519 public key")
    if len(value.encode()) < MIN_SECRET:
        raise ValueError(f"--jwt-key: an HS256 secret must be at least {MIN_SECRET} bytes")
    return value.encode(), "HS256"


class JwtAuthenticator:
    """`--auth jwt`: a token's claims become the caller's Identity."""

    def __init__(
        self,
        key: str | None,
        *,
        jwks: JwksKeys | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        anonymous_read: bool = False,
        allow_no_exp: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (key is None) == (jwks is None):
            raise ValueError("--auth jwt needs --jwt-key SECRET|FILE or --jwt-jwks URL, not both")
        self._key: Any = None
        self._algorithm = ""
        if key is not None:
            self._key, self._algorithm = load_key(key)
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._anonymous_read = anonymous_read
        self._clock = clock
        # A token without `exp` would be good for ever, however it leaked: refused unless asked.
        self._required = ["sub"] if allow_no_exp else ["sub", "exp"]
        self._verified: OrderedDict[str, Identity] = OrderedDict()

    def identify(self, token: str | None, address: str | None = None) -> Identity:
        if token is None:
            return Identity(address=address, anonymous_read=self._anonymous_read)
        identity = self._verified.get(token)
        if identity is None:
            identity = self._verify(token)
            if len(token) <= _CACHED_TOKEN:
                self._verified[token] = identity
                if len(self._verified) > _CACHE:
                    self._verified.popitem(last=False)
        elif identity.expires is not None and identity.expires <= self._clock():
            del self._verified[token]
            raise Unauthenticated("the token has expired")
        return replace(identity, address=address) if address is not None else identity

    def _verify(self, token: str) -> Identity:
        key, algorithm = self._jwks.key_for(token) if self._jwks else (self._key, self._algorithm)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY,
                options={"require": self._required, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        try:
            sub = validation.user_id(claims["sub"])
        except ValidationError:
            raise Unauthenticated("invalid token: sub must be a valid userId") from None
        rooms, read = claims.get("rooms"), claims.get("read", [])
        try:
            allowed = None if rooms is None else room_patterns(_strings("rooms", rooms))
            readable = room_patterns(_strings("read", read))
        except ValueError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        exp = claims.get("exp")
        return Identity(
            user_id=sub,
            admin=claims.get("admin") is True,
            rooms=allowed,
            read=readable,
            all_rooms=rooms is None,
            anonymous_read=self._anonymous_read,
            expires=float(exp) + LEEWAY if isinstance(exp, int | float) else None,
        )


def _strings(claim: str, value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValueError(f"{claim} must be a list of room patterns")


def mint(
    key: str,
    sub: str,
    *,
    rooms: Sequence[str] | None = None,
    read: Sequence[str] = (),
    admin: bool = False,
    ttl: float = 3600.0,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """A token signed with the HS256 secret `key` (what `roomchat token` prints)."""
    secret, algorithm = load_key(key)
    if algorithm != "HS256":
        raise ValueError("roomchat token signs with an HS256 secret; sign with your private key elsewhere")
    validation.user_id(sub)
    room_patterns([*(rooms or ()), *read])  # a bad pattern is refused now, not by the server later
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + int(ttl)}
    if rooms is not None:
        claims["rooms"] = list(rooms)
    if read:
        claims["read"] = list(read)
    if admin:
        claims["admin"] = True
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=algorithm)
