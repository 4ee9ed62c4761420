#!/usr/bin/env bash
# Fleet-mode benchmark: the gateway's rate limits in Redis against the in-memory mode,
# as ratios measured in the same run, and how many decisions per second one Redis
# holds for N = 1, 2, 3 gateways.
#
#   scripts/bench-fleet.sh                 # ~2 minutes after the release build
#   ROUNDS=3 DURATION=10 scripts/bench-fleet.sh
#
# Cases, each measured with wrk (keep-alive, fixed duration, latency distribution)
# after an unmeasured warm-up, interleaved for $ROUNDS rounds (ratios are taken within
# a round, the report prints medians):
#   memory     one gateway, rules/default.toml plus a limit keyed on "ip" that matches
#              every request and never trips: decided in the gateway's own tables
#   redis      the same gateway configuration plus [store] redis: every request is one
#              GCRA script call in Redis (nothing is refused, so the over-limit cache
#              never answers)
#   fleet-N    N gateways (N = 1, 2, 3) on the same Redis, wrk on each at once; the
#              report sums their rates and reads Redis's own counters: script calls per
#              second, and script calls per second of Redis CPU (INFO cpu), which is
#              the rate one Redis core would hold if the gateways were not the limit.
#
# Placement (2 cores): gateways (threads = 1) on CPU $PROXY_CPU; wrk, the upstream
# backend and redis-server on CPU $CLIENT_CPU. On this machine the gateways, not Redis,
# are the bottleneck of the fleet cases; the CPU-normalised rate is the capacity figure.
#
# Not part of the test suite. Load stays on loopback; every process started here is
# stopped by its pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-19080}
BE_PORT=$BASE_PORT
REDIS_PORT=$((BASE_PORT + 1))
MEM_PORT=$((BASE_PORT + 2))
# Fleet gateways: REDIS_GW_PORT (also the "redis" case and fleet member 1), +1, +2.
REDIS_GW_PORT=$((BASE_PORT + 3))
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

for tool in wrk taskset redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

# PROFILE=debug checks the script itself quickly; measurements use the release build.
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
    cargo build --release --locked -p gateway -p e2e --bin gateway --bin fastbackend >&2
else
    cargo build --locked -p gateway -p e2e --bin gateway --bin fastbackend >&2
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
GATEWAY="$TARGET_DIR/$PROFILE/gateway"
BACKEND="$TARGET_DIR/$PROFILE/fastbackend"

