#!/usr/bin/env bash
# tests/integration/test_cache.sh: the query cache against real FerretDB.
#
# One proxy per configuration; the cases run in cache_check.py (pymongo and
# raw OP_MSG) and cache_node.js (Node.js driver, Mongoose), whose unnumbered
# TAP lines are numbered here. Every "it was a hit/miss/bypass" is read from
# GET /stats; results through the proxy are compared with FerretDB's own.
#
#   1 hits      a warm query answered while FerretDB is SIGSTOPped, a cold one
#               not; a read in flight across a write is not stored; identical
#               reads in flight coalesce (--cache-coalesce-wait 600ms)
#   2 inval     every kind of write through the proxy (pymongo, Node driver,
#               Mongoose; w:0 with --cache-write-grace 500ms) invalidates
#   3 bypass    skip comment, afterClusterTime, $sample, $rand, tailable;
#               --cache false is a pass-through
#   4 ns        --cache-exclude, --cache-ttl-overrides, --cache-ttl
#   5 types     Mongoose documents from hits equal FerretDB's, types included
#   6 auth      entries per principal (FerretDB --test-enable-new-auth)
#   7 tally     /stats counters equal the harness's tally exactly
#   8 pipeline  50 pipelined finds, hits and misses mixed, in order; repeats
#               of cold finds (coalescing); a write between two finds
#
# FerretDB is SIGCONTinued on any exit (it is SIGSTOPped by case 1).
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy's cache"

# Never leave a stopped FerretDB behind, whatever happens.
STOPPABLE_PID=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cache_exit() {
    local st=$?
    [ -z "$STOPPABLE_PID" ] || kill -CONT "$STOPPABLE_PID" 2>/dev/null
    (exit "$st")
    mc_teardown # exits with $? as it finds it: st
}
trap cache_exit EXIT

# run_lines LABEL CMD...: see mc_run_lines in lib.sh.
run_lines() {
    MC_GROUP_TIMEOUT=90 mc_run_lines cache "$@"
}

py() { # GROUP [ARGS]
    local group=$1
    shift
    run_lines "$group" "$MC_PYTHON" "$MC_TESTDIR/cache_check.py" "$group" \
        --proxy "$PROXY_PORT" --http "$PROXY_HTTP_PORT" --direct "$FERRET_PORT" "$@"
}

node_group() { # GROUP
    NODE_PATH=$MC_NODE_DIR/node_modules run_lines "node-$1" \
        "$MC_NODE" "$MC_TESTDIR/cache_node.js" "$1" "$PROXY_PORT" "$FERRET_PORT" "$PROXY_HTTP_PORT"
}

# stop_check LABEL: stops the current proxy; it must exit 0.
stop_check() {
    mc_stop_proxy
    mc_is "$MC_PROXY_STATUS" 0 "cache $1: the proxy exits 0 on SIGTERM"
    [ "$MC_PROXY_STATUS" -eq 0 ] || mc_log_tail "$PROXY_LOG"
}

# ---- 1, 2, 3, 5, 8: one FerretDB, a proxy with a short w:0 grace ------------------
mc_start_ferretdb
STOPPABLE_PID=$FERRET_PID
mc_start_proxy --cache-write-grace 500ms --cache-coalesce-wait 600ms
py hits --ferret-pid "$FERRET_PID" --coalesce-ms 600
kill -CONT "$FERRET_PID" 2>/dev/null
py inval --grace-ms 500
node_group inval
py bypass
node_group types
py pipeline
stop_check "main (--cache-write-grace 500ms)"

# ---- 3: --cache false -------------------------------------------------------------
mc_start_proxy --cache false
py off
stop_check "--cache false"

# ---- 3b: cache turned off and on again by reload (SIGHUP), no Redis tier ----------
OFF_CONF=$MC_TMP/offreload.conf
echo "cache = true" >"$OFF_CONF"
mc_start_proxy --config "$OFF_CONF"
py offreload --pid "$PROXY_PID" --config "$OFF_CONF" --ferret-pid "$FERRET_PID" --log "$PROXY_LOG"
kill -CONT "$FERRET_PID" 2>/dev/null
stop_check "reload off and on"

# ---- 4: namespaces and TTLs ---------------------------------------------------------
mc_start_proxy --cache-exclude mcc4.secret --cache-ttl-overrides 'mcc4.fast=300ms' --cache-ttl 1s
py ns
stop_check "namespaces"

# ---- 7: counters, on a fresh proxy ----------------------------------------------------
mc_start_proxy
py tally
stop_check "tally"

# ---- 6: authentication -------------------------------------------------------------------
AUTH_USER=mcuser
AUTH_PW="mcPw-$$-$RANDOM"
mc_start_ferretdb --test-enable-new-auth --setup-database=admin \
    --setup-username="$AUTH_USER" --setup-password="$AUTH_PW"
mc_start_proxy
py auth --user "$AUTH_USER" --password "$AUTH_PW"
stop_check "auth"

mc_plan "$MC_N"
mc_done
