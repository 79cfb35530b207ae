#!/usr/bin/env bash
# Regenerates plugins/proto/*.pb.go from plugins/proto/model.proto, and the
# Python plugin kit's code (plugins/python/healproxy_plugin/_proto/) from
# model.proto and plugins/python/proto/*.proto (gRPC health, go-plugin's
# controller and stdio services).
#
# Installs what it needs: protoc from Debian's protobuf-compiler package when
# protoc is missing, grpc_python_plugin from protobuf-compiler-grpc (the
# same gRPC release as Debian's python3-grpcio runtime), and pinned
# protoc-gen-go / protoc-gen-go-grpc into a temporary GOBIN (nothing is left
# in the user's GOBIN).
set -euo pipefail

# Pinned generator versions. protoc-gen-go must match the
# google.golang.org/protobuf runtime in go.mod; protoc-gen-go-grpc v1.6.x
# emits grpc.SupportPackageIsVersion9, which needs google.golang.org/grpc >= v1.64.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# apt_need PROGRAM PACKAGE installs PACKAGE when PROGRAM is missing.
apt_need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "gen-proto: $1 not found; installing $2" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
	if ! $sudo apt-get install -y "$2"; then
		$sudo apt-get update
		$sudo apt-get install -y "$2"
	fi
}
apt_need protoc protobuf-compiler
apt_need grpc_python_plugin protobuf-compiler-grpc

gobin="$(mktemp -d)"
trap 'rm -rf "$gobin"' EXIT
GOBIN="$gobin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN="$gobin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

PATH="$gobin:$PATH" protoc \
	--proto_path=plugins/proto \
	--go_out=plugins/proto --go_opt=paths=source_relative \
	--go-grpc_out=plugins/proto --go-grpc_opt=paths=source_relative \
	plugins/proto/model.proto

# Python: the .proto files are laid out under healproxy_plugin/_proto/ in a
# scratch tree, so that the generated modules import each other as
# healproxy_plugin._proto.X (protoc names imports after the proto path).
pyout="plugins/python"
pytree="$gobin/py"
mkdir -p "$pytree/healproxy_plugin/_proto"
cp plugins/proto/model.proto plugins/python/proto/*.proto "$pytree/healproxy_plugin/_proto/"
rm -f "$pyout"/healproxy_plugin/_proto/*_pb2.py "$pyout"/healproxy_plugin/_proto/*_pb2_grpc.py
(cd "$pytree" && protoc --proto_path=. \
	--python_out="$root/$pyout" \
	--grpc_out="$root/$pyout" --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" \
	healproxy_plugin/_proto/*.proto)

echo "gen-proto: regenerated plugins/proto (protoc $(protoc --version | awk '{print $2}'), protoc-gen-go ${PROTOC_GEN_GO_VERSION}, protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION})" >&2
