"""The `roomchat` command: `serve` composes adapters over one room service."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import sys
from dataclasses import replace
from typing import Annotated, NoReturn

import typer

try:  # typer vendors click since 0.2x; older releases use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]

from roomchat import __version__, configfile, logs, startup
from roomchat.adapters import Adapter, AdapterSettings
from roomchat.adapters.http.identity import trusted_networks
from roomchat.adapters.registry import available
from roomchat.backends import registry as backend_registry
from roomchat.bench.command import bench
from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.core import BackendUnavailable, ValidationError, validation
from roomchat.core.identity import Authenticator, OpenAuthenticator
from roomchat.core.limits import Limits
from roomchat.descriptors import Budget, raise_open_file_limit
from roomchat.hooks import HttpPublishHook
from roomchat.plugins import listing
from roomchat.reload import Reloader
from roomchat.runner import StartupError, run_forever
from roomchat.supervisor import die_with_supervisor, one_per_core, supervise
from roomchat.tokens import JwtAuthenticator, mint

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
    ctx: typer.Context,
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
        str,
        typer.Option(
            envvar=_env("BACKEND"),
            help="memory, sqlite:///PATH (history survives a restart) or redis://HOST:PORT/DB; "
            "see `roomchat backends`.",
        ),
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
    auth: Annotated[
        str,
        typer.Option(
            envvar=_env("AUTH"), metavar="none|jwt", help="none: anyone may do anything; jwt: tokens."
        ),
    ] = "none",
    jwt_key: Annotated[
        str | None,
        typer.Option(
            envvar=_env("JWT_KEY"),
            metavar="SECRET|FILE",
            help="An HS256 secret, or a PEM public key file (RS256, ES256, EdDSA).",
        ),
    ] = None,
    jwt_issuer: Annotated[
        str | None, typer.Option(envvar=_env("JWT_ISSUER"), metavar="ISS", help="Required `iss` claim.")
    ] = None,
    jwt_audience: Annotated[
        str | None, typer.Option(envvar=_env("JWT_AUDIENCE"), metavar="AUD", help="Required `aud` claim.")
    ] = None,
    anonymous_read: Annotated[
        bool,
        typer.Option(envvar=_env("ANONYMOUS_READ"), help="jwt: tokenless requests may read."),
    ] = False,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            envvar=_env("CORS_ORIGIN"),
            metavar="ORIGIN",
            help="An origin whose pages may post and delete (repeatable).",
        ),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            envvar=_env("RATE"), min=0, metavar="PER_SECOND", help="Posts a second per user or IP; 0: off."
        ),
    ] = 0.0,
    max_streams: Annotated[
        str,
        typer.Option(
            envvar=_env("MAX_STREAMS"),
            metavar="auto|N",
            help="Open streams in this process; auto: what the open-file limit allows.",
        ),
    ] = "auto",
    max_streams_per_ip: Annotated[
        int,
        typer.Option(
            envvar=_env("MAX_STREAMS_PER_IP"), min=0, metavar="N", help="Open streams per client IP; 0: off."
        ),
    ] = 0,
    trust_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-proxy",
            envvar=_env("TRUST_PROXY"),
            metavar="CIDR",
            help="A proxy whose X-Forwarded-For names the client (repeatable).",
        ),
    ] = None,
    max_rooms: Annotated[
        int,
        typer.Option(envvar=_env("MAX_ROOMS"), min=0, metavar="N", help="Rooms with history; 0: no limit."),
    ] = 100_000,
    history_bytes: Annotated[
        str,
        typer.Option(
            envvar=_env("HISTORY_BYTES"),
            metavar="SIZE",
            help="Bytes of history in this process (memory backend): 64MiB, 1GiB, bytes; 0: no limit.",
        ),
    ] = "256MiB",
    workers: Annotated[
        int,
        typer.Option(
            envvar=_env("WORKERS"),
            min=0,
            help="Processes sharing the ports (SO_REUSEPORT) over a shared backend; 0: one per core.",
        ),
    ] = 1,
    worker: Annotated[int, typer.Option(hidden=True, help="Set by the supervisor in its workers.")] = 0,
    presence_heartbeat: Annotated[
        float,
        typer.Option(
            envvar=_env("PRESENCE_HEARTBEAT"),
            min=0.05,
            max=7.0,
            help="Seconds between presence heartbeats; a dead process's users leave within about 4.",
        ),
    ] = 5.0,
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            envvar=_env("WEBHOOK_SECRET"),
            metavar="SECRET",
            help="Signs every request to --publish-hook (Roomchat-Signature).",
        ),
    ] = None,
    publish_hook: Annotated[
        str | None,
        typer.Option(
            envvar=_env("PUBLISH_HOOK"),
            metavar="URL",
            help="Asked before every post is stored: allow, rewrite or refuse (needs --webhook-secret).",
        ),
    ] = None,
    publish_hook_timeout: Annotated[
        float,
        typer.Option(
            envvar=_env("PUBLISH_HOOK_TIMEOUT"),
            min=0.001,
            metavar="SECONDS",
            help="How long a post waits for the hook; then 503, nothing stored.",
        ),
    ] = 2.0,
    publish_hook_fail_open: Annotated[
        bool,
        typer.Option(
            envvar=_env("PUBLISH_HOOK_FAIL_OPEN"),
            help="Store the post when the hook gives no answer in time.",
        ),
    ] = False,
    config: Annotated[
        str | None,
        typer.Option(
            envvar=configfile.ENV,
            metavar="FILE",
            help="A TOML file whose [serve] table sets any of these options; flags and env win over it.",
        ),
    ] = None,
) -> None:
    """Serve the chosen adapters (all of them by default) in one process, or in --workers N."""
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
    authenticator = _authenticator(auth, jwt_key, jwt_issuer, jwt_audience, anonymous_read)
    origins = tuple(comma_list(cors_origin or []))
    rate = _rate(rate)
    hook = _publish_hook(publish_hook, webhook_secret, publish_hook_timeout, publish_hook_fail_open)
    proxies = _trusted_proxies(trust_proxy or [])
    history_size = _size("--history-bytes", history_bytes)
    streams = _max_streams(max_streams)
    logs.configure(log_level, log_json)
    fds = Budget(raise_open_file_limit())
    limits = Limits(rate, fds.streams if streams is None else streams, max_streams_per_ip)
    if workers != 1:
        _refuse_unshared(backend, workers)
    if auth == "none" and not _loopback(host) and not worker:  # a supervisor said it for its workers
        print(
            f"roomchat: warning: serving {host} with --auth none: anyone who can reach it"
            " may post as anyone and delete rooms (see docs/security.md)",
            file=sys.stderr,
            flush=True,
        )
    if workers != 1 and (workers or one_per_core()) > 1:
        command = [sys.executable, "-m", "roomchat", *sys.argv[1:]]
        raise SystemExit(supervise(command, workers or one_per_core(), len(names)))
    if worker:
        die_with_supervisor()
    try:
        service = build_service(
            ServiceSettings(
                backend,
                history,
                max_text,
                buffer,
                auth=authenticator,
                limits=limits,
                max_rooms=max_rooms,
                history_bytes=history_size,
                presence_heartbeat=presence_heartbeat,
                publish_hook=hook,
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    adapters: dict[str, Adapter] = {}
    adapter_settings: dict[str, AdapterSettings] = {}
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
            cors_origins=origins,
            trust_proxy=proxies,
            reuse_port=worker > 0,
        )
        adapter_settings[name] = settings
        try:
            adapters[name] = factory(service, settings)
        except Exception as exc:
            _fail(f"adapter {name!r} failed to start: {exc}")
    startup.announce_choice(names, "--all" if all_ else "--adapter" if chosen else None)
    startup.log_settings(backend, history=history, max_text=max_text, buffer=buffer, keepalive=keepalive)

    def parse(values: dict[str, object]) -> dict[str, object]:
        args = _serve_args(sys.argv[1:]) or []
        return dict(ctx.command.make_context("serve", args, default_map=values).params)

    hooked = {"url": publish_hook}  # where the running publish hook posts

    def apply(new: dict[str, object]) -> None:
        """Everything is built (and refused, with nothing changed) before anything is applied."""
        authenticator = _authenticator(auth, _str(new["jwt_key"]), jwt_issuer, jwt_audience, anonymous_read)
        origins = tuple(comma_list(_strs(new["cors_origin"])))
        per_ip = _int(new["max_streams_per_ip"])
        new_limits = Limits(_rate(_float(new["rate"])), limits.max_streams, per_ip)
        hook_url = _str(new["publish_hook"])
        new_hook = _publish_hook(hook_url, webhook_secret, publish_hook_timeout, publish_hook_fail_open)
        for name, adapter in adapters.items():
            reconfigure = getattr(adapter, "reconfigure", None)  # optional: docs/plugins.md
            if reconfigure is not None:
                reconfigure(replace(adapter_settings[name], cors_origins=origins))
        service.reconfigure(authenticator=authenticator, limits=new_limits)
        if hook_url != hooked["url"]:
            service.set_publish_hook(new_hook)
            hooked["url"] = hook_url

    reload = Reloader(config, configfile.flag_types(serve), parse, apply, dict(ctx.params))
    try:
        run_forever(service, adapters, lambda: _log_budget(fds, limits.max_streams), reload)
    except (StartupError, BackendUnavailable) as exc:
        _fail(str(exc))


def _rate(rate: float) -> float:
    if not math.isfinite(rate):
        raise typer.BadParameter("--rate takes a number of posts a second, 0 for no limit")
    return rate


def _publish_hook(
    url: str | None, secret: str | None, timeout: float, fail_open: bool
) -> HttpPublishHook | None:
    if url is None:
        return None
    if not secret:
        raise typer.BadParameter("--publish-hook needs --webhook-secret to sign its requests")
    try:
        return HttpPublishHook(url, secret, timeout, fail_open)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _strs(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list | tuple) else []


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _int(value: object) -> int:
    return int(value) if isinstance(value, int) else 0


_UNSHARED = ("memory", "sqlite")  # backends whose rooms live in one process


def _refuse_unshared(backend: str, workers: int) -> None:
    scheme = backend.partition(":")[0]
    if scheme in _UNSHARED:
        _fail(
            f"--workers {workers} needs a backend the processes share, such as redis://HOST:PORT/DB;"
            f" {scheme} keeps rooms inside one process"
        )


def _authenticator(
    auth: str, key: str | None, issuer: str | None, audience: str | None, anonymous_read: bool
) -> Authenticator:
    if auth == "none":
        if key is not None:
            raise typer.BadParameter("--jwt-key needs --auth jwt")
        return OpenAuthenticator()
    if auth != "jwt":
        raise typer.BadParameter("--auth must be none or jwt")
    if key is None:
        raise typer.BadParameter("--auth jwt needs --jwt-key SECRET|FILE")
    try:
        return JwtAuthenticator(key, issuer=issuer, audience=audience, anonymous_read=anonymous_read)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _trusted_proxies(values: list[str]) -> tuple[str, ...]:
    cidrs = tuple(comma_list(values))
    try:
        trusted_networks(cidrs)
    except ValueError as exc:
        raise typer.BadParameter(f"--trust-proxy takes an IP address or CIDR: {exc}") from None
    return cidrs


_SIZE = re.compile(r"(\d{1,15})\s*(|B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
_SIZE_UNITS |= {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def _size(option: str, value: str) -> int:
    """Bytes from `64MiB`, `1GiB`, `500MB` or a plain number of bytes."""
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise typer.BadParameter(f"{option} takes a size such as 64MiB, 1GiB or a byte count, got {value!r}")
    return int(match[1]) * _SIZE_UNITS[match[2].lower()]


def _max_streams(value: str) -> int | None:
    """None for auto, else N (0: no limit)."""
    if value.strip().lower() == "auto":
        return None
    if not (validation.is_whole_number(value) and len(value) <= 9):
        raise typer.BadParameter(f"--max-streams takes auto or a whole number, got {value!r}")
    return int(value)


def _log_budget(fds: Budget, max_streams: int) -> None:
    """Said once serving (a server that fails to start says one line, its reason)."""
    log = logging.getLogger("roomchat")
    log.info(
        "open-file limit %d: room for %d streams and %d HTTP connections; --max-streams %s",
        fds.limit,
        fds.streams,
        fds.http_connections,
        max_streams or "0 (no limit)",
    )
    if not max_streams or max_streams > fds.streams:
        log.warning(
            "--max-streams is above what the open-file limit allows (%d): past that,"
            " new connections are answered 503 instead",
            fds.streams,
        )


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
    for row in listing(dict(available())):
        print(row)


@app.command()
def backends() -> None:
    """List every backend found, by URL scheme: scheme, distribution and version."""
    for row in listing(dict(backend_registry.available())):
        print(row)


app.command()(bench)


_SECRETS = ("jwt_key", "webhook_secret")  # masked by `roomchat config`


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def config(ctx: typer.Context) -> None:
    """Print the settings `serve` would run with, given the same options, and where each comes from."""
    group = ctx.parent
    assert group is not None
    serve_command = group.command.get_command(group, "serve")  # type: ignore[attr-defined]
    path = configfile.path_in(ctx.args, os.environ)
    parsed = serve_command.make_context("serve", list(ctx.args), default_map=ctx.default_map)
    print("[serve]")
    for flag, option in configfile.flag_types(serve).items():
        name = option.name
        value = parsed.params[name]
        source = parsed.get_parameter_source(name)
        where = {
            "COMMANDLINE": "flag",
            "ENVIRONMENT": f"env {_env(name.rstrip('_').upper())}",
            "DEFAULT_MAP": f"file {path}",
        }.get(source.name if source else "", "default")
        if value is None or (isinstance(value, list | tuple) and not value):
            print(f"# {flag} = (not set)  # {where}")
            continue
        shown = '"********"' if name in _SECRETS else configfile.toml_value(value)
        print(f"{flag} = {shown}  # {where}")


@app.command()
def token(
    sub: Annotated[str, typer.Option("--sub", metavar="NAME", help="The user id (`sub` claim).")],
    jwt_key: Annotated[
        str, typer.Option(envvar=_env("JWT_KEY"), metavar="SECRET", help="The server's HS256 secret.")
    ],
    rooms: Annotated[
        list[str] | None,
        typer.Option("--rooms", metavar="PATTERN", help="Rooms to read and post in: 'team-*' (repeatable)."),
    ] = None,
    read: Annotated[
        list[str] | None, typer.Option("--read", metavar="PATTERN", help="Rooms to only read (repeatable).")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May delete rooms and post as anyone.")] = False,
    ttl: Annotated[str, typer.Option(metavar="DURATION", help="Lifetime: 45s, 30m, 1h, 7d.")] = "1h",
    jwt_issuer: Annotated[str | None, typer.Option(envvar=_env("JWT_ISSUER"), metavar="ISS")] = None,
    jwt_audience: Annotated[str | None, typer.Option(envvar=_env("JWT_AUDIENCE"), metavar="AUD")] = None,
) -> None:
    """Print a token for --auth jwt, signed with --jwt-key (HS256)."""
    try:
        print(
            mint(
                jwt_key,
                sub,
                rooms=rooms,
                read=read or (),
                admin=admin,
                ttl=_duration(ttl),
                issuer=jwt_issuer,
                audience=jwt_audience,
            )
        )
    except (ValueError, ValidationError) as exc:
        raise typer.BadParameter(getattr(exc, "message", str(exc))) from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str) -> float:
    number, unit = (value[:-1], value[-1]) if value[-1:] in _UNITS else (value, "s")
    if not (1 <= len(number) <= 9 and validation.is_whole_number(number)) or int(number) == 0:
        raise typer.BadParameter(f"--ttl takes a duration such as 45s, 30m, 1h or 7d, got {value!r}")
    return float(int(number) * _UNITS[unit])


@app.command()
def version() -> None:
    """Print roomchat's version."""
    print(__version__)


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"roomchat: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


_READS_THE_FILE = ("serve", "config")


def _serve_args(argv: list[str]) -> list[str] | None:
    """What follows `serve` (or `config`) in the command line; None for another command."""
    for index, arg in enumerate(argv):
        if not arg.startswith("-"):
            return argv[index + 1 :] if arg in _READS_THE_FILE else None
    return None


def _file_defaults(argv: list[str]) -> dict[str, object] | None:
    """`--config`'s (or ROOMCHAT_CONFIG's) [serve] table as the default map of `serve` and `config`."""
    args = _serve_args(argv)
    path = None if args is None else configfile.path_in(args, os.environ)
    if path is None:
        return None
    try:
        values = configfile.read(path, configfile.flag_types(serve))
    except configfile.ConfigError as exc:
        _fail(str(exc), 2)
    return dict.fromkeys(_READS_THE_FILE, values)


def main() -> None:
    """Entry point: usage errors are one line on stderr, never a traceback."""
    command = typer.main.get_command(app)
    startup.show_placeholders(command)
    argv = sys.argv[1:]
    default_map = _file_defaults(argv)
    try:
        code = command.main(args=argv, prog_name="roomchat", standalone_mode=False, default_map=default_map)
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
