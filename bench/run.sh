#!/usr/bin/env bash
# bench/run.sh - healproxy's benchmark suite. See bench/README.md.
#
#   bench/run.sh [proxies]   healproxy vs direct, a stock httputil.ReverseProxy
#                            and nginx/HAProxy/Caddy, wrk over loopback (default)
#   bench/run.sh models      model path: plugin-hop overhead, req/s under
#                            concurrency, kill -> healthy respawn (go test -bench)
#   bench/run.sh scale       10,000 providers: start-up, memory, health document,
#                            reload (a real healproxy process + go test -bench)
#   bench/run.sh stream      streamed model answers through the gateway vs direct:
#                            added time to first token, token throughput
#                            (go test -bench BenchmarkStream ./llm/)
#   bench/run.sh routing     one of three upstreams answers 20 % of requests after
#                            300 ms: client p50-p99.9 with round robin, least_latency,
#                            hedging and outlier ejection vs the healthy two alone,
#                            and hedging's extra upstream requests (bench/cmd/routebench)
#   bench/run.sh all         the five, in that order
#   --update                 also rewrite BENCHMARKS.md's tables (between its
#                            "<!-- bench:NAME -->" markers) and docs/bench.svg
#
# Results go to bench/results/<UTC stamp>-<mode>/ (git-ignored): raw.tsv, every wrk
# output, env.txt, summary.tsv, summary.md, chart.svg (proxies); models.md,
# scale.md and the go test outputs.
#
# Env (all optional):
#   CONNS        connection counts (default "32 128")
#   ROUNDS       interleaved rounds per connection count (default 3)
#   DURATION     wrk duration per measurement (default 10s)
#   WARMUP       wrk warm-up per target before measuring (default 3s)
#   PEERS        peers besides direct and healproxy (default "goproxy nginx haproxy caddy")
#   PORT_BASE    first of the loopback ports used (default 9201): +0 upstream,
#                +1 goproxy, +2 nginx, +3 haproxy, +4 caddy, +6 healproxy
#   EXT_MAX      a run during which processes not started here used more than this
#                % of all cores is redone (default 10), at most EXT_RETRIES times (2)
#   SKIP_INSTALL=1  never apt-get (a missing peer is skipped; a missing wrk is fatal)
#   MODEL_BENCHTIME  -benchtime of the predict benchmarks (default 2s)
#   KILLS        plugin kills for the respawn benchmark (default 20)
#   SCALE_COUNTS provider counts of the scale mode (default "1 1000 10000")
#   SCALE_CALLS  health-document requests per count (default 20)
#   REV          build healproxy from this git revision (e.g. HEAD) instead of the
#                work tree, so that others' uncommitted edits are not measured
#   HEALPROXY_BIN  use this healproxy binary instead of building one
#   COMPARE_REV / COMPARE_BIN  proxies mode: also run a second healproxy, built
#                from that git revision or that binary, as target "healproxy-b"
#                (port +7), interleaved with the rest: a before/after in one run
#   ROUTE_REQUESTS     routing: measured requests per scenario and round (default 20000)
#   ROUTE_CONCURRENCY  routing: concurrent clients (default 32)
#   ROUTE_RATE         routing: requests/s, open loop (latency from when each request was
#                      due; ROUTE_CONCURRENCY caps those in flight); default 0: closed loop
#   ROUTE_ROUNDS       routing: interleaved rounds, medians reported (default 2)
#   ROUTE_WARMUP       routing: load before measuring each scenario (default 3s)
#   ROUTE_SCENARIOS    routing: comma-separated subset (default all: healthy,
#                      round_robin,least_latency,hedge_p90,hedge_p95,hedge_50ms,outlier)
#   GO           go binary (default: go on PATH)
# Takes about (2 + peers) x ROUNDS x len(CONNS) x DURATION + warm-ups for proxies
# (~8 min with the defaults), ~2 min for models, ~2 min for scale, ~3 min for routing.
# Every process this script starts is stopped by PID on exit.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=proxies
UPDATE=0
for a in "$@"; do
  case $a in
    proxies | models | scale | stream | routing | all) MODE=$a ;;
    --update) UPDATE=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/run.sh [proxies|models|scale|stream|routing|all] [--update]" >&2; exit 2 ;;
  esac
