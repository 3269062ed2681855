#!/usr/bin/env bash
# bench/metrics_ab.sh: what the latency histograms cost the data path (issue
# 8: "the cost of metrics and histograms on the hit path, same-run
# throughput with and without"). The counters are plain integer increments
# that are always on; latency_histograms adds a clock read per request, one
# per upstream round trip, and a bucket increment per reply. One build, five
# proxies side by side against the canned upstream (bench/mcload --server):
#   hit-on / hit-off     cache on, every key read twice first: only hits;
#                        on: the defaults (latency_histograms on,
#                        slow_request_ms 100); off: latency_histograms off
#                        and slow_request_ms 0, so no request is timed;
#   pass-on / pass-off   --cache false: every find reaches the upstream;
#   hit-aa               hit-off's twin (histograms off): hit-aa/hit-off is
#                        an A/A ratio, the noise the other ratios sit in.
# Each repetition starts the five afresh and runs them in turn, the order
# rotating; the summary gives medians and the median of the per-repetition
# ratios on/off. With --callgrind, a proxy runs under valgrind's callgrind
# for a fixed number of hits (then pass-through requests) with histograms
# on and then off: instructions per request, and their difference.
#
#   bench/metrics_ab.sh [--reps N] [-c C] [-n N] [--callgrind] [--out DIR]
#
# --reps 0 with --callgrind measures instructions only. CPUs as bench/run.sh:
# the systems under test on SUT_CPU (0), mcload on LOADGEN_CPU (1). The
# build is _build-bench (shared with run.sh and advice_ab.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
REPS=7
CONNS=16
N=300000
CALLGRIND=0
CG_REQS=3000
SIZE=256
OUT=""
while [ $# -gt 0 ]; do
    case $1 in
    --reps) REPS=$2; shift ;;
    -c) CONNS=$2; shift ;;
    -n) N=$2; shift ;;
    --callgrind) CALLGRIND=1 ;;
    --out) OUT=$2; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "metrics_ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
# shellcheck source=bench/ab_lib.sh
. "$here/ab_lib.sh"
ab_prepare metricsab
UP=$(free_port)
start upstream "$UP" "$MCLOAD" --server --port "$UP" --size "$SIZE"
declare -A PORT HTTP PID
VARIANTS=(hit-on hit-off pass-on pass-off hit-aa)
# Starts variant v (its flags by name) and primes it. off: no request is
# timed at all (no histogram, no slow-request check).
start_variant() {
    local v=$1 extra=(--latency-histograms on)
    case $v in *-off | hit-aa) extra=(--latency-histograms off --slow-request-ms 0) ;; esac
    case $v in pass-*) extra+=(--cache false) ;; esac
    ab_start_variant "$v" "${extra[@]}"
}
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
# A process's speed depends on where its code and data landed (address
# randomization, environment size): a few per cent, fixed for its life. So
# each repetition starts every variant afresh, and the medians are over as
# many layouts as repetitions.
for rep in $(seq 1 "$REPS"); do
    for v in "${VARIANTS[@]}"; do start_variant "$v"; done
    for i in 0 1 2 3 4; do
        v=${VARIANTS[$(((i + rep) % 5))]}
        t0=$(ab_cpu_ticks "${PID[$v]}")
        json=$(taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "${PORT[$v]}" -c "$CONNS" -n "$N" \
            --seconds 30 --warmup 1000 --keys "$KEYS" --size "$SIZE" --scenario "$v" \
            --stats-url "http://127.0.0.1:${HTTP[$v]}/stats")
        t1=$(ab_cpu_ticks "${PID[$v]}")
        echo "${json%\}}, \"rep\": $rep, \"cpu_ticks\": $((t1 - t0))}" >>"$RESULTS"
    done
    for v in "${VARIANTS[@]}"; do ab_stop_variant "$v"; done
done

[ "$REPS" -gt 0 ] && python3 - "$RESULTS" "$(getconf CLK_TCK)" <<'EOF' | tee "$OUT/summary.txt"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
hz = int(sys.argv[2])
by = {}
for r in runs:
    by.setdefault(r["scenario"], {})[r["rep"]] = r
def cpu_us(r):
    return r["cpu_ticks"] * 1e6 / hz / (r["n"] + r["warmup_n"])
print("latency histograms on vs off, %d connections, %d repetitions (medians)" %
      (runs[0]["connections"], len(by["hit-on"])))
print("%-12s %12s %12s %10s %14s %14s" % ("", "on req/s", "off req/s", "on/off",
                                          "on CPU us/req", "off CPU us/req"))
for kind in ("hit", "pass", "aa"):
    on, off = (by["hit-aa"], by["hit-off"]) if kind == "aa" else (by[kind + "-on"],
                                                                   by[kind + "-off"])
    ratios = [on[k]["rps"] / off[k]["rps"] for k in on if k in off]
    print("%-12s %12.0f %12.0f %10.3f %14.2f %14.2f   per repetition %.3f to %.3f" % (
        {"hit": "hits", "pass": "pass-through", "aa": "hits A/A"}[kind],
        statistics.median(r["rps"] for r in on.values()),
        statistics.median(r["rps"] for r in off.values()),
        statistics.median(ratios),
        statistics.median(cpu_us(r) for r in on.values()),
        statistics.median(cpu_us(r) for r in off.values()), min(ratios), max(ratios)))
print("hits A/A: a second proxy with histograms off in the on column, against hit-off: the noise")
EOF

if [ "$CALLGRIND" = 1 ]; then
    command -v valgrind >/dev/null 2>&1 || { echo "# callgrind skipped: no valgrind" >&2; exit 0; }
    for mode in hit-on hit-off pass-on pass-off; do
        flags=(--latency-histograms "${mode#*-}")
        [ "${mode#*-}" = off ] && flags+=(--slow-request-ms 0)
        case $mode in
        hit-*) flags+=(--cache-ttl 1h) ;;
        pass-*) flags+=(--cache false) ;;
        esac
        ab_callgrind "$mode" "${flags[@]}"
    done
    python3 - "$OUT" "$CG_REQS" <<'EOF' | tee -a "$OUT/summary.txt"
import sys
out, n = sys.argv[1], int(sys.argv[2])
t = {m: int(open("%s/cg-%s.total" % (out, m)).read().strip() or 0)
     for m in ("hit-on", "hit-off", "pass-on", "pass-off")}
for kind, label in (("hit", "hits"), ("pass", "pass-through requests")):
    on, off = t[kind + "-on"] / n, t[kind + "-off"] / n
    print("callgrind, %d %s: %.0f instructions per request with latency histograms on, %.0f "
          "off: %+.0f (%+.1f %%)" % (n, label, on, off, on - off, 100.0 * (on - off) / max(off, 1)))
EOF
fi
