#!/usr/bin/env python3
"""tests/integration/compression_check.py: wire compression (OP_COMPRESSED) between
clients and mongocache (proxy/compress.h, source/compression/OP_COMPRESSED.md).

Two modes:

  wire --port P --port2 P2 --http H --http2 H2 --ferret F
      Raw messages, with zlib from the standard library. P is a proxy with the default
      compressors, P2 one with --compressors zlib and a small max_memory. Checks the
      handshake (the intersection in the client's order, over OP_MSG and OP_QUERY; no
      field when nothing is in common; the hello reply itself plain), a compressed
      request answered compressed with the same compressor (a miss and the hit after it
      alike), and the hostile cases: a compressor not negotiated, a claimed size past
      max_message_size, a corrupt stream, a stream longer than claimed, OP_QUERY inside
      OP_COMPRESSED, and a message whose uncompressed size would pass max_memory (an
      ExceededMemoryLimit reply, then the close). Each hostile case closes only its own
      connection, is counted in decoding_errors (or memory_refusals), and the proxy
      answers a new connection afterwards. Also records whether FerretDB itself
      negotiates compression (docs/compatibility.md).

  driver --uri URI --db DB [--compressor NAME]
      The workload every transcript runs with pymongo (compressors=NAME when given):
      prints one line per step with the documents it got back (canonical extended JSON),
      for test_compression.sh to compare directly vs through the proxy, plain vs
      compressed.

Prints unnumbered TAP lines and its plan last in wire mode (mc_run_lines numbers them).
"""
import argparse
import datetime
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctest import (  # noqa: E402
    OP_COMPRESSED, OP_MSG, OP_QUERY, Case, Closed, Conn, Tap, counters, frame, op_msg,
    op_query, ping, plan)

ZLIB = 2
ZSTD = 3


def compressed(msg, compressor_id, payload=None, size=None, original=None):
    """msg (a whole message) wrapped in OP_COMPRESSED: zlib unless payload is given."""
    length, rid, to, opcode = struct.unpack_from("<iiii", msg)
    body = msg[16:]
    if payload is None:
        payload = zlib.compress(body)
    prefix = struct.pack("<iiB", opcode if original is None else original,
                         len(body) if size is None else size, compressor_id)
    return frame(prefix + payload, OP_COMPRESSED, rid, to)


def unwrap(reply):
    """(compressorId, originalOpcode, decoded doc) of an OP_COMPRESSED reply (zlib only)."""
    original, size, cid = struct.unpack_from("<iiB", reply.raw, 16)
    assert cid == ZLIB, "compressorId %d" % cid
    body = zlib.decompress(reply.raw[25:])
    assert len(body) == size, "uncompressedSize %d, got %d" % (size, len(body))
    inner = struct.pack("<iiii", 16 + size, reply.request_id, reply.response_to, original) + body
    from mctest import Reply
    return cid, original, Reply(inner).doc


def hello_msg(names, **extra):
    doc = {"hello": 1, "$db": "admin"}
    if names is not None:
        doc["compression"] = names
    doc.update(extra)
    return op_msg(doc)


