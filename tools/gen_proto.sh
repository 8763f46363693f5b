#!/usr/bin/env bash
# Generates the Python messages, gRPC stubs and mypy stubs of every contract in proto/
# into python/nexus/<service>/v1/ (never committed: see docs/contracts.md).
set -euo pipefail
py=${1:-.venv/bin/python}
cd "$(dirname "$0")/.."
mapfile -t protos < <(find proto -name '*.proto' | sort)
# Remove stale output first, so a deleted .proto leaves no module behind.
for f in "${protos[@]}"; do
  rm -rf "python/$(dirname "${f#proto/}")"
done
PATH="$(dirname "$py"):$PATH" "$py" -m grpc_tools.protoc -Iproto -Ithird_party/proto \
  --python_out=python --grpc_python_out=python \
  --mypy_out=quiet:python --mypy_grpc_out=quiet:python \
  "${protos[@]}"
for f in "${protos[@]}"; do
  d="python/$(dirname "${f#proto/}")"
  touch "$d/__init__.py" "$(dirname "$d")/__init__.py"
done
echo "generated Python code for ${#protos[@]} proto files"
