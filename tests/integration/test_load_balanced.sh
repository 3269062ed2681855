#!/usr/bin/env bash
# test_load_balanced.sh: mongocache in front of a load balancer (loadBalanced=true in
# its upstream URI; proxy/handshake.c, proxy/topology.h). No mongos can run here:
# rs_relay.py --lb is a load balancer in front of two mongos relaying to one FerretDB,
# each behaving as mongos's load-balancer support does (the first hello of a connection
# must say loadBalanced: true, else LoadBalancerSupportMismatch and the connection
# closed; its reply carries the mongos's serviceId). lb_check.py checks the relay with
# pymongo itself, then the proxy through it with pymongo and the Node driver (the
# workloads of every driver through it are compared with direct runs in
# test_workload.sh), then a proxy whose URI lacks loadBalanced=true.
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

mc_start_ferretdb
mc_start_rs_relay lb "$FERRET_PORT,$FERRET_PORT" --lb
LB=$RELAY_A

MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$LB/?loadBalanced=true&heartbeatFrequencyMS=500" \
    mc_start_proxy
mc_run_lines lb check "$MC_PYTHON" "$MC_TESTDIR/lb_check.py" lb --proxy "$PROXY_PORT" \
    --http "$PROXY_HTTP_PORT" --control "$RELAY_CTL" --relay "$LB" --node "$MC_NODE" \
    --node-dir "$MC_NODE_DIR"
st=0
grep -q 'event=upstream_topology type=LoadBalanced targets=127.0.0.1:'"$LB" "$PROXY_LOG" || st=1
mc_ok "$st" "the upstream_topology log line names the load balancer"

MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$LB/?heartbeatFrequencyMS=500" mc_start_proxy
mc_run_lines lb without "$MC_PYTHON" "$MC_TESTDIR/lb_check.py" without --proxy "$PROXY_PORT" \
    --http "$PROXY_HTTP_PORT" --control "$RELAY_CTL" --log "$PROXY_LOG"
mc_done
