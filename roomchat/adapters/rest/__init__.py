"""The `rest` adapter: JSON routes and server-sent events over HTTP."""

from roomchat.adapters.rest.adapter import RestAdapter

__all__ = ["RestAdapter"]
