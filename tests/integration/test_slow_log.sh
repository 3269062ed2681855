#!/usr/bin/env bash
# tests/integration/test_slow_log.sh: log_format and the slow-request line
# (issue 8 item 9). FerretDB behind a relay (slow_log.py relay) that holds
# any client message carrying a marker (a find's comment) for 1 s, so that
# exactly the marked requests are slow. The proxy starts with
# log_format = logfmt and slow_request_ms = 400 from a config file; the
# workload (slow_log.py client) sends fast reads and writes, hostile values
# (an appName with a forged line and control bytes, a $db that is not
# UTF-8, a SCRAM user name with quotes and bytes that are not UTF-8), and
# five slow requests: a miss, a miss with an identical read coalesced
# behind it (a hit), an error and a write. Then log_format = json by SIGHUP,
# hostile values and one slow miss again. A second proxy with advice off
# logs shape=-. slow_log.py check reads both logs with real parsers
# (logfmtkv in strict mode, Python's json) and checks every line, the
# values read back, the keys of both formats, and the slow lines: exactly
# those, their outcomes, times, names and shapes, and no query value. First,
# --check-config refuses log_format text and slow_request_ms -1.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

"$MC_PYTHON" -c 'import logfmtkv' 2>/dev/null ||
    mc_bail "logfmtkv missing from the venv (run tests/setup.sh)"

out=$("$MC_MONGOCACHE" --log-format text --slow-request-ms -1 --check-config 2>&1)
st=$?
case $out in
*'log_format "text" (from flag --log-format) must be logfmt or json'*'2 errors'*) [ "$st" -eq 2 ] ;;
*) false ;;
esac
mc_ok $? "log_format text and slow_request_ms -1 are refused (status $st)"
[ "$st" -eq 2 ] || echo "$out" | sed 's/^/#   /'

mc_start_ferretdb

relay_port=$(mc_free_port)
"$MC_PYTHON" "$MC_TESTDIR/slow_log.py" relay "$relay_port" "$FERRET_PORT" 1.0 SLOWMARK \
    >"$MC_TMP/relay.log" 2>&1 &
relay_pid=$!
mc_track "$relay_pid"
mc_wait_port "$relay_port" "$relay_pid" 10 || mc_bail "the relay did not start"

conf=$MC_TMP/slow.conf
printf 'log_format = logfmt\nslow_request_ms = 400\n' >"$conf"
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$relay_port mc_start_proxy --config "$conf" \
    --advice-interval 1h
log=$PROXY_LOG

client() {
    timeout 60 "$MC_PYTHON" "$MC_TESTDIR/slow_log.py" client "$1" "$2" "$3" "$MC_TMP/relay.log" \
        >"$MC_TMP/client.$1.out" 2>&1
    local st=$?
    mc_ok "$st" "workload, phase $1"
    [ "$st" -eq 0 ] || tail -n 15 "$MC_TMP/client.$1.out" | cut -c1-300 | sed 's/^/#   /'
}

client logfmt "$PROXY_URI" "$PROXY_PORT"

printf 'log_format = json\nslow_request_ms = 400\n' >"$conf"
kill -HUP "$PROXY_PID"
for _ in $(seq 1 50); do
    grep -q 'event=reload_applied option=log_format' "$log" && break
    sleep 0.1
done
grep -q 'event=reload_applied option=log_format' "$log"
mc_ok $? "SIGHUP applies log_format = json"
client json "$PROXY_URI" "$PROXY_PORT"
mc_stop_proxy

MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$relay_port mc_start_proxy --slow-request-ms 400 \
    --advice off
off_log=$PROXY_LOG
client advice_off "$PROXY_URI" "$PROXY_PORT"
mc_stop_proxy

mc_run_lines slow_log check "$MC_PYTHON" "$MC_TESTDIR/slow_log.py" check "$log" "$off_log"

mc_done
