#!/usr/bin/env bash
# test_hello_limits.sh: with a max_message_size below the server's
# maxMessageSizeBytes, hello through the proxy advertises the proxy's limit
# (and a maxBsonObjectSize that leaves room for the command around a
# document), so that drivers split their batches to fit instead of sending
# a message the proxy must refuse by closing the connection; the proxy's own
# cursor batches fit the same limit, since drivers refuse a reply larger
# than the maxMessageSizeBytes they were told.
#
# FerretDB (maxMessageSizeBytes 48000000, maxBsonObjectSize 16777216) behind
# a proxy started with --max-message-size 1000000, and behind one with the
# default. pymongo and the Node.js driver insert 3000 documents of 1 KB in
# one call (3 MB), a bulk write of two 600 KB documents, a document just
# over the limit, and read everything back through the proxy's cursors.
set -eu
# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

LIMIT=1000000
mc_plan 16

mc_start_ferretdb
mc_start_proxy --max-message-size "$LIMIT"
SMALL_URI=$PROXY_URI
SMALL_LOG=$PROXY_LOG
mc_start_proxy
DEFAULT_URI=$PROXY_URI

cat >"$MC_TMP/limits.py" <<'EOF'
import sys

import bson
from pymongo import MongoClient, monitoring

uri, db_name, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
inserts = []


class Listener(monitoring.CommandListener):
    def started(self, e):
        if e.command_name == "insert":
            inserts.append(len(bson.encode(e.command)))

    def succeeded(self, e):
        pass

    def failed(self, e):
        pass


c = MongoClient(uri, serverSelectionTimeoutMS=10000, event_listeners=[Listener()])
h = c.admin.command("hello")
print("hello maxMessageSizeBytes=%s maxBsonObjectSize=%s maxWriteBatchSize=%s"
      % (h.get("maxMessageSizeBytes"), h.get("maxBsonObjectSize"), h.get("maxWriteBatchSize")))
if len(sys.argv) > 4:
    sys.exit(0)
coll = c[db_name].big
pad = "x" * 1000
try:
    r = coll.insert_many([{"_id": i, "pad": pad} for i in range(3000)])
    print("insert_many inserted=%d" % len(r.inserted_ids))
except Exception as e:
    print("insert_many error %s: %.120s" % (type(e).__name__, e))
# The command as monitoring shows it (documents folded into an array), not
# the wire message: whether each message fitted shows in the proxy's log.
print("insert commands=%d largest=%d" % (len(inserts), max(inserts or [0])))
try:
    coll.insert_one({"_id": "too-big", "pad": "y" * (limit - 100)})
    print("insert_one(limit-100) ok")
except Exception as e:
    print("insert_one(limit-100) error %s" % type(e).__name__)
got = list(coll.find({}, {"_id": 1}).sort("_id", 1))
print("read back n=%d ids_ok=%s" % (len(got), [d["_id"] for d in got] == list(range(3000))))
try:
    print("read back with pad n=%d" % len(list(coll.find({}))))
except Exception as e:
    print("read back with pad error %s: %.120s" % (type(e).__name__, e))
EOF

cat >"$MC_TMP/limits.js" <<'EOF'
'use strict';
const [uri, dbName, modules] = process.argv.slice(2);
const { MongoClient } = require(`${modules}/mongodb`);
(async () => {
  const client = new MongoClient(uri, { monitorCommands: true, serverSelectionTimeoutMS: 10000 });
  let inserts = 0;
  client.on('commandStarted', (ev) => { if (ev.commandName === 'insert') inserts++; });
  await client.connect();
  const coll = client.db(dbName).collection('big');
  const pad = 'x'.repeat(1000);
  const docs = [];
  for (let i = 0; i < 3000; i++) docs.push({ _id: i, pad });
  try {
    const r = await coll.insertMany(docs);
    console.log(`insertMany inserted=${r.insertedCount} commands=${inserts}`);
  } catch (e) { console.log(`insertMany error ${e.name}`); }
  inserts = 0;
  try {
    await coll.bulkWrite([
      { insertOne: { document: { _id: 'b1', pad: 'y'.repeat(600000) } } },
      { insertOne: { document: { _id: 'b2', pad: 'y'.repeat(600000) } } },
    ]);
    console.log(`bulkWrite ok commands=${inserts}`);
  } catch (e) { console.log(`bulkWrite error ${e.name}`); }
  // Without the 600 KB fields: FerretDB's batches of 101 documents would
  // exceed the proxy's limit, which the server does not know (see
  // docs/configuration.md, max_message_size).
  const all = await coll.find({}, { projection: { pad: 0 } }).toArray();
  console.log(`read back n=${all.length}`);
  await client.close();
})().catch((e) => { console.log(`error ${e.name}: ${e.message}`); process.exit(1); });
EOF

