"""The `roomchat` command: `serve` composes adapters over one room service."""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer

try:  # typer vendors click since 0.2x; older releases use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]

from roomchat import __version__, logs, startup
from roomchat.adapters import Adapter, AdapterSettings
from roomchat.adapters.registry import AdapterEntry, available
from roomchat.bench.command import bench
from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.core import BackendUnavailable, validation
from roomchat.runner import StartupError, run_forever

app = typer.Typer(
    help="roomchat: a realtime chat server with rooms, history and pluggable transports.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _options(
    version: Annotated[
        bool | None,
        typer.Option("--version", is_eager=True, callback=startup.print_version, help="Print the version."),
    ] = None,
) -> None:
    """roomchat: a realtime chat server with rooms, history and pluggable transports."""


def _env(name: str) -> str:
    return f"ROOMCHAT_{name}"


@app.command()
def serve(
    all_: Annotated[
        bool, typer.Option("--all", envvar=_env("ALL"), help="Serve every adapter found.")
    ] = False,
    adapter: Annotated[
        list[str] | None,
        typer.Option("--adapter", envvar=_env("ADAPTER"), help="Adapter to serve (repeatable)."),
    ] = None,
    host: Annotated[str, typer.Option(envvar=_env("HOST"), help="Address to bind.")] = "127.0.0.1",
    port: Annotated[
        list[str] | None,
        typer.Option("--port", envvar=_env("PORT"), help="NAME=PORT (repeatable); 0 picks a free port."),
    ] = None,
    backend: Annotated[
        str, typer.Option(envvar=_env("BACKEND"), help="memory or redis://HOST:PORT/DB")
    ] = "memory",
    history: Annotated[
        int, typer.Option(envvar=_env("HISTORY"), min=1, help="Messages kept per room.")
    ] = 1000,
    max_text: Annotated[
        int, typer.Option(envvar=_env("MAX_TEXT"), min=1, help="Longest text, in characters.")
    ] = 4096,
    buffer: Annotated[
        int,
        typer.Option(
            envvar=_env("BUFFER"),
            min=1,
            help="Messages a listener may fall behind before it is ended as lagged.",
        ),
    ] = 1024,
    keepalive: Annotated[
        float,
        typer.Option(envvar=_env("KEEPALIVE"), min=0.05, help="Seconds between keepalives on idle streams."),
    ] = 15.0,
    tls_cert: Annotated[
        str | None, typer.Option(envvar=_env("TLS_CERT"), help="PEM certificate: serve TLS.")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option(envvar=_env("TLS_KEY"), help="PEM private key for --tls-cert.")
    ] = None,
    log_level: Annotated[
        str, typer.Option(envvar=_env("LOG_LEVEL"), help="critical, error, warning, info or debug.")
    ] = "info",
    log_json: Annotated[
        bool, typer.Option(envvar=_env("LOG_JSON"), help="Log one JSON object a line.")
    ] = False,
) -> None:
    """Serve the chosen adapters (all of them by default) in one process."""
    found = available()
    chosen = comma_list(adapter or [])
    names = sorted(found) if all_ or not chosen else list(dict.fromkeys(chosen))
    unknown = [n for n in names if n not in found]
    if unknown:
        raise typer.BadParameter(f"unknown adapter {unknown[0]!r}; installed: {', '.join(sorted(found))}")
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    if log_level not in logs.LEVELS:
        raise typer.BadParameter(f"--log-level must be one of {', '.join(logs.LEVELS)}")
    ports = _parse_ports(port or [], names)
    logs.configure(log_level, log_json)
    try:
        service = build_service(ServiceSettings(backend, history, max_text, buffer))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    adapters: dict[str, Adapter] = {}
    for name in names:
        try:
            factory = found[name].load()
        except Exception as exc:
            _fail(f"adapter {name!r} failed to load: {exc}")
        settings = AdapterSettings(
            host=host,
            port=ports.get(name, getattr(factory, "default_port", 0)),
            tls_cert=tls_cert,
            tls_key=tls_key,
            keepalive=keepalive,
        )
        try:
            adapters[name] = factory(service, settings)
        except Exception as exc:
            _fail(f"adapter {name!r} failed to start: {exc}")
    startup.announce_choice(names, "--all" if all_ else "--adapter" if chosen else None)
    startup.log_settings(backend, history=history, max_text=max_text, buffer=buffer, keepalive=keepalive)
    try:
        run_forever(service, adapters)
    except (StartupError, BackendUnavailable) as exc:
        _fail(str(exc))


def comma_list(values: list[str]) -> list[str]:
    """A repeatable option's values, each of which may be a comma-separated list
    (as the environment gives them: `ROOMCHAT_ADAPTER=rest,grpc`)."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _parse_ports(values: list[str], names: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for value in values:
        for item in value.split(","):
            name, sep, number = item.partition("=")
            if not sep or not validation.is_whole_number(number):
                raise typer.BadParameter(f"--port takes NAME=PORT, got {item!r}")
            port = validation.bounded_whole_number(number, 65535)
            if port is None:
                raise typer.BadParameter(f"--port {item!r}: the port must be from 0 to 65535")
            if name not in names:
                raise typer.BadParameter(f"--port names {name!r}, which is not being served")
            ports[name] = port
    return ports


@app.command()
def adapters() -> None:
    """List every adapter found: name, distribution and version."""
    found: dict[str, AdapterEntry] = available()
    width = max((len(n) for n in found), default=4)
    for entry in found.values():
        print(f"{entry.name:<{width}}  {entry.distribution} {entry.version}")


app.command()(bench)


@app.command()
def version() -> None:
    """Print roomchat's version."""
    print(__version__)


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"roomchat: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def main() -> None:
    """Entry point: usage errors are one line on stderr, never a traceback."""
    command = typer.main.get_command(app)
    startup.show_placeholders(command)
    try:
        code = command.main(prog_name="roomchat", standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(130) from None
    except click_errors.NoArgsIsHelpError as exc:  # bare `roomchat`: the help, as click would
        print(exc.format_message(), file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click_errors.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    # Without standalone mode click returns, not raises, a `typer.Exit`'s code.
    if isinstance(code, int) and code:
        raise SystemExit(code)
