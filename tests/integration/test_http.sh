#!/usr/bin/env bash
# tests/integration/test_http.sh: the HTTP endpoint's exposure (RELIABILITY F7).
# With http_token set, /stats answers only to "Authorization: Bearer TOKEN"
# (401 otherwise) and never shows the token; /healthz stays open; methods
# other than GET/HEAD are refused; a non-loopback address without a token
# is refused at start.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

mc_plan 8
TOKEN="tok-$$-$RANDOM-marker"
mc_start_ferretdb
MONGOCACHE_HTTP_TOKEN=$TOKEN mc_start_proxy
url=http://127.0.0.1:$PROXY_HTTP_PORT

code() { curl -s -o "$MC_TMP/body" -w '%{http_code}' --max-time 5 "$@"; }

mc_is "$(code "$url/stats")" 401 "/stats without a token: 401"
mc_is "$(code -H "Authorization: Bearer wrong" "$url/stats")" 401 "/stats with a wrong token: 401"
mc_is "$(code -H "Authorization: Bearer ${TOKEN}x" "$url/stats")" 401 \
    "/stats with the token plus one character: 401"
mc_is "$(code -H "Authorization: Bearer $TOKEN" "$url/stats")" 200 "/stats with the token: 200"
"$MC_PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "cache" in d and "counters" in d' \
    "$MC_TMP/body" 2>/dev/null
mc_ok $? "/stats with the token is the JSON document"
mc_is "$(code -X POST -H "Authorization: Bearer $TOKEN" "$url/stats")" 501 "POST is refused"
mc_stop_proxy
! grep -q -- "$TOKEN" "$PROXY_LOG" "$MC_TMP/body"
mc_ok $? "the token appears neither in the log nor in /stats"

st=0
"$MC_MONGOCACHE" --listen "127.0.0.1:$(mc_free_port)" --http-listen "0.0.0.0:$(mc_free_port)" \
    --upstream "$FERRET_URI" >"$MC_TMP/open.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    st=1
fi
wait "$pid" 2>/dev/null
grep -q "http_token" "$MC_TMP/open.log" || st=1
mc_ok "$st" "an HTTP endpoint beyond loopback without http_token is refused at start"
mc_done
