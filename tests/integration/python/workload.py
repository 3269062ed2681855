#!/usr/bin/env python3
"""tests/integration/python/workload.py URI DBNAME

Scripted workload with pymongo. Prints one canonical Extended JSON line per
operation (the result or the error, and the commands pymongo sent for it,
from command monitoring) so that a run straight against FerretDB and a run
through mongocache can be diffed. Normalized: cluster/operation times,
connection ids, cursor ids (nonzero -> "<cursorId>"), the database name
("<db>"). Every _id is fixed. Exit status 0 when the transcript was written.
"""
import datetime
import json
import re
import sys

import bson
from bson import json_util
from bson.binary import Binary
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo import (ASCENDING, DESCENDING, DeleteMany, DeleteOne, IndexModel,
                     InsertOne, MongoClient, ReplaceOne, ReturnDocument,
                     UpdateMany, UpdateOne, monitoring)
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

DROP_KEYS = {"$clusterTime", "operationTime", "connectionId", "localTime",
             "electionId", "lastWrite", "opTime"}
CURSOR_ID_LISTS = {"cursorsKilled", "cursorsNotFound", "cursorsAlive", "cursorsUnknown"}
IGNORE_CMDS = {"hello", "isMaster", "ismaster", "ping", "endSessions",
               "saslStart", "saslContinue"}
OPTS = json_util.CANONICAL_JSON_OPTIONS

seen_cursor_ids = set()
lines = []
cmds = None


def cursor_id(v):
    if v in (0, None):
        return 0
    seen_cursor_ids.add(str(int(v)))
    return "<cursorId>"


def norm(v, key=None, parent=None):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in DROP_KEYS:
                continue
            if k == "id" and key == "cursor":
                out[k] = cursor_id(x)
            elif k in CURSOR_ID_LISTS and isinstance(x, list):
                out[k] = [cursor_id(i) for i in x]
            else:
                out[k] = norm(x, k, key)
        return out
    if isinstance(v, (list, tuple)):
        return [norm(x, None, key) for x in v]
    return v


def ejson(v):
    # canonical EJSON text -> JSON tree, so the line is one JSON document
    return json.loads(json_util.dumps(norm(v), json_options=OPTS))


class Listener(monitoring.CommandListener):
    def started(self, event):
        pass

    def succeeded(self, event):
        if cmds is not None and event.command_name not in IGNORE_CMDS:
            cmds.append(event.command_name)

    def failed(self, event):
        if cmds is not None and event.command_name not in IGNORE_CMDS:
            cmds.append(event.command_name + "!")


def err_info(e):
    o = {"type": type(e).__name__}
    if isinstance(e, BulkWriteError):
        d = e.details
        o["details"] = {
            "writeErrors": [{"index": w["index"], "code": w["code"], "errmsg": w["errmsg"]}
                            for w in d.get("writeErrors", [])],
            "nInserted": d.get("nInserted"), "nUpserted": d.get("nUpserted"),
            "nMatched": d.get("nMatched"), "nModified": d.get("nModified"),
            "nRemoved": d.get("nRemoved"), "upserted": d.get("upserted"),
        }
    elif isinstance(e, OperationFailure):
        o["code"] = e.code
        o["codeName"] = (e.details or {}).get("codeName")
        o["errmsg"] = (e.details or {}).get("errmsg")
        o["details"] = e.details
    else:
        o["message"] = str(e)
    if getattr(e, "_error_labels", None):
        o["labels"] = sorted(e._error_labels)
    return ejson(o)


def step(op, fn):
    global cmds
    cmds = []
    rec = {"n": len(lines) + 1, "op": op}
    try:
        rec["result"] = ejson(fn())
    except PyMongoError as e:
        rec["error"] = err_info(e)
    rec["cmds"] = cmds
    cmds = None
    lines.append(rec)


