#!/usr/bin/env bash
# tests/integration/test_tls.sh: TLS with clients (tls_cert_file, tls_key_file,
# tls_ca_file) and with the upstream (tls=true in the upstream URI). The
# certificates are made here with the openssl CLI: a CA, a second CA, a server
# certificate for 127.0.0.1 and localhost (and a second one, for the reload),
# client certificates from each CA, an expired server certificate and one for
# another host. FerretDB listens with TLS and requires a client certificate
# from the CA; tls_check.py's relay serves the bad certificates in front of
# FerretDB's plaintext port. Groups (tls_check.py, tls_node.js, mongosh):
#
#   A  TLS both ways: pymongo, Node, Mongoose, mongosh (reads, a hit, writes, a reply of
#      several MB); /readyz and the advisor (libmongoc's own TLS, from the same
#      URI) reach the upstream; a plaintext client on the TLS port closed with a log line;
#      SIGHUP swaps the certificate (then a bad one is refused)
#   B  tls_ca_file: a client certificate required (pymongo, Node, Mongoose; none,
#      another CA's: refused)
#   C  a plaintext port with a TLS upstream (localhost, checked by name): a TLS
#      client on it is closed with a log line
#   D  upstream certificates refused: wrong CA, expired, wrong host, and no
#      client certificate where FerretDB requires one
#   E  tlsAllowInvalidHostnames: the wrong-host server taken, with a warning
#
# Each proxy's exit status and log are checked for sanitizer reports (CI runs
# this script in the --enable-asan build too).
set -u

. "$(dirname "$0")/lib.sh"
mc_init
mc_skip_if_bypass "test the proxy itself"
command -v openssl >/dev/null 2>&1 || mc_bail "openssl not found (run tests/setup.sh)"

CERTS=$MC_TMP/certs
mkdir -p "$CERTS"

# ---- certificates -------------------------------------------------------------
q() { "$@" >/dev/null 2>&1 || mc_bail "openssl failed: $*"; }
make_ca() { mc_make_ca "$CERTS" "$1"; }
# make_cert NAME CA SAN: a certificate signed by CA, valid 30 days from now.
make_cert() { mc_make_cert "$CERTS" "$1" "$2" "$3"; }
make_ca ca
make_ca ca2
make_cert server ca "DNS:localhost,IP:127.0.0.1"
make_cert server2 ca "DNS:localhost,IP:127.0.0.1"
make_cert client ca "DNS:client"
make_cert client2 ca2 "DNS:client"
make_cert wronghost ca "DNS:elsewhere.example,IP:10.9.8.7"
# expired: valid one day in 2020 (openssl 3.0's x509 cannot set dates: `openssl ca` can)
mkdir -p "$CERTS/db"
: >"$CERTS/db/index.txt"
echo 1000 >"$CERTS/db/serial"
cat >"$CERTS/ca.cnf" <<EOF
[ ca ]
default_ca = d
[ d ]
database = $CERTS/db/index.txt
serial = $CERTS/db/serial
new_certs_dir = $CERTS/db
default_md = sha256
policy = p
x509_extensions = e
[ p ]
commonName = supplied
[ e ]
subjectAltName = DNS:localhost,IP:127.0.0.1
EOF
q openssl req -newkey rsa:2048 -nodes -keyout "$CERTS/expired.key" -out "$CERTS/expired.csr" \
    -subj "/CN=expired"
q openssl ca -batch -config "$CERTS/ca.cnf" -cert "$CERTS/ca.pem" -keyfile "$CERTS/ca.key" \
    -in "$CERTS/expired.csr" -out "$CERTS/expired.pem" -notext \
    -startdate 20200101000000Z -enddate 20200102000000Z
cp "$CERTS/server.pem" "$CERTS/live.pem"
cp "$CERTS/server.key" "$CERTS/live.key"

# ---- FerretDB over TLS (a client certificate from ca required), and the relay --------
FERRET_TLS_PORT=$(mc_free_port)
mc_start_ferretdb --listen-tls="127.0.0.1:$FERRET_TLS_PORT" \
    --listen-tls-cert-file="$CERTS/server.pem" --listen-tls-key-file="$CERTS/server.key" \
    --listen-tls-ca-file="$CERTS/ca.pem"
mc_wait_port "$FERRET_TLS_PORT" "$FERRET_PID" 10 || mc_bail "FerretDB's TLS port did not open"

R_EXPIRED=$(mc_free_port)
R_WRONGHOST=$(mc_free_port)
"$MC_PYTHON" "$MC_TESTDIR/tls_check.py" relay "$FERRET_PORT" \
    "$R_EXPIRED:$CERTS/expired.pem:$CERTS/expired.key" \
    "$R_WRONGHOST:$CERTS/wronghost.pem:$CERTS/wronghost.key" >"$MC_TMP/relay.log" 2>&1 &
mc_track $!
mc_wait_port "$R_WRONGHOST" $! 10 || mc_bail "the TLS relay did not start"

UP_TLS="mongodb://127.0.0.1:$FERRET_TLS_PORT/?tls=true&tlsCAFile=$CERTS/ca.pem&tlsCertificateKeyFile=$CERTS/client.both.pem"

