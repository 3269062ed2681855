#!/usr/bin/env python3
"""tests/integration/lb_check.py: mongocache in front of a load balancer
(loadBalanced=true in its upstream URI), driven by test_load_balanced.sh. Behind the
proxy, rs_relay.py --lb is a load balancer in front of two mongos (both relaying to one
FerretDB), each mongos answering as mongos does behind a load balancer: a connection's
first hello must say loadBalanced: true, else LoadBalancerSupportMismatch (354) and the
connection is closed; that hello's reply carries the mongos's serviceId.

  lb      --proxy P --http H --control C --relay R --ferret F
          the relay itself, seen by pymongo: with loadBalanced=true it works, without
          it the hello is refused (354): the relay enforces what mongos does. Through
          the proxy (URI loadBalanced=true): /stats shows a LoadBalanced topology, the
          balancer its one target; /readyz's probe reaches it; pymongo and the Node
          driver write and read, a cursor
          is read to its end through getMore, a repeated find is a cache hit and a write
          invalidates it; every first hello the relay got said loadBalanced (none
          refused), and the proxy's connections went to both mongos. The upstream's
          serviceId never reaches a client; a loadBalanced client gets the proxy's own.
  without --proxy P --http H --control C --log L
          a proxy whose URI lacks loadBalanced=true: the monitor's hello is refused, so
          /stats shows no server in use; a client's find fails with the balancer's reason,
          and the proxy's log (--log L) says once what to add to the URI.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
import rs_relay  # noqa: E402

import pymongo  # noqa: E402
from pymongo.errors import OperationFailure, PyMongoError  # noqa: E402

DB = "lbcheck"


def topology(http):
    return mctest.stats(http).get("topology", {})


def wait_topology(http, want_type, within=10.0):
    t = {}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        t = topology(http)
        if t.get("type") == want_type and (want_type != "LoadBalanced" or t.get("targets")):
            break
        time.sleep(0.05)
    return t


def raw_hello(port, extra=None):
    """A hello on a new raw connection to port: the reply document (or None)."""
    doc = {"hello": 1, "$db": "admin"}
    doc.update(extra or {})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(mctest.op_msg(doc))
        raw = mctest.read_message(s)
    return mctest.Reply(raw).doc if raw else None


def hits(http):
    return mctest.stats(http).get("cache", {}).get("hits", 0)


def lb(a):
    relay_uri = "mongodb://127.0.0.1:%d/" % a.relay
    # ---- the relay is a load balancer as a real driver sees one --------------------
    with mctest.Case(None, "the relay, to pymongo directly: loadBalanced=true works, "
                     "without it the hello is refused (354)") as c:
        d = pymongo.MongoClient(relay_uri + "?loadBalanced=true", serverSelectionTimeoutMS=5000)
        d[DB].direct.insert_one({"_id": 1})
        c.check(d[DB].direct.find_one({"_id": 1}) == {"_id": 1}, "loadBalanced=true: no read")
        d.close()
        reply = raw_hello(a.relay)
        c.check(reply is not None and reply.get("code") == 354,
                "a hello without loadBalanced got %r" % (reply,))
    before = rs_relay.control(a.control, "stats")

    t = wait_topology(a.http, "LoadBalanced")
    mctest.tap(t.get("type") == "LoadBalanced" and t.get("targets") == ["127.0.0.1:%d" % a.relay],
               "/stats shows a LoadBalanced topology, the balancer its one target", repr(t))

    status, _, body = mctest.http(a.http, "/readyz")
    mctest.tap(status == 200 and b'"reachable"' in body,
               "/readyz's own probe (its hello says loadBalanced too) finds the upstream "
               "reachable", "%d %r" % (status, body[:300]))

    uri = "mongodb://127.0.0.1:%d/" % a.proxy
    with mctest.Case(None, "pymongo through the proxy: writes, reads, a cursor read through "
                     "getMore") as c:
        p = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        coll = p[DB].docs
        coll.insert_many([{"_id": i, "v": i * i} for i in range(30)])
        got = [d["_id"] for d in coll.find({}, batch_size=4).sort("_id", 1)]
        c.check(got == list(range(30)), "a cursor of 30 in batches of 4 gave %r" % got)
        h0 = hits(a.http)
        first = coll.find_one({"_id": 7})
        second = coll.find_one({"_id": 7})
        c.check(first == second == {"_id": 7, "v": 49}, "reads %r %r" % (first, second))
        c.check(hits(a.http) > h0, "the repeated find was no cache hit")
        coll.update_one({"_id": 7}, {"$set": {"v": -1}})
        third = coll.find_one({"_id": 7})
        c.check(third == {"_id": 7, "v": -1}, "after the update, the read gave %r" % (third,))
        p.close()

    with mctest.Case(None, "the Node driver through the proxy: a write and its read") as c:
        js = ("const {MongoClient}=require('mongodb');(async()=>{"
              "const c=new MongoClient(process.argv[1],{serverSelectionTimeoutMS:5000});"
              "const k=c.db('%s').collection('node');await k.insertOne({_id:'n',v:1});"
              "const d=await k.findOne({_id:'n'});console.log(JSON.stringify(d));"
              "await c.close();})().catch(e=>{console.log('error '+e.message);"
              "process.exit(1)});" % DB)
        out = subprocess.run([a.node, "-e", js, uri], cwd=a.node_dir, capture_output=True,
                             text=True, timeout=60)
        c.check(out.stdout.strip() == '{"_id":"n","v":1}',
                "node printed %r %r" % (out.stdout[-300:], out.stderr[-300:]))

    after = rs_relay.control(a.control, "stats")
    new_conns = [after["lb_conns"][i] - before["lb_conns"][i] for i in (0, 1)]
    with mctest.Case(None, "every upstream connection's first hello said loadBalanced: true "
                     "(none refused), and they went to both mongos") as c:
        c.check(after["lb_refused"] == before["lb_refused"],
                "refused first hellos: %d -> %d" % (before["lb_refused"], after["lb_refused"]))
        c.check(after["lb_hellos"] - before["lb_hellos"] >= 2,
                "first hellos with loadBalanced: %d -> %d" % (before["lb_hellos"],
                                                               after["lb_hellos"]))
        c.check(min(new_conns) > 0, "connections per mongos: %r" % new_conns)
        c.note("connections per mongos %r, first hellos %d" %
               (new_conns, after["lb_hellos"] - before["lb_hellos"]))

    with mctest.Case(None, "the upstream's serviceId never reaches a client; a loadBalanced "
                     "client gets the proxy's own") as c:
        plain = raw_hello(a.proxy)
        c.check(plain is not None and plain.get("ok") == 1 and "serviceId" not in plain,
                "a plain hello through the proxy: %r" % (plain,))
        c.check(plain is not None and plain.get("msg") == "isdbgrid",
                "the persona is not mongos: %r" % (plain,))
        lbh = raw_hello(a.proxy, {"loadBalanced": True})
        relay_ids = {str(x) for x in after.get("service_ids", [])}
        sid = str(lbh.get("serviceId")) if lbh else ""
        c.check(lbh is not None and sid and sid not in relay_ids,
                "a loadBalanced hello through the proxy: %r (the mongos: %r)" % (lbh, relay_ids))
        p = pymongo.MongoClient(uri + "?loadBalanced=true", serverSelectionTimeoutMS=5000)
        try:
            got = p[DB].docs.find_one({"_id": 3})
        finally:
            p.close()
        c.check(got == {"_id": 3, "v": 9}, "a loadBalanced pymongo client read %r" % (got,))


def without(a):
    deadline = time.monotonic() + 10
    t = {}
    while time.monotonic() < deadline:
        t = topology(a.http)
        if t.get("error"):
            break
        time.sleep(0.05)
    # (libmongoc's text varies: the error reply, or the connection the balancer closed)
    mctest.tap(t.get("error") and not t.get("targets"),
               "without loadBalanced=true: /stats shows no server in use, and an error",
               repr(t))
    p = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % a.proxy, serverSelectionTimeoutMS=3000)
    err = ""
    try:
        p[DB].docs.find_one({})
    except OperationFailure as e:
        err = str(e)
    except PyMongoError as e:
        err = "%s: %s" % (type(e).__name__, e)
    finally:
        p.close()
    mctest.tap("load balancer" in err, "... and a client's find fails with the balancer's "
               "reason", err)
    with open(a.log, errors="replace") as f:
        warned = f.read().count("event=upstream_load_balancer")
    mctest.tap(warned == 1, "... and the log says once to add loadBalanced=true (%d)" % warned)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("phase", choices=["lb", "without"])
    p.add_argument("--proxy", type=int, required=True)
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--relay", type=int, default=0)
    p.add_argument("--log", default="")
    p.add_argument("--node", default="node")
    p.add_argument("--node-dir", default=".")
    a = p.parse_args()
    {"lb": lb, "without": without}[a.phase](a)
    mctest.plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
