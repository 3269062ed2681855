#!/usr/bin/env bash
# test_persona.sh: mongocache answers hello as a mongos, so drivers given only
# the proxy's address (no directConnection) treat it as a sharded cluster and
# never connect to the upstream themselves, even when the upstream is a
# replica set that advertises its own host list.
#
# FerretDB runs with --repl-set-name rs0 (its hello then carries setName and
# hosts). The official Node.js driver, Mongoose and pymongo each connect to
# the proxy's URI with retryWrites=true, run a few operations including
# retryable writes, and stay connected for a few seconds running a hello
# loop, while `ss -tnp` shows which process holds which connection.
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
command -v ss >/dev/null 2>&1 || mc_bail "ss not found (iproute2; run tests/setup.sh)"

CLIENTS="node-driver mongoose pymongo"
mc_plan 23

# DEBUG: FerretDB logs every request, which shows what the proxy forwarded.
mc_start_ferretdb --repl-set-name=rs0 --log-level=DEBUG
mc_start_proxy

# ---- the direct hello has the replica-set fields (else this test proves nothing)
direct=$(timeout 20 "$MC_PYTHON" - "$FERRET_URI" <<'EOF' 2>&1 || true
import sys, pymongo
h = pymongo.MongoClient(sys.argv[1], directConnection=True, serverSelectionTimeoutMS=10000).admin.command("hello")
print("setName=%s hosts=%s msg=%s" % (h.get("setName"), ",".join(h.get("hosts", [])), h.get("msg")))
EOF
)
mc_is "$direct" "setName=rs0 hosts=127.0.0.1:$FERRET_PORT msg=None" \
    "direct hello from FerretDB has setName rs0 and hosts"

# ---- client scripts -------------------------------------------------------
# Each: CLIENT URI DBNAME READY_FILE SECONDS. Prints key=value lines.
cat >"$MC_TMP/persona.js" <<'EOF'
'use strict';
const [mode, uri, dbName, ready, secs] = process.argv.slice(2);
const fs = require('fs');
const { MongoClient } = require('mongodb');
const mongoose = require('mongoose');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const REPL = ['setName', 'hosts', 'primary', 'me', 'setVersion', 'passives', 'arbiters', 'electionId'];
const out = {};
const writes = [];

(async () => {
  const opts = { monitorCommands: true, retryWrites: true, serverSelectionTimeoutMS: 10000, appName: `persona-${mode}` };
  let client, db, conn;
  if (mode === 'mongoose') {
    conn = mongoose.createConnection(uri, { ...opts, dbName, autoIndex: false });
    client = conn.getClient();
  } else {
    client = new MongoClient(uri, opts);
  }
  client.on('commandStarted', (ev) => {
    if (['insert', 'update', 'delete', 'findAndModify'].includes(ev.commandName)) {
      writes.push(`${ev.commandName}:${ev.command.txnNumber !== undefined ? 'txn' : 'notxn'}`);
    }
  });
  if (mode === 'mongoose') await conn.asPromise(); else await client.connect();
  db = client.db(dbName);

  const h = await db.admin().command({ hello: 1 });
  out.hello_msg = h.msg;
  out.hello_replset_fields = REPL.filter((k) => k in h).join(',') || 'none';
  out.topology = client.topology.description.type;

  if (mode === 'mongoose') {
    const Thing = conn.model('Thing', new mongoose.Schema({ _id: Number, name: String, at: Date }));
    await Thing.create({ _id: 1, name: 'one', at: new Date(0) });
    await Thing.updateOne({ _id: 1 }, { $set: { name: 'uno' } });
    const s = await conn.startSession();
    await Thing.create([{ _id: 2, name: 'two' }], { session: s });
    await s.endSession();
    const got = await Thing.find({}).sort({ _id: 1 }).lean();
    out.read_back = got.map((d) => `${d._id}:${d.name}`).join(',');
    out.writes = writes.join(','); // deleteMany is not retryable: not counted
    await Thing.deleteMany({});
  } else {
    const coll = db.collection('things');
    await coll.insertOne({ _id: 1, name: 'one' });
    await coll.updateOne({ _id: 1 }, { $set: { name: 'uno' } });
    const s = client.startSession();
    await coll.insertOne({ _id: 2, name: 'two' }, { session: s });
    await coll.findOneAndUpdate({ _id: 2 }, { $set: { name: 'dos' } }, { session: s });
    await s.endSession();
    const got = await coll.find({}).sort({ _id: 1 }).toArray();
    out.read_back = got.map((d) => `${d._id}:${d.name}`).join(',');
    out.writes = writes.join(','); // deleteMany is not retryable: not counted
    await coll.deleteMany({});
  }

  // stay connected, hello loop, while the shell looks at the sockets
  fs.writeFileSync(ready, 'ready\n');
  const until = Date.now() + Number(secs) * 1000;
  let hellos = 0;
  while (Date.now() < until) {
    const r = await db.admin().command({ hello: 1 });
    if (r.msg === 'isdbgrid') hellos++;
    await db.collection('things').findOne({});
    await sleep(200);
  }
  out.hello_loop_isdbgrid = hellos > 0 ? 'yes' : 'no';
  if (mode === 'mongoose') await conn.close(); else await client.close();
  for (const [k, v] of Object.entries(out)) console.log(`${k}=${v}`);
})().catch((e) => {
  for (const [k, v] of Object.entries(out)) console.log(`${k}=${v}`);
  console.error(e);
  process.exit(1);
});
EOF

