"""HTTP/2 frame floods against a real `roomchat serve`: the loop's worst stall and the RSS.

For each flood kind and each source tree (alternating, so a busy machine slows
each alike), it starts `roomchat serve --adapter grpc --adapter rest` from that
tree in a child process, asks `/healthz` on the rest adapter every 10 ms from
a thread (the worst answer is the worst stall of the event loop the adapters
share), and floods one gRPC connection with one kind of frame that does no
work, flat out, until the server sends GOAWAY or closes, or `--frames` frames
or `--seconds` seconds are sent. It prints one row per run: frames sent, how
the flood ended, the worst /healthz answer, and the server's RSS before and at
its peak. Only 127.0.0.1; every server is stopped at the end of its run.

    .venv/bin/python benchmarks/h2_flood.py --trees /work/base,.          # every kind
    .venv/bin/python benchmarks/h2_flood.py --trees /work/base,. --kinds settings,empty_data --runs 2
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 2, 3, 4, 6, 7
WINDOW_UPDATE, CONTINUATION = 8, 9
ACK = END_STREAM = 1
END_HEADERS = 4
CHUNK = 5_000  # frames per write


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _headers(path: str) -> bytes:  # HPACK literals without indexing
    pairs = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "x"),
             ("content-type", "application/grpc"), ("te", "trailers")]  # fmt: skip
    return b"".join(b"\x00" + bytes([len(n)]) + n.encode() + bytes([len(v)]) + v.encode() for n, v in pairs)


_REQUEST = b"\x00\x00\x00\x00\x07" + b"\x12\x05flood"  # RoomRequest(roomId="flood"), framed
_OPEN = frame(HEADERS, END_HEADERS, 1, _headers("/message.Room/StreamRoom")) + frame(DATA, 0, 1, _REQUEST)
_CANCELLED = frame(HEADERS, END_HEADERS, 1, _headers("/message.Room/StreamRoom")) + frame(
    RST_STREAM, 0, 1, struct.pack(">I", 8)
)

# kind: (what opens the connection, one write of the flood); "none" measures the probe alone
KINDS: dict[str, tuple[bytes, bytes]] = {
    "none": (b"", b""),
    "settings": (b"", frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65_535) * 100) * (CHUNK // 10)),
    "settings_ack": (b"", frame(SETTINGS, ACK, 0, b"") * CHUNK),
    "window_update": (b"", frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * CHUNK),
    "priority": (b"", frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 15)) * CHUNK),
    "empty_data": (_OPEN, frame(DATA, 0, 1, b"") * CHUNK),
    "one_byte_data": (_OPEN, frame(DATA, 0, 1, b"x") * CHUNK),
    "continuation": (
        frame(HEADERS, 0, 1, _headers("/message.Room/GetRoom")),
        frame(CONTINUATION, 0, 1, b"") * CHUNK,
    ),
    "closed_stream_data": (_CANCELLED, frame(DATA, 0, 1, b"x" * 100) * CHUNK),
    "ping_ack": (b"", frame(PING, ACK, 0, b"\0" * 8) * CHUNK),
    "unknown_type": (b"", frame(0x20, 0, 0, b"\0" * 8) * CHUNK),
}


class Server:
    """`roomchat serve --adapter grpc --adapter rest` from a source tree, on free ports."""

    def __init__(self, tree: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        args = ["serve", "--adapter", "grpc", "--adapter", "rest", "--port", "grpc=0,rest=0"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roomchat", *args],
            cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.urls: dict[str, str] = {}
        assert self.proc.stdout is not None
        while len(self.urls) < 2:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"roomchat from {tree} exited early")
            found = re.search(r"(\w+) listening on (\S+)", line)
            if found:
                self.urls[found[1]] = found[2]

    def port(self, name: str) -> int:
        return int(self.urls[name].rsplit(":", 1)[1])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Probe(threading.Thread):
    """GET /healthz every 10 ms; the worst answer's time."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.worst = 0.0
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            except OSError:  # the server died or dropped the probe: counts as never answered
                self.worst = float("inf")
                return
            self.worst = max(self.worst, time.monotonic() - started)
            time.sleep(0.01)  # the probe's pace
        conn.close()


class Peak(threading.Thread):
    """The process's RSS every 50 ms; the highest."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return


def flood(port: int, kind: str, frames: int, seconds: float) -> tuple[int, str]:
    """Frames sent, and how it ended: the GOAWAY's debug data, `closed`, or `sent all`."""
    opening, chunk = KINDS[kind]
    if not chunk:
        time.sleep(seconds)
        return 0, "no flood"
    per_chunk = CHUNK // 10 if kind == "settings" else CHUNK
    sent, received = 0, bytearray()
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0, b"") + opening)
        try:
            while sent < frames and time.monotonic() < deadline:
                sock.sendall(chunk)
                sent += per_chunk
                _drain(sock, received, 0.0)
                if _goaway(received):
                    break
        except OSError:
            pass
        _drain(sock, received, 1.0)
    reason = _goaway(received)
    return sent, reason or ("sent all" if sent >= frames or time.monotonic() >= deadline else "closed")


def _drain(sock: socket.socket, into: bytearray, wait: float) -> None:
    sock.settimeout(wait)
    try:
        while chunk := sock.recv(1 << 16):
            into += chunk
    except OSError:
        pass


def _goaway(data: bytearray) -> str | None:
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        if data[pos + 3] == GOAWAY and pos + 9 + length <= len(data):
            return "GOAWAY " + bytes(data[pos + 17 : pos + 9 + length]).decode(errors="replace")
        pos += 9 + length
    return None


def run(tree: Path, kind: str, frames: int, seconds: float) -> str:
    server = Server(tree)
    try:
        probe, peak = Probe(server.port("rest")), Peak(server.proc.pid)
        before = peak.peak
        probe.start()
        peak.start()
        started = time.monotonic()
        sent, ended = flood(server.port("grpc"), kind, frames, seconds)
        took = time.monotonic() - started
        time.sleep(0.5)  # the probe's last answers, after the flood
        probe.stopping.set()
        peak.stopping.set()
        probe.join(120)
        peak.join()
        return (
            f"{tree.name or tree.resolve().name:<24} {kind:<14} {sent:>9,} {took:6.2f}s  {ended:<40}"
            f" {probe.worst * 1000:8.1f} ms  {before / 2**20:6.1f} -> {peak.peak / 2**20:6.1f} MiB"
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trees", default=".", help="source trees to compare, comma-separated")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"of {', '.join(KINDS)}")
    parser.add_argument("--frames", type=int, default=600_000, help="the most frames one flood sends")
    parser.add_argument("--seconds", type=float, default=20.0, help="the longest one flood lasts")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    trees = [Path(tree).resolve() for tree in args.trees.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"{'tree':<24} {'kind':<14} {'frames':>9} {'took':>7}  {'ended':<40} {'worst /healthz':>11}  RSS")
    for kind in args.kinds.split(","):
        for _ in range(args.runs):
            for tree in trees:
                print(run(tree, kind, args.frames, args.seconds), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
