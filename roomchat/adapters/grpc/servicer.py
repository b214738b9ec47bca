"""The `message.Room` service: the rpcs of the contract over the Manager.

Served by grpclib with `codec.Codec`, so requests arrive as bytes (parsed here,
bad ones answered INVALID_ARGUMENT) and replies leave as bytes built here; the
stream writes each message's shared gRPC frame (`writer.Direct`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from roomchat.adapters.grpc import codec
from roomchat.adapters.grpc.writer import Direct, one_write
from roomchat.adapters.http.identity import bearer
from roomchat.core import BackendUnavailable, EndReason, Listener, Manager, ValidationError, to_json
from roomchat.core.errors import (
    Forbidden,
    Overloaded,
    RateLimited,
    RoomchatError,
    Unauthenticated,
    Unavailable,
)
from roomchat.core.identity import Identity
from roomchat.core.message import dumps

SERVICE = "message.Room"
Call = Stream[bytes, bytes]
Trailers = tuple[tuple[str, str], ...]

_ENDINGS = {
    EndReason.LAGGED: (Status.RESOURCE_EXHAUSTED, "the listener was too slow and was dropped"),
    EndReason.SHUTDOWN: (Status.UNAVAILABLE, "the server is stopping"),
    EndReason.UNAVAILABLE: (Status.UNAVAILABLE, "the room's feed from the backend was lost"),
    EndReason.EXPIRED: (Status.UNAUTHENTICATED, "the token expired"),
}
_ERRORS: dict[type[RoomchatError], Status] = {
    Unauthenticated: Status.UNAUTHENTICATED,
    Forbidden: Status.PERMISSION_DENIED,
    BackendUnavailable: Status.UNAVAILABLE,
    Unavailable: Status.UNAVAILABLE,
    RateLimited: Status.RESOURCE_EXHAUSTED,
    Overloaded: Status.RESOURCE_EXHAUSTED,
}


class RoomServicer:
    """Answers `/message.Room/*`; keeps its open streams to end them on stop."""

    def __init__(self, manager: Manager, max_request: int) -> None:
        self._manager = manager
        self._max_request = max_request
        self._streams: set[Listener] = set()
        self._stopping = False
        self._calls = 0  # rpcs in flight, streams included
        self._idle = asyncio.Event()
        self._idle.set()

    def __mapping__(self) -> dict[str, Handler]:
        """grpclib's registry of methods."""
        unary = Cardinality.UNARY_UNARY
        return {
            f"/{SERVICE}/GetRoom": Handler(self._unary(self.get_room), unary, bytes, bytes),
            f"/{SERVICE}/PostToRoom": Handler(self._unary(self.post_to_room), unary, bytes, bytes),
            f"/{SERVICE}/DeleteRoom": Handler(self._unary(self.delete_room), unary, bytes, bytes),
            f"/{SERVICE}/StreamRoom": Handler(self.stream_room, Cardinality.UNARY_STREAM, bytes, bytes),
            f"/{SERVICE}/Presence": Handler(self._unary(self.presence), unary, bytes, bytes),
        }

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
    async def _call(self) -> AsyncIterator[None]:
        if self._stopping:
            raise GRPCError(Status.UNAVAILABLE, "the server is stopping")
        self._calls += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._calls -= 1
            if not self._calls:
                self._idle.set()

    def _identify(self, stream: Call) -> Identity:
        """The caller: metadata `authorization: Bearer <token>`, and the peer's address."""
        authorization = _metadata(stream, "authorization")
        token = bearer(authorization) if authorization is not None else None
        peer = stream.peer.addr()
        return self._manager.identify(token, str(peer[0]) if peer else None)

    # -- unary rpcs: request bytes in, RoomResponse bytes (and trailing metadata) out --

    async def get_room(self, data: bytes, identity: Identity, stream: Call) -> tuple[bytes, Trailers]:
        request = codec.room_request(data)
        info = await self._manager.room(request.roomId, identity=identity)
        created = info.listeners == 0 and info.last_id is None  # nobody had used it
        return codec.response(created=created, data=dumps(info.to_dict())), ()

    async def post_to_room(self, data: bytes, identity: Identity, stream: Call) -> tuple[bytes, Trailers]:
        posted = codec.posted(data)
        user = posted.userId or None  # proto3 cannot tell "" from absent: under jwt the token names it
        key = _metadata(stream, "idempotency-key")
        stored = await self._manager.submit_once(posted.roomId, user, posted.text, key=key, identity=identity)
        # A replay answers the first post's message; this one stored nothing.
        trailers = (("idempotent-replayed", "true"),) if stored.replayed else ()
        return codec.response(created=not stored.replayed, data=stored.message.encode(to_json)), trailers

    async def delete_room(self, data: bytes, identity: Identity, stream: Call) -> tuple[bytes, Trailers]:
        request = codec.room_request(data)
        await self._manager.delete(request.roomId, identity=identity)
        return codec.response(), ()

    async def presence(self, data: bytes, identity: Identity, stream: Call) -> tuple[bytes, Trailers]:
        request = codec.room_request(data)
        found = await self._manager.presence(request.roomId, identity=identity)
        return codec.response(data=dumps(found.to_dict())), ()

    def _unary(
        self, call: Callable[[bytes, Identity, Call], Awaitable[tuple[bytes, Trailers]]]
    ) -> Callable[[Call], Awaitable[None]]:
        async def handle(stream: Call) -> None:
            async with self._call():
                data = await codec.read_request(stream, self._max_request)
                try:
                    reply, trailers = await call(data, self._identify(stream), stream)
                except RoomchatError as exc:
                    await _abort(stream, exc)
                    return
                with one_write(stream._stream, len(reply) + 5):
                    await stream.send_message(reply)
                    await stream.send_trailing_metadata(metadata=trailers or None)

        return handle

    # -- the stream ---------------------------------------------------------------

    async def stream_room(self, stream: Call) -> None:
        async with self._call():
            data = await codec.read_request(stream, self._max_request)
            try:
                request = codec.room_request(data)
                async with self._manager.listen(
                    request.roomId,
                    request.lastId or None,
                    transport="grpc",
                    identity=self._identify(stream),
                    user_id=request.userId or None,  # the Go clients send it: it names them in presence
                ) as listener:
                    self._streams.add(listener)
                    if self._stopping:  # it was opening when `stop` ran
                        listener.end(EndReason.SHUTDOWN)
                    try:
                        await _pump(listener, stream)
                    finally:
                        self._streams.discard(listener)
            except RoomchatError as exc:
                await _abort(stream, exc)
                return
            await _end(listener, stream)


