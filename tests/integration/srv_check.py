"""tests/integration/srv_check.py: the checks of test_srv.sh, one phase per run (the
script changes the DNS records between phases). Prints unnumbered TAP lines and the plan.

  serve   --http H --proxy P --targets a:1,b:2 --ferret FA,FB
          the monitor found the SRV records' two mongos servers; a client through the
          proxy writes and reads back, and the write is on one of the FerretDBs
  follow  --http H --proxy P --targets c:2 --ferret FA,FB --within S
          after the SRV records changed: the targets become exactly --targets within S
          seconds, and new connections' writes land behind them (the second FerretDB)
  rs      --http H --proxy P --targets PRIMARY --ferret FA,FB
          a replica set named by the TXT record: followed (its members' own addresses),
          and a write through the proxy lands on the primary's FerretDB
  tls     --http H --proxy P --targets t:3 --ferret F
          TLS on by default: the monitor and the proxy's connection check the server's
          certificate against the SRV record's host name; a write lands on FerretDB F
  lb      --http H --proxy P --targets a:1 --ferret F --control C
          a load balancer named by the SRV record, loadBalanced=true by the TXT record:
          /stats shows a LoadBalanced topology, a write through the proxy lands on
          FerretDB F, and the balancer (rs_relay.py --lb, control port C) refused no
          first hello: each said loadBalanced
  refused --http H --proxy P --error TEXT
          the monitor found no server: /stats says why (TEXT), and a client's command
          through the proxy fails at once with that reason instead of hanging
  nodns   --proxy P --ferret FA,FB
          with the DNS server gone, new connections still reach the server found (the
          loop connects to the address the monitor's thread resolved: it looks up no name)
"""

import argparse
import socket
import sys
import time

import pymongo
import pymongo.errors

import mctest


def topology(http):
    return mctest.stats(http).get("topology", {})


def wait_targets(http, want, within, kind="Sharded"):
    """Seconds until /stats lists exactly want (a set) as targets, or None; and the last view."""
    start = time.monotonic()
    t = {}
    while time.monotonic() - start < within:
        t = topology(http)
        if set(t.get("targets", [])) == want and t.get("type") == kind:
            return time.monotonic() - start, t
        time.sleep(0.05)
    return None, t


def insert_through(proxy, doc):
    """Inserts doc through the proxy on a new connection: "" or the error's text."""
    c = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % proxy, serverSelectionTimeoutMS=5000)
    try:
        c.srv.docs.insert_one(doc)
        return ""
    except pymongo.errors.PyMongoError as e:
        return str(e)
    finally:
        c.close()


def counts(ferret):
    return [pymongo.MongoClient("mongodb://127.0.0.1:%d/" % p, directConnection=True)
            .srv.docs.count_documents({}) for p in ferret]


def serve(a):
    want = set(a.targets.split(","))
    took, t = wait_targets(a.http, want, 10)
    mctest.tap(took is not None, "serve: /stats shows the SRV records' hosts as mongos targets",
               "want %s" % sorted(want), "got %r" % t)
    before = counts(a.ferret)
    c = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % a.proxy, serverSelectionTimeoutMS=5000)
    try:
        c.srv.docs.insert_one({"_id": "first", "v": 1})
        got = c.srv.docs.find_one({"_id": "first"})
        err = ""
    except pymongo.errors.PyMongoError as e:
        got, err = None, str(e)
    finally:
        c.close()
    mctest.tap(got is not None and got.get("v") == 1,
               "serve: a client through the proxy writes and reads its document back", err)
    after = counts(a.ferret)
    mctest.tap(sum(after) - sum(before) == 1,
               "serve: the write is on one FerretDB behind the SRV hosts",
               "before %r after %r" % (before, after))


def follow(a):
    want = set(a.targets.split(","))
    took, t = wait_targets(a.http, want, a.within)
    mctest.tap(took is not None,
               "follow: the monitor follows the changed SRV records within %g s" % a.within,
               "want %s" % sorted(want), "got %r" % t)
    if took is not None:
        print("# targets were the new record's %.2f s after this phase began (dnsmasq restarted "
              "with it just before; rescan 1 s)" % took)
    before = counts(a.ferret)
    n = 6
    for i in range(n):  # each on a new connection: all must go to the new target
        err = insert_through(a.proxy, {"_id": "follow%d" % i})
        if err:
            print("# write %d: %s" % (i, err))
    after = counts(a.ferret)
    mctest.tap(after[0] == before[0] and after[1] - before[1] == n,
               "follow: every new connection's write lands behind the new SRV record",
               "before %r after %r" % (before, after))


