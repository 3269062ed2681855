#!/usr/bin/env bash
# test_failover.sh: mongocache follows a replica set's primary (proxy/topology.h).
# Two FerretDBs (--repl-set-name rs0) behind rs_relay.py, which answers hello as a
# two-member replica set and switches its primary on command; the proxy's upstream
# URI names both members with replicaSet=rs0 (heartbeatFrequencyMS=60000: only the
# immediate re-check follows a switch in time). failover_check.py drives pymongo, the
# Node driver and Mongoose through the proxy across two switches and checks that the
# monitor follows, that new connections go to the new primary (the time is printed),
# and that no client got a wrong reply or had a write applied twice; then writes in
# flight at a failover and the cache, two elections and the persona. Then a write
# whose reply is lost and is applied late, seen by a second proxy sharing a Redis tier
# (failover_shared.py), mongos servers, and a bounded stop of a monitor stuck in a check.
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

# connect_timeout 2s: how long a new connection waits for a primary in an election
MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$RA,127.0.0.1:$RB/?replicaSet=rs0&heartbeatFrequencyMS=60000" \
    mc_start_proxy --connect-timeout 2s

mc_run_lines failover check "$MC_PYTHON" "$MC_TESTDIR/failover_check.py" --proxy "$PROXY_PORT" \
    --http "$PROXY_HTTP_PORT" --log "$PROXY_LOG" --control "$RC" --members "$RA,$RB" \
    --ferret "$FA,$FB" --node "$MC_NODE" --node-dir "$MC_NODE_DIR" --tmp "$MC_TMP"
# the results' diagnostics (follow times, counts) are in the relayed output above

# ---- a lost write and the Redis tier: P1's late bump reaches P2 -------------------------
mc_start_redis
RS_URI="mongodb://127.0.0.1:$RA,127.0.0.1:$RB/?replicaSet=rs0&heartbeatFrequencyMS=60000"
TIER=(--redis "redis://127.0.0.1:$REDIS_PORT" --cache-key-secret "failover-$$-$RANDOM")
MC_PROXY_UPSTREAM=$RS_URI mc_start_proxy "${TIER[@]}"
P1_PORT=$PROXY_PORT P1_HTTP=$PROXY_HTTP_PORT
MC_PROXY_UPSTREAM=$RS_URI mc_start_proxy "${TIER[@]}"
mc_wait_tiers "$P1_HTTP" "$PROXY_HTTP_PORT" || true
mc_run_lines failover shared "$MC_PYTHON" "$MC_TESTDIR/failover_shared.py" --p1 "$P1_PORT" \
    --p2 "$PROXY_PORT" --h2 "$PROXY_HTTP_PORT" --control "$RC" --ferret "$FA,$FB"

# ---- mongos servers: new connections are spread across them ----------------------------
MA=$(mc_free_port)
MB=$(mc_free_port)
MCTL=$(mc_free_port)
"$MC_PYTHON" "$MC_TESTDIR/rs_relay.py" --mongos --ferret "$FA,$FB" --listen "$MA,$MB" \
    --control "$MCTL" --log "$MC_TMP/mongos.log" >"$MC_TMP/mongos.out" 2>&1 &
MONGOS_PID=$!
mc_track "$MONGOS_PID"
for port in "$MA" "$MB" "$MCTL"; do
    mc_wait_port "$port" "$MONGOS_PID" 10 || { mc_log_tail "$MC_TMP/mongos.out"; mc_bail "the mongos relay did not start"; }
done
MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$MA,127.0.0.1:$MB/?heartbeatFrequencyMS=500" mc_start_proxy
out=$(timeout 60 "$MC_PYTHON" - "$MC_TESTDIR" "$PROXY_PORT" "$PROXY_HTTP_PORT" "$FA" "$FB" <<'EOF' 2>&1 || true
import sys, time
sys.path.insert(0, sys.argv[1])
import mctest
import pymongo
proxy, http, fa, fb = (int(x) for x in sys.argv[2:6])
t = {}
for _ in range(200):
    t = mctest.stats(http).get("topology", {})
    if t.get("type") == "Sharded" and len(t.get("targets", [])) == 2:
        break
    time.sleep(0.05)
for i in range(24):  # each on a new connection, at random: all 24 on one side 1 in 2**23
    c = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % proxy, serverSelectionTimeoutMS=10000)
    c.spread.docs.insert_one({"i": i})
    c.close()
n = [pymongo.MongoClient("mongodb://127.0.0.1:%d/" % p, directConnection=True).spread.docs
     .count_documents({}) for p in (fa, fb)]
print("type=%s targets=%d on_a=%s on_b=%s" % (t.get("type"), len(t.get("targets", [])),
                                              "yes" if n[0] else "no", "yes" if n[1] else "no"))
print("# documents on each FerretDB: %r" % n)
EOF
)
echo "$out" | grep -v '^type=' || true
mc_is "$(echo "$out" | grep '^type=')" "type=Sharded targets=2 on_a=yes on_b=yes" \
    "two mongos servers: /stats shows both as targets, and new connections went to each"

# ---- a bounded stop: the monitor inside a check of a server that never answers ---------
# A listener that accepts and never replies, with connectTimeoutMS=30000: the monitor's
# first check waits 30 s for its hello. SIGTERM must not: the proxy waits 3 s for the
# monitor's thread (PROXY_TOPOLOGY_STOP_WAIT_MS), leaves it behind and exits 0 (before
# mc_stop_proxy's SIGKILL at 15 s).
MUTE=$(mc_free_port)
"$MC_PYTHON" -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
held = []
while True:
    held.append(s.accept()[0])
' "$MUTE" >/dev/null 2>&1 &
MUTE_PID=$!
mc_track "$MUTE_PID"
mc_wait_port "$MUTE" "$MUTE_PID" 10 || mc_bail "the mute listener did not start"
MC_PROXY_UPSTREAM="mongodb://127.0.0.1:$MUTE/?connectTimeoutMS=30000" mc_start_proxy
sleep 0.5 # the monitor's check is under way
t0=$(date +%s%N)
mc_stop_checked "a monitor stuck in a check of a mute server"
ms=$((($(date +%s%N) - t0) / 1000000))
st=1
grep -q 'event=topology_abandoned waited_ms=3000' "$PROXY_LOG" && st=0
mc_ok "$st" "... SIGTERM left its thread behind after 3 s (topology_abandoned) and exited after $ms ms, not after the check's 30 s"
mc_done
