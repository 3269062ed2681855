#!/usr/bin/env python3
"""tests/integration/python/persona_transcript.py URI DBNAME

Runs one fixed workload with pymongo's defaults (retryWrites on, no
directConnection) and prints, for every command pymongo sends (command
monitoring, started events), one line:

  <step> <command> fields=<sorted top-level field names> rp=<$readPreference mode or ->

then one "outcome" line per step (ok, or the error code). test_persona.sh
runs it straight against FerretDB and through mongocache and compares the
two transcripts: what the proxy's hello persona tells the driver decides
which fields the driver adds (txnNumber, lsid, $clusterTime, $readPreference,
readConcern, writeConcern all show in `fields`). Values are not printed, so
nothing needs to be normalized. Exit status 0 when the transcript was written.
"""
import sys

from pymongo import (DeleteOne, InsertOne, MongoClient, ReadPreference, ReturnDocument,
                     UpdateOne, WriteConcern, monitoring)
from pymongo.read_concern import ReadConcern
from pymongo.errors import PyMongoError

lines = []
current = "connect"


class Listener(monitoring.CommandListener):
    def started(self, event):
        cmd = event.command
        fields = ",".join(sorted(cmd.keys()))
        rp = cmd.get("$readPreference")
        mode = rp.get("mode", "-") if isinstance(rp, dict) else "-"
        lines.append("%s %s fields=%s rp=%s" % (current, event.command_name, fields, mode))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def step(name, fn):
    global current
    current = name
    try:
        fn()
        lines.append("%s outcome=ok" % name)
    except PyMongoError as e:
        lines.append("%s outcome=error code=%s %s" % (name, getattr(e, "code", "-"),
                                                     type(e).__name__))


def session_steps(client, coll):
    with client.start_session() as s:
        coll.insert_one({"_id": 6, "n": 6}, session=s)
        coll.find_one_and_update({"_id": 6}, {"$set": {"n": 60}}, session=s)
        list(coll.find({"_id": 6}, session=s))


def main():
    global current
    uri, db_name = sys.argv[1:3]
    client = MongoClient(uri, serverSelectionTimeoutMS=10000, event_listeners=[Listener()],
                         appname="transcript-pymongo")
    client.admin.command("ping")
    topology = client.topology_description.topology_type_name
    del lines[:]  # the ping above only waits for the topology
    coll = client[db_name].things
    step("insertOne", lambda: coll.insert_one({"_id": 1, "n": 1}))
    step("insertMany", lambda: coll.insert_many([{"_id": 2, "n": 2}, {"_id": 3, "n": 3},
                                                 {"_id": 4, "n": 4}]))
    step("updateOne", lambda: coll.update_one({"_id": 1}, {"$set": {"n": 10}}))
    step("updateMany", lambda: coll.update_many({"n": {"$gte": 2}}, {"$inc": {"n": 1}}))
    step("replaceOne", lambda: coll.replace_one({"_id": 4}, {"n": 40}))
    step("find", lambda: list(coll.find({"n": {"$gt": 0}}).sort("_id", 1)))
    step("findOne", lambda: coll.find_one({"_id": 2}))
    step("aggregate", lambda: list(coll.aggregate([{"$match": {"n": {"$gt": 0}}},
                                                   {"$sort": {"_id": 1}}])))
    step("countDocuments", lambda: coll.count_documents({}))
    step("findSecondaryPreferred", lambda: list(coll.with_options(
        read_preference=ReadPreference.SECONDARY_PREFERRED).find({"_id": 2})))
    step("findReadConcern", lambda: list(coll.with_options(
        read_concern=ReadConcern("local")).find({"_id": 2})))
    step("insertMajority", lambda: coll.with_options(
        write_concern=WriteConcern(w="majority")).insert_one({"_id": 7, "n": 7}))
    step("findOneAndUpdate", lambda: coll.find_one_and_update(
        {"_id": 3}, {"$set": {"n": 30}}, return_document=ReturnDocument.AFTER))
    step("bulkWrite", lambda: coll.bulk_write([
        InsertOne({"_id": 5, "n": 5}),
        UpdateOne({"_id": 5}, {"$set": {"n": 50}}),
        DeleteOne({"_id": 2})]))
    step("session", lambda: session_steps(client, coll))
    step("deleteOne", lambda: coll.delete_one({"_id": 1}))
    step("deleteMany", lambda: coll.delete_many({}))
    step("drop", lambda: coll.drop())
    current = "close"
    client.close()
    print("topology=%s" % topology)
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
