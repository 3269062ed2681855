#!/usr/bin/env bash
# tests/integration/test_advice.sh: index advice through the proxy against
# FerretDB (issue 7). The cases are in advice_check.py; this script starts
# FerretDB (its request counters on a debug address), the proxies each
# group needs (advice_interval 500ms), a second FerretDB as the advisor's
# own server for the failure cases, and a fake server answering junk.
set -u
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

APY=$MC_TESTDIR/advice_check.py
INTERVAL=(--advice-interval 500ms)

# group NAME ARGS...: one group of advice_check.py.
group() {
    local name=$1
    shift
    mc_run_lines advice "$name" "$MC_PYTHON" "$APY" "$name" --interval 0.5 "$@"
}

# ---- the workload, and advice = off ---------------------------------------
DEBUG_PORT=$(mc_free_port)
mc_start_ferretdb "--debug-addr=127.0.0.1:$DEBUG_PORT"
MAIN_FERRET_PID=$FERRET_PID MAIN_FERRET_URI=$FERRET_URI MAIN_FERRET_PORT=$FERRET_PORT

mc_start_proxy "${INTERVAL[@]}"
group workload --proxy "$PROXY_URI" --http "$PROXY_HTTP_PORT" --direct "$FERRET_URI"
mc_stop_proxy
mc_is "$MC_PROXY_STATUS" 0 "workload: the proxy exits 0 on SIGTERM"

mc_start_proxy "${INTERVAL[@]}" --advice off
group off --proxy "$PROXY_URI" --http "$PROXY_HTTP_PORT" --direct "$FERRET_URI" \
    --ferret-debug "$DEBUG_PORT"
mc_stop_proxy

mc_start_proxy "${INTERVAL[@]}" --cache false --advice-exact-rate 20
group sampled --proxy "$PROXY_URI" --http "$PROXY_HTTP_PORT" --direct "$FERRET_URI"
mc_stop_proxy

# ---- failures of the advisor's own server ------------------------------------
mc_start_ferretdb
ADVISOR_PID=$FERRET_PID ADVISOR_URI=$FERRET_URI
FERRET_PORT=$MAIN_FERRET_PORT
mc_start_proxy "${INTERVAL[@]}" --advice-uri "$ADVISOR_URI"
P1_URI=$PROXY_URI P1_HTTP=$PROXY_HTTP_PORT

export MC_TESTDIR
JUNK_PORT=$(mc_free_port)
"$MC_PYTHON" - "$JUNK_PORT" <<'EOF' >"$MC_TMP/junk.log" 2>&1 &
import os, sys, time
sys.path.insert(0, os.environ.get("MC_TESTDIR", "."))
from ops import FakeUpstream
FakeUpstream(int(sys.argv[1]))
time.sleep(600)
EOF
JUNK_PID=$!
mc_track "$JUNK_PID"
mc_wait_port "$JUNK_PORT" "$JUNK_PID" 10 || mc_bail "the junk server did not start"
mc_start_proxy "${INTERVAL[@]}" --advice-uri "mongodb://127.0.0.1:$JUNK_PORT/"
group failures --proxy "$P1_URI" --http "$P1_HTTP" --direct "$MAIN_FERRET_URI" \
    --advisor-pid "$ADVISOR_PID" --proxy-junk "$PROXY_URI" --http-junk "$PROXY_HTTP_PORT"

# ---- authentication ----------------------------------------------------------
AUTH_USER=advroot
AUTH_PW="advPw-$$-$RANDOM"
mc_start_ferretdb --test-enable-new-auth --setup-database=admin \
    --setup-username="$AUTH_USER" --setup-password="$AUTH_PW"
mc_start_proxy "${INTERVAL[@]}" \
    --advice-uri "mongodb://$AUTH_USER:$AUTH_PW@127.0.0.1:$FERRET_PORT/?authSource=admin"
WITH_PORT=$PROXY_PORT WITH_HTTP=$PROXY_HTTP_PORT WITH_LOG=$PROXY_LOG
mc_start_proxy "${INTERVAL[@]}"
group auth --direct "$FERRET_URI" --user "$AUTH_USER" --password "$AUTH_PW" \
    --port-with "$WITH_PORT" --http-with "$WITH_HTTP" \
    --port-without "$PROXY_PORT" --http-without "$PROXY_HTTP_PORT"
st=0
grep -qF -- "$AUTH_PW" "$WITH_LOG" "$PROXY_LOG" && st=1
mc_ok "$st" "auth: the advisor's password is in no log"

mc_plan "$MC_N"
mc_done