cat >"$MC_TMP/persona.py" <<'EOF'
import sys, time
import pymongo
from pymongo import monitoring

uri, db_name, ready, secs = sys.argv[1:5]
REPL = ["setName", "hosts", "primary", "me", "setVersion", "passives", "arbiters", "electionId"]
writes = []
out = {}


class L(monitoring.CommandListener):
    def started(self, e):
        if e.command_name in ("insert", "update", "delete", "findAndModify"):
            writes.append("%s:%s" % (e.command_name, "txn" if "txnNumber" in e.command else "notxn"))

    def succeeded(self, e):
        pass

    def failed(self, e):
        pass


try:
    c = pymongo.MongoClient(uri, retryWrites=True, serverSelectionTimeoutMS=10000,
                            event_listeners=[L()], appname="persona-pymongo")
    db = c[db_name]
    h = db.command("hello")
    out["hello_msg"] = h.get("msg")
    out["hello_replset_fields"] = ",".join(k for k in REPL if k in h) or "none"
    out["topology"] = c.topology_description.topology_type_name
    coll = db.things
    coll.insert_one({"_id": 1, "name": "one"})
    coll.update_one({"_id": 1}, {"$set": {"name": "uno"}})
    with c.start_session() as s:
        coll.insert_one({"_id": 2, "name": "two"}, session=s)
        coll.find_one_and_update({"_id": 2}, {"$set": {"name": "dos"}}, session=s)
    out["read_back"] = ",".join("%s:%s" % (d["_id"], d["name"]) for d in coll.find().sort("_id"))
    out["writes"] = ",".join(writes)  # delete_many is not retryable: not counted
    coll.delete_many({})
    open(ready, "w").write("ready\n")
    until = time.time() + float(secs)
    hellos = 0
    while time.time() < until:
        if db.command("hello").get("msg") == "isdbgrid":
            hellos += 1
        coll.find_one({})
        time.sleep(0.2)
    out["hello_loop_isdbgrid"] = "yes" if hellos else "no"
    c.close()
finally:
    for k, v in out.items():
        print("%s=%s" % (k, v))
EOF

val() { # FILE KEY
    sed -n "s/^$2=//p" "$1" | head -n 1
}

