#!/usr/bin/env python3
"""tests/integration/advisor_fake.py: a fake MongoDB server that answers the
index advisor's commands with junk, for test_advisor.sh (advisor_driver.c).

    advisor_fake.py PORT [badhello | badstream]

It answers the handshake (OP_QUERY isMaster and OP_MSG hello) like a
standalone server, so that libmongoc selects it. With "badhello" it answers
the handshake itself with junk: an OP_REPLY announcing 3 documents and
holding 1, an OP_MSG hello with a section of kind 9. With "badstream" its
isMaster is sane but announces a topologyVersion (so that a libmongoc client
pool's monitor switches to OP_MSG hello: libmongoc 1.23 crashes on the
answer, a section of kind 9). Then listIndexes, count and explain on the
collection named after a fault answer that fault:

  badcursor  listIndexes: {ok: 1, cursor: 5} (no cursor document)
  nokey      listIndexes: an entry without a key
  toomany    listIndexes: 65 entries
  deep       listIndexes: an entry nested 300 levels deep
  endless    listIndexes: a cursor id that never ends, empty batches
  badcount   count: {ok: 1, n: "many"}
  negcount   count: {ok: 1, n: -5}
  badexplain explain: {ok: 1, queryPlanner: 5}; listIndexes and count sane
  errexplain explain: {ok: 0, code: 2}; listIndexes and count sane
  unauth     listIndexes: {ok: 0, code: 13}
  garbage    listIndexes: a reply whose OP_MSG section kind is 9
  sections   listIndexes: a reply with a body and two kind-1 sections
  checksum   listIndexes: a reply with checksumPresent (and its right checksum)
  close      listIndexes: the connection closed instead of a reply
  collscan   explain: mongod's documented COLLSCAN plan (tests/fixtures/explain)
  ixscan     explain: mongod's documented FETCH over IXSCAN plan
  view       listIndexes: CommandNotSupportedOnView (166); count: junk
  missing    listIndexes: NamespaceNotFound (26); count: junk

Anything else (a sane collection) has the _id index and 5000 documents.
Commands it does not know get {ok: 1}. Prints "ready" once listening.
Python 3 stdlib only; wire helpers from mctest.py.
"""
import json
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctest import (  # noqa: E402
    OP_MSG, OP_QUERY, OP_REPLY, Int64, crc32c, decode, encode, header, nested, read_message,
    section_seq,
)

HELLO = {
    "ismaster": True,
    "isWritablePrimary": True,
    "helloOk": True,
    "maxBsonObjectSize": 16777216,
    "maxMessageSizeBytes": 48000000,
    "maxWriteBatchSize": 100000,
    "logicalSessionTimeoutMinutes": 30,
    "minWireVersion": 0,
    "maxWireVersion": 13,
    "ok": 1.0,
}

ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}


def cursor(ns, batch, cid=0, first=True):
    return {"cursor": {"id": Int64(cid), "ns": ns, ("firstBatch" if first else "nextBatch"): batch},
            "ok": 1.0}


def reply_list_indexes(db, coll):
    ns = "%s.%s" % (db, coll)
    if coll == "badcursor":
        return {"ok": 1.0, "cursor": 5}
    if coll == "nokey":
        return cursor(ns, [ID_INDEX, {"v": 2, "name": "x_1"}])
    if coll == "toomany":
        return cursor(ns, [ID_INDEX] + [{"v": 2, "key": {"f%d" % i: 1}, "name": "f%d_1" % i}
                                        for i in range(64)])
    if coll == "deep":
        return cursor(ns, [ID_INDEX, {"v": 2, "key": {"a": 1}, "name": "a_1", "x": nested(300)}])
    if coll == "endless":
        return cursor(ns, [], cid=123)
    if coll == "view":
        return {"ok": 0.0, "code": 166, "codeName": "CommandNotSupportedOnView",
                "errmsg": "Namespace %s is a view, not a collection" % ns}
    if coll == "missing":
        return {"ok": 0.0, "code": 26, "codeName": "NamespaceNotFound",
                "errmsg": "ns does not exist: %s" % ns}
    if coll == "unauth":
        return {"ok": 0.0, "code": 13, "codeName": "Unauthorized",
                "errmsg": "not authorized on %s to execute command" % db}
    return cursor(ns, [ID_INDEX])


def reply_count(coll):
    if coll in ("badcount", "view", "missing"):
        return {"n": "many", "ok": 1.0}
    if coll == "negcount":
        return {"n": -5, "ok": 1.0}
    return {"n": 5000, "ok": 1.0}


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "explain")


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return json.load(f)


def reply_explain(inner):
    coll = next(iter(inner.values()), "") if inner else ""
    if coll == "collscan":
        return fixture("mongod-find-collscan.json")
    if coll == "ixscan":
        return fixture("mongod-find-ixscan-fetch.json")
    if coll == "badexplain":
        return {"ok": 1.0, "queryPlanner": 5}
    if coll == "errexplain":
        return {"ok": 0.0, "code": 2, "codeName": "BadValue", "errmsg": "cannot explain"}
    return {"queryPlanner": {"winningPlan": {"stage": "COLLSCAN"}}, "ok": 1.0}


def msg(doc, response_to, kind=0, extra=b"", flags=0):
    body = struct.pack("<I", flags) + bytes([kind]) + encode(doc) + extra
    if flags & 1:
        m = header(16 + len(body) + 4, 7, response_to, OP_MSG) + body
        return m + struct.pack("<I", crc32c(m))
    return header(16 + len(body), 7, response_to, OP_MSG) + body


def serve(s, mode):
    s.settimeout(60)
    try:
        while True:
            raw = read_message(s)
            if raw is None:
                return
            length, rid, _, opcode = struct.unpack_from("<iiii", raw)
            hello = dict(HELLO)
            if mode == "badstream":
                hello["topologyVersion"] = {"processId": bytes(12), "counter": Int64(0)}
            if opcode == OP_QUERY:
                doc = encode(hello)
                body = struct.pack("<iqii", 0, 0, 0, 3 if mode == "badhello" else 1) + doc
                s.sendall(header(16 + len(body), 7, rid, OP_REPLY) + body)
                continue
            body = decode(raw, 21) if raw[20] == 0 else {}
            name = next(iter(body), "")
            db = body.get("$db", "")
            kind, extra, flags = 0, b"", 0
            if name.lower() in ("hello", "ismaster"):
                out = hello
                kind = 9 if mode in ("badhello", "badstream") else 0
            elif name == "listIndexes":
                coll = body[name]
                if coll == "close":
                    return
                if coll == "garbage":
                    kind = 9
                if coll == "sections":
                    extra = section_seq("a", [{"x": 1}]) + section_seq("b", [{"y": 1}])
                if coll == "checksum":
                    flags = 1
                out = reply_list_indexes(db, coll)
            elif name == "getMore":
                out = cursor("%s.%s" % (db, body.get("collection", "")), [], cid=123, first=False)
            elif name == "count":
                out = reply_count(body[name])
            elif name == "explain":
                out = reply_explain(body.get("explain") or {})
            else:
                out = {"ok": 1.0}
            s.sendall(msg(out, rid, kind, extra, flags))
    except (OSError, ValueError, struct.error):
        return
    finally:
        try:
            s.close()
        except OSError:
            pass


def main():
    port = int(sys.argv[1])
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    print("ready", flush=True)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(s, mode), daemon=True).start()


if __name__ == "__main__":
    main()
