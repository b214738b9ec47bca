#!/bin/sh
# Regenerates roomchat/adapters/grpc/generated/ from protos/message.proto.
# Run from anywhere: scripts/gen_protos.sh [python]   (default: .venv/bin/python)
# tests/adapters/grpc/test_generated.py fails when the generated code is stale.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${1:-.venv/bin/python}"
OUT=roomchat/adapters/grpc/generated
"$PYTHON" -m grpc_tools.protoc -I protos \
    --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
    protos/message.proto
# protoc writes `import message_pb2`, which only works from the output folder.
sed -i 's/^import message_pb2 as message__pb2$/from roomchat.adapters.grpc.generated import message_pb2 as message__pb2/' \
    "$OUT/message_pb2_grpc.py"
echo "generated $OUT/message_pb2.py, message_pb2.pyi, message_pb2_grpc.py"
