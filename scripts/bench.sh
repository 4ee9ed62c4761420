#!/usr/bin/env bash
# Throughput benchmark of the gateway on loopback, against a baseline measured in the
# same run (project rule: speed goals live in benchmarks that print ratios, not in tests).
#
#   scripts/bench.sh                     # ~3 minutes after the release build
#   ROUNDS=5 DURATION=20 scripts/bench.sh
#
# Cases, each measured with wrk (keep-alive connections, fixed duration, latency
# distribution) after an unmeasured warm-up of the same shape. The cases run interleaved
# for $ROUNDS rounds (all servers stay up, idle ones cost nothing), so background load
# on the machine hits every case alike; ratios are taken within a round and the report
# prints medians over the rounds:
#   backend      the fast upstream alone (tests/e2e/src/bin/fastbackend.rs): the baseline
#   passthrough  gateway without a policy, forwarding everything
#   allow        gateway with rules/default.toml plus a rule that matches every request
#                (key "ip") and never trips: RateLimit headers computed and forwarded
#   refuse       gateway with rules/default.toml plus a "global" limit of burst 1: the
#                warm-up's first request passes, every measured request gets a 429
#                written by the gateway itself (keep-alive, length-delimited)
#   refuse-close the same refusals with the client sending "Connection: close", i.e. a
#                new TCP connection per refusal, like Pingora's own respond_error
#
# Placement (2 cores): the measured server gets CPU $PROXY_CPU alone (the baseline
# backend, or a gateway with threads = 1); wrk runs on CPU $CLIENT_CPU, and so does the
# gateways' upstream backend (a second instance: it must not share the gateway's core).
#
# "client conns seen" is the number of distinct client ports among the server port's
# established connections, sampled every 0.5 s with ss: $CONNS when wrk's connections
# are reused. "accepts" is the machine-wide TcpPassiveOpens delta over the run (from
# /proc/net/snmp): with working keep-alive it is $CONNS (wrk's connections) plus any new
# gateway->backend connections; in the refusal case nothing reaches the backend, so it
# should be exactly $CONNS.
#
# Not part of the test suite: scripts/test.sh never runs it. Load stays on loopback and
# every process started here is stopped by its pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
# Five consecutive loopback ports from BASE_PORT: baseline backend, upstream backend, and
# the passthrough, allow and refuse gateways.
BASE_PORT=${BASE_PORT:-18080}
ALONE_PORT=$BASE_PORT
BE_PORT=$((BASE_PORT + 1))
PASS_PORT=$((BASE_PORT + 2))
ALLOW_PORT=$((BASE_PORT + 3))
REFUSE_PORT=$((BASE_PORT + 4))
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

# --- wrk ---------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk (apt)..." >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }

# --- build -------------------------------------------------------------------------------
cargo build --release --locked -p gateway -p e2e --bin gateway --bin fastbackend >&2
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
GATEWAY="$TARGET_DIR/release/gateway"
BACKEND="$TARGET_DIR/release/fastbackend"

WORK=$(mktemp -d -t gateway-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$ALONE_PORT" "$BE_PORT" "$PASS_PORT" "$ALLOW_PORT" "$REFUSE_PORT"; do
    if port_busy "$p"; then echo "port $p is in use; set BASE_PORT" >&2; exit 1; fi
done

wait_port() {
    for _ in $(seq 100); do
        port_busy "$1" && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1; see the logs in $WORK" >&2
    exit 1
}

# start NAME CPU CMD...: runs CMD pinned to CPU, logging to $WORK/NAME.log; sets LAST_PID.
start() {
    local name=$1 cpu=$2
    shift 2
    taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

passive_opens() {
    awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i; h = 1 } else print $c }' /proc/net/snmp
}

