#!/usr/bin/env bash
# tests/integration/test_metrics.sh: GET /metrics and GET /readyz against
# FerretDB and redis-server. metrics_check.py parses the exposition with
# prometheus_client's parser and compares every counter with /stats after a
# known workload (histogram counts by outcome, cumulative buckets, 10,000
# namespaces under a bounded label). Then /readyz: 200 with everything up,
# 503 with a reason while the upstream is frozen (no hello reply) or
# stopped, or while Redis is down (the tier not bypassed), 200 again after
# each comes back; a flood of /readyz costs the upstream one probe a second;
# with http_token, /metrics needs it and /readyz hides details without it.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
"$MC_PYTHON" -c 'import prometheus_client' 2>/dev/null ||
    mc_bail "prometheus_client missing from the venv (run tests/setup.sh)"

TOP=5
mc_start_ferretdb
mc_start_redis
mc_start_proxy --redis "redis://127.0.0.1:$REDIS_PORT" --cache-key-secret "metrics-$$-$RANDOM" \
    --metrics-namespaces "$TOP" --admin-commands on --redis-breaker-cooldown 500ms --redis-timeout 1s --log-level info
url=http://127.0.0.1:$PROXY_HTTP_PORT

# (--redis-timeout 1s: a loaded machine must not turn the 10,000 misses into
# bypasses by timing Redis out.) Wait (bounded) for the Redis tier.
mc_wait_tiers "$PROXY_HTTP_PORT" || true

MC_GROUP_TIMEOUT=90 mc_run_lines metrics check "$MC_PYTHON" "$MC_TESTDIR/metrics_check.py" \
    "$PROXY_URI" "$PROXY_HTTP_PORT" "$abs_top_srcdir" "$TOP" 10000

# ---- /readyz -----------------------------------------------------------------
# readyz_until CODE SECONDS: polls until /readyz answers CODE; body in $MC_TMP/ready
readyz_until() {
    local want=$1 secs=$2 got=""
    for _ in $(seq 1 $((secs * 10))); do
        got=$(curl -s -o "$MC_TMP/ready" -w '%{http_code}' --max-time 5 "$url/readyz")
        [ "$got" = "$want" ] && return 0
        sleep 0.1
    done
    mc_diag "last /readyz: $got $(cat "$MC_TMP/ready" 2>/dev/null)"
    return 1
}
body_has() { grep -Eq "$1" "$MC_TMP/ready"; }

readyz_until 200 10
mc_ok $? "/readyz: 200 with the upstream and Redis up"
body_has '"status" ?: ?"ready"' && body_has '"redis" ?: ?"usable"'
mc_ok $? "... its JSON says ready, Redis usable"
mc_is "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" 200 "/healthz: 200"

# A flood of /readyz: one probe per second at most (readyz_probes counts
# them), not one per request.
probes() {
    curl -s "$url/stats" | "$MC_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["counters"]["readyz_probes"])'
}
sleep 1.1
p0=$(probes)
t0=$(date +%s%N)
flood=()
for _ in $(seq 1 200); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "$url/readyz" >>"$MC_TMP/flood" &
    flood+=("$!")
done
wait "${flood[@]}"
secs=$((($(date +%s%N) - t0 + 999999999) / 1000000000))
n_probes=$(($(probes) - p0))
mc_is "$(sort "$MC_TMP/flood" | uniq -c | sed 's/^ *//')" "200 200" \
    "200 requests at once: all answered 200"
[ "$n_probes" -ge 1 ] && [ "$n_probes" -le $((secs + 1)) ]
mc_ok $? "... with $n_probes probes of the upstream in $secs s (shared, one a second at most)"

kill -STOP "$FERRET_PID"
readyz_until 503 8
mc_ok $? "/readyz: 503 while the upstream answers nothing (frozen)"
body_has '"status" ?: ?"not_ready"' && body_has '"reason" ?: ?"upstream: no hello reply'
mc_ok $? "... the reason: no hello reply in time"
mc_is "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" 200 "/healthz still 200 (alive)"
kill -CONT "$FERRET_PID"
readyz_until 200 8
mc_ok $? "/readyz: 200 again once the upstream answers"

kill -TERM "$FERRET_PID"
wait "$FERRET_PID" 2>/dev/null
readyz_until 503 8
mc_ok $? "/readyz: 503 with the upstream stopped"
body_has '"reason" ?: ?"upstream: cannot connect'
mc_ok $? "... the reason: cannot connect"
# the same FerretDB again, on the same port and data
dir=$MC_TMP/ferretdb.1
"$MC_FERRETDB" --handler=sqlite --sqlite-url="file:$dir/data/" --state-dir="$dir" \
    --listen-addr="127.0.0.1:$FERRET_PORT" --telemetry=disable --debug-addr=- \
    --log-level=WARN >>"$FERRET_LOG" 2>&1 &
FERRET_PID=$!
mc_track "$FERRET_PID"
readyz_until 200 20
mc_ok $? "/readyz: 200 again once the upstream is back"

kill -TERM "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
readyz_until 503 8
mc_ok $? "/readyz: 503 with Redis down (the tier is not bypassed)"
body_has '"reason" ?: ?"redis: the shared tier is ' && body_has '"upstream" ?: ?"reachable"'
mc_ok $? "... the reason names Redis, the upstream is fine"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize no --dir "$MC_TMP" --protected-mode yes >"$MC_TMP/redis2.log" 2>&1 &
REDIS_PID=$!
mc_track "$REDIS_PID"
readyz_until 200 20
mc_ok $? "/readyz: 200 again once Redis is back"

mc_stop_proxy
mc_is "$MC_PROXY_STATUS" 0 "the proxy exits cleanly"

# With http_token: /metrics needs it; /readyz is open but shows only the
# reason's category (no address, no error text) to a caller without it.
TOKEN="tok-$$-$RANDOM"
dead=$(mc_free_port)
MONGOCACHE_HTTP_TOKEN=$TOKEN MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$dead mc_start_proxy
url=http://127.0.0.1:$PROXY_HTTP_PORT
mc_is "$(curl -s -o /dev/null -w '%{http_code}' "$url/metrics")" 401 "/metrics without the token: 401"
readyz_until 503 8
grep -q "\"upstream: unreachable\"" "$MC_TMP/ready" && ! grep -q "127.0.0.1" "$MC_TMP/ready"
mc_ok $? "/readyz without the token: 503, the reason's category only"
curl -s -H "Authorization: Bearer $TOKEN" "$url/readyz" | grep -q "cannot connect to 127.0.0.1:$dead"
mc_ok $? "... with the token: the reason in full"
mc_done
