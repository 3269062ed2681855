#!/usr/bin/env bash
# test_persona.sh: the persona mongocache gives itself in hello follows what
# is behind it (proxy/hello.h): a replica-set member is presented as a
# mongos, so that drivers given only the proxy's address never discover the
# members and connect around it; a standalone is presented as a standalone,
# so that drivers add nothing a standalone mongod refuses (a mongos persona
# makes them add txnNumber to every retryable write, which a standalone
# mongod rejects with code 20).
#
# 1. FerretDB with --repl-set-name rs0 (its hello then carries setName and
#    hosts). The official Node.js driver, Mongoose and pymongo each connect
#    to the proxy's URI with retryWrites=true, run a few operations
#    including retryable writes, and stay connected for a few seconds
#    running a hello loop, while `ss -tnp` shows which process holds which
#    connection.
# 2. The invariant: for the same workload, drivers send the same commands
#    with the same fields through the proxy as directly. Each client
#    (persona_transcript.js/.py) runs once against FerretDB and once through
#    the proxy, for FerretDB standalone and with --repl-set-name, recording
#    every command it sends (command monitoring) with its top-level field
#    names (txnNumber, lsid, $clusterTime, $readPreference, readConcern,
#    writeConcern, ...). The transcripts must be equal, but for the
#    differences listed below with their specification.
# 3. The legacy handshake (OP_QUERY isMaster, answered with OP_REPLY)
#    follows the same rules as hello over OP_MSG.
# 4. A loadBalanced client behind a standalone: what the driver sends (the
#    limitation docs/compatibility.md describes).
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init
command -v ss >/dev/null 2>&1 || mc_bail "ss not found (iproute2; run tests/setup.sh)"

CLIENTS="node-driver mongoose pymongo"
mc_plan 56

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

RS_FERRET_URI=$FERRET_URI
RS_PROXY_URI=$PROXY_URI
RS_PROXY_LOG=$PROXY_LOG

# ---- 2. the same commands and fields through the proxy as directly ---------
# A standalone FerretDB and a proxy in front of it, beside the replica-set
# pair above.
mc_start_ferretdb
SA_FERRET_URI=$FERRET_URI
mc_start_proxy
SA_PROXY_URI=$PROXY_URI
SA_PROXY_LOG=$PROXY_LOG

transcript() { # CLIENT URI DB OUT
    case $1 in
        node-driver) timeout 60 "$MC_NODE" "$MC_NODE_DIR/persona_transcript.js" driver "$2" "$3" ;;
        mongoose) timeout 60 "$MC_NODE" "$MC_NODE_DIR/persona_transcript.js" mongoose "$2" "$3" ;;
        pymongo) timeout 60 "$MC_PYTHON" "$MC_TESTDIR/python/persona_transcript.py" "$2" "$3" ;;
    esac >"$4" 2>"$4.err"
}

