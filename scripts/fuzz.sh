#!/usr/bin/env bash
# Runs each fuzz target of healproxy for a bounded time, one at a time
# (go test -fuzz takes one target in one package per run).
#
#   FUZZTIME=10s scripts/fuzz.sh          # the default: 10s each
#   FUZZTIME=5m scripts/fuzz.sh FuzzParse # targets of that name, longer
#   scripts/fuzz.sh ./config/FuzzParse    # one package's target
#
# A failing input is written to the package's testdata/fuzz/<Target>/;
# commit it with the fix: plain `go test` then replays it for good.
# FUZZPARALLEL sets the number of fuzzing workers (default: go's, the
# number of CPUs). FUZZMINIMIZETIME (default 2s) bounds the minimizing of
# each new input: go's default of 60s would eat a short FUZZTIME whole.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-10s}"
minimize="${FUZZMINIMIZETIME:-2s}"
targets=(
	"./config/ FuzzParse"
	"./store/ FuzzOpen"
	"./proxy/ FuzzProviderPath"
	"./proxy/ FuzzPredictBody"
	"./proxy/ FuzzRestoreEntry"
	"./internal/h1/ FuzzLeanClient"
	"./internal/sse/ FuzzReader"
	"./internal/quota/ FuzzParse"
	"./internal/coalesce/ FuzzBroadcast"
	"./plugins/sentiment/ FuzzAnalyze"
)
parallel=()
if [[ -n "${FUZZPARALLEL:-}" ]]; then
	parallel=(-parallel "$FUZZPARALLEL")
fi

status=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	if [[ $# -gt 0 && ! " $* " =~ " $name " && ! " $* " =~ " $pkg$name " ]]; then
		continue
	fi
	echo "== $name ($pkg, $fuzztime)"
	# Go 1.26's fuzz coordinator can end a run at -fuzztime with "context
	# deadline exceeded" and no failing input (go.dev/issue/75804, fixed in
	# Go 1.27): such a run is tried once more; a run that writes an input,
	# or fails twice, fails.
	for try in 1 2; do
		corpus="${pkg}testdata/fuzz/$name"
		before=$(find "$corpus" -type f 2>/dev/null | wc -l || true)
		out=$(mktemp)
		if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "${parallel[@]}" "$pkg" 2>&1 | tee "$out"; then
			rm -f "$out"
			break
		fi
		after=$(find "$corpus" -type f 2>/dev/null | wc -l || true)
		if [[ $try == 1 && $after == "$before" ]] && grep -q "context deadline exceeded" "$out"; then
			echo "~~ $name: the fuzz coordinator's deadline race, no failing input written; once more" >&2
			rm -f "$out"
			continue
		fi
		rm -f "$out"
		echo "!! $name failed; the input is in $corpus/" >&2
		status=1
		break
	done
done
exit $status
