#!/usr/bin/env python3
"""tests/fuzz/make_seeds.py: writes the hand-made seed inputs of tests/fuzz/corpus.

    python3 tests/fuzz/make_seeds.py

(Python 3 stdlib only.) Rewrites every corpus/<target>/seed-* file:
  - the real captures of tests/fixtures/wire (client messages to
    client_msg, server replies to upstream_reply, their bodies to bson_doc,
    the replies wrapped as stored values to redis_blob);
  - edge cases built here with a small BSON encoder: each rule of OP_MSG
    (wire/msg.h), every cacheability and invalidation case of
    cache/policy.h, depth 200/201, every BSON type, the value format's
    faults, config files in every syntax conf/file.c reads, and OP_COMPRESSED
    around real messages with each compressor and the faults it is refused for.
Files not named seed-* (inputs that libFuzzer found and were kept, and the
regress-* input of each fixed finding) are left alone.
"""
import glob
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(TOP, "tests", "fixtures", "wire")
CORPUS = os.path.join(HERE, "corpus")

OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013


# ---- BSON ----------------------------------------------------------------

class Raw:
    """An element value given as (type byte, encoded bytes)."""

    def __init__(self, t, data):
        self.t, self.data = t, data


class Int64(int):
    pass


class Doc(list):
    """An embedded document given as (key, value) pairs, in order, duplicates allowed."""


def cstr(s):
    return s.encode() + b"\0" if isinstance(s, str) else s + b"\0"


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<i", len(b) + 1) + b + b"\0"


def element(key, v):
    k = cstr(key)
    if isinstance(v, Raw):
        return bytes([v.t]) + k + v.data
    if isinstance(v, bool):
        return b"\x08" + k + (b"\x01" if v else b"\x00")
    if isinstance(v, Int64):
        return b"\x12" + k + struct.pack("<q", v)
    if isinstance(v, int):
        if -2**31 <= v < 2**31:
            return b"\x10" + k + struct.pack("<i", v)
        return b"\x12" + k + struct.pack("<q", v)
    if isinstance(v, float):
        return b"\x01" + k + struct.pack("<d", v)
    if isinstance(v, str):
        return b"\x02" + k + string(v)
    if v is None:
        return b"\x0a" + k
    if isinstance(v, (bytes, bytearray)):
        return b"\x05" + k + struct.pack("<i", len(v)) + b"\x00" + bytes(v)
    if isinstance(v, (dict, Doc)):
        return b"\x03" + k + doc(v)
    if isinstance(v, list):
        return b"\x04" + k + doc([(str(i), x) for i, x in enumerate(v)])
    raise TypeError(v)


def doc(fields):
    """fields: a dict, or a list of (key, value) pairs (duplicates allowed)."""
    items = fields.items() if isinstance(fields, dict) else fields
    body = b"".join(element(k, v) for k, v in items)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def oid(n=1):
    return Raw(0x07, bytes(range(n, n + 12)))


def uuid():
    return Raw(0x05, struct.pack("<i", 16) + b"\x04" + bytes(range(16)))


def nested(depth, leaf=None):
    """A document nested depth levels deep (the outermost counts as 1)."""
    d = doc(leaf or {"x": 1})
    for _ in range(depth - 1):
        d = doc([("a", Raw(0x03, d))])
    return d


def every_type():
    return doc([
        ("double", 1.5), ("string", "s"), ("doc", {"a": 1}), ("array", [1, "two", {"t": 3}]),
        ("binary", b"\x01\x02"), ("undefined", Raw(0x06, b"")), ("oid", oid()),
        ("bool", True), ("date", Raw(0x09, struct.pack("<q", 1700000000000))),
        ("null", None), ("regex", Raw(0x0b, b"^a.*\0i\0")),
        ("dbpointer", Raw(0x0c, string("db.c") + bytes(12))),
        ("code", Raw(0x0d, string("function(){}"))), ("symbol", Raw(0x0e, string("sym"))),
        ("codewscope", Raw(0x0f, code_w_scope("x", {"x": 1}))), ("int32", 7),
        ("timestamp", Raw(0x11, struct.pack("<II", 1, 2))), ("int64", Int64(8)),
        ("decimal", Raw(0x13, bytes(15) + b"\x30")), ("minkey", Raw(0xff, b"")),
        ("maxkey", Raw(0x7f, b"")),
        ("binary_old", Raw(0x05, struct.pack("<i", 7) + b"\x02" + struct.pack("<i", 3) + b"abc")),
        ("uuid", uuid()),
    ])


