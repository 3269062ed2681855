#!/usr/bin/env bash
# test_srv.sh: a mongodb+srv:// upstream (proxy/topology.h). dnsmasq serves the SRV, TXT
# and A records of the test domain mc.test on a random 127.x.y.z, port 53; each proxy
# runs in a private mount namespace whose /etc/resolv.conf names that address only
# (unshare -m, mount --bind), so the monitor's lookups (libmongoc: res_nsearch for
# SRV/TXT, getaddrinfo for the hosts) reach it. Behind the records: two FerretDBs that
# rs_relay.py --mongos presents as two mongos servers (test_failover.sh uses it too).
#   db.mc.test   SRV a.mc.test:MA, b.mc.test:MB, then (dnsmasq restarted: it rereads
#                no SRV record on SIGHUP) c.mc.test:MB only: the proxy serves, then
#                follows the change within upstream_srv_rescan (1s here)
#   rs.mc.test   SRV to the two members of a replica set (rs_relay.py without --mongos,
#                answering with 127.0.0.1 addresses) and a TXT record replicaSet=rs0:
#                the set is followed, new connections go to its primary
#   rsx.mc.test  the same with replicaSet=other: the members (of rs0) are not used
#   tls.mc.test  SRV to a third FerretDB listening with TLS, its certificate for t.mc.test:
#                TLS is on by default, checked against the record's host name; tlsx.mc.test
#                names the same server as u.mc.test: refused (hostname mismatch)
#   bad.mc.test  a TXT record with w=majority, which only authSource, replicaSet and
#                loadBalanced may set: refused with the reason
#   lb.mc.test   SRV to a load balancer (rs_relay.py --lb) and a TXT record with
#                loadBalanced=true: followed as one, each hello sent upstream says so;
#                lb2.mc.test the same with two SRV records: refused (the specification
#                allows one host behind loadBalanced=true)
#   none.mc.test no record: a clear error at once, not a hang
# And with dnsmasq stopped, new connections still go to the server found: the loop
# connects to the address the monitor's thread resolved and looks up no name itself.
# SKIPPED (the whole script, saying why) when unshare or a bind mount is not allowed
# (not root) or dnsmasq cannot listen on port 53: CI runs as root.
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy's DNS lookups"
mc_need_tools dnsmasq unshare mount openssl

echo "nameserver 127.0.0.1" >"$MC_TMP/probe.conf"
# shellcheck disable=SC2016 # expanded by the inner sh
if ! unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf' sh "$MC_TMP/probe.conf" 2>"$MC_TMP/probe.err"; then
    echo "1..0 # SKIP a private mount namespace cannot be made here (unshare -m, mount --bind: $(head -c 200 "$MC_TMP/probe.err" | tr '\n' ' '))"
    exit 0
fi

mc_start_ferretdb
FA=$FERRET_PORT
mc_start_ferretdb
FB=$FERRET_PORT
# a third FerretDB over TLS, its certificate for t.mc.test only
CERTS=$MC_TMP/certs
mkdir -p "$CERTS"
mc_make_ca "$CERTS" ca
mc_make_cert "$CERTS" t ca "DNS:t.mc.test"
FT_TLS=$(mc_free_port)
mc_start_ferretdb --listen-tls="127.0.0.1:$FT_TLS" --listen-tls-cert-file="$CERTS/t.pem" \
    --listen-tls-key-file="$CERTS/t.key"
FT=$FERRET_PORT
mc_wait_port "$FT_TLS" "$FERRET_PID" 10 || mc_bail "FerretDB's TLS port did not open"
mc_start_rs_relay mongos "$FA,$FB" --mongos
MA=$RELAY_A MB=$RELAY_B
mc_start_rs_relay rs "$FA,$FB"
RA=$RELAY_A RB=$RELAY_B
mc_start_rs_relay lb "$FA,$FA" --lb
LBR=$RELAY_A LBR_CTL=$RELAY_CTL