done

CONNS=${CONNS:-"32 128"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
PEERS=${PEERS:-"goproxy nginx haproxy caddy"}
PORT_BASE=${PORT_BASE:-9201}
EXT_MAX=${EXT_MAX:-10}
EXT_RETRIES=${EXT_RETRIES:-2}
SKIP_INSTALL=${SKIP_INSTALL:-0}
MODEL_BENCHTIME=${MODEL_BENCHTIME:-2s}
KILLS=${KILLS:-20}
SCALE_COUNTS=${SCALE_COUNTS:-"1 1000 10000"}
SCALE_CALLS=${SCALE_CALLS:-20}
GO=${GO:-go}

WORK=$REPO/bench/.work
BIN=$WORK/bin
RUN=$WORK/run
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=$REPO/bench/results/$STAMP-$MODE
mkdir -p "$BIN" "$RUN" "$RES"
export TMPDIR=${TMPDIR:-$WORK/tmp}
mkdir -p "$TMPDIR"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
STARTED_PIDS=()
children() { ps -o pid= --ppid "$1" 2>/dev/null || true; }
stop_started() { # stops every process started here (and their children), by PID
  local all=() p c
  for p in "${STARTED_PIDS[@]}"; do
    all+=("$p")
    for c in $(children "$p"); do all+=("$c"); done # nginx workers
  done
  if ((${#all[@]})); then
    log "stopping PIDs: ${all[*]}"
    for p in "${all[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
      local alive=0
      for p in "${all[@]}"; do if kill -0 "$p" 2>/dev/null; then alive=1; fi; done
      ((alive)) || break
      sleep 0.1
    done
    for p in "${all[@]}"; do
      if kill -0 "$p" 2>/dev/null; then log "PID $p still alive, SIGKILL"; kill -KILL "$p" 2>/dev/null || true; fi
    done
    wait 2>/dev/null || true
  fi
  STARTED_PIDS=()
}
cleanup() {
  local rc=$?
  set +e
  stop_started
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # name cmd... ; in the background, output to $RUN/name.log
  local name=$1; shift
  "$@" >"$RUN/$name.log" 2>&1 &
  local pid=$!
  STARTED_PIDS+=("$pid")
  eval "PID_$name=$pid"
  log "started $name pid=$pid: $*"
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

wait_ok() { # url seconds [pid]
  local url=$1 secs=$2 pid=${3:-} i code
  for ((i = 0; i < secs * 10; i++)); do
    [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null && return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null || true)
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

machine() {
  echo "date_utc: $STAMP"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc)  model: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "memory: $(awk '/^MemTotal:/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "go: $("$GO" version)"
  if [[ -n ${HEALPROXY_BIN:-} ]]; then
    echo "healproxy: $HEALPROXY_BIN"
  elif [[ -n ${REV:-} ]]; then
    echo "healproxy: $REV"
  else
    echo "healproxy: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  fi
}

SRC=$REPO # where healproxy is built and its go benchmarks run from
if [[ -n ${REV:-} ]]; then
  REV=$(git -C "$REPO" rev-parse --short "$REV^{commit}") || die "no git revision $REV"
  SRC=$WORK/src
  rm -rf "$SRC" && mkdir -p "$SRC"
  git -C "$REPO" archive "$REV" | tar -x -C "$SRC" || die "git archive $REV failed"
fi

build() { # builds healproxy and the bench tools into $BIN
  command -v "$GO" >/dev/null || die "go not found (set GO=)"
  log "building healproxy (${REV:-work tree}) and the bench tools with $("$GO" version)"
  if [[ -n ${HEALPROXY_BIN:-} ]]; then
    cp "$HEALPROXY_BIN" "$BIN/healproxy" || die "cannot copy $HEALPROXY_BIN"
  else
    (cd "$SRC" && "$GO" build -trimpath -o "$BIN/healproxy" ./cmd/healproxy) || die "go build of healproxy failed"
  fi
  if [[ -n ${COMPARE_BIN:-} ]]; then
    cp "$COMPARE_BIN" "$BIN/healproxy-b" || die "cannot copy $COMPARE_BIN"
  elif [[ -n ${COMPARE_REV:-} ]]; then
    COMPARE_REV=$(git -C "$REPO" rev-parse --short "$COMPARE_REV^{commit}") || die "no git revision $COMPARE_REV"
    rm -rf "$WORK/src-b" && mkdir -p "$WORK/src-b"
    git -C "$REPO" archive "$COMPARE_REV" | tar -x -C "$WORK/src-b" || die "git archive $COMPARE_REV failed"
    (cd "$WORK/src-b" && "$GO" build -trimpath -o "$BIN/healproxy-b" ./cmd/healproxy) || die "go build of $COMPARE_REV failed"
  fi
  (cd "$REPO" &&
    "$GO" build -trimpath -o "$BIN/upstream" ./bench/cmd/upstream &&
    "$GO" build -trimpath -o "$BIN/goproxy" ./bench/cmd/goproxy &&
    "$GO" build -trimpath -o "$BIN/report" ./bench/cmd/report &&
    "$GO" build -trimpath -o "$BIN/scale" ./bench/cmd/scale) || die "go build failed"
}

update_flags() { # report flags that rewrite BENCHMARKS.md (and the chart) with --update
  if ((UPDATE)); then printf -- '-benchmarks\n%s\n' "$REPO/BENCHMARKS.md"; fi
}

# ================================================================ proxies
run_proxies() {
  local UP_PORT=$PORT_BASE
  declare -A PORT=([goproxy]=$((PORT_BASE + 1)) [nginx]=$((PORT_BASE + 2)) [haproxy]=$((PORT_BASE + 3))
    [caddy]=$((PORT_BASE + 4)) [healproxy]=$((PORT_BASE + 6)) [healproxy-b]=$((PORT_BASE + 7)))
  local compare=0
  if [[ -n ${COMPARE_BIN:-}${COMPARE_REV:-} ]]; then compare=1; fi
  export PATH=$PATH:/usr/sbin:/sbin

  # ---- install what is missing (Debian packages); a peer that cannot be had is skipped
  local need=() p
  command -v wrk >/dev/null || need+=(wrk)
  command -v curl >/dev/null || need+=(curl)
  command -v ss >/dev/null || need+=(iproute2)
  command -v ps >/dev/null || need+=(procps)
  [[ " $PEERS " == *" nginx "* ]] && ! command -v nginx >/dev/null && need+=(nginx-light)
  [[ " $PEERS " == *" haproxy "* ]] && ! command -v haproxy >/dev/null && need+=(haproxy)
  [[ " $PEERS " == *" caddy "* ]] && ! command -v caddy >/dev/null && need+=(caddy)
  if ((${#need[@]})); then
    if [[ $SKIP_INSTALL == 1 ]] || ! command -v apt-get >/dev/null; then
      log "not installing ${need[*]} (SKIP_INSTALL=1 or no apt-get)"
    else
      log "apt-get install ${need[*]}"
      apt-get update -qq >"$RES/apt.log" 2>&1 || true
      # packaged services are not started here (no systemd); we run our own instances
      for p in "${need[@]}"; do
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >>"$RES/apt.log" 2>&1 ||
          log "apt-get install $p failed (see $RES/apt.log)"
      done
    fi
  fi
  command -v wrk >/dev/null || die "wrk is required (apt-get install wrk)"
  command -v curl >/dev/null || die "curl is required"
  local peers=""
  for p in $PEERS; do
    case $p in
      goproxy) peers+=" $p" ;;
      nginx | haproxy | caddy)
        if command -v "$p" >/dev/null; then peers+=" $p"; else log "skipping $p: not installed"; fi ;;
      *) log "skipping unknown peer $p" ;;
    esac
  done

  build
  for p in $UP_PORT ${PORT[healproxy]} ${PORT[healproxy-b]}; do port_busy "$p" && die "port $p already in use (set PORT_BASE)"; done
  for p in $peers; do port_busy "${PORT[$p]}" && die "port ${PORT[$p]} ($p) already in use (set PORT_BASE)"; done
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

  # ---- configs: the same upstream and keep-alive for everyone
  local UP=127.0.0.1:$UP_PORT
  mkdir -p "$RUN/nginx" "$RUN/caddy"
  # healproxy: one provider, default health settings; one upstream, so no retry
  # (retries only go to another upstream), no stale cache (off unless configured),
  # no active checks, no state file, no models.
  cat >"$RUN/healproxy.hcl" <<EOF
listen = "127.0.0.1:${PORT[healproxy]}"

provider "bench" {
  upstreams = ["http://$UP"]
}
EOF
  sed 's/^listen = .*/listen = "127.0.0.1:'"${PORT[healproxy-b]}"'"/' "$RUN/healproxy.hcl" >"$RUN/healproxy-b.hcl"
  cat >"$RUN/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path $RUN/nginx/client_body;
  proxy_temp_path $RUN/nginx/proxy;
  upstream up {
    server $UP;
    keepalive 512;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  cat >"$RUN/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 120s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend be
backend be
  http-reuse always
  server s1 $UP
EOF
  cat >"$RUN/caddy/Caddyfile" <<EOF
{
	admin off
	auto_https off
}
http://:${PORT[caddy]} {
	bind 127.0.0.1
	reverse_proxy $UP {
		transport http {
			keepalive 120s
			keepalive_idle_conns 1024
			keepalive_idle_conns_per_host 1024
		}
	}
}
EOF

  # ---- start
  start upstream "$BIN/upstream" -addr "$UP"
  wait_ok "http://$UP/" 10 "$PID_upstream" || die "upstream did not come up"
  start healproxy "$BIN/healproxy" run -config "$RUN/healproxy.hcl"
  if ((compare)); then start healproxy_b "$BIN/healproxy-b" run -config "$RUN/healproxy-b.hcl"; fi
  for p in $peers; do
    case $p in
      goproxy) start goproxy "$BIN/goproxy" -addr "127.0.0.1:${PORT[goproxy]}" -upstream "http://$UP" ;;
      nginx) start nginx nginx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/error.log" ;;
      haproxy) start haproxy haproxy -db -f "$RUN/haproxy.cfg" ;;
      caddy) start caddy env HOME="$RUN/caddy" XDG_CONFIG_HOME="$RUN/caddy" XDG_DATA_HOME="$RUN/caddy" \
        caddy run --config "$RUN/caddy/Caddyfile" --adapter caddyfile ;;
    esac
  done
  local TARGETS=(direct goproxy healproxy) t pv
  declare -A URL=([direct]="http://$UP/" [healproxy]="http://127.0.0.1:${PORT[healproxy]}/providers/bench/")
  declare -A TPID=([direct]=$PID_upstream [healproxy]=$PID_healproxy)
  [[ " $peers " == *" goproxy "* ]] || TARGETS=(direct healproxy)
  if ((compare)); then
    TARGETS+=(healproxy-b)
    URL[healproxy-b]="http://127.0.0.1:${PORT[healproxy-b]}/providers/bench/"
    TPID[healproxy-b]=$PID_healproxy_b
  fi
  for p in $peers; do
    URL[$p]="http://127.0.0.1:${PORT[$p]}/"
    pv="PID_$p"; TPID[$p]=${!pv}
    [[ $p == goproxy ]] || TARGETS+=("$p")
  done
  for t in "${TARGETS[@]}"; do
    wait_ok "${URL[$t]}" 20 "${TPID[$t]}" || die "$t did not answer 200 at ${URL[$t]} (log: $RUN/$t.log)"
    log "$t ${URL[$t]} -> $(curl -s -o /dev/null -w 'HTTP %{http_code}, %{size_download} body bytes' "${URL[$t]}")"
  done

  {
    machine
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "goproxy: net/http/httputil.ReverseProxy as shipped (no BufferPool), $("$GO" version | awk '{print $3}')"
    if ((compare)); then echo "healproxy-b: ${COMPARE_BIN:-$COMPARE_REV}"; fi
    for p in $peers; do
      case $p in
        nginx) echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')" ;;
        haproxy) echo "haproxy: $(haproxy -v | head -1)" ;;
        caddy) echo "caddy: $(caddy version | head -1)" ;;
      esac
    done
    echo "load: wrk -t1 -c{$CONNS} -d$DURATION --latency, $ROUNDS interleaved rounds, warm-up $WARMUP per target"
    echo "pinning: none (wrk, proxies and upstream share all $(nproc) cores)"
  } | tee "$RES/env.txt" >&2

  # ---- measurement helpers
  local CLK
  CLK=$(getconf CLK_TCK)
  stat_fields() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null; } # fields from #3 (state) on
  cpu_ticks() { # pid -> utime+stime of pid and its direct children (nginx workers)
    local sum=0 q
    for q in "$1" $(children "$1"); do
      sum=$((sum + $(stat_fields "$q" | awk '{s = $12 + $13} END {print s + 0}')))
    done
    echo "$sum"
  }
  hwm_kb() { # pid -> VmHWM of pid and its direct children, KiB
    local sum=0 q
    for q in "$1" $(children "$1"); do
      sum=$((sum + $(awk '/^VmHWM:/{print $2}' "/proc/$q/status" 2>/dev/null || echo 0)))
    done
    echo "$sum"
  }
  own_ticks() { # everything this script started, and its waited-for children (wrk)
    local sum q
    sum=$(stat_fields $$ | awk '{s = $12 + $13 + $14 + $15} END {print s + 0}')
    for q in "${STARTED_PIDS[@]}"; do sum=$((sum + $(cpu_ticks "$q"))); done
    echo "$sum"
  }
  sys_cpu() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat; } # total, idle+iowait
  parse_wrk() { # file -> "rps p50_ms p99_ms requests errors"
    awk '
      function ms(v,  n, u) { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") return n / 1000; if (u == "ms") return n; if (u == "s") return n * 1000; if (u == "m") return n * 60000; return n }
      /^ +50%/ { p50 = ms($2) }
      /^ +99%/ { p99 = ms($2) }
      / requests in / { req = $1 }
      /Non-2xx or 3xx responses:/ { err += $NF }
      /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { v = $i; sub(",", "", v); err += v } }
      /^Requests\/sec:/ { rps = $2 }
      END { printf "%.1f %.3f %.3f %d %d\n", rps, p50, p99, req, err + 0 }' "$1"
  }
  local RAW=$RES/raw.tsv
  printf 'conns\tround\ttarget\trps\tp50_ms\tp99_ms\trequests\terrors\tcpu_us_per_req\tidle_pct\text_pct\tkept\thwm_kb\n' >"$RAW"
  measure() { # target conns round
    local t=$1 c=$2 r=$3 out c0 c1 s0 s1 o0 o1 rps p50 p99 req err cpuus idle ext try kept hwm
    for ((try = 0; try <= EXT_RETRIES; try++)); do
      out="$RES/wrk-c$c-r$r-$t-try$try.txt"
      c0=$(cpu_ticks "${TPID[$t]}"); o0=$(own_ticks); s0=$(sys_cpu)
      wrk -t1 -c"$c" -d"$DURATION" --latency "${URL[$t]}" >"$out" 2>&1 || true
      s1=$(sys_cpu); o1=$(own_ticks); c1=$(cpu_ticks "${TPID[$t]}")
      hwm=$(hwm_kb "${TPID[$t]}")
      read -r rps p50 p99 req err <<<"$(parse_wrk "$out")"
      if ((req > 0)); then
        cpuus=$(awk -v d=$((c1 - c0)) -v k="$CLK" -v n="$req" 'BEGIN{printf "%.1f", d * 1e6 / k / n}')
      else cpuus=NA; fi
      read -r idle ext < <(awk -v a="$s0" -v b="$s1" -v od=$((o1 - o0)) 'BEGIN{split(a,x," "); split(b,y," ");
        dt = y[1] - x[1]; di = y[2] - x[2]; e = dt - di - od; if (e < 0) e = 0
        printf "%.1f %.1f\n", (dt > 0 ? 100 * di / dt : 0), (dt > 0 ? 100 * e / dt : 0)}')
      kept=1
      if ((try < EXT_RETRIES)) && awk -v e="$ext" -v m="$EXT_MAX" 'BEGIN{exit !(e > m)}'; then kept=0; fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$r" "$t" "$rps" "$p50" "$p99" "$req" "$err" "$cpuus" "$idle" "$ext" "$kept" "$hwm" >>"$RAW"
      log "c$c r$r $(printf '%-10s' "$t") rps=$rps p50=${p50}ms p99=${p99}ms err=$err cpu=${cpuus}us/req rss=$((hwm / 1024))MiB idle=${idle}% ext=${ext}%$( ((kept)) || echo ' -> disturbed, redo')"
      ((kept)) && break
    done
  }

  # ---- run
  local q0 q1 qo0 qo1 qidle qext c r
  q0=$(sys_cpu); qo0=$(own_ticks); sleep 2; q1=$(sys_cpu); qo1=$(own_ticks)
  read -r qidle qext < <(awk -v a="$q0" -v b="$q1" -v od=$((qo1 - qo0)) 'BEGIN{split(a,x," "); split(b,y," ");
    dt = y[1] - x[1]; di = y[2] - x[2]; e = dt - di - od; if (e < 0) e = 0; printf "%.1f %.1f\n", 100 * di / dt, 100 * e / dt}')
  log "before measuring: machine idle ${qidle}%, CPU used by processes not started here ${qext}%"
  awk -v e="$qext" 'BEGIN{exit !(e > 5)}' && log "WARNING: other processes are using CPU (${qext}% of all cores); see the ext% column"
  echo "pre-run idle: ${qidle}%  pre-run external CPU: ${qext}%" >>"$RES/env.txt"
  for t in "${TARGETS[@]}"; do
    log "warm-up $t ($WARMUP)"
    wrk -t1 -c128 -d"$WARMUP" "${URL[$t]}" >/dev/null 2>&1 || true
  done
  for c in $CONNS; do
    for ((r = 1; r <= ROUNDS; r++)); do
      for t in "${TARGETS[@]}"; do measure "$t" "$c" "$r"; done
    done
  done
  awk -F'\t' 'NR > 1 && $12 == 0 {n++} END {printf "redone (disturbed) runs: %d\n", n + 0}' "$RAW" >>"$RES/env.txt"

  local flags=()
  mapfile -t flags < <(update_flags)
  if ((UPDATE)); then flags+=(-svg "$REPO/docs/bench.svg"); fi
  "$BIN/report" proxies -dir "$RES" "${flags[@]}"
  echo
  echo "results: $RES/ (raw.tsv, summary.md, chart.svg, wrk outputs)"
}