def code_w_scope(code, scope):
    c = string(code)
    s = doc(scope)
    return struct.pack("<i", 4 + len(c) + len(s)) + c + s


# ---- wire messages --------------------------------------------------------

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def header(length, request_id, response_to, opcode):
    return struct.pack("<iiii", length, request_id, response_to, opcode)


def message(opcode, payload, request_id=1, response_to=0):
    return header(16 + len(payload), request_id, response_to, opcode) + payload


def seq(ident, docs):
    payload = cstr(ident) + b"".join(docs)
    return b"\x01" + struct.pack("<i", 4 + len(payload)) + payload


def op_msg(body, flags=0, seqs=(), request_id=1, response_to=0, checksum=None, raw_sections=None):
    sections = raw_sections if raw_sections is not None else b"\x00" + body + b"".join(seqs)
    if checksum is not None:
        flags |= 1
    payload = struct.pack("<I", flags) + sections
    if checksum is None:
        return message(OP_MSG, payload, request_id, response_to)
    m = header(16 + len(payload) + 4, request_id, response_to, OP_MSG) + payload
    crc = crc32c(m) if checksum else crc32c(m) ^ 1
    return m + struct.pack("<I", crc)


def op_query(collection, query, selector=None, flags=0, skip=0, n_return=-1, request_id=1):
    payload = struct.pack("<i", flags) + cstr(collection) + struct.pack("<ii", skip, n_return)
    payload += query + (selector or b"")
    return message(OP_QUERY, payload, request_id)


def op_reply(docs, flags=0, cursor_id=0, starting=0, n=None, response_to=1):
    payload = struct.pack("<iqii", flags, cursor_id, starting, len(docs) if n is None else n)
    return message(OP_REPLY, payload + b"".join(docs), 9, response_to)


# ---- seeds per target -----------------------------------------------------

LSID = {"id": uuid()}


