#!/usr/bin/env python3
"""tests/integration/cache_check.py: the query cache of a running mongocache.

Driven by test_cache.sh, which starts FerretDB and one proxy per group and runs
    cache_check.py GROUP --proxy PORT --http PORT --direct PORT [options]
Each group prints unnumbered TAP lines ("ok - ..." / "not ok - ..." /
"ok - ... # SKIP reason") with "# " diagnostics, then its plan (mctest.py); the
wrapper numbers them.

Groups (numbers are the sections of test_cache.sh):
  hits      1  a warm query is answered while FerretDB is stopped (SIGSTOP), a
               cold one is not; a read in flight across a write is not stored;
               identical reads in flight coalesce, or give up after the wait
  inval     2  every write through the proxy invalidates what it changes
               (--cache-write-grace 500ms proxy: also the w:0 write)
  bypass    3  reads that must not be cached (skip comment, afterClusterTime,
               $sample, $rand, tailable)
  off       3  --cache false: a pure pass-through
  offreload 3b cache off and on again by SIGHUP (--config, no Redis tier): off
               drops every entry and classifies nothing; back on, nothing is
               stored until the commands sent while off have ended
  ns        4  --cache-exclude, --cache-ttl-overrides, --cache-ttl
  auth      6  entries are per principal; unauthenticated and failed-login
               connections (FerretDB --test-enable-new-auth)
  tally     7  /stats counters equal the harness's own tally, exactly
  pipeline  8  50 pipelined finds, hits and misses mixed, answered in order;
               repeated cold finds (coalescing); a write between two finds

Every read is compared with the same read made straight to FerretDB where
that makes sense; every "it was a hit" is read from GET /stats.
Needs pymongo (its bson module builds the raw OP_MSG messages).
"""
import argparse
import base64
import hashlib
import hmac
import os
import random
import signal
import socket
import sys
import threading
import time

import bson
import pymongo
from bson import Binary, Int64, Timestamp
from pymongo import WriteConcern
from pymongo.errors import OperationFailure, PyMongoError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import Case, Tap, short  # noqa: E402


# ---- /stats ----------------------------------------------------------------------------


class Stats:
    def __init__(self, http_port):
        self.port = http_port

    def snap(self):
        return mctest.stats(self.port, timeout=3)


def cval(s, name):
    return s["cache"][name]


def bval(s, reason):
    return s["cache"].get("bypass_reasons", {}).get(reason, 0)


def nval(s, ns, name):
    return s.get("namespaces", {}).get(ns, {}).get(name, 0)


def sigstop(pid, timeout=5.0):
    """SIGSTOPs pid and waits (bounded) until the kernel shows it stopped: kill()
    returns before every thread of a busy process has stopped."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                    return True
        except OSError:
            return False
        time.sleep(0.005)
    return False


def wait_counter(st, base, name, want, timeout=5.0):
    """Waits (bounded) until cache counter `name` has risen by `want` since snapshot base:
    the proxy has acted on what was sent, however slow the machine is right now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cval(st.snap(), name) - cval(base, name) >= want:
            return True
        time.sleep(0.02)
    return False


def deltas(a, b, names=("hits", "misses", "fills", "bypassed", "invalidations",
                        "fills_refused_generation")):
    return {n: cval(b, n) - cval(a, n) for n in names}


# ---- clients ----------------------------------------------------------------------------


def client(port, **kw):
    kw.setdefault("serverSelectionTimeoutMS", 10000)
    return pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, **kw)


def direct_client(port, **kw):
    return client(port, directConnection=True, **kw)


def find_all(cl, db, coll, flt=None):
    return list(cl[db][coll].find(flt or {}, sort=[("_id", 1)]))


def op_msg(body, request_id=None, flags=0):
    """An OP_MSG with one kind-0 section (pymongo's BSON); returns (bytes, request id)."""
    rid = mctest.next_id() if request_id is None else request_id
    return mctest.op_msg(bson.encode(body), flags, request_id=rid), rid


class Wire(mctest.Conn):
    """A raw client connection: OP_MSG out, whole replies in (pymongo's BSON)."""

    def __init__(self, port, timeout=3.0):
        super().__init__(port, timeout, decoder=bson.decode)

    def recv(self, timeout=3.0):
        """(requestID, responseTo, opcode, flags, body document) of the next reply."""
        r = self.recv_msg(timeout)
        if r.error:
            raise ValueError(r.error)
        return r.request_id, r.response_to, r.opcode, r.flags, r.doc

    def cmd(self, body, timeout=3.0):
        data, rid = op_msg(body)
        self.send(data)
        _, to, _, _, doc = self.recv(timeout)
        if to != rid:
            raise ValueError("responseTo %d, want %d" % (to, rid))
        return doc


