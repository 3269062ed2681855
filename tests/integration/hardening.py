#!/usr/bin/env python3
"""tests/integration/hardening.py: regression tests of issue 6 (hardening).

Black-box groups run against a live mongocache started by
test_hardening.sh. Each prints unnumbered TAP lines ("ok - ..." /
"not ok - ...", "# ..." diagnostics), then its plan; the wrapper numbers them.

Groups:
  redis_wait   a client that resets, a lost upstream and a shutdown while
               one of its reads waits on Redis (item 1)
  scram        pipelined SCRAM never credits one user's verdict to another
               (item 2), unambiguous principals (item 6)
  volatile     only valid lsid/$clusterTime/comment/maxTimeMS are left out
               of the key (item 9)
  behind_write a read pipelined behind its client's own write goes to the
               server (found in review)
  oneway_hello a moreToCome hello with speculativeAuthenticate: reads bypass
  oneway       more than 4,096 outstanding w:0 writes (item 11)
  cursors      proxy cursor ids: unguessable, bound to user, namespace and
               session (item 12)
  hostile      an upstream that never ends a cursor, and one that breaks
               framing (item 13)
Found in review:
  shutdown_hit     SIGTERM while a hit queued by reference is unread
  memory_wakeup    a paused client resumes when another client's close frees
                   the memory; memory_reload: when SIGHUP lifts max_memory
  redis_unreachable  the upstream unreachable while a read waits on Redis
  coalesced_unreachable  the upstream unreachable while a read waits behind
                   an identical one of the same client
  eof_pipeline     more than 16 pipelined reads, then EOF: every reply
  memory_eof       a client paused over max_memory with reads buffered, then EOF
  memory_admitted  a large message admitted under max_memory is read to its
                   end (and a stalled one still times out)

The raw wire helpers (Conn, op_msg, encode, decode) and the TAP lines are mctest.py's.
"""
import argparse
import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest as mf  # noqa: E402
from mctest import stats, tap  # noqa: E402
from ops import wait_for  # noqa: E402

OUT = []


def stat(port, path):
    """A value of /stats by dotted path ("cache.hits"), or None."""
    v = stats(port)
    for part in path.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def ping_ok(addr, timeout=2.0):
    try:
        c = mf.Conn(addr, timeout)
        r = c.call(mf.ping(), timeout)
        c.sock.close()
        return r.ok()
    except Exception:
        return False


def reset(conn):
    """Closes with a TCP RST (SO_LINGER 0): the peer sees ECONNRESET."""
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.sock.close()


def find(coll, db="hard", filt=None, **extra):
    doc = {"find": coll, "filter": filt if filt is not None else {}}
    doc.update(extra)
    doc["$db"] = db
    return doc


# ---- item 1: a read waiting on Redis, then its client or upstream goes --------


def group_redis_wait(a):
    addr = "127.0.0.1:%d" % a.port
    stop = lambda: os.kill(a.redis_pid, signal.SIGSTOP)  # noqa: E731
    cont = lambda: os.kill(a.redis_pid, signal.SIGCONT)  # noqa: E731

    # Warm: one ordinary round trip so that Redis is connected and subscribed.
    ok = wait_for(lambda: ping_ok(addr), 10)
    tap(ok, "redis_wait: the proxy answers before the test")
    c = mf.Conn(addr, 3.0)
    r = c.call(mf.op_msg(find("w1")), 5.0)
    tap(r.ok(), "redis_wait: a find answers with Redis up", r)
    c.sock.close()

    for rnd in range(3):
        stop()
        try:
            c = mf.Conn(addr, 3.0)
            c.send(mf.op_msg(find("w1", filt={"round": rnd})))
            time.sleep(0.3)  # the lookup now waits on the stopped Redis
            reset(c)
            time.sleep(0.3)
        finally:
            cont()
        ok = alive(a.pid) and wait_for(lambda: ping_ok(addr), 5)
        tap(ok, "redis_wait: a client reset while its read waits on Redis leaves the proxy up "
            "(round %d)" % rnd)
        if not ok:
            return
    # The same read through a fresh connection still works (nothing left half-freed).
    c = mf.Conn(addr, 3.0)
    r = c.call(mf.op_msg(find("w1", filt={"round": 0})), 5.0)
    tap(r.ok(), "redis_wait: the same read answers afterwards", r)
    c.sock.close()


def group_redis_lost(a):
    """The upstream dies while a read waits on Redis (the wrapper then kills FerretDB)."""
    addr = "127.0.0.1:%d" % a.port
    c = mf.Conn(addr, 3.0)
    r = c.call(mf.ping(), 5.0)  # the client's upstream connection exists now
    tap(r.ok(), "redis_lost: ping through the proxy", r)
    os.kill(a.redis_pid, signal.SIGSTOP)
    try:
        c.send(mf.op_msg(find("w2")))
        time.sleep(0.3)
        os.kill(a.ferret_pid, signal.SIGKILL)
        closed, _, how, secs = c.wait_closed(3.0)
        tap(closed, "redis_lost: the client is closed when its upstream is lost (%s, %.2fs)"
            % (how, secs))
    finally:
        os.kill(a.redis_pid, signal.SIGCONT)
    time.sleep(0.3)
    tap(alive(a.pid), "redis_lost: the proxy is still running")