# The expected differences, all in the topology the driver builds, none in
# what it sends:
# - standalone: none. Directly the driver sees a Standalone in a Single
#   topology; through the proxy it must see the same, so it neither adds
#   txnNumber (retryable-writes.md, "Determining Retryable Write Support":
#   "... and the server type is not standalone") nor $readPreference
#   (server-selection.md, "Topology type: Single": "Type Standalone:
#   clients MUST NOT send the read preference to the server").
# - replica-set member: directly (no directConnection) the driver sees an
#   RSPrimary and builds a ReplicaSetWithPrimary topology; through the
#   proxy, a Mongos and a Sharded topology
#   (server-discovery-and-monitoring.md, "TopologyType table": Mongos in
#   Unknown -> "Set topology type to Sharded"). The commands stay the same:
#   both server types support retryable writes (txnNumber), and a primary
#   read preference is sent to neither (server-selection.md, "Passing read
#   preference to mongos and load balancers": "For mode 'primary', drivers
#   MUST NOT set $readPreference"; a replica set's primary gets
#   $readPreference for the other modes only, as a mongos does). Reached
#   with directConnection=true, the upstream member would get
#   $readPreference primaryPreferred on every read ("Topology type:
#   Single", other types); the proxy is never presented that way.
for variant in standalone rs; do
    if [ "$variant" = standalone ]; then
        direct_uri=$SA_FERRET_URI proxy_uri=$SA_PROXY_URI
        want_topology="Single/Single"
    else
        direct_uri=$RS_FERRET_URI proxy_uri=$RS_PROXY_URI
        want_topology="ReplicaSetWithPrimary/Sharded"
    fi
    for name in $CLIENTS; do
        d=$MC_TMP/tx.$variant.$name.direct
        p=$MC_TMP/tx.$variant.$name.proxy
        db="tx_${variant}_${name//-/_}"
        st=0
        transcript "$name" "$direct_uri" "${db}_direct" "$d" || st=$?
        transcript "$name" "$proxy_uri" "${db}_proxy" "$p" || st=$?
        errors=$(cat "$d" "$p" | grep -c 'outcome=error' || true)
        [ "$st" -eq 0 ] && [ "$errors" -eq 0 ] || st=1
        mc_ok "$st" "$variant, $name: the workload ran directly and through the proxy, every step ok"
        if [ "$st" -ne 0 ]; then
            grep -h 'outcome=error' "$d" "$p" | head -n 5 | sed 's/^/#   /'
            tail -n 5 "$d.err" "$p.err" | cut -c1-300 | sed 's/^/#   /'
        fi

        got="$(sed -n 's/^topology=//p' "$d")/$(sed -n 's/^topology=//p' "$p")"
        mc_is "$got" "$want_topology" "$variant, $name: topology directly/through the proxy"

        # The direct transcript shows the server type's rule (else the
        # comparison below would prove nothing).
        n_cmds=$(grep -c ' fields=' "$d" || true)
        n_txn=$(grep -c ' fields=.*txnNumber' "$d" || true)
        ins_txn=$(grep -m 1 ' insert fields=' "$d" | grep -c 'txnNumber' || true)
        st=0
        [ "$n_cmds" -ge 12 ] || st=1
        if [ "$variant" = standalone ]; then
            [ "$n_txn" -eq 0 ] || st=1
            what="none with txnNumber"
        else
            [ "$ins_txn" -eq 1 ] || st=1
            what="$n_txn with txnNumber, the first insert among them"
        fi
        mc_ok "$st" "$variant, $name: directly, $n_cmds commands, $what"

        if diff <(sed 1d "$d") <(sed 1d "$p") >"$p.diff"; then st=0; else st=1; fi
        mc_ok "$st" "$variant, $name: same commands and fields through the proxy as directly"
        if [ "$st" -ne 0 ]; then
            mc_diag "< directly   > through the proxy"
            head -n 20 "$p.diff" | sed 's/^/#   /'
        fi
    done
done

# ---- 3. the legacy handshake follows the same rules --------------------------
# OP_QUERY isMaster on admin.$cmd gets an OP_REPLY; hello over OP_MSG an
# OP_MSG. Prints one line per opcode: the reply's opcode and the fields
# that decide the server type.
cat >"$MC_TMP/handshake.py" <<'EOF'
import socket, struct, sys
import bson

host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)


def recv_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk
    return buf


def roundtrip(opcode, payload, request_id):
    s.sendall(struct.pack("<iiii", 16 + len(payload), request_id, 0, opcode) + payload)
    length, _, response_to, op = struct.unpack("<iiii", recv_exact(16))
    body = recv_exact(length - 16)
    assert response_to == request_id
    if op == 1:  # OP_REPLY: flags, cursorID, startingFrom, numberReturned, documents
        doc = bson.decode(body[20:])
    else:  # OP_MSG: flagBits, section kind 0, body
        doc = bson.decode(body[5:])
    return op, doc


def show(label, op, doc):
    keys = ("msg", "setName", "hosts", "topologyVersion", "isreplicaset")
    print("%s op=%d %s ok=%s" % (label, op, " ".join(
        "%s=%s" % (k, "-" if k not in doc else doc[k]) for k in keys), doc.get("ok")))


