#!/usr/bin/env bash
# tests/integration/test_hardening.sh: regression tests of issue 6, against
# FerretDB and redis-server (the cases are in hardening.py; one proxy per
# group, started here with the options the group needs).
set -u
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

HPY=$MC_TESTDIR/hardening.py

# group NAME [PY-ARGS...]: runs one group of hardening.py against the current proxy.
group() {
    local name=$1
    shift
    mc_run_lines hardening "$name" "$MC_PYTHON" "$HPY" "$name" --port "$PROXY_PORT" \
        --http "$PROXY_HTTP_PORT" --pid "$PROXY_PID" "$@"
}

# proxy_exit_ok LABEL: the proxy started last has exited (or is stopped now) with status 0.
proxy_exit_ok() {
    local st
    if kill -0 "$PROXY_PID" 2>/dev/null; then
        mc_stop_proxy
        st=$MC_PROXY_STATUS
    else
        wait "$PROXY_PID" 2>/dev/null && st=0 || st=$?
        PROXY_PID=""
    fi
    mc_is "$st" 0 "$1: the proxy exits with status 0"
    [ "$st" = 0 ] || mc_log_tail "$PROXY_LOG" 15
}

REDIS_OPTS="--cache-key-secret hardening-secret --redis-timeout 3s"

# ---- item 1: a read waiting on Redis --------------------------------------
mc_start_ferretdb
mc_start_redis
mc_start_proxy --redis "redis://127.0.0.1:$REDIS_PORT" $REDIS_OPTS
group redis_wait --redis-pid "$REDIS_PID"
proxy_exit_ok "redis_wait"

mc_start_proxy --redis "redis://127.0.0.1:$REDIS_PORT" $REDIS_OPTS --drain-timeout 500ms
group redis_shutdown --redis-pid "$REDIS_PID"
proxy_exit_ok "redis_shutdown"

# ---- item 12: proxy cursors (before redis_lost kills this FerretDB) --------
mc_start_proxy
group cursors --direct "$FERRET_URI"
group volatile --direct "$FERRET_URI"
group behind_write --direct "$FERRET_URI"
group oneway_hello
group oneway --direct "$FERRET_URI"
group eof_pipeline --direct "$FERRET_URI"
group hits_backlog --direct "$FERRET_URI"
proxy_exit_ok "cursors, volatile, oneway"

# ---- found in review: max_memory: an admitted message is read to its end;
# a paused client's buffered reads are answered before its EOF closes it
mc_start_proxy --max-memory 4MiB --message-timeout 3s
group memory_admitted
group memory_eof --direct "$FERRET_URI"
proxy_exit_ok "memory_admitted, memory_eof"

# ---- a client that takes none of its replies is closed at message_timeout
mc_start_proxy --message-timeout 2s
group slow_reader --direct "$FERRET_URI"
proxy_exit_ok "slow_reader"

mc_start_proxy --redis "redis://127.0.0.1:$REDIS_PORT" $REDIS_OPTS
group redis_lost --redis-pid "$REDIS_PID" --ferret-pid "$FERRET_PID"
proxy_exit_ok "redis_lost"

# ---- found in review: the upstream unreachable while a read waits on Redis
CLOSED_PORT=$(mc_free_port)
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$CLOSED_PORT mc_start_proxy \
    --redis "redis://127.0.0.1:$REDIS_PORT" $REDIS_OPTS
group redis_unreachable --redis-pid "$REDIS_PID"
proxy_exit_ok "redis_unreachable"
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$CLOSED_PORT mc_start_proxy --cache-coalesce-wait 10s
group coalesced_unreachable
proxy_exit_ok "coalesced_unreachable"

# ---- found in review: a hit still queued at shutdown (canned upstream) ----
MCLOAD=$abs_top_builddir/bench/mcload
[ -x "$MCLOAD" ] || mc_bail "bench/mcload not built: $MCLOAD"
CANNED=$(mc_free_port)
"$MCLOAD" --server --port "$CANNED" --size 8000000 --delay-us 500000 \
    >"$MC_TMP/mcload.$CANNED.log" 2>&1 &
CANNED_PID=$!
mc_track "$CANNED_PID"
mc_wait_port "$CANNED" "$CANNED_PID" 10 || mc_bail "mcload --server did not start"
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$CANNED mc_start_proxy --drain-timeout 1s
group shutdown_hit
proxy_exit_ok "shutdown_hit"

# ---- found in review: paused clients resume whatever frees the memory -----
CANNED8=$(mc_free_port)
"$MCLOAD" --server --port "$CANNED8" --size 8000000 >"$MC_TMP/mcload.$CANNED8.log" 2>&1 &
CANNED8_PID=$!
mc_track "$CANNED8_PID"
mc_wait_port "$CANNED8" "$CANNED8_PID" 10 || mc_bail "mcload --server did not start"
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$CANNED8 mc_start_proxy --max-memory 4MiB
group memory_wakeup
proxy_exit_ok "memory_wakeup"
MEMCONF=$MC_TMP/memory.conf
printf 'max_memory = 4MiB\n' >"$MEMCONF"
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$CANNED8 mc_start_proxy --config "$MEMCONF"
group memory_reload --config "$MEMCONF"
proxy_exit_ok "memory_reload"

# ---- items 2 and 6: principals (FerretDB with authentication) -------------
AUTH_USER=hardroot
AUTH_PW="hardPw-$$-$RANDOM"
mc_start_ferretdb --test-enable-new-auth --setup-database=admin \
    --setup-username="$AUTH_USER" --setup-password="$AUTH_PW"
mc_start_proxy
AUTH_ARGS=(--direct "$FERRET_URI" --user "$AUTH_USER" --password "$AUTH_PW")
group scram "${AUTH_ARGS[@]}"
group principals "${AUTH_ARGS[@]}"
proxy_exit_ok "principals"

mc_plan "$MC_N"
mc_done