val() { # TEXT KEY
    echo "$1" | sed -n "s/.*$2=\([^ ]*\).*/\1/p" | head -n 1
}

# ---- hello ------------------------------------------------------------------
direct=$(timeout 30 "$MC_PYTHON" "$MC_TMP/limits.py" "$FERRET_URI" x "$LIMIT" hello-only 2>&1 || true)
mc_is "$direct" "hello maxMessageSizeBytes=48000000 maxBsonObjectSize=16777216 maxWriteBatchSize=100000" \
    "directly, FerretDB advertises 48000000 / 16777216 (above the proxy's limit)"
out=$(timeout 30 "$MC_PYTHON" "$MC_TMP/limits.py" "$DEFAULT_URI" x "$LIMIT" hello-only 2>&1 || true)
mc_is "$out" "$direct" "default max_message_size: the server's limits pass unchanged"
out=$(timeout 30 "$MC_PYTHON" "$MC_TMP/limits.py" "$SMALL_URI" x "$LIMIT" hello-only 2>&1 || true)
# 983552 = 1000000 - 16 KiB (a command's allowance over maxBsonObjectSize) - 64 (framing)
mc_is "$out" "hello maxMessageSizeBytes=1000000 maxBsonObjectSize=983552 maxWriteBatchSize=100000" \
    "max_message_size 1000000: hello advertises it, and maxBsonObjectSize below it"

# ---- pymongo ------------------------------------------------------------------
out=$(timeout 120 "$MC_PYTHON" "$MC_TMP/limits.py" "$SMALL_URI" lim_py "$LIMIT" 2>&1 || true)
mc_is "$(val "$out" inserted)" 3000 "pymongo: insert_many of 3 MB through a 1 MB proxy succeeds"
n=$(val "$out" commands)
st=0
[ "${n:-0}" -ge 4 ] || st=1
mc_ok "$st" "pymongo: split into $n insert commands (largest $(val "$out" largest) bytes as monitored)"
mc_is "$(echo "$out" | grep '^insert_one')" "insert_one(limit-100) error DocumentTooLarge" \
    "pymongo: a document the proxy could not take is refused by the driver (DocumentTooLarge)"
mc_is "$(val "$out" ids_ok)" True "pymongo: the 3000 documents read back through the proxy"
mc_is "$(echo "$out" | sed -n 's/^read back with pad n=//p')" 3000 \
    "pymongo: 3 MB read back through the proxy's cursor, in batches under the limit"
[ "$(echo "$out" | grep -c error)" -eq 0 ] || mc_diag "$out"

# ---- Node.js driver ---------------------------------------------------------
out=$(timeout 120 "$MC_NODE" "$MC_TMP/limits.js" "$SMALL_URI" lim_node "$MC_NODE_DIR/node_modules" 2>&1 || true)
mc_is "$(echo "$out" | sed -n 's/^insertMany inserted=\([0-9]*\).*/\1/p')" 3000 \
    "Node.js: insertMany of 3 MB through a 1 MB proxy succeeds"
n=$(echo "$out" | sed -n 's/^insertMany .*commands=//p')
st=0
[ "${n:-0}" -ge 4 ] || st=1
mc_ok "$st" "Node.js: split into $n insert commands"
mc_is "$(echo "$out" | grep '^bulkWrite')" "bulkWrite ok commands=2" \
    "Node.js: a bulk write of two 600 KB documents goes as two commands"
mc_is "$(echo "$out" | sed -n 's/^read back n=//p')" 3002 "Node.js: everything read back"
[ "$(echo "$out" | grep -c error)" -eq 0 ] || mc_diag "$out"

# ---- the proxy never had to refuse anything ---------------------------------
n=$(grep -c 'event=decoding_error' "$SMALL_LOG" || true)
mc_is "$n" 0 "no message over the limit reached the proxy (no decoding_error)"
n=$(grep -c 'event=client_close.*reason=\(decoding_error\|upstream\)' "$SMALL_LOG" || true)
mc_is "$n" 0 "no client connection was closed by the proxy"

# ---- what FerretDB holds -----------------------------------------------------
out=$(timeout 30 "$MC_PYTHON" - "$FERRET_URI" <<'EOF' 2>&1 || true
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1], directConnection=True, serverSelectionTimeoutMS=10000)
print("py=%d node=%d" % (c.lim_py.big.count_documents({}), c.lim_node.big.count_documents({})))
EOF
)
mc_is "$out" "py=3000 node=3002" "FerretDB holds every document, once"
st=0
grep -q 'event=upstream_kind upstream=standalone persona=standalone' "$SMALL_LOG" || st=1
mc_ok "$st" "the proxy saw a standalone behind it"

mc_done
