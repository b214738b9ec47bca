"""`roomchat bench` works end to end: a tiny run, never a timed benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import roomchat_process


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roomchat", "bench", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bench_starts_a_server_and_counts_every_delivery() -> None:
    done = bench("-n", "5", "-m", "40", "--json")
    assert done.returncode == 0, done.stderr
    f = json.loads(done.stdout)
    assert f["published"] == 40
    assert f["deliveries_expected"] == 200
    assert f["deliveries_received"] == 200
    assert (f["lost"], f["duplicated"], f["out_of_order"]) == (0, 0, 0)
    assert 0 < f["latency_ms"]["p50"] <= f["latency_ms"]["p99"] <= f["latency_ms"]["max"]
    assert f["server_cpu_us_per_delivery"] is not None  # CPU ticks are 10 ms: a tiny run may read 0
    assert f["server_rss_mib"]["idle"] > 0
    assert f["errors"] == []


def test_bench_against_a_given_url_prints_a_table() -> None:
    with roomchat_process("--adapter", "rest", "--port", "rest=0") as server:
        done = bench("--url", server.urls["rest"], "--pid", str(server.proc.pid), "-n", "3", "-m", "20",
                     "--rate", "200")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(None, 1) for line in done.stdout.splitlines() if line.strip())
    assert lines["deliveries"].startswith("60 of 60 (lost 0, duplicated 0, out of order 0)")
    assert "(asked 200/s)" in lines["published"]
    assert "µs per delivery" in lines["server"] or "µs per delivery" in done.stdout


def test_a_stalled_listener_is_reported_dropped_as_lagged() -> None:
    # 10 MB for it: more than the kernel buffers on both sides of a loopback socket hold
    done = bench("-n", "2", "-m", "2500", "--size", "4000", "--stalled", "1", "--publishers", "8", "--json",
                 "--server-arg=--buffer=64")
    assert done.returncode == 0, done.stderr
    f = json.loads(done.stdout)
    assert f["deliveries_received"] == f["deliveries_expected"] == 5000
    assert f["stalled_dropped_as_lagged"] == 1


def test_an_unknown_transport_is_one_clear_line() -> None:
    done = bench("--transport", "carrier-pigeon")
    assert done.returncode != 0
    assert "--transport must be one of" in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_over_grpc_counts_every_delivery() -> None:
    pytest.importorskip("roomchat.adapters.grpc.generated.message_pb2")
    done = bench("--transport", "grpc", "-n", "3", "-m", "20", "--json")
    assert done.returncode == 0, done.stderr
    f = json.loads(done.stdout)
    assert f["transport"] == "grpc"
    assert f["deliveries_received"] == f["deliveries_expected"] == 60
    assert f["lost"] == f["duplicated"] == f["out_of_order"] == 0


def test_a_server_that_cannot_be_reached_is_one_clear_line() -> None:
    done = bench("--url", "http://127.0.0.1:1", "-n", "2", "-m", "5")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("roomchat: error: bench:")
    assert "Traceback" not in done.stderr


def test_bench_starts_its_server_on_the_backend_asked_for(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    done = bench("-n", "2", "-m", "40", "--publishers", "16", "--backend", f"sqlite:///{db}", "--json")
    assert done.returncode == 0, done.stderr
    f = json.loads(done.stdout)
    assert f["backend"] == f"sqlite:///{db}" and f["publishers"] == 16
    assert f["deliveries_received"] == f["deliveries_expected"] == 80
    assert 0 < f["post_latency_ms"]["p50"] <= f["post_latency_ms"]["p99"] <= f["post_latency_ms"]["max"]
    assert db.exists()  # the server really stored them there
    clash = bench("--url", "http://127.0.0.1:1", "--backend", "memory")
    assert clash.returncode != 0 and "--backend is for the server the bench starts" in clash.stderr


def test_bench_over_websocket_with_rooms_counts_every_delivery() -> None:
    done = bench("--transport", "ws", "-n", "3", "--rooms", "4", "-m", "40", "--json")
    assert done.returncode == 0, done.stderr
    f = json.loads(done.stdout)
    assert (f["transport"], f["rooms_per_listener"]) == ("ws", 4)
    assert f["deliveries_received"] == f["deliveries_expected"] == 120
    assert f["lost"] == f["duplicated"] == f["out_of_order"] == 0
    assert f["server_rss_kib_per_subscription"] is not None


def test_a_stalled_websocket_is_reported_dropped_as_lagged() -> None:
    done = bench("--transport", "ws", "-n", "2", "-m", "2500", "--size", "4000", "--stalled", "1",
                 "--publishers", "8", "--json", "--server-arg=--buffer=64")
    assert done.returncode == 0, done.stderr
    f = json.loads(done.stdout)
    assert f["deliveries_received"] == f["deliveries_expected"] == 5000
    assert f["stalled_dropped_as_lagged"] == 1


def test_rooms_need_the_websocket_transport() -> None:
    done = bench("--rooms", "3")
    assert done.returncode != 0 and "--rooms goes with --transport ws" in done.stderr
