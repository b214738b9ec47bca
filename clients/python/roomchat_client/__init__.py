"""roomchat's Python client: one WebSocket, reconnect and resume by itself, publish exactly once."""

from roomchat_client.client import Client
from roomchat_client.errors import RoomchatError
from roomchat_client.events import Event, Gap, Message, Presence
from roomchat_client.subscription import Subscription

__all__ = ["Client", "Event", "Gap", "Message", "Presence", "RoomchatError", "Subscription"]
__version__ = "0.1.0"