# ---- each client, through the proxy -------------------------------------------
for name in $CLIENTS; do
    out=$MC_TMP/persona.$name.out
    err=$MC_TMP/persona.$name.err
    ready=$MC_TMP/persona.$name.ready
    socks=$MC_TMP/persona.$name.ss
    uri="mongodb://127.0.0.1:$PROXY_PORT/?retryWrites=true"
    db="mcp_${name//-/_}_$$"
    case $name in
        pymongo) "$MC_PYTHON" "$MC_TMP/persona.py" "$uri" "$db" "$ready" 3 >"$out" 2>"$err" & ;;
        node-driver) NODE_PATH=$MC_NODE_DIR/node_modules "$MC_NODE" "$MC_TMP/persona.js" driver "$uri" "$db" "$ready" 3 >"$out" 2>"$err" & ;;
        mongoose) NODE_PATH=$MC_NODE_DIR/node_modules "$MC_NODE" "$MC_TMP/persona.js" mongoose "$uri" "$db" "$ready" 3 >"$out" 2>"$err" & ;;
    esac
    cpid=$!
    mc_track "$cpid"

    # while it is connected: two socket snapshots, a second apart
    : >"$socks"
    for _ in $(seq 1 300); do
        [ -f "$ready" ] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -f "$ready" ]; then
        sleep 0.5
        ss -Htnp >>"$socks" 2>&1 || true
        sleep 1
        ss -Htnp >>"$socks" 2>&1 || true
    fi
    for _ in $(seq 1 300); do
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$cpid" 2>/dev/null || true
    st=0; wait "$cpid" || st=$?
    mc_ok "$st" "$name: connects to the proxy's address and runs its operations"
    if [ "$st" -ne 0 ]; then
        tail -n 15 "$err" | cut -c1-300 | sed 's/^/#   /'
    fi

    mc_is "$(val "$out" hello_msg)" isdbgrid "$name: hello through mongocache has msg isdbgrid"
    mc_is "$(val "$out" hello_replset_fields)" none \
        "$name: hello through mongocache has no setName/hosts/primary/me"
    mc_is "$(val "$out" topology)" Sharded "$name: driver sees a sharded topology"
    # every write is retryable: the driver sent txnNumber with each one
    w=$(val "$out" writes)
    st=0
    [ -n "$w" ] || st=1
    case ",$w," in *notxn*) st=1 ;; esac
    mc_ok "$st" "$name: retryable writes carry txnNumber ($w)"
    [ "$st" -eq 0 ] || mc_diag "read back: $(val "$out" read_back)"

    # sockets: the client talks to the proxy only; the proxy talks to FerretDB
    to_ferret=$(awk -v p="pid=$cpid," -v peer="127.0.0.1:$FERRET_PORT" '$5 == peer && index($0, p)' "$socks" | wc -l)
    to_proxy=$(awk -v p="pid=$cpid," -v peer="127.0.0.1:$PROXY_PORT" '$5 == peer && index($0, p)' "$socks" | wc -l)
    proxy_up=$(awk -v p="pid=$PROXY_PID," -v peer="127.0.0.1:$FERRET_PORT" '$5 == peer && index($0, p)' "$socks" | wc -l)
    st=0
    [ "$to_proxy" -gt 0 ] && [ "$proxy_up" -gt 0 ] && [ "$to_ferret" -eq 0 ] || st=1
    mc_ok "$st" "$name: no connection from the client to FerretDB, only via the proxy (client->proxy $to_proxy, proxy->FerretDB $proxy_up, client->FerretDB $to_ferret)"
    if [ "$st" -ne 0 ]; then
        mc_diag "client pid $cpid, proxy pid $PROXY_PID, FerretDB 127.0.0.1:$FERRET_PORT, proxy 127.0.0.1:$PROXY_PORT; sockets:"
        grep -E ":($FERRET_PORT|$PROXY_PORT) " "$socks" | sort -u | head -n 20 | sed 's/^/#   /'
    fi
    mc_is "$(val "$out" hello_loop_isdbgrid)" yes "$name: hello loop while connected kept answering as mongos"
done

# The writes reached FerretDB with their txnNumber: FerretDB's DEBUG log
# dumps every request it receives, and only the proxy connects to it.
n=$(grep -c '"txnNumber"' "$FERRET_LOG" || true)
st=0; [ "$n" -ge 3 ] || st=1
mc_ok "$st" "FerretDB received writes with txnNumber through mongocache ($n requests)"

mc_stop_proxy
mc_done
