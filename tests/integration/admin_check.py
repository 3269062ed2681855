#!/usr/bin/env python3
"""tests/integration/admin_check.py: an operator's surface (issue 8, admin).

Groups run by test_admin.sh; each prints unnumbered TAP lines.

  shapes  GET /shapes after a known workload through proxy A: counts and
          hits equal what was sent, p50 <= p99, the advice flag true for a
          shape that scans (the advisor's report) and false for _id, no
          value ever shown, the orders and limits, bad parameters refused;
          with advice = off (proxy E) a 404 with a JSON reason
  http    POST /cache/flush and /cache/invalidate: refused without the
          token (401), with a wrong one (401), on a proxy with no token
          configured (403), with a body, a GET, a bad namespace (NUL byte,
          no dot, extra parameter); with the token, the entries drop on A
          (its count) AND on proxy B sharing the Redis tier: a document
          changed on the server behind both proxies' backs is served stale
          by B until the invalidation through A, then fresh; another
          namespace stays cached; a flush drops that one too
  inband  through pymongo: mongocacheStats (the /stats counters),
          mongocacheInvalidate and mongocacheFlush on A (admin_commands on)
          reach B through Redis; wrong types, no dot, another database:
          ok 0 with mongod's codes; on B (admin_commands off, no auth) every
          one is refused (13) and nothing is dropped
  race    the answer waits for Redis (issue 9): Redis pauses writes (CLIENT PAUSE
          WRITE) so the bump of an invalidation or a flush through C (redis_timeout
          5s) is held while B's reads (MGET) still go through: the answer
          comes only once the bump is confirmed, so B, read right after the
          ok, is fresh (in-band and HTTP); through A (redis_timeout 50ms) the
          bump is not confirmed in time: an error (HostUnreachable, 503), not
          ok; on G (its Redis unreachable) the same at once; clients that
          leave while their answer waits do not hurt C
  stop    C stops (SIGTERM) while an HTTP flush waits for Redis: that flush
          is never answered ok (503, or the connection closes); the script
          checks that C exits 0 (and, under ASan, cleanly)
  auth    proxies D (admin_users = the user) and D2 (admin_users = the same
          name on another database) in front of FerretDB with
          authentication: the listed principal may, the unauthenticated
          and the unlisted may not
"""
import argparse
import datetime
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time

import bson
import pymongo
from pymongo.errors import OperationFailure

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import stats, tap  # noqa: E402


def http(port, path, method="GET", token=None, body=None):
    """(status, parsed JSON or None, raw text)."""
    code, _, raw = mctest.http(port, path, method, token, body)
    raw = raw.decode()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    return code, doc, raw


def client(port, **kw):
    kw.setdefault("serverSelectionTimeoutMS", 10000)
    kw.setdefault("directConnection", True)
    kw.setdefault("socketTimeoutMS", 10000)
    return pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, **kw)


def cache_ctr(hport, name, token=None):
    return stats(hport, token)["cache"].get(name, 0)


def wait_tier(hports, tokens, secs=10):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            if all((stats(h, t)["cache"].get("redis") or {}).get("state") == "connected"
                   for h, t in zip(hports, tokens)):
                return True
        except (OSError, AssertionError):
            pass
        time.sleep(0.1)
    return False


def command(cl, doc, db="admin"):
    """The reply document, or {"ok": 0, "code", "errmsg"} when the command failed."""
    try:
        return cl[db].command(doc)
    except OperationFailure as e:
        d = dict(e.details or {})
        d.setdefault("ok", 0)
        d.setdefault("code", e.code)
        return d
    except pymongo.errors.PyMongoError as e:
        return {"ok": "exception", "exception": repr(e)}


# ---- shapes ------------------------------------------------------------------------------


