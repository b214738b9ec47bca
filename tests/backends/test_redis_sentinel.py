"""Two `roomchat serve` processes on a Redis watched by Sentinel, while its primary is killed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from roomchat.core.message import id_key
from tests.backends.redis_sentinel import sentinel_set
from tests.backends.test_redis_processes import processes
from tests.support import SSE, roomchat_process

ROOM = "failover"


@dataclass
class Follower:
    """One SSE listener that resumes from its last id whenever its stream ends, as EventSource does."""

    base: str
    ids: list[str] = field(default_factory=list)
    gaps: int = 0
    streams: int = 0
    resumed_from: list[str] = field(default_factory=list)
    gap_at: int | None = None  # how many messages it had when it was told of a gap

    async def follow(self, client: httpx.AsyncClient) -> None:
        while True:
            headers = {"Last-Event-ID": self.ids[-1]} if self.ids else {}
            with contextlib.suppress(httpx.TransportError):
                async with client.stream(
                    "GET",
                    f"{self.base}/api/stream/{ROOM}",
                    headers=headers,
                    timeout=httpx.Timeout(5, read=None),
                ) as response:
                    if response.status_code == 200:
                        self.streams += 1
                        self.resumed_from.append(headers.get("Last-Event-ID", ""))
                        await self._read(SSE(response))
                    else:
                        assert response.status_code == 503, response.status_code
            await asyncio.sleep(0.05)

    async def _read(self, sse: SSE) -> None:
        while (event := await sse.next(timeout=60)) is not None:
            if event.event == "message":
                assert event.id is not None
                self.ids.append(event.id)
            elif event.event == "gap":
                self.gaps += 1
                self.gap_at = len(self.ids)


@dataclass
class Health:
    """`/healthz` of one process, polled: when it answered what."""

    base: str
    seen: list[tuple[float, int]] = field(default_factory=list)

    async def watch(self, client: httpx.AsyncClient) -> None:
        while True:
            try:
                status = (await client.get(f"{self.base}/healthz", timeout=3)).status_code
            except httpx.TransportError:
                status = 0
            self.seen.append((time.monotonic(), status))
            await asyncio.sleep(0.05)

    def recovered_after(self, moment: float) -> bool:
        after = [status for at, status in self.seen if at > moment]
        return 503 in after and after[-1] == 200


@pytest.mark.slow
async def test_a_killed_primary_loses_no_acknowledged_post_silently(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    with sentinel_set(tmp_path) as redis, processes(redis.url) as bases:
        followers = [Follower(base) for base in bases for _ in range(2)]
        health = [Health(base) for base in bases]
        acknowledged: list[tuple[float, str]] = []
        refused: list[float] = []

        async def post(base: str, tag: str) -> None:
            for n in range(100_000):
                with contextlib.suppress(httpx.TransportError):
                    r = await client.post(f"{base}/api/room/{ROOM}", json={"userId": tag, "text": f"{n}"})
                    if r.status_code == 201:
                        acknowledged.append((time.monotonic(), r.json()["message"]["id"]))
                        await asyncio.sleep(0.01)
                        continue
                    assert r.status_code == 503 and "Redis" in r.json()["message"], r.text
                refused.append(time.monotonic())
                await asyncio.sleep(0.05)

        tasks = [asyncio.ensure_future(f.follow(client)) for f in followers]
        tasks += [asyncio.ensure_future(h.watch(client)) for h in health]
        posters: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(10):  # every listener is live before posts start
                while not all(f.ids for f in followers):
                    r = await client.post(
                        f"{bases[0]}/api/room/{ROOM}", json={"userId": "first", "text": "?"}
                    )
                    acknowledged.append((time.monotonic(), r.json()["message"]["id"]))
                    await asyncio.sleep(0.2)
                del acknowledged[: len(acknowledged) - 1]  # the ones before the last may be missed
                while not all(acknowledged[0][1] in f.ids for f in followers):
                    await asyncio.sleep(0.05)
            posters += [asyncio.ensure_future(post(base, f"poster{i}")) for i, base in enumerate(bases)]
            async with asyncio.timeout(10):
                while min(len(f.ids) for f in followers) < 20:
                    await asyncio.sleep(0.05)
            old_primary = redis.primary.port
            killed = time.monotonic()
            redis.primary.kill()  # SIGKILL
            async with asyncio.timeout(30):  # a few seconds for the sentinels, then roomchat follows
                while not (
                    any(at > killed + 0.5 for at, _ in acknowledged)
                    and all(h.recovered_after(killed) for h in health)
                ):
                    await asyncio.sleep(0.05)
            down = min(at for at in refused if at > killed)
            back = min(at for at, _ in acknowledged if at > down)
            await asyncio.sleep(1)  # posts go on a little on the new primary
            for poster in posters:
                poster.cancel()
            await asyncio.wait(posters)
            expected = [message_id for _, message_id in acknowledged]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):  # no listener waits forever
                    while not all(set(expected) <= set(f.ids) for f in followers):
                        await asyncio.sleep(0.05)
            for task in tasks:  # a follower or health watch that failed says why
                if task.done():
                    task.result()
            for f in followers:
                missing = sorted(set(expected) - set(f.ids), key=id_key)
                assert not missing, f"{f.base}: {missing} (gaps {f.gaps}, resumed from {f.resumed_from})"
        finally:
            for task in [*tasks, *posters]:
                task.cancel()
            await asyncio.wait([*tasks, *posters])
        assert redis.primary_port() not in (None, old_primary)
        assert refused  # posts were under way while no primary was reachable
        for follower in followers:
            assert follower.streams >= 2  # each was cut off and resumed
            if follower.gaps == 0:  # exactly once, in one order; else `gap` told them
                keys = [id_key(message_id) for message_id in follower.ids]
                assert len(set(keys)) == len(keys) and keys == sorted(keys)
            assert set(expected) <= set(follower.ids)
        print(
            f"failover: first post acknowledged {back - killed:.2f} s after the kill; "
            f"{len(expected)} acknowledged, {len(refused)} refused; gaps: {[f.gaps for f in followers]}"
        )


@pytest.mark.slow
async def test_posts_the_promoted_replica_never_had_are_answered_with_a_gap_and_logged(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    with sentinel_set(tmp_path) as redis, contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                roomchat_process("--adapter", "rest", "--port", "rest=0", "--backend", redis.url)
            )
            for _ in range(2)
        ]
        followers = [Follower(server.urls["rest"]) for server in servers]
        tasks = [asyncio.ensure_future(f.follow(client)) for f in followers]

        async def post(text: str) -> str:
            r = await client.post(
                f"{followers[0].base}/api/room/{ROOM}", json={"userId": "ann", "text": text}
            )
            assert r.status_code == 201, r.text
            return str(r.json()["message"]["id"])

        async def until_all_have(message_id: str) -> None:
            while not all(message_id in f.ids for f in followers):
                await asyncio.sleep(0.05)

        try:
            async with asyncio.timeout(10):
                while not all(f.ids for f in followers):
                    await post("are you there?")
                    await asyncio.sleep(0.2)
            kept = [await post(f"kept {i}") for i in range(3)]
            redis.cut_replication()
            lost = [await post(f"lost {i}") for i in range(3)]  # acknowledged by the primary alone
            async with asyncio.timeout(10):
                await until_all_have(lost[-1])
            redis.primary.kill()
            async with asyncio.timeout(30):
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        r = await client.post(
                            f"{followers[0].base}/api/room/{ROOM}", json={"userId": "b", "text": "x"}
                        )
                        if r.status_code == 201:
                            after = str(r.json()["message"]["id"])
                            break
                    await asyncio.sleep(0.1)
                await until_all_have(after)  # no listener waits forever
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        page = await client.get(f"{followers[1].base}/api/room/{ROOM}/messages", params={"limit": 1000})
        history = [m["id"] for m in page.json()["messages"]]
        assert history[-4:] == [*kept, after] and not set(lost) & set(history)
        for f in followers:
            assert f.gaps == 1 and f.gap_at is not None  # resuming from a lost id: told so
            assert f.ids[: f.gap_at][-3:] == lost
            assert f.ids[f.gap_at :] == history  # then all of history, and live again
        for server in servers:
            assert server.terminate() == 0
            assert server.proc.stderr is not None
            logged = server.proc.stderr.read()
            assert f"delivered up to {lost[-1]}, Redis has {kept[-1]} up to it" in logged, logged
