from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("userId", "roomId", "text", "id", "time")
    USERID_FIELD_NUMBER: _ClassVar[int]
    ROOMID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    userId: str
    roomId: str
    text: str
    id: str
    time: str
    def __init__(self, userId: _Optional[str] = ..., roomId: _Optional[str] = ..., text: _Optional[str] = ..., id: _Optional[str] = ..., time: _Optional[str] = ...) -> None: ...

class RoomRequest(_message.Message):
    __slots__ = ("userId", "roomId", "lastId")
    USERID_FIELD_NUMBER: _ClassVar[int]
    ROOMID_FIELD_NUMBER: _ClassVar[int]
    LASTID_FIELD_NUMBER: _ClassVar[int]
    userId: str
    roomId: str
    lastId: str
    def __init__(self, userId: _Optional[str] = ..., roomId: _Optional[str] = ..., lastId: _Optional[str] = ...) -> None: ...

class RoomResponse(_message.Message):
    __slots__ = ("created", "success", "data")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    created: bool
    success: bool
    data: str
    def __init__(self, created: _Optional[bool] = ..., success: _Optional[bool] = ..., data: _Optional[str] = ...) -> None: ...