def rs(a):
    want = set(a.targets.split(","))
    took, t = wait_targets(a.http, want, 10, kind="ReplicaSetWithPrimary")
    mctest.tap(took is not None and t.get("primary") == a.targets,
               "rs: the TXT record's replicaSet is applied and the set's primary is the target",
               "want primary %s" % a.targets, "got %r" % t)
    before = counts(a.ferret)
    err = insert_through(a.proxy, {"_id": "rs"})
    after = counts(a.ferret)
    mctest.tap(after[0] - before[0] == 1 and after[1] == before[1],
               "rs: a write through the proxy lands on the primary's FerretDB",
               err, "before %r after %r" % (before, after))


def tls(a):
    want = set(a.targets.split(","))
    took, t = wait_targets(a.http, want, 10, kind="Single")
    mctest.tap(took is not None, "tls: the SRV record's host is the target, over TLS",
               "want %s" % sorted(want), "got %r" % t)
    before = counts(a.ferret)
    err = insert_through(a.proxy, {"_id": "tls"})
    after = counts(a.ferret)
    mctest.tap(after[0] - before[0] == 1,
               "tls: a write through the proxy reaches the server over TLS, its certificate "
               "checked against the SRV record's host name", err,
               "before %r after %r" % (before, after))


def lb(a):
    import rs_relay
    want = set(a.targets.split(","))
    took, t = wait_targets(a.http, want, 10, kind="LoadBalanced")
    mctest.tap(took is not None, "lb: the TXT record's loadBalanced=true is followed, the SRV "
               "record's host the one target", "want %s" % sorted(want), "got %r" % t)
    before = counts(a.ferret)
    err = insert_through(a.proxy, {"_id": "lb"})
    after = counts(a.ferret)
    relay = rs_relay.control(a.control, "stats")
    mctest.tap(after[0] - before[0] == 1 and relay["lb_hellos"] > 0 and relay["lb_refused"] == 0,
               "lb: a write through the proxy lands behind the balancer, every first hello "
               "saying loadBalanced", err, "before %r after %r" % (before, after), repr(relay))


def refused(a):
    deadline = time.monotonic() + 10
    t = {}
    while time.monotonic() < deadline:
        t = topology(a.http)
        if a.error in t.get("error", ""):
            break
        time.sleep(0.05)
    mctest.tap(a.error in t.get("error", "") and not t.get("targets"),
               "refused: /stats topology.error says why no server is used (%s)" % a.error,
               "got %r" % t)
    # a raw find (a driver would retry until its server selection timeout): the proxy's
    # own answer, timed
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", a.proxy), timeout=10) as sock:
            sock.sendall(mctest.op_msg({"find": "docs", "$db": "srv"}))
            raw = mctest.read_message(sock)
        reply = mctest.Reply(raw) if raw else None
    except OSError as e:
        reply = None
        print("# %s" % e)
    took = time.monotonic() - start
    errmsg = str(reply.doc.get("errmsg", "")) if reply and reply.doc else ""
    mctest.tap(reply is not None and not reply.ok() and a.error in errmsg and took < 3,
               "refused: a client's find gets an error reply with the reason (%.2f s)" % took,
               repr(reply))


def nodns(a):
    before = counts(a.ferret)
    err = insert_through(a.proxy, {"_id": "nodns"})
    after = counts(a.ferret)
    mctest.tap(after[1] - before[1] == 1,
               "nodns: with no DNS server, a new connection still reaches the SRV host found",
               err, "before %r after %r" % (before, after))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("phase", choices=["serve", "follow", "rs", "tls", "lb", "refused", "nodns"])
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--proxy", type=int, required=True)
    p.add_argument("--targets", default="")
    p.add_argument("--ferret", default="")
    p.add_argument("--within", type=float, default=10)
    p.add_argument("--error", default="")
    p.add_argument("--control", type=int, default=0)
    a = p.parse_args()
    a.ferret = [int(x) for x in a.ferret.split(",")] if a.ferret else []
    {"serve": serve, "follow": follow, "rs": rs, "tls": tls, "lb": lb, "refused": refused,
     "nodns": nodns}[a.phase](a)
    mctest.plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
