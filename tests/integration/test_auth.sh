#!/usr/bin/env bash
# test_auth.sh: SCRAM authentication through mongocache.
#
# FerretDB runs with its new authentication (--test-enable-new-auth) and a
# setup user. Through the proxy, pymongo and Mongoose log in with
# SCRAM-SHA-256 and SCRAM-SHA-1 (FerretDB v1.24 supports both; PLAIN is
# refused with new auth) and with the negotiated default; a wrong password,
# an unknown user and an unauthenticated command fail through the proxy with
# exactly the error FerretDB gives directly. The proxy logs the principal
# (event=auth_success ... principal=USER@admin at debug level) and never a
# password.
#
# Then the monitor's own login (proxy/topology.c): proxies whose upstream URI carries the
# setup user's credentials, right and wrong. With the right password /stats shows the
# server and no error; with the wrong one its error says the login failed and no server
# is in use (SDAM: an authentication error marks the server Unknown); neither password is in /stats, /metrics, --check-config or the logs.
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

mc_plan 17

AUTH_USER=mcuser
AUTH_PW="mcPw-$$-$RANDOM-q7"
WRONG_PW="wrongPw-$RANDOM-z9"

mc_start_ferretdb --test-enable-new-auth --setup-database=admin \
    --setup-username="$AUTH_USER" --setup-password="$AUTH_PW"
mc_start_proxy

# ---- clients: key=value lines ----------------------------------------------
cat >"$MC_TMP/auth.py" <<'EOF'
import sys
import pymongo
from pymongo.errors import OperationFailure, PyMongoError

host, user, pw, wrong = sys.argv[1:5]
uri = "mongodb://%s/" % host


def client(**kw):
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000, **kw)


def err(e):
    if isinstance(e, OperationFailure):
        d = e.details or {}
        return "%s|%s|%s" % (e.code, d.get("codeName"), d.get("errmsg"))
    return "%s|%s" % (type(e).__name__, e)


def login(mech, password=pw, username=user):
    kw = {"authMechanism": mech} if mech else {}
    c = client(username=username, password=password, authSource="admin", **kw)
    try:
        st = c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
        coll = c["mcauth"]["t"]
        coll.replace_one({"_id": 1}, {"_id": 1, "by": mech or "default"}, upsert=True)
        got = coll.find_one({"_id": 1})["by"]
        return "ok:%s:%s" % (",".join("%s@%s" % (u["user"], u["db"]) for u in st), got)
    except PyMongoError as e:
        return "fail:" + err(e)
    finally:
        c.close()


print("sha256=" + login("SCRAM-SHA-256"))
print("sha1=" + login("SCRAM-SHA-1"))
print("default=" + login(None))
print("wrongpw=" + login("SCRAM-SHA-256", password=wrong))
print("wrongpw_sha1=" + login("SCRAM-SHA-1", password=wrong))
print("unknown_user=" + login("SCRAM-SHA-256", username="nobody_" + user))
c = client()
try:
    print("mechs=" + ",".join(c.admin.command("hello", saslSupportedMechs="admin." + user)
                               .get("saslSupportedMechs", [])))
    try:
        c["mcauth"]["t"].find_one({})
        print("unauth_find=ok")
    except PyMongoError as e:
        print("unauth_find=fail:" + err(e))
finally:
    c.close()
EOF

cat >"$MC_TMP/auth.js" <<'EOF'
'use strict';
const mongoose = require('mongoose');
const [host, user, pw, wrong] = process.argv.slice(2);

async function login(mech, password) {
  const conn = mongoose.createConnection(`mongodb://${host}/`, {
    dbName: 'mcauth', user, pass: password, authSource: 'admin', authMechanism: mech,
    serverSelectionTimeoutMS: 10000, autoIndex: false, autoCreate: false,
  });
  try {
    await conn.asPromise();
    const M = conn.model('Doc', new mongoose.Schema({ _id: Number, by: String, at: Date }), 'docs');
    await M.deleteMany({});
    await new M({ _id: 1, by: mech, at: new Date(0) }).save();
    const d = await M.findById(1).lean();
    const st = await conn.db.admin().command({ connectionStatus: 1 });
    const users = st.authInfo.authenticatedUsers.map((u) => `${u.user}@${u.db}`).join(',');
    return `ok:${users}:${d.by}:${d.at instanceof Date}`;
  } catch (e) {
    return `fail:${e.code}|${e.codeName}|${e.errorResponse ? e.errorResponse.errmsg : e.message}`;
  } finally {
    await conn.close().catch(() => {});
  }
}