def client_msg():
    s = {}
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*-c2s-*.bin"))):
        s["fixture-" + os.path.basename(path)[:-4]] = open(path, "rb").read()

    def cmd(name, fields, db="app"):
        return doc(fields + [("$db", db)] if isinstance(fields, list) else
                   list(fields.items()) + [("$db", db)])

    find = cmd("find", [("find", "items"), ("filter", {"x": {"$gte": 1}}), ("sort", {"x": -1}),
                        ("projection", {"_id": 0}), ("limit", 5), ("batchSize", 2),
                        ("lsid", LSID)])
    s["find"] = op_msg(find)
    s["find-checksum"] = op_msg(find, checksum=True)
    s["find-bad-checksum"] = op_msg(find, checksum=False)
    s["find-exhaust"] = op_msg(find, flags=1 << 16)
    s["find-exhaust-checksum"] = op_msg(find, flags=1 << 16, checksum=True)
    s["find-db-not-string"] = op_msg(doc([("find", "items"), ("$db", 1)]))
    s["find-duplicate-key"] = op_msg(doc([("find", "items"), ("filter", {}), ("filter", {"a": 1}),
                                          ("$db", "app")]))
    s["find-uuid-collection"] = op_msg(doc([("find", uuid()), ("$db", "app")]))
    s["find-system-profile"] = op_msg(cmd("find", [("find", "system.profile")]))
    s["find-local-db"] = op_msg(cmd("find", [("find", "oplog.rs")], db="local"))
    s["find-in-transaction"] = op_msg(cmd("find", [
        ("find", "items"), ("lsid", LSID), ("txnNumber", Int64(3)), ("autocommit", False),
        ("startTransaction", True)]))
    for level in ("local", "majority", "available", "snapshot", "linearizable"):
        s["find-readconcern-" + level] = op_msg(cmd("find", [
            ("find", "items"), ("readConcern", {"level": level})]))
    s["find-after-cluster-time"] = op_msg(cmd("find", [
        ("find", "items"), ("readConcern", {"level": "majority",
                                            "afterClusterTime": Raw(0x11, struct.pack("<II", 1, 5))})]))
    for opt in ("tailable", "awaitData", "exhaust", "allowPartialResults", "explain"):
        s["find-" + opt] = op_msg(cmd("find", [("find", "items"), (opt, True)]))
    s["find-nocache-comment"] = op_msg(cmd("find", [("find", "items"),
                                                    ("comment", "mongocache:nocache")]))
    s["find-comment-int"] = op_msg(cmd("find", [("find", "items"), ("comment", 5),
                                                ("maxTimeMS", "x")]))
    s["find-where"] = op_msg(cmd("find", [("find", "items"), ("filter", {"$where": "true"})]))
    s["find-now-deep"] = op_msg(cmd("find", [("find", "items"), ("filter", {
        "$expr": {"$lt": ["$t", {"$add": ["$$NOW", 1]}]}})]))
    s["find-every-type"] = op_msg(cmd("find", [("find", "items"),
                                               ("filter", Raw(0x03, every_type()))]))
    s["find-depth-200"] = op_msg(cmd("find", [("find", "items"),
                                              ("filter", Raw(0x03, nested(199)))]))
    s["find-depth-201"] = op_msg(cmd("find", [("find", "items"),
                                              ("filter", Raw(0x03, nested(200)))]))
    s["count"] = op_msg(cmd("count", [("count", "items"), ("query", {"a": 1})]))
    s["distinct"] = op_msg(cmd("distinct", [("distinct", "items"), ("key", "a")]))
    s["aggregate-lookups"] = op_msg(cmd("aggregate", [("aggregate", "orders"), ("pipeline", [
        {"$match": {"a": 1}},
        {"$lookup": {"from": "items", "localField": "i", "foreignField": "_id", "as": "it"}},
        {"$lookup": {"from": {"db": "other", "coll": "c"}, "pipeline": [
            {"$unionWith": {"coll": "u", "pipeline": [
                {"$graphLookup": {"from": "g", "startWith": "$x", "connectFromField": "a",
                                  "connectToField": "b", "as": "gg"}}]}}], "as": "o"}},
        {"$facet": {"f": [{"$unionWith": "v"}]}},
    ]), ("cursor", {})]))
    s["aggregate-out"] = op_msg(cmd("aggregate", [("aggregate", "a"), ("pipeline", [
        {"$out": "b"}]), ("cursor", {})]))
    s["aggregate-merge"] = op_msg(cmd("aggregate", [("aggregate", "a"), ("pipeline", [
        {"$merge": {"into": {"db": "d2", "coll": "c2"}}}]), ("cursor", {})]))
    s["aggregate-db"] = op_msg(cmd("aggregate", [("aggregate", 1), ("pipeline", [
        {"$currentOp": {}}]), ("cursor", {})], db="admin"))
    s["aggregate-sample"] = op_msg(cmd("aggregate", [("aggregate", "a"), ("pipeline", [
        {"$sample": {"size": 1}}]), ("cursor", {})]))
    s["aggregate-nine-namespaces"] = op_msg(cmd("aggregate", [("aggregate", "a"), ("pipeline", [
        {"$unionWith": "c%d" % i} for i in range(9)]), ("cursor", {})]))
    s["getmore"] = op_msg(cmd("getMore", [("getMore", Int64(12345)), ("collection", "items"),
                                          ("batchSize", 2)]))
    s["getmore-exhaust"] = op_msg(cmd("getMore", [("getMore", Int64(1)), ("collection", "i")]),
                                  flags=1 << 16)
    s["killcursors"] = op_msg(cmd("killCursors", [("killCursors", "items"),
                                                  ("cursors", [Int64(12345)])]))
    docs = [doc({"_id": i, "x": i}) for i in range(3)]
    s["insert-seq"] = op_msg(cmd("insert", [("insert", "items"), ("ordered", True)]),
                             seqs=[seq("documents", docs)])
    s["insert-w0"] = op_msg(cmd("insert", [("insert", "items"), ("writeConcern", {"w": 0})]),
                            flags=2, seqs=[seq("documents", docs[:1])])
    s["update-seq"] = op_msg(cmd("update", [("update", "items")]), seqs=[
        seq("updates", [doc({"q": {"_id": 1}, "u": {"$set": {"x": 2}}})])])
    s["delete-seq"] = op_msg(cmd("delete", [("delete", "items")]), seqs=[
        seq("deletes", [doc({"q": {}, "limit": 0})])])
    s["findandmodify"] = op_msg(cmd("findAndModify", [("findAndModify", "items"),
                                                      ("query", {}), ("remove", True)]))
    s["bulkwrite-nsinfo"] = op_msg(cmd("bulkWrite", [("bulkWrite", 1)], db="admin"), seqs=[
        seq("ops", [doc({"insert": 0, "document": {"a": 1}}), doc({"delete": 1, "filter": {}})]),
        seq("nsInfo", [doc({"ns": "app.a"}), doc({"ns": "other.b"})])])
    s["bulkwrite-nsinfo-inline"] = op_msg(cmd("bulkWrite", [
        ("bulkWrite", 1), ("ops", [{"insert": 0, "document": {}}]),
        ("nsInfo", [{"ns": "app.a"}, {"ns": "b.c"}])], db="admin"))
    s["insert-uuid-collection"] = op_msg(cmd("insert", [("insert", uuid()),
                                                        ("documents", [{"a": 1}])]))
    s["find-300-keys"] = op_msg(cmd("find", [("find", "items")] +
                                    [("k%d" % i, None) for i in range(300)]))
    s["aggregate-merge-string"] = op_msg(cmd("aggregate", [("aggregate", "a"), ("pipeline", [
        {"$merge": "t"}]), ("cursor", {})]))
    s["aggregate-merge-into-string"] = op_msg(cmd("aggregate", [("aggregate", "a"), ("pipeline", [
        {"$merge": {"into": "t", "on": "_id"}}]), ("cursor", {})]))
    s["aggregate-out-db-coll"] = op_msg(cmd("aggregate", [("aggregate", "a"), ("pipeline", [
        {"$out": {"db": "d2", "coll": "c2"}}]), ("cursor", {})]))
    s["rename"] = op_msg(cmd("renameCollection", [("renameCollection", "app.a"),
                                                  ("to", "other.b")], db="admin"))
    for c in ("drop", "create", "collMod", "dropDatabase", "createIndexes", "dropIndexes"):
        s["ddl-" + c] = op_msg(cmd(c, [(c, "items" if c != "dropDatabase" else 1)]))
    s["user-create"] = op_msg(cmd("createUser", [("createUser", "bob"), ("pwd", "x"),
                                                 ("roles", [])]))
    s["user-grant"] = op_msg(cmd("grantRolesToUser", [("grantRolesToUser", "bob"),
                                                      ("roles", ["read"])]))
    s["role-create"] = op_msg(cmd("createRole", [("createRole", "r"), ("privileges", []),
                                                 ("roles", [])]))
    s["applyops"] = op_msg(cmd("applyOps", [("applyOps", [])], db="admin"))
    for i, out in enumerate(["o", {"replace": "o", "db": "d"}, {"merge": "o"}, {"inline": 1},
                             {"reduce": "o", "db": "d", "sharded": False}]):
        s["mapreduce-%d" % i] = op_msg(cmd("mapReduce", [
            ("mapReduce", "items"), ("map", Raw(0x0d, string("function(){}"))),
            ("reduce", Raw(0x0d, string("function(){}"))), ("out", out)]))
    s["commit"] = op_msg(cmd("commitTransaction", [("commitTransaction", 1), ("lsid", LSID),
                                                   ("txnNumber", Int64(3)), ("autocommit", False)],
                             db="admin"))
    hello = doc([("hello", 1), ("helloOk", True), ("loadBalanced", True),
                 ("compression", ["zlib", "snappy"]), ("client", {"driver": {"name": "fuzz"}}),
                 ("saslSupportedMechs", "admin.u"), ("$db", "admin")])
    s["hello-op-msg"] = op_msg(hello)
    s["sasl-start"] = op_msg(doc([("saslStart", 1), ("mechanism", "SCRAM-SHA-256"),
                                  ("payload", b"n,,n=u,r=abc"), ("$db", "admin")]))
    s["ping"] = op_msg(doc([("ping", 1), ("$db", "admin")]))
    # OP_MSG rules (mongod's op_msg_test.cpp)
    ping = doc([("ping", 1), ("$db", "admin")])
    s["rule-illegal-flag"] = op_msg(ping, flags=1 << 3)
    s["rule-optional-flag"] = op_msg(ping, flags=1 << 20)
    s["rule-kind-2"] = op_msg(ping, raw_sections=b"\x00" + ping + b"\x02" + string("token"))
    s["rule-two-bodies"] = op_msg(ping, raw_sections=b"\x00" + ping + b"\x00" + ping)
    s["rule-no-body"] = op_msg(ping, raw_sections=seq("documents", [doc({"a": 1})]))
    s["rule-dup-seq"] = op_msg(ping, seqs=[seq("d", [doc({})]), seq("d", [doc({})])])
    s["rule-seq-in-body"] = op_msg(doc([("insert", "c"), ("documents", []), ("$db", "a")]),
                                   seqs=[seq("documents", [doc({})])])
    s["rule-seq-dotted"] = op_msg(doc([("x", "c"), ("cursor", {"id": 0}), ("$db", "a")]),
                                  seqs=[seq("cursor.firstBatch", [doc({})])])
    s["rule-seq-dotted-array"] = op_msg(doc([("x", "c"), ("a", {"b": []}), ("$db", "a")]),
                                        seqs=[seq("a.b.c", [doc({})])])
    s["rule-nine-seqs"] = op_msg(ping, seqs=[seq("s%d" % i, [doc({})]) for i in range(9)])
    s["rule-seq-id-unterminated"] = op_msg(ping, raw_sections=b"\x00" + ping + b"\x01" +
                                           struct.pack("<i", 7) + b"abc")
    s["rule-body-past-end"] = op_msg(ping, raw_sections=b"\x00" + ping[:-3])
    s["rule-flags-truncated"] = message(OP_MSG, b"\x00\x00")
    s["rule-empty-body"] = op_msg(doc([]))
    # legacy and other opcodes
    s["op-query-hello"] = op_query("admin.$cmd", doc([("isMaster", 1), ("helloOk", True),
                                                      ("compression", ["none"])]))
    s["op-query-hello-selector"] = op_query("admin.$cmd", doc([("ismaster", 1)]), doc({"a": 1}))
    s["op-query-find"] = op_query("app.items", doc({"a": 1}), n_return=5)
    s["op-query-trailing"] = op_query("admin.$cmd", doc([("hello", 1)]), doc({}) + b"xx")
    s["op-compressed"] = message(OP_COMPRESSED, struct.pack("<iiB", OP_MSG, 100, 2) + b"junk")
    s["op-command"] = message(2010, b"\0" * 20)
    s["len-below-16"] = header(15, 1, 0, OP_MSG) + b"\0" * 8
    s["len-over-max"] = header(48000001, 1, 0, OP_MSG) + b"\0" * 8
    s["pipelined-find-ping"] = op_msg(find, request_id=1) + op_msg(ping, request_id=2)
    s["pipelined-truncated"] = op_msg(ping, request_id=1) + op_msg(find, request_id=2)[:40]
    return s


