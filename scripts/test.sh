#!/usr/bin/env bash
# The whole test suite: what a new user runs, and what CI runs (.ci/run).
#   scripts/test.sh            everything
#   SKIP_CONFORMANCE=1 ...     everything but the black-box contract suite
#   FUZZTIME=30s ...           run each fuzzer longer (default 10s)
# gofmt, go vet and staticcheck must be clean. It installs what the tests
# need (Chromium for the UI tests, redis-server for the shared-state tests)
# through scripts/install-test-deps.sh, so a fresh machine needs nothing
# by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n== %s\n' "$*"; }

step "test dependencies"
bash scripts/install-test-deps.sh

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  printf 'gofmt would change:\n%s\n' "$unformatted"
  exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
# Built from the Go module proxy at a pinned version (staticcheck 2026.2.2).
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "go test -race"
go test -race -count=1 -timeout 15m ./...

step "fuzzing: each target for ${FUZZTIME:-10s} (scripts/fuzz.sh)"
FUZZTIME="${FUZZTIME:-10s}" FUZZPARALLEL="${FUZZPARALLEL:-1}" scripts/fuzz.sh

if [ "${SKIP_CONFORMANCE:-}" = 1 ]; then
  step "conformance suite skipped (SKIP_CONFORMANCE=1)"
  exit 0
fi
conf="$root/../shared/conformance"
if [ ! -d "$conf" ]; then
  if [ "${CI:-}" = true ]; then
    echo "conformance suite not found at ../shared/conformance" >&2
    exit 1
  fi
  step "conformance suite not found at ../shared/conformance: skipped"
  exit 0
fi
step "conformance suite${CONFORMANCE_SKIP:+ (skipping $CONFORMANCE_SKIP)}"
# The suite's module is read-only in CI: keep Go's build cache elsewhere if needed.
(cd "$conf" && HEALPROXY_SRC="$root" go test -count=1 -timeout 15m ./...)
