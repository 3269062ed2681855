#!/usr/bin/env bash
# bench/syscalls.sh [N]: system calls per request of mongocache at one
# client, by name, for in-process hits (cache on, every key read before
# counting) and for pass-through (cache off), against the canned upstream
# (bench/mcload --server). strace -c -f attaches to the running proxy while
# mcload sends N requests (default 20000) on one connection; the counts are
# divided by the requests sent while attached (the handshake adds a few
# calls once, which N makes negligible). A count, not a timing: the result
# does not depend on what else runs on the machine. Targets (issue 9):
# <= 3 per hit, <= 6 per pass-through, no epoll_ctl in steady state.
#
# Environment: BUILD_DIR (default ./_build) holding mongocache and
# bench/mcload; MONGOCACHE, MCLOAD override each binary.
set -euo pipefail

N=${1:-20000}
KEYS=100
here=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=${BUILD_DIR:-$here/../_build}
MONGOCACHE=${MONGOCACHE:-$BUILD_DIR/mongocache}
MCLOAD=${MCLOAD:-$BUILD_DIR/bench/mcload}
command -v strace >/dev/null || { echo "syscalls.sh: strace is not installed" >&2; exit 2; }
[ -x "$MONGOCACHE" ] && [ -x "$MCLOAD" ] || { echo "syscalls.sh: build first ($BUILD_DIR)" >&2; exit 2; }

OUT=$(mktemp -d)
mkdir -p "$OUT/logs"
SUT_CPU=${SUT_CPU:-0-$(($(nproc) - 1))}
# shellcheck source=bench/ab_lib.sh
. "$here/ab_lib.sh" # start, free_port, wait_port; cleanup stops them at exit
trap 'cleanup; rm -rf "$OUT"' EXIT

up_port=$(free_port)
start upstream "$up_port" "$MCLOAD" --server --port "$up_port" --size 256 || exit 1

measure() { # NAME MONGOCACHE_ARGS...
    local name=$1 mc_pid mc_port json total spid
    shift
    mc_port=$(free_port)
    start "$name" "$mc_port" "$MONGOCACHE" --listen "127.0.0.1:$mc_port" \
        --upstream "mongodb://127.0.0.1:$up_port" --log-level warn --cache-ttl 1h "$@" || exit 1
    mc_pid=${PIDS[-1]}
    # every key once, so that the counted phase is all hits (cache on)
    "$MCLOAD" --port "$mc_port" -c 1 -n "$KEYS" --warmup "$KEYS" --keys "$KEYS" >/dev/null
    strace -c -f -q -p "$mc_pid" -o "$OUT/$name.strace" &
    spid=$!
    sleep 1
    json=$("$MCLOAD" --port "$mc_port" -c 1 -n "$N" --warmup "$KEYS" --keys "$KEYS" \
        --seconds 120 --scenario "$name")
    sleep 0.3
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    total=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["n"]+d["warmup_n"])' "$json")
    awk -v name="$name" -v n="$total" '
        # % time, seconds, usecs/call, calls, [errors,] syscall
        $1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { per[$NF] = $4 / n; sum += $4 / n }
        END {
            line = sprintf("%-12s %.2f syscalls/request over %d requests:", name, sum, n)
            for (s in per) if (per[s] >= 0.01) line = line sprintf(" %s=%.2f", s, per[s])
            print line
        }' "$OUT/$name.strace"
    kill "$mc_pid" 2>/dev/null || true
}

measure hit
measure passthrough --cache false
