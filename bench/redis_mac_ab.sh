#!/usr/bin/env bash
# bench/redis_mac_ab.sh: what the value MAC (cache/redis_mac.c) costs per
# Redis-tier hit. Two builds of this tree, side by side:
#   A  as it is (every hit verifies a SipHash-2-4-128 over the value);
#   B  the same with cache_redis_mac_compute / _verify reduced to no-ops
#      (a copy of the tree patched here; the 16 zero bytes still travel),
#      which is the tier without the MAC and nothing else changed.
# Each proxy runs the Redis tier only (--cache-memory 0: every hit is a Redis
# lookup, a MAC check and a decode) against its own redis-server and the
# canned upstream (bench/mcload --server). After a priming pass (every key
# read twice: all hits from then on), mcload measures A and B in turn,
# alternating which goes first, for --reps repetitions; the summary gives the
# medians and the median of the per-repetition ratios A/B. Then, with
# --callgrind, A runs under valgrind's callgrind for a fixed number of hits
# (collection switched on around them only): instructions per hit in total,
# and inside the MAC.
#
#   bench/redis_mac_ab.sh [--reps N] [--size B] [-c C] [-n N] [--callgrind] [--out DIR]
#
# CPUs as bench/run.sh: the systems under test on SUT_CPU (0), mcload on
# LOADGEN_CPU (1). Builds go to _build-bench (A, shared with run.sh) and
# _build-bench-nomac (B).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
REPS=7
SIZE=256
CONNS=1
N=20000
CALLGRIND=0
CG_HITS=2000
OUT=""
while [ $# -gt 0 ]; do
    case $1 in
    --reps) REPS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    -c) CONNS=$2; shift ;;
    -n) N=$2; shift ;;
    --callgrind) CALLGRIND=1 ;;
    --out) OUT=$2; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "redis_mac_ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
LOADGEN_CPU=${LOADGEN_CPU:-1}
SUT_CPU=${SUT_CPU:-0}
KEYS=1000
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mongocache-macab.XXXXXX")}
mkdir -p "$OUT/logs"
echo "# results in $OUT" >&2

# ---- builds ----------------------------------------------------------------------------
build() { # DIR SRC
    mkdir -p "$1"
    if [ ! -f "$1/Makefile" ]; then
        (cd "$1" && "$2/configure" -q --disable-asan CFLAGS="-O2 -g") >&2
    fi
    (cd "$1" && make -j2 mongocache bench/mcload >/dev/null)
}
[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi >/dev/null 2>&1)
build "$top/_build-bench" "$top"
SRC_B=$OUT/src-nomac
rm -rf "$SRC_B"
mkdir -p "$SRC_B"
# one tar (xargs may split a long list into several archives: tar x stops after the first)
(cd "$top" && git ls-files -z | tar cf - --null -T - | tar xf - -C "$SRC_B")
python3 - "$SRC_B/cache/redis_mac.c" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
a = "    struct sip s;\n\n    BSON_ASSERT(name_len <= UINT32_MAX);"
b = "    uint8_t want[CACHE_REDIS_MAC_LEN];\n\n    cache_redis_mac_compute"
assert a in s and b in s, "redis_mac.c changed: update the B patch"
s = s.replace(a, "    struct sip s;\n\n    if (1) { /* BENCH B: no MAC */\n"
              "        memset(tag, 0, CACHE_REDIS_MAC_LEN);\n        return;\n    }\n"
              "    BSON_ASSERT(name_len <= UINT32_MAX);")
s = s.replace(b, "    if (1) /* BENCH B: no MAC */\n        return true;\n" + b)
open(p, "w").write(s)
EOF
(cd "$SRC_B" && autoreconf -fi >/dev/null 2>&1)
build "$top/_build-bench-nomac" "$SRC_B"
BIN_A=$top/_build-bench/mongocache
BIN_B=$top/_build-bench-nomac/mongocache
MCLOAD=$top/_build-bench/bench/mcload

# ---- processes --------------------------------------------------------------------------
# shellcheck source=bench/ab_lib.sh
. "$here/ab_lib.sh"
UP=$(free_port)
start upstream "$UP" "$MCLOAD" --server --port "$UP" --size "$SIZE"
declare -A PORT HTTP PID
for v in A B; do
    r=$(free_port)
    mkdir -p "$OUT/logs/redis-$v"
    start "redis-$v" "$r" redis-server --bind 127.0.0.1 --port "$r" --save '' --appendonly no \
        --dir "$OUT/logs/redis-$v"
    PORT[$v]=$(free_port)
    HTTP[$v]=$(free_port)
    bin=$BIN_A
    [ "$v" = B ] && bin=$BIN_B
    start "mongocache-$v" "${PORT[$v]}" "$bin" --listen "127.0.0.1:${PORT[$v]}" \
        --upstream "mongodb://127.0.0.1:$UP" --http-listen "127.0.0.1:${HTTP[$v]}" \
        --log-level warn --cache-ttl 1h --cache-memory 0 --cache-key-secret bench \
        --redis "redis://127.0.0.1:$r"
    PID[$v]=${PIDS[-1]}
    sleep 0.3
    # priming: every key read twice, so that the measured part is all hits
    taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "${PORT[$v]}" -c 1 -n "$KEYS" --warmup "$KEYS" \
        --keys "$KEYS" --size "$SIZE" --seconds 60 >/dev/null
