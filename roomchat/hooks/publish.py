"""The publish hook over HTTP (contract: Publish hook): POST the post, signed, and
wait up to the timeout for `{"allow": ...}`."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from roomchat.core.errors import HookUnavailable
from roomchat.core.ports import Verdict
from roomchat.hooks.signing import SIGNATURE_HEADER, signature

DEFAULT_TIMEOUT = 2.0
MAX_CONNECTIONS = 64  # to the hook, at once; posts past it wait for one (within the timeout)
MAX_ANSWER = 64 * 1024

log = logging.getLogger("roomchat.hooks")


class HttpPublishHook:
    """`PublishHook` for `--publish-hook URL`: one pooled HTTP client, kept-alive connections."""

    def __init__(
        self, url: str, secret: str, timeout: float = DEFAULT_TIMEOUT, fail_open: bool = False
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--publish-hook takes an http:// or https:// URL, got {url!r}")
        if not secret:
            raise ValueError("--publish-hook needs --webhook-secret")
        if not timeout > 0:
            raise ValueError("--publish-hook-timeout must be more than 0 seconds")
        self.url = url
        self._secret = secret
        self._timeout = timeout
        self._fail_open = fail_open
        self._client: httpx.AsyncClient | None = None  # made in the loop that uses it

    async def check(self, room_id: str, user_id: str, text: str, target: str | None = None) -> Verdict:
        asked: dict[str, str] = {"roomId": room_id, "userId": user_id, "text": text}
        if target is not None:
            asked["target"] = target
        body = json.dumps(asked, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(self._timeout):
                signed = {"content-type": "application/json", SIGNATURE_HEADER: signature(self._secret, body)}
                answer = await self._http().post(self.url, content=body, headers=signed)
            return _verdict(answer)
        except (TimeoutError, httpx.HTTPError, _BadAnswer) as exc:
            why = f"no answer within {self._timeout:g} s" if isinstance(exc, TimeoutError) else str(exc)
            if self._fail_open:
                log.warning("publish hook %s: %s; storing the post (--publish-hook-fail-open)", self.url, why)
                return Verdict(allow=True)
            raise HookUnavailable(f"the publish hook gave no answer ({why}); nothing was stored") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
                ),
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,
                trust_env=False,  # the hook is the app's own: never through an environment's proxy
            )
        return self._client


class _BadAnswer(Exception):
    pass


def _verdict(answer: httpx.Response) -> Verdict:
    """`{"allow": true}`, `{"allow": true, "text": ...}` or `{"allow": false, "reason": ...}` with a 2xx."""
    if not answer.is_success:
        raise _BadAnswer(f"it answered {answer.status_code}")
    if len(answer.content) > MAX_ANSWER:
        raise _BadAnswer("its answer is over 64 KiB")
    try:
        data = json.loads(answer.content)
    except ValueError:
        raise _BadAnswer("its answer is not JSON") from None
    allow = data.get("allow") if isinstance(data, dict) else None
    if not isinstance(allow, bool):
        raise _BadAnswer('its answer has no "allow": true or false')
    text, reason = data.get("text"), data.get("reason")
    if allow:
        if text is not None and not isinstance(text, str):
            raise _BadAnswer('its "text" is not a string')
        return Verdict(allow=True, text=text)
    if not isinstance(reason, str) or not reason:
        reason = "refused by the publish hook"
    return Verdict(allow=False, reason=reason)
