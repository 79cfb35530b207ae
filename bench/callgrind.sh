#!/usr/bin/env bash
# bench/callgrind.sh - instructions per proxied request, of two healproxy
# builds, counted by valgrind's callgrind: a figure that does not drift with
# the machine's load, for before/after comparisons (BENCHMARKS.md).
#
#   COMPARE_REV=<rev> bench/callgrind.sh         HEAD's work tree vs <rev>
#   REV=<rev> COMPARE_REV=<rev> bench/callgrind.sh
#
# Each build serves one provider in front of bench/cmd/upstream, under
# callgrind, for N1 and then N2 sequential keep-alive requests (GET and
# POST); instructions per request = (I(N2) - I(N1)) / (N2 - N1), so start-up
# and shutdown cancel out. Env: N1 (default 500), N2 (2500), PORT (9301).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${COMPARE_REV:?set COMPARE_REV to the revision to compare with}"
N1=${N1:-500}
N2=${N2:-2500}
PORT=${PORT:-9301}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }
WORK=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

build() { # build REV OUT: healproxy at REV ("" = the work tree)
	local rev=$1 out=$2 src=$REPO
	if [ -n "$rev" ]; then
		src=$WORK/src-$(basename "$out")
		git -C "$REPO" worktree add -q --detach "$src" "$rev"
	fi
	(cd "$src" && go build -trimpath -o "$out" ./cmd/healproxy)
	if [ -n "$rev" ]; then git -C "$REPO" worktree remove --force "$src"; fi
}
build "${REV:-}" "$WORK/after"
build "$COMPARE_REV" "$WORK/before"
(cd "$REPO" && go build -o "$WORK/upstream" ./bench/cmd/upstream && go build -o "$WORK/fixedload" ./bench/cmd/fixedload)

"$WORK/upstream" -addr "127.0.0.1:$PORT" 2>/dev/null &
pids+=($!)
cat >"$WORK/proxy.hcl" <<HCL
listen = "127.0.0.1:$((PORT + 1))"
provider "bench" {
  upstreams = ["http://127.0.0.1:$PORT"]
}
HCL

# count BIN N METHOD: the instructions of one healproxy run serving N requests
count() {
	local bin=$1 n=$2 method=$3 out=$WORK/cg.$RANDOM
	GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file="$out" -q "$bin" run -config "$WORK/proxy.hcl" 2>/dev/null &
	local vp=$!
	"$WORK/fixedload" -url "http://127.0.0.1:$((PORT + 1))/providers/bench/x" -n "$n" -method "$method" -wait 60s
	kill -INT "$vp"
	wait "$vp" || true
	awk '/^summary:|^totals:/ {print $2; exit}' "$out"
}

printf '%-6s %-8s %14s %14s %14s\n' method build "I(N1=$N1)" "I(N2=$N2)" "per request"
for method in GET POST; do
	for b in before after; do
		i1=$(count "$WORK/$b" "$N1" "$method")
		i2=$(count "$WORK/$b" "$N2" "$method")
		per=$(( (i2 - i1) / (N2 - N1) ))
		printf '%-6s %-8s %14d %14d %14d\n' "$method" "$b" "$i1" "$i2" "$per"
		eval "per_${method}_$b=$per"
	done
	b=per_${method}_before a=per_${method}_after
	awk -v a="${!a}" -v b="${!b}" -v m="$method" 'BEGIN {printf "%s: after/before = %.3f\n", m, a/b}'
done