done

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
for rep in $(seq 1 "$REPS"); do
    order="A B"
    [ $((rep % 2)) = 0 ] && order="B A"
    for v in $order; do
        t0=$(cpu_ticks "${PID[$v]}")
        json=$(taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "${PORT[$v]}" -c "$CONNS" -n "$N" \
            --seconds 3 --warmup 500 --keys "$KEYS" --size "$SIZE" --scenario "$v" \
            --stats-url "http://127.0.0.1:${HTTP[$v]}/stats")
        t1=$(cpu_ticks "${PID[$v]}")
        echo "${json%\}}, \"rep\": $rep, \"cpu_ticks\": $((t1 - t0))}" >>"$RESULTS"
    done
done

python3 - "$RESULTS" "$(getconf CLK_TCK)" <<'EOF' | tee "$OUT/summary.txt"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
hz = int(sys.argv[2])
by = {}
for r in runs:
    by.setdefault(r["scenario"], {})[r["rep"]] = r
def med(v, key):
    return statistics.median(r[key] for r in by[v].values())
def cpu_us(r):
    return r["cpu_ticks"] * 1e6 / hz / (r["n"] + r["warmup_n"])
print("Redis-tier hits (--cache-memory 0), size %s, %d connection(s), %d repetitions" %
      (runs[0]["size"], runs[0]["connections"], len(by["A"])))
print("%-28s %12s %12s %10s" % ("", "A (MAC)", "B (no MAC)", "A/B"))
for key, label in (("p50", "p50 latency (us)"), ("p99", "p99 latency (us)"),
                   ("rps", "requests/s")):
    a, b = med("A", key), med("B", key)
    ratios = [by["A"][k][key] / by["B"][k][key] for k in by["A"] if k in by["B"]]
    print("%-28s %12.1f %12.1f %10.3f" % (label, a, b, statistics.median(ratios)))
ca = statistics.median(cpu_us(r) for r in by["A"].values())
cb = statistics.median(cpu_us(r) for r in by["B"].values())
print("%-28s %12.2f %12.2f %10.3f" % ("proxy CPU per request (us)", ca, cb, ca / cb))
print("hit ratio (measured part): A %s, B %s" % (
    sorted({r.get("hit_ratio") for r in by["A"].values()}),
    sorted({r.get("hit_ratio") for r in by["B"].values()})))
EOF

redis_hits() { # HTTP_PORT: the proxy's redis_hits counter
    curl -s "http://127.0.0.1:$1/stats" | python3 -c \
        'import json, sys; print(json.load(sys.stdin)["cache"]["redis"]["counters"]["redis_hits"])'
}

if [ "$CALLGRIND" = 1 ]; then
    command -v valgrind >/dev/null 2>&1 || { echo "# callgrind skipped: no valgrind" >&2; exit 0; }
    r=$(free_port)
    mkdir -p "$OUT/logs/redis-cg"
    start redis-cg "$r" redis-server --bind 127.0.0.1 --port "$r" --save '' --appendonly no \
        --dir "$OUT/logs/redis-cg"
    p=$(free_port)
    h=$(free_port)
    taskset -c "$SUT_CPU" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/callgrind.out" "$BIN_A" --listen "127.0.0.1:$p" \
        --upstream "mongodb://127.0.0.1:$UP" --http-listen "127.0.0.1:$h" --log-level warn \
        --cache-ttl 1h --cache-memory 0 --cache-key-secret bench --redis "redis://127.0.0.1:$r" \
        >"$OUT/logs/callgrind.log" 2>&1 &
    CG=$!
    PIDS+=("$CG")
    wait_port "$p"
    sleep 1
    taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "$p" -c 1 -n "$KEYS" --warmup "$KEYS" \
        --keys "$KEYS" --size "$SIZE" --seconds 120 >/dev/null
    hits0=$(redis_hits "$h")
    callgrind_control -i on "$CG" >/dev/null
    taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "$p" -c 1 -n "$CG_HITS" --warmup 0 \
        --keys "$KEYS" --size "$SIZE" --seconds 120 >/dev/null
    callgrind_control -i off "$CG" >/dev/null
    hits1=$(redis_hits "$h")
    callgrind_control -d "$CG" >/dev/null
    sleep 1
    kill -TERM "$CG" 2>/dev/null || true
    wait "$CG" 2>/dev/null || true
    dump=$(ls "$OUT"/callgrind.out.* | head -n 1) # the dump taken above, not the final one
    callgrind_annotate --inclusive=yes "$dump" >"$OUT/callgrind.txt" 2>/dev/null || true
    python3 - "$OUT/callgrind.txt" "$((hits1 - hits0))" <<'EOF' | tee -a "$OUT/summary.txt"
import re, sys
text = open(sys.argv[1]).read()
hits = int(sys.argv[2])
total = re.search(r"^\s*([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", text, re.M)
def incl(fn):
    m = re.search(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*:" + re.escape(fn) + r"\b", text, re.M)
    return int(m.group(1).replace(",", "")) if m else 0
t = int(total.group(1).replace(",", "")) if total else 0
print("callgrind: instructions over %d Redis-tier hits (redis_hits counted around them)" % hits)
if hits and t:
    for fn in ("cache_redis_mac_verify", "cache_redis_blob_decode", "lookup_done",
               "cache_redis_resp_next"):
        print("  %-26s %9.0f instructions per hit (%.1f%% of all)" %
              (fn, incl(fn) / hits, 100.0 * incl(fn) / t))
    print("  %-26s %9.0f instructions per hit" % ("whole proxy", t / hits))
EOF
fi
