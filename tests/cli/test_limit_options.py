"""The limit options of `roomchat serve`: values, environment variables, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from roomchat.cli import _size
from roomchat.descriptors import Budget
from tests.cli.test_serve import _one_line_error, run_cli
from tests.support import roomchat_process


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("256MiB", 256 << 20),
        ("64mib", 64 << 20),
        ("1GiB", 1 << 30),
        ("500MB", 500_000_000),
        ("4096", 4096),
        ("0", 0),
    ],
)
def test_history_bytes_takes_sizes_with_units_or_bytes(value: str, size: int) -> None:
    assert _size("--history-bytes", value) == size


@pytest.mark.parametrize("value", ["", "MiB", "-1", "1.5GiB", "12XB", "1" * 16])
def test_history_bytes_refuses_what_is_not_a_size(value: str) -> None:
    with pytest.raises(typer.BadParameter, match="--history-bytes takes a size"):
        _size("--history-bytes", value)


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--rate", "-1"], "--rate"),
        (["--rate", "fast"], "--rate"),
        (["--rate", "inf"], "--rate takes a number"),
        (["--max-streams", "lots"], "--max-streams takes auto or a whole number"),
        (["--max-streams-per-ip", "-2"], "--max-streams-per-ip"),
        (["--trust-proxy", "10.0.0.0/33"], "--trust-proxy takes an IP address or CIDR"),
        (["--max-rooms", "many"], "--max-rooms"),
        (["--history-bytes", "2 lots"], "--history-bytes takes a size"),
    ],
)
def test_bad_limit_options_are_one_clear_line(args: list[str], word: str) -> None:
    _one_line_error(run_cli("serve", "--adapter", "rest", *args), word)


def test_the_log_says_what_the_open_file_limit_allows_and_env_sets_max_streams() -> None:
    env = {"ROOMCHAT_MAX_STREAMS": "7", "ROOMCHAT_HISTORY_BYTES": "64MiB", "ROOMCHAT_MAX_STREAMS_PER_IP": "2"}
    with roomchat_process("--adapter", "rest", "--port", "rest=0", env=env) as server:
        assert server.terminate() == 0
        assert server.proc.stderr is not None
        log = server.proc.stderr.read()
    limit = int(log.split("open-file limit ")[1].split(":")[0])
    fds = Budget(limit)
    assert (
        f"room for {fds.streams} streams and {fds.http_connections} HTTP connections; --max-streams 7" in log
    )
    assert "WARNING" not in log


def test_at_start_up_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    with roomchat_process(
        "--adapter", "rest", "--port", "rest=0", command=("tests.limits.low_nofile", "100:400")
    ) as server:
        assert server.terminate() == 0
        assert server.proc.stderr is not None
        log = server.proc.stderr.read()
    fds = Budget(400)
    assert f"open-file limit 400: room for {fds.streams} streams" in log
    assert f"--max-streams {fds.streams}" in log  # auto


DOCS = Path(__file__).parents[2] / "docs"


def test_the_documented_share_of_file_descriptors_is_the_real_one() -> None:
    section = (DOCS / "security.md").read_text().split("### File descriptors")[1]
    rows = re.findall(r"^ *\| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", section, re.MULTILINE)
    assert len(rows) == 3
    for row in rows:
        limit, grpc, http, streams = (int(cell.replace(",", "")) for cell in row)
        fds = Budget(limit)
        assert (grpc, http, streams) == (fds.grpc_connections, fds.http_connections, fds.streams)


def test_every_limit_option_is_documented() -> None:
    configuration = (DOCS / "configuration.md").read_text()
    limits = (DOCS / "security.md").read_text().split("## Limits")[1]
    for option in ("rate", "max-streams", "max-streams-per-ip", "trust-proxy", "max-rooms", "history-bytes"):
        variable = "ROOMCHAT_" + option.upper().replace("-", "_")
        assert f"| `--{option}" in configuration and f"`{variable}`" in configuration, option
        assert f"`--{option}`" in limits, option
