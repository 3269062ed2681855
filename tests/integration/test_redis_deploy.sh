#!/usr/bin/env bash
# tests/integration/test_redis_deploy.sh: the shared tier in front of Redis
# deployments beyond one plaintext node: over TLS (rediss://,
# cache/redis_tls.c and redis_conn.c's bufferevent_openssl path), and a
# Redis Cluster node (not supported: refused clearly, never served from).
#
# The test makes its own certificates with the openssl CLI: a CA, a server
# certificate for localhost / 127.0.0.1, a client certificate (redis-server
# asks for one: tls-auth-clients), a certificate for another name, and a
# second CA. redis-server (built with TLS in Debian) listens on a TLS port
# only (--port 0); a second one with the other name's certificate; a third
# in plaintext.
#
#   1 share     P1 (rediss://localhost) and P2 (rediss://127.0.0.1): a query
#               filled through P1 is a Redis hit through P2 (shared_check.py)
#   2 wrong CA  a CA file that did not sign the server's certificate: an
#               error line "redis_tls_failed ... certificate verify failed",
#               the tier down, reads answered (bypassed, as when Redis is down)
#   3 wrong host  the server's certificate names another host: refused the
#               same way ("IP address mismatch")
#   4 allowed   the same with redis_tls_allow_invalid_hostnames: connects,
#               and says so at start-up with a warning
#   5 plaintext redis:// against the TLS-only port: a warning that the server
#               reset the connection before any reply (a TLS port?) within 5 s
#   6 reverse   rediss:// against a plaintext port (which waits for the end of
#               an inline command): an error that no TLS handshake came in time
#   7 cluster   a Redis Cluster node (cluster mode, no slot served: every key
#               command answers CLUSTERDOWN): a redis_cluster_unsupported
#               warning, reads answered equal to FerretDB's, no Redis hit
#   8 stop      every proxy exits on SIGTERM (no sanitizer report: mc_done)
# Bounded: about 15 s.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy's cache"
mc_need_tools redis-server openssl

# ---- certificates ----------------------------------------------------------------------
PKI=$MC_TMP/pki
mkdir -p "$PKI"
# make_ca NAME: NAME.key, NAME.crt (self-signed CA)
make_ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mongocache test $1" \
        -keyout "$PKI/$1.key" -out "$PKI/$1.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        >/dev/null 2>&1 || mc_bail "openssl: cannot make CA $1"
}
# make_cert NAME CA SAN EKU: NAME.key, NAME.crt signed by CA
make_cert() {
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$PKI/$1.key" \
        -out "$PKI/$1.csr" >/dev/null 2>&1 || mc_bail "openssl: cannot make a request for $1"
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$3" "$4" >"$PKI/$1.ext"
    openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$2.crt" -CAkey "$PKI/$2.key" \
        -CAcreateserial -days 2 -extfile "$PKI/$1.ext" -out "$PKI/$1.crt" >/dev/null 2>&1 ||
        mc_bail "openssl: cannot sign $1"
}
make_ca ca
make_ca otherca
make_cert server ca "DNS:localhost,IP:127.0.0.1" serverAuth
make_cert elsewhere ca "DNS:redis.elsewhere.example" serverAuth
make_cert client ca "DNS:mongocache-client" clientAuth

# start_tls_redis CERT AUTH: a TLS-only redis-server with CERT's certificate
# (tls-auth-clients AUTH); sets TLS_PORT. Another port is tried when the first
# is taken meanwhile (mc_free_port cannot reserve it).
start_tls_redis() {
    local dir=$MC_TMP/redis-tls.$1 try pid
    mkdir -p "$dir"
    for try in 1 2 3; do
        TLS_PORT=$(mc_free_port)
        redis-server --bind 127.0.0.1 --port 0 --tls-port "$TLS_PORT" \
            --tls-cert-file "$PKI/$1.crt" --tls-key-file "$PKI/$1.key" \
            --tls-ca-cert-file "$PKI/ca.crt" --tls-auth-clients "$2" \
            --save '' --appendonly no --daemonize no --dir "$dir" >"$dir/redis.$try.log" 2>&1 &
        pid=$!
        mc_track "$pid"
        mc_wait_port "$TLS_PORT" "$pid" 10 && return 0
        mc_log_tail "$dir/redis.$try.log"
    done
    mc_bail "TLS redis-server did not come up (last port 127.0.0.1:$TLS_PORT)"
}

