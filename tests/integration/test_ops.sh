#!/usr/bin/env bash
# tests/integration/test_ops.sh: operational behaviour of the proxy. One proxy
# per group, each driven by ops.py (stdlib Python, raw sockets), whose lines
# become numbered TAP here:
#
#   unreachable  upstream is a closed port: HostUnreachable error replies
#   ferret       FerretDB: pipelining, moreToCome, exhaustAllowed, unix
#                socket, /stats, /healthz, non-GET refused
#   maxclients   --max-clients 3
#   reload       --config FILE only (so the file's log_level is not overridden
#                by a flag), SIGHUP with a good then a bad file
#   fake         a fault-injecting fake upstream inside ops.py: idle timeout,
#                upstream lost, invalid replies, then SIGTERM drain
#   emfile       the proxy under `ulimit -n 64`
#
# After each proxy stops, its exit status and log are checked (the log for
# sanitizer reports: CI runs `make check` in an --enable-asan build, so this
# same script then runs the ASan+UBSan binary).
set -u

. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy itself"


# ops GROUP ARGS...: runs one ops.py group against the current proxy.
ops() {
    local group=$1 out rc
    shift
    out=$MC_TMP/ops.$group.out
    timeout 120 "$MC_PYTHON" "$MC_TESTDIR/ops.py" "$group" --proxy "127.0.0.1:$PROXY_PORT" \
        --http "$PROXY_HTTP_PORT" --pid "$PROXY_PID" "$@" >"$out" 2>&1
    rc=$?
    mc_relay "$out" || [ "$rc" -ne 0 ] || rc=plan-not-met
    [ "$rc" = 0 ] || mc_ok 1 "ops $group: ops.py failed (status $rc; $MC_RELAY_N results, plan $MC_RELAY_PLAN)"
}

# stop_and_check GROUP: stops the current proxy, checks its status and log.
stop_and_check() { mc_stop_checked "ops $1"; }

# limited_bin BIN LIMIT-ARGS: a wrapper that execs BIN under `ulimit LIMIT-ARGS`.
limited_bin() {
    local bin=$1 w=$MC_TMP/mongocache-limited.$((MC_PROXY_N + 1))
    shift
    printf '#!/bin/sh\nulimit %s || exit 99\nexec "%s" "$@"\n' "$*" "$bin" >"$w"
    chmod +x "$w"
    echo "$w"
}

# start_proxy_conf FILE: the proxy with only --config (mc_start_proxy adds
# --log-level debug, which would hide the file's log_level).
start_proxy_conf() {
    MC_PROXY_N=$((MC_PROXY_N + 1))
    PROXY_LOG=$MC_TMP/proxy.$MC_PROXY_N.log
    "$MC_MONGOCACHE" --config "$1" >"$PROXY_LOG" 2>&1 &
    PROXY_PID=$!
    mc_track "$PROXY_PID"
    if ! mc_wait_port "$PROXY_PORT" "$PROXY_PID" 10; then
        mc_log_tail "$PROXY_LOG"
        mc_bail "mongocache --config $1 did not start"
    fi
}

mc_start_ferretdb

# ---- upstream unreachable
closed_port=$(mc_free_port)
mc_start_proxy --upstream "mongodb://127.0.0.1:$closed_port"
ops unreachable --upstream-label "127.0.0.1:$closed_port"
stop_and_check unreachable

# ---- FerretDB: pipelining, moreToCome, exhaust, unix socket, HTTP
sock=$MC_TMP/mongocache.sock
mc_start_proxy --listen-unix "$sock"
ops ferret --unix "$sock"
stop_and_check ferret

# ---- max_clients
mc_start_proxy --max-clients 3
ops maxclients
stop_and_check maxclients

# ---- SIGHUP reload
conf=$MC_TMP/reload.conf
PROXY_PORT=$(mc_free_port)
PROXY_HTTP_PORT=$(mc_free_port)
cat >"$conf" <<EOF
listen = 127.0.0.1:$PROXY_PORT
upstream = mongodb://127.0.0.1:$FERRET_PORT
http_listen = 127.0.0.1:$PROXY_HTTP_PORT
log_level = info
EOF
start_proxy_conf "$conf"
ops reload --config "$conf" --log "$PROXY_LOG" --upstream-uri "mongodb://127.0.0.1:$FERRET_PORT"
stop_and_check reload

# ---- fake upstream: idle timeout, upstream lost, invalid replies, SIGTERM drain
fake_port=$(mc_free_port)
mc_start_proxy --upstream "mongodb://127.0.0.1:$fake_port" --idle-timeout 1s --drain-timeout 3s
ops fake --fake-port "$fake_port" --drain-timeout 3
stop_and_check fake

# ---- EMFILE under ulimit -n 64
bin=$MC_MONGOCACHE
MC_MONGOCACHE=$(limited_bin "$bin" -n 64)
mc_start_proxy --max-clients 1000
MC_MONGOCACHE=$bin
ops emfile --log "$PROXY_LOG"
stop_and_check emfile

mc_plan "$MC_N"
mc_done
