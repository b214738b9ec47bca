"""Every `roomchat` command line quoted in README.md and docs/ against the real CLI.

- Each subcommand's `--help` runs (as a process) and every option a quoted line
  shows is in it; a value shown as alternatives (`sse|ws|grpc`) is among the
  alternatives `--help` shows.
- A synopsis (a line with `[...]`) of `serve` or `token` in the README or
  docs/configuration.md shows every option `--help` shows.
- A concrete line (no `[...]`) parses: no unknown option, no missing required
  one (placeholders such as `URL` or `…` stand for any value).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

from roomchat import startup
from roomchat.bench.clients import CLIENTS
from roomchat.cli import app, click_errors
from tests.support import roomchat_process

ROOT = Path(__file__).parent.parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUBCOMMANDS = ("serve", "bench", "token", "adapters", "backends", "version")
_START = re.compile(rf"(?<![\w-])roomchat (?=(?:{'|'.join(SUBCOMMANDS)})\b|--)")
_PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z_]*|…|\.\.\.|\$!|.*<\w+>.*|.*…)$")
_SYNOPSES_IN_FULL = ("README.md", "configuration.md")


def _fenced_lines(text: str) -> list[str]:
    lines: list[str] = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if lines and _START.search(lines[-1]) and re.match(r"\s+\[", line):
                lines[-1] += " " + line.strip()  # a synopsis goes on over indented lines
            else:
                lines.append(line)
    return lines


def _inline_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))


def _command(line: str) -> str | None:
    """The `roomchat ...` part of a shell line: no prompt, comment, pipe or `&`."""
    found = _START.search(line)
    if found is None:
        return None
    command = re.split(r"\s+#\s|\s\|\s(?=[a-z]+\s)|&&|\)|`|\s&$", line[found.start() :])[0]
    return command.strip().removesuffix("&").strip()


def quoted() -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for document in DOCUMENTS:
        text = document.read_text()
        for line in [*_fenced_lines(text), *_inline_spans(text)]:
            command = _command(line)
            if command:
                seen[(document.name, command)] = None
    return list(seen)


@cache
def _cli() -> Any:
    """The command line's click group, as `roomchat` builds it."""
    command = typer.main.get_command(app)
    startup.show_placeholders(command)
    return command


