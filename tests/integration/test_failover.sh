#!/usr/bin/env bash
# test_failover.sh: mongocache follows a replica set's primary (proxy/topology.h).
# Two FerretDBs (--repl-set-name rs0) behind rs_relay.py, which answers hello as a
# two-member replica set and switches its primary on command; the proxy's upstream
# URI names both members with replicaSet=rs0. failover_check.py drives pymongo, the
# Node driver and Mongoose through the proxy across two switches and checks that the
# monitor follows, that new connections go to the new primary (the time is printed),
# and that no client got a wrong reply or had a write applied twice.
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

mc_start_ferretdb --repl-set-name=rs0
FA=$FERRET_PORT
mc_start_ferretdb --repl-set-name=rs0
FB=$FERRET_PORT

RA=$(mc_free_port)
RB=$(mc_free_port)
RC=$(mc_free_port)
"$MC_PYTHON" "$MC_TESTDIR/rs_relay.py" --ferret "$FA,$FB" --listen "$RA,$RB" --control "$RC" \
    --log "$MC_TMP/relay.log" >"$MC_TMP/relay.out" 2>&1 &
RELAY_PID=$!
mc_track "$RELAY_PID"
for port in "$RA" "$RB" "$RC"; do
    mc_wait_port "$port" "$RELAY_PID" 10 || { mc_log_tail "$MC_TMP/relay.out"; mc_bail "the relay did not start"; }
done

MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$RA,127.0.0.1:$RB/?replicaSet=rs0&heartbeatFrequencyMS=500" \
    mc_start_proxy

mc_run_lines failover check "$MC_PYTHON" "$MC_TESTDIR/failover_check.py" --proxy "$PROXY_PORT" \
    --http "$PROXY_HTTP_PORT" --log "$PROXY_LOG" --control "$RC" --members "$RA,$RB" \
    --ferret "$FA,$FB" --node "$MC_NODE" --node-dir "$MC_NODE_DIR" --tmp "$MC_TMP"
# the results' diagnostics (follow times, counts) are in the relayed output above
mc_done
