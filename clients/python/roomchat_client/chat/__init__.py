"""`roomchat-chat ROOM [--server URL] [--user NAME] [--token TOKEN]`: a roomchat room in the terminal."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roomchat-chat", description="Chat in a roomchat room.")
    parser.add_argument("room", help="the room to join, e.g. lobby")
    parser.add_argument(
        "--server",
        default=os.environ.get("ROOMCHAT_SERVER", "http://127.0.0.1:8080"),
        help="the rest adapter's origin (default: $ROOMCHAT_SERVER or http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--user",
        default=os.environ.get("ROOMCHAT_USER"),
        help="your name in the room (default: $ROOMCHAT_USER or your login; with --token, the token's sub)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("ROOMCHAT_TOKEN"),
        help="a JSON Web Token, for a server under --auth jwt (default: $ROOMCHAT_TOKEN)",
    )
    args = parser.parse_args(argv)
    user = args.user or (None if args.token else _login())
    try:
        from roomchat_client.chat.app import ChatApp
    except ImportError as missing:
        print(f"roomchat-chat needs: pip install 'roomchat-client[tui]' ({missing})", file=sys.stderr)
        return 1
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the screen took the keyboard
        ChatApp(args.room, args.server, user, args.token).run()
    return 0


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def run() -> None:
    sys.exit(main())
