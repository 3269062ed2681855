#!/usr/bin/env bash
# tests/integration/test_advice_explain.sh: the explain commands the advice
# code builds (advice_plan_shape_command, from what advice_shape_extract
# keeps of each query) are accepted by a real server, plan without running
# anything, and the server's answers read as advice/plan.c expects.
#
# Against FerretDB v1.24.2: for a find, an aggregate with a $lookup, a
# count, a distinct, two update statements, a delete and a findAndModify,
# every explain answers ok: 1; FerretDB's answer is its SQL plan, so each
# verdict is not_mongod (the advisor falls back to the index check); and
# the collection is byte for byte what it was (the update, delete and
# findAndModify were planned, not run).
# tests/integration/advice_explain.c (built by `make check`) is the C side.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

helper=$abs_top_builddir/tests/integration/advice_explain
if [ ! -x "$helper" ]; then
    [ "${MONGOCACHE_REQUIRE_INTEGRATION:-0}" = 1 ] && mc_bail "advice_explain not built: $helper"
    echo "1..0 # SKIP advice_explain not built (make check builds it)"
    exit 0
fi

mc_start_ferretdb
mc_plan 6
out=$MC_TMP/explain.out
timeout 120 "$MC_PYTHON" - "$FERRET_URI" "$helper" >"$out" 2>&1 <<'PY'
import json, subprocess, sys
import pymongo
from bson import json_util

client = pymongo.MongoClient(sys.argv[1])
helper = sys.argv[2]
db = client.app
db.books.drop()
db.authors.drop()
db.books.insert_many([{"_id": i, "author": "a%d" % (i % 10), "year": 1900 + i % 100,
                       "title": "t%d" % i} for i in range(300)])
db.authors.insert_many([{"_id": i, "name": "a%d" % i} for i in range(10)])
db.books.create_index([("author", 1)])

def snapshot():
    return json_util.dumps(list(db.books.find().sort("_id", 1)))

before = snapshot()
bodies = [
    {"find": "books", "filter": {"author": "a1", "year": {"$gte": 1950}}, "sort": {"year": -1},
     "limit": 5, "$db": "app"},
    {"aggregate": "books", "pipeline": [{"$match": {"author": "a1"}}, {"$sort": {"year": -1}},
     {"$lookup": {"from": "authors", "localField": "author", "foreignField": "name",
                  "as": "a"}}], "cursor": {}, "$db": "app"},
    {"count": "books", "query": {"year": {"$gt": 1990}}, "$db": "app"},
    {"distinct": "books", "key": "title", "query": {"author": "a2"}, "$db": "app"},
    {"update": "books", "updates": [{"q": {"author": "a1"}, "u": {"$set": {"x": 1}}},
     {"q": {"title": "t1"}, "u": {"$set": {"year": 0}}, "multi": True}], "ordered": True,
     "$db": "app"},
    {"delete": "books", "deletes": [{"q": {"year": {"$lt": 1950}}, "limit": 0}], "$db": "app"},
    {"findAndModify": "books", "query": {"author": "a3"}, "sort": {"year": 1},
     "remove": True, "writeConcern": {"w": 1}, "$db": "app"},
]
lines = "".join(json_util.dumps(b) + "\n" for b in bodies)
made = subprocess.run([helper, "commands"], input=lines, capture_output=True, text=True,
                      check=True).stdout.splitlines()
sources = [line.split("\t")[1] for line in made]
replies, errors = [], []
for line in made:
    dbname, source, cmd = line.split("\t", 2)
    if cmd == "-":
        errors.append("%s: no command built" % source)
        continue
    command = json_util.loads(cmd)
    try:
        reply = client[dbname].command(command)
    except pymongo.errors.OperationFailure as e:
        errors.append("%s: %s" % (source, e))
        continue
    replies.append(reply)
verdicts = subprocess.run([helper, "verdict"],
                          input="".join(json_util.dumps(r) + "\n" for r in replies),
                          capture_output=True, text=True, check=True).stdout.split()
print(json.dumps({"sources": sources, "errors": errors, "ok": [r.get("ok") for r in replies],
                  "verdicts": verdicts, "unchanged": snapshot() == before,
                  "count": db.books.count_documents({})}))
PY
rc=$?
mc_ok "$rc" "explain commands built for 7 commands and sent to FerretDB"
res=$(tail -n 1 "$out")
field() { printf '%s' "$res" | "$MC_PYTHON" -c "import json,sys; print(json.dumps(json.load(sys.stdin)['$1']))" 2>/dev/null; }
mc_is "$(field sources)" '["find", "aggregate", "lookup", "count", "distinct", "update", "update", "delete", "findAndModify"]' \
    "one explain per shape: the aggregate's \$lookup and each update statement get their own"
mc_is "$(field errors)" '[]' "FerretDB accepts every explain command"
mc_is "$(field ok)" '[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]' "every explain answers ok: 1"
mc_is "$(field verdicts)" '["not_mongod", "not_mongod", "not_mongod", "not_mongod", "not_mongod", "not_mongod", "not_mongod", "not_mongod", "not_mongod"]' \
    "FerretDB's SQL plans read as not_mongod (the advisor falls back to the indexes)"
mc_is "$(field unchanged)" true "the collection is unchanged: the update, delete and findAndModify were planned, not run ($(field count) documents)"
[ "$rc" = 0 ] || sed 's/^/# /' "$out" | tail -n 20
mc_done
