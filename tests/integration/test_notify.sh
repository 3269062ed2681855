#!/usr/bin/env bash
# tests/integration/test_notify.sh: the sd_notify protocol the systemd unit
# (Type=notify) relies on. A datagram socket (notify_listen.py) stands in for
# systemd; the proxy is started with NOTIFY_SOCKET naming it and must send
# READY=1 once it accepts clients, RELOADING=1 (with MONOTONIC_USEC) then
# READY=1 on SIGHUP, whether the reload is applied or refused, and
# STOPPING=1 on SIGTERM, then exit 0. Also: an abstract socket (@name), and
# a bad NOTIFY_SOCKET costs a warning, never the start. No upstream is needed:
# the proxy forwards to a closed port that no client here ever asks for.
. "$(dirname "$0")/lib.sh"
mc_init

mc_plan 14

PY=$MC_PYTHON
LISTEN=$MC_TESTDIR/notify_listen.py
MC_PROXY_UPSTREAM=mongodb://127.0.0.1:$(mc_free_port)
CONF=$MC_TMP/mongocache.conf
printf 'log_level = debug\nmax_clients = 100\n' >"$CONF"

# start_listener SOCKET OUT: notify_listen.py bound at SOCKET, writing OUT.
start_listener() {
    "$PY" "$LISTEN" "$1" --seconds 60 >"$2" 2>"$2.err" &
    LISTENER_PID=$!
    mc_track "$LISTENER_PID"
    local i
    for i in $(seq 1 100); do
        grep -qx LISTENING "$2" 2>/dev/null && return 0
        sleep 0.05
    done
    mc_bail "notify_listen.py did not bind $1: $(head -c 300 "$2.err")"
}

# wait_lines OUT N: OUT holds N messages (LISTENING excluded), within 10 s.
wait_lines() {
    local i
    for i in $(seq 1 200); do
        [ "$(grep -vcx LISTENING "$1")" -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

# payloads OUT: the messages received so far, one per line, without times.
payloads() {
    grep -vx LISTENING "$1" | cut -f2-
}

# ---- a path socket: start, reload, refused reload, stop ---------------------
OUT=$MC_TMP/notify.out
start_listener "$MC_TMP/notify.sock" "$OUT"
NOTIFY_SOCKET=$MC_TMP/notify.sock mc_start_proxy --config "$CONF" --advice false
wait_lines "$OUT" 1
mc_is "$(payloads "$OUT")" "READY=1" "READY=1 is sent once the proxy accepts clients"

kill -HUP "$PROXY_PID"
wait_lines "$OUT" 3
got=$(payloads "$OUT" | sed -n '2,3p' | sed 's/MONOTONIC_USEC=[0-9]*/MONOTONIC_USEC=N/')
mc_is "$got" "RELOADING=1|MONOTONIC_USEC=N
READY=1" "SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1"
# MONOTONIC_USEC is CLOCK_MONOTONIC, the clock the receiver stamps with.
line=$(grep -v -x LISTENING "$OUT" | sed -n 2p)
recv_us=${line%%$'\t'*}
sent_us=$(printf '%s\n' "$line" | sed -n 's/.*MONOTONIC_USEC=\([0-9]*\).*/\1/p')
d=$((recv_us - ${sent_us:-0}))
[ -n "$sent_us" ] && [ "$d" -ge 0 ] && [ "$d" -lt 5000000 ]
mc_ok $? "MONOTONIC_USEC is the monotonic clock at the reload (received ${d} us later)"
grep -q 'event=reloaded' "$PROXY_LOG"
mc_ok $? "the reload was applied (event=reloaded)"

# A config the proxy refuses: the reload fails, the old one stays, and the
# proxy is still READY (systemd would otherwise wait for the reload's end).
printf 'no_such_option = 1\n' >>"$CONF"
kill -HUP "$PROXY_PID"
wait_lines "$OUT" 5
got=$(payloads "$OUT" | sed -n '4,5p' | sed 's/MONOTONIC_USEC=[0-9]*/MONOTONIC_USEC=N/')
mc_is "$got" "RELOADING=1|MONOTONIC_USEC=N
READY=1" "a refused reload still ends with READY=1"
grep -q 'event=reload_failed' "$PROXY_LOG"
mc_ok $? "the refused reload was logged (event=reload_failed)"

pid=$PROXY_PID
mc_stop_proxy
wait_lines "$OUT" 6
mc_is "$(payloads "$OUT" | sed -n 6p)" "STOPPING=1" "SIGTERM: STOPPING=1"
mc_is "$MC_PROXY_STATUS" 0 "the proxy exits 0 after the drain"
mc_is "$(payloads "$OUT" | wc -l | tr -d ' ')" 6 "no other message was sent (pid $pid)"
kill "$LISTENER_PID" 2>/dev/null
wait "$LISTENER_PID" 2>/dev/null

# ---- an abstract socket -----------------------------------------------------
OUT2=$MC_TMP/notify2.out
abstract=@mongocache-test-notify-$$-$RANDOM
start_listener "$abstract" "$OUT2"
sed -i '/no_such_option/d' "$CONF"
NOTIFY_SOCKET=$abstract mc_start_proxy --config "$CONF" --advice false
wait_lines "$OUT2" 1
mc_is "$(payloads "$OUT2")" "READY=1" "READY=1 reaches an abstract socket ($abstract)"
mc_stop_proxy
wait_lines "$OUT2" 2
mc_is "$(payloads "$OUT2" | sed -n 2p)" "STOPPING=1" "STOPPING=1 reaches the abstract socket"
kill "$LISTENER_PID" 2>/dev/null
wait "$LISTENER_PID" 2>/dev/null

# ---- a NOTIFY_SOCKET that cannot be used ------------------------------------
NOTIFY_SOCKET=relative/path mc_start_proxy --config "$CONF" --advice false
# The port accepts just before READY=1 is due: give the warning a moment.
for i in $(seq 1 100); do
    grep -q 'event=notify_failed' "$PROXY_LOG" && break
    sleep 0.05
done
grep -q 'event=notify_failed' "$PROXY_LOG"
mc_ok $? "a bad NOTIFY_SOCKET is logged (event=notify_failed)"
kill -0 "$PROXY_PID" 2>/dev/null
mc_ok $? "and the proxy runs on"
mc_stop_proxy
mc_is "$MC_PROXY_STATUS" 0 "and stops cleanly"

mc_done
