"""`serve --config FILE.toml` (contract: Configuration file): the file's `[serve]`
table as the command's defaults.

The file is one more source of the same options, not a second settings model:
its keys are the flags' names, checked against the `serve` command's own
parameters and their types, and handed to the command line parser as its
`default_map`. So a flag beats `ROOMCHAT_*`, which beats the file, which beats
the option's default, and nothing here repeats a default or a flag.
"""

from __future__ import annotations

import inspect
import json
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ENV = "ROOMCHAT_CONFIG"
TABLE = "serve"
_NOT_IN_FILE = ("config", "worker")  # the file itself; set by the supervisor for its workers


class ConfigError(Exception):
    """One line naming the file and, where there is one, the key."""


@dataclass(frozen=True, slots=True)
class Option:
    """One option of the command as the file may set it."""

    name: str  # the parameter's name
    kind: type  # bool, int, float, str or list
    min: float | None = None
    max: float | None = None


def flag_types(command: Callable[..., object]) -> dict[str, Option]:
    """`flag-name` (the flag without its dashes) -> its Option, for a Typer command function."""
    hints = typing.get_type_hints(command, include_extras=True)
    found: dict[str, Option] = {}
    for name in inspect.signature(command).parameters:
        annotation = hints.get(name)
        if name in _NOT_IN_FILE or typing.get_origin(annotation) is not typing.Annotated:
            continue  # not an option (the click context), or not one a file sets
        base, *extras = typing.get_args(annotation)
        decls = [d for info in extras for d in getattr(info, "param_decls", None) or ()]
        declared = [d for d in decls if d.startswith("--")]
        flag = declared[0][2:] if declared else name.rstrip("_").replace("_", "-")
        bounds = [(getattr(info, "min", None), getattr(info, "max", None)) for info in extras]
        low, high = bounds[0] if bounds else (None, None)
        found[flag] = Option(name, _plain(base), low, high)
    return found


def _plain(annotation: Any) -> type:
    """bool, int, float, str or list from `X`, `X | None` or `list[str] | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    origin = typing.get_origin(annotation)
    return list if origin is list else typing.cast(type, annotation)


def read(path: str, flags: Mapping[str, Option]) -> dict[str, object]:
    """The file's `[serve]` table as parameter values by parameter name; ConfigError if it cannot be."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown_tables = [key for key in document if key != TABLE]
    if unknown_tables:
        raise ConfigError(f"{path}: unknown key {unknown_tables[0]!r}: the options go in a [{TABLE}] table")
    table = document.get(TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {TABLE!r} must be a table")
    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in flags:
            raise ConfigError(f"{path}: unknown key {key!r} in [{TABLE}]; see `roomchat serve --help`")
        option = flags[key]
        values[option.name] = _in_range(path, key, option, _typed(path, key, option.kind, value))
    return values


def _in_range(path: str, key: str, option: Option, value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if option.min is not None and value < option.min:
            raise ConfigError(f"{path}: {key} must be at least {option.min:g}, got {value:g}")
        if option.max is not None and value > option.max:
            raise ConfigError(f"{path}: {key} must be at most {option.max:g}, got {value:g}")
    return value


def _typed(path: str, key: str, kind: type, value: object) -> object:
    """The value as the option takes it, or ConfigError naming the key and what it wants."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        wants = "true or false"
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        wants = "a whole number"
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        wants = "a number"
    elif kind is list:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        wants = "an array of strings (the option is repeatable)"
    else:  # str: a number is written as itself (`max-streams = 5000`, `history-bytes = 0`)
        if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
            return str(value)
        wants = "a string"
    raise ConfigError(f"{path}: {key} must be {wants}, got {_shown(value)}")


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return "an array" if isinstance(value, list) else "a table"
    return repr(value) if isinstance(value, str) else str(value)


def toml_value(value: object) -> str:
    """A value as the file would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def path_in(args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The `--config` the arguments give, else ROOMCHAT_CONFIG, else None."""
    found: str | None = None
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--config" and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith("--config="):
            found = arg.partition("=")[2]
    return found if found is not None else environ.get(ENV) or None