# Latency as printed by wrk (e.g. 412.00us, 1.21ms, 1.02s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# measure NAME ROUND [WRK ARGS...]: warm-up, then the measured run; appends to $RESULTS.
RESULTS="$WORK/results.tsv"
measure() {
    local name=$1 round=$2
    shift 2
    local url="http://127.0.0.1:$PORT/bench"
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$@" "$url" >"$WORK/$name.$round.warmup.txt"
    local before after
    before=$(passive_opens)
    # Sample the server port's established connections every 0.5 s (unpinned, cheap):
    # the distinct client ports seen tell whether wrk's connections were reused.
    (
        end=$((SECONDS + DURATION))
        while [ "$SECONDS" -lt "$end" ]; do
            ss -Htn state established "( sport = :$PORT )" | awk '{ print $NF }'
            sleep 0.5
        done
    ) >"$WORK/$name.$round.peers.txt" 2>/dev/null &
    local sampler=$!
    local out="$WORK/$name.$round.txt"
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$out"
    after=$(passive_opens)
    wait "$sampler" 2>/dev/null || true
    local rps p50 p99 total non2xx sockerr peers
    peers=$(sort -u "$WORK/$name.$round.peers.txt" | wc -l)
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    total=$(awk '/requests in/ { print $1 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sockerr=$(awk -F': ' '/Socket errors:/ { print $2 }' "$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$p50" "$p99" "$total" "${non2xx:-0}" "$peers" "$((after - before))" "${sockerr:-none}" >>"$RESULTS"
    echo "  $name: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, $total requests, non-2xx ${non2xx:-0}, client connections seen $peers, accepts $((after - before)), socket errors: ${sockerr:-none}" >&2
}

write_config() {
    local file=$1 port=$2 policy=$3
    {
        printf '[server]\nlisten = ["127.0.0.1:%s"]\nthreads = 1\n\n' "$port"
        printf '[upstream]\nurl = "http://127.0.0.1:%s"\n' "$BE_PORT"
        if [ -n "$policy" ]; then printf '\n[policy]\nfile = "%s"\nwatch = false\n' "$policy"; fi
    } >"$file"
}

# Policies: rules/default.toml plus one rule for the benchmark's GET /bench (route "other").
# The shipped other-per-ip limit (600/hour) would refuse the benchmark's one client
# address, so both copies lift it; the rule added after it is what is measured.
lift_other() {
    sed '/^name = "other-per-ip"/,/^limits/ s|rate = "600/hour", burst = 60|rate = "1000000000/second", burst = 2000|' rules/default.toml >"$1"
    grep -q 'rate = "1000000000/second", burst = 2000' "$1" || { echo "bench.sh: rules/default.toml's other-per-ip limit changed; update lift_other" >&2; exit 1; }
}
lift_other "$WORK/allow.toml"
cat >>"$WORK/allow.toml" <<'EOF'

[[rule]]
# Benchmark: matches every request, never trips (RateLimit headers are still computed).
name = "bench-allow"
match = { route = "other" }
action = "limit"
limits = [{ key = "ip", rate = "1000000000/second", burst = 1000 }]
EOF
lift_other "$WORK/refuse.toml"
cat >>"$WORK/refuse.toml" <<'EOF'

[[rule]]
# Benchmark: one shared bucket of burst 1; after the first request everything is refused.
name = "bench-refuse"
match = { route = "other" }
action = "limit"
limits = [{ key = "global", rate = "1/hour", burst = 1 }]
EOF
write_config "$WORK/passthrough.gateway.toml" "$PASS_PORT" ""
write_config "$WORK/allow.gateway.toml" "$ALLOW_PORT" "$WORK/allow.toml"
write_config "$WORK/refuse.gateway.toml" "$REFUSE_PORT" "$WORK/refuse.toml"

LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); load average before: $LOAD_START" >&2
echo "wrk -t1 -c$CONNS -d${DURATION}s (warm-up ${WARMUP}s), $ROUNDS rounds; server on CPU $PROXY_CPU, wrk on CPU $CLIENT_CPU; logs in $WORK" >&2

# --- servers: all started once, idle ones cost nothing ----------------------------------
# The baseline backend on the proxy's CPU; the gateways' upstream backend beside wrk.
start backend-alone "$PROXY_CPU" "$BACKEND" "127.0.0.1:$ALONE_PORT"
start backend "$CLIENT_CPU" "$BACKEND" "127.0.0.1:$BE_PORT"
wait_port "$ALONE_PORT"
wait_port "$BE_PORT"
declare -A CASE_PORT=([backend]=$ALONE_PORT [passthrough]=$PASS_PORT [allow]=$ALLOW_PORT [refuse]=$REFUSE_PORT [refuse-close]=$REFUSE_PORT)
for mode in passthrough allow refuse; do
    start "gateway-$mode" "$PROXY_CPU" "$GATEWAY" run --config "$WORK/$mode.gateway.toml"
