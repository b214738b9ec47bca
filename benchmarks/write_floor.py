"""The floor under SSE fan-out on this machine: one `send` per listener per message.

No roomchat, no HTTP, no event loop: a parent process writes a 150-byte frame
to N loopback TCP sockets from a plain loop (optionally split over threads),
a child process reads them all with epoll, as the bench's client does. It
prints the wall time of one round (one message to every listener) and the
CPU per write. A server that writes each message to each listener separately
can not beat these figures on the same machine.

    .venv/bin/python benchmarks/write_floor.py                # 1,000 sockets, 200 rounds at 20/s
    .venv/bin/python benchmarks/write_floor.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor

FRAME = b"x" * 150 + b"\n\n"


def reader(port: int, sockets: int, rounds: int) -> None:
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
    poller = select.epoll()
    by_fd = {}
    for conn in conns:
        conn.setblocking(False)
        poller.register(conn.fileno(), select.EPOLLIN)
        by_fd[conn.fileno()] = conn
    got = 0
    while got < sockets * rounds:
        for fd, _ in poller.poll():
            got += by_fd[fd].recv(65536).count(b"\n\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="rounds per second")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    server = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = server.getsockname()[1]
    child = os.fork()
    if child == 0:
        try:
            reader(port, args.sockets, args.rounds)
        finally:
            os._exit(0)
    conns = [server.accept()[0] for _ in range(args.sockets)]
    for conn in conns:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(False)
    parts = [conns[k :: args.threads] for k in range(args.threads)]

    def write(part: list[socket.socket]) -> None:
        for conn in part:
            conn.send(FRAME)

    rounds: list[float] = []
    cpu = time.process_time()
    with ThreadPoolExecutor(args.threads) as pool:
        for _ in range(args.rounds):
            start = time.perf_counter()
            if args.threads == 1:
                write(conns)
            else:
                list(pool.map(write, parts))
            rounds.append(time.perf_counter() - start)
            time.sleep(max(0.0, 1 / args.rate - rounds[-1]))
    cpu = time.process_time() - cpu
    os.waitpid(child, 0)
    rounds.sort()
    p50, p99 = rounds[len(rounds) // 2], rounds[int(len(rounds) * 0.99) - 1]
    writes = args.sockets * args.rounds
    print(
        f"{args.sockets} sockets, {args.threads} thread(s): one round p50 {p50 * 1e3:.2f} ms, "
        f"p99 {p99 * 1e3:.2f} ms; {cpu / writes * 1e6:.2f} µs CPU per write"
    )


if __name__ == "__main__":
    main()