def finish(db_name):
    text = "".join(json.dumps(l, separators=(",", ":"), ensure_ascii=False) + "\n" for l in lines)
    text = text.replace(db_name, "<db>")
    for cid in seen_cursor_ids:
        text = re.sub(r"\b%s\b" % cid, "<cursorId>", text)
    sys.stdout.write(text)


def res(r):
    """pymongo result objects -> plain dicts, with the raw server reply."""
    name = type(r).__name__
    if name == "InsertOneResult":
        return {"inserted_id": r.inserted_id, "acknowledged": r.acknowledged}
    if name == "InsertManyResult":
        return {"inserted_ids": r.inserted_ids, "acknowledged": r.acknowledged}
    if name in ("UpdateResult", "DeleteResult"):
        return {"raw": r.raw_result}
    if name == "BulkWriteResult":
        return {"bulk": r.bulk_api_result}
    return r


UTC = datetime.timezone.utc
ITEMS = [
    {"_id": 1, "name": "apple", "qty": 5, "price": 1.25, "tags": ["fruit", "red"],
     "made": datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)},
    {"_id": 2, "name": "banana", "qty": 12, "price": 0.5, "tags": ["fruit", "yellow"],
     "made": datetime.datetime(2024, 2, 3, tzinfo=UTC)},
    {"_id": 3, "name": "carrot", "qty": 0, "price": 0.75, "tags": ["vegetable"],
     "made": datetime.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)},
    {"_id": 4, "name": "durian", "qty": 1, "price": 9.99, "tags": [], "made": None},
    {"_id": 5, "name": "eggplant", "qty": 7, "price": 2.0, "tags": ["vegetable", "purple"],
     "nested": {"a": {"b": [1, {"c": 2}]}}},
    {"_id": 6, "name": "fig", "qty": 30, "price": 3.5, "tags": ["fruit"], "big": Int64(1 << 40)},
    {"_id": 7, "name": "grape", "qty": 3, "price": 4.0, "tags": ["fruit", "purple"],
     "bin": Binary(b"grape\x00\xff", 0)},
    {"_id": 8, "name": "honeydew", "qty": 2, "price": 6.25, "tags": ["fruit", "green"],
     "ref": ObjectId("65a1b2c3d4e5f60718293a4b")},
]


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: workload.py URI DBNAME\n")
        return 2
    uri, db_name = sys.argv[1], sys.argv[2]
    client = MongoClient(uri, event_listeners=[Listener()], serverSelectionTimeoutMS=10000,
                         appname="mongocache-workload-pymongo", tz_aware=True)
    try:
        run(client, db_name)
    finally:
        client.close()
        finish(db_name)
    return 0


