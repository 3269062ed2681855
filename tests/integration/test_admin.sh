#!/usr/bin/env bash
# tests/integration/test_admin.sh: an operator's surface (issue 8, admin):
# GET /shapes, the admin actions over HTTP (POST /cache/flush,
# /cache/invalidate) and in-band (mongocacheStats, mongocacheFlush,
# mongocacheInvalidate) through pymongo and mongosh, with and without
# rights, and the audit log. Real FerretDB (one without and one with
# authentication), a real redis-server shared by proxies A and B:
#   A  Redis tier, http_token, admin_commands on, advice every 500 ms
#   B  Redis tier, no http_token, admin_commands off
#   E  advice off (no shape table)
#   C  as A, with redis_timeout 5s (its answers wait for Redis)
#   G  a Redis tier that is not there (port closed), http_token, admin_commands on
#   D  FerretDB with authentication, admin_users = the user@admin
#   D2 the same, admin_users = the user@app (same name, other database)
# The cases are in admin_check.py (groups) and below (mongosh, logs).
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

TOKEN="admtok-$$-$RANDOM-marker"
SECRET="admin-secret-$$-$RANDOM"
MONGOSH=${MC_MONGOSH:-$MC_NODE_DIR/node_modules/.bin/mongosh}
CHECK=$MC_TESTDIR/admin_check.py

mc_start_ferretdb
FERRET1=$FERRET_PORT
mc_start_redis
TIER=(--redis "redis://127.0.0.1:$REDIS_PORT" --cache-key-secret "$SECRET")
MONGOCACHE_HTTP_TOKEN=$TOKEN mc_start_proxy "${TIER[@]}" --admin-commands on \
    --advice-interval 500ms --advice-min-documents 0
A_PORT=$PROXY_PORT A_HTTP=$PROXY_HTTP_PORT A_LOG=$PROXY_LOG
mc_start_proxy "${TIER[@]}"
B_PORT=$PROXY_PORT B_HTTP=$PROXY_HTTP_PORT B_LOG=$PROXY_LOG
mc_start_proxy --advice off
E_HTTP=$PROXY_HTTP_PORT

args=(--ferret-port "$FERRET1" --a-port "$A_PORT" --a-http "$A_HTTP" --b-port "$B_PORT"
    --b-http "$B_HTTP" --e-http "$E_HTTP" --token "$TOKEN")
mc_run_lines admin shapes "$MC_PYTHON" "$CHECK" shapes "${args[@]}"
mc_run_lines admin http "$MC_PYTHON" "$CHECK" http "${args[@]}"
mc_run_lines admin inband "$MC_PYTHON" "$CHECK" inband "${args[@]}"

# mongosh: MC_ADMIN_CMDS through db.adminCommand; prints the replies' JSON.
mongosh_run() {
    local uri=$1
    shift
    MC_ADMIN_CMDS=$1 timeout 60 "$MONGOSH" --quiet --norc "$uri" -f "$MC_TESTDIR/admin_mongosh.js" \
        2>"$MC_TMP/mongosh.err" | sed -n 's/^RESULT //p'
}
# json_ok JSON EXPR: EXPR (Python, over r = the replies) is true.
json_ok() {
    "$MC_PYTHON" -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$1" "$2" 2>/dev/null
}
if [ ! -x "$MONGOSH" ]; then
    mc_diag "mongosh not found at $MONGOSH (tests/setup.sh installs it with npm ci)"
fi
out=$(mongosh_run "mongodb://127.0.0.1:$A_PORT/?directConnection=true" \
    '[{"mongocacheStats": 1}, {"mongocacheInvalidate": "app.books"}, {"mongocacheFlush": 1}]')
json_ok "$out" 'r[0]["ok"] == 1 and "hits" in r[0]["cache"] and r[1] == {"namespace": "app.books", "dropped": r[1]["dropped"], "ok": 1} and r[2]["ok"] == 1'
st=$?
mc_ok $st "mongosh on A: mongocacheStats, mongocacheInvalidate, mongocacheFlush answer ok 1"
[ $st -eq 0 ] || mc_diag "mongosh said: $out" "$(tail -n 5 "$MC_TMP/mongosh.err")"
out=$(mongosh_run "mongodb://127.0.0.1:$B_PORT/?directConnection=true" \
    '[{"mongocacheFlush": 1}, {"mongocacheInvalidate": 7}]')
json_ok "$out" 'r[0]["ok"] == 0 and r[0]["code"] == 13 and r[1]["ok"] == 0 and r[1]["code"] in (13, 14)'
st=$?
mc_ok $st "mongosh on B (no rights): Unauthorized (13)"
[ $st -eq 0 ] || mc_diag "mongosh said: $out"

