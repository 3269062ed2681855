#!/usr/bin/env bash
# tests/integration/test_advisor.sh: the index advisor (advice/advisor.c,
# with the shape table of advice/table.c) against real FerretDB servers. The
# scenarios live in tests/integration/advisor_driver.c (built by `make
# check`): the expected index for an unindexed equality + sort + range query
# on 5,000 documents and none for _id lookups, indexed queries and small
# collections; withdrawal after createIndex; explain counted, bounded and
# off; FerretDB behind TLS (certificates made here with openssl); FerretDB
# with authentication (credentials work, none or a wrong password:
# unauthorized); a FerretDB of the driver's own killed (unreachable,
# backoff), restarted (ok again) and paused (timeouts, the loop unaffected,
# destroy bounded); junk from tests/integration/advisor_fake.py (state error,
# no crash). The driver prints "PLAN n" and "RESULT 0|1 name" lines, turned
# into TAP here; its log (stderr) must hold no password and no sanitizer
# report. Bounded: about a minute.

. "$(dirname "$0")/lib.sh"
mc_init

driver=$abs_top_builddir/tests/integration/advisor_driver
if [ ! -x "$driver" ]; then
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "advisor_driver not built: $driver"
    echo "1..0 # SKIP advisor_driver not built (make check builds it)"
    exit 0
fi

command -v openssl >/dev/null 2>&1 || {
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "openssl not found"
    echo "1..0 # SKIP openssl not found (the TLS scenario makes its certificates with it)"
    exit 0
}

AUTH_USER=advuser
AUTH_PW="advPw-$$-$RANDOM-k3"

# the plain FerretDB, then one with authentication
mc_start_ferretdb
plain_uri=$FERRET_URI
mc_start_ferretdb --test-enable-new-auth --setup-database=admin \
    --setup-username="$AUTH_USER" --setup-password="$AUTH_PW"
auth_hostport=127.0.0.1:$FERRET_PORT

# FerretDB behind TLS: a CA and a certificate for 127.0.0.1, made here
tls_dir=$MC_TMP/tls
mkdir -p "$tls_dir/data"
(
    cd "$tls_dir" &&
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=mongocache-test-ca" &&
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/CN=127.0.0.1" &&
        printf 'subjectAltName=IP:127.0.0.1\n' >ext.cnf &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 2 -extfile ext.cnf
) >"$tls_dir/openssl.log" 2>&1 || {
    mc_log_tail "$tls_dir/openssl.log"
    mc_bail "could not make the test certificates"
}
tls_port=$(mc_free_port)
"$MC_FERRETDB" --handler=sqlite --sqlite-url="file:$tls_dir/data/" --state-dir="$tls_dir" \
    --listen-addr= --listen-tls="127.0.0.1:$tls_port" \
    --listen-tls-cert-file="$tls_dir/server.pem" --listen-tls-key-file="$tls_dir/server.key" \
    --telemetry=disable --debug-addr=- --log-level=WARN >"$tls_dir/ferretdb.log" 2>&1 &
tls_pid=$!
mc_track "$tls_pid"
mc_wait_port "$tls_port" "$tls_pid" 30 || {
    mc_log_tail "$tls_dir/ferretdb.log"
    mc_bail "FerretDB with TLS did not come up"
}

# the junk servers: junk replies; a junk handshake; junk only for a streaming monitor
start_fake() {
    local port pid
    port=$(mc_free_port)
    "$MC_PYTHON" "$MC_TESTDIR/advisor_fake.py" "$port" "$@" >"$MC_TMP/fake.$port.log" 2>&1 &
    pid=$!
    mc_track "$pid"
    mc_wait_port "$port" "$pid" 10 || {
        mc_log_tail "$MC_TMP/fake.$port.log"
        mc_bail "advisor_fake.py did not come up"
    }
    FAKE_PORT=$port
}
start_fake
fake_port=$FAKE_PORT
start_fake badhello
badhello_port=$FAKE_PORT
start_fake badstream
badstream_port=$FAKE_PORT

# where the driver runs (kills, restarts, pauses) a FerretDB of its own
fault_dir=$MC_TMP/ferretdb.fault
mkdir -p "$fault_dir"
fault_port=$(mc_free_port)
pidfile=$MC_TMP/fault-ferretdb.pid

out=$MC_TMP/driver.out
log=$MC_TMP/driver.log
st=0
timeout 300 "$driver" "$plain_uri" "$auth_hostport" "$AUTH_USER" "$AUTH_PW" "$fake_port" \
    "$badhello_port" "$badstream_port" "$MC_FERRETDB" "$fault_dir" "$fault_port" "$pidfile" \
    "127.0.0.1:$tls_port" "$tls_dir/ca.pem" >"$out" 2>"$log" || st=$?
if [ -s "$pidfile" ]; then
    mc_track "$(cat "$pidfile")"
fi

plan=$(sed -n 's/^PLAN \([0-9]*\)$/\1/p' "$out" | head -n 1)
[ -n "$plan" ] || {
    mc_log_tail "$out"
    mc_log_tail "$log"
    mc_bail "advisor_driver printed no plan (exit status $st)"
}
mc_plan $((plan + 3))

while IFS= read -r line; do
    case $line in
    "RESULT "*)
        rest=${line#RESULT }
        mc_ok "${rest%% *}" "${rest#* }"
        ;;
    "# "*) echo "$line" ;;
    esac
done <"$out"

mc_is "$st" 0 "advisor_driver exited with status 0"
if [ "$st" -ne 0 ]; then
    mc_log_tail "$out" 20
    mc_log_tail "$log" 40
fi

leaks=$(grep -c -e "$AUTH_PW" -e 'wrong-pw-4242' -e 'pw-in-bad-uri-99' "$out" "$log" |
    awk -F: '{ n += $NF } END { print n + 0 }')
mc_is "$leaks" 0 "no password appears in the driver's output or log"

if grep -Eq 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log"; then
    grep -E -A 30 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log" | head -n 60 | sed 's/^/#   /'
    mc_ok 1 "no sanitizer report"
else
    mc_ok 0 "no sanitizer report"
fi

mc_done