def run(client, db_name):
    db = client[db_name]
    items = db["items"]
    big = db["big"]

    step("drop_database(fresh)", lambda: client.drop_database(db_name))

    # ---- inserts -------------------------------------------------------------
    step("insert_one", lambda: res(items.insert_one(dict(ITEMS[0]))))
    step("insert_one(duplicate _id)", lambda: res(items.insert_one({"_id": 1, "name": "dup"})))
    step("insert_many(ordered, dup at 2)", lambda: res(items.insert_many(
        [dict(ITEMS[1]), dict(ITEMS[2]), {"_id": 2, "name": "dup"}, dict(ITEMS[3])], ordered=True)))
    step("insert_many(unordered, dup at 1)", lambda: res(items.insert_many(
        [dict(ITEMS[4]), {"_id": 1, "name": "dup"}, dict(ITEMS[5]), dict(ITEMS[6]), dict(ITEMS[3]),
         dict(ITEMS[7])], ordered=False)))
    step("insert_many(150 docs)", lambda: len(big.insert_many(
        [{"_id": 1000 + i, "i": i, "even": i % 2 == 0, "pad": "x" * (40 + i % 7)}
         for i in range(150)]).inserted_ids))

    # ---- finds -------------------------------------------------------------
    step("find(all, sort _id)", lambda: list(items.find({}).sort("_id", ASCENDING)))
    step("find(filter/sort/projection/skip/limit)", lambda: list(
        items.find({"qty": {"$gte": 1}, "tags": "fruit"}, {"name": 1, "qty": 1, "_id": 0})
        .sort([("qty", DESCENDING), ("_id", ASCENDING)]).skip(1).limit(3)))
    step("find($and/$nin/$size/$elemMatch)", lambda: list(items.find(
        {"$and": [{"_id": {"$nin": [1, 2]}}, {"$or": [{"tags": {"$size": 2}},
                                                      {"nested.a.b": {"$elemMatch": {"c": 2}}}]}]},
        {"name": 1, "tags": 1}).sort("_id", DESCENDING)))
    step("find_one(types)", lambda: items.find_one({"_id": 6}))
    step("find_one(binary)", lambda: items.find_one({"bin": Binary(b"grape\x00\xff", 0)}, {"bin": 1}))
    step("find_one(date range)", lambda: items.find_one(
        {"made": {"$gt": datetime.datetime(2024, 1, 15, tzinfo=UTC)}}, {"name": 1, "made": 1}))
    step("find_one(no match)", lambda: items.find_one({"_id": 999}))

    # ---- cursors: getMore and killCursors ---------------------------------------
    def big_batches():
        docs = list(big.find({}).sort("_id", ASCENDING).batch_size(10))
        return {"n": len(docs), "first": docs[0], "last": docs[-1], "sumI": sum(d["i"] for d in docs)}
    step("find(150 docs, batch_size 10, getMore)", big_batches)

    def big_default():
        docs = list(big.find({"even": {"$in": [True, False]}}).sort("_id", DESCENDING))
        return {"n": len(docs), "ids": [d["_id"] for d in docs]}
    step("find(150 docs, default first batch 101, getMore)", big_default)

    def close_early():
        cur = big.find({}).sort("_id", ASCENDING).batch_size(5)
        got = [next(cur)["_id"] for _ in range(7)]
        cur.close()
        return {"got": got}
    step("find(batch_size 5, read 7, close -> killCursors)", close_early)

    raw = {}

    def raw_find():
        r = db.command({"find": "big", "filter": {"i": {"$lt": 20}}, "sort": {"_id": 1}, "batchSize": 3})
        raw["id"] = r["cursor"]["id"]
        return r
    step("command find(batchSize 3)", raw_find)
    step("command getMore(batchSize 4)", lambda: db.command(
        {"getMore": Int64(raw["id"]), "collection": "big", "batchSize": 4}))
    step("command killCursors", lambda: db.command({"killCursors": "big", "cursors": [Int64(raw["id"])]}))
    step("command getMore(killed cursor)", lambda: db.command({"getMore": Int64(raw["id"]), "collection": "big"}))

    # ---- aggregate, count, distinct -----------------------------------------------
    step("aggregate($match/$unwind/$group/$sort)", lambda: list(items.aggregate([
        {"$match": {"qty": {"$gt": 0}}},
        {"$unwind": "$tags"},
        {"$group": {"_id": "$tags", "n": {"$sum": 1}}},
        {"$sort": {"n": -1, "_id": 1}},
    ])))
    step("aggregate($group by expression, not implemented)", lambda: list(items.aggregate([
        {"$group": {"_id": {"$size": "$tags"}, "qty": {"$sum": "$qty"}}}])))

    def agg_batches():
        docs = list(big.aggregate([{"$match": {"even": True}}, {"$sort": {"_id": 1}},
                                   {"$project": {"_id": 1, "i": 1}}, {"$limit": 60}], batchSize=20))
        return {"n": len(docs), "first": docs[0], "last": docs[-1]}
    step("aggregate(batchSize 20 over 150, $project/$limit)", agg_batches)
    step("aggregate($addFields/$skip)", lambda: list(items.aggregate([
        {"$sort": {"_id": 1}}, {"$skip": 5}, {"$addFields": {"double": {"$multiply": ["$qty", 2]}}},
        {"$project": {"name": 1, "double": 1}}])))
    step("count_documents(filter)", lambda: items.count_documents({"tags": "fruit"}))
    step("count_documents(skip/limit)", lambda: big.count_documents({}, skip=10, limit=50))
    step("estimated_document_count", lambda: big.estimated_document_count())
    step("command count(query)", lambda: db.command({"count": "items", "query": {"qty": {"$lt": 10}}}))
    step("distinct(tags)", lambda: sorted(items.distinct("tags")))
    step("distinct(name, filter)", lambda: items.distinct("name", {"qty": {"$gt": 4}}))

    # ---- updates -----------------------------------------------------------------
    step("update_one($set/$inc)", lambda: res(items.update_one({"_id": 1}, {"$set": {"color": "red"}, "$inc": {"qty": 2}})))
    step("update_one(no match)", lambda: res(items.update_one({"_id": 999}, {"$set": {"x": 1}})))
    step("update_one(upsert)", lambda: res(items.update_one({"_id": 9}, {"$set": {"name": "kiwi", "qty": 4}}, upsert=True)))
    step("update_many($mul/$addToSet)", lambda: res(items.update_many(
        {"tags": "fruit"}, {"$mul": {"price": 2}, "$addToSet": {"tags": "sale"}})))
    step("update_many($min/$max)", lambda: res(items.update_many(
        {"qty": {"$lt": 10}}, {"$min": {"qty": 4}, "$max": {"price": 5}})))
    step("replace_one", lambda: res(items.replace_one({"_id": 4}, {"name": "durian", "qty": 100, "note": "replaced"})))
    step("replace_one(upsert)", lambda: res(items.replace_one({"_id": 11}, {"name": "mango"}, upsert=True)))
    step("update_one(bad operator $foo)", lambda: res(items.update_one({"_id": 1}, {"$foo": {"qty": 1}})))
    step("update_one(conflicting paths)", lambda: res(items.update_one({"_id": 1}, {"$set": {"qty": 1}, "$inc": {"qty": 1}})))
    step("find(after updates)", lambda: list(items.find({}).sort("_id", ASCENDING)))

    # ---- find_one_and_* / findAndModify -------------------------------------------
    step("find_one_and_update(return after)", lambda: items.find_one_and_update(
        {"_id": 2}, {"$inc": {"qty": -2}}, return_document=ReturnDocument.AFTER))
    step("find_one_and_update(upsert)", lambda: items.find_one_and_update(
        {"_id": 10}, {"$set": {"name": "lemon"}}, upsert=True, return_document=ReturnDocument.AFTER))
    step("find_one_and_replace(before)", lambda: items.find_one_and_replace({"_id": 10}, {"name": "lime"}))
    step("find_one_and_delete(sort)", lambda: items.find_one_and_delete({"qty": {"$gte": 0}}, sort=[("qty", ASCENDING), ("_id", ASCENDING)]))
    step("command findAndModify(remove, no match)", lambda: db.command(
        {"findAndModify": "items", "query": {"_id": 12345}, "remove": True}))
    step("command findAndModify(bad update)", lambda: db.command(
        {"findAndModify": "items", "query": {"_id": 2}, "update": {"$nope": {"a": 1}}}))

    # ---- bulk_write ------------------------------------------------------------------
    def ops(base):
        return [
            InsertOne({"_id": base, "name": "bulk%d" % base, "qty": 1}),
            UpdateOne({"_id": base}, {"$inc": {"qty": 10}}),
            InsertOne({"_id": base, "name": "dup"}),
            UpdateMany({"_id": {"$gte": base}}, {"$set": {"bulk": True}}),
            ReplaceOne({"_id": base}, {"name": "bulk%dr" % base}, upsert=True),
            InsertOne({"_id": base + 1, "name": "bulk%d" % (base + 1)}),
            DeleteOne({"_id": base + 1}),
            DeleteMany({"_id": {"$gt": base + 5}}),
        ]
    step("bulk_write(ordered, dup at 2)", lambda: res(items.bulk_write(ops(100), ordered=True)))
    step("bulk_write(unordered, dup at 2)", lambda: res(items.bulk_write(ops(200), ordered=False)))
    step("bulk_write(ordered, upserts, no error)", lambda: res(items.bulk_write([
        InsertOne({"_id": 300, "name": "b300"}),
        UpdateOne({"_id": 301}, {"$set": {"name": "b301"}}, upsert=True),
        ReplaceOne({"_id": 302}, {"name": "b302"}, upsert=True),
        DeleteOne({"_id": 100}),
    ])))

    # ---- deletes ---------------------------------------------------------------------
    step("delete_one", lambda: res(items.delete_one({"_id": 5})))
    step("delete_one(no match)", lambda: res(items.delete_one({"_id": 5})))
    step("delete_many", lambda: res(big.delete_many({"i": {"$gte": 140}})))

    # ---- indexes ---------------------------------------------------------------------
    step("create_index(name unique)", lambda: items.create_index([("name", ASCENDING)], unique=True))
    step("create_index(compound, named)", lambda: items.create_index([("qty", DESCENDING), ("name", ASCENDING)], name="qty_name"))
    step("create_indexes(two on big)", lambda: big.create_indexes(
        [IndexModel([("i", ASCENDING)]), IndexModel([("even", ASCENDING), ("i", DESCENDING)], name="even_i")]))
    step("create_index(same name, other key)", lambda: items.create_index([("qty", ASCENDING)], name="qty_name"))
    step("list_indexes(items)", lambda: list(items.list_indexes()))
    step("index_information(big)", lambda: sorted(big.index_information().keys()))
    step("insert_one(violates unique name)", lambda: res(items.insert_one({"_id": 400, "name": "apple"})))
    step("drop_index", lambda: items.drop_index("qty_name"))
    step("drop_index(missing)", lambda: items.drop_index("no_such_index"))
    step("list_indexes(after drop)", lambda: [i["name"] for i in items.list_indexes()])

    # ---- errors --------------------------------------------------------------------
    step("command unknown", lambda: db.command({"mongocacheNoSuchCommand": 1}))
    step("find(bad operator $bogus)", lambda: list(items.find({"qty": {"$bogus": 1}})))
    step("aggregate(unknown stage)", lambda: list(items.aggregate([{"$frobnicate": {}}])))
    step("command find(wrong type)", lambda: db.command({"find": 42}))
    step("command insert(empty documents)", lambda: db.command({"insert": "items", "documents": []}))
    step("find(on missing collection)", lambda: list(db["nope"].find({})))

    # ---- large messages (several MiB in one OP_MSG each way) ---------------------------
    large = db["large"]
    step("insert_many(20 x 256 KiB, one 5 MiB message)", lambda: len(large.insert_many(
        [{"_id": i, "blob": chr(97 + i) * (256 * 1024) + str(i), "bin": Binary(bytes([i]) * 1024)}
         for i in range(20)]).inserted_ids))

    def read_large():
        docs = list(large.find({}).sort("_id", DESCENDING))
        return {"n": len(docs), "bytes": sum(len(d["blob"]) + len(d["bin"]) for d in docs),
                "heads": ",".join(d["blob"][:1] + d["blob"][-2:] for d in docs)}
    step("find(20 x 256 KiB, one 5 MiB reply)", read_large)
    step("drop(large)", lambda: large.drop())

    # ---- final state, collections, drop -----------------------------------------------
    step("find(final items)", lambda: list(items.find({}).sort("_id", ASCENDING)))
    step("list_collection_names", lambda: sorted(db.list_collection_names()))
    step("command create", lambda: db.command({"create": "made"}))
    step("command create(exists)", lambda: db.command({"create": "made"}))
    step("drop(items)", lambda: items.drop())
    step("drop(big)", lambda: db.drop_collection("big"))
    step("list_collection_names(after drop)", lambda: sorted(db.list_collection_names()))
    step("drop_database", lambda: client.drop_database(db_name))


if __name__ == "__main__":
    sys.exit(main())
