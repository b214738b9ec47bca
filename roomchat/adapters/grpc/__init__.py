"""The `grpc` adapter: the `message.Room` service, wire-compatible with the Go server."""

from roomchat.adapters.grpc.adapter import GrpcAdapter

__all__ = ["GrpcAdapter"]