def wire(args):
    t = Tap()
    all_three = ["zstd", "zlib", "snappy"]

    with Case(t, "hello: the proxy answers the intersection in the client's order, in a "
                 "plain OP_MSG") as c:
        conn = Conn(args.port, timeout=5)
        r = conn.call(hello_msg(["zstd", "bogus", "zlib", "snappy", "zlib"]))
        c.check(r.opcode == OP_MSG, "reply opcode %d" % r.opcode)
        c.check(r.doc.get("compression") == all_three,
                "compression %r, want %r" % (r.doc.get("compression"), all_three))
        conn.close()

    with Case(t, "hello: a proxy offering zlib only answers [zlib] to [snappy, zlib]") as c:
        conn = Conn(args.port2, timeout=5)
        r = conn.call(hello_msg(["snappy", "zlib"]))
        c.check(r.doc.get("compression") == ["zlib"], "compression %r" % r.doc.get("compression"))
        conn.close()

    with Case(t, "hello: nothing in common, no compression field (and OP_COMPRESSED is then "
                 "refused)") as c:
        conn = Conn(args.port2, timeout=5)
        r = conn.call(hello_msg(["snappy"]))
        c.check("compression" not in r.doc, "compression %r" % r.doc.get("compression"))
        conn.send(compressed(ping(), ZLIB))
        closed, replies, how, _ = conn.wait_closed(5)
        c.check(closed and len(replies) == 1 and replies[0].opcode == OP_MSG and
                "not negotiated" in str(replies[0].doc.get("errmsg")),
                "closed=%s replies=%r" % (closed, replies))

    with Case(t, "legacy hello (OP_QUERY isMaster): OP_REPLY with the intersection, then a "
                 "compressed OP_MSG is accepted") as c:
        conn = Conn(args.port, timeout=5)
        r = conn.call(op_query("admin.$cmd", {"isMaster": 1, "helloOk": True,
                                              "compression": ["zlib"]}))
        c.check(r.opcode == 1 and r.doc.get("compression") == ["zlib"],
                "opcode %d compression %r" % (r.opcode, r.doc.get("compression")))
        m = ping()
        r = conn.call(compressed(m, ZLIB))
        c.check(r.opcode == OP_COMPRESSED, "reply opcode %d" % r.opcode)
        if r.opcode == OP_COMPRESSED:
            cid, original, doc = unwrap(r)
            c.check(original == OP_MSG and doc.get("ok") == 1.0, "original %d doc %r" %
                    (original, doc))
            c.check(r.response_to == struct.unpack_from("<i", m, 4)[0], "responseTo")
        conn.close()

    before = counters(args.http)
    with Case(t, "a compressed find is answered compressed with zlib, the miss and the hit "
                 "after it, the same documents") as c:
        conn = Conn(args.port, timeout=5)
        conn.call(hello_msg(["zlib"]))
        ins = op_msg({"insert": "cz", "documents": [{"_id": i, "s": "v%d" % i * 20}
                                                     for i in range(20)], "$db": "mc_cz"})
        r = conn.call(compressed(ins, ZLIB))
        c.check(r.opcode == OP_COMPRESSED and unwrap(r)[2].get("n") == 20, "insert %r" % r)
        docs = []
        for _ in range(2):
            r = conn.call(compressed(op_msg({"find": "cz", "filter": {}, "sort": {"_id": 1},
                                             "$db": "mc_cz"}), ZLIB))
            c.check(r.opcode == OP_COMPRESSED, "find reply opcode %d" % r.opcode)
            if r.opcode == OP_COMPRESSED:
                docs.append(unwrap(r)[2]["cursor"]["firstBatch"])
        c.check(len(docs) == 2 and docs[0] == docs[1] and len(docs[0]) == 20,
                "batches %r" % [len(d) for d in docs])
        after = counters(args.http)
        c.check(after["compressed_hits"] - before["compressed_hits"] >= 1, "no compressed hit")
        c.check(after["compressed_requests_zlib"] - before["compressed_requests_zlib"] == 3,
                "zlib requests %d" % (after["compressed_requests_zlib"] -
                                      before["compressed_requests_zlib"]))
        c.check(after["compressed_replies_zlib"] - before["compressed_replies_zlib"] == 3,
                "zlib replies %d" % (
                    after["compressed_replies_zlib"] - before["compressed_replies_zlib"]))
        conn.close()

    with Case(t, "commands never compressed (createUser, updateUser, getnonce) are answered "
                 "plain even when sent compressed; a ping after them compressed") as c:
        conn = Conn(args.port, timeout=5)
        conn.call(hello_msg(["zlib"]))
        for cmd in ({"createUser": "mc_u", "pwd": "x", "roles": [], "$db": "mc_cz"},
                    {"updateUser": "mc_u", "pwd": "y", "$db": "mc_cz"},
                    {"getnonce": 1, "$db": "admin"}):
            r = conn.call(compressed(op_msg(cmd), ZLIB))
            c.check(r.opcode == OP_MSG, "%s: reply opcode %d" % (next(iter(cmd)), r.opcode))
        r = conn.call(compressed(ping(), ZLIB))
        c.check(r.opcode == OP_COMPRESSED, "ping: reply opcode %d" % r.opcode)
        conn.close()

    # hostile: each closes its own connection and counts a decoding error
    body = ping()
    hostile = [
        ("a compressor the connection did not negotiate (zstd after [zlib])", args.port2,
         ["zlib"], compressed(body, ZSTD, payload=b"\x28\xb5\x2f\xfdgarbage"),
         "did not negotiate"),
        ("uncompressedSize past max_message_size", args.port, ["zlib"],
         compressed(body, ZLIB, size=48_000_000), "uncompressedSize 48000000 is invalid"),
        ("a claimed size deflate cannot reach from its payload", args.port, ["zlib"],
         compressed(body, ZLIB, payload=zlib.compress(b"\0" * 64), size=40_000_000),
         "cannot hold"),
        ("a corrupt zlib stream", args.port, ["zlib"],
         compressed(body, ZLIB, payload=b"\x78\x9c" + b"\xff" * 40), "corrupt"),
        ("a zlib stream longer than claimed", args.port, ["zlib"],
         compressed(body, ZLIB, size=len(body) - 17), "not exactly"),
        ("OP_QUERY inside OP_COMPRESSED", args.port, ["zlib"],
         compressed(op_query("admin.$cmd", {"isMaster": 1}), ZLIB), "wraps opcode 2004"),
    ]
    for name, port, names, msg, logged in hostile:
        with Case(t, "hostile: %s closes the connection" % name) as c:
            before = counters(args.http if port == args.port else args.http2)
            conn = Conn(port, timeout=5)
            conn.call(hello_msg(names))
            conn.send(msg)
            closed, replies, how, _ = conn.wait_closed(5)
            c.check(closed and not replies, "closed=%s replies=%r how=%s" % (closed, replies, how))
            after = counters(args.http if port == args.port else args.http2)
            c.check(after["decoding_errors"] == before["decoding_errors"] + 1,
                    "decoding_errors %d -> %d" % (before["decoding_errors"],
                                                 after["decoding_errors"]))
            log = open(args.log if port == args.port else args.log2).read()
            c.check(logged in log, "no log line with %r" % logged)
            c.check(Conn(port, timeout=5).call(ping()).ok(), "a new connection is answered")

    with Case(t, "hostile: a message whose uncompressed size would pass max_memory gets "
                 "ExceededMemoryLimit, then the close") as c:
        before = counters(args.http2)
        big = op_msg({"insert": "cm", "documents": [{"s": "\0" * (3 << 20)}], "$db": "mc_cm"})
        msg = compressed(big, ZLIB)
        c.check(len(msg) < 64 << 10, "the compressed message is small (%d bytes)" % len(msg))
        conn = Conn(args.port2, timeout=5)
        conn.call(hello_msg(["zlib"]))
        conn.send(msg)
        closed, replies, how, _ = conn.wait_closed(5)
        c.check(closed and len(replies) == 1 and replies[0].doc.get("code") == 146,
                "closed=%s replies=%r" % (closed, replies))
        after = counters(args.http2)
        c.check(after["memory_refusals"] == before["memory_refusals"] + 1, "memory_refusals")

    with Case(t, "FerretDB itself negotiates no compression (docs/compatibility.md says so: "
                 "a change there is to be documented and tested upstream)") as c:
        conn = Conn(args.ferret, timeout=5)
        r = conn.call(hello_msg(["zstd", "zlib", "snappy"]))
        c.check(r.ok() and "compression" not in r.doc,
                "FerretDB hello compression=%r" % r.doc.get("compression"))
    plan()


