#!/usr/bin/env bash
# Regenerates plugins/proto/*.pb.go from plugins/proto/model.proto.
#
# Installs what it needs: protoc from Debian's protobuf-compiler package when
# protoc is missing, and pinned protoc-gen-go / protoc-gen-go-grpc into a
# temporary GOBIN (nothing is left in the user's GOBIN).
set -euo pipefail

# Pinned generator versions. protoc-gen-go must match the
# google.golang.org/protobuf runtime in go.mod; protoc-gen-go-grpc v1.6.x
# emits grpc.SupportPackageIsVersion9, which needs google.golang.org/grpc >= v1.64.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v protoc >/dev/null 2>&1; then
	echo "gen-proto: protoc not found; installing protobuf-compiler" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
	if ! $sudo apt-get install -y protobuf-compiler; then
		$sudo apt-get update
		$sudo apt-get install -y protobuf-compiler
	fi
fi

gobin="$(mktemp -d)"
trap 'rm -rf "$gobin"' EXIT
GOBIN="$gobin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN="$gobin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

PATH="$gobin:$PATH" protoc \
	--proto_path=plugins/proto \
	--go_out=plugins/proto --go_opt=paths=source_relative \
	--go-grpc_out=plugins/proto --go-grpc_opt=paths=source_relative \
	plugins/proto/model.proto

echo "gen-proto: regenerated plugins/proto (protoc $(protoc --version | awk '{print $2}'), protoc-gen-go ${PROTOC_GEN_GO_VERSION}, protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION})" >&2
