#!/usr/bin/env python3
"""tests/integration/redis_deploy_check.py: one proxy whose Redis tier is
down for a reason the test made (a refused certificate, a TLS port reached
in plaintext, ...), or up. Driven by test_redis_deploy.sh:

    redis_deploy_check.py down --name NAME --port P --http H --direct D
                               --log FILE --event EVENT --reason TEXT [--secs S]
        within S seconds (default 5) the proxy's log holds a line of EVENT
        at level error or warn whose reason holds TEXT; the tier's state is
        not "connected" (and never was: no redis_connected line); reads are
        answered equal to FerretDB's, counted as bypassed (redis_unavailable)
    redis_deploy_check.py up --name NAME --port P --http H --direct D [--secs S]
        the tier's state becomes "connected" within S seconds; a read is
        answered equal to FerretDB's and stored in Redis (redis_fills grows)
    redis_deploy_check.py cluster --name NAME --port P --http H --direct D --log FILE
        the tier reaches a Redis Cluster node: reads (the same one three
        times) are answered equal to FerretDB's, none is a Redis hit nor a
        fill, redis_errors grows, and a redis_cluster_unsupported warning is
        logged (once, however many errors)

Each prints unnumbered TAP lines and its plan (mctest.py).
"""
import argparse
import os
import re
import sys
import time

import pymongo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402

DB = "mcdeploy"


def rsec(s):
    return s["cache"].get("redis") or s.get("redis") or {}


def client(port):
    return pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, directConnection=True,
                               serverSelectionTimeoutMS=10000, socketTimeoutMS=10000)


def rows(cl, coll, flt):
    return list(cl[DB][coll].find(flt, sort=[("_id", 1)]))


def seed(direct, coll):
    direct[DB][coll].drop()
    direct[DB][coll].insert_many([{"_id": i, "k": i % 3, "t": "v%d" % i} for i in range(9)])


def log_lines(path, event):
    """The lines of EVENT in the log: (level, reason)."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if "event=%s " % event not in line and not line.rstrip().endswith("event=" + event):
                    continue
                lv = re.search(r"\blevel=(\w+)", line)
                rs = re.search(r'\breason="((?:[^"\\]|\\.)*)"', line)
                out.append((lv.group(1) if lv else "", rs.group(1) if rs else "", line.strip()))
    except OSError:
        pass
    return out


def g_down(a):
    d, p = client(a.direct), client(a.port)
    coll = "down_" + re.sub(r"\W", "_", a.name)
    with mctest.Case(mctest.TAP, "%s: refused with a clear log line, tier down, reads answered"
                     % a.name) as c:
        deadline = time.monotonic() + a.secs
        found = []
        while time.monotonic() < deadline:
            found = [x for x in log_lines(a.log, a.event)
                     if x[0] in ("error", "warn") and a.reason in x[1]]
            if found:
                break
            time.sleep(0.1)
        c.check(found, "no %s line (error or warn) with reason holding %r within %.0f s; "
                "lines of that event: %r" % (a.event, a.reason, a.secs,
                                             [x[2][:300] for x in log_lines(a.log, a.event)][:3]))
        if found:
            c.note(found[0][2][:300])
        st = rsec(mctest.stats(a.http, timeout=3))
        c.check(st.get("state") != "connected", "the tier says %r" % st.get("state"))
        c.check(not log_lines(a.log, "redis_connected"), "the tier connected at some point")
        seed(d, coll)
        before = mctest.stats(a.http, timeout=3)["cache"].get("bypass_reasons", {})
        for q in ({"k": 1}, {"k": 1}, {}):
            got, want = rows(p, coll, q), rows(d, coll, q)
            c.check(got == want, "read %r through the proxy differs from FerretDB's: %r"
                    % (q, got[:3]))
        after = mctest.stats(a.http, timeout=3)["cache"].get("bypass_reasons", {})
        dn = after.get("redis_unavailable", 0) - before.get("redis_unavailable", 0)
        c.check(dn >= 3, "reads not counted as redis_unavailable bypasses (+%d)" % dn)


def g_up(a):
    d, p = client(a.direct), client(a.port)
    coll = "up_" + re.sub(r"\W", "_", a.name)
    with mctest.Case(mctest.TAP, "%s: the tier connects and stores values" % a.name) as c:
        deadline = time.monotonic() + a.secs
        state = None
        while time.monotonic() < deadline:
            state = rsec(mctest.stats(a.http, timeout=3)).get("state")
            if state == "connected":
                break
            time.sleep(0.1)
        c.check(state == "connected", "state %r after %.0f s" % (state, a.secs))
        seed(d, coll)
        fills = rsec(mctest.stats(a.http, timeout=3)).get("counters", {}).get("redis_fills", 0)
        got, want = rows(p, coll, {"k": 2}), rows(d, coll, {"k": 2})
        c.check(got == want, "read differs from FerretDB's: %r" % got[:3])
        deadline = time.monotonic() + 3
        now = fills
        while time.monotonic() < deadline and now <= fills:
            time.sleep(0.05)
            now = rsec(mctest.stats(a.http, timeout=3)).get("counters", {}).get("redis_fills", 0)
        c.check(now > fills, "nothing stored in Redis (redis_fills %d -> %d)" % (fills, now))


def g_cluster(a):
    d, p = client(a.direct), client(a.port)
    coll = "cluster_" + re.sub(r"\W", "_", a.name)
    with mctest.Case(mctest.TAP, "%s: a Redis Cluster node is refused clearly, never served from"
                     % a.name) as c:
        deadline = time.monotonic() + a.secs
        while time.monotonic() < deadline:
            if rsec(mctest.stats(a.http, timeout=3)).get("state") == "connected":
                break
            time.sleep(0.1)
        seed(d, coll)
        before = rsec(mctest.stats(a.http, timeout=3)).get("counters", {})
        for q in ({"k": 0}, {"k": 0}, {"k": 0}):
            got, want = rows(p, coll, q), rows(d, coll, q)
            c.check(got == want, "read %r differs from FerretDB's: %r" % (q, got[:3]))
        time.sleep(0.3)
        after = rsec(mctest.stats(a.http, timeout=3)).get("counters", {})
        delta = {k: after.get(k, 0) - before.get(k, 0)
                 for k in ("redis_hits", "redis_fills", "redis_errors")}
        c.check(delta["redis_hits"] == 0 and delta["redis_fills"] == 0,
                "served or stored through a cluster node: %r" % delta)
        c.check(delta["redis_errors"] >= 3, "errors not counted: %r" % delta)
        warned = [x for x in log_lines(a.log, "redis_cluster_unsupported") if x[0] == "warn"]
        c.check(len(warned) == 1, "%d redis_cluster_unsupported warnings (want 1)" % len(warned))
        c.note("counters: %r" % delta)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("group", choices=["down", "up", "cluster"])
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--direct", type=int, required=True)
    ap.add_argument("--log")
    ap.add_argument("--event")
    ap.add_argument("--reason")
    ap.add_argument("--secs", type=float, default=5.0)
    a = ap.parse_args()
    if a.group == "down":
        g_down(a)
    elif a.group == "cluster":
        g_cluster(a)
    else:
        g_up(a)
    mctest.plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