# The answer waits for Redis to confirm the bump (issue 9); A becomes dirty here.
MONGOCACHE_HTTP_TOKEN=$TOKEN mc_start_proxy "${TIER[@]}" --admin-commands on --redis-timeout 5s
C_PORT=$PROXY_PORT C_HTTP=$PROXY_HTTP_PORT C_LOG=$PROXY_LOG C_PID=$PROXY_PID
MONGOCACHE_HTTP_TOKEN=$TOKEN mc_start_proxy --redis "redis://127.0.0.1:$(mc_free_port)" \
    --cache-key-secret "$SECRET" --admin-commands on
G_PORT=$PROXY_PORT G_HTTP=$PROXY_HTTP_PORT
mc_run_lines admin race "$MC_PYTHON" "$CHECK" race "${args[@]}" --c-port "$C_PORT" \
    --c-http "$C_HTTP" --g-port "$G_PORT" --g-http "$G_HTTP" --redis-port "$REDIS_PORT"
mc_run_lines admin stop "$MC_PYTHON" "$CHECK" stop "${args[@]}" --c-http "$C_HTTP" \
    --redis-port "$REDIS_PORT" --c-pid "$C_PID"
wait "$C_PID"
st=$?
mc_ok $st "C exits 0 after stopping with an answer waiting for Redis"
[ $st -eq 0 ] || mc_log_tail "$C_LOG"

# Authentication: FerretDB with users; D admits the user, D2 (user@app) does not.
USER_NAME=mcadmin
USER_PW="pw-$$-$RANDOM-q"
mc_start_ferretdb --test-enable-new-auth --setup-database=admin \
    --setup-username="$USER_NAME" --setup-password="$USER_PW"
mc_start_proxy --admin-users "someone@admin, $USER_NAME@admin"
D_PORT=$PROXY_PORT D_LOG=$PROXY_LOG
mc_start_proxy --admin-users "$USER_NAME@app"
D2_PORT=$PROXY_PORT
mc_start_proxy --admin-commands on
D3_PORT=$PROXY_PORT
mc_run_lines admin auth "$MC_PYTHON" "$CHECK" auth --d-port "$D_PORT" --d2-port "$D2_PORT" \
    --d3-port "$D3_PORT" --user "$USER_NAME" --password "$USER_PW"
out=$(mongosh_run "mongodb://$USER_NAME:$USER_PW@127.0.0.1:$D_PORT/?directConnection=true&authSource=admin" \
    '[{"mongocacheFlush": 1}]')
json_ok "$out" 'r[0]["ok"] == 1 and "dropped" in r[0]'
st=$?
mc_ok $st "mongosh authenticated as $USER_NAME@admin on D: mongocacheFlush ok 1"
[ $st -eq 0 ] || mc_diag "mongosh said: $out" "$(tail -n 5 "$MC_TMP/mongosh.err")"

# The audit log: one info line per action, taken or refused.
grep -E 'event=admin_action .*via=http who="?http:127\.0\.0\.1:[0-9]+"? action=invalidate namespace=app\.books result=ok dropped=2' "$A_LOG" >/dev/null
mc_ok $? "A's log: the HTTP invalidation, who (the peer), what, namespace, result, dropped"
grep -E 'event=admin_action .*via=wire who="?unauthenticated"? action=invalidate namespace=app\.books result=ok' "$A_LOG" >/dev/null
mc_ok $? "A's log: the in-band invalidation"
grep -E 'event=admin_action .*via=wire .*action=invalidate namespace=app\.books result=unconfirmed' "$A_LOG" >/dev/null &&
    grep -E 'event=admin_action .*via=wire .*action=invalidate namespace=app\.books result=ok' "$C_LOG" >/dev/null
mc_ok $? "A's log: the in-band invalidation Redis did not confirm; C's: the one it did"
grep -E 'event=admin_action .*via=wire .*action=flush namespace=\* result=refused_unauthorized' "$B_LOG" >/dev/null &&
    grep -E 'event=admin_action .*via=http .*action=flush namespace=\* result=refused_no_token_configured' "$B_LOG" >/dev/null
mc_ok $? "B's log: the refused in-band and HTTP flushes"
grep -E "event=admin_action .*via=wire who=\"?$USER_NAME@admin\"? action=flush namespace=\\* result=ok" "$D_LOG" >/dev/null
mc_ok $? "D's log: the principal who flushed"
[ "$(grep -c 'event=admin_action' "$A_LOG")" -ge 10 ] && ! grep -qF -- "$TOKEN" "$A_LOG" "$B_LOG" &&
    ! grep -q 'VAL-secret' "$A_LOG"
mc_ok $? "every action on A logged; neither the token nor a query value in any log"
mc_done