(async () => {
  console.log(`sha256=${await login('SCRAM-SHA-256', pw)}`);
  console.log(`sha1=${await login('SCRAM-SHA-1', pw)}`);
  console.log(`wrongpw=${await login('SCRAM-SHA-256', wrong)}`);
})().catch((e) => { console.error(e); process.exit(1); });
EOF

run_py() { # HOST:PORT OUT
    timeout 90 "$MC_PYTHON" "$MC_TMP/auth.py" "$1" "$AUTH_USER" "$AUTH_PW" "$WRONG_PW" >"$2" 2>"$2.err" ||
        { mc_diag "auth.py against $1 failed:"; tail -n 10 "$2.err" | sed 's/^/#   /'; }
}
run_js() { # HOST:PORT OUT
    NODE_PATH=$MC_NODE_DIR/node_modules timeout 90 "$MC_NODE" "$MC_TMP/auth.js" "$1" "$AUTH_USER" "$AUTH_PW" "$WRONG_PW" \
        >"$2" 2>"$2.err" ||
        { mc_diag "auth.js against $1 failed:"; tail -n 10 "$2.err" | sed 's/^/#   /'; }
}
val() { # FILE KEY
    sed -n "s/^$2=//p" "$1" | head -n 1
}

run_py "127.0.0.1:$FERRET_PORT" "$MC_TMP/py.direct"
run_py "127.0.0.1:$PROXY_PORT" "$MC_TMP/py.proxy"
run_js "127.0.0.1:$FERRET_PORT" "$MC_TMP/js.direct"
run_js "127.0.0.1:$PROXY_PORT" "$MC_TMP/js.proxy"
P=$MC_TMP/py.proxy
D=$MC_TMP/py.direct

mc_is "$(val "$P" sha256)" "ok:$AUTH_USER@admin:SCRAM-SHA-256" "pymongo: SCRAM-SHA-256 login through mongocache, write and read back"
mc_is "$(val "$P" sha1)" "ok:$AUTH_USER@admin:SCRAM-SHA-1" "pymongo: SCRAM-SHA-1 login through mongocache, write and read back"
mc_is "$(val "$P" default)" "ok:$AUTH_USER@admin:default" "pymongo: negotiated mechanism (hello saslSupportedMechs) through mongocache"
mc_is "$(val "$P" mechs)" "$(val "$D" mechs)" "hello saslSupportedMechs through mongocache same as direct ($(val "$D" mechs))"

# failures: exactly the direct error, and the direct error is the expected one
same_error() { # KEY WANT_CODE NAME [FILE_PROXY FILE_DIRECT]
    local p=${4:-$P} d=${5:-$D} got want
    got=$(val "$p" "$1")
    want=$(val "$d" "$1")
    case $want in
        "fail:$2|"*) mc_is "$got" "$want" "$3" ;;
        *) mc_ok 1 "$3"; mc_diag "direct result is not error $2: $want" ;;
    esac
}
same_error wrongpw 18 "pymongo: wrong password fails through mongocache with the direct error (code/codeName/errmsg)"
same_error unknown_user 18 "pymongo: unknown user fails through mongocache with the direct error"
same_error unauth_find 13 "pymongo: unauthenticated find fails through mongocache with the direct error"

mc_is "$(val "$MC_TMP/js.proxy" sha256)" "ok:$AUTH_USER@admin:SCRAM-SHA-256:true" "mongoose: SCRAM-SHA-256 login through mongocache, save and find"
mc_is "$(val "$MC_TMP/js.proxy" sha1)" "ok:$AUTH_USER@admin:SCRAM-SHA-1:true" "mongoose: SCRAM-SHA-1 login through mongocache, save and find"
same_error wrongpw 18 "mongoose: wrong password fails through mongocache with the direct error" \
    "$MC_TMP/js.proxy" "$MC_TMP/js.direct"
same_error wrongpw_sha1 18 "pymongo: wrong password (SCRAM-SHA-1) fails through mongocache with the direct error"