def scram_sha256(w, user, password, db="admin"):
    """SCRAM-SHA-256 login on a raw connection; returns the last reply document."""
    nonce = base64.b64encode(os.urandom(24)).decode()
    first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)
    r = w.cmd({"saslStart": 1, "mechanism": "SCRAM-SHA-256",
               "payload": Binary(("n,," + first_bare).encode()), "autoAuthorize": 1,
               "options": {"skipEmptyExchange": True}, "$db": db})
    if not r.get("ok"):
        return r
    server_first = bytes(r["payload"]).decode()
    fields = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = "c=biws,r=" + fields["r"]
    auth_message = ",".join((first_bare, server_first, without_proof))
    sig = hmac.new(stored_key, auth_message.encode(), hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
    r = w.cmd({"saslContinue": 1, "conversationId": r["conversationId"],
               "payload": Binary((without_proof + ",p=" + proof).encode()), "$db": db})
    for _ in range(2):
        if not r.get("ok") or r.get("done"):
            break
        r = w.cmd({"saslContinue": 1, "conversationId": r["conversationId"],
                   "payload": Binary(b""), "$db": db})
    return r


def batch(reply):
    return (reply or {}).get("cursor", {}).get("firstBatch")


# ---- 1: proof of hits ------------------------------------------------------------------


def group_hits(a, tap):
    st = Stats(a.http)
    D = direct_client(a.direct)
    db, coll = "mcc_hits", "t"
    docs = [{"_id": i, "v": "hit-%d" % i, "n": i * 7} for i in range(20)]
    D[db][coll].insert_many(docs)
    q = {"find": coll, "filter": {"n": {"$gte": 35}}, "sort": {"_id": 1}, "$db": db}
    q2 = {"find": coll, "filter": {"n": {"$lt": 35}}, "sort": {"_id": 1}, "$db": db}
    want = [d for d in docs if d["n"] >= 35]
    want2 = [d for d in docs if d["n"] < 35]
    w = Wire(a.proxy, 3.0)
    stopped = False
    try:
        with Case(tap, "hits: Q warmed through the proxy (miss then hit), same documents as FerretDB") as c:
            s0 = st.snap()
            r1 = w.cmd(q)
            r2 = w.cmd(q)
            s1 = st.snap()
            c.check(batch(r1) == want, "first Q: %s" % short(r1))
            c.check(batch(r2) == want, "second Q: %s" % short(r2))
            dl = deltas(s0, s1)
            c.check(dl["misses"] == 1 and dl["hits"] == 1 and dl["fills"] == 1, "stats deltas %s" % dl)
            looked = s1["counters"]["cache_lookups"] - s0["counters"]["cache_lookups"]
            c.check(looked == 2, "counters.cache_lookups +%d (want +2: one per read)" % looked)
        with Case(tap, "hits: FerretDB stopped (SIGSTOP): Q still answered within 1 s with the right "
                       "documents, cache.hits rose") as c:
            sigstop(a.ferret_pid)
            stopped = True
            time.sleep(0.1)
            s0 = st.snap()
            t = time.monotonic()
            try:
                r = w.cmd(q, timeout=1.0)
                took = time.monotonic() - t
                c.check(batch(r) == want, "Q while stopped: %s" % short(r))
                c.check(took < 1.0, "took %.3fs" % took)
            except socket.timeout:
                c.check(False, "Q not answered within 1 s while FerretDB is stopped (not served "
                               "from the cache)")
            s1 = st.snap()
            c.check(cval(s1, "hits") == cval(s0, "hits") + 1,
                    "cache.hits %d -> %d" % (cval(s0, "hits"), cval(s1, "hits")))
        with Case(tap, "hits: FerretDB stopped: a different query Q2 is NOT answered within 1 s "
                       "(it goes upstream); answered right after SIGCONT") as c:
            s0 = st.snap()
            data, rid = op_msg(q2)
            w.send(data)
            try:
                got = w.recv(1.0)
                c.check(False, "Q2 answered while FerretDB is stopped: %s" % short(got))
            except socket.timeout:
                pass
            os.kill(a.ferret_pid, signal.SIGCONT)
            stopped = False
            _, to, _, _, doc = w.recv(5.0)
            c.check(to == rid and batch(doc) == want2, "Q2 after SIGCONT: to=%d %s" % (to, short(doc)))
            s1 = st.snap()
            dl = deltas(s0, s1)
            c.check(dl["hits"] == 0 and dl["misses"] == 1, "stats deltas %s" % dl)
        with Case(tap, "hits: a read in flight while a write to its collection passes through the "
                       "proxy (FerretDB stopped, then resumed) is not stored; the next read is fresh") as c:
            q3 = {"find": coll, "filter": {"n": {"$gte": 70}}, "sort": {"_id": 1}, "$db": db}
            w2 = Wire(a.proxy, 3.0)
            try:
                s0 = st.snap()
                sigstop(a.ferret_pid)
                stopped = True
                data, rid = op_msg(q3)
                w.send(data)
                time.sleep(0.2)
                data2, rid2 = op_msg({"insert": coll, "documents": [{"_id": 500, "v": "race", "n": 500}],
                                      "$db": db})
                w2.send(data2)
                wait_counter(st, s0, "invalidations", 1)  # the write's first bump is done
                os.kill(a.ferret_pid, signal.SIGCONT)
                stopped = False
                _, to, _, _, doc = w.recv(5.0)
                c.check(to == rid and doc.get("ok") == 1, "Q3 reply %s" % short(doc))
                _, to2, _, _, doc2 = w2.recv(5.0)
                c.check(to2 == rid2 and doc2.get("ok") == 1 and doc2.get("n") == 1, "insert reply %s" % short(doc2))
                s1 = st.snap()
                dl = deltas(s0, s1)
                c.check(dl["misses"] == 1 and dl["fills"] == 0 and dl["fills_refused_generation"] == 1,
                        "stats deltas %s (want 1 miss, 0 fills, 1 fill refused)" % dl)
                r = w.cmd(q3)
                s2 = st.snap()
                want3 = list(D[db][coll].find({"n": {"$gte": 70}}, sort=[("_id", 1)]))
                c.check(batch(r) == want3 and any(d["_id"] == 500 for d in want3),
                        "Q3 after: %s, FerretDB %s" % (short(batch(r)), short(want3)))
                c.check(deltas(s1, s2)["hits"] == 0, "Q3 after the race was a hit: %s" % deltas(s1, s2))
            finally:
                if stopped:
                    os.kill(a.ferret_pid, signal.SIGCONT)
                    stopped = False
                w2.close()

        def coalesce(name, n_lo, hold, want_hit):
            """conn 1 sends Q (the leader); conn 2 sends the same Q and a ping in one
            write (the follower, then a request held behind it); FerretDB is
            stopped for `hold` seconds."""
            with Case(tap, name) as c:
                qc = {"find": coll, "filter": {"n": {"$gte": n_lo}}, "sort": {"_id": 1}, "$db": db}
                wantc = list(D[db][coll].find({"n": {"$gte": n_lo}}, sort=[("_id", 1)]))
                w2 = Wire(a.proxy, 3.0)
                nonlocal stopped
                try:
                    s0 = st.snap()
                    sigstop(a.ferret_pid)
                    stopped = True
                    data, rid = op_msg(qc)
                    w.send(data)
                    wait_counter(st, s0, "misses", 1)  # the leader is in flight
                    d2, rid2 = op_msg(qc)
                    d3, rid3 = op_msg({"ping": 1, "$db": "admin"})
                    w2.send(d2 + d3)
                    wait_counter(st, s0, "coalesced", 1)  # the follower is waiting
                    time.sleep(hold)
                    os.kill(a.ferret_pid, signal.SIGCONT)
                    stopped = False
                    _, to, _, _, doc = w.recv(5.0)
                    c.check(to == rid and batch(doc) == wantc, "leader: to=%d %s" % (to, short(doc)))
                    _, to, _, _, doc = w2.recv(5.0)
                    c.check(to == rid2 and batch(doc) == wantc, "follower: to=%d (want %d) %s"
                            % (to, rid2, short(doc)))
                    _, to, _, _, doc = w2.recv(5.0)
                    c.check(to == rid3 and doc.get("ok") == 1, "ping after the follower: to=%d (want %d) %s"
                            % (to, rid3, short(doc)))
                    s1 = st.snap()
                    dl = deltas(s0, s1, ("hits", "misses", "fills", "coalesced", "coalesced_timeouts"))
                    want_dl = {"hits": 1 if want_hit else 0, "misses": 1, "fills": 1, "coalesced": 1,
                               "coalesced_timeouts": 0 if want_hit else 1}
                    c.check(dl == want_dl, "stats deltas %s, want %s" % (dl, want_dl))
                finally:
                    if stopped:
                        os.kill(a.ferret_pid, signal.SIGCONT)
                        stopped = False
                    w2.close()

        coalesce("hits: coalescing: the same Q from a second connection while the first is in flight "
                 "waits for it and is answered from its reply (a hit, coalesced +1); the request "
                 "pipelined behind it is answered after it", 105, 0.15, True)
        coalesce("hits: coalescing: a waiting read gives up after --cache-coalesce-wait (%d ms) and "
                 "goes upstream (coalesced_timeouts +1), in order" % a.coalesce_ms, 112,
                 a.coalesce_ms / 1000.0 + 0.3, False)
    finally:
        if stopped:
            os.kill(a.ferret_pid, signal.SIGCONT)
        w.close()


# ---- 2: invalidation coverage ----------------------------------------------------------------


def group_inval(a, tap):
    st = Stats(a.http)
    P = client(a.proxy, maxPoolSize=1)
    D = direct_client(a.direct)
    DB = "mcc_inval"

    def seed(db, coll, n=5):
        D[db][coll].insert_many([{"_id": i, "v": i, "tag": "s%d" % (i % 2)} for i in range(n)])

    def row(name, write, reads, expect_change=True, seeds=None):
        """Warms every (db, coll) of reads (miss, then a hit), runs write(P) through
        the proxy, reads again: a miss, equal to FerretDB's answer."""
        with Case(tap, "invalidation: %s through the proxy, the next read is fresh and equals "
                       "FerretDB's" % name) as c:
            for db, coll in (seeds if seeds is not None else reads):
                seed(db, coll)
            before = []
            s0 = st.snap()
            for db, coll in reads:
                find_all(P, db, coll)
            s1 = st.snap()
            for db, coll in reads:
                before.append(find_all(P, db, coll))
            s2 = st.snap()
            dl = deltas(s1, s2)
            c.check(deltas(s0, s1)["misses"] == len(reads), "warming reads: %s" % deltas(s0, s1))
            c.check(dl["hits"] == len(reads) and dl["misses"] == 0,
                    "second reads not all hits: %s" % dl)
            write(P)
            s3 = st.snap()
            c.check(cval(s3, "invalidations") > cval(s2, "invalidations"),
                    "cache.invalidations did not rise (%d)" % cval(s3, "invalidations"))
            changed = False
            for (db, coll), old in zip(reads, before):
                got = find_all(P, db, coll)
                want = find_all(D, db, coll)
                c.check(got == want, "%s.%s through the proxy %s, FerretDB %s"
                        % (db, coll, short(got), short(want)))
                changed = changed or got != old
            s4 = st.snap()
            dl = deltas(s3, s4)
            c.check(dl["hits"] == 0 and dl["misses"] == len(reads),
                    "reads after the write were not misses: %s" % dl)
            if expect_change:
                c.check(changed, "the write changed nothing (the test proves nothing)")

    def coll_of(p, coll, db=DB):
        return p[db][coll]

    row("insert_one", lambda p: coll_of(p, "ins1").insert_one({"_id": 100, "v": 100}),
        [(DB, "ins1")])
    row("insert_many", lambda p: coll_of(p, "insm").insert_many([{"_id": 100 + i} for i in range(3)]),
        [(DB, "insm")])
    row("update_one", lambda p: coll_of(p, "upd1").update_one({"_id": 2}, {"$set": {"v": -2}}),
        [(DB, "upd1")])
    row("update_many", lambda p: coll_of(p, "updm").update_many({"tag": "s1"}, {"$inc": {"v": 10}}),
        [(DB, "updm")])
    row("replace_one", lambda p: coll_of(p, "repl").replace_one({"_id": 3}, {"x": "replaced"}),
        [(DB, "repl")])
    row("delete_one", lambda p: coll_of(p, "del1").delete_one({"_id": 0}), [(DB, "del1")])
    row("delete_many", lambda p: coll_of(p, "delm").delete_many({"tag": "s0"}), [(DB, "delm")])
    row("find_one_and_update",
        lambda p: coll_of(p, "fau").find_one_and_update({"_id": 1}, {"$set": {"v": "fau"}}),
        [(DB, "fau")])
    row("find_one_and_delete", lambda p: coll_of(p, "fad").find_one_and_delete({"_id": 4}),
        [(DB, "fad")])
    row("bulk_write (insert, update, replace, delete)",
        lambda p: coll_of(p, "bulk").bulk_write([
            pymongo.InsertOne({"_id": 50, "v": 50}),
            pymongo.UpdateOne({"_id": 1}, {"$set": {"v": "b"}}),
            pymongo.ReplaceOne({"_id": 2}, {"v": "r"}),
            pymongo.DeleteOne({"_id": 3}),
        ]), [(DB, "bulk")])

    # aggregate $out into the collection read: only if FerretDB has $out
    name = "invalidation: aggregate with $out into the read collection"
    try:
        seed(DB, "outprobe", 1)
        list(D[DB]["outprobe"].aggregate([{"$match": {}}, {"$out": "outprobe_target"}]))
        has_out = True
    except OperationFailure as e:
        has_out = False
        out_reason = "FerretDB v1.24.2 has no $out stage (%s %s)" % (e.code, (e.details or {}).get("codeName"))
    if has_out:
        seed(DB, "outsrc", 8)
        row("aggregate $out",
            lambda p: list(coll_of(p, "outsrc").aggregate([{"$match": {"v": {"$gte": 6}}},
                                                          {"$out": "outdst"}])),
            [(DB, "outdst")])
    else:
        tap.skip(name, out_reason)

    row("create_index", lambda p: coll_of(p, "cidx").create_index("v", name="v_1"),
        [(DB, "cidx")], expect_change=False)
    row("drop_index", lambda p: coll_of(p, "cidx2").drop_index("v_1"), [(DB, "cidx2")],
        expect_change=False, seeds=[])
    row("drop collection", lambda p: coll_of(p, "dropc").drop(), [(DB, "dropc")])
    row("drop database", lambda p: p.drop_database("mcc_dropdb"),
        [("mcc_dropdb", "a"), ("mcc_dropdb", "b")])
    row("renameCollection (source and target both read)",
        lambda p: p.admin.command("renameCollection", DB + ".ren_src", to=DB + ".ren_dst"),
        [(DB, "ren_src"), (DB, "ren_dst")], seeds=[(DB, "ren_src")])
    row("create (a collection in the database read: database-wide invalidation)",
        lambda p: p[DB].create_collection("created_new"), [(DB, "crt")], expect_change=False)

    # w:0: the write is oneway; fills of what it touches are refused for the grace
    with Case(tap, "invalidation: w:0 insert_one through the proxy: the read right after is not "
                   "served from the cache (goes upstream), nothing stored during the grace "
                   "(%d ms); after it the read is cached again and equals FerretDB's" % a.grace_ms) as c:
        coll = "wzero"
        seed(DB, coll)
        find_all(P, DB, coll)
        s1 = st.snap()
        old = find_all(P, DB, coll)
        s2 = st.snap()
        c.check(deltas(s1, s2)["hits"] == 1, "second read not a hit: %s" % deltas(s1, s2))
        P0 = P[DB].get_collection(coll, write_concern=WriteConcern(w=0))
        t_write = time.monotonic()
        r = P0.insert_one({"_id": 77, "v": "w0"})
        c.check(not r.acknowledged, "insert_one was acknowledged (not w:0)")
        got1 = find_all(P, DB, coll)
        got2 = find_all(P, DB, coll)
        s3 = st.snap()
        in_grace = time.monotonic() - t_write
        dl = deltas(s2, s3)
        c.check(dl["hits"] == 0, "a read right after the w:0 write was a hit (stale value served?): %s" % dl)
        c.check(dl["misses"] == 2, "reads right after the w:0 write: %s, want 2 misses" % dl)
        c.check(got1 != old, "the read right after the w:0 write returned the old documents "
                             "(%s)" % short(got1))
        if in_grace < a.grace_ms / 1000.0 - 0.05:
            c.check(dl["fills"] == 0 and dl["fills_refused_generation"] >= 1,
                    "fills during the grace: %s" % dl)
        else:
            c.note("reads took %.3fs: the grace may have passed, fills not checked" % in_grace)
        c.check(got2 == got1, "two reads within the grace differ: %s / %s" % (short(got1), short(got2)))
        time.sleep(max(0.0, a.grace_ms / 1000.0 + 0.15 - (time.monotonic() - t_write)))
        s4 = st.snap()
        got3 = find_all(P, DB, coll)
        got4 = find_all(P, DB, coll)
        s5 = st.snap()
        want = find_all(D, DB, coll)
        dl = deltas(s4, s5)
        c.check(dl["misses"] == 1 and dl["fills"] == 1 and dl["hits"] == 1,
                "after the grace: miss+fill then hit expected, got %s" % dl)
        c.check(got3 == want and got4 == want and any(d["_id"] == 77 for d in want),
                "after the grace: proxy %s / %s, FerretDB %s" % (short(got3), short(got4), short(want)))


# ---- 3: reads that must not be cached -----------------------------------------------------


def group_bypass(a, tap):
    st = Stats(a.http)
    P = client(a.proxy)
    D = direct_client(a.direct)
    db, coll = "mcc_bypass", "t"
    D[db][coll].insert_many([{"_id": i, "v": i} for i in range(5)])

    def plain_find(p):
        return batch(p[db].command("find", coll, filter={}, sort={"_id": 1}))

    # Warm the plain query, then change the data around the proxy: the plain
    # query is now stale in the cache; every bypassing read must see the change.
    plain_find(P)
    plain_find(P)
    D[db][coll].insert_one({"_id": 99, "v": "around"})
    fresh = find_all(D, db, coll)

    with Case(tap, "bypass control: the plain find is served stale from the cache after a write "
                   "around the proxy") as c:
        s0 = st.snap()
        got = plain_find(P)
        s1 = st.snap()
        c.check(deltas(s0, s1)["hits"] == 1, "not a hit: %s" % deltas(s0, s1))
        c.check(got != fresh, "the plain find is not stale: the checks below prove nothing")

    def bypass_case(name, reason, run, n=2, want=None):
        with Case(tap, "bypass: %s is not cached (bypass_reasons.%s +%d, hits and misses unchanged)"
                  % (name, reason, n)) as c:
            s0 = st.snap()
            results = []
            for _ in range(n):
                results.append(run(P))
            s1 = st.snap()
            dl = deltas(s0, s1)
            c.check(dl["hits"] == 0 and dl["misses"] == 0 and dl["fills"] == 0,
                    "stats deltas %s" % dl)
            c.check(bval(s1, reason) - bval(s0, reason) == n,
                    "bypass_reasons.%s %d -> %d" % (reason, bval(s0, reason), bval(s1, reason)))
            if want is not None:
                for r in results:
                    c.check(r == want, "result %s, FerretDB %s" % (short(r), short(want)))
            return results

    bypass_case('a find with comment "mongocache:nocache"', "skip_requested",
                lambda p: batch(p[db].command("find", coll, filter={}, sort={"_id": 1},
                                              comment="mongocache:nocache")), want=fresh)
    bypass_case('a find with comment "mongocache:nocache please" (prefix)', "skip_requested",
                lambda p: batch(p[db].command("find", coll, filter={}, sort={"_id": 1},
                                              comment="mongocache:nocache please")), n=1, want=fresh)
    bypass_case("a find with readConcern afterClusterTime", "after_or_at_cluster_time",
                lambda p: batch(p[db].command("find", coll, filter={}, sort={"_id": 1},
                                              readConcern={"level": "local",
                                                           "afterClusterTime": Timestamp(1, 1)})),
                want=fresh)

    def agg(stage):
        def run(p):
            try:
                return batch(p[db].command("aggregate", coll, pipeline=[stage], cursor={}))
            except OperationFailure as e:
                return "error %s" % e.code
        return run

    r = bypass_case("an aggregate with $sample", "nondeterministic_operator", agg({"$sample": {"size": 2}}))
    print("# $sample through the proxy: %s" % short(r, 200), flush=True)
    r = bypass_case("an aggregate with $rand", "nondeterministic_operator",
                    agg({"$addFields": {"r": {"$rand": {}}}}))
    print("# $rand through the proxy: %s" % short(r, 200), flush=True)

    # tailable: on a capped collection (FerretDB refuses it on others)
    D[db].create_collection("capped", capped=True, size=1 << 20)
    D[db]["capped"].insert_many([{"_id": i} for i in range(3)])

    def tail(p):
        r = p[db].command("find", "capped", filter={}, tailable=True)
        cid = r["cursor"]["id"]
        if cid:
            p[db].command("killCursors", "capped", cursors=[Int64(cid)])
        return batch(r)

    first = tail(D)
    D[db]["capped"].insert_one({"_id": 3})
    bypass_case("a tailable find (capped collection)", "tailable_or_await", tail, n=1)
    with Case(tap, "bypass: the tailable find sees a write made around the proxy") as c:
        got = tail(P)
        c.check(got == find_all(D, db, "capped") and got != first, "got %s" % short(got))


def group_off(a, tap):
    st = Stats(a.http)
    P = client(a.proxy)
    D = direct_client(a.direct)
    db, coll = "mcc_off", "t"
    D[db][coll].insert_many([{"_id": i} for i in range(4)])
    with Case(tap, "cache false: a read repeated 3 times goes upstream every time (hits 0, "
                   "bypass_reasons.cache_off +3, no cache lookup), a write around the proxy is seen "
                   "at once") as c:
        s0 = st.snap()
        got = [find_all(P, db, coll) for _ in range(2)]
        D[db][coll].insert_one({"_id": 9})
        got.append(find_all(P, db, coll))
        s1 = st.snap()
        c.check(s1["cache"]["enabled"] is False, "cache.enabled %r" % s1["cache"]["enabled"])
        c.check(cval(s1, "hits") == 0 and cval(s1, "misses") == 0 and cval(s1, "fills") == 0,
                "hits %d misses %d fills %d" % (cval(s1, "hits"), cval(s1, "misses"), cval(s1, "fills")))
        c.check(bval(s1, "cache_off") - bval(s0, "cache_off") == 3,
                "bypass_reasons.cache_off %d -> %d" % (bval(s0, "cache_off"), bval(s1, "cache_off")))
        looked = s1["counters"]["cache_lookups"] - s0["counters"]["cache_lookups"]
        c.check(looked == 0, "counters.cache_lookups +%d: cache off must look nothing up" % looked)
        c.check(got[0] == got[1] and got[2] == find_all(D, db, coll) and got[2] != got[1],
                "results %s" % short(got))


def reload_cache(a, st, on):
    """Rewrites the proxy's config file with cache = on, sends SIGHUP, waits for it."""
    with open(a.config, "w") as f:
        f.write("cache = %s\n" % ("true" if on else "false"))
    os.kill(a.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if st.snap()["cache"]["enabled"] is on:
            return True
        time.sleep(0.05)
    return False


def group_offreload(a, tap):
    """cache = off without a Redis tier does no cache work, and a reload back on stays right."""
    st = Stats(a.http)
    P = client(a.proxy)
    W = client(a.proxy)
    R = client(a.proxy)
    D = direct_client(a.direct)
    db, coll = "mcc_offr", "t"
    D[db][coll].insert_many([{"_id": i} for i in range(3)])
    find_all(P, db, coll)
    find_all(P, db, coll)
    with Case(tap, "cache off by reload (no Redis tier): every entry is dropped") as c:
        c.check(cval(st.snap(), "entries") >= 1, "entries before %d" % cval(st.snap(), "entries"))
        c.check(reload_cache(a, st, False), "cache.enabled never became false")
        c.check(cval(st.snap(), "entries") == 0, "entries after %d" % cval(st.snap(), "entries"))
    with Case(tap, "cache off: a write through the proxy is not classified (invalidations, "
                   "cache_lookups unchanged), a read after it is the server's") as c:
        s0 = st.snap()
        P[db][coll].insert_one({"_id": 10})
        got = find_all(P, db, coll)
        s1 = st.snap()
        c.check(cval(s1, "invalidations") == cval(s0, "invalidations"),
                "invalidations %d -> %d" % (cval(s0, "invalidations"), cval(s1, "invalidations")))
        c.check(s1["counters"]["cache_lookups"] == s0["counters"]["cache_lookups"],
                "cache_lookups %d -> %d" % (s0["counters"]["cache_lookups"],
                                            s1["counters"]["cache_lookups"]))
        c.check(got == find_all(D, db, coll), "results %s" % short(got))
    with Case(tap, "a write sent with cache off still running when a reload turns it on: reads "
                   "meanwhile are not looked up (nothing stored from before the write), which is "
                   "logged once; once it ends, reads are cached again and see it") as c:
        find_all(W, db, coll)  # W's and R's connections are up before FerretDB stops
        find_all(R, db, coll)
        os.kill(a.ferret_pid, signal.SIGSTOP)
        try:
            done = []
            n0 = st.snap()["counters"]["requests"]
            w = threading.Thread(target=lambda: done.append(
                W[db][coll].insert_one({"_id": 11}).acknowledged))
            w.start()
            # The insert is upstream, unanswered, once the proxy has taken it (a
            # loaded machine may take more than a moment to send it).
            deadline = time.monotonic() + 10
            while st.snap()["counters"]["requests"] == n0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            c.check(reload_cache(a, st, True), "cache.enabled never became true")
            s0 = st.snap()
            got = []
            r = threading.Thread(target=lambda: got.append(find_all(P, db, coll)))
            r.start()
            r2 = threading.Thread(target=lambda: got.append(find_all(R, db, coll)))
            r2.start()
            time.sleep(0.5)
        finally:
            os.kill(a.ferret_pid, signal.SIGCONT)
        w.join(20)
        r.join(20)
        r2.join(20)
        s1 = st.snap()
        c.check(done == [True] and len(got) == 2, "insert %r, reads %d" % (done, len(got)))
        c.check(s1["counters"]["cache_lookups"] == s0["counters"]["cache_lookups"],
                "the read was looked up: cache_lookups %d -> %d"
                % (s0["counters"]["cache_lookups"], s1["counters"]["cache_lookups"]))
        c.check(cval(s1, "fills") == cval(s0, "fills"),
                "fills %d -> %d" % (cval(s0, "fills"), cval(s1, "fills")))
        after = [find_all(P, db, coll) for _ in range(2)]
        s2 = st.snap()
        c.check(s2["counters"]["cache_lookups"] - s1["counters"]["cache_lookups"] == 2 and
                cval(s2, "hits") - cval(s1, "hits") == 1,
                "lookups +%d hits +%d" % (s2["counters"]["cache_lookups"] -
                                          s1["counters"]["cache_lookups"],
                                          cval(s2, "hits") - cval(s1, "hits")))
        c.check(after[0] == after[1] == find_all(D, db, coll) and {"_id": 11} in after[0],
                "results %s" % short(after))
        with open(a.log) as f:
            log = f.read()
        held, resumed = log.count("event=lookups_held"), log.count("event=lookups_resumed")
        c.check(held == 1 and resumed == 1 and log.find("event=lookups_held") <
                log.find("event=lookups_resumed"),
                "log: %d lookups_held line(s) (two reads held: one line), %d lookups_resumed"
                % (held, resumed))


# ---- 4: namespaces and TTLs --------------------------------------------------------------


def group_ns(a, tap):
    st = Stats(a.http)
    P = client(a.proxy)
    D = direct_client(a.direct)
    db = "mcc4"

    for coll in ("secret", "public", "fast", "slow"):
        D[db][coll].insert_many([{"_id": i, "c": coll} for i in range(3)])

    with Case(tap, "namespaces: --cache-exclude %s.secret is never a hit; %s.public (not "
                   "excluded) is" % (db, db)) as c:
        s0 = st.snap()
        for _ in range(3):
            find_all(P, db, "secret")
        D[db]["secret"].insert_one({"_id": 9})
        got = find_all(P, db, "secret")
        s1 = st.snap()
        c.check(got == find_all(D, db, "secret") and len(got) == 4, "after a direct write: %s" % short(got))
        dl = deltas(s0, s1)
        c.check(dl["hits"] == 0 and dl["misses"] == 0, "stats deltas %s" % dl)
        c.check(bval(s1, "namespace_excluded") - bval(s0, "namespace_excluded") == 4,
                "bypass_reasons.namespace_excluded %d -> %d"
                % (bval(s0, "namespace_excluded"), bval(s1, "namespace_excluded")))
        c.check(nval(s1, db + ".secret", "hits") == 0, "namespaces[secret] %s"
                % s1.get("namespaces", {}).get(db + ".secret"))
        find_all(P, db, "public")
        find_all(P, db, "public")
        s2 = st.snap()
        c.check(nval(s2, db + ".public", "hits") == 1 and nval(s2, db + ".public", "misses") == 1,
                "namespaces[public] %s" % s2.get("namespaces", {}).get(db + ".public"))

    def ttl_case(coll, ttl, label, stale_until=None):
        with Case(tap, "namespaces: %s: an entry of %s.%s is served stale after a write around the "
                       "proxy, then expires: fresh no earlier than %d ms and within %d ms of the fill"
                       % (label, db, coll, ttl, ttl + 200)) as c:
            t_send = time.monotonic()
            old = find_all(P, db, coll)   # miss: filled about now
            t_fill = time.monotonic()
            s0 = st.snap()
            D[db][coll].insert_one({"_id": 50, "c": "around"})
            fresh = find_all(D, db, coll)
            got = find_all(P, db, coll)
            t_stale = time.monotonic()
            s1 = st.snap()
            c.check(got == old and got != fresh,
                    "right after the direct write (%.0f ms after the fill) the proxy answered %s "
                    "(not the cached, stale value)" % ((t_stale - t_fill) * 1000, short(got)))
            c.check(deltas(s0, s1)["hits"] == 1, "not a hit: %s" % deltas(s0, s1))
            if stale_until is not None:
                time.sleep(max(0.0, stale_until / 1000.0 - (time.monotonic() - t_fill)))
                got = find_all(P, db, coll)
                at = (time.monotonic() - t_fill) * 1000
                c.check(got == old, "fresh already %.0f ms after the fill (TTL %d ms)" % (at, ttl))
            seen = None
            deadline = t_fill + (ttl + 600) / 1000.0
            while time.monotonic() < deadline:
                t = time.monotonic()
                got = find_all(P, db, coll)
                if got == fresh:
                    seen = time.monotonic()
                    break
                if got != old:
                    c.check(False, "neither old nor fresh: %s" % short(got))
                    break
                time.sleep(max(0.0, 0.02 - (time.monotonic() - t)))
            if seen is None:
                c.check(False, "still stale %d ms after the fill (TTL %d ms)" % (ttl + 600, ttl))
            else:
                early = (seen - t_send) * 1000
                late = (seen - t_fill) * 1000
                c.note("fresh %.0f ms after the fill" % late)
                c.check(early >= ttl - 20, "fresh after only %.0f ms (TTL %d ms)" % (early, ttl))
                c.check(late <= ttl + 200, "fresh only after %.0f ms (TTL %d ms + 200)" % (late, ttl))

    ttl_case("fast", 300, "--cache-ttl-overrides %s.fast=300ms" % db)
    ttl_case("slow", 1000, "--cache-ttl 1s (default TTL)", stale_until=700)


# ---- 6: auth isolation ----------------------------------------------------------------------


def group_auth(a, tap):
    st = Stats(a.http)
    ua, pa, ub, pb = a.user, a.password, a.user + "_b", a.password + "_b"
    DA = direct_client(a.direct, username=ua, password=pa, authSource="admin")
    db, coll = "mcc_auth", "t"
    DA[db][coll].insert_many([{"_id": i, "owner": "A", "v": i} for i in range(4)])
    have_b = False
    with Case(tap, "auth: a second user created with createUser (FerretDB --test-enable-new-auth)") as c:
        try:
            DA.admin.command("createUser", ub, pwd=pb, roles=[])
            have_b = True
        except OperationFailure as e:
            c.check(False, "createUser failed: %s" % e)
    print("# FerretDB v1.24.2 does not enforce roles (connectionStatus authenticatedUserRoles is "
          "always empty): user B may read what A reads; what is tested is that B never gets A's "
          "cache entry", flush=True)
    want = find_all(DA, db, coll)
    q = {"find": coll, "filter": {}, "sort": {"_id": 1}, "$db": db}

    PA = client(a.proxy, username=ua, password=pa, authSource="admin", maxPoolSize=1)
    with Case(tap, "auth: user A warms Q through the proxy (miss, then hit)") as c:
        s0 = st.snap()
        r1 = find_all(PA, db, coll)
        r2 = find_all(PA, db, coll)
        s1 = st.snap()
        dl = deltas(s0, s1)
        c.check(r1 == want and r2 == want, "results %s" % short([r1, r2]))
        c.check(dl["misses"] == 1 and dl["hits"] == 1 and dl["fills"] == 1, "stats deltas %s" % dl)
        c.check(nval(s1, db + "." + coll, "hits") == 1, "namespace %s" % s1["namespaces"].get(db + "." + coll))

    with Case(tap, "auth: an unauthenticated connection sending Q gets 13 Unauthorized, not data; "
                   "cache.hits unchanged") as c:
        w = Wire(a.proxy)
        try:
            s0 = st.snap()
            r1 = w.cmd(q)
            r2 = w.cmd(q)
            s1 = st.snap()
            for r in (r1, r2):
                c.check(r.get("ok") == 0 and r.get("code") == 13 and "cursor" not in r,
                        "reply %s" % short(r))
            dl = deltas(s0, s1)
            c.check(dl["hits"] == 0 and dl["fills"] == 0, "stats deltas %s" % dl)
        finally:
            w.close()
        DU = direct_client(a.direct)
        try:
            DU[db].command("find", coll, filter={}, sort={"_id": 1})
            c.check(False, "FerretDB answered the unauthenticated find directly")
        except OperationFailure as e:
            c.check(e.code == 13, "direct: %s" % e)

    with Case(tap, "auth: user B sending Q is a miss (not A's entry), then B's own hit") as c:
        if not have_b:
            c.check(False, "no second user")
        else:
            PB = client(a.proxy, username=ub, password=pb, authSource="admin")
            s0 = st.snap()
            r1 = find_all(PB, db, coll)
            s1 = st.snap()
            r2 = find_all(PB, db, coll)
            s2 = st.snap()
            dl = deltas(s0, s1)
            c.check(dl["misses"] == 1 and dl["hits"] == 0, "B's first Q: stats deltas %s" % dl)
            dl = deltas(s1, s2)
            c.check(dl["hits"] == 1 and dl["misses"] == 0, "B's second Q: stats deltas %s" % dl)
            c.check(r1 == want and r2 == want, "B's results %s" % short([r1, r2]))
            PB.close()

    with Case(tap, "auth: a raw SCRAM-SHA-256 login as A on a new connection shares A's entry (hit)") as c:
        w = Wire(a.proxy)
        try:
            r = scram_sha256(w, ua, pa)
            c.check(r.get("ok") == 1 and r.get("done"), "login %s" % short(r))
            s0 = st.snap()
            r = w.cmd(q)
            s1 = st.snap()
            c.check(batch(r) == want, "Q %s" % short(r))
            c.check(deltas(s0, s1)["hits"] == 1, "stats deltas %s" % deltas(s0, s1))
        finally:
            w.close()

    with Case(tap, "auth: a connection after a failed login (wrong password) is a bypass "
                   "(bypass_reasons.auth_state rises), gets an error, not A's data") as c:
        w = Wire(a.proxy)
        try:
            r = scram_sha256(w, ua, pa + "-wrong")
            c.check(r.get("ok") == 0 and r.get("code") == 18, "failed login %s" % short(r))
            s0 = st.snap()
            r = w.cmd(q)
            s1 = st.snap()
            c.check(r.get("ok") == 0 and r.get("code") == 13 and "cursor" not in r, "Q %s" % short(r))
            dl = deltas(s0, s1)
            c.check(dl["hits"] == 0 and dl["misses"] == 0, "stats deltas %s" % dl)
            c.check(bval(s1, "auth_state") == bval(s0, "auth_state") + 1,
                    "bypass_reasons.auth_state %d -> %d" % (bval(s0, "auth_state"), bval(s1, "auth_state")))
        finally:
            w.close()

    with Case(tap, "auth: A logged in, then a failed login attempt on the same connection: Q is a "
                   "bypass (auth_state), not a hit") as c:
        w = Wire(a.proxy)
        try:
            r = scram_sha256(w, ua, pa)
            c.check(r.get("ok") == 1, "login %s" % short(r))
            r = scram_sha256(w, ub if have_b else ua, "wrong-password")
            c.check(r.get("ok") == 0, "second login did not fail: %s" % short(r))
            s0 = st.snap()
            r = w.cmd(q)
            s1 = st.snap()
            c.note("FerretDB's answer after the failed second login: %s" % short(r, 150))
            dl = deltas(s0, s1)
            c.check(dl["hits"] == 0 and dl["misses"] == 0, "stats deltas %s" % dl)
            c.check(bval(s1, "auth_state") == bval(s0, "auth_state") + 1,
                    "bypass_reasons.auth_state %d -> %d" % (bval(s0, "auth_state"), bval(s1, "auth_state")))
        finally:
            w.close()


# ---- 7: the counters match a tally ----------------------------------------------------------


def group_tally(a, tap):
    st = Stats(a.http)
    P = client(a.proxy)
    D = direct_client(a.direct)
    db = "mcc_tally"
    D[db]["t"].insert_many([{"_id": i, "k": i % 3, "s": "x%d" % i} for i in range(12)])
    D[db]["u"].insert_many([{"_id": i} for i in range(3)])

    reads = {
        "Q1": ("t", lambda p: list(p[db]["t"].find({"k": 1}, sort=[("_id", 1)]))),
        "Q2": ("t", lambda p: list(p[db]["t"].find({}, {"s": 1}, sort=[("_id", -1)], limit=4))),
        "C1": ("t", lambda p: p[db].command("count", "t", query={"k": {"$gte": 1}})["n"]),
        "D1": ("t", lambda p: sorted(p[db]["t"].distinct("k"))),
        "A1": ("t", lambda p: list(p[db]["t"].aggregate([{"$match": {"k": 2}}, {"$sort": {"_id": 1}}]))),
        "U1": ("u", lambda p: list(p[db]["u"].find({}, sort=[("_id", 1)]))),
    }
    writes = {
        "ins": ("t", lambda p: p[db]["t"].insert_one({"_id": 100, "k": 1, "s": "new"})),
        "upd": ("t", lambda p: p[db]["t"].update_many({"k": 2}, {"$set": {"k": 1}})),
        "del": ("t", lambda p: p[db]["t"].delete_one({"_id": 0})),
        "insu": ("u", lambda p: p[db]["u"].insert_one({"_id": 10})),
    }
    script = ("Q1 Q1 Q2 Q1 C1 C1 D1 D1 A1 A1 U1 U1 ins Q1 Q1 Q2 C1 U1 upd D1 D1 A1 A1 Q1 "
              "del Q2 Q2 C1 insu U1 U1 Q1 D1").split()

    cached = {"t": set(), "u": set()}
    tally = {"hits": 0, "misses": 0, "invalidations": 0}
    ns = {c: {"hits": 0, "misses": 0, "invalidations": 0} for c in cached}
    mismatches = []
    s0 = st.snap()
    for step in script:
        if step in writes:
            coll, fn = writes[step]
            fn(P)
            cached[coll].clear()
            tally["invalidations"] += 1
            ns[coll]["invalidations"] += 1
            continue
        coll, fn = reads[step]
        kind = "hits" if step in cached[coll] else "misses"
        tally[kind] += 1
        ns[coll][kind] += 1
        cached[coll].add(step)
        got, want = fn(P), fn(D)
        if got != want:
            mismatches.append("%s: proxy %s, FerretDB %s" % (step, short(got, 120), short(want, 120)))
    s1 = st.snap()
    print("# script: %s" % " ".join(script), flush=True)
    print("# tally: %s; per namespace %s" % (tally, ns), flush=True)

    with Case(tap, "stats: every read of the script through the proxy equals FerretDB's") as c:
        for m in mismatches:
            c.check(False, m)
    with Case(tap, "stats: cache.hits, cache.misses, cache.invalidations equal the tally exactly "
                   "(%d hits, %d misses, %d invalidations)" % (tally["hits"], tally["misses"],
                                                               tally["invalidations"])) as c:
        for k in ("hits", "misses", "invalidations"):
            c.check(cval(s1, k) - cval(s0, k) == tally[k],
                    "cache.%s: %d, tally %d" % (k, cval(s1, k) - cval(s0, k), tally[k]))
        c.check(cval(s1, "fills") - cval(s0, "fills") == tally["misses"],
                "cache.fills %d, want one per miss (%d)" % (cval(s1, "fills") - cval(s0, "fills"),
                                                             tally["misses"]))
        reads_n = tally["hits"] + tally["misses"]
        c.check(abs(s1["cache"]["hit_ratio"] - round(cval(s1, "hits") / max(1, cval(s1, "hits") + cval(s1, "misses")), 4)) < 1e-4,
                "cache.hit_ratio %r" % s1["cache"]["hit_ratio"])
        c.note("%d reads" % reads_n)
    with Case(tap, 'stats: namespaces["%s.t"] and ["%s.u"] hits, misses, invalidations equal the '
                   'tally exactly' % (db, db)) as c:
        for coll in ("t", "u"):
            for k in ("hits", "misses", "invalidations"):
                got = nval(s1, "%s.%s" % (db, coll), k) - nval(s0, "%s.%s" % (db, coll), k)
                c.check(got == ns[coll][k], "namespaces[%s.%s].%s: %d, tally %d" % (db, coll, k, got, ns[coll][k]))


# ---- 8: pipelining --------------------------------------------------------------------------


def group_pipeline(a, tap):
    st = Stats(a.http)
    D = direct_client(a.direct)
    db, coll = "mcc_pipe", "t"
    docs = [{"_id": i, "v": i * i, "s": "doc-%d" % i} for i in range(120)]
    D[db][coll].insert_many(docs)

    def body(lo, hi):
        return {"find": coll, "filter": {"_id": {"$gte": lo, "$lt": hi}}, "sort": {"_id": 1}, "$db": db}

    def want(lo, hi):
        return [d for d in docs if lo <= d["_id"] < hi]

    rng = random.Random(8)
    pattern = [True] * 25 + [False] * 25   # True: warm (a hit)
    rng.shuffle(pattern)
    # a hit waiting behind a miss right at the start: swap to make it so
    if pattern[0]:
        j = pattern.index(False)
        pattern[0], pattern[j] = pattern[j], pattern[0]
    if not pattern[1]:
        j = pattern.index(True, 2)
        pattern[1], pattern[j] = pattern[j], pattern[1]
    queries = []
    wi = ci = 0
    for warm in pattern:
        if warm:
            queries.append((True, wi, wi + 2))
            wi += 2
        else:
            queries.append((False, 60 + ci, 60 + ci + 1 + ci % 3))
            ci += 1

    w = Wire(a.proxy, 5.0)
    try:
        with Case(tap, "pipelining: 50 finds (25 warm, 25 cold, mixed) in one write: 50 replies "
                       "in request order, right responseTo and documents; 25 hits, 25 misses") as c:
            for warm, lo, hi in queries:
                if warm:
                    r = w.cmd(body(lo, hi))
                    c.check(batch(r) == want(lo, hi), "warming %d-%d: %s" % (lo, hi, short(r)))
            s0 = st.snap()
            msgs = [op_msg(body(lo, hi)) for _, lo, hi in queries]
            w.send(b"".join(m for m, _ in msgs))
            wrong = 0
            for i, ((m, rid), (warm, lo, hi)) in enumerate(zip(msgs, queries)):
                _, to, opcode, _, doc = w.recv(5.0)
                if to != rid or batch(doc) != want(lo, hi) or doc.get("cursor", {}).get("id") != 0:
                    wrong += 1
                    if wrong <= 5:
                        c.check(False, "reply %d (%s %d-%d): responseTo %d (want %d) %s"
                                % (i, "warm" if warm else "cold", lo, hi, to, rid, short(doc, 200)))
            c.check(wrong == 0, "%d of 50 replies wrong" % wrong)
            s1 = st.snap()
            dl = deltas(s0, s1)
            c.check(dl["hits"] == 25 and dl["misses"] == 25, "stats deltas %s" % dl)
            c.note("pattern (H hit, M miss): %s" % "".join("H" if x else "M" for x in pattern))

        with Case(tap, "pipelining: 40 finds in one write where cold queries repeat (the repeat "
                       "waits for the first, coalescing): replies in order, right documents; "
                       "hits, misses and coalesced as tallied") as c:
            warm = [(100 + 2 * i, 102 + 2 * i) for i in range(5)]   # ranges not read above
            for lo, hi in warm:
                w.cmd(body(lo, hi))
            cold = [(90 + i, 91 + i) for i in range(8)]
            rng = random.Random(88)
            seq = []
            for k in range(40):
                if k % 3 == 0:
                    seq.append(("w", warm[rng.randrange(len(warm))]))
                else:
                    seq.append(("c", cold[rng.randrange(len(cold))]))
            # The tally: a cold key is a miss the first time, a hit every time
            # after (from the entry, or by waiting for the first while it is in
            # flight: how many coalesce depends on when replies come in).
            seen = set()
            t_hits = t_miss = 0
            for kind, key in seq:
                if kind == "w" or key in seen:
                    t_hits += 1
                else:
                    seen.add(key)
                    t_miss += 1
            s0 = st.snap()
            msgs = [op_msg(body(lo, hi)) for _, (lo, hi) in seq]
            w.send(b"".join(m for m, _ in msgs))
            wrong = 0
            for i, ((m, rid), (kind, (lo, hi))) in enumerate(zip(msgs, seq)):
                _, to, _, _, doc = w.recv(5.0)
                if to != rid or batch(doc) != want(lo, hi):
                    wrong += 1
                    if wrong <= 5:
                        c.check(False, "reply %d (%s %d-%d): responseTo %d (want %d) %s"
                                % (i, kind, lo, hi, to, rid, short(doc, 200)))
            c.check(wrong == 0, "%d of 40 replies wrong" % wrong)
            s1 = st.snap()
            dl = deltas(s0, s1, ("hits", "misses", "fills", "coalesced", "coalesced_timeouts"))
            c.check(dl["hits"] == t_hits and dl["misses"] == t_miss and dl["fills"] == t_miss
                    and dl["coalesced_timeouts"] == 0,
                    "stats deltas %s, tally: %d hits, %d misses" % (dl, t_hits, t_miss))
            c.note("coalesced: %d (a repeat that found its first still in flight)" % dl["coalesced"])

        with Case(tap, "pipelining: [Q (warm), insert, Q, Q] in one write: the first Q is a hit "
                       "with the old documents, the Qs after the insert see it (read your writes)") as c:
            qb = body(0, 6)
            w.cmd(qb)
            old = want(0, 6)
            s0 = st.snap()
            m1, r1 = op_msg(qb)
            m2, r2 = op_msg({"insert": coll, "documents": [{"_id": 3.5, "v": -1, "s": "between"}], "$db": db})
            m3, r3 = op_msg(qb)
            m4, r4 = op_msg(qb)
            w.send(m1 + m2 + m3 + m4)
            got = [w.recv(5.0) for _ in range(4)]
            s1 = st.snap()
            new = list(D[db][coll].find({"_id": {"$gte": 0, "$lt": 6}}, sort=[("_id", 1)]))
            c.check([g[1] for g in got] == [r1, r2, r3, r4], "responseTo order %s" % [g[1] for g in got])
            c.check(batch(got[0][4]) == old, "first Q: %s" % short(got[0][4]))
            c.check(got[1][4].get("n") == 1, "insert: %s" % short(got[1][4]))
            c.check(len(new) == len(old) + 1, "FerretDB: %s" % short(new))
            for k in (2, 3):
                c.check(batch(got[k][4]) == new, "Q %d after the insert: %s" % (k, short(got[k][4])))
            dl = deltas(s0, s1, ("hits", "misses", "coalesced", "fills"))
            c.check(dl["hits"] >= 1, "stats deltas %s" % dl)
            c.note("stats deltas %s" % dl)
    finally:
        w.close()


GROUPS = {
    "hits": group_hits, "inval": group_inval, "bypass": group_bypass, "off": group_off,
    "offreload": group_offreload,
    "ns": group_ns, "auth": group_auth, "tally": group_tally, "pipeline": group_pipeline,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("group", choices=sorted(GROUPS))
    ap.add_argument("--proxy", type=int, required=True)
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--direct", type=int, required=True)
    ap.add_argument("--ferret-pid", type=int)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--config")
    ap.add_argument("--log")
    ap.add_argument("--grace-ms", type=int, default=500)
    ap.add_argument("--coalesce-ms", type=int, default=600)
    ap.add_argument("--user")
    ap.add_argument("--password")
    a = ap.parse_args()
    tap = Tap()
    try:
        GROUPS[a.group](a, tap)
    except PyMongoError as e:
        tap.line(False, "cache %s: harness failed: %s" % (a.group, short(e, 300)))
        return 1
    mctest.plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