def upstream_reply():
    s = {}
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*-s2c-*.bin"))):
        s["fixture-" + os.path.basename(path)[:-4]] = open(path, "rb").read()
    batch = [{"_id": i, "x": i} for i in range(3)]

    def cursor(cid, key="firstBatch", docs=None, ns="app.items", ok=1.0, extra=()):
        c = [(key, batch if docs is None else docs), ("id", cid), ("ns", ns)]
        return doc([("cursor", Doc(c)), ("ok", ok)] + list(extra))

    s["cursor-closed"] = op_msg(cursor(Int64(0)))
    s["cursor-open-int64"] = op_msg(cursor(Int64(77)))
    s["cursor-open-int32"] = op_msg(cursor(77))
    s["cursor-next-batch"] = op_msg(cursor(Int64(0), key="nextBatch"))
    s["cursor-ns-no-dot"] = op_msg(cursor(Int64(5), ns="items"))
    s["cursor-batch-mixed"] = op_msg(cursor(Int64(5), docs=[1, {"a": 1}, "x", [2], {"b": 2}]))
    s["cursor-batch-deep"] = op_msg(cursor(Int64(5), docs=[Raw(0x03, nested(196))]))
    s["cursor-ok-int"] = op_msg(cursor(Int64(0), ok=1))
    s["cursor-ok-bool"] = op_msg(doc([("cursor", {"firstBatch": [], "id": Int64(0),
                                                  "ns": "a.b"}), ("ok", True)]))
    s["cursor-dup"] = op_msg(doc([("cursor", {"id": Int64(0), "firstBatch": [], "ns": "a.b"}),
                                  ("cursor", {"id": Int64(9), "firstBatch": [], "ns": "a.b"}),
                                  ("ok", 1.0)]))
    s["cursor-id-double"] = op_msg(doc([("cursor", {"id": 5.0, "firstBatch": [],
                                                    "ns": "a.b"}), ("ok", 1.0)]))
    s["cursor-kind1-firstbatch"] = op_msg(doc([("cursor", {"id": Int64(0), "ns": "a.b"}),
                                               ("ok", 1.0)]),
                                          seqs=[seq("cursor.firstBatch", [doc(d) for d in batch])])
    s["error"] = op_msg(doc([("ok", 0.0), ("errmsg", "no"), ("code", 13),
                             ("codeName", "Unauthorized")]))
    # client.c's reply_ok (wire_msg_ok) on each kind of "ok" bson_iter_as_bool reads.
    s["ok-null"] = op_msg(doc([("ok", Raw(0x0A, b""))]))
    s["ok-string"] = op_msg(doc([("errmsg", "x"), ("ok", "no")]))
    s["ok-int64-zero"] = op_msg(doc([("ok", Int64(0))]))
    s["ok-absent"] = op_msg(doc([("okay", 1), ("o", 1), ("cursor", {"ok": 0})]))
    s["write-concern-error"] = op_msg(doc([("n", 1), ("writeConcernError", {"code": 64}),
                                           ("ok", 1.0)]))
    s["reply-checksum"] = op_msg(cursor(Int64(0)), checksum=True)
    s["reply-more-to-come"] = op_msg(cursor(Int64(0)), flags=2)
    s["reply-cluster-time"] = op_msg(doc([
        ("cursor", {"firstBatch": batch, "id": Int64(0), "ns": "a.b"}), ("ok", 1.0),
        ("$clusterTime", {"clusterTime": Raw(0x11, struct.pack("<II", 1, 2)),
                          "signature": {"hash": b"\0" * 20, "keyId": Int64(0)}}),
        ("operationTime", Raw(0x11, struct.pack("<II", 1, 2)))]))
    hello = doc([("ismaster", True), ("maxWireVersion", 21), ("ok", 1.0)])
    s["op-reply-one"] = op_reply([hello])
    s["op-reply-two"] = op_reply([hello, doc({"a": 1})])
    s["op-reply-none"] = op_reply([])
    s["op-reply-count-mismatch"] = op_reply([hello], n=2)
    s["op-reply-negative"] = op_reply([hello], n=-1)
    s["op-reply-failure"] = op_reply([doc({"$err": "x", "code": 2})], flags=2)
    s["two-replies"] = op_msg(cursor(Int64(0)), response_to=1) + op_msg(cursor(Int64(0)),
                                                                         response_to=2)
    return s