stop_and_check() { mc_stop_checked "tls $1"; }
check() { mc_run_lines tls "$1" "$MC_PYTHON" "$MC_TESTDIR/tls_check.py" "$@"; }
node_check() {
    NODE_PATH=$MC_NODE_DIR/node_modules mc_run_lines tls "node-$1" \
        "$MC_NODE" "$MC_TESTDIR/tls_node.js" "${@:2}"
}

# ---- A: TLS both ways ---------------------------------------------------------------
MC_PROXY_UPSTREAM=$UP_TLS mc_start_proxy --tls-cert-file "$CERTS/live.pem" \
    --tls-key-file "$CERTS/live.key" --advice-interval 1s
check both "$PROXY_PORT" "$PROXY_HTTP_PORT" "$PROXY_LOG" "$CERTS"
node_check both "$PROXY_PORT" "$PROXY_HTTP_PORT" "$CERTS/ca.pem"
mongosh=$MC_NODE_DIR/node_modules/.bin/mongosh
if [ -x "$mongosh" ]; then
    out=$(timeout 60 "$mongosh" --nodb --quiet --eval "
        const c = connect('mongodb://localhost:$PROXY_PORT/tlssh?directConnection=true&tls=true&tlsCAFile=$CERTS/ca.pem&serverSelectionTimeoutMS=5000');
        c.items.deleteMany({}); c.items.insertOne({_id: 1, v: 'sh'});
        print('got=' + c.items.findOne({_id: 1}).v + ',' + c.items.findOne({_id: 1}).v);
    " 2>&1)
    [ "$(printf '%s\n' "$out" | grep -c '^got=sh,sh$')" = 1 ]
    mc_ok $? "mongosh over TLS: a write and two reads"
    [ $? = 0 ] || printf '%s\n' "$out" | tail -n 5 | sed 's/^/#   /'
else
    echo "ok $((MC_N += 1)) - mongosh over TLS # SKIP no mongosh in $MC_NODE_DIR/node_modules"
fi
check reload "$PROXY_PORT" "$PROXY_PID" "$PROXY_LOG" "$CERTS"
stop_and_check both

# ---- B: client certificates required ------------------------------------------------
MC_PROXY_UPSTREAM=$UP_TLS mc_start_proxy --tls-cert-file "$CERTS/server.pem" \
    --tls-key-file "$CERTS/server.key" --tls-ca-file "$CERTS/ca.pem" --message-timeout 1s
check clientcert "$PROXY_PORT" "$PROXY_LOG" "$CERTS"
node_check clientcert "$PROXY_PORT" "$PROXY_HTTP_PORT" "$CERTS/ca.pem" \
    "$CERTS/client.both.pem" "$CERTS/client2.both.pem"
stop_and_check clientcert

# ---- C: a plaintext port, the upstream over TLS checked by name -------------------
MC_PROXY_UPSTREAM="mongodb://localhost:$FERRET_TLS_PORT/?tls=true&tlsCAFile=$CERTS/ca.pem&tlsCertificateKeyFile=$CERTS/client.both.pem" \
    mc_start_proxy
check plainport "$PROXY_PORT" "$PROXY_LOG" "$CERTS"
stop_and_check plainport

# ---- D: upstream certificates refused -------------------------------------------------
refused() {
    local name=$1 uri=$2 expect=$3
    MC_PROXY_UPSTREAM=$uri mc_start_proxy
    mc_run_lines tls "refused-$name" "$MC_PYTHON" "$MC_TESTDIR/tls_check.py" refused \
        "$PROXY_PORT" "$PROXY_LOG" "$expect"
    stop_and_check "refused-$name"
}
refused wrong-ca "mongodb://127.0.0.1:$FERRET_TLS_PORT/?tls=true&tlsCAFile=$CERTS/ca2.pem&tlsCertificateKeyFile=$CERTS/client.both.pem" \
    "the server's certificate was refused: unable to get local issuer certificate"
refused expired "mongodb://localhost:$R_EXPIRED/?tls=true&tlsCAFile=$CERTS/ca.pem" \
    "the server's certificate was refused: certificate has expired"
refused wrong-host "mongodb://localhost:$R_WRONGHOST/?tls=true&tlsCAFile=$CERTS/ca.pem" \
    "the server's certificate was refused: hostname mismatch"
refused wrong-ip "mongodb://127.0.0.1:$R_WRONGHOST/?tls=true&tlsCAFile=$CERTS/ca.pem" \
    "the server's certificate was refused: IP address mismatch"
refused no-client-cert "mongodb://127.0.0.1:$FERRET_TLS_PORT/?tls=true&tlsCAFile=$CERTS/ca.pem" \
    "it requires a client certificate: set tlsCertificateKeyFile"

# ---- E: tlsAllowInvalidHostnames ------------------------------------------------------
MC_PROXY_UPSTREAM="mongodb://localhost:$R_WRONGHOST/?tls=true&tlsCAFile=$CERTS/ca.pem&tlsAllowInvalidHostnames=true" \
    mc_start_proxy
check lax "$PROXY_PORT" "$PROXY_LOG"
stop_and_check lax

mc_done
