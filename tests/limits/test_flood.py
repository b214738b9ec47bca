"""One client floods posts past --rate; another's stream and posts carry on: it loses
nothing, its posts are all accepted and stay quick (contract: Limits; issue 10)."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time

from tests.limits.clients import client_from
from tests.support import roomchat_process, stream

RATE = 20
SECONDS = 3.0
CALM_EVERY = 0.1  # the other client posts ten a second, under the rate
P99_BOUND = 1.0  # seconds: generous, for a shared two-core machine; the figure is printed


async def test_a_flood_past_the_rate_does_not_disturb_another_client() -> None:
    with roomchat_process("--adapter", "rest", "--port", "rest=0", "--rate", str(RATE)) as server:
        base = server.urls["rest"]
        async with client_from("127.0.0.1", base) as calm, stream(calm, f"{base}/api/stream/room") as events:
            flooder = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.limits.flooder",
                base,
                "room",
                str(SECONDS),
                stdout=subprocess.PIPE,
            )
            latencies: list[float] = []
            mine: list[str] = []
            started = time.monotonic()
            while time.monotonic() - started < SECONDS:
                sent = time.monotonic()
                r = await calm.post("/api/room/room", json={"userId": "calm", "text": f"c{len(mine)}"})
                latencies.append(time.monotonic() - sent)
                assert r.status_code == 201, r.text
                mine.append(r.json()["message"]["id"])
                await asyncio.sleep(max(0.0, CALM_EVERY - (time.monotonic() - sent)))
            out, _ = await asyncio.wait_for(flooder.communicate(), 30)
            flood = json.loads(out)

            accepted = set(mine) | set(flood["ids"])
            seen: list[str] = []
            while len(seen) < len(accepted):
                event = await events.next(10)
                assert event is not None and event.event == "message", event
                seen.append(event.json()["id"])

        assert set(seen) == accepted  # nothing lost, nothing extra
        assert len(seen) == len(set(seen))  # nothing twice
        assert flood["answers"].get("429", 0) > 0
        assert len(flood["ids"]) <= 2 * RATE + RATE * (SECONDS + 2)  # the burst, then the rate
        p50 = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(
            f"\nflood {flood['answers']}; the other client's {len(latencies)} posts:"
            f" p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        )
        assert p99 < P99_BOUND, latencies
        assert server.terminate() == 0