def driver(args):
    import bson
    import pymongo
    from bson import json_util

    opts = {"serverSelectionTimeoutMS": 10000}
    if args.compressor:
        opts["compressors"] = args.compressor
    client = pymongo.MongoClient(args.uri, **opts)
    db = client[args.db]
    coll = db.items

    def show(step, value):
        print("step=%s %s" % (step, json_util.dumps(
            value, json_options=json_util.CANONICAL_JSON_OPTIONS, sort_keys=False)))

    coll.drop()
    base = datetime.datetime(2020, 1, 1)
    docs = [{"_id": i, "name": "item-%02d" % i, "qty": i * 3, "price": i + 0.25,
             "at": base + datetime.timedelta(days=i), "tags": ["t%d" % (i % 4), "all"],
             "dim": {"w": i, "h": i * 2}, "blob": bson.Binary(bytes([i]) * 8)}
            for i in range(40)]
    show("insert", coll.insert_many(docs).inserted_ids)
    show("find", list(coll.find({"qty": {"$gt": 30}}).sort("_id", 1)))
    show("find_again", list(coll.find({"qty": {"$gt": 30}}).sort("_id", 1)))
    show("aggregate", list(coll.aggregate([{"$match": {"qty": {"$lt": 60}}},
                                           {"$group": {"_id": None, "n": {"$sum": 1},
                                                       "total": {"$sum": "$qty"}}}])))
    show("count", coll.count_documents({"tags": "t1"}))
    show("distinct", sorted(coll.distinct("name", {"qty": {"$lt": 10}})))
    r = coll.update_one({"_id": 35}, {"$set": {"name": "changed"}})
    show("update", [r.matched_count, r.modified_count])
    show("find_after_write", list(coll.find({"qty": {"$gt": 30}}).sort("_id", 1)))
    big = "x" * 200_000
    coll.insert_one({"_id": 1000, "big": big})
    got = coll.find_one({"_id": 1000})
    show("big", [len(got["big"]), got["big"] == big])
    show("big_again", [len(coll.find_one({"_id": 1000})["big"])])
    # more than one batch: the proxy drains the cursor and serves it from its own (first
    # batch and getMores compressed for a compressed client), then again from the cache
    db.many.drop()
    db.many.insert_many([{"_id": i, "v": "m%d" % i} for i in range(250)])
    show("many", [d["_id"] for d in db.many.find({}).sort("_id", 1)])
    show("many_again", [d["_id"] for d in db.many.find({}).sort("_id", 1)])
    db.many.drop()
    r = coll.delete_many({"qty": {"$gte": 60}})
    show("delete", r.deleted_count)
    show("count_after", coll.count_documents({}))
    coll.drop()
    client.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["wire", "driver"])
    p.add_argument("--port", type=int)
    p.add_argument("--port2", type=int)
    p.add_argument("--http", type=int)
    p.add_argument("--http2", type=int)
    p.add_argument("--log")
    p.add_argument("--log2")
    p.add_argument("--ferret", type=int)
    p.add_argument("--uri")
    p.add_argument("--db")
    p.add_argument("--compressor")
    args = p.parse_args()
    if args.mode == "wire":
        wire(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
