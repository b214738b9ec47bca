"""Driven adapters that call the app's own backend over HTTP: the publish hook (and,
as they land, webhooks), signed with the shared secret (contract: Webhooks, Publish hook)."""

from roomchat.hooks.publish import HttpPublishHook
from roomchat.hooks.signing import SIGNATURE_HEADER, signature, verify

__all__ = ["SIGNATURE_HEADER", "HttpPublishHook", "signature", "verify"]