# ---- the DNS server ---------------------------------------------------------------------
DNS_ADDR=127.$((RANDOM % 200 + 50)).$((RANDOM % 254 + 1)).$((RANDOM % 253 + 2))
DNS_PID=""
# dns_start SRV_LINES: (re)starts dnsmasq with db.mc.test's SRV records (srv-host= lines)
# and the fixed records of the other names.
dns_start() {
    if [ -n "$DNS_PID" ]; then
        kill -TERM "$DNS_PID" 2>/dev/null || true
        wait "$DNS_PID" 2>/dev/null || true
    fi
    {
        echo "port=53"
        echo "listen-address=$DNS_ADDR"
        echo "bind-interfaces"
        echo "no-resolv"
        echo "no-hosts"
        echo "local=/mc.test/"
        printf '%s\n' "$1"
        echo "host-record=a.mc.test,127.0.0.1"
        echo "host-record=b.mc.test,127.0.0.1"
        echo "host-record=c.mc.test,127.0.0.1"
        echo "host-record=t.mc.test,127.0.0.1"
        echo "host-record=u.mc.test,127.0.0.1"
        echo "srv-host=_mongodb._tcp.tls.mc.test,t.mc.test,$FT_TLS"
        echo "srv-host=_mongodb._tcp.tlsx.mc.test,u.mc.test,$FT_TLS"
        echo "srv-host=_mongodb._tcp.rs.mc.test,a.mc.test,$RA"
        echo "srv-host=_mongodb._tcp.rs.mc.test,b.mc.test,$RB"
        echo "txt-record=rs.mc.test,\"replicaSet=rs0\""
        echo "srv-host=_mongodb._tcp.rsx.mc.test,a.mc.test,$RA"
        echo "txt-record=rsx.mc.test,\"replicaSet=other\""
        echo "srv-host=_mongodb._tcp.bad.mc.test,a.mc.test,$MA"
        echo "txt-record=bad.mc.test,\"w=majority\""
        echo "srv-host=_mongodb._tcp.lb.mc.test,a.mc.test,$LBR"
        echo "txt-record=lb.mc.test,\"loadBalanced=true\""
        echo "srv-host=_mongodb._tcp.lb2.mc.test,a.mc.test,$LBR"
        echo "srv-host=_mongodb._tcp.lb2.mc.test,b.mc.test,$LBR"
        echo "txt-record=lb2.mc.test,\"loadBalanced=true\""
    } >"$MC_TMP/dnsmasq.conf"
    dnsmasq --keep-in-foreground --conf-file="$MC_TMP/dnsmasq.conf" --pid-file= \
        --log-facility="$MC_TMP/dnsmasq.log" >>"$MC_TMP/dnsmasq.out" 2>&1 &
    DNS_PID=$!
    mc_track "$DNS_PID"
    # up once it answers (bounded); it fails at once when port 53 cannot be bound
    local i
    for i in $(seq 1 50); do
        kill -0 "$DNS_PID" 2>/dev/null || return 1
        unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && getent hosts a.mc.test' sh \
            "$MC_TMP/resolv.conf" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
echo "nameserver $DNS_ADDR" >"$MC_TMP/resolv.conf"
echo "options timeout:1 attempts:1" >>"$MC_TMP/resolv.conf"
if ! dns_start "srv-host=_mongodb._tcp.db.mc.test,a.mc.test,$MA
srv-host=_mongodb._tcp.db.mc.test,b.mc.test,$MB"; then
    echo "1..0 # SKIP dnsmasq cannot serve on $DNS_ADDR port 53: $(tail -c 300 "$MC_TMP/dnsmasq.out" | tr '\n' ' ')"
    exit 0
fi
echo "# dnsmasq on $DNS_ADDR:53"

# The proxy in its own mount namespace, /etc/resolv.conf naming dnsmasq (the pid stays
# the proxy's: unshare and sh exec).
cat >"$MC_TMP/mongocache-ns" <<EOF
#!/bin/sh
exec unshare -m sh -c 'mount --bind "\$0" /etc/resolv.conf && exec "\$@"' "$MC_TMP/resolv.conf" "$MC_MONGOCACHE" "\$@"
EOF
chmod +x "$MC_TMP/mongocache-ns"
MC_MONGOCACHE=$MC_TMP/mongocache-ns

# ---- a mongodb+srv:// upstream: two mongos found by SRV, then the records change ----------
MC_PROXY_UPSTREAM="mongodb+srv://db.mc.test/?tls=false&heartbeatFrequencyMS=500" \
    mc_start_proxy --upstream-srv-rescan 1s
P_PORT=$PROXY_PORT P_HTTP=$PROXY_HTTP_PORT P_LOG=$PROXY_LOG P_PID=$PROXY_PID
mc_run_lines srv serve "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" serve --http "$P_HTTP" \
    --proxy "$P_PORT" --targets "a.mc.test:$MA,b.mc.test:$MB" --ferret "$FA,$FB"

dns_start "srv-host=_mongodb._tcp.db.mc.test,c.mc.test,$MB" || mc_bail "dnsmasq did not restart"
mc_run_lines srv follow "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" follow --http "$P_HTTP" \
    --proxy "$P_PORT" --targets "c.mc.test:$MB" --ferret "$FA,$FB" --within 8
st=0
grep -q 'event=upstream_topology.*targets=c.mc.test:'"$MB" "$P_LOG" || st=1
mc_ok "$st" "the upstream_topology log line names the new SRV host"
kill -TERM "$DNS_PID" && wait "$DNS_PID" 2>/dev/null || true
sleep 1.2 # two heartbeats: the monitor's lookups fail meanwhile
mc_run_lines srv nodns "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" nodns --http "$P_HTTP" \
    --proxy "$P_PORT" --ferret "$FA,$FB"
dns_start "srv-host=_mongodb._tcp.db.mc.test,c.mc.test,$MB" || mc_bail "dnsmasq did not restart"

# ---- a replica set found through SRV, its name from the TXT record -----------------------
MC_PROXY_UPSTREAM="mongodb+srv://rs.mc.test/?tls=false&heartbeatFrequencyMS=500" mc_start_proxy
mc_run_lines srv rs "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" rs --http "$PROXY_HTTP_PORT" \
    --proxy "$PROXY_PORT" --targets "127.0.0.1:$RA" --ferret "$FA,$FB"
MC_PROXY_UPSTREAM="mongodb+srv://rsx.mc.test/?tls=false&heartbeatFrequencyMS=500" mc_start_proxy
mc_run_lines srv rsx "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" refused --http "$PROXY_HTTP_PORT" \
    --proxy "$PROXY_PORT" --error 'no server left to monitor' 

# ---- TLS, on by default for +srv, checked against the SRV record's host name ---------------
MC_PROXY_UPSTREAM="mongodb+srv://tls.mc.test/?tlsCAFile=$CERTS/ca.pem&heartbeatFrequencyMS=500" \
    mc_start_proxy
mc_run_lines srv tls "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" tls --http "$PROXY_HTTP_PORT" \
    --proxy "$PROXY_PORT" --targets "t.mc.test:$FT_TLS" --ferret "$FT"
MC_PROXY_UPSTREAM="mongodb+srv://tlsx.mc.test/?tlsCAFile=$CERTS/ca.pem&heartbeatFrequencyMS=500" \
    mc_start_proxy
mc_run_lines srv tlsx "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" refused --http "$PROXY_HTTP_PORT" \
    --proxy "$PROXY_PORT" --error 'certificate verify failed (62): hostname mismatch'

# ---- a load balancer found through SRV, loadBalanced=true from the TXT record ------------
MC_PROXY_UPSTREAM="mongodb+srv://lb.mc.test/?tls=false&heartbeatFrequencyMS=500" mc_start_proxy
mc_run_lines srv lb "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" lb --http "$PROXY_HTTP_PORT" \
    --proxy "$PROXY_PORT" --targets "a.mc.test:$LBR" --ferret "$FA" --control "$LBR_CTL"

# ---- names whose records the proxy refuses, or that do not resolve -----------------------
# (three proxies at once; TLS left on by default for one: +srv implies tls=true)
MC_PROXY_UPSTREAM="mongodb+srv://bad.mc.test/?tls=false" mc_start_proxy
BAD_PORT=$PROXY_PORT BAD_HTTP=$PROXY_HTTP_PORT
MC_PROXY_UPSTREAM="mongodb+srv://lb2.mc.test/?tls=false" mc_start_proxy
LB_PORT=$PROXY_PORT LB_HTTP=$PROXY_HTTP_PORT
MC_PROXY_UPSTREAM="mongodb+srv://none.mc.test/?heartbeatFrequencyMS=500" mc_start_proxy
NONE_PORT=$PROXY_PORT NONE_HTTP=$PROXY_HTTP_PORT NONE_LOG=$PROXY_LOG
mc_run_lines srv txt "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" refused --http "$BAD_HTTP" \
    --proxy "$BAD_PORT" --error 'URI option "w" prohibited in TXT record'
mc_run_lines srv lb2 "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" refused --http "$LB_HTTP" \
    --proxy "$LB_PORT" --error 'must not contain more than one host'
mc_run_lines srv none "$MC_PYTHON" "$MC_TESTDIR/srv_check.py" refused --http "$NONE_HTTP" \
    --proxy "$NONE_PORT" --error 'Failed to look up SRV record "_mongodb._tcp.none.mc.test"'
st=0
grep -q 'event=started .*upstream_tls=on' "$NONE_LOG" || st=1
grep -q 'event=started .*upstream_tls=off' "$P_LOG" || st=1
mc_ok "$st" "mongodb+srv:// turns TLS to the upstream on, unless the URI says tls=false"
mc_done