def blob(reply, gens=(("ndb.coll", 3), ("ddb", 1)), epoch=7, material=b"material",
         expires=1900000000000):
    out = b"MCV4" + struct.pack("<QQI", epoch, expires, len(gens))
    for name, value in gens:
        out += struct.pack("<I", len(name)) + name.encode() + struct.pack("<Q", value)
    out += struct.pack("<I", len(material)) + material
    return out + struct.pack("<I", len(reply)) + reply


def redis_blob():
    s = {}
    fixtures = sorted(glob.glob(os.path.join(FIXTURES, "*-s2c-*op_msg.bin")))
    for path in fixtures:
        s["value-" + os.path.basename(path)[:-4]] = blob(open(path, "rb").read())
    reply = open(fixtures[0], "rb").read()
    s["value-no-gens"] = blob(reply, gens=())
    s["value-64-gens"] = blob(reply, gens=[("n%d" % i, i) for i in range(64)])
    s["value-65-gens"] = blob(reply, gens=[("n%d" % i, i) for i in range(65)])
    s["value-empty-name"] = blob(reply, gens=[("", 1)])
    s["value-trailing"] = blob(reply) + b"x"
    s["value-truncated"] = blob(reply)[:-1]
    s["value-bad-magic"] = b"MCV1" + blob(reply)[4:]  # the old versions are refused
    s["value-previous-version"] = b"MCV3" + blob(reply)[4:]
    s["value-op-reply"] = blob(op_reply([doc({"ok": 1.0})]))
    s["value-bad-reply"] = blob(b"\x10\0\0\0" + b"\0" * 12)
    s["value-huge-length"] = b"MCV4" + struct.pack("<QQI", 0, 0, 0) + struct.pack("<I", 0xFFFFFFFF)
    s["plain-reply"] = reply
    return s


