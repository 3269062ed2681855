#!/usr/bin/env bash
# tests/integration/test_collisions.sh: hash collisions never give a wrong
# answer (RELIABILITY E8). Meaningful in a build configured with
# --enable-tiny-keys, where cache keys keep 8 bits and collide all the time;
# tests/run-all.sh builds one and runs this there. In a normal build it skips.
#
# 332 different finds (distinct filters, sorts and limits), each read twice in
# a row, run in two rounds through the proxy, interleaved with writes; every result must equal FerretDB's,
# and the proxy must have counted collisions (so the key digest comparison
# was exercised) and still served hits.
set -u

# shellcheck source=tests/integration/lib.sh source-path=SCRIPTDIR/../..
. "$(dirname "$0")/lib.sh"
mc_init

mc_start_ferretdb
mc_start_proxy --log-level info
bits=$(curl -s "http://127.0.0.1:$PROXY_HTTP_PORT/stats" |
    "$MC_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["cache"]["key_bits"])')
if [ "$bits" != 8 ]; then
    echo "1..0 # SKIP cache keys have $bits bits: run in a --enable-tiny-keys build"
    exit 0
fi

mc_plan 4
out=$MC_TMP/collisions.out
timeout 120 "$MC_PYTHON" - "$FERRET_URI" "$PROXY_URI" "$PROXY_HTTP_PORT" >"$out" 2>&1 <<'PY'
import json, sys, urllib.request
import pymongo

direct = pymongo.MongoClient(sys.argv[1])
proxy = pymongo.MongoClient(sys.argv[2])
stats_url = "http://127.0.0.1:%s/stats" % sys.argv[3]
dcol = direct.collide.items
pcol = proxy.collide.items
dcol.drop()
dcol.insert_many([{"_id": i, "a": i % 17, "b": i % 5, "s": "v%d" % i} for i in range(300)])

def queries():
    for a in range(17):
        for b in range(5):
            yield {"a": a, "b": {"$ne": b}}, [("_id", 1)], 0
        yield {"a": {"$gte": a}}, [("_id", -1)], a + 1
    for n in range(230):
        yield {"_id": {"$lt": n}}, [("a", 1), ("_id", 1)], 7

wrong = 0
total = 0
for rnd in range(2):
    for i, (flt, sort, limit) in enumerate(queries()):
        want = list(dcol.find(flt).sort(sort).limit(limit))
        # Twice in a row: the second read is a hit on the entry just stored.
        got = list(pcol.find(flt).sort(sort).limit(limit))
        again = list(pcol.find(flt).sort(sort).limit(limit))
        total += 2
        if got != want or again != want:
            wrong += 1
            if wrong < 5:
                print("# wrong result for", flt, sort, limit, file=sys.stderr)
        if rnd == 1 and i % 50 == 0:
            pcol.update_one({"_id": i % 300}, {"$inc": {"b": 1}})
cache = json.load(urllib.request.urlopen(stats_url))["cache"]
print(json.dumps({"total": total, "wrong": wrong, "collisions": cache["collisions"],
                  "hits": cache["hits"]}))
PY
rc=$?
mc_ok "$rc" "332 distinct finds, each read twice in a row, in two rounds with writes, through a proxy with 8-bit keys"
res=$(tail -n 1 "$out")
field() { printf '%s' "$res" | "$MC_PYTHON" -c "import json,sys; print(json.load(sys.stdin)['$1'])" 2>/dev/null; }
mc_is "$(field wrong)" 0 "no result differs from FerretDB's ($(field total) reads)"
coll=$(field collisions)
[ "${coll:-0}" -gt 0 ] 2>/dev/null
mc_ok $? "collisions were counted ($coll): the full-key comparison was exercised"
hits=$(field hits)
[ "${hits:-0}" -gt 0 ] 2>/dev/null
mc_ok $? "hits were still served ($hits)"
[ "$rc" = 0 ] || sed 's/^/# /' "$out" | tail -n 20
mc_done