with_env() { # md env: appends the run's machine and versions to a markdown file
  { printf '\n```\n'; cat "$2"; printf '```\n'; } >>"$1"
}

# ================================================================ models
run_models() {
  build
  machine | tee "$RES/env-models.txt" >&2
  log "predict benchmarks (-benchtime $MODEL_BENCHTIME) and $KILLS plugin kills"
  (cd "$SRC" && "$GO" test -run '^$' -bench 'Predict' -benchtime "$MODEL_BENCHTIME" -timeout 20m ./proxy/) | tee "$RES/models-bench.txt" >&2
  (cd "$SRC" && "$GO" test -run '^$' -bench 'ModelRespawn' -benchtime "${KILLS}x" -timeout 20m ./proxy/) | tee -a "$RES/models-bench.txt" >&2
  "$BIN/report" gobench -in "$RES/models-bench.txt" -kind models -out "$RES/models.md"
  with_env "$RES/models.md" "$RES/env-models.txt"
  if ((UPDATE)); then "$BIN/report" splice -benchmarks "$REPO/BENCHMARKS.md" -section models -md "$RES/models.md"; fi
  echo
  echo "results: $RES/"
}

# ================================================================ scale
run_scale() {
  build
  machine | tee "$RES/env-scale.txt" >&2
  local port=$((PORT_BASE + 6))
  port_busy "$port" && die "port $port already in use (set PORT_BASE)"
  log "healproxy with ${SCALE_COUNTS// /, } providers on 127.0.0.1:$port"
  "$BIN/scale" -bin "$BIN/healproxy" -dir "$RES" -listen "127.0.0.1:$port" -counts "$SCALE_COUNTS" -calls "$SCALE_CALLS" >"$RES/scale.md"
  cat "$RES/scale.md"
  log "go test -bench Scale"
  (cd "$SRC" && "$GO" test -run '^$' -bench 'Scale' -benchmem -benchtime 3x -timeout 20m ./proxy/) | tee "$RES/scale-bench.txt" >&2
  "$BIN/report" gobench -in "$RES/scale-bench.txt" -kind scale -out "$RES/scale-bench.md"
  with_env "$RES/scale-bench.md" "$RES/env-scale.txt"
  if ((UPDATE)); then
    "$BIN/report" splice -benchmarks "$REPO/BENCHMARKS.md" -section scale -md "$RES/scale.md"
    "$BIN/report" splice -benchmarks "$REPO/BENCHMARKS.md" -section scale-gobench -md "$RES/scale-bench.md"
  fi
  echo
  echo "results: $RES/"
}