mc_start_ferretdb
start_tls_redis server yes
GOOD_PORT=$TLS_PORT
start_tls_redis elsewhere no
ELSEWHERE_PORT=$TLS_PORT
mc_start_redis # plaintext, for case 6
# start_cluster_redis: a cluster-mode redis-server (case 7); sets CLUSTER_PORT. Its
# cluster bus listens on CLUSTER_PORT + 10000 as well, so that port must be free too,
# and below the kernel's ephemeral ports, where other tests' connections take their
# local ports. Retried like start_tls_redis: once, in a full parallel suite, the one
# try it had did not come up (its log was not kept).
start_cluster_redis() {
    local dir=$MC_TMP/cluster try i pid lo
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || lo=32768
    mkdir -p "$dir"
    for try in 1 2 3; do
        for i in $(seq 1 50); do
            CLUSTER_PORT=$(mc_free_port)
            [ $((CLUSTER_PORT + 10000)) -lt "$lo" ] || [ "$lo" -lt 30000 ] || continue
            (exec 3<>"/dev/tcp/127.0.0.1/$((CLUSTER_PORT + 10000))") 2>/dev/null || break
        done
        redis-server --bind 127.0.0.1 --port "$CLUSTER_PORT" --cluster-enabled yes \
            --cluster-config-file "$dir/nodes.$try.conf" --save '' --appendonly no \
            --daemonize no --dir "$dir" >"$dir/redis.$try.log" 2>&1 &
        pid=$!
        mc_track "$pid"
        mc_wait_port "$CLUSTER_PORT" "$pid" 10 && return 0
        mc_log_tail "$dir/redis.$try.log"
        kill "$pid" 2>/dev/null || true
    done
    mc_bail "cluster-mode redis-server did not come up (last port 127.0.0.1:$CLUSTER_PORT)"
}
start_cluster_redis
SECRET="tls-secret-$$-$RANDOM"
CLIENT_CERT="--redis-tls-cert-file $PKI/client.crt --redis-tls-key-file $PKI/client.key"

# proxy NAME URL FLAGS...: starts a proxy sharing the tier's secret; NAME_PORT, NAME_HTTP, NAME_LOG
proxy() {
    local name=$1 url=$2
    shift 2
    mc_start_proxy --redis "$url" --cache-key-secret "$SECRET" --redis-timeout 200ms "$@"
    eval "${name}_PORT=$PROXY_PORT ${name}_HTTP=$PROXY_HTTP_PORT ${name}_LOG=$PROXY_LOG"
}

# shellcheck disable=SC2086 # word splitting of the flags is intended
proxy P1 "rediss://localhost:$GOOD_PORT" --redis-tls-ca-file "$PKI/ca.crt" $CLIENT_CERT
# shellcheck disable=SC2086
proxy P2 "rediss://127.0.0.1:$GOOD_PORT" --redis-tls-ca-file "$PKI/ca.crt" $CLIENT_CERT
# shellcheck disable=SC2086
proxy WRONGCA "rediss://127.0.0.1:$GOOD_PORT" --redis-tls-ca-file "$PKI/otherca.crt" $CLIENT_CERT
proxy WRONGHOST "rediss://127.0.0.1:$ELSEWHERE_PORT" --redis-tls-ca-file "$PKI/ca.crt"
proxy ALLOWED "rediss://127.0.0.1:$ELSEWHERE_PORT" --redis-tls-ca-file "$PKI/ca.crt" \
    --redis-tls-allow-invalid-hostnames true
proxy PLAIN "redis://127.0.0.1:$GOOD_PORT"
proxy REVERSE "rediss://127.0.0.1:$REDIS_PORT" --redis-tls-ca-file "$PKI/ca.crt"
proxy CLUSTER "redis://127.0.0.1:$CLUSTER_PORT"

run() { # LABEL SCRIPT ARGS...
    local label=$1 script=$2
    shift 2
    MC_GROUP_TIMEOUT=60 mc_run_lines deploy "$label" "$MC_PYTHON" "$MC_TESTDIR/$script" "$@"
}
check() { # LABEL NAME GROUP ARGS...
    local label=$1 name=$2 group=$3
    shift 3
    eval "local port=\$${name}_PORT http=\$${name}_HTTP log=\$${name}_LOG"
    # shellcheck disable=SC2154 # set by the eval
    run "$label" redis_deploy_check.py "$group" --name "deploy $label" --port "$port" \
        --http "$http" --direct "$FERRET_PORT" --log "$log" "$@"
}

# ---- 1: share over TLS -----------------------------------------------------------------
mc_wait_tiers "$P1_HTTP" "$P2_HTTP" || true
run share shared_check.py share --p1 "$P1_PORT" --h1 "$P1_HTTP" --p2 "$P2_PORT" \
    --h2 "$P2_HTTP" --direct "$FERRET_PORT"

# ---- 2-6 --------------------------------------------------------------------------------
check 2-wrong-ca WRONGCA down --event redis_tls_failed \
    --reason "certificate verify failed: "
check 3-wrong-host WRONGHOST down --event redis_tls_failed \
    --reason "certificate verify failed: IP address mismatch"
check 4-allowed ALLOWED up
n=$(grep -c 'level=warn .*event=redis_tls_hostnames_unchecked' "$ALLOWED_LOG")
mc_is "$n" 1 "deploy 4-allowed: redis_tls_allow_invalid_hostnames is warned about once at start-up"
check 5-plaintext PLAIN down --event redis_connect_failed \
    --reason "before any reply (a TLS port? then rediss://)"
check 6-reverse REVERSE down --event redis_tls_failed \
    --reason "no TLS handshake in time (a plaintext port? then redis://)"

check 7-cluster CLUSTER cluster

# ---- 8: every proxy exits on SIGTERM -----------------------------------------------------
for pid in $MC_PROXY_PIDS; do
    PROXY_PID=$pid
    mc_stop_proxy
    mc_is "$MC_PROXY_STATUS" 0 "deploy 8: proxy $pid exits 0 on SIGTERM"
done

mc_plan "$MC_N"
mc_done
