"""The domain: rooms, messages, listeners and the ports around them.

Imports no web, gRPC or command-line framework.
"""

from roomchat.core.errors import BackendUnavailable, RoomchatError, ValidationError
from roomchat.core.listener import EndReason, Gap, Listener
from roomchat.core.message import Codec, Message, to_json
from roomchat.core.ports import Backend, BackendSink, Manager, Posted, Replay, RoomInfo, Stats
from roomchat.core.presence import PresenceNote, RoomPresence
from roomchat.core.service import RoomService

__all__ = [
    "Backend",
    "BackendSink",
    "BackendUnavailable",
    "Codec",
    "EndReason",
    "Gap",
    "Listener",
    "Manager",
    "Message",
    "Posted",
    "PresenceNote",
    "Replay",
    "RoomInfo",
    "RoomPresence",
    "RoomService",
    "RoomchatError",
    "Stats",
    "ValidationError",
    "to_json",
]