# ================================================================ stream
run_stream() {
  build
  machine | tee "$RES/env-stream.txt" >&2
  log "streamed answers through the llm gateway vs direct (-benchtime ${STREAM_BENCHTIME:-300x})"
  (cd "$SRC" && "$GO" test -run '^$' -bench 'BenchmarkStream' -benchtime "${STREAM_BENCHTIME:-300x}" -timeout 20m ./llm/) | tee "$RES/stream-bench.txt" >&2
  echo
  echo "results: $RES/"
}

# ================================================================ routing
run_routing() {
  build
  (cd "$REPO" && "$GO" build -trimpath -o "$BIN/routebench" ./bench/cmd/routebench) || die "go build of routebench failed"
  machine | tee "$RES/env-routing.txt" >&2
  log "routing under a slow upstream: ${ROUTE_REQUESTS:-20000} requests at concurrency ${ROUTE_CONCURRENCY:-32}, ${ROUTE_ROUNDS:-2} rounds"
  local rc=0
  "$BIN/routebench" -bin "$BIN/healproxy" -dir "$RES" -requests "${ROUTE_REQUESTS:-20000}" \
    -concurrency "${ROUTE_CONCURRENCY:-32}" -rate "${ROUTE_RATE:-0}" -rounds "${ROUTE_ROUNDS:-2}" -warmup "${ROUTE_WARMUP:-3s}" \
    -scenarios "${ROUTE_SCENARIOS:-}" >/dev/null || rc=$?
  # routing.md is written even when a scenario failed; a scenario the
  # binary does not support yet is reported there, not an error.
  [[ -s $RES/routing.md ]] || die "routebench wrote no report (exit $rc)"
  ((rc == 0)) || log "WARNING: routebench exited $rc: a scenario failed (see $RES/routing.md and the logs there)"
  with_env "$RES/routing.md" "$RES/env-routing.txt"
  cat "$RES/routing.md"
  if ((UPDATE)); then "$BIN/report" splice -benchmarks "$REPO/BENCHMARKS.md" -section routing -md "$RES/routing.md"; fi
  echo
  echo "results: $RES/ (routing.md, routing.tsv, routing-raw.tsv, each scenario's config and proxy log)"
}

case $MODE in
  proxies) run_proxies ;;
  models) run_models ;;
  scale) run_scale ;;
  stream) run_stream ;;
  routing) run_routing ;;
  all) run_proxies; stop_started; run_models; run_scale; run_stream; run_routing ;;
esac