query = bson.encode({"isMaster": 1, "helloOk": True})
payload = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + query
show("opquery", *roundtrip(2004, payload, 1))
msg = struct.pack("<I", 0) + b"\x00" + bson.encode({"hello": 1, "$db": "admin"})
show("opmsg", *roundtrip(2013, msg, 2))
EOF
for variant in standalone rs; do
    if [ "$variant" = standalone ]; then
        uri=$SA_PROXY_URI msg=-
    else
        uri=$RS_PROXY_URI msg=isdbgrid
    fi
    addr=${uri#mongodb://}
    addr=${addr%/}
    out=$("$MC_PYTHON" "$MC_TMP/handshake.py" "$addr" 2>&1 || true)
    mc_is "$(echo "$out" | grep '^opquery')" \
        "opquery op=1 msg=$msg setName=- hosts=- topologyVersion=- isreplicaset=- ok=1.0" \
        "$variant: OP_QUERY isMaster through the proxy gets an OP_REPLY with the $variant persona"
    mc_is "$(echo "$out" | grep '^opmsg')" \
        "opmsg op=2013 msg=$msg setName=- hosts=- topologyVersion=- isreplicaset=- ok=1.0" \
        "$variant: hello over OP_MSG through the proxy gets the same persona"
done

# ---- 4. loadBalanced behind a standalone: the documented limitation --------
# A loadBalanced driver gets the proxy's serviceId (load-balancers.md: the
# driver MUST throw without it) and then assumes retryable writes whatever
# is behind the load balancer ("When the TopologyType is LoadBalanced,
# sessions are always supported"): it adds txnNumber, which FerretDB
# accepts and a standalone mongod refuses (code 20). retryWrites=false is
# the way out; the proxy warns once.
cat >"$MC_TMP/lb.js" <<'EOF'
'use strict';
const { MongoClient } = require(process.argv[4] + '/node_modules/mongodb');
(async () => {
  const client = new MongoClient(process.argv[2], { monitorCommands: true, serverSelectionTimeoutMS: 10000 });
  const seen = [];
  client.on('commandStarted', (ev) => {
    if (ev.commandName === 'insert') seen.push(ev.command.txnNumber !== undefined ? 'txn' : 'notxn');
  });
  await client.connect();
  const coll = client.db(process.argv[3]).collection('lb');
  await coll.insertOne({ n: 1 });
  const n = await coll.countDocuments({});
  console.log(`topology=${client.topology.description.type} insert=${seen.join(',')} count=${n}`);
  await client.close();
})().catch((e) => { console.log(`error=${e.name}: ${e.message}`); process.exit(1); });
EOF
lb_base=${SA_PROXY_URI%/}
out=$(timeout 60 "$MC_NODE" "$MC_TMP/lb.js" "$lb_base/?loadBalanced=true" lb_default "$MC_NODE_DIR" 2>&1 || true)
mc_is "$out" "topology=LoadBalanced insert=txn count=1" \
    "loadBalanced=true through the proxy to a standalone: connects, and the driver adds txnNumber"
out=$(timeout 60 "$MC_NODE" "$MC_TMP/lb.js" "$lb_base/?loadBalanced=true&retryWrites=false" lb_noretry "$MC_NODE_DIR" 2>&1 || true)
mc_is "$out" "topology=LoadBalanced insert=notxn count=1" \
    "loadBalanced=true&retryWrites=false: no txnNumber"
n=$(grep -c 'event=load_balanced_standalone' "$SA_PROXY_LOG" || true)
mc_is "$n" 1 "the proxy warned once that a loadBalanced client is behind a standalone"

# ---- the proxy logs what it found behind it, once ----------------------------
n=$(grep -c 'event=upstream_kind upstream=standalone persona=standalone' "$SA_PROXY_LOG" || true)
mc_is "$n" 1 "standalone upstream: logged once as upstream=standalone persona=standalone"
n=$(grep -c 'event=upstream_kind upstream=rs_primary persona=mongos' "$RS_PROXY_LOG" || true)
mc_is "$n" 1 "replica-set upstream: logged once as upstream=rs_primary persona=mongos"

mc_done