# ---- the proxy log ---------------------------------------------------------------
mc_stop_proxy
st=0
grep -Eq "event=auth_success( .*)? principal=$AUTH_USER@admin( |$)" "$PROXY_LOG" || st=1
mc_ok "$st" "proxy log (debug) has event=auth_success principal=$AUTH_USER@admin"
[ "$st" -eq 0 ] || { grep -i auth "$PROXY_LOG" | head -n 10 | cut -c1-300 | sed 's/^/#   /'; }

st=0
[ -s "$PROXY_LOG" ] || st=1
if grep -F -n -e "$AUTH_PW" -e "$WRONG_PW" "$PROXY_LOG" >"$MC_TMP/leak" 2>/dev/null; then st=1; fi
mc_ok "$st" "no password (right or wrong) anywhere in the proxy log ($(wc -l <"$PROXY_LOG") lines)"
[ ! -s "$MC_TMP/leak" ] || head -n 5 "$MC_TMP/leak" | cut -c1-300 | sed 's/^/#   /'

# ---- the monitor logs in with the upstream URI's credentials -----------------------
UP="127.0.0.1:$FERRET_PORT/?authSource=admin&heartbeatFrequencyMS=500"
MC_PROXY_UPSTREAM="mongodb://$AUTH_USER:$AUTH_PW@$UP" mc_start_proxy
GOOD_HTTP=$PROXY_HTTP_PORT GOOD_LOG=$PROXY_LOG GOOD_PID=$PROXY_PID
MC_PROXY_UPSTREAM="mongodb://$AUTH_USER:$WRONG_PW@$UP" mc_start_proxy
BAD_HTTP=$PROXY_HTTP_PORT BAD_LOG=$PROXY_LOG
# prints "<right password's error>|<wrong one's>|<targets>|<targets>" once both checked;
# writes every /stats and /metrics text to monitor.texts for the password search
monitor=$(timeout 30 "$MC_PYTHON" - "$MC_TESTDIR" "$GOOD_HTTP" "$BAD_HTTP" "$MC_TMP" <<'PY' 2>&1 || true
import sys, time
sys.path.insert(0, sys.argv[1])
import mctest
good, bad, tmp = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for _ in range(200):
    g = mctest.stats(good).get("topology", {})
    b = mctest.stats(bad).get("topology", {})
    if g.get("targets") and b.get("error"):
        break
    time.sleep(0.05)
with open(tmp + "/monitor.texts", "w") as f:
    for port in (good, bad):
        for path in ("/stats", "/metrics"):
            f.write(mctest.http(port, path)[2].decode(errors="replace") + "\n")
berr = b.get("error", "")
print("%s|%s|%d|%d" % (g.get("error"), "login failed" if "Authentication failed" in berr else berr,
                       len(g.get("targets", [])), len(b.get("targets", []))))
PY
)
mc_is "$monitor" "|login failed|1|0" \
    "the monitor logs in with the upstream URI's credentials: the server in use with the right password; with a wrong one 'Authentication failed' and no server in use (a failed login marks it Unknown, as SDAM says)"
"$MC_MONGOCACHE" --upstream "mongodb://$AUTH_USER:$AUTH_PW@$UP" --check-config \
    >"$MC_TMP/check.out" 2>&1 || true
st=0
grep -q "mongodb://$AUTH_USER:<redacted>@" "$MC_TMP/check.out" || st=1
mc_ok "$st" "--check-config shows the upstream with its password redacted"
mc_stop_proxy # the wrong password's: its log is whole
st=0
grep -q 'level=warn event=upstream_topology .*upstream login: Authentication failed' "$BAD_LOG" || st=1
mc_ok "$st" "the failed login is logged (event=upstream_topology at warn)"
PROXY_PID=$GOOD_PID
mc_stop_proxy
st=0
cat "$GOOD_LOG" "$BAD_LOG" "$MC_TMP/check.out" "$MC_TMP/monitor.texts" >"$MC_TMP/shown"
grep -q "Authentication failed" "$MC_TMP/monitor.texts" || st=1 # the texts hold the error
if grep -F -n -e "$AUTH_PW" -e "$WRONG_PW" "$MC_TMP/shown" >"$MC_TMP/leak2"; then st=1; fi
mc_ok "$st" "no password of the monitor's in the logs, /stats, /metrics or --check-config"
[ ! -s "$MC_TMP/leak2" ] || head -n 5 "$MC_TMP/leak2" | cut -c1-300 | sed 's/^/#   /'

mc_done
