"""roomchat: a realtime chat server with rooms, history and pluggable transports."""

__version__ = "0.1.0"
