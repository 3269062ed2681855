#!/usr/bin/env bash
# bench/advice_ab.sh: what index advice costs the data path (issue 7: "hit
# and pass-through throughput with advice on vs off, same run: within 3 %",
# and the shape-recording cost per request). One build, six proxies side by
# side against the canned upstream (bench/mcload --server):
#   hit-on / hit-off     cache on, every key read twice first: only hits;
#   pass-on / pass-off   --cache false: every find reaches the upstream;
#                        advice_exact_rate at its default, so at this rate
#                        one pass-through in k has its shape derived;
#   pass-exact           pass-on with --advice-exact-rate 0: every shape
#                        derived (the cost per request without sampling);
#   hit-aa               hit-off's twin (advice off): hit-aa/hit-off is an
#                        A/A ratio, the noise the other ratios sit in.
# Each repetition runs the six in turn, the order rotating; the summary
# gives medians and the median of the per-repetition ratios on/off. With
# --callgrind, a proxy runs under valgrind's callgrind for a fixed number of
# pass-through requests, with advice on and then off (collection switched on
# around the requests only): instructions per request, and their difference,
# which is what recording a shape costs; then as many hits with advice on
# and off: what advice costs a hit, and the recording cost as a share of a
# hit.
#
#   bench/advice_ab.sh [--reps N] [-c C] [-n N] [--same-processes] [--callgrind] [--out DIR]
#
# Every repetition starts the six proxies afresh; --same-processes starts
# them once, for all repetitions (the earlier method).
#
# --reps 0 with --callgrind measures instructions only.
#
# CPUs as bench/run.sh: the systems under test on SUT_CPU (0), mcload on
# LOADGEN_CPU (1). The build is _build-bench (shared with run.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
REPS=7
CONNS=16
N=300000
CALLGRIND=0
FRESH=1
CG_REQS=3000
SIZE=256
OUT=""
while [ $# -gt 0 ]; do
    case $1 in
    --reps) REPS=$2; shift ;;
    -c) CONNS=$2; shift ;;
    -n) N=$2; shift ;;
    --callgrind) CALLGRIND=1 ;;
    --same-processes) FRESH=0 ;;
    --out) OUT=$2; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "advice_ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
# shellcheck source=bench/ab_lib.sh
. "$here/ab_lib.sh"
ab_prepare adviceab
UP=$(free_port)
start upstream "$UP" "$MCLOAD" --server --port "$UP" --size "$SIZE"
declare -A PORT HTTP PID
VARIANTS=(hit-on hit-off pass-on pass-off hit-aa pass-exact)
# Starts variant v (its flags by name) and primes it.
start_variant() {
    local v=$1 extra=(--advice on --advice-interval 10s)
    case $v in *-off | hit-aa) extra=(--advice off) ;; esac
    case $v in pass-exact) extra+=(--advice-exact-rate 0) ;; esac
    case $v in pass-*) extra+=(--cache false) ;; esac
    ab_start_variant "$v" "${extra[@]}"
}
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
# A process's speed depends on where its code and data landed (address
# randomization, environment size): a few per cent, fixed for its life. So
# each repetition starts every variant afresh (--same-processes: once), and
# the medians are over as many layouts as repetitions.
[ "$FRESH" = 1 ] || for v in "${VARIANTS[@]}"; do start_variant "$v"; done
for rep in $(seq 1 "$REPS"); do
    [ "$FRESH" = 0 ] || for v in "${VARIANTS[@]}"; do start_variant "$v"; done
    for i in "${!VARIANTS[@]}"; do
        v=${VARIANTS[$(((i + rep) % ${#VARIANTS[@]}))]}
        t0=$(ab_cpu_ticks "${PID[$v]}")
        json=$(taskset -c "$LOADGEN_CPU" "$MCLOAD" --port "${PORT[$v]}" -c "$CONNS" -n "$N" \
            --seconds 30 --warmup 1000 --keys "$KEYS" --size "$SIZE" --scenario "$v" \
            --stats-url "http://127.0.0.1:${HTTP[$v]}/stats")
        t1=$(ab_cpu_ticks "${PID[$v]}")
        echo "${json%\}}, \"rep\": $rep, \"cpu_ticks\": $((t1 - t0))}" >>"$RESULTS"
    done
    [ "$FRESH" = 0 ] || for v in "${VARIANTS[@]}"; do ab_stop_variant "$v"; done
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
print("advice on vs off, %d connections, %d repetitions (medians)" %
      (runs[0]["connections"], len(by["hit-on"])))
print("%-12s %12s %12s %10s %14s %14s" % ("", "on req/s", "off req/s", "on/off",
                                          "on CPU us/req", "off CPU us/req"))
for kind in ("hit", "pass", "exact", "aa"):
    on, off = {"aa": (by["hit-aa"], by["hit-off"]),
               "exact": (by["pass-exact"], by["pass-off"])}.get(kind, (by.get(kind + "-on"),
                                                                       by.get(kind + "-off")))
    ratios = [on[k]["rps"] / off[k]["rps"] for k in on if k in off]
    print("%-12s %12.0f %12.0f %10.3f %14.2f %14.2f   per repetition %.3f to %.3f" % (
        {"hit": "hits", "pass": "pass-through", "exact": "pass exact",
         "aa": "hits A/A"}[kind],
        statistics.median(r["rps"] for r in on.values()),
        statistics.median(r["rps"] for r in off.values()),
        statistics.median(ratios),
        statistics.median(cpu_us(r) for r in on.values()),
        statistics.median(cpu_us(r) for r in off.values()), min(ratios), max(ratios)))
print("pass-through: advice_exact_rate at its default (above it one in k is derived);")
print("pass exact: advice_exact_rate 0, every shape derived; hits A/A: a second proxy with")
print("advice off in the on column, against hit-off: the noise")
EOF

if [ "$CALLGRIND" = 1 ]; then
    command -v valgrind >/dev/null 2>&1 || { echo "# callgrind skipped: no valgrind" >&2; exit 0; }
    for mode in on off hit hitoff; do
        case $mode in
        hit) flags=(--cache-ttl 1h --advice on) ;;
        hitoff) flags=(--cache-ttl 1h --advice off) ;;
        *) flags=(--cache false --advice "$mode" --advice-exact-rate 0) ;; # every shape derived
        esac
        ab_callgrind "$mode" "${flags[@]}" --advice-interval 1h
    done
    python3 - "$OUT" "$CG_REQS" <<'EOF' | tee -a "$OUT/summary.txt"
import sys
out, n = sys.argv[1], int(sys.argv[2])
on = int(open(out + "/cg-on.total").read().strip() or 0)
off = int(open(out + "/cg-off.total").read().strip() or 0)
hit = int(open(out + "/cg-hit.total").read().strip() or 0)
hitoff = int(open(out + "/cg-hitoff.total").read().strip() or 0)
print("callgrind, %d pass-through requests: %.0f instructions per request with advice on, "
      "%.0f off: recording a shape costs %.0f (%.1f %% of a pass-through)" % (
          n, on / n, off / n, (on - off) / n, 100.0 * (on - off) / max(off, 1)))
print("callgrind, %d hits: %.0f instructions per hit with advice on, %.0f off (a hit's own "
      "advice costs %.0f); recording a shape costs %.1f %% of a hit" % (
          n, hit / n, hitoff / n, (hit - hitoff) / n, 100.0 * (on - off) / max(hitoff, 1)))
EOF
fi
