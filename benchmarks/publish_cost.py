"""What storing a message and reading its cached encoding cost, in CPU time (memory backend).

    python benchmarks/publish_cost.py
    cd /work/base && PYTHONPATH=. python /path/to/benchmarks/publish_cost.py   # another checkout

Seven rounds of 20,000 `MemoryBackend.publish` calls (ten rooms, history full)
and of 400,000 cache hits of `Message.encode` (what every delivery does), timed
with `time.process_time`; medians. Run it alternately on two checkouts to
compare them on a shared machine.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from roomchat.adapters.http.sse import sse_chunk
from roomchat.adapters.http.ws_frames import ws_frame
from roomchat.backends.memory import MemoryBackend
from roomchat.core.ports import BackendSettings


class _Discarding:
    def message(self, message: object) -> None: ...
    def deleted(self, room_id: str) -> None: ...
    def interrupted(self, room_id: str) -> None: ...
    def presence_changed(self, room_id: str) -> None: ...


async def main() -> None:
    backend = MemoryBackend("memory", BackendSettings())
    await backend.start(_Discarding())
    text = "hello world " * 5
    for i in range(3000):
        await backend.publish(f"r{i % 10}", "ann", text)
    posts, hits = [], []
    for _ in range(7):
        start = time.process_time()
        for i in range(20_000):
            await backend.publish(f"r{i % 10}", "ann", text)
        posts.append((time.process_time() - start) / 20_000 * 1e6)
        encode = (await backend.publish("r0", "ann", "x")).encode
        encode(sse_chunk)
        encode(ws_frame)
        start = time.process_time()
        for _ in range(200_000):
            encode(sse_chunk)
            encode(ws_frame)
        hits.append((time.process_time() - start) / 400_000 * 1e9)
    print(
        f"publish {statistics.median(posts):.2f} µs/post, encode (cached) {statistics.median(hits):.1f} ns"
        f"  (load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
