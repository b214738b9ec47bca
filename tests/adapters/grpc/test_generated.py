"""The generated code matches protos/message.proto, which keeps the Go server's wire format."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from roomchat.adapters.grpc.generated import message_pb2

PROTOS = Path(__file__).resolve().parents[3] / "protos"


def compiled(tmp_path: Path) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path / "message.pb"
    args = ["protoc", f"-I{PROTOS}", f"--descriptor_set_out={out}", str(PROTOS / "message.proto")]
    code = protoc.main(args)
    assert code == 0, "protoc could not compile protos/message.proto"
    [file] = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return file


def normalized(file: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """Without what protoc versions and output kinds differ in (json_name, source info)."""
    file = descriptor_pb2.FileDescriptorProto.FromString(file.SerializeToString())
    file.ClearField("source_code_info")
    for message in file.message_type:
        for field in message.field:
            field.ClearField("json_name")
    return file


def test_generated_code_is_up_to_date_with_the_proto(tmp_path: Path) -> None:
    generated = descriptor_pb2.FileDescriptorProto.FromString(message_pb2.DESCRIPTOR.serialized_pb)
    # Compared as descriptors, not as text, so another grpcio-tools version agrees.
    if normalized(compiled(tmp_path)) != normalized(generated):
        pytest.fail("roomchat/adapters/grpc/generated is stale: run scripts/gen_protos.sh")


def test_the_go_servers_names_and_numbers_are_unchanged(tmp_path: Path) -> None:
    file = compiled(tmp_path)
    assert file.package == "message"
    fields = {m.name: [(f.name, f.number) for f in m.field] for m in file.message_type}
    assert fields["Message"][:3] == [("userId", 1), ("roomId", 2), ("text", 3)]
    assert fields["RoomRequest"][:2] == [("userId", 1), ("roomId", 2)]
    assert fields["RoomResponse"][:3] == [("created", 1), ("success", 2), ("data", 3)]
    [room] = file.service
    methods = {m.name: (m.input_type, m.output_type, m.server_streaming) for m in room.method}
    assert room.name == "Room"
    assert methods == {
        "GetRoom": (".message.RoomRequest", ".message.RoomResponse", False),
        "PostToRoom": (".message.Message", ".message.RoomResponse", False),
        "DeleteRoom": (".message.RoomRequest", ".message.RoomResponse", False),
        "StreamRoom": (".message.RoomRequest", ".message.Message", True),
        "Presence": (".message.RoomRequest", ".message.RoomResponse", False),  # added
    }