def group_shapes(a):
    direct = client(a.ferret_port)
    coll = direct["app"]["shapes"]
    coll.drop()
    coll.insert_many([{"_id": i, "author": "VAL-a-%d" % i, "isbn": "VAL-i-%d" % i}
                      for i in range(40)])
    pa = client(a.a_port)
    pc = pa["app"]["shapes"]
    sent = {"author": 7, "isbn_hits": 4, "id": 3}
    for i in range(sent["author"]):
        list(pc.find({"author": "VAL-secret-author-%d" % i}))
    for _ in range(1 + sent["isbn_hits"]):
        list(pc.find({"isbn": "VAL-secret-isbn-same"}))
    for i in range(sent["id"]):
        list(pc.find({"_id": 1000 + i}))

    # The advisor's next runs see the shapes; wait for its advice on author.
    deadline = time.monotonic() + 15
    flag_ok = False
    doc = None
    while time.monotonic() < deadline:
        code, doc, raw = http(a.a_http, "/shapes?limit=100", token=a.token)
        rows = [r for r in (doc or {}).get("shapes", []) if r["namespace"] == "app.shapes"]
        if any("author" in r["shape"] and r["advice"] for r in rows):
            flag_ok = True
            break
        time.sleep(0.2)
    code, doc, raw = http(a.a_http, "/shapes?limit=100", token=a.token)
    tap(code == 200 and doc is not None, "GET /shapes with the token: 200, JSON", code, raw[:300])
    rows = [r for r in doc.get("shapes", []) if r["namespace"] == "app.shapes"]

    def one(pred):
        m = [r for r in rows if pred(r)]
        return m[0] if len(m) == 1 else None

    author = one(lambda r: r["shape"].startswith("find app.shapes") and "author" in r["shape"])
    isbn = one(lambda r: r["shape"].startswith("find app.shapes") and "isbn" in r["shape"])
    by_id = one(lambda r: r["shape"].startswith("find app.shapes") and "_id" in r["shape"])
    tap(author is not None and author["count"] == sent["author"] and author["hits"] == 0,
        "the author shape: count %d (7 distinct values sent), hits 0" %
        (author or {}).get("count", -1), json.dumps(rows)[:600])
    tap(isbn is not None and isbn["count"] == 1 and isbn["hits"] == sent["isbn_hits"] and
        abs(isbn["hit_ratio"] - 0.8) < 1e-9,
        "the isbn shape (one value, 5 times): count 1, hits 4, hit_ratio 0.8", json.dumps(isbn))
    tap(by_id is not None and by_id["count"] == sent["id"], "the _id shape: count 3",
        json.dumps(by_id))
    fields = {"id", "namespace", "shape", "count", "hits", "hit_ratio", "server_ms_sum",
              "server_ms_max", "p50_ms", "p99_ms", "documents", "last_seen", "advice"}
    tap(all(fields <= set(r) for r in doc["shapes"]), "every row has every field",
        [sorted(fields - set(r)) for r in doc["shapes"]])
    tap(all(0 <= r["p50_ms"] <= r["p99_ms"] for r in doc["shapes"]) and
        all(r["p99_ms"] > 0 for r in rows),
        "p50 <= p99 in every row, and the measured shapes' p99 > 0",
        [(r["p50_ms"], r["p99_ms"]) for r in doc["shapes"]])
    tap(all(r["p99_ms"] <= max(r["server_ms_max"], 0) + 1e-9 for r in rows) and
        all(r["server_ms_sum"] >= r["server_ms_max"] for r in rows),
        "p99 never above the largest round trip; the sum at least the max")
    tap(author is not None and author["documents"] == 0 and by_id is not None,
        "documents returned: 0 for values that match nothing")
    ids = [r["id"] for r in doc["shapes"]]
    tap(all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids) and len(set(ids)) == len(ids),
        "ids are 16 hex digits, one per shape")
    now = datetime.datetime.now(datetime.timezone.utc)
    seen = [datetime.datetime.strptime(r["last_seen"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc) for r in rows]
    tap(all(abs((now - s).total_seconds()) < 120 for s in seen), "last_seen is a recent UTC time",
        [r["last_seen"] for r in rows])
    tap(flag_ok and author is not None and author["advice"] is True and
        author.get("advice_index") == "author_1",
        "the author shape scans: advice true, index author_1 (the advisor's report)",
        json.dumps(author), json.dumps(http(a.a_http, "/advice", token=a.token)[1])[:500])
    tap(by_id is not None and by_id["advice"] is False, "the _id shape: no advice")
    code, _, raw = http(a.a_http, "/shapes?limit=100&sort=count", token=a.token)
    tap("VAL-" not in raw and "secret" not in raw, "no value appears in /shapes")

    ok_orders = True
    for sort, key in (("count", "count"), ("server_time", "server_ms_sum"),
                      ("hit_ratio", "hit_ratio")):
        code, d, raw = http(a.a_http, "/shapes?sort=%s&limit=100" % sort, token=a.token)
        vals = [r[key] for r in d["shapes"]] if d else None
        if code != 200 or d["sort"] != sort or vals != sorted(vals, reverse=True):
            ok_orders = False
            print("# sort=%s: %s %s" % (sort, code, vals))
    tap(ok_orders, "sort=count, server_time, hit_ratio: rows in that order, most first")
    code, d, _ = http(a.a_http, "/shapes?limit=2", token=a.token)
    tap(code == 200 and len(d["shapes"]) == 2 and d["limit"] == 2, "limit=2: two rows")
    bad = [http(a.a_http, "/shapes?" + q, token=a.token)[0]
           for q in ("limit=0", "limit=101", "limit=abc", "limit=", "sort=bogus", "x=1",
                     "limit=1%00")]
    tap(bad == [400] * 7, "bad parameters (limit 0, 101, abc, empty, NUL; unknown sort or "
        "parameter): 400", bad)
    code, _, _ = http(a.a_http, "/shapes")
    tap(code == 401, "GET /shapes without the token: 401 (as /stats)")
    code, d, raw = http(a.e_http, "/shapes")
    tap(code == 404 and d is not None and "advice" in d.get("error", "") and d["advice"] is False,
        "advice = off: 404 with a JSON reason", code, raw)


# ---- HTTP actions ------------------------------------------------------------------------


class Tier:
    """Documents changed on the server behind both proxies' backs, read through B."""

    def __init__(self, a, start=0):
        self.direct = client(a.ferret_port)
        self.a = client(a.a_port)
        self.b = client(a.b_port)
        for c in ("books", "other"):
            self.direct["app"][c].drop()
            self.direct["app"][c].insert_one({"_id": 1, "k": "k1", "v": 0})
            self.direct["app"][c].insert_one({"_id": 2, "k": "k2", "v": 0})
        self.n = start  # values differ from one group to the next

    def read_b(self, coll):
        return self.b["app"][coll].find_one({"k": "k1"}, {"_id": 0, "v": 1})["v"]

    def change(self, coll):
        """A new value on the server, not seen by either proxy."""
        self.n += 1
        self.direct["app"][coll].update_one({"k": "k1"}, {"$set": {"v": self.n}})
        return self.n


def group_http(a):
    t = Tier(a)
    tap(wait_tier([a.a_http, a.b_http], [a.token, None]), "both proxies' Redis tier connected")
    flush, inval = "/cache/flush", "/cache/invalidate?namespace=app.books"
    st = [http(a.a_http, flush, "POST")[0], http(a.a_http, flush, "POST", "wrong")[0],
          http(a.a_http, flush, "POST", a.token + "x")[0], http(a.a_http, inval, "POST")[0]]
    tap(st == [401] * 4, "no token, a wrong one, the token plus a byte: 401", st)
    code, d, raw = http(a.b_http, flush, "POST")
    code2, _, _ = http(a.b_http, inval, "POST", "anything")
    tap(code == 403 and code2 == 403 and d is not None and "http_token" in d.get("error", ""),
        "on a proxy with no http_token: 403, saying http_token must be configured", code, raw)
    code, d, _ = http(a.a_http, flush, "GET", a.token)
    tap(code == 405 and d is not None and d.get("ok") is False, "GET /cache/flush: 405, JSON")
    code, _, _ = http(a.a_http, flush, "POST", a.token, body=b"x=1")
    tap(code == 413, "a POST with a body: 413", code)
    code, _, _ = http(a.a_http, "/stats", "POST", a.token)
    tap(code == 501, "POST /stats: still refused (GET only)", code)
    code, _, _ = http(a.a_http, "/metrics", "POST", a.token)
    tap(code == 501, "POST /metrics: refused too (GET only; found in review: it answered)", code)
    bad = [http(a.a_http, "/cache/invalidate" + q, "POST", a.token)
           for q in ("", "?namespace=appbooks", "?namespace=app%00.books", "?namespace=.books",
                     "?namespace=app.books&namespace=app.other", "?ns=app.books",
                     "?namespace=" + "a" * 300 + ".b", "?namespace=app.bo%0Aoks")]
    tap([b[0] for b in bad] == [400] * 8 and all(b[1] and b[1].get("error") for b in bad),
        "no namespace, no dot, a NUL, an empty database, two namespaces, another name, 300 "
        "bytes, a newline: 400 with a reason", [(b[0], b[2][:80]) for b in bad])
    tap("'.'" in bad[1][2] and "NUL" in bad[2][2], "the reasons say what is wrong",
        bad[1][2], bad[2][2])

    # B caches both namespaces; A caches two app.books reads.
    for c in ("books", "other"):
        t.read_b(c)
    list(t.a["app"]["books"].find({"k": "k1"}))
    list(t.a["app"]["books"].find({"k": "k2"}))
    hits0 = cache_ctr(a.b_http, "hits")
    new_books, new_other = t.change("books"), t.change("other")
    stale = (t.read_b("books"), t.read_b("other"))
    tap(stale == (0, 0) and cache_ctr(a.b_http, "hits") == hits0 + 2,
        "B serves both namespaces from its cache (stale after a change made around it)", stale)
    code, d, raw = http(a.a_http, inval, "POST", a.token)
    tap(code == 200 and d == {"ok": True, "namespace": "app.books", "dropped": 2},
        "POST /cache/invalidate?namespace=app.books through A: ok, A dropped its 2 entries", raw)
    got = (t.read_b("books"), t.read_b("other"))
    tap(got == (new_books, 0),
        "B (sharing Redis) now reads app.books fresh from the server; app.other stays cached",
        got, (new_books, 0))
    code, d, raw = http(a.a_http, flush, "POST", a.token)
    tap(code == 200 and d is not None and d.get("ok") is True and "namespace" not in d and
        isinstance(d.get("dropped"), int), "POST /cache/flush through A: ok", raw)
    got = t.read_b("other")
    tap(got == new_other, "B reads app.other fresh after the flush through A", got, new_other)
    code, d, raw = http(a.a_http, "/cache/invalidate?namespace=app.nothing.here", "POST",
                        a.token)
    tap(code == 200 and d == {"ok": True, "namespace": "app.nothing.here", "dropped": 0},
        "invalidating a namespace nothing cached: ok, dropped 0", raw)


# ---- in-band -----------------------------------------------------------------------------


def group_inband(a):
    t = Tier(a, 1000)
    wait_tier([a.a_http, a.b_http], [a.token, None])
    ca, cb = t.a, t.b
    s = command(ca, {"mongocacheStats": 1})
    http_stats = stats(a.a_http, a.token)
    tap(s.get("ok") == 1 and "cache" in s and "counters" in s and "advice" in s,
        "mongocacheStats on A: ok 1, the /stats sections", json.dumps(s, default=str)[:300])
    tap(s["cache"]["hits"] == http_stats["cache"]["hits"] and
        s["cache"]["misses"] == http_stats["cache"]["misses"] and
        s["upstream"] == http_stats["upstream"],
        "... its counters equal GET /stats'")
    r = command(ca, {"mongocacheInvalidate": 5})
    tap(r.get("ok") == 0 and r.get("code") == 14, "mongocacheInvalidate: 5: TypeMismatch (14)", r)
    r = command(ca, {"mongocacheInvalidate": "appbooks"})
    tap(r.get("ok") == 0 and r.get("code") == 2 and "'.'" in r.get("errmsg", ""),
        "a namespace without a dot: BadValue (2), saying so", r)
    r = command(ca, {"mongocacheInvalidate": "app\x00.books"})
    tap(r.get("ok") == 0 and r.get("code") == 2, "a NUL byte in the namespace: BadValue", r)
    r = command(ca, {"mongocacheInvalidate": "a." + "x" * 100000})
    tap(r.get("ok") == 0 and r.get("code") == 2, "a 100,000-byte namespace: BadValue", r)
    r = command(ca, {"mongocacheInvalidate": {"$ne": 1}})
    tap(r.get("ok") == 0 and r.get("code") == 14, "a document as the namespace: TypeMismatch", r)
    r = command(ca, {"mongocacheFlush": 1}, db="app")
    tap(r.get("ok") == 0 and r.get("code") == 13 and "admin database" in r.get("errmsg", ""),
        "on another database than admin: Unauthorized (13), as mongod says", r)

    t.read_b("books")
    t.read_b("other")
    new_books = t.change("books")
    r = command(ca, {"mongocacheInvalidate": "app.books"})
    tap(r.get("ok") == 1 and r.get("namespace") == "app.books" and "dropped" in r,
        "mongocacheInvalidate \"app.books\" on A: ok 1", r)
    tap(t.read_b("books") == new_books, "... B reads app.books fresh (shared tier)")

    # B: admin_commands off, no authentication: refused, and nothing dropped.
    before = t.read_b("other")  # what B serves (and has cached) now
    new_other = t.change("other")
    hits0 = cache_ctr(a.b_http, "hits")
    refused = [command(cb, {c: v}) for c, v in (("mongocacheFlush", 1),
                                                ("mongocacheInvalidate", "app.other"),
                                                ("mongocacheStats", 1))]
    tap(all(x.get("ok") == 0 and x.get("code") == 13 and "admin_users" in x.get("errmsg", "")
            for x in refused),
        "on B (admin_commands off, no admin_users): all three Unauthorized (13), from the proxy",
        refused)
    got = t.read_b("other")
    tap(got == before and got != new_other and cache_ctr(a.b_http, "hits") == hits0 + 1,
        "... and B's entry is still there (stale value served from its cache)", got)
    r = command(ca, {"mongocacheFlush": 1})
    tap(r.get("ok") == 1 and "dropped" in r, "mongocacheFlush on A: ok 1", r)
    tap(t.read_b("other") == new_other, "... B reads app.other fresh")
    r = command(ca, {"ping": 1})
    tap(r.get("ok") == 1, "the connection still works after the admin commands")


# ---- the answer waits for Redis --------------------------------------------------------


PAUSE_ENDS = [0.0]  # monotonic time the last pause ends


def redis_pause(port, ms):
    """Redis holds every write (and script) for ms; reads go on (CLIENT PAUSE ms WRITE)."""
    PAUSE_ENDS[0] = time.monotonic() + ms / 1000.0
    args = [b"CLIENT", b"PAUSE", str(ms).encode(), b"WRITE"]
    msg = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(msg)
        got = s.recv(64)
    assert got.startswith(b"+OK"), got


def leave_waiting(port, hport, token):
    """An in-band flush and an HTTP flush whose clients close before the answer."""
    body = bson.encode({"mongocacheFlush": 1, "$db": "admin"})
    msg = struct.pack("<iiiiiB", 16 + 5 + len(body), 7, 0, 2013, 0, 0) + body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(msg)
    with socket.create_connection(("127.0.0.1", hport), timeout=5) as s:
        s.sendall(b"POST /cache/flush HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  token.encode() + b"\r\nContent-Length: 0\r\n\r\n")


def group_race(a):
    t = Tier(a, 2000)
    cc, ca, cg = client(a.c_port), client(a.a_port), client(a.g_port)
    tap(wait_tier([a.a_http, a.b_http, a.c_http], [a.token, None, a.token]),
        "A's, B's and C's Redis tier connected")

    def b_caches(coll):
        """B holds coll (read twice: the second a hit), then it changes around B."""
        # Not before the last pause is over: B's fill (a script) would wait for it.
        time.sleep(max(0.0, PAUSE_ENDS[0] - time.monotonic() + 0.1))
        t.read_b(coll)
        hits0 = cache_ctr(a.b_http, "hits")
        t.read_b(coll)
        new = t.change(coll)
        return new, t.read_b(coll) != new and cache_ctr(a.b_http, "hits") == hits0 + 2

    new_books, cached = b_caches("books")
    redis_pause(a.redis_port, 1000)
    r = command(cc, {"mongocacheInvalidate": "app.books"})
    got = t.read_b("books")  # at once, Redis still pausing writes: B's check (MGET) goes on
    tap(cached and r.get("ok") == 1 and r.get("namespace") == "app.books",
        "Redis pausing writes: mongocacheInvalidate on C answers ok 1 (once Redis took it)", r)
    tap(got == new_books, "... and B, read right after that ok, is fresh (no stale entry)", got,
        new_books)

    new_other, cached = b_caches("other")
    redis_pause(a.redis_port, 1000)
    code, d, raw = http(a.c_http, "/cache/invalidate?namespace=app.other", "POST", a.token)
    got = t.read_b("other")
    tap(cached and code == 200 and d is not None and d.get("ok") is True,
        "Redis pausing writes: POST /cache/invalidate on C answers 200 ok", code, raw)
    tap(got == new_other, "... and B, read right after that 200, is fresh", got, new_other)

    # A's redis_timeout (50ms) is shorter than the pause: the bump is not confirmed.
    redis_pause(a.redis_port, 1500)
    r = command(ca, {"mongocacheInvalidate": "app.books"})
    code, d, raw = http(a.a_http, "/cache/flush", "POST", a.token)
    tap(r.get("ok") == 0 and r.get("code") == 6 and "Redis" in r.get("errmsg", ""),
        "Redis not confirming in time: mongocacheInvalidate on A is HostUnreachable (6), "
        "not ok", r)
    tap(code == 503 and d is not None and d.get("ok") is False and "Redis" in d.get("error", ""),
        "... and POST /cache/flush on A is 503 with the reason, not ok", code, raw)

    r = command(cg, {"mongocacheFlush": 1})
    code, d, raw = http(a.g_http, "/cache/invalidate?namespace=app.books", "POST", a.token)
    tap(r.get("ok") == 0 and r.get("code") == 6 and "unusable" in r.get("errmsg", "") and
        code == 503 and d is not None and d.get("ok") is False,
        "G (its Redis unreachable): mongocacheFlush HostUnreachable, POST 503: never ok", r, raw)

    # Pipelined behind a held answer (an in-band invalidation, then a write's ack,
    # each waiting for Redis): the replies after it must not overtake it.
    for label, first in (("mongocacheInvalidate", {"mongocacheInvalidate": "app.books",
                                                   "$db": "admin"}),
                         ("an insert's ack", {"insert": "order", "documents": [{"x": 1}],
                                              "$db": "app"})):
        time.sleep(max(0.0, PAUSE_ENDS[0] - time.monotonic() + 0.1))
        conn = mctest.Conn("127.0.0.1:%d" % a.c_port, 10.0)
        conn.call(mctest.op_msg({"find": "order", "filter": {}, "$db": "app"}), 10.0)
        redis_pause(a.redis_port, 700)
        # The ping touches no cache (relayed as it comes); the find asks Redis.
        conn.send(mctest.op_msg(first, request_id=9001) +
                  mctest.op_msg({"ping": 1, "$db": "admin"}, request_id=9002) +
                  mctest.op_msg({"find": "order%d" % random.randrange(1 << 30), "filter": {},
                                 "$db": "app"}, request_id=9003))
        t0 = time.monotonic()
        replies = [conn.recv_msg(10.0) for _ in range(3)]
        took = time.monotonic() - t0
        conn.sock.close()
        order = [r.response_to for r in replies]
        tap(order == [9001, 9002, 9003] and replies[0].ok() and took >= 0.3,
            "Redis pausing writes: %s (ok after %.2f s) pipelined before a ping and a find on "
            "C: the replies come in request order" % (label, took), order,
            [r.doc for r in replies])

    redis_pause(a.redis_port, 800)
    leave_waiting(a.c_port, a.c_http, a.token)
    time.sleep(1.0)  # the pause ends and the held bumps are confirmed, nobody to answer
    code, _, _ = http(a.c_http, "/stats", token=a.token)
    r = command(cc, {"ping": 1})
    tap(code == 200 and r.get("ok") == 1,
        "C still serves after an in-band and an HTTP client left while their answer waited",
        code, r)



def group_stop(a):
    got = {}

    def post():
        try:
            got["r"] = http(a.c_http, "/cache/flush", "POST", a.token)[:2]
        except OSError as e:  # the connection closed unanswered: never an ok
            got["r"] = ("closed", repr(e))

    redis_pause(a.redis_port, 3000)
    th = threading.Thread(target=post)
    th.start()
    time.sleep(0.5)  # the flush waits for Redis (redis_timeout 5s, the pause 3s)
    os.kill(a.c_pid, signal.SIGTERM)
    th.join(10)
    r = got.get("r")
    print("# the waiting flush's answer: %r" % (r,))
    tap(r is not None and (r[0] == 503 or r[0] == "closed"),
        "C stopping while an HTTP flush waits for Redis: not ok (503, or closed unanswered)", r)


# ---- auth --------------------------------------------------------------------------------


def group_auth(a):
    def as_user(port):
        return client(port, username=a.user, password=a.password, authSource="admin")

    r = command(as_user(a.d_port), {"mongocacheFlush": 1})
    tap(r.get("ok") == 1 and "dropped" in r,
        "D, admin_users = %s@admin: the authenticated user may flush" % a.user, r)
    r = command(as_user(a.d_port), {"mongocacheStats": 1})
    tap(r.get("ok") == 1 and "cache" in r, "... and read the stats")
    r = command(client(a.d_port), {"mongocacheFlush": 1})
    tap(r.get("ok") == 0 and r.get("code") == 13 and "not authenticated" in r.get("errmsg", ""),
        "D, an unauthenticated connection: Unauthorized (13)", r)
    r = command(as_user(a.d2_port), {"mongocacheInvalidate": "app.books"})
    tap(r.get("ok") == 0 and r.get("code") == 13,
        "D2, admin_users = %s@app: the same user authenticated on admin is refused" % a.user, r)
    r = command(client(a.d_port, username=a.user, password=a.password + "x",
                       authSource="admin"), {"mongocacheFlush": 1})
    tap(r.get("ok") == 0 and r.get("code") in (13, 18),
        "D, a wrong password: refused", r)
    if a.d3_port:
        # D3: admin_commands on in front of this authenticating upstream. Until a
        # client has authenticated through it the proxy cannot tell; after one has,
        # admin_commands admits nobody: only admin_users (none here).
        r = command(client(a.d3_port), {"mongocacheStats": 1})
        first = r.get("ok") == 1
        as_user(a.d3_port).admin.command("ping")
        r = command(client(a.d3_port), {"mongocacheFlush": 1})
        tap(first and r.get("ok") == 0 and r.get("code") == 13,
            "D3, admin_commands on before an upstream authentication: open; after one: an "
            "unauthenticated connection is Unauthorized (13)", r)
        r = command(as_user(a.d3_port), {"mongocacheFlush": 1})
        tap(r.get("ok") == 0 and r.get("code") == 13,
            "D3: ... and so is the authenticated user, who is not in admin_users", r)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("group")
    p.add_argument("--ferret-port", type=int)
    p.add_argument("--a-port", type=int)
    p.add_argument("--a-http", type=int)
    p.add_argument("--b-port", type=int)
    p.add_argument("--b-http", type=int)
    p.add_argument("--e-http", type=int)
    p.add_argument("--d-port", type=int)
    p.add_argument("--d2-port", type=int)
    p.add_argument("--d3-port", type=int, default=0)
    p.add_argument("--c-port", type=int)
    p.add_argument("--c-http", type=int)
    p.add_argument("--g-port", type=int)
    p.add_argument("--g-http", type=int)
    p.add_argument("--redis-port", type=int)
    p.add_argument("--c-pid", type=int)
    p.add_argument("--token")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()
    {"shapes": group_shapes, "http": group_http, "inband": group_inband,
     "race": group_race, "stop": group_stop, "auth": group_auth}[a.group](a)
    mctest.plan()


if __name__ == "__main__":
    main()