def group_redis_shutdown(a):
    """SIGTERM (drain shorter than the Redis wait) while a read waits on Redis."""
    addr = "127.0.0.1:%d" % a.port
    c = mf.Conn(addr, 3.0)
    tap(c.call(mf.ping(), 5.0).ok(), "redis_shutdown: ping through the proxy")
    os.kill(a.redis_pid, signal.SIGSTOP)
    try:
        c.send(mf.op_msg(find("w3")))
        time.sleep(0.3)
        os.kill(a.pid, signal.SIGTERM)
        gone = wait_for(lambda: not alive(a.pid), 8)
    finally:
        os.kill(a.redis_pid, signal.SIGCONT)
    tap(gone, "redis_shutdown: the proxy exits after SIGTERM while a read waits on Redis")


# ---- items 2 and 6: whose cache a connection gets --------------------------


def _b64(b):
    import base64
    return base64.b64encode(b).decode()


class Scram:
    """A SCRAM-SHA-256 client conversation (RFC 5802/7677) over raw messages."""

    def __init__(self, user, password, db):
        import base64
        self.user, self.password, self.db = user, password, db
        self.nonce = base64.b64encode(os.urandom(24)).decode()
        name = user.replace("=", "=3D").replace(",", "=2C")
        self.first_bare = "n=%s,r=%s" % (name, self.nonce)

    def start(self):
        return mf.op_msg({"saslStart": 1, "mechanism": "SCRAM-SHA-256",
                          "payload": ("n,," + self.first_bare).encode(),
                          "options": {"skipEmptyExchange": True}, "$db": self.db})

    def final(self, reply):
        import base64
        import hashlib
        import hmac
        self.conv = reply["conversationId"]
        server_first = bytes(reply["payload"]).decode()
        f = dict(kv.split("=", 1) for kv in server_first.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(),
                                     base64.b64decode(f["s"]), int(f["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + f["r"]
        auth_msg = ",".join([self.first_bare, server_first, without_proof]).encode()
        sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        payload = (without_proof + ",p=" + _b64(proof)).encode()
        return mf.op_msg({"saslContinue": 1, "conversationId": self.conv, "payload": payload,
                          "$db": self.db})

    def empty(self):
        return mf.op_msg({"saslContinue": 1, "conversationId": self.conv, "payload": b"",
                          "$db": self.db})


def login(conn, user, password, db):
    """Logs conn in, one step at a time as a driver does. Returns the last reply."""
    s = Scram(user, password, db)
    r = conn.call(s.start(), 5.0)
    if not r.ok():
        return r
    r = conn.call(s.final(r.doc), 5.0)
    while r.ok() and not r.doc.get("done"):
        r = conn.call(s.empty(), 5.0)
    return r


def direct_client(a, user=None, password=None, db="admin"):
    import pymongo
    kw = {}
    if user:
        kw = dict(username=user, password=password, authSource=db,
                  authMechanism="SCRAM-SHA-256")
    return pymongo.MongoClient(a.direct, serverSelectionTimeoutMS=10000, **kw)


def group_scram(a):
    """Item 2: the last step of one's own login pipelined with another user's saslStart."""
    addr = "127.0.0.1:%d" % a.port
    root = direct_client(a, a.user, a.password)
    users = {"alice": "alicePw-1", "bob": "bobPw-2"}
    for u, pw in users.items():
        try:
            root.hard.command("dropUser", u)
        except Exception:
            pass
        root.hard.command("createUser", u, pwd=pw, roles=[])
    root.hard.secret.delete_many({})
    root.hard.secret.insert_one({"_id": 1, "v": "old"})
    q = find("secret", filt={"_id": 1})

    # Bob caches Q through the proxy.
    b = mf.Conn(addr, 5.0)
    r = login(b, "bob", users["bob"], "hard")
    tap(r.ok() and r.doc.get("done"), "scram: bob logs in through the proxy", r)
    r1 = b.call(mf.op_msg(q), 5.0)
    r2 = b.call(mf.op_msg(q), 5.0)
    docs = lambda r: (r.doc or {}).get("cursor", {}).get("firstBatch")  # noqa: E731
    tap(docs(r1) == [{"_id": 1, "v": "old"}] and docs(r2) == docs(r1),
        "scram: bob's read of Q is answered (and cached)", r1, r2)
    # The data changes around the proxy: a hit is now recognisable.
    root.hard.secret.update_one({"_id": 1}, {"$set": {"v": "new"}})

    hits = stat(a.http, "cache.hits")
    x = mf.Conn(addr, 5.0)
    s = Scram("alice", users["alice"], "hard")
    r = x.call(s.start(), 5.0)
    last = s.final(r.doc)
    if not r.ok() or not r.doc.get("done"):
        # Servers that ignore skipEmptyExchange (FerretDB) want one empty step more.
        r = x.call(last, 5.0)
        last = s.empty()
    tap(r.ok() and not r.doc.get("done"), "scram: alice's conversation reaches its last step", r)
    bob = Scram("bob", "not-bobs-password", "hard")
    x.send(last + bob.start())  # one write: her last step, then his start
    ra = x.recv_msg(5.0)
    rb = x.recv_msg(5.0)
    tap(ra.ok() and ra.doc.get("done") and rb.ok(),
        "scram: both pipelined steps are answered (alice done, bob's conversation open)", ra, rb)
    rq = x.call(mf.op_msg(q), 5.0)
    # mongod keeps alice logged in (the answer is "new"); FerretDB ends her
    # login at bob's saslStart (the answer is its Unauthorized): either is the
    # server's own answer. Bob's cached "old" is the one wrong answer.
    tap(docs(rq) != [{"_id": 1, "v": "old"}] and
        (docs(rq) == [{"_id": 1, "v": "new"}] or (rq.doc or {}).get("code") == 13),
        "scram: Q on the pipelined connection is the server's answer, not bob's cached one",
        rq)
    tap(stat(a.http, "cache.hits") == hits,
        "scram: the pipelined connection got no cache hit (hits %s -> %s)"
        % (hits, stat(a.http, "cache.hits")))
    for c in (b, x):
        c.sock.close()


def group_principals(a):
    """Item 6: user "a@b" on db "c" and user "a" on db "b@c" never share entries."""
    addr = "127.0.0.1:%d" % a.port
    root = direct_client(a, a.user, a.password)
    pairs = [("a@b", "c", "pw-ab"), ("a", "b@c", "pw-a")]
    for u, db, pw in pairs:
        try:
            root[db].command("dropUser", u)
        except Exception:
            pass
        root[db].command("createUser", u, pwd=pw, roles=[])
    root.hard.amb.delete_many({})
    root.hard.amb.insert_one({"_id": 1, "v": "old"})
    q = find("amb", filt={"_id": 1})
    docs = lambda r: (r.doc or {}).get("cursor", {}).get("firstBatch")  # noqa: E731

    first = mf.Conn(addr, 5.0)
    r = login(first, "a@b", "pw-ab", "c")
    tap(r.ok() and r.doc.get("done"), "principals: user a@b logs in on db c", r)
    first.call(mf.op_msg(q), 5.0)
    r = first.call(mf.op_msg(q), 5.0)
    tap(docs(r) == [{"_id": 1, "v": "old"}], "principals: a@b's read of Q is cached", r)
    root.hard.amb.update_one({"_id": 1}, {"$set": {"v": "new"}})

    second = mf.Conn(addr, 5.0)
    r = login(second, "a", "pw-a", "b@c")
    tap(r.ok() and r.doc.get("done"), "principals: user a logs in on db b@c", r)
    r = second.call(mf.op_msg(q), 5.0)
    tap(docs(r) == [{"_id": 1, "v": "new"}],
        "principals: a on b@c is answered by the server, not from a@b on c's entry", r)
    for c in (first, second):
        c.sock.close()


# ---- item 12: proxy cursors belong to their owner ---------------------------


def group_cursors(a):
    """Another connection cannot guess or consume a proxy cursor."""
    import bson
    addr = "127.0.0.1:%d" % a.port
    direct = direct_client(a)
    for name in ("cur_a", "cur_b"):
        direct.hard[name].delete_many({})
        direct.hard[name].insert_many([{"_id": i, "owner": name} for i in range(300)])
    lsid_a = {"id": bson.Binary(os.urandom(16), 4)}
    lsid_b = {"id": bson.Binary(os.urandom(16), 4)}
    ca, cb = mf.Conn(addr, 5.0), mf.Conn(addr, 5.0)

    def first(conn, coll, lsid):
        doc = {"find": coll, "filter": {}, "batchSize": 2, "lsid": mf.Raw(bson.encode(lsid)),
               "$db": "hard"}
        r = conn.call(mf.op_msg(doc), 10.0)
        return r, (r.doc or {}).get("cursor", {}).get("id", 0)

    def get_more(conn, cid, coll, lsid=None):
        doc = {"getMore": mf.Int64(cid), "collection": coll, "batchSize": 2}
        if lsid:
            doc["lsid"] = mf.Raw(bson.encode(lsid))
        doc["$db"] = "hard"
        return conn.call(mf.op_msg(doc), 10.0)

    owners = lambda r: {d.get("owner") for d in  # noqa: E731
                        (r.doc or {}).get("cursor", {}).get("nextBatch", [])}
    ra, ida = first(ca, "cur_a", lsid_a)
    rb, idb = first(cb, "cur_b", lsid_b)
    tap(ra.ok() and rb.ok() and ida and idb,
        "cursors: each client's find is served from a proxy cursor (ids %s, %s)" % (ida, idb))
    leaked = []
    for guess in {idb - 2, idb - 1, idb + 1, ida}:
        for lsid in (lsid_b, None):
            r = get_more(cb, guess, "cur_a", lsid)
            if "cur_a" in owners(r):
                leaked.append((guess, bool(lsid)))
    tap(not leaked, "cursors: client B never reads client A's cursor, by guess or by its id",
        leaked)
    r = get_more(ca, ida, "cur_a", lsid_a)
    tap(r.ok() and owners(r) == {"cur_a"} and r.doc["cursor"]["nextBatch"][0]["_id"] == 2,
        "cursors: A's own getMore reads on from where A left off", r)
    r = get_more(ca, ida, "cur_b", lsid_a)
    tap((r.doc or {}).get("code") == 13, "cursors: a getMore naming another collection is "
        "refused (Unauthorized), as mongod does", r)
    ids = []
    for i in range(20):
        _, cid = first(ca, "cur_a", lsid_a)
        ids.append(cid)
    steps = {abs(x - y) for x, y in zip(ids, ids[1:])}
    tap(len(set(ids)) == 20 and min(steps) > 1 << 20,
        "cursors: 20 ids in a row are far apart (not a counter)", ids)
    ca.sock.close()
    cb.sock.close()


# ---- item 9: invalid volatile fields go to the server ------------------------


def group_volatile(a):
    addr = "127.0.0.1:%d" % a.port
    direct = direct_client(a)
    direct.hard.vol.delete_many({})
    direct.hard.vol.insert_one({"_id": 1})
    c = mf.Conn(addr, 5.0)
    q = find("vol", filt={"_id": 1})
    c.call(mf.op_msg(q), 5.0)
    r = c.call(mf.op_msg(q), 5.0)
    tap(r.ok(), "volatile: Q is answered and cached", r)
    for extra in ({"maxTimeMS": "abc"}, {"maxTimeMS": -1}, {"maxTimeMS": 1.5},
                  {"comment": 5}, {"comment": {"x": 1}}):
        doc = dict(q)
        del doc["$db"]
        doc.update(extra)
        doc["$db"] = "hard"
        want = direct.hard.command(_son(doc), check=False)
        r = c.call(mf.op_msg(doc), 5.0)
        tap(not r.ok() and (r.doc or {}).get("code") == want.get("code"),
            "volatile: Q with %s gets the server's error (%s), not Q's cached reply"
            % (extra, want.get("codeName")), r, want)
    c.sock.close()


def group_behind_write(a):
    """Found in review: a read pipelined behind the same client's write is
    answered by the server, after that write (an entry another client filled
    while the write ran may not show it), never from the cache."""
    addr = "127.0.0.1:%d" % a.port
    direct = direct_client(a)
    direct.hard.bw.delete_many({})
    direct.hard.bw.insert_one({"_id": 1, "v": 1})
    c = mf.Conn(addr, 5.0)
    q = find("bw", filt={"_id": 1})
    c.call(mf.op_msg(q), 5.0)
    h0 = stat(a.http, "cache.hits") or 0
    r = c.call(mf.op_msg(q), 5.0)
    h1 = stat(a.http, "cache.hits") or 0
    tap(r.ok() and h1 - h0 == 1, "behind_write: the read is cached (hits +%d)" % (h1 - h0))
    upd = {"update": "bw", "updates": [{"q": {"_id": 1}, "u": {"$set": {"v": 2}}}], "$db": "hard"}
    behind0 = stat(a.http, "counters.reads_behind_write") or 0
    c.send(mf.op_msg(upd, request_id=10) + mf.op_msg(q, request_id=11))
    w = c.recv_msg(5.0)
    r = c.recv_msg(5.0)
    behind1 = stat(a.http, "counters.reads_behind_write") or 0
    batch = (r.doc or {}).get("cursor", {}).get("firstBatch") if r.ok() else None
    tap(w.ok() and w.response_to == 10 and r.response_to == 11 and batch == [{"_id": 1, "v": 2}]
        and behind1 - behind0 == 1,
        "behind_write: update then find, pipelined: the find goes to the server and shows "
        "the update (reads_behind_write +%d)" % (behind1 - behind0), w, r)
    r = c.call(mf.op_msg(q), 5.0)
    r = c.call(mf.op_msg(q), 5.0)
    h2 = stat(a.http, "cache.hits") or 0
    batch = (r.doc or {}).get("cursor", {}).get("firstBatch") if r.ok() else None
    tap(batch == [{"_id": 1, "v": 2}] and h2 - h1 >= 1,
        "behind_write: once the write is answered, reads are cached again (hits +%d)" % (h2 - h1))
    c.sock.close()


def group_oneway_hello(a):
    """Found in review: a hello sent with moreToCome (no driver sends one) that
    carries speculativeAuthenticate could log the connection in upstream with no
    reply for the proxy to follow: the connection's reads then bypass the cache."""
    addr = "127.0.0.1:%d" % a.port
    c = mf.Conn(addr, 5.0)
    hello = {"hello": 1, "speculativeAuthenticate": {
        "saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": "n,,n=x,r=nonce", "db": "admin"},
        "$db": "admin"}
    c.send(mf.op_msg(hello, flags=2))
    q = find("onewayhello", filt={"_id": 1})
    b0 = stat(a.http, "cache.bypass_reasons.auth_state") or 0
    h0 = stat(a.http, "cache.hits") or 0
    got = [c.call(mf.op_msg(q), 5.0) for _ in range(2)]
    b1 = stat(a.http, "cache.bypass_reasons.auth_state") or 0
    h1 = stat(a.http, "cache.hits") or 0
    tap(all(r.ok() for r in got) and b1 - b0 == 2 and h1 == h0,
        "oneway_hello: after a moreToCome hello with speculativeAuthenticate, reads bypass the "
        "cache (auth_state +%d, hits +%d)" % (b1 - b0, h1 - h0), *got)
    c.sock.close()


def _son(doc):
    from bson.son import SON
    return SON([(k, v) for k, v in doc.items() if k != "$db"])


# ---- item 11: more than 4,096 outstanding w:0 writes -----------------------


def group_oneway(a):
    addr = "127.0.0.1:%d" % a.port
    direct = direct_client(a)
    direct.hard.w0.delete_many({})
    n = 6000
    c = mf.Conn(addr, 10.0)
    burst = b"".join(mf.op_msg({"insert": "w0", "documents": [{"_id": i}],
                                "writeConcern": {"w": 0}, "$db": "hard"},
                               flags=mf.MORE_TO_COME) for i in range(n))
    try:
        c.send(burst)
        r = c.call(mf.op_msg({"count": "w0", "$db": "hard"}), 30.0)
        got = (r.doc or {}).get("n")
    except (socket.timeout, mf.Closed, OSError) as e:
        r, got = e, None
    tap(got == n, "oneway: %d pipelined w:0 inserts, then a count on the same connection: "
        "all %d counted, the connection open" % (n, n), r)
    tap(direct.hard.w0.count_documents({}) == n, "oneway: the server holds all %d (%d)"
        % (n, direct.hard.w0.count_documents({})))
    barriers = stat(a.http, "counters.oneway_barriers")
    tap(isinstance(barriers, int) and barriers >= 1,
        "oneway: the proxy sent barriers instead of dropping (%s)" % barriers)
    c.sock.close()


# ---- found in review: lifetimes and wake-ups ---------------------------------


def slow_socket(port, rcvbuf=4096):
    """A raw connection with a small receive buffer: what it does not read stays queued."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    return s


def group_shutdown_hit(a):
    """SIGTERM while a client's large hit is still queued (it reads slowly) and
    its next request is in flight: the proxy frees that client after the loop,
    and the queued hit's reference to the stored value must not outlive the
    cache (ASan: heap-use-after-free in cache_gen_unref at exit). Needs the
    canned upstream (mcload --server --size 8000000 --delay-us 500000)."""
    addr = "127.0.0.1:%d" % a.port
    q = lambda k: find("c", db="rv", filt={"_id": k})  # noqa: E731
    c = mf.Conn(addr, 10.0)
    r = c.call(mf.op_msg(q(1)), 10.0)
    tap(r.ok(), "shutdown_hit: an 8 MB reply is read and cached", r)
    c.sock.close()
    s = slow_socket(a.port)
    # The hit is queued by reference; the miss after it keeps the client busy.
    s.sendall(mf.op_msg(q(1)) + mf.op_msg(q(2)))
    time.sleep(0.2)
    os.kill(a.pid, signal.SIGTERM)
    gone = wait_for(lambda: not alive(a.pid), 10)
    tap(gone, "shutdown_hit: the proxy exits after SIGTERM with the hit still queued")
    s.close()


def read_reply(sock, timeout):
    """Reads one whole message from a raw socket; None on timeout or close."""
    sock.settimeout(timeout)
    buf = bytearray()
    try:
        while len(buf) < 4 or len(buf) < struct.unpack("<i", buf[:4])[0]:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return None
            buf += chunk
    except (socket.timeout, OSError):
        return None
    return mf.Reply(bytes(buf))


def _paused_client(a, label):
    """A hog holding more than max_memory (an 8 MB reply it never reads), and
    a client paused over it with its ping's reply still to come. Needs
    --max-memory 4MiB in front of the canned upstream (mcload --server
    --size 8000000)."""
    q = lambda k: find("c", db="rv", filt={"_id": k})  # noqa: E731
    pauses = stat(a.http, "counters.memory_pauses") or 0
    hog = slow_socket(a.port)
    hog.sendall(mf.op_msg(q(1)))
    ok = wait_for(lambda: (stat(a.http, "counters.memory_buffered") or 0) > 4 * 1024 * 1024, 5)
    tap(ok, "%s: a client that does not read holds more than max_memory (%s)"
        % (label, stat(a.http, "counters.memory_buffered")))
    c = slow_socket(a.port)
    c.sendall(mf.op_msg(q(2)) + mf.ping())  # its 8 MB reply pauses it; the ping's reply waits
    r = read_reply(c, 10.0)
    tap(r is not None and r.ok(), "%s: the paused client reads its large reply" % label, r)
    tap((stat(a.http, "counters.memory_pauses") or 0) > pauses,
        "%s: it was paused over max_memory" % label)
    return hog, c


def group_memory_wakeup(a):
    """A client paused over max_memory resumes once another client's close
    frees the memory (its buffers leave the count without a buffer callback)."""
    hog, c = _paused_client(a, "memory_wakeup")
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    hog.close()  # its buffers go: the total is far under max_memory now
    r = read_reply(c, 5.0)
    tap(r is not None and r.ok(),
        "memory_wakeup: once the hog has gone, the paused client gets its ping's reply", r)
    c.close()
    # Every byte counted on the way in was counted out again: no drift.
    tap(wait_for(lambda: stat(a.http, "counters.memory_buffered") == 0, 5),
        "memory_wakeup: with both clients gone nothing is counted as buffered (%s)"
        % stat(a.http, "counters.memory_buffered"))


def group_memory_reload(a):
    """A client paused over max_memory resumes when SIGHUP lifts max_memory
    (--config a.config holds max_memory; it is rewritten with 0)."""
    hog, c = _paused_client(a, "memory_reload")
    with open(a.config) as f:
        text = f.read()
    with open(a.config, "w") as f:
        f.write(text.replace("max_memory = 4MiB", "max_memory = 0"))
    os.kill(a.pid, signal.SIGHUP)
    r = read_reply(c, 5.0)
    tap(r is not None and r.ok(),
        "memory_reload: after SIGHUP lifts max_memory, the paused client gets its ping's reply",
        r)
    hog.close()
    c.close()


def _send(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


def _half_message(port, length, sent):
    """A raw connection that announced a message of `length` bytes and sent `sent` of them."""
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    body = mf.encode({"ping": 1, "pad": "x" * (length - 16 - 5 - 40), "$db": "admin"})
    msg = mf.op_msg(body)
    assert len(msg) >= sent
    s.sendall(msg[:sent])
    return s, msg


def group_memory_admitted(a):
    """A large message admitted under max_memory is read to its end even when
    the total passes max_memory meanwhile: its bytes were promised already.
    Before the fix such a client was paused for good (its own promise kept the
    total over the resume mark), never timed out, and large messages from
    everyone were refused from then on. Needs --max-memory 4MiB
    --message-timeout 3s in front of FerretDB."""
    addr = "127.0.0.1:%d" % a.port
    big = 3900000

    def squeeze(holder):
        """Small half-sent messages (always admitted) take the total past max_memory;
        then the holder sends one byte more, and they go."""
        smalls = [_half_message(a.port, 65536, 200)[0] for _ in range(6)]
        time.sleep(0.3)
        holder()
        time.sleep(0.3)
        for s in smalls:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        time.sleep(0.3)

    # 1. A client sending a large message at the wrong moment gets its reply.
    s, msg = _half_message(a.port, big, 100000)
    time.sleep(0.3)
    squeeze(lambda: _send(s, msg[100000:100001]))
    threading.Thread(target=_send, args=(s, msg[100001:]), daemon=True).start()
    r = read_reply(s, 8.0)
    tap(r is not None and r.ok(), "memory_admitted: a large admitted message that arrives while "
        "others pass max_memory is answered", r)
    s.close()
    time.sleep(0.3)

    # 2. The same with a client that stalls: message_timeout still closes it,
    # and then a large message from someone else is admitted again.
    s, msg = _half_message(a.port, big, 100000)
    time.sleep(0.3)
    squeeze(lambda: _send(s, msg[100000:100001]))
    s.settimeout(8.0)
    got, closed = b"", False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            got += chunk
    except socket.timeout:
        pass
    except OSError:
        closed = True
    tap(closed and not got, "memory_admitted: a client that stalls halfway is closed by "
        "message_timeout", "closed=%s, received %r" % (closed, got[:200]))
    s.close()
    c = mf.Conn(addr, 10.0)
    try:
        r = c.call(mf.op_msg({"ping": 1, "pad": "y" * 1000000, "$db": "admin"}), 10.0)
    except (mf.Closed, OSError, socket.timeout) as e:
        r = e
    tap(isinstance(r, mf.Reply) and r.ok(),
        "memory_admitted: afterwards a 1 MB message is admitted and answered", r)


def group_redis_unreachable(a):
    """The upstream cannot be reached while a read waits on Redis: both
    requests get HostUnreachable, and the client must still be read (the
    wait was cancelled with its request; nothing else would unblock it).
    Needs a proxy with Redis whose upstream is a closed port."""
    addr = "127.0.0.1:%d" % a.port
    c = mf.Conn(addr, 5.0)
    r = c.call(mf.op_msg(find("u1")), 8.0)  # Redis is connected and subscribed by now
    tap(not r.ok() and (r.doc or {}).get("codeName") == "HostUnreachable",
        "redis_unreachable: a find gets HostUnreachable", r)
    os.kill(a.redis_pid, signal.SIGSTOP)
    try:
        c.send(mf.ping() + mf.op_msg(find("u2")))  # the find's lookup waits on Redis
        got = _recv_n(c, 2, 5.0)
        tap(all(isinstance(x, mf.Reply) and not x.ok() for x in got),
            "redis_unreachable: the ping and the waiting find both get an error", *got)
    finally:
        os.kill(a.redis_pid, signal.SIGCONT)
    _still_read(c, "redis_unreachable", 5.0)
    c.sock.close()


def _recv_n(c, n, timeout):
    """The next n replies on c, or in their place what ended the reading."""
    got = []
    for _ in range(n):
        try:
            got.append(c.recv_msg(timeout))
        except (socket.timeout, mf.Closed, OSError) as e:
            got.append(e)
    return got


def _still_read(c, label, timeout):
    """c, whose upstream cannot be reached, is still read: its next ping gets HostUnreachable."""
    try:
        r = c.call(mf.ping(), timeout)
    except (socket.timeout, mf.Closed, OSError) as e:
        r = e
    tap(isinstance(r, mf.Reply) and (r.doc or {}).get("codeName") == "HostUnreachable",
        "%s: the same connection is still read (its next ping is answered)" % label, r)


def group_coalesced_unreachable(a):
    """Found in review: a read waiting behind an identical one of the same
    client (coalesced) when the upstream cannot be reached. Every request
    gets the error; the wait that ends as its leader is answered must not be
    sent again on a new upstream connection meanwhile (one failed connection,
    not two). Needs a proxy without Redis whose upstream is a closed port."""
    addr = "127.0.0.1:%d" % a.port
    c = mf.Conn(addr, 10.0)

    def failures():
        return sum(stat(a.http, "counters." + k) or 0
                   for k in ("upstream_connect_failures", "upstream_no_primary"))

    f0 = failures()
    q = find("coal", filt={"_id": 1})
    c.send(mf.op_msg(q, request_id=21) + mf.op_msg(q, request_id=22))
    got = _recv_n(c, 2, 10.0)
    tap([getattr(x, "response_to", None) for x in got] == [21, 22] and
        all(isinstance(x, mf.Reply) and (x.doc or {}).get("codeName") == "HostUnreachable"
            for x in got),
        "coalesced_unreachable: both reads get HostUnreachable, in order", *got)
    time.sleep(0.5)  # a second connection, if one was opened, has failed by now
    f1 = failures()
    tap(f1 - f0 == 1, "coalesced_unreachable: one upstream connection failed, not a second "
        "for the waiting read (%d)" % (f1 - f0))
    _still_read(c, "coalesced_unreachable", 10.0)
    c.sock.close()


def group_eof_pipeline(a):
    """A client that pipelines more than 8 reads (the fairness batch) and then
    shuts down its sending side gets every reply: the ones handled after the
    loop's yield were dropped when the EOF closed the connection first."""
    addr = "127.0.0.1:%d" % a.port
    direct = direct_client(a)
    direct.hard.eof.delete_many({})
    direct.hard.eof.insert_one({"_id": 1})
    q = find("eof", filt={"_id": 1})
    c = mf.Conn(addr, 5.0)
    c.call(mf.op_msg(q), 5.0)
    tap(c.call(mf.op_msg(q), 5.0).ok(), "eof_pipeline: Q is cached (the rest are hits)")
    c.sock.close()
    counts = []
    for n in (20, 33, 100, 20, 33, 100):
        s = socket.create_connection(("127.0.0.1", a.port))
        s.sendall(b"".join(mf.op_msg(q) for _ in range(n)))
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5.0)
        buf, closed, t0 = bytearray(), False, time.time()
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                buf += chunk
        except (socket.timeout, OSError):
            pass
        secs = time.time() - t0
        s.close()
        got, pos = 0, 0
        while pos + 4 <= len(buf):
            pos += struct.unpack("<i", buf[pos:pos + 4])[0]
            got += 1
        counts.append((n, got, closed and secs < 2.0))
    tap(all(n == got and prompt for n, got, prompt in counts),
        "eof_pipeline: n pipelined reads then EOF get n replies, then the close",
        "(sent, replies, closed within 2 s): %s" % counts)


def group_hits_backlog(a):
    """Pipelined hits of a 700 B reply to a client with a 4 KB
    receive window that reads nothing for a while: what its socket does not take is
    queued (12 MB: more than the kernel's buffers hold), and every reply then arrives
    whole, in order, each naming its request."""
    addr = "127.0.0.1:%d" % a.port
    direct = direct_client(a)
    direct.hard.backlog.delete_many({})
    direct.hard.backlog.insert_one({"_id": 1, "pad": "p" * 600})
    q = find("backlog", filt={"_id": 1})
    c = mf.Conn(addr, 5.0)
    c.call(mf.op_msg(q), 5.0)
    first = c.call(mf.op_msg(q), 5.0)
    want = first.doc["cursor"]["firstBatch"] if first.ok() else None
    c.sock.close()
    hits0 = stat(a.http, "cache.hits") or 0
    s = slow_socket(a.port)
    s.settimeout(10.0)  # the proxy reads on while its replies queue: a hang would be a failure
    ids = list(range(5000, 23000))
    s.sendall(b"".join(mf.op_msg(q, request_id=i) for i in ids))
    time.sleep(0.5)  # the socket fills; the rest waits in the proxy
    got, buf, pos = [], bytearray(), 0
    s.settimeout(5.0)
    try:
        while len(got) < len(ids):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
            while len(buf) - pos >= 4:
                n = struct.unpack("<i", buf[pos:pos + 4])[0]
                if len(buf) - pos < n:
                    break
                r = mf.Reply(bytes(buf[pos:pos + n]))
                pos += n
                got.append((r.response_to, r.ok() and r.doc["cursor"]["firstBatch"] == want))
    except (socket.timeout, OSError):
        pass
    s.close()
    hits = (stat(a.http, "cache.hits") or 0) - hits0
    tap(want and [x[0] for x in got] == ids and all(x[1] for x in got) and hits >= len(ids),
        "hits_backlog: 18000 pipelined 700 B hits (12 MB) to a slow reader arrive whole and in "
        "order (%d replies, %d hits)" % (len(got), hits),
        "first mismatch: %r" % next((x for x, i in zip(got, ids) if x[0] != i or not x[1]),
                                    None))


def _read_all(sock, timeout):
    """Reads until EOF or timeout: (number of whole messages, EOF seen)."""
    sock.settimeout(timeout)
    buf, eof = bytearray(), False
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                eof = True
                break
            buf += chunk
    except (socket.timeout, OSError):
        pass
    n, pos = 0, 0
    while pos + 4 <= len(buf) and pos + struct.unpack("<i", buf[pos:pos + 4])[0] <= len(buf):
        pos += struct.unpack("<i", buf[pos:pos + 4])[0]
        n += 1
    return n, eof


def group_memory_eof(a):
    """A client paused over max_memory with reads still buffered, then EOF:
    once the memory is back, every buffered read is answered before the
    close (they were dropped: the EOF closed it with nothing in flight).
    Needs --max-memory 4MiB in front of FerretDB."""
    direct = direct_client(a)
    direct.hard.hog.delete_many({})
    direct.hard.hog.insert_many([{"_id": i, "pad": "h" * 100000} for i in range(120)])
    direct.hard.small.delete_many({})
    direct.hard.small.insert_one({"_id": 1})
    q = find("small", filt={"_id": 1})
    c = mf.Conn("127.0.0.1:%d" % a.port, 5.0)
    c.call(mf.op_msg(q), 5.0)
    tap(c.call(mf.op_msg(q), 5.0).ok(), "memory_eof: Q is cached (the reads are hits)")
    c.sock.close()
    # The hog's 12 MB reply (never read) lands while the client's reads,
    # all received with its EOF, are still being answered 16 at a time.
    n = 30000
    pauses = stat(a.http, "counters.memory_pauses") or 0
    hog = slow_socket(a.port)
    hog.sendall(mf.op_msg(find("hog", batchSize=1000)))
    s = socket.create_connection(("127.0.0.1", a.port))

    def send_then_eof():
        _send(s, b"".join(mf.op_msg(q) for _ in range(n)))
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    threading.Thread(target=send_then_eof, daemon=True).start()
    ok = wait_for(lambda: (stat(a.http, "counters.memory_pauses") or 0) > pauses, 5)
    tap(ok, "memory_eof: the reading client was paused over max_memory")
    time.sleep(0.5)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    hog.close()
    got, eof = _read_all(s, 15.0)
    tap(got == n and eof, "memory_eof: %d pipelined reads then EOF: %d replies, then the close"
        " (%s)" % (n, got, "closed" if eof else "still open"))
    s.close()


# ---- a client that never reads its replies ------------------------------------


def group_slow_reader(a):
    """With --message-timeout 2s: a client that takes none of a 9 MB reply is closed."""
    addr = "127.0.0.1:%d" % a.port
    direct = direct_client(a)
    direct.hard.slow.delete_many({})
    direct.hard.slow.insert_many([{"_id": i, "pad": "z" * (3 * 1000 * 1000)} for i in range(3)])
    before = stat(a.http, "counters.write_timeouts") or 0
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    s.settimeout(10.0)
    s.connect(("127.0.0.1", a.port))
    s.sendall(mf.op_msg({"find": "slow", "filter": {}, "$db": "hard"}))
    t0 = time.monotonic()
    closed = wait_for(lambda: (stat(a.http, "counters.write_timeouts") or 0) > before, 10)
    took = time.monotonic() - t0
    tap(closed and 1.5 <= took <= 6.0,
        "slow_reader: a client that takes none of a 9 MB reply is closed after message_timeout "
        "(%.1f s; write_timeouts +%d)" % (took, (stat(a.http, "counters.write_timeouts") or 0)
                                         - before))
    s.close()
    tap(ping_ok(addr), "slow_reader: the proxy answers others afterwards")


GROUPS = {
    "slow_reader": group_slow_reader,
    "memory_eof": group_memory_eof,
    "eof_pipeline": group_eof_pipeline,
    "hits_backlog": group_hits_backlog,
    "redis_unreachable": group_redis_unreachable,
    "coalesced_unreachable": group_coalesced_unreachable,
    "memory_wakeup": group_memory_wakeup,
    "memory_admitted": group_memory_admitted,
    "memory_reload": group_memory_reload,
    "shutdown_hit": group_shutdown_hit,
    "volatile": group_volatile,
    "behind_write": group_behind_write,
    "oneway_hello": group_oneway_hello,
    "oneway": group_oneway,
    "cursors": group_cursors,
    "scram": group_scram,
    "principals": group_principals,
    "redis_wait": group_redis_wait,
    "redis_lost": group_redis_lost,
    "redis_shutdown": group_redis_shutdown,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("group", choices=sorted(GROUPS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--http", type=int, default=0)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--redis-pid", type=int, default=0)
    p.add_argument("--ferret-pid", type=int, default=0)
    p.add_argument("--direct", default="")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--config", default="")
    a = p.parse_args()
    GROUPS[a.group](a)
    mf.plan()


if __name__ == "__main__":
    main()
