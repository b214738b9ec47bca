"""What a full garbage collection costs with a full history held by the memory backend.

    python benchmarks/gc_pause.py [--rooms 200] [--history 1000]
    cd /work/base && PYTHONPATH=. python /path/to/benchmarks/gc_pause.py   # the same on another checkout

Fills a MemoryBackend in this process with `--rooms` x `--history` messages,
each encoded in every wire format (as SSE, WebSocket and gRPC listeners would
have them), then times three full collections (`gc.collect()`), wall and CPU
(`time.process_time`, so other load on the machine counts less), and counts
the objects the collector tracks. A full collection runs on the event loop:
its time is a stall of every connection. Start-up objects are frozen first
(`gc.freeze()`), as `roomchat serve` does once it listens, so what is left is
what history adds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time

from roomchat.adapters.grpc.codec import grpc_frame
from roomchat.adapters.http.sse import sse_chunk
from roomchat.adapters.http.ws_frames import ws_frame
from roomchat.backends.memory import MemoryBackend
from roomchat.core.message import to_json
from roomchat.core.ports import BackendSettings

CODECS = (to_json, sse_chunk, ws_frame, grpc_frame)


class _Discarding:
    def message(self, message: object) -> None: ...
    def deleted(self, room_id: str) -> None: ...
    def interrupted(self, room_id: str) -> None: ...
    def presence_changed(self, room_id: str) -> None: ...


async def main(rooms: int, history: int) -> None:
    backend = MemoryBackend("memory", BackendSettings(history=history, history_bytes=0, max_rooms=0))
    await backend.start(_Discarding())
    gc.collect()
    gc.freeze()
    tracked = len(gc.get_objects())
    for room in range(rooms):
        for i in range(history):
            message = await backend.publish(f"room-{room}", "ann", f"message {i} of a soak, " * 4)
            for codec in CODECS:
                message.encode(codec)
    del message
    print(f"{rooms * history} messages, {len(gc.get_objects()) - tracked} more objects tracked by gc")
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        gc.collect()
        print(
            f"full collection: {(time.perf_counter() - wall) * 1000:7.1f} ms wall, "
            f"{(time.process_time() - cpu) * 1000:7.1f} ms CPU  (load {os.getloadavg()[0]:.2f})"
        )


if __name__ == "__main__":
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--history", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.rooms, args.history))