def conf_file():
    s = {}
    sample = open(os.path.join(TOP, "mongocache.conf.sample")).read().splitlines()
    uncommented = [l[2:] for l in sample if l.startswith("# ") and " = " in l and
                   l[2:].split(" = ")[0].replace("_", "").isalnum()]
    s["sample"] = "\n".join(sample) + "\n"
    s["sample-uncommented"] = "\n".join(uncommented) + "\n"
    s["quotes"] = ("listen_unix = \"/tmp/a b#c\\\"d\\\\e\"  # comment\n"
                   "redis_prefix = 'it''s'\n"
                   "pid_file = '/run/x # y'\n"
                   "cache_include = app.* # trailing\n"
                   "cache_exclude = a#b\n")
    s["bom-crlf"] = "\ufefflog_level = debug\r\nmax_clients = 5\r\n"
    s["sizes"] = "".join("buffer_limit = %s\n" % v for v in
                         ("1", "1K", "2M", "3G", "4KiB", "5MiB", "6GiB", "0", "-1", "1.5MiB",
                          "9223372036854775807", "8589934592GiB", "1 MiB", "1kib"))
    s["durations"] = "".join("cache_ttl = %s\n" % v for v in
                             ("1ms", "2s", "3m", "4h", "5", "0", "1.5s", "-1s", "168h",
                              "9223372036854775807ms", "1d", "1 s"))
    s["uris"] = ("upstream = mongodb://user:s3cretpass@db1:27017/app?authSource=admin\n"
                 "upstream = mongodb://user:p%40ss%2Fword@db1,db2/?replicaSet=rs&tls=true\n"
                 "upstream = mongodb+srv://cluster.example.com\n"
                 "upstream = mongodb://u:secretpw/x@h\n"
                 "upstream = http://x\n"
                 "redis = redis://:redispass@127.0.0.1:6379/2\n"
                 "redis = unix:///tmp/redis.sock?db=3\n"
                 "redis_password = hunter2hunter2\n"
                 "cache_key_secret = file:/etc/shadow\n")
    s["addrs"] = ("listen = 127.0.0.1:27018\nlisten = [::1]:1\nlisten = \nlisten = :0\n"
                  "http_listen = host:65536\nhttp_listen = [::1\n")
    s["bools-levels"] = "".join("cache = %s\nlog_level = %s\n" % (b, l) for b, l in
                                zip(("true", "false", "yes", "no", "on", "off", "1", "TRUE"),
                                    ("error", "warn", "info", "debug", "trace", "", "INFO",
                                     "warning")))
    s["ttl-overrides"] = ("cache_ttl_overrides = app.items=10s, app.*=1m\n"
                          "cache_ttl_overrides = demo=10s\ncache_include = nodot\n")
    s["errors"] = "no equals sign\n = 1\nunknown_option = 1\nlisten = \"open\n"
    s["dashes"] = "max-clients = 7\ncache-ttl=2s\n  \t# indented comment\n\n"
    return {k: v.encode() for k, v in s.items()}


