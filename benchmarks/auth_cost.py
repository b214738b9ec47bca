"""What `--auth jwt` adds to a post, in-process: identify + submit on the memory backend.

    .venv/bin/python benchmarks/auth_cost.py [--posts 20000] [--runs 5]

Measures this process's CPU time (not wall time, so other load on the machine
matters less) per post for: `--auth none`; `--auth jwt` with one token reused
(what a client's next request costs: the verified token is remembered); and a
fresh verification per post for each key type (what a client's first request
costs). Prints the median of `--runs` runs, in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.core.identity import Authenticator, OpenAuthenticator
from roomchat.tokens import JwtAuthenticator

SECRET = "benchmark-secret-of-at-least-32-bytes"


async def _posts(auth: Authenticator, token: Callable[[int], str | None], posts: int) -> float:
    service = build_service(ServiceSettings(auth=auth))
    await service.start()
    tokens = [token(i) for i in range(posts)]  # made before the clock starts
    started = time.process_time()
    for value in tokens:
        who = service.identify(value, "127.0.0.1")
        await service.submit("bench", None if value else "ann", "hello", identity=who)
    elapsed = time.process_time() - started
    await service.close()
    return elapsed / posts * 1e6


def _pem(private: object) -> str:
    public = private.public_key()  # type: ignore[attr-defined]
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return str(public.public_bytes(serialization.Encoding.PEM, spki).decode())


def _cases(posts: int) -> dict[str, tuple[Authenticator, Callable[[int], str | None]]]:
    exp = int(time.time()) + 3600
    one = jwt.encode({"sub": "ann", "exp": exp}, SECRET, "HS256")
    cases: dict[str, tuple[Authenticator, Callable[[int], str | None]]] = {
        "none": (OpenAuthenticator(), lambda i: None),
        "jwt, token reused (HS256)": (JwtAuthenticator(SECRET), lambda i: one),
        "jwt, new token each post (HS256)": (
            JwtAuthenticator(SECRET),
            lambda i: jwt.encode({"sub": "ann", "exp": exp, "n": i}, SECRET, "HS256"),
        ),
    }
    for name, private, algorithm in (
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        ("ES256", ec.generate_private_key(ec.SECP256R1()), "ES256"),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ):
        cases[f"jwt, new token each post ({name})"] = (
            JwtAuthenticator(_pem(private)),
            lambda i, p=private, a=algorithm: jwt.encode({"sub": "ann", "exp": exp, "n": i}, p, a),
        )
    return cases


async def main(posts: int, runs: int) -> None:
    results: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, (auth, token) in _cases(posts).items():
            count = posts if "each post" not in name or "HS256" in name else posts // 10
            results.setdefault(name, []).append(await _posts(auth, token, count))
    base = statistics.median(results["none"])
    width = max(len(name) for name in results)
    print(f"{'case':<{width}}  µs CPU per post  (+ over none)")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"{name:<{width}}  {value:8.1f}        {value - base:+6.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.posts, options.runs))
