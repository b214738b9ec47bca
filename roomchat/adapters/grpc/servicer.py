"""The `message.Room` service: the rpcs of the contract over the Manager.

Registered through a generic handler with no serializers, so requests arrive
as bytes (parsed here, bad ones answered INVALID_ARGUMENT) and the stream
writes the shared bytes of `message.encode(to_protobuf)` as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from roomchat.adapters.grpc import codec
from roomchat.adapters.grpc.codec import to_protobuf
from roomchat.core import BackendUnavailable, EndReason, Listener, Manager, ValidationError, to_json
from roomchat.core.errors import Forbidden, Overloaded, RateLimited, RoomchatError, Unauthenticated
from roomchat.core.identity import Identity
from roomchat.core.message import dumps

SERVICE = "message.Room"
Context = grpc.aio.ServicerContext[Any, Any]

_ENDINGS = {
    EndReason.LAGGED: (grpc.StatusCode.RESOURCE_EXHAUSTED, "the listener was too slow and was dropped"),
    EndReason.SHUTDOWN: (grpc.StatusCode.UNAVAILABLE, "the server is stopping"),
    EndReason.UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, "the room's feed from the backend was lost"),
    EndReason.EXPIRED: (grpc.StatusCode.UNAUTHENTICATED, "the token expired"),
}
_ERRORS: dict[type[RoomchatError], grpc.StatusCode] = {
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    BackendUnavailable: grpc.StatusCode.UNAVAILABLE,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class RoomServicer:
    """Answers `/message.Room/*`; keeps its open streams to end them on stop."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager
        self._streams: set[Listener] = set()
        self._stopping = False
        self._calls = 0  # rpcs in flight, streams included
        self._idle = asyncio.Event()
        self._idle.set()

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "GetRoom": grpc.unary_unary_rpc_method_handler(self._unary(self.get_room)),
                "PostToRoom": grpc.unary_unary_rpc_method_handler(self._unary(self.post_to_room)),
                "DeleteRoom": grpc.unary_unary_rpc_method_handler(self._unary(self.delete_room)),
                "StreamRoom": grpc.unary_stream_rpc_method_handler(self.stream_room),
                "Presence": grpc.unary_unary_rpc_method_handler(self._unary(self.presence)),
            },
        )

    def stop(self) -> None:
        """The server is stopping: new rpcs and open streams end with UNAVAILABLE."""
        self._stopping = True
        for listener in self._streams:
            listener.end(EndReason.SHUTDOWN)

    async def drained(self, timeout: float) -> None:
        """Wait (at most `timeout`) for the rpcs in flight to finish."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()

    @contextlib.asynccontextmanager
    async def _call(self, context: Context) -> AsyncIterator[None]:
        if self._stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is stopping")
        self._calls += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._calls -= 1
            if not self._calls:
                self._idle.set()

    # -- unary rpcs: request bytes in, RoomResponse bytes out ---------------------

    def _identify(self, context: Context) -> Identity:
        """The caller: metadata `authorization: Bearer <token>`, and the peer's address."""
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, rest = value.strip().partition(" ")
                if scheme.lower() == "bearer" and rest.strip():
                    token = rest.strip()
        return self._manager.identify(token, _peer_address(context.peer()))

    async def get_room(self, data: bytes, identity: Identity, context: Context) -> bytes:
        request = codec.room_request(data)
        info = await self._manager.room(request.roomId, identity=identity)
        created = info.listeners == 0 and info.last_id is None  # nobody had used it
        return codec.response(created=created, data=dumps(info.to_dict()))

    async def post_to_room(self, data: bytes, identity: Identity, context: Context) -> bytes:
        posted = codec.posted(data)
        user = posted.userId or None  # proto3 cannot tell "" from absent: under jwt the token names it
        key = _metadata(context, "idempotency-key")
        stored = await self._manager.submit_once(posted.roomId, user, posted.text, key=key, identity=identity)
        if stored.replayed:  # the first post's message; this one stored nothing
            context.set_trailing_metadata((("idempotent-replayed", "true"),))
        return codec.response(created=not stored.replayed, data=stored.message.encode(to_json))

    async def delete_room(self, data: bytes, identity: Identity, context: Context) -> bytes:
        request = codec.room_request(data)
        await self._manager.delete(request.roomId, identity=identity)
        return codec.response()

    async def presence(self, data: bytes, identity: Identity, context: Context) -> bytes:
        request = codec.room_request(data)
        found = await self._manager.presence(request.roomId, identity=identity)
        return codec.response(data=dumps(found.to_dict()))

    def _unary(
        self, call: Callable[[bytes, Identity, Context], Awaitable[bytes]]
    ) -> Callable[[bytes, Context], Awaitable[bytes]]:
        async def handle(data: bytes, context: Context) -> bytes:
            async with self._call(context):
                try:
                    return await call(data, self._identify(context), context)
                except RoomchatError as exc:
                    await _abort(context, exc)

        return handle

    # -- the stream ---------------------------------------------------------------

    async def stream_room(self, data: bytes, context: Context) -> None:
        async with self._call(context):
            await self._stream_room(data, context)

    async def _stream_room(self, data: bytes, context: Context) -> None:
        try:
            request = codec.room_request(data)
            identity = self._identify(context)
            async with self._manager.listen(
                request.roomId,
                request.lastId or None,
                transport="grpc",
                identity=identity,
                user_id=request.userId or None,  # the Go clients send it: it names them in presence
            ) as listener:
                self._streams.add(listener)
                if self._stopping:  # it was opening when `stop` ran
                    listener.end(EndReason.SHUTDOWN)
                try:
                    await _pump(listener, context)
                finally:
                    self._streams.discard(listener)
        except RoomchatError as exc:
            await _abort(context, exc)
        else:
            await _end(listener, context)