async def _pump(listener: Listener, stream: Call) -> None:
    """Write every message as it comes until the listener ends. The client going
    away cancels this task (grpclib does), which closes the listener."""
    gap = listener.gap
    await stream.send_initial_metadata(
        metadata={"roomchat-gap": codec.gap_json(gap.last_event_id, gap.oldest_id)} if gap else None
    )
    direct = Direct(listener, stream._stream)
    try:
        while True:
            await listener.wait()
            data = direct.unsent()  # what the fast path could not write; the replay first of all
            if data:
                await stream._stream.send_data(data)  # grpclib's: it waits for the windows
            if listener.done:
                return
    finally:
        direct.detach()


async def _end(listener: Listener, stream: Call) -> None:
    """The stream's status: OK after a delete, an error code the client can act on otherwise."""
    reason = listener.ended
    if reason is EndReason.DELETED:
        await stream.send_trailing_metadata(metadata={"roomchat-end": reason.value})
        return
    if reason is None or reason not in _ENDINGS:
        return  # the client went away
    code, why = _ENDINGS[reason]
    metadata = {"roomchat-end": reason.value}
    last_id = listener.last_id
    if last_id is None:
        detail = f"{why}; open the stream again"
    else:
        detail = f"{why}; resume with lastId={last_id}"
        metadata["roomchat-last-id"] = last_id
    with one_write(stream._stream, 0):
        await stream.send_trailing_metadata(status=code, status_message=detail, metadata=metadata)


async def _abort(stream: Call, exc: RoomchatError) -> None:
    """A domain error as the contract's status code."""
    metadata: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        code, detail = Status.INVALID_ARGUMENT, exc.message
        metadata["roomchat-field"] = exc.field
    elif isinstance(exc, RateLimited):  # seconds as HTTP's Retry-After
        code, detail = _ERRORS[RateLimited], str(exc)
        metadata["retry-after"] = str(exc.retry_seconds)
    else:
        # A domain error with no code of its own is a limit.
        code = next(
            (code for kind, code in _ERRORS.items() if isinstance(exc, kind)), Status.RESOURCE_EXHAUSTED
        )
        detail = str(exc) or "the backend cannot be reached"
    with one_write(stream._stream, 0):  # the trailers, and the RST_STREAM grpclib follows them with
        await stream.send_trailing_metadata(status=code, status_message=detail, metadata=metadata or None)


def _metadata(stream: Call, name: str) -> str | None:
    """The first value of a text metadata key the client sent."""
    value = stream.metadata.get(name) if stream.metadata else None
    return value if isinstance(value, str) else None