@cache
def _help(subcommand: str) -> str:
    """`roomchat SUBCOMMAND --help` from the installed command, as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "roomchat", *([subcommand] if subcommand else []), "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _options_in_help(subcommand: str) -> dict[str, str]:
    """Every option name `--help` shows, with the placeholder it shows for the value."""
    options: dict[str, str] = {}
    shown = r"^\s+((?:-\w, )?--[\w-]+(?: / --[\w-]+)?)(?: ([^\s/]+))?"
    for names, value in re.findall(shown, _help(subcommand), re.M):
        for name in re.split(r", | / ", names):
            options[name] = value or ""
    return options


def _split(command: str) -> tuple[str, list[str]]:
    words = shlex.split(command.replace("…", " … ").replace(" | ", " "))[1:]
    subcommand = words[0] if words and not words[0].startswith("-") else ""
    return subcommand, words[1:] if subcommand else words


QUOTED = quoted()


def test_the_documents_quote_commands_of_every_kind() -> None:
    kinds = {_split(command)[0] for _, command in QUOTED}
    assert kinds >= {"serve", "bench", "token", "adapters", "backends", ""}, kinds


@pytest.mark.parametrize("subcommand", ["", *SUBCOMMANDS])
def test_help_of_each_subcommand_runs(subcommand: str) -> None:
    assert _help(subcommand).startswith("Usage: roomchat")


@pytest.mark.parametrize(("where", "command"), QUOTED, ids=[f"{w}: {c}"[:90] for w, c in QUOTED])
def test_every_option_a_quoted_line_shows_is_in_help(where: str, command: str) -> None:
    subcommand, words = _split(command)
    options = _options_in_help(subcommand)
    for at, word in enumerate(words):
        name = word.strip("[]").partition("=")[0]
        if not re.fullmatch(r"--?[a-z][\w-]*", name):
            continue
        assert name in options, f"{where} shows `{name}`, which `roomchat {subcommand} --help` lacks"
        value = words[at + 1].strip("[]") if at + 1 < len(words) else ""
        shown, real = set(value.split("|")), set(options[name].split("|"))
        if "|" in value and "|" in options[name]:
            assert shown <= real, f"{where}: `{name} {value}`, but --help says `{options[name]}`"
            if "[" in command:  # a synopsis names every alternative
                assert shown == real, f"{where}: `{name} {value}`, but --help says `{options[name]}`"


@pytest.mark.parametrize("subcommand", ["serve", "token"])
def test_each_full_synopsis_shows_every_option(subcommand: str) -> None:
    synopses = [
        (where, command)
        for where, command in QUOTED
        if where in _SYNOPSES_IN_FULL and "[" in command and _split(command)[0] == subcommand
    ]
    assert {where for where, _ in synopses} == set(_SYNOPSES_IN_FULL)
    hidden = {"--help", "--worker"}
    wanted = {name for name in _options_in_help(subcommand) if name.startswith("--")} - hidden
    wanted = {name for name in wanted if not name.startswith("--no-")}  # a flag's off switch
    for where, command in synopses:
        shown = set(re.findall(r"--[\w-]+", command))
        lacking = sorted(wanted - shown)
        assert not lacking, f"{where}'s synopsis of `roomchat {subcommand}` lacks {lacking}"


CONCRETE = [(where, command) for where, command in QUOTED if "[" not in command]


@pytest.mark.parametrize(("where", "command"), CONCRETE, ids=[f"{w}: {c}"[:90] for w, c in CONCRETE])
def test_every_concrete_line_parses(where: str, command: str) -> None:
    subcommand, words = _split(command)
    if not subcommand:
        return  # `roomchat --version`, `roomchat --help`: run by test_help_of_each_subcommand_runs
    env = {"ROOMCHAT_JWT_KEY": "set-in-the-document"} if _exports_jwt_key(where) else {}
    if not words or _takes_value(subcommand, words[-1]):
        return  # `roomchat token`, `roomchat serve --backend`: a name in the prose, not a command line
    for alternative in _alternatives(words):
        args = [
            "1" if _PLACEHOLDER.match(word) else word
            for at, word in enumerate(alternative)
            if word not in ("…", "...") or (at and _takes_value(subcommand, alternative[at - 1]))
        ]
        with pytest.MonkeyPatch.context() as patch:
            for name in ("ROOMCHAT_JWT_KEY",):
                patch.delenv(name, raising=False)
            for name, value in env.items():
                patch.setenv(name, value)
            try:
                _cli().commands[subcommand].make_context(f"roomchat {subcommand}", args)
            except click_errors.ClickException as exc:
                pytest.fail(f"{where}: `{command}`: {exc.format_message()}")


def _takes_value(subcommand: str, word: str) -> bool:
    params = _cli().commands[subcommand].params
    return any(word in param.opts and not param.is_flag for param in params)


def _alternatives(words: list[str]) -> list[list[str]]:
    """`--transport sse|ws` quoted as one line stands for each of its commands."""
    for at, word in enumerate(words):
        if "|" in word and at and words[at - 1].startswith("--"):
            return [[*words[:at], choice, *words[at + 1 :]] for choice in word.split("|")]
    return [words]


def _exports_jwt_key(where: str) -> bool:
    document = next(d for d in DOCUMENTS if d.name == where)
    return "export ROOMCHAT_JWT_KEY=" in document.read_text()


def test_bench_help_names_every_transport_it_has() -> None:
    assert set(_options_in_help("bench")["--transport"].split("|")) == set(CLIENTS)


def shown_serve_output(document: str) -> list[tuple[list[str], list[str]]]:
    """Each `$ roomchat serve ...` in a document's blocks, with the `roomchat:` lines shown after it."""
    shown = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", (ROOT / "docs" / document).read_text(), re.S):
        lines = block.splitlines()
        for at, line in enumerate(lines):
            if line.startswith("$ roomchat serve"):
                said = [each for each in lines[at + 1 :] if each.startswith("roomchat: ")]
                shown.append((shlex.split(line[2:].removesuffix("&"))[2:], said))
    return shown


def run_as_shown(args: list[str], said: list[str], env: dict[str, str] | None = None) -> None:
    """Runs `roomchat serve ARGS` on free ports; what it says is what the document shows."""
    expect = len([line for line in said if " listening on " in line])
    names = [line.split()[1] for line in said if " listening on " in line]
    free = [arg for name in names for arg in ("--port", f"{name}=0")]
    with roomchat_process(*args, *free, expect=expect, env=env) as server:
        port = re.compile(r":\d+$")
        assert [port.sub(":<port>", line) for line in server.said] == [port.sub(":<port>", s) for s in said]
        assert server.terminate() == 0


def test_security_md_shows_what_serve_says() -> None:
    [(args, said)] = shown_serve_output("security.md")
    run_as_shown(args, said, {"ROOMCHAT_JWT_KEY": "a-test-secret-of-at-least-32-bytes!"})