async def _pump(listener: Listener, context: Context) -> None:
    """Write every message as it comes until the listener ends. The client going
    away cancels this task (grpc.aio does), which closes the listener."""
    gap = listener.gap
    await context.send_initial_metadata(
        (("roomchat-gap", codec.gap_json(gap.last_event_id, gap.oldest_id)),) if gap else ()
    )
    write = context.write
    while True:
        await listener.wait()
        # One write per message is grpc.aio's floor; the bytes are shared by every listener.
        for message in listener.take():
            await write(message.encode(to_protobuf))
        if listener.done:
            return


async def _end(listener: Listener, context: Context) -> None:
    """The stream's status: OK after a delete, an error code the client can act on otherwise."""
    reason = listener.ended
    if reason is EndReason.DELETED:
        context.set_trailing_metadata((("roomchat-end", reason.value),))
        return
    if reason is None or reason not in _ENDINGS:
        return  # the client went away
    code, why = _ENDINGS[reason]
    metadata = [("roomchat-end", reason.value)]
    last_id = listener.last_id
    if last_id is None:
        detail = f"{why}; open the stream again"
    else:
        detail = f"{why}; resume with lastId={last_id}"
        metadata.append(("roomchat-last-id", last_id))
    await context.abort(code, detail, tuple(metadata))


async def _abort(context: Context, exc: RoomchatError) -> NoReturn:
    """A domain error as the contract's status code."""
    if isinstance(exc, ValidationError):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message, (("roomchat-field", exc.field),))
    if isinstance(exc, RateLimited):  # seconds as HTTP's Retry-After
        await context.abort(_ERRORS[RateLimited], str(exc), (("retry-after", str(exc.retry_seconds)),))
    code = next((code for kind, code in _ERRORS.items() if isinstance(exc, kind)), None)
    if code is None:  # a domain error with no code of its own: a limit
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
    await context.abort(code, str(exc) or "the backend cannot be reached")


def _peer_address(peer: str | None) -> str | None:
    """`ipv4:127.0.0.1:5000` or `ipv6:[::1]:5000` -> the IP; None for anything else."""
    if not peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    return None


def _metadata(context: Context, name: str) -> str | None:
    """The first value of a text metadata key the client sent."""
    for key, value in context.invocation_metadata() or ():
        if key == name and isinstance(value, str):
            return value
    return None
