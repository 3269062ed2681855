#!/usr/bin/env bash
# tests/integration/test_resources.sh: issue 6's resource test. The attacks
# of items 3, 7 and 8 (pipelined hits of a large drained result, reads of
# 200,000 new namespaces, half-sent 47 MB messages, waiting clients that
# keep sending) must keep the proxy's peak RSS under max_memory +
# cache_memory + a stated constant, and a fresh client's ping under 50 ms
# meanwhile (resources.py has the phases and the constant).
#
# Five proxies, each with --max-memory 128MiB --cache-memory 32MiB:
#   1. in front of FerretDB: the drained-result hits and the half-sent messages;
#   2. in front of bench/mcload --server (a canned reply to every find, no
#      storage: only the proxy's own memory is measured) for the namespace flood;
#   3. in front of mcload --server --delay-us 30s, with a long coalescing wait,
#      so that identical reads wait behind the first;
#   4. in front of mcload --server --delay-us 3s (its other commands answered at
#      once), with --buffer-limit 1MiB: hits pipelined behind a held find;
#   5. the same with a Redis tier (redis-server started here).
# Sanitizer builds run the attacks (the proxy must survive them cleanly) but
# skip the RSS and latency bounds, which their shadow memory makes meaningless.
set -u
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

MCLOAD=$abs_top_builddir/bench/mcload
[ -x "$MCLOAD" ] || mc_bail "bench/mcload not built: $MCLOAD"
MAXMEM=$((128 * 1024 * 1024))
CACHEMEM=$((32 * 1024 * 1024))
LIMITS=(--max-memory "$MAXMEM" --cache-memory "$CACHEMEM" --log-level info)

# start_canned PORT [ARGS]: the canned-reply upstream; CANNED_PID.
start_canned() {
    local port=$1
    shift
    "$MCLOAD" --server --port "$port" "$@" >"$MC_TMP/mcload.$port.log" 2>&1 &
    CANNED_PID=$!
    mc_track "$CANNED_PID"
    mc_wait_port "$port" "$CANNED_PID" 10 || mc_bail "mcload --server did not start on $port"
}

mc_start_ferretdb
mc_start_proxy "${LIMITS[@]}"
P1_PORT=$PROXY_PORT P1_HTTP=$PROXY_HTTP_PORT P1_PID=$PROXY_PID

FAST=$(mc_free_port)
start_canned "$FAST"
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$FAST mc_start_proxy "${LIMITS[@]}"
P2_PORT=$PROXY_PORT P2_HTTP=$PROXY_HTTP_PORT P2_PID=$PROXY_PID

SLOW=$(mc_free_port)
start_canned "$SLOW" --delay-us 30000000
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$SLOW mc_start_proxy "${LIMITS[@]}" \
    --cache-coalesce-wait 60s
P3_PORT=$PROXY_PORT P3_HTTP=$PROXY_HTTP_PORT P3_PID=$PROXY_PID

HELD=$(mc_free_port)
start_canned "$HELD" --delay-us 3000000
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$HELD mc_start_proxy "${LIMITS[@]}" --buffer-limit 1MiB
P4_PORT=$PROXY_PORT P4_HTTP=$PROXY_HTTP_PORT P4_PID=$PROXY_PID

mc_start_redis
HELD2=$(mc_free_port)
start_canned "$HELD2" --delay-us 3000000
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$HELD2 mc_start_proxy "${LIMITS[@]}" --buffer-limit 1MiB \
    --redis "redis://127.0.0.1:$REDIS_PORT" --cache-key-secret resources-secret
P5_PORT=$PROXY_PORT P5_HTTP=$PROXY_HTTP_PORT P5_PID=$PROXY_PID
mc_wait_tiers "$P5_HTTP" || echo "# the fifth proxy's Redis tier is not connected yet"

NO_BOUNDS=()
if ldd "$MC_MONGOCACHE" 2>/dev/null | grep -q 'libasan\|libubsan'; then
    NO_BOUNDS=(--no-bounds)
    echo "# sanitizer build: RSS and latency bounds are skipped"
fi

MC_GROUP_TIMEOUT=600 mc_run_lines resources phases "$MC_PYTHON" "$MC_TESTDIR/resources.py" \
    --port "$P1_PORT" --http "$P1_HTTP" --pid "$P1_PID" --direct "$FERRET_URI" \
    --canned-port "$P2_PORT" --canned-http "$P2_HTTP" --canned-pid "$P2_PID" \
    --slow-port "$P3_PORT" --slow-http "$P3_HTTP" --slow-pid "$P3_PID" \
    --held-port "$P4_PORT" --held-http "$P4_HTTP" --held-pid "$P4_PID" \
    --tier-port "$P5_PORT" --tier-http "$P5_HTTP" --tier-pid "$P5_PID" \
    --max-memory "$MAXMEM" --cache-memory "$CACHEMEM" "${NO_BOUNDS[@]}" \
    --figures-file "${MC_RESOURCE_FIGURES:-$MC_TMP/figures.json}"

mc_plan "$MC_N"
mc_done
