#!/usr/bin/env bash
# tests/integration/test_redis_sentinel.sh: the shared tier behind Redis
# Sentinel (redis-sentinel://, cache/redis_sentinel.c, the links' ROLE check).
#
# On loopback: a master M, a replica R of it (and three more never promoted),
# one Sentinel watching them
# (quorum 1, down-after 1 s), and two proxies P1 and P2 on
# redis-sentinel://DEAD,SENTINEL/mymaster (DEAD: a port nobody listens on,
# so the first question fails and the next Sentinel is asked). The cases
# are redis_deploy_check.py's "demoted" and "sentinel" groups:
#   0 demoted   a third proxy whose (fake) Sentinel names a standalone X:
#               used; then X is made a replica (REPLICAOF of a port nobody
#               listens on: outside the Sentinel's world): the bump of a
#               write is refused READONLY, the proxy drops X, asks again, and
#               X's ROLE ("slave") keeps it out (redis_not_master): the tier
#               down, reads answered, nothing more sent to X
#   1 share     both find M; a fill through P1 is a Redis hit through P2
#   2 failover  SENTINEL FAILOVER: both follow to R within 10 s; reads
#               through both equal FerretDB's throughout (writes going on)
#   3 old       M, once a replica, got no MGET, EVALSHA or EVAL from the
#               proxies after they switched, and refused no write (READONLY)
#   4 kill      R killed (-9): the Sentinel promotes M, both follow in 15 s
#   5 stop      both proxies exit 0 on SIGTERM (no sanitizer report: mc_done)
# Bounded: about 25 s.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy's cache"
mc_need_tools redis-server redis-cli

# node NAME PORT ARGS...: a redis-server on loopback; NAME_PID
node() {
    local name=$1 port=$2 dir=$MC_TMP/$1
    shift 2
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize no \
        --dir "$dir" --repl-diskless-sync-delay 0 "$@" >"$dir/redis.log" 2>&1 &
    eval "${name}_PID=$!"
    mc_track $!
    if ! mc_wait_port "$port" $! 10; then
        mc_log_tail "$dir/redis.log"
        mc_bail "redis-server $name did not come up on 127.0.0.1:$port"
    fi
}

mc_start_ferretdb
M_PORT=$(mc_free_port)
R_PORT=$(mc_free_port)
S_PORT=$(mc_free_port)
DEAD_PORT=$(mc_free_port)
node M "$M_PORT"
node R "$R_PORT" --replicaof 127.0.0.1 "$M_PORT"
# Three more replicas that are never promoted (priority 0), so that the master's
# ROLE reply, which the proxies' links check, lists four (found in review: a
# link's element limit refused more than three, and the tier never came up).
E_PORTS=""
for e in E1 E2 E3; do
    p=$(mc_free_port)
    node "$e" "$p" --replicaof 127.0.0.1 "$M_PORT" --replica-priority 0
    E_PORTS="$E_PORTS $p"
done
# Every replica synced, so that ROLE lists all four when the links first ask.
for p in $R_PORT $E_PORTS; do
    for _ in $(seq 1 100); do
        redis-cli -p "$p" INFO replication | grep -q '^master_link_status:up' && break
        sleep 0.1
    done
done
mkdir -p "$MC_TMP/S"
cat >"$MC_TMP/S/sentinel.conf" <<CONF
port $S_PORT
bind 127.0.0.1
dir $MC_TMP/S
sentinel monitor mymaster 127.0.0.1 $M_PORT 1
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
CONF
redis-server "$MC_TMP/S/sentinel.conf" --sentinel >"$MC_TMP/S/sentinel.log" 2>&1 &
S_PID=$!
mc_track "$S_PID"
mc_wait_port "$S_PORT" "$S_PID" 10 || mc_bail "the Sentinel did not come up"
for _ in $(seq 1 100); do # the Sentinel knows the replica (from M's INFO)
    redis-cli -p "$S_PORT" SENTINEL replicas mymaster | grep -q "127.0.0.1:$R_PORT" && break
    sleep 0.1
done

SECRET="sentinel-secret-$$-$RANDOM"
URL="redis-sentinel://127.0.0.1:$DEAD_PORT,127.0.0.1:$S_PORT/mymaster"
mc_start_proxy --redis "$URL" --cache-key-secret "$SECRET" --redis-timeout 200ms
P1_PORT=$PROXY_PORT P1_HTTP=$PROXY_HTTP_PORT
mc_start_proxy --redis "$URL" --cache-key-secret "$SECRET" --redis-timeout 200ms
P2_PORT=$PROXY_PORT P2_HTTP=$PROXY_HTTP_PORT
FAKE_PORT=$(mc_free_port)
X_PORT=$(mc_free_port)
node X "$X_PORT"
mc_start_proxy --redis "redis-sentinel://127.0.0.1:$FAKE_PORT/mymaster" \
    --cache-key-secret "$SECRET" --redis-timeout 200ms

MC_GROUP_TIMEOUT=30 mc_run_lines sentinel demoted "$MC_PYTHON" \
    "$MC_TESTDIR/redis_deploy_check.py" demoted --name "sentinel 0" --port "$PROXY_PORT" \
    --http "$PROXY_HTTP_PORT" --direct "$FERRET_PORT" --log "$PROXY_LOG" \
    --fake-port "$FAKE_PORT" --node-port "$X_PORT" --replica-port "$DEAD_PORT"

MC_GROUP_TIMEOUT=90 mc_run_lines sentinel cases "$MC_PYTHON" "$MC_TESTDIR/redis_deploy_check.py" \
    sentinel --p1 "$P1_PORT" --h1 "$P1_HTTP" --p2 "$P2_PORT" --h2 "$P2_HTTP" \
    --direct "$FERRET_PORT" --sentinel-port "$S_PORT" --master-port "$M_PORT" \
    --replica-port "$R_PORT" --replica-pid "$R_PID"

for pid in $MC_PROXY_PIDS; do
    PROXY_PID=$pid
    mc_stop_proxy
    mc_is "$MC_PROXY_STATUS" 0 "sentinel 5: proxy $pid exits 0 on SIGTERM"
done

mc_plan "$MC_N"
mc_done