def bson_doc():
    s = {}
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*op_msg*.bin"))):
        data = open(path, "rb").read()
        n = struct.unpack_from("<i", data, 21)[0]
        if data[20] == 0:
            s["body-" + os.path.basename(path)[:-4]] = data[21:21 + n]
    s["every-type"] = every_type()
    s["depth-200"] = nested(200)
    s["depth-201"] = nested(201)
    s["empty"] = doc([])
    s["array-keys-odd"] = doc([("a", Raw(0x04, doc([("7", 1), ("x", 2)])))])
    s["bool-2"] = doc([("b", Raw(0x08, b"\x02"))])
    s["string-no-nul"] = doc([("s", Raw(0x02, struct.pack("<i", 2) + b"ab"))])
    s["string-len-0"] = doc([("s", Raw(0x02, struct.pack("<i", 0)))])
    s["binary-old-bad"] = doc([("b", Raw(0x05, struct.pack("<i", 7) + b"\x02" +
                                         struct.pack("<i", 9) + b"abc"))])
    s["cws-bad-total"] = doc([("c", Raw(0x0f, struct.pack("<i", 99) + code_w_scope("x", {})[4:]))])
    s["unknown-type"] = doc([("u", Raw(0x14, b""))])
    s["trailing"] = doc({"a": 1}) + b"junk"
    s["len-past-end"] = struct.pack("<i", 100) + doc({"a": 1})[4:]
    return s