done
for mode in passthrough allow refuse; do
    port=${CASE_PORT[$mode]}
    wait_port "$port"
    curl -s -o /dev/null -D "$WORK/$mode.first-response.txt" "http://127.0.0.1:$port/bench" || true
    curl -s -o /dev/null -D "$WORK/$mode.response.txt" "http://127.0.0.1:$port/bench" || true
done

# --- measure: the cases interleaved, $ROUNDS rounds, so that load from anything else on
# the machine hits every case alike; ratios are taken within each round ---------------------
CASES=(backend passthrough allow refuse refuse-close)
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    for c in "${CASES[@]}"; do
        if [ "$c" = refuse-close ]; then
            PORT=${CASE_PORT[$c]} measure "$c" "$round" -H "Connection: close"
        else
            PORT=${CASE_PORT[$c]} measure "$c" "$round"
        fi
    done
done

# --- report ------------------------------------------------------------------------------
# RESULTS columns: round case rps p50 p99 requests non2xx peers accepts sockerr
median_of() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v c="$1" -v k="$2" '$2 == c { print $k }' "$RESULTS"; }
# Per-round ratio of case A's req/s to case B's, one line per round.
ratios() {
    awk -F'\t' -v a="$1" -v b="$2" '$2 == a { x[$1] = $3 } $2 == b { y[$1] = $3 } END { for (r in x) if (y[r] > 0) printf "%.3f\n", x[r] / y[r] }' "$RESULTS"
}
ratio_list() { ratios "$1" "$2" | sort -g | paste -sd' ' -; }

echo
echo "## Gateway throughput: wrk -t1 -c$CONNS -d${DURATION}s keep-alive, $ROUNDS interleaved rounds (medians)"
echo "## server pinned to CPU $PROXY_CPU, wrk to CPU $CLIENT_CPU; $(nproc) CPUs; load average at start: $LOAD_START"
echo
echo "| case | req/s | vs backend (same round) | p50 ms | p99 ms | non-2xx / requests | client conns seen (max) | accepts (machine, median) | socket errors |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for c in "${CASES[@]}"; do
    rps=$(col "$c" 3 | median_of)
    p50=$(col "$c" 4 | median_of)
    p99=$(col "$c" 5 | median_of)
    reqs=$(col "$c" 6 | awk '{ s += $1 } END { print s }')
    non2xx=$(col "$c" 7 | awk '{ s += $1 } END { print s }')
    peers=$(col "$c" 8 | sort -g | tail -1)
    acc=$(col "$c" 9 | median_of)
    sockerr=$(col "$c" 10 | sort -u | paste -sd';' -)
    vs=$(ratios "$c" backend | median_of)
    printf '| %s | %.0f | %s | %s | %s | %s / %s | %s | %s | %s |\n' "$c" "$rps" "$vs" "$p50" "$p99" "$non2xx" "$reqs" "$peers" "$acc" "$sockerr"
done
echo
echo "client conns seen: distinct client ports among the server port's established connections,"
echo "sampled every 0.5 s (all reused: $CONNS). accepts (machine): TcpPassiveOpens delta over a run,"
echo "machine-wide, so other loopback traffic on the machine adds to it."
echo
printf 'refuse / passthrough  = %s   per round: %s   (> 1: refusing costs less than forwarding)\n' "$(ratios refuse passthrough | median_of)" "$(ratio_list refuse passthrough)"
printf 'refuse / allow        = %s   per round: %s\n' "$(ratios refuse allow | median_of)" "$(ratio_list refuse allow)"
printf 'allow / passthrough   = %s   per round: %s   (the policy on the forward path)\n' "$(ratios allow passthrough | median_of)" "$(ratio_list allow passthrough)"
printf 'refuse / refuse-close = %s   per round: %s   (keep-alive refusals vs a connection per refusal)\n' "$(ratios refuse refuse-close | median_of)" "$(ratio_list refuse refuse-close)"
echo
echo "responses seen by curl (second request to each gateway):"
for mode in passthrough allow refuse; do
    echo "--- $mode"
    sed 's/\r$//' "$WORK/$mode.response.txt" | sed 's/^/    /'
done
