#!/bin/sh
# install-test-deps.sh installs what healproxy's tests need beyond Go:
# Debian's Chromium (and a colour emoji font) for the browser tests of the
# web UI (proxy/ui_browser_test.go), and Debian's redis-server for the
# shared-state tests (cluster/, cmd/healproxy/cluster_e2e_test.go; each
# test starts its own server on a free loopback port and stops it).
# Idempotent, and quiet when everything is there already. Installing needs
# root or password-less sudo and apt-get.
#
# When it cannot install, it warns and exits 0, so that the browser and
# Redis tests skip with a loud message; with CI=true it fails instead.
set -eu

missing=""
paths=""
# need PATH PACKAGE: PACKAGE is installed unless PATH exists. One line per
# need, so that a new suite adds one line.
need() {
	paths="$paths $1"
	[ -e "$1" ] || missing="$missing $2"
}
need /usr/bin/chromium chromium
# The UI's status badges are emoji (✅ ⚠️ ❌ ❔): without a colour emoji font
# the screenshot kept in docs/ shows empty boxes.
need /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf fonts-noto-color-emoji
need /usr/bin/redis-server redis-server
need /usr/bin/redis-sentinel redis-sentinel
need /usr/sbin/ip iproute2
# The Python plugin kit and its example (plugins/python, examples/python-model;
# supervisor/python_test.go, cmd/healproxy/plugincheck_test.go).
need /usr/lib/python3/dist-packages/grpc python3-grpcio
need /usr/lib/python3/dist-packages/google/protobuf python3-protobuf
need /usr/lib/python3/dist-packages/cryptography python3-cryptography
need /usr/lib/python3/dist-packages/sklearn python3-sklearn
need /usr/bin/prometheus prometheus
need /usr/lib/python3/dist-packages/httpx python3-httpx

[ -z "$missing" ] && exit 0

cannot() {
	echo "install-test-deps: cannot install$missing: $*" >&2
	if [ "${CI:-}" = true ]; then
		exit 1
	fi
	echo "install-test-deps: the tests needing$missing will be SKIPPED; install$missing yourself" >&2
	exit 0
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		cannot "need root or password-less sudo"
	fi
fi
command -v apt-get >/dev/null 2>&1 || cannot "no apt-get on this system"

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# apt's chatter goes to a log, shown only when something fails.
# shellcheck disable=SC2086 # word splitting of the package list is wanted
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
	cat "$log" >&2
	cannot "apt-get failed"
fi
for p in $paths; do
	[ -e "$p" ] || cannot "$p is still missing after apt-get"
done