WORK=$(mktemp -d -t gateway-bench-fleet.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $(seq "$BASE_PORT" $((BASE_PORT + 5))); do
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
start() {
    local name=$1 cpu=$2
    shift 2
    taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
}
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
script_calls() { rcli info commandstats | tr -d '\r' | awk -F'[=,]' '/^cmdstat_evalsha:|^cmdstat_eval:/ { s += $2 } END { print s + 0 }'; }
redis_cpu() { rcli info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.4f", s }'; }

# --- policy and configurations -----------------------------------------------------------
sed '/^name = "other-per-ip"/,/^limits/ s|rate = "600/hour", burst = 60|rate = "1000000000/second", burst = 2000|' rules/default.toml >"$WORK/policy.toml"
grep -q 'rate = "1000000000/second", burst = 2000' "$WORK/policy.toml" || { echo "rules/default.toml's other-per-ip limit changed; update bench-fleet.sh" >&2; exit 1; }
cat >>"$WORK/policy.toml" <<'EOF'

[[rule]]
# Benchmark: matches every request, never trips.
name = "bench-allow"
match = { route = "other" }
action = "limit"
limits = [{ key = "ip", rate = "1000000000/second", burst = 1000 }]
EOF
write_config() {
    local file=$1 port=$2 store=$3
    {
        printf '[server]\nlisten = ["127.0.0.1:%s"]\nthreads = 1\n\n' "$port"
        printf '[upstream]\nurl = "http://127.0.0.1:%s"\n\n' "$BE_PORT"
        printf '[policy]\nfile = "%s"\nwatch = false\n' "$WORK/policy.toml"
        if [ -n "$store" ]; then printf '\n[store]\nredis = "redis://127.0.0.1:%s"\n' "$REDIS_PORT"; fi
    } >"$file"
}

start backend "$CLIENT_CPU" "$BACKEND" "127.0.0.1:$BE_PORT"
start redis "$CLIENT_CPU" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK"
wait_port "$BE_PORT"
wait_port "$REDIS_PORT"
write_config "$WORK/memory.toml" "$MEM_PORT" ""
start gateway-memory "$PROXY_CPU" "$GATEWAY" run --config "$WORK/memory.toml"
FLEET_PORTS=()
for i in 0 1 2; do
    port=$((REDIS_GW_PORT + i))
    write_config "$WORK/fleet$i.toml" "$port" redis
    start "gateway-fleet$i" "$PROXY_CPU" "$GATEWAY" run --config "$WORK/fleet$i.toml"
    FLEET_PORTS+=("$port")
done
wait_port "$MEM_PORT"
for p in "${FLEET_PORTS[@]}"; do wait_port "$p"; done

LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
RESULTS="$WORK/results.tsv"

# run_case NAME ROUND PORT...: wrk on every port at once; one line per case in $RESULTS:
# round case total-rps p99-ms(worst gateway) script-calls/s calls-per-redis-cpu-second
run_case() {
    local name=$1 round=$2
    shift 2
    local ports=("$@") wpids=() i
    for p in "${ports[@]}"; do
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$p/bench" >/dev/null &
        wpids+=("$!")
    done
    for w in "${wpids[@]}"; do wait "$w"; done
    local calls0 cpu0 calls1 cpu1
    calls0=$(script_calls)
    cpu0=$(redis_cpu)
    wpids=()
    for i in "${!ports[@]}"; do
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:${ports[$i]}/bench" >"$WORK/$name.$round.$i.txt" &
        wpids+=("$!")
    done
    for w in "${wpids[@]}"; do wait "$w"; done
    calls1=$(script_calls)
    cpu1=$(redis_cpu)
    local rps=0 p99=0 r q non2xx=0 n
    for i in "${!ports[@]}"; do
        r=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/$name.$round.$i.txt")
        q=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$WORK/$name.$round.$i.txt")")
        n=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$WORK/$name.$round.$i.txt")
        rps=$(awk -v a="$rps" -v b="$r" 'BEGIN { printf "%.1f", a + b }')
        p99=$(awk -v a="$p99" -v b="$q" 'BEGIN { print (b > a) ? b : a }')
        non2xx=$((non2xx + ${n:-0}))
    done
    local cps cpc
    cps=$(awk -v c=$((calls1 - calls0)) -v d="$DURATION" 'BEGIN { printf "%.0f", c / d }')
    cpc=$(awk -v c=$((calls1 - calls0)) -v a="$cpu0" -v b="$cpu1" 'BEGIN { if (b > a) printf "%.0f", c / (b - a); else print "-" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$p99" "$cps" "$cpc" "$non2xx" >>"$RESULTS"
    echo "  $name: $rps req/s, p99 $p99 ms, Redis script calls $cps/s ($cpc per Redis CPU-second), non-2xx $non2xx" >&2
}

echo "machine: $(nproc) CPUs, $(uname -sr); load average before: $LOAD_START; logs in $WORK" >&2
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    run_case memory "$round" "$MEM_PORT"
    run_case redis "$round" "${FLEET_PORTS[0]}"
    run_case fleet-2 "$round" "${FLEET_PORTS[0]}" "${FLEET_PORTS[1]}"
    run_case fleet-3 "$round" "${FLEET_PORTS[@]}"
done

median_of() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v c="$1" -v k="$2" '$2 == c { print $k }' "$RESULTS"; }
ratio() { awk -F'\t' -v a="$1" -v b="$2" -v k="$3" '$2 == a { x[$1] = $k } $2 == b { y[$1] = $k } END { for (r in x) if (y[r] > 0) printf "%.3f\n", x[r] / y[r] }' "$RESULTS" | median_of; }

echo
echo "## Fleet mode: wrk -t1 -c$CONNS -d${DURATION}s per gateway, $ROUNDS interleaved rounds (medians); load average at start: $LOAD_START"
echo
echo "| case | gateways | req/s (sum) | p99 ms (worst gateway) | Redis script calls/s | script calls per Redis CPU-second | non-2xx |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in memory redis fleet-2 fleet-3; do
    n=1
    case $c in fleet-2) n=2 ;; fleet-3) n=3 ;; esac
    printf '| %s | %s | %.0f | %s | %s | %s | %s |\n' "$c" "$n" "$(col "$c" 3 | median_of)" "$(col "$c" 4 | median_of)" "$(col "$c" 5 | median_of)" "$(col "$c" 6 | median_of)" "$(col "$c" 7 | awk '{ s += $1 } END { print s }')"
done
echo
echo "redis / memory (same round): throughput $(ratio redis memory 3), p99 $(ratio redis memory 4)"
echo "fleet-2 / redis: throughput $(ratio fleet-2 redis 3); fleet-3 / redis: $(ratio fleet-3 redis 3)"
