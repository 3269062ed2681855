#!/usr/bin/env bash
# tests/integration/test_redis_mac.sh: values in Redis are authentic (issue
# 6, item 5), with a real redis-server and FerretDB.
#
#   1-11 redis_mac_check.py, one proxy with the Redis tier only
#        (--cache-memory 0): a bit flipped in a stored reply and a forged
#        error reply planted with redis-cli are refused (the answer is
#        FerretDB's) and counted (redis_values_refused_mac); the proxy
#        stores the value again; the value as the previous version sealed it
#        (MCV2, HMAC-SHA-256) is a miss counted as redis_corrupt.
#   12-14 redis without cache_key_secret is refused by --check-config and at
#        start-up (a random per-process secret could never be shared);
#        with one, --check-config passes.
#   15   the proxy exits 0 on SIGTERM (and its log holds no sanitizer report).
# Bounded: about 10 s.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy's cache"
mc_need_tools redis-server redis-cli

mc_start_ferretdb
mc_start_redis
SECRET="mac-secret-$$-$RANDOM"
mc_start_proxy --redis "redis://127.0.0.1:$REDIS_PORT" --cache-key-secret "$SECRET" \
    --cache-memory 0 --redis-timeout 200ms
MC_GROUP_TIMEOUT=60 mc_run_lines mac check "$MC_PYTHON" "$MC_TESTDIR/redis_mac_check.py" \
    --proxy "$PROXY_PORT" --http "$PROXY_HTTP_PORT" --direct "$FERRET_PORT" \
    --redis-port "$REDIS_PORT" --secret "$SECRET"

# ---- redis needs cache_key_secret -----------------------------------------------------
out=$MC_TMP/check.out
st=0
"$MC_MONGOCACHE" --upstream "mongodb://127.0.0.1:$FERRET_PORT" \
    --redis "redis://127.0.0.1:$REDIS_PORT" --check-config >"$out" 2>&1 || st=$?
if [ "$st" -ne 0 ] && grep -q "cache_key_secret must be set" "$out"; then
    mc_ok 0 "--check-config refuses redis without cache_key_secret"
else
    mc_ok 1 "--check-config refuses redis without cache_key_secret"
    mc_diag "status $st" "$(cat "$out")"
fi
st=0
timeout 10 "$MC_MONGOCACHE" --listen "127.0.0.1:$(mc_free_port)" \
    --upstream "mongodb://127.0.0.1:$FERRET_PORT" --http-listen "" \
    --redis "redis://127.0.0.1:$REDIS_PORT" >"$out" 2>&1 || st=$?
if [ "$st" -ne 0 ] && [ "$st" -ne 124 ] && grep -q "cache_key_secret must be set" "$out"; then
    mc_ok 0 "start-up refuses redis without cache_key_secret (status $st)"
else
    mc_ok 1 "start-up refuses redis without cache_key_secret"
    mc_diag "status $st" "$(tail -n 5 "$out")"
fi
st=0
"$MC_MONGOCACHE" --upstream "mongodb://127.0.0.1:$FERRET_PORT" \
    --redis "redis://127.0.0.1:$REDIS_PORT" --cache-key-secret "$SECRET" --check-config \
    >"$out" 2>&1 || st=$?
mc_is "$st" 0 "--check-config accepts redis with cache_key_secret"

mc_stop_proxy
mc_is "$MC_PROXY_STATUS" 0 "the proxy exits 0 on SIGTERM"
mc_plan "$MC_N"
mc_done
