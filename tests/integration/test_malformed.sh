#!/usr/bin/env bash
# tests/integration/test_malformed.sh: RELIABILITY A5/A6, malformed client
# input (framing, opcodes, OP_MSG sections and flags, BSON, nesting depth).
# The cases live in malformed.py (stdlib Python, raw sockets); this wrapper
# starts FerretDB and the proxies, turns malformed.py's lines into numbered
# TAP, and checks each proxy's exit status and log.
#
# Proxies run here:
#   1. the build's mongocache with --message-timeout 2s: every case;
#   2. the same binary started under `ulimit -s 1024`: the depth cases
#      (a 1 MiB stack must be enough: depth is checked without recursion).
#
# Sanitizers: CI runs `make check` in a tree configured with --enable-asan,
# so abs_top_builddir/mongocache is then the ASan+UBSan binary and this same
# script exercises it; after each proxy stops, its log is searched for
# "ERROR: AddressSanitizer" (and the other sanitizers' reports) and
# "runtime error:", and any hit fails the run. To also run an ASan build from
# a normal tree, point MONGOCACHE_ASAN_BUILD at its build directory:
#   MONGOCACHE_ASAN_BUILD=/tmp/build-asan make check TESTS=tests/integration/test_malformed.sh
set -u

. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy itself"

SAN_PATTERN='ERROR: [A-Za-z]*Sanitizer|runtime error:'

# run_py LABEL ARGS...: runs malformed.py against the current proxy and
# relays its verdicts as numbered TAP.
run_py() {
    local label=$1 out rc
    shift
    out=$MC_TMP/malformed.$MC_N.out
    timeout 180 "$MC_PYTHON" "$MC_TESTDIR/malformed.py" --proxy "127.0.0.1:$PROXY_PORT" \
        --http "$PROXY_HTTP_PORT" --pid "$PROXY_PID" --label "$label" "$@" >"$out" 2>&1
    rc=$?
    mc_relay "$out" || [ "$rc" -ne 0 ] || rc=plan-not-met
    mc_ok "$rc" "A5 malformed.py ran to completion (status $rc)${label:+ $label}"
}

# stop_and_check LABEL: stops the current proxy; its exit status and log.
stop_and_check() {
    local label=$1 log=$PROXY_LOG
    mc_stop_proxy
    mc_is "$MC_PROXY_STATUS" 0 "A5 proxy exits 0 on SIGTERM${label:+ $label}"
    if grep -Eq "$SAN_PATTERN" "$log"; then
        mc_ok 1 "A5 no sanitizer report in the proxy log${label:+ $label}"
        grep -E -A 15 "$SAN_PATTERN" "$log" | head -n 60 | sed 's/^/#   /'
    else
        mc_ok 0 "A5 no sanitizer report in the proxy log${label:+ $label}"
    fi
}

# with_stack_limit BIN: a wrapper that execs BIN under a 1 MiB stack (same pid).
with_stack_limit() {
    local w=$MC_TMP/mongocache-stack1m.$MC_PROXY_N
    printf '#!/bin/sh\nulimit -s 1024 || exit 99\nexec "%s" "$@"\n' "$1" >"$w"
    chmod +x "$w"
    echo "$w"
}

# suite LABEL: both proxies for the binary in MC_MONGOCACHE; LABEL ("" or
# "[asan]") is appended to every test name.
suite() {
    local label=$1 bin=$MC_MONGOCACHE
    mc_start_proxy --message-timeout 2s
    run_py "$label" --suite all --message-timeout 2
    stop_and_check "$label"

    MC_MONGOCACHE=$(with_stack_limit "$bin")
    mc_start_proxy
    MC_MONGOCACHE=$bin
    mc_is "$(awk '/^Max stack size/ {print $4}' "/proc/$PROXY_PID/limits" 2>/dev/null)" 1048576 \
        "A6 proxy runs with a 1 MiB stack${label:+ $label}"
    run_py "[stack 1MiB]${label:+ $label}" --suite depth
    stop_and_check "[stack 1MiB]${label:+ $label}"
}

mc_start_ferretdb

suite ""

if [ -n "${MONGOCACHE_ASAN_BUILD:-}" ]; then
    asan_bin=$MONGOCACHE_ASAN_BUILD/mongocache
    if [ -x "$asan_bin" ] && [ "$asan_bin" -ef "$MC_MONGOCACHE" ]; then
        echo "# MONGOCACHE_ASAN_BUILD is this build: already covered"
    elif [ -x "$asan_bin" ]; then
        MC_MONGOCACHE=$asan_bin
        suite "[asan]"
    else
        mc_ok 1 "MONGOCACHE_ASAN_BUILD=$MONGOCACHE_ASAN_BUILD has no mongocache binary"
    fi
fi

mc_plan "$MC_N"
mc_done
