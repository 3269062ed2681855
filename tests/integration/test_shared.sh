#!/usr/bin/env bash
# tests/integration/test_shared.sh: the shared Redis tier at proxy level.
#
# One FerretDB, one redis-server, two proxies P1 and P2 with the same --redis
# and --cache-key-secret. The cases run in shared_check.py, whose unnumbered
# TAP lines are numbered here; hits and bypasses are read from GET /stats and
# results are compared with FerretDB's own.
#
#   1 share    a query filled through P1 is a Redis hit through P2
#   late       a w:0 write through P1: P2 fills what it reads during P1's grace,
#              and P1's bump at the grace's end makes it stale there too
#   2 history  randomized readers and writers (8 threads, about 1,500 ops,
#              at most 20 s) through P1 and P2: no read returns a value older
#              than a write acknowledged before the read started; both
#              proxies served hits
#   3 kill     redis-server killed (-9) under load: every query answered
#              correctly with bounded latency (redis_unavailable bypass);
#              restarted on the same port: a write made during the outage
#              is seen through both proxies, epoch bumped
#   4 pause    redis-server SIGSTOPped 3 s: bounded latency, breaker trips;
#              after SIGCONT hits resume and nothing stale is served
#   5 stop     both proxies exit 0 on SIGTERM (and no sanitizer report)
#
# redis-server is SIGCONTinued on any exit. Bounded: about 60 s.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy's cache"
command -v redis-server >/dev/null 2>&1 || {
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "redis-server not found"
    echo "1..0 # SKIP redis-server not found"
    exit 0
}

REDIS_PIDFILE=$MC_TMP/shared-redis.pids
: >"$REDIS_PIDFILE"
# Never leave a stopped redis-server behind; track the restarted ones.
# shellcheck disable=SC2317 # invoked by the EXIT trap
shared_exit() {
    local st=$? pid
    for pid in ${REDIS_PID:-} $(cat "$REDIS_PIDFILE" 2>/dev/null); do
        kill -CONT "$pid" 2>/dev/null
        kill -TERM "$pid" 2>/dev/null
    done
    (exit "$st")
    mc_teardown # exits with $? as it finds it: st
}
trap shared_exit EXIT

# run_lines LABEL CMD...: see mc_run_lines in lib.sh.
run_lines() {
    MC_GROUP_TIMEOUT=120 mc_run_lines shared "$@"
}

TIMEOUT_MS=50
mc_start_ferretdb
mc_start_redis
REDIS_DIR=$MC_TMP/shared-redis
mkdir -p "$REDIS_DIR"
SECRET="shared-secret-$$-$RANDOM"
TIER_FLAGS="--redis redis://127.0.0.1:$REDIS_PORT --cache-key-secret $SECRET
    --redis-timeout ${TIMEOUT_MS}ms --redis-breaker-failures 3 --redis-breaker-cooldown 1s"
# shellcheck disable=SC2086 # word splitting of the flags is intended
mc_start_proxy $TIER_FLAGS
P1_PORT=$PROXY_PORT P1_HTTP=$PROXY_HTTP_PORT P1_PID=$PROXY_PID P1_LOG=$PROXY_LOG
# shellcheck disable=SC2086
mc_start_proxy $TIER_FLAGS
P2_PORT=$PROXY_PORT P2_HTTP=$PROXY_HTTP_PORT P2_PID=$PROXY_PID P2_LOG=$PROXY_LOG

# wait (bounded) for both tiers to be connected
mc_wait_tiers "$P1_HTTP" "$P2_HTTP" || true

py() { # GROUP [ARGS]
    local group=$1
    shift
    run_lines "$group" "$MC_PYTHON" "$MC_TESTDIR/shared_check.py" "$group" \
        --p1 "$P1_PORT" --h1 "$P1_HTTP" --p2 "$P2_PORT" --h2 "$P2_HTTP" --direct "$FERRET_PORT" \
        --redis-port "$REDIS_PORT" --redis-pid "$REDIS_PID" --redis-pidfile "$REDIS_PIDFILE" \
        --redis-dir "$REDIS_DIR" --timeout-ms "$TIMEOUT_MS" "$@"
}

py share
py late
py history
py killpause
# the redis-servers the kill case restarted die at teardown
for pid in $(cat "$REDIS_PIDFILE"); do
    mc_track "$pid"
    kill -CONT "$pid" 2>/dev/null
done

# ---- 5: both proxies exit 0 on SIGTERM ----------------------------------------------
for which in 1 2; do
    if [ "$which" = 1 ]; then PROXY_PID=$P1_PID PROXY_LOG=$P1_LOG; else PROXY_PID=$P2_PID PROXY_LOG=$P2_LOG; fi
    mc_stop_proxy
    mc_is "$MC_PROXY_STATUS" 0 "shared 5: P$which exits 0 on SIGTERM"
    [ "$MC_PROXY_STATUS" -eq 0 ] || mc_log_tail "$PROXY_LOG"
done

mc_plan "$MC_N"
mc_done
