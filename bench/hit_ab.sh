#!/usr/bin/env bash
# bench/hit_ab.sh: in-process hits at 50 clients through two mongocache
# binaries, beside a Redis GET of the same size (issue 9's anchor, read by
# the same client: mcload --resp), in alternating rounds. For each round and
# side: req/s, CPU microseconds per request of the server (user and system,
# from /proc/PID/stat, warm-up included) and the load generator's context
# switches per request (how often the server's replies found it asleep: each
# such reply costs the server a wake-up of the client's CPU, dear in a VM).
# Prints the medians and the median of the per-round ratios to Redis.
#
#   bench/hit_ab.sh --a OLD_BINARY --b NEW_BINARY [--rounds N] [--size B] [--tier]
#
# --b may be left out (one binary against Redis). --tier serves the hits
# from a Redis tier (--redis, --cache-memory 0) instead of the process's
# memory, and adds the CPU per hit of the tier's Redis (on the proxies'
# CPU: it counts against their throughput). CPUs as bench/run.sh: Redis and the proxies on SUT_CPU (0), mcload
# on LOADGEN_CPU (1). Every process runs under the script and ends with it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
A=""
B=""
ROUNDS=12
SIZE=256
SECONDS_EACH=1.5
TIER=0
OUT=${OUT:-}
while [ $# -gt 0 ]; do
    case $1 in
    --a) A=$2; shift ;;
    --b) B=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --seconds) SECONDS_EACH=$2; shift ;;
    --tier) TIER=1 ;;
    --out) OUT=$2; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "hit_ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$A" ] || { echo "hit_ab.sh: --a BINARY is required" >&2; exit 2; }
command -v perf >/dev/null 2>&1 || { echo "hit_ab.sh: needs perf (Debian linux-perf)" >&2; exit 2; }
# shellcheck source=bench/ab_lib.sh
. "$here/ab_lib.sh"
ab_prepare hitab # builds mcload (and _build-bench's mongocache, unused unless given)
UP=$(free_port)
start upstream "$UP" "$MCLOAD" --server --port "$UP" --size "$SIZE"
RP=$(free_port)
mkdir -p "$OUT/redis" "$OUT/tier"
start redis "$RP" redis-server --bind 127.0.0.1 --port "$RP" --save '' --appendonly no \
    --dir "$OUT/redis"
RPID=${PIDS[-1]}
timeout 60 taskset -c "$LOADGEN_CPU" redis-benchmark -h 127.0.0.1 -p "$RP" -t set -r "$KEYS" \
    -n $((KEYS * 25)) -d "$SIZE" -c 10 -q >/dev/null 2>&1
tier=()
if [ "$TIER" = 1 ]; then
    TP=$(free_port)
    start tier "$TP" redis-server --bind 127.0.0.1 --port "$TP" --save '' --appendonly no \
        --dir "$OUT/tier"
    tier=(--redis "redis://127.0.0.1:$TP" --cache-memory 0 --cache-key-secret bench)
    TPID=${PIDS[-1]}
fi
declare -A PORT HTTP PID
BIN=$A
ab_start_variant a "${tier[@]}"
if [ -n "$B" ]; then
    BIN=$B
    ab_start_variant b "${tier[@]}"
fi

RESULTS=$OUT/results.jsonl
: >"$RESULTS"
# One measurement: mcload against PORT, the server PID's CPU ticks (user,
# system) and mcload's context switches around it.
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12, $13}'; }
measure() { # ROUND SIDE PORT PID EXTRA...
    local round=$1 side=$2 port=$3 pid=$4 u0 s0 u1 s1 tu0=0 ts0=0 tu1=0 ts1=0 json cs
    shift 4
    [ "$TIER" = 1 ] && read -r tu0 ts0 < <(ticks "$TPID")
    read -r u0 s0 < <(ticks "$pid")
    json=$(perf stat -x, -e context-switches -o "$OUT/cs.txt" taskset -c "$LOADGEN_CPU" \
        "$MCLOAD" --port "$port" -c 50 -n 1000000 --warmup 20000 --keys "$KEYS" --size "$SIZE" \
        --seconds "$SECONDS_EACH" --scenario "$side" "$@")
    read -r u1 s1 < <(ticks "$pid")
    [ "$TIER" = 1 ] && read -r tu1 ts1 < <(ticks "$TPID")
    cs=$(grep context-switches "$OUT/cs.txt" | cut -d, -f1)
    echo "${json%\}}, \"round\": $round, \"user_ticks\": $((u1 - u0)), \"sys_ticks\": $((s1 - s0)), \"tier_ticks\": $((tu1 + ts1 - tu0 - ts0)), \"loadgen_cs\": ${cs:-0}}" >>"$RESULTS"
}
for round in $(seq 1 "$ROUNDS"); do
    measure "$round" redis "$RP" "$RPID" --resp
    measure "$round" a "${PORT[a]}" "${PID[a]}"
    [ -n "$B" ] && measure "$round" b "${PORT[b]}" "${PID[b]}"
done

python3 - "$RESULTS" "$(getconf CLK_TCK)" "$SIZE" "$TIER" <<'EOF' | tee "$OUT/summary.txt"
import json, statistics as st, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
hz, size, tier = int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
by = {}
for r in runs:
    by.setdefault(r["round"], {})[r["scenario"]] = r
def cpu(r, key=None):
    n = r["n"] + r["warmup_n"]
    ticks = r[key] if key else r["user_ticks"] + r["sys_ticks"]
    return ticks * 1e6 / hz / n
def med(xs, f="%.2f"):
    xs = list(xs)
    return (f + " [" + f + ", " + f + "]") % (st.median(xs), min(xs), max(xs))
print("%s hits at 50 clients, %s B, %d rounds (median [min, max])" %
      ("Redis-tier" if tier else "in-process", size, len(by)))
print("%-6s %-24s %-24s %-20s %-20s %-22s %-22s" % ("side", "req/s", "CPU us/req", "user",
      "system", "loadgen cs/req", "req/s / Redis GET's"))
for side in ("redis", "a", "b"):
    rs = [x[side] for x in by.values() if side in x]
    if not rs:
        continue
    ratio = "-" if side == "redis" else med(x[side]["rps"] / x["redis"]["rps"]
                                            for x in by.values() if side in x)
    print("%-6s %-24s %-24s %-20s %-20s %-22s %-22s" % (
        side, med((r["rps"] for r in rs), "%.0f"), med(cpu(r) for r in rs),
        med(cpu(r, "user_ticks") for r in rs), med(cpu(r, "sys_ticks") for r in rs),
        med((r["loadgen_cs"] / (r["n"] + r["warmup_n"]) for r in rs), "%.3f"), ratio))
for side in ("a", "b"):
    rs = [x for x in by.values() if side in x]
    if rs:
        print("Redis CPU per GET / %s's CPU per hit: %s" % (side, med(cpu(x["redis"]) / cpu(x[side])
                                                                  for x in rs)))
        if tier:
            print("  the tier's Redis, CPU us per %s hit: %s; Redis CPU per GET / (%s's + its "
                  "tier's): %s" % (side, med(cpu(x[side], "tier_ticks") for x in rs), side,
                                   med(cpu(x["redis"]) / (cpu(x[side]) + cpu(x[side], "tier_ticks"))
                                       for x in rs)))
EOF
