#!/usr/bin/env bash
# tests/integration/test_faults.sh: fault injection between the proxy and
# its upstream and between the proxy and Redis (issue 6).
#
#   FerretDB <- toxiproxy "mongo" <- P1 -> toxiproxy "redis" -> redis-server
#                                    P2 (same FerretDB and Redis, no faults)
#
# toxiproxy (tests/setup.sh installs it) sits on both links of proxy P1.
# faults.py runs a bounded workload through P1 with two pymongo clients
# (retryWrites on, and off): reads of a fixed collection compared with the
# answers FerretDB gives directly, inserts with unique _ids, and $inc+$push
# of an operation id on a counter, while one fault at a time is applied to
# one link and direction: latency, a stall (all bytes held, then released),
# bandwidth, slicing, reset, black hole (bytes dropped, then every
# connection closed), a cut between a request and its reply (or in the
# middle of a request), slow close, connection refused, and upstream
# connections closed while reads wait on a slowed Redis. Each case checks:
# every operation answered correctly or failed with a clear error (never a
# wrong reply; with a Redis fault, never an error at all: the tier fails
# open); every attempt's latency within the bound that case states; P1 alive
# and a fresh client's ping answered once the fault is gone. At the end, read
# directly from FerretDB: no write applied more often than the client sent
# it (with retryWrites off: at most once), every acknowledged write present.
# A write made through P1 while its Redis link is black-holed is seen after
# recovery, through P1 at once and through P2 once P1's epoch bump lands.
#
# A crash of P1 fails its case (P1 is then started again and the cases go
# on), and its log fails the script. A case during which toxiproxy's API hung (its
# issue #558; it is then restarted) checks only for wrong answers and SKIPs
# its latency line. Bounded: about 75 s (faults.py is stopped at 170 s).
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy"
TOXIPROXY=$MC_TOOLS/bin/toxiproxy-server
for tool in "$TOXIPROXY" redis-server; do
    command -v "$tool" >/dev/null 2>&1 && continue
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "$tool not found (run tests/setup.sh)"
    echo "1..0 # SKIP $tool not found (run tests/setup.sh)"
    exit 0
done

# Configured timeouts of P1; faults.py derives its latency bounds from them.
REDIS_TIMEOUT_MS=50
CONNECT_TIMEOUT_MS=1000
DRAIN_TIMEOUT_MS=1000

mc_start_ferretdb
mc_start_redis

# ---- toxiproxy and the proxies ---------------------------------------------------
# faults.py starts toxiproxy-server (two proxies: "mongo" in front of FerretDB
# and "redis" in front of redis-server, on the ports chosen here) and P1,
# the proxy under faults, which goes through both. It starts either again
# after a crash or a hang, on the same ports, and reports it. The pids it
# runs are in $FAULTS_PIDFILE.*, killed on exit like every process lib.sh
# starts (faults.py removes them once it has stopped them); P1's logs are $MC_TMP/proxy.p1-N.log, scanned for sanitizer
# reports by mc_done. P2, started here, uses the same FerretDB and Redis
# without faults.
[ -x "$MC_MONGOCACHE" ] || mc_bail "mongocache not built: $MC_MONGOCACHE"
FAULTS_PIDFILE=$MC_TMP/faults.pid
# shellcheck disable=SC2317 # invoked by the EXIT trap
faults_exit() {
    local st=$? pid
    for pid in $(cat "$FAULTS_PIDFILE".* 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null
    done
    (exit "$st")
    mc_teardown # exits with $? as it finds it: st
}
trap faults_exit EXIT
TOXI_PORT=$(mc_free_port)
TOXI_MONGO_PORT=$(mc_free_port)
TOXI_REDIS_PORT=$(mc_free_port)
SECRET="faults-secret-$$-$RANDOM"
P1_PORT=$(mc_free_port)
P1_HTTP=$(mc_free_port)
P1_CMD=("$MC_MONGOCACHE" --listen "127.0.0.1:$P1_PORT" --http-listen "127.0.0.1:$P1_HTTP"
    --upstream "mongodb://127.0.0.1:$TOXI_MONGO_PORT" --log-level debug
    --redis "redis://127.0.0.1:$TOXI_REDIS_PORT" --cache-key-secret "$SECRET"
    --redis-timeout "${REDIS_TIMEOUT_MS}ms" --redis-breaker-failures 3
    --redis-breaker-cooldown 500ms --connect-timeout "${CONNECT_TIMEOUT_MS}ms"
    --message-timeout 2s --drain-timeout "${DRAIN_TIMEOUT_MS}ms" --cache-ttl 5m)
mc_start_proxy --redis "redis://127.0.0.1:$REDIS_PORT" --cache-key-secret "$SECRET" \
    --redis-timeout "${REDIS_TIMEOUT_MS}ms" --cache-ttl 5m
P2_PORT=$PROXY_PORT P2_HTTP=$PROXY_HTTP_PORT P2_PID=$PROXY_PID

# ---- the cases -------------------------------------------------------------------
# faults.py prints "PLAN n", then unnumbered TAP lines; numbered here.
out=$MC_TMP/faults.out
st=0
timeout 170 "$MC_PYTHON" "$MC_TESTDIR/faults.py" \
    --proxy "mongodb://127.0.0.1:$P1_PORT/" --stats "http://127.0.0.1:$P1_HTTP/stats" \
    --proxy2 "mongodb://127.0.0.1:$P2_PORT/" --stats2 "http://127.0.0.1:$P2_HTTP/stats" \
    --direct "$FERRET_URI" --redis-timeout-ms "$REDIS_TIMEOUT_MS" \
    --toxiproxy "$TOXIPROXY" --toxiproxy-port "$TOXI_PORT" --toxiproxy-log "$MC_TMP/toxiproxy.log" \
    --mongo-link "$TOXI_MONGO_PORT:$FERRET_PORT" --redis-link "$TOXI_REDIS_PORT:$REDIS_PORT" \
    --p1-port "$P1_PORT" --p1-log-prefix "$MC_TMP/proxy.p1" --pidfile "$FAULTS_PIDFILE" \
    ${MC_FAULTS_ONLY:+--only "$MC_FAULTS_ONLY"} -- "${P1_CMD[@]}" >"$out" 2>"$out.err" || st=$?

plan=$(sed -n 's/^PLAN \([0-9]*\)$/\1/p' "$out" | head -n 1)
[ -n "$plan" ] || {
    mc_log_tail "$out"
    mc_log_tail "$out.err"
    mc_bail "faults.py printed no plan (exit status $st)"
}
mc_plan $((plan + 1))
n=0
while IFS= read -r line; do
    case $line in
    "ok - "*)
        mc_ok 0 "${line#ok - }"
        n=$((n + 1))
        ;;
    "not ok - "*)
        mc_ok 1 "${line#not ok - }"
        n=$((n + 1))
        ;;
    "#"*) echo "$line" ;;
    esac
done <"$out"
mc_is "$st $n" "0 $plan" "faults.py ran every case to its end (exit status, result lines)"
if [ "$st" -ne 0 ] || [ "$n" -ne "$plan" ]; then
    tail -n 20 "$out.err" | cut -c1-300 | sed 's/^/#   /'
fi

kill -0 "$P2_PID" 2>/dev/null || echo "# P2 is not running any more"

mc_done
