#!/usr/bin/env bash
# bench/syscalls.sh [--clients C] [--scenario NAME]... [N]: system calls per
# request of mongocache, by name, for in-process hits (hit: cache on, every
# key read before counting), pass-through (passthrough: cache off) and
# Redis-tier hits (redis-hit: --redis on a redis-server started here,
# --cache-memory 0, so every hit is one MGET; only when redis-server is
# installed), against the canned upstream (bench/mcload --server). strace -c
# -f attaches to the running proxy while mcload sends N requests (default
# 20000) on C connections (default 1); the counts are divided by the
# requests sent while attached (the handshake adds a few calls once, which N
# makes negligible). --scenario picks scenarios (repeatable; default all).
# A count, not a timing: the result does not depend on what else runs on
# the machine. A line "NAME: mcload errors E" follows each count (replies
# mcload refused: not its request's, not ok, or of the wrong size). Targets (issue 9) at one client: <= 3 per hit, <= 6 per
# pass-through and per Redis-tier hit (two sockets: each a poll, a read and
# a write), no epoll_ctl in steady state.
#
# Environment: BUILD_DIR (default ./_build) holding mongocache and
# bench/mcload; MONGOCACHE, MCLOAD override each binary.
set -euo pipefail

CLIENTS=1
SCENARIOS=()
while [ $# -gt 0 ]; do
    case $1 in
    --clients) CLIENTS=$2; shift ;;
    --scenario) SCENARIOS+=("$2"); shift ;;
    *) break ;;
    esac
    shift
done
N=${1:-20000}
KEYS=100
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(hit passthrough redis-hit)
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
    json=$("$MCLOAD" --port "$mc_port" -c "$CLIENTS" -n "$N" --warmup "$KEYS" --keys "$KEYS" \
        --seconds 120 --scenario "$name")
    sleep 0.3
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    total=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["n"]+d["warmup_n"])' "$json")
    # mcload checks every reply (its request's responseTo, ok: 1, the size)
    echo "$name: mcload errors $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["errors"])' "$json")"
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

for scenario in "${SCENARIOS[@]}"; do
    case $scenario in
    hit) measure hit ;;
    passthrough) measure passthrough --cache false ;;
    redis-hit)
        if ! command -v redis-server >/dev/null; then
            echo "syscalls.sh: redis-hit skipped: redis-server is not installed" >&2
            continue
        fi
        redis_port=$(free_port)
        mkdir -p "$OUT/redis"
        start redis "$redis_port" redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
            --appendonly no --daemonize no --dir "$OUT/redis" --protected-mode yes || exit 1
        measure redis-hit --redis "redis://127.0.0.1:$redis_port" --cache-memory 0 \
            --cache-key-secret bench
        ;;
    *) echo "syscalls.sh: unknown scenario $scenario (hit, passthrough, redis-hit)" >&2; exit 2 ;;
    esac
done