def compressed():
    """OP_COMPRESSED (wire/compress.h) around real messages, with each compressor: zlib from
    the stdlib, snappy and zstd hand-made (a snappy block of literals, a zstd frame of one raw
    block), and the faults wire/compress.c refuses."""
    import zlib

    def wrap(msg, cid, payload, size=None, original=None):
        length, rid, to, opcode = struct.unpack_from("<iiii", msg)
        body = msg[16:]
        prefix = struct.pack("<iiB", opcode if original is None else original,
                             len(body) if size is None else size, cid)
        return message(OP_COMPRESSED, prefix + payload, rid, to)

    def snappy_literals(data):
        out, n = b"", len(data)
        while True:  # varint of the length
            b = n & 0x7F
            n >>= 7
            out += bytes([b | (0x80 if n else 0)])
            if not n:
                break
        for i in range(0, len(data), 60):
            chunk = data[i:i + 60]
            out += bytes([(len(chunk) - 1) << 2]) + chunk
        return out

    def zstd_raw(data):
        assert len(data) < 256
        return (struct.pack("<I", 0xFD2FB528) + b"\x20" + bytes([len(data)]) +
                struct.pack("<I", 1 | (len(data) << 3))[:3] + data)

    ping = op_msg(doc({"ping": 1, "$db": "admin"}), request_id=7)
    find = op_msg(doc({"find": "c", "filter": {"a": 1}, "$db": "db"}), request_id=8)
    reply = op_reply([doc({"ok": 1.0})])
    s = {}
    for name, m in (("ping", ping), ("find", find), ("op-reply", reply)):
        body = m[16:]
        s["noop-" + name] = wrap(m, 0, body)
        s["zlib-" + name] = wrap(m, 2, zlib.compress(body))
        s["snappy-" + name] = wrap(m, 1, snappy_literals(body))
        s["zstd-" + name] = wrap(m, 3, zstd_raw(body))
    big = op_msg(doc({"insert": "c", "documents": [doc({"s": "x" * 3000})], "$db": "db"}))
    s["zlib-big"] = wrap(big, 2, zlib.compress(big[16:], 9))
    body = ping[16:]
    s["zlib-longer-than-claimed"] = wrap(ping, 2, zlib.compress(body), size=len(body) - 1)
    s["zlib-trailing"] = wrap(ping, 2, zlib.compress(body) + b"tail")
    s["zlib-ratio"] = wrap(ping, 2, zlib.compress(b"\0" * 64), size=40_000)
    s["snappy-bad-copy"] = wrap(ping, 1, b"\x08\x04ab\x09\x09", size=8)
    s["zstd-size-lie"] = wrap(ping, 3, zstd_raw(body), size=len(body) + 1)
    s["nested"] = wrap(ping, 0, body, original=OP_COMPRESSED)
    s["unknown-id"] = wrap(ping, 9, body)
    s["negative-size"] = wrap(ping, 0, body, size=-1)
    return s


def main():
    targets = {"client_msg": client_msg(), "upstream_reply": upstream_reply(),
               "redis_blob": redis_blob(), "conf_file": conf_file(), "bson_doc": bson_doc(),
               "compressed": compressed()}
    for target, seeds in targets.items():
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for old in glob.glob(os.path.join(d, "seed-*")):
            os.remove(old)
        for name, data in seeds.items():
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
        print("%s: %d seeds" % (target, len(seeds)))


if __name__ == "__main__":
    main()
