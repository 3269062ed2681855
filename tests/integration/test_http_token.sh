#!/usr/bin/env bash
# tests/integration/test_http_token.sh: the HTTP endpoint's token is required
# off loopback (issue 8). An http_listen that is not a loopback address
# (0.0.0.0, [::], a routable address, a host name) with no http_token is
# refused by --check-config (exit 2, naming http_token and where http_listen
# came from: flag, file, environment) and at start (the process exits before
# listening); loopback addresses (127.0.0.0/8, [::1], localhost) need no
# token; with a token a non-loopback address is accepted and the endpoint
# serves, answering /stats only to the token. No upstream is needed.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

mc_plan 13
TOKEN="tok-$$-$RANDOM-off-loopback"
bin=$MC_MONGOCACHE
listen=127.0.0.1:$(mc_free_port)

# run ARGS...: --check-config with them; sets rc, and out/err files.
run() {
    "$bin" --listen "$listen" --upstream mongodb://127.0.0.1:1 "$@" --check-config \
        >"$MC_TMP/out" 2>"$MC_TMP/err" && rc=0 || rc=$?
}
err_has() { grep -qF -- "$1" "$MC_TMP/err"; }

for addr in 0.0.0.0 "[::]" 192.0.2.10 mongocache.example.com; do
    run --http-listen "$addr:9180"
    [ "$rc" -eq 2 ] && err_has "http_token must be set when http_listen \"$addr:9180\" (from flag"
    mc_ok $? "--check-config refuses http_listen $addr:9180 without http_token (exit $rc)"
done

printf 'http_listen = 0.0.0.0:9180\n' >"$MC_TMP/open.conf"
run --config "$MC_TMP/open.conf"
[ "$rc" -eq 2 ] && err_has "http_token must be set" && err_has "open.conf"
mc_ok $? "... from a config file, naming the file"

MONGOCACHE_HTTP_LISTEN=0.0.0.0:9180 run
[ "$rc" -eq 2 ] && err_has "http_token must be set" && err_has "MONGOCACHE_HTTP_LISTEN"
mc_ok $? "... from the environment, naming the variable"

MONGOCACHE_HTTP_LISTEN=0.0.0.0:9180 MONGOCACHE_HTTP_TOKEN=$TOKEN run
[ "$rc" -eq 0 ] && ! grep -qF -- "$TOKEN" "$MC_TMP/out" "$MC_TMP/err"
mc_ok $? "with a token (environment) the same address passes, and the token is not printed"

good=1
for addr in 127.0.0.1 127.0.0.2 "[::1]" localhost; do
    run --http-listen "$addr:9180"
    [ "$rc" -eq 0 ] || { good=0; mc_diag "loopback $addr refused: $(cat "$MC_TMP/err")"; }
done
mc_ok $((1 - good)) "loopback addresses (127.0.0.1, 127.0.0.2, [::1], localhost) need no token"

# At start: refused before anything listens.
hport=$(mc_free_port)
"$bin" --listen "$listen" --upstream mongodb://127.0.0.1:1 --http-listen "0.0.0.0:$hport" \
    >"$MC_TMP/proxy.start.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
st=0
if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    st=1
    mc_diag "the proxy was still running 5 s after start"
fi
wait "$pid" 2>/dev/null && code=0 || code=$?
[ "$code" -ne 0 ] || st=1
grep -qF "http_token must be set" "$MC_TMP/proxy.start.log" || st=1
mc_ok "$st" "start with http_listen 0.0.0.0 and no token: exits ($code) with the reason"
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$hport/healthz"
[ $? -ne 0 ]
mc_ok $? "... and nothing answers on its HTTP port"

# With a token: it starts, listens on every address, answers /stats only to the token.
hport=$(mc_free_port)
MONGOCACHE_HTTP_TOKEN=$TOKEN "$bin" --listen "$listen" --upstream mongodb://127.0.0.1:1 \
    --http-listen "0.0.0.0:$hport" >"$MC_TMP/proxy.tok.log" 2>&1 &
pid=$!
mc_track "$pid"
mc_wait_port "$hport" "$pid" 10
mc_ok $? "start with http_listen 0.0.0.0 and a token: the endpoint listens"
c1=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$hport/stats")
c2=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$hport/stats")
[ "$c1" = 401 ] && [ "$c2" = 200 ]
mc_ok $? "... /stats without the token: $c1, with it: $c2"
c3=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "http://127.0.0.1:$hport/cache/flush")
[ "$c3" = 401 ]
mc_ok $? "... an admin POST without the token: $c3"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
mc_done
