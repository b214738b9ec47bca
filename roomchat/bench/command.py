"""`roomchat bench`: N listeners on one room, M messages, figures at the end.

Imported by the CLI on every call, so everything heavy is imported lazily.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer


def bench(
    transport: Annotated[str, typer.Option(help="Bench client: sse, ws or grpc.")] = "sse",
    listeners: Annotated[int, typer.Option("--listeners", "-n", min=1, help="Streams on the room.")] = 100,
    messages: Annotated[int, typer.Option("--messages", "-m", min=1, help="Messages to post.")] = 1000,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Messages per second; default flat out.")] = (
        None
    ),
    publishers: Annotated[int, typer.Option(min=1, help="Connections posting at once.")] = 4,
    size: Annotated[int, typer.Option(min=0, max=4096, help="Pad each text to this many characters.")] = 0,
    stalled: Annotated[int, typer.Option(min=0, help="Extra listeners that never read.")] = 0,
    rooms: Annotated[int, typer.Option(min=1, max=100, help="Rooms per WebSocket listener (ws).")] = 1,
    workers: Annotated[int, typer.Option(min=0, help="Client processes holding the streams (0: auto).")] = 0,
    drain: Annotated[float, typer.Option(min=0.1, help="Seconds with no delivery before giving up.")] = 5.0,
    url: Annotated[str | None, typer.Option(help="Server to bench (default: start `roomchat serve`).")] = (
        None
    ),
    pid: Annotated[int | None, typer.Option(help="PID of the --url server (CPU, RSS).")] = None,
    post_path: Annotated[str, typer.Option(help="POST path template.")] = "/api/room/{room}",
    stream_path: Annotated[str, typer.Option(help="Event stream path template.")] = "/api/stream/{room}",
    text_field: Annotated[str, typer.Option(help="JSON body field of the text.")] = "text",
    server_arg: Annotated[list[str] | None, typer.Option(help="Extra `roomchat serve` argument.")] = (
        None
    ),
    pin: Annotated[bool, typer.Option(help="Server on the first core, the client on the others.")] = False,
    auth: Annotated[
        str, typer.Option(metavar="none|jwt", help="jwt: the server checks a token per stream and post.")
    ] = "none",
    backend: Annotated[
        str | None, typer.Option(help="--backend of the server it starts (memory, sqlite:///PATH...).")
    ] = None,
    presence: Annotated[
        bool, typer.Option(help="sse: each listener a user of its own, with presence events (?presence=1).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON, not a table.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Measure fan-out: deliveries/s, loss, latency, client and server CPU, server memory."""
    from roomchat.bench.clients import CLIENTS
    from roomchat.bench.report import figures, rows
    from roomchat.bench.runner import Plan, run

    if transport not in CLIENTS:
        raise typer.BadParameter(f"--transport must be one of {', '.join(CLIENTS)}")
    if auth not in ("none", "jwt"):
        raise typer.BadParameter("--auth must be none or jwt")
    if auth == "jwt" and url is not None:
        raise typer.BadParameter("--auth jwt benches a server it starts (it holds the secret); drop --url")
    if rooms > 1 and transport != "ws":
        raise typer.BadParameter("--rooms goes with --transport ws")
    if pid is not None and url is None:
        raise typer.BadParameter("--pid goes with --url")
    if backend is not None and url is not None:
        raise typer.BadParameter("--backend is for the server the bench starts, not one at --url")
    if presence and transport != "sse":
        raise typer.BadParameter("--presence goes with --transport sse")
    plan = Plan(
        transport=transport, listeners=listeners, messages=messages, rate=rate, publishers=publishers,
        size=size, stalled=stalled, workers=workers, drain=drain, url=url, pid=pid, post_path=post_path,
        stream_path=stream_path, text_field=text_field, server_args=tuple(server_arg or ()), pin=pin,
        auth=auth,
        backend=backend,
        rooms=rooms,
        presence=presence,
    )
    try:
        with _Bar(progress) as show:
            outcome = run(plan, show)
    except (RuntimeError, OSError, ImportError) as exc:
        print(f"roomchat: error: bench: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    result = figures(outcome)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    table = rows(result)
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")


class _Bar:
    def __init__(self, enabled: bool) -> None:
        self._progress = None
        self._tasks: dict[str, object] = {}
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = self._progress.add_task(phase, total=total)
        self._progress.update(task, completed=done, total=total)  # type: ignore[arg-type]
