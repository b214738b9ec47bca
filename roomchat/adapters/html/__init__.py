"""The `html` adapter: a chat page in the browser, with its stream and form."""

from roomchat.adapters.html.adapter import HtmlAdapter

__all__ = ["HtmlAdapter"]
