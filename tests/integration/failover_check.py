#!/usr/bin/env python3
"""tests/integration/failover_check.py: mongocache follows a replica set's primary
(proxy/topology.h), driven by test_failover.sh. Behind the proxy, rs_relay.py makes
a two-member replica set of two FerretDBs; its upstream URI names both members with
replicaSet=rs0&heartbeatFrequencyMS=60000: the monitor follows a switch only because a
server new connections go to answered NotWritablePrimary (or NotPrimaryNoSecondaryOk) or
closed a connection, and it checks again at once (upstream_recheck).

1. The monitor finds the set: /stats topology shows member A as the primary, and the
   log has its upstream_topology line.
2. pymongo (a thread here), the Node driver and Mongoose (failover_workload.js) insert
   documents with unique _ids and read each back through the proxy, while the relay
   switches the primary twice: A -> B closing A's connections (a stepdown before
   MongoDB 4.2), then B -> A keeping them open (4.2 and later: writes on them get
   NotWritablePrimary, and only the proxy moves them, upstream_moved: a client whose
   upstream connection holds nothing of its own gets a new one at its next request,
   the others close once their requests in flight are answered).
3. After each switch: how long until a new connection through the proxy can write
   (printed; bounded only generously), /stats and the log show the new primary, and the
   monitor re-checked at once (upstream_recheck).
5. Writes in flight at a failover and the cache (see that section); 6. an election (no
   primary for a while): new connections wait for the new primary, up to connect_timeout.
4. The invariants: no read returned a document other than the one written (a wrong
   reply), no write was applied twice (no duplicate-key error, no _id on both
   FerretDBs), every acknowledged write is on exactly one FerretDB, writes landed on
   both members (else the test proves nothing), every error a client saw is one a
   real failover gives (retryable: NotWritablePrimary, NotPrimaryNoSecondaryOk, or a
   network error), and hello through the proxy still answers as a mongos.

The FerretDBs do not replicate, so a document written to A before a switch is absent
when read from B after it: counted ("absent"), never a failure.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
import rs_relay  # noqa: E402

import pymongo  # noqa: E402
from pymongo.errors import PyMongoError  # noqa: E402

# What a failover may give a client: a retryable error, or its connection closed. The
# Node driver passes a write on a socket the proxy has just closed up as Node's own
# Error (EPIPE "This socket has been ended by the other party", or ECONNRESET),
# unwrapped: a closed connection all the same (seen under load, once in a full suite).
RETRYABLE = {"NotWritablePrimary(10107)", "NotPrimaryNoSecondaryOk(13435)", "AutoReconnect",
             "NotPrimaryError", "MongoNetworkError", "MongoServerSelectionError",
             "NetworkTimeout", "ServerSelectionTimeoutError", "MongoNotConnectedError",
             "PoolClearedError", "MongoPoolClearedError", "ConnectionFailure",
             "Error(EPIPE)", "Error(ECONNRESET)"}

p = argparse.ArgumentParser()
p.add_argument("--proxy", type=int, required=True)
p.add_argument("--http", type=int, required=True)
p.add_argument("--log", required=True)
p.add_argument("--control", type=int, required=True)
p.add_argument("--members", required=True, help="relay ports A,B")
p.add_argument("--ferret", required=True, help="FerretDB ports A,B")
p.add_argument("--node", required=True, help="node binary")
p.add_argument("--node-dir", required=True)
p.add_argument("--tmp", required=True)
p.add_argument("--seconds", type=float, default=6.0)
a = p.parse_args()

members = ["127.0.0.1:%s" % x for x in a.members.split(",")]
ferret = [int(x) for x in a.ferret.split(",")]
proxy_uri = "mongodb://127.0.0.1:%d/" % a.proxy
DB = "failover"


def topology():
    return mctest.stats(a.http).get("topology", {})


def wait_primary(addr, timeout=15.0):
    """Seconds until /stats shows addr as the primary, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if topology().get("primary") == addr:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def log_has(pattern):
    with open(a.log, errors="replace") as f:
        return re.search(pattern, f.read()) is not None


def log_count(pattern):
    with open(a.log, errors="replace") as f:
        return len(re.findall(pattern, f.read()))


def follow_time(t0, timeout=15.0):
    """Seconds from t0 until a new connection through the proxy can write, or None."""
    while time.monotonic() - t0 < timeout:
        c = pymongo.MongoClient(proxy_uri, retryWrites=False, serverSelectionTimeoutMS=2000,
                                connectTimeoutMS=2000, maxPoolSize=1)
        try:
            c[DB].probe.insert_one({"at": time.time()})
            return time.monotonic() - t0
        except PyMongoError:
            time.sleep(0.02)
        finally:
            c.close()
    return None


def name_of(e):
    code = getattr(e, "code", None)
    details = getattr(e, "details", None) or {}
    cn = details.get("codeName") if isinstance(details, dict) else None
    return "%s(%s)" % (cn, code) if cn and code is not None else type(e).__name__


def pymongo_workload(out, until):
    s = {"tag": "pymongo", "acked": {}, "attempted": 0, "errors": {}, "first": {}, "wrong": [],
         "dup": 0, "absent": 0, "reads": 0}
    c = pymongo.MongoClient(proxy_uri, retryWrites=True, serverSelectionTimeoutMS=15000)
    coll = c[DB].fo_pymongo
    i = 0
    while time.monotonic() < until:
        _id = "pymongo-%d" % i
        v = int.from_bytes(os.urandom(4), "little")
        s["attempted"] += 1
        try:
            coll.insert_one({"_id": _id, "tag": "pymongo", "i": i, "v": v})
            s["acked"][_id] = v
        except PyMongoError as e:
            k = name_of(e)
            s["errors"][k] = s["errors"].get(k, 0) + 1
            s["first"].setdefault(k, "%.3f %s" % (time.time(), str(e)[:300]))
            if getattr(e, "code", None) == 11000:
                s["dup"] += 1
        try:
            d = coll.find_one({"_id": _id})
            s["reads"] += 1
            if d is None:
                s["absent"] += 1
            elif d.get("v") != v or d.get("_id") != _id:
                s["wrong"].append("%s: got %r, wrote v=%d" % (_id, d, v))
        except PyMongoError as e:
            k = name_of(e)
            s["errors"][k] = s["errors"].get(k, 0) + 1
            s["first"].setdefault(k, "%.3f %s" % (time.time(), str(e)[:300]))
        i += 1
        time.sleep(0.02)
    c.close()
    out.append(s)


# ---- 1. the monitor finds the set ----------------------------------------------------
with mctest.Case(None, "the monitor finds the replica set: /stats shows member A as the "
                 "primary, the log its upstream_topology line") as k:
    waited = wait_primary(members[0])
    t = topology()
    k.check(waited is not None, "/stats topology: %r" % t)
    k.check(t.get("type") == "ReplicaSetWithPrimary", "type %r" % t.get("type"))
    k.check(sorted(s["address"] for s in t.get("servers", [])) == sorted(members),
            "servers %r" % t.get("servers"))
    k.check(log_has(r"event=upstream_topology type=ReplicaSetWithPrimary targets=%s "
                    % re.escape(members[0])), "no upstream_topology line for A")

# ---- 2. the workloads, with two switches under them ---------------------------------
t_start = time.monotonic()
until = t_start + a.seconds
node_out = os.path.join(a.tmp, "failover.node.json")
node = subprocess.Popen([a.node, os.path.join(a.node_dir, "failover_workload.js"), proxy_uri,
                         DB, str(a.seconds), node_out], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT)
py_out = []
th = threading.Thread(target=pymongo_workload, args=(py_out, until))
th.start()
moved_before = mctest.counters(a.http).get("upstream_moved", 0)

follow = {}
for label, target, how in (("A->B, connections closed", 1, "switch"),
                           ("B->A, connections kept", 0, "switch keep")):
    time.sleep(a.seconds / 3)
    t0 = time.monotonic()
    answer = rs_relay.control(a.control, how)
    f = follow_time(t0)
    seen = wait_primary(members[target])
    follow[label] = f
    mctest.tap(answer.get("primary") == members[target] and f is not None and f < 10.0,
               "%s: a new connection through the proxy writes %s after the switch "
               "(bound 10 s)" % (label, "%.0f ms" % (f * 1000) if f is not None else "never"),
               "relay: %r" % answer, "topology: %r" % topology())
    mctest.tap(seen is not None and log_has(
        r"event=upstream_topology type=ReplicaSetWithPrimary targets=%s "
        % re.escape(members[target])),
        "%s: /stats and the log show %s as the primary" % (label, members[target]),
        "topology: %r" % topology())
    print("# follow %s: new connections wrote after %s; /stats showed it after %s" % (
        label, "%.0f ms" % (f * 1000) if f is not None else "never",
        "%.0f ms" % ((time.monotonic() - t0) * 1000) if seen is not None else "never"),
        flush=True)

mctest.tap(topology().get("rechecks", 0) >= 2 and all(log_has(
    r"event=upstream_recheck upstream=%s reason=\"(connection lost|NotWritablePrimary \(code "
    r"(10107|13435)\)|hello: not primary)\"" % re.escape(m)) for m in members),
    "the monitor checked again at once after each switch (a lost connection, NotWritablePrimary, "
    "a hello from a secondary: upstream_recheck, /stats topology.rechecks %s): "
    "heartbeatFrequencyMS is 60 s here" % topology().get("rechecks"))

th.join(a.seconds + 60)
try:
    node_log, _ = node.communicate(timeout=60)
except subprocess.TimeoutExpired:
    node.kill()
    node_log, _ = node.communicate()
moved = mctest.counters(a.http).get("upstream_moved", 0) - moved_before
mctest.tap(moved > 0, "B->A with connections kept: the proxy moved its clients off the "
           "stepped-down member (upstream_moved %d)" % moved)
mctest.tap(log_has(r"event=upstream_moved upstream=%s in_flight=0 action=next_request_reconnects"
                   % re.escape(members[1])),
           "... an idle client connection kept, its next request on a new upstream connection "
           "(a mongos's connections survive a failover)")

# ---- 4. the invariants ---------------------------------------------------------------
workloads = list(py_out)
if node.returncode == 0 and os.path.exists(node_out):
    workloads += json.load(open(node_out))
mctest.tap(len(workloads) == 3, "pymongo, the Node driver and Mongoose ran to the end "
           "(%d of 3)" % len(workloads), node_log.decode(errors="replace")[-1500:])

direct = [pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, directConnection=True)
          for port in ferret]
colls = {"pymongo": "fo_pymongo", "driver": "fo_driver", "mongoose": "fo_mongoose"}
for s in workloads:
    tag = s["tag"]
    on = [set(d["_id"] for d in c[DB][colls[tag]].find({}, {"_id": 1})) for c in direct]
    both = on[0] & on[1]
    acked = set(s["acked"])
    missing = acked - on[0] - on[1]
    errors = s["errors"]
    odd = {k: v for k, v in errors.items() if k not in RETRYABLE}
    note = ("%s: %d writes, %d acknowledged, %d on A, %d on B; %d reads, %d absent (written "
            "to the other member); errors %s" % (tag, s["attempted"], len(acked), len(on[0]),
                                                 len(on[1]), s["reads"], s["absent"],
                                                 json.dumps(errors, sort_keys=True)))
    print("# " + note, flush=True)
    for k2, msg in sorted(s.get("first", {}).items()):
        print("#   first %s: %s" % (k2, msg), flush=True)
    mctest.tap(not s["wrong"], "%s: no read returned another document than the one written"
               % tag, *s["wrong"][:5])
    mctest.tap(s["dup"] == 0 and not both, "%s: no write applied twice (%d duplicate-key "
               "errors, %d _ids on both FerretDBs)" % (tag, s["dup"], len(both)),
               sorted(both)[:5])
    mctest.tap(not missing, "%s: every acknowledged write is on a FerretDB (%d missing)"
               % (tag, len(missing)), sorted(missing)[:5])
    mctest.tap(len(on[0]) > 0 and len(on[1]) > 0 and len(acked) > 0,
               "%s: writes landed on both members (the workload spanned the switches)" % tag,
               note)
    mctest.tap(not odd, "%s: every error the client saw is one a failover gives "
               "(retryable)" % tag, json.dumps(odd))

# ---- 5. writes in flight at a failover, and the cache ----------------------------------
# One document {_id: "k", v} on both FerretDBs (as if replicated); a read through the proxy
# is cached; a write to it is held by the relay (its reply never comes: the connection
# closes, as a stepdown closes it); the read again must show the server's truth.


def hits():
    return mctest.stats(a.http)["cache"].get("hits", 0)


def read_v(timeout=10.0):
    """v of the document as read through the proxy, on a new connection; the read is retried
    while the proxy still sends it to a stepped-down member (NotPrimaryNoSecondaryOk)."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        c = pymongo.MongoClient(proxy_uri, serverSelectionTimeoutMS=5000, retryReads=False)
        try:
            d = c[DB].inflight.find_one({"_id": "k"})
            return d.get("v") if d else None
        except PyMongoError as e:
            last = e
            time.sleep(0.02)
        finally:
            c.close()
    return "no answer (%s)" % last


def cached(expect, timeout=10.0):
    """Reads until a read is a hit (fills are refused for cache_write_grace after a lost
    write): whether every read gave expect and one was a hit."""
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < timeout:
        h0 = hits()
        seen.append(read_v())
        if hits() > h0:
            return all(v == expect for v in seen), "read %r, the last a hit" % seen
        time.sleep(0.1)
    return False, "read %r, none a hit" % seen


def held_write(v):
    """Starts an update to v with no retry; returns (thread, outcome list)."""
    return rs_relay.update_in_thread(proxy_uri, DB, "inflight", "k", v)


def hold(k, before, mode, v):
    """The document, cached with value before, gets an update to v that the relay holds
    (mode: applied or unapplied). Returns the writer's (thread, outcome list)."""
    good, note = cached(before)
    k.check(good, "the read before the write was not cached: " + note)
    rs_relay.control(a.control, "hold inflight %s" % mode)
    w_th, w_out = held_write(v)
    k.check(rs_relay.control(a.control, "wait_held").get("held"), "the relay held no write")
    return w_th, w_out


def lost(k, w_th, w_out, answer, switched):
    """After a release: the writer saw an error (its reply was lost), and after a switch the
    proxy followed the new primary."""
    if switched:
        k.check(wait_primary(answer.get("primary")) is not None, "the proxy did not follow")
    w_th.join(30)
    k.check(w_out and w_out[0] != "acknowledged", "the held write was acknowledged: %r" % w_out)


for port in ferret:
    pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, directConnection=True)[DB].inflight \
        .replace_one({"_id": "k"}, {"_id": "k", "v": 0}, upsert=True)

with mctest.Case(None, "a write in flight at a failover (applied, its reply lost): a read "
                 "while it is in flight and after the switch sees it, not the cached entry") as k:
    w_th, w_out = hold(k, 0, "applied", 1)
    v = read_v()
    k.check(v == 1, "while the write is in flight (applied, reply held) the read gave %r, "
            "not 1: the entry was not invalidated when the write was sent" % (v,))
    answer = rs_relay.control(a.control, "release switch")
    lost(k, w_th, w_out, answer, True)
    v = read_v()
    k.check(v == 1, "after the switch the read gave %r, not 1 (relay: %r)" % (v, answer))

with mctest.Case(None, "a write in flight at a failover (applied as its connection is lost): "
                 "what was read meanwhile is not served after the switch") as k:
    w_th, w_out = hold(k, 1, "unapplied", 2)
    v = read_v()
    k.check(v == 1, "while the write is held (not applied) the read gave %r, not 1" % (v,))
    answer = rs_relay.control(a.control, "release switch apply")
    lost(k, w_th, w_out, answer, True)
    v = read_v()
    k.check(v == 2, "after the switch the read gave %r, not 2: the entry filled while the "
            "write was in flight was served (relay: %r)" % (v, answer))

with mctest.Case(None, "a write applied by the server after its connection was lost: reads "
                 "in the grace period are not stored (cache_write_grace)") as k:
    w_th, w_out = hold(k, 2, "unapplied", 3)
    stop = threading.Event()
    seen = []

    def reader():
        while not stop.is_set():
            seen.append(read_v(2.0))
            time.sleep(0.02)
    r_th = threading.Thread(target=reader)
    r_th.start()
    answer = rs_relay.control(a.control, "release late 400")
    stop.set()
    r_th.join(30)
    lost(k, w_th, w_out, answer, False)
    v = read_v()
    k.check(2 in seen, "no read saw the old value between the loss and the late apply: %r"
            % seen[:20])
    k.check(v == 3, "after the late apply the read gave %r, not 3: a read made before it was "
            "stored (relay: %r)" % (v, answer))

# A rollback: what the old primary answered but never replicated is gone on the new one.
# The two FerretDBs hold different documents {_id: "rb"} (the old primary's v 10, the other's
# 20: as if the old one's write were rolled back); a read cached from the old primary must
# not be served once the other is primary.
with mctest.Case(None, "a primary change flushes the cache: a read cached from the old "
                 "primary is not served from the new one (a rollback)") as k:
    old = members.index(rs_relay.control(a.control, "stats")["primary"])
    for i, port in enumerate(ferret):
        pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, directConnection=True)[DB] \
            .rollback.replace_one({"_id": "rb"}, {"_id": "rb", "v": 10 if i == old else 20},
                                  upsert=True)

    def read_rb():
        c = pymongo.MongoClient(proxy_uri, serverSelectionTimeoutMS=5000)
        try:
            d = c[DB].rollback.find_one({"_id": "rb"})
            return d.get("v") if d else None
        finally:
            c.close()
    h0 = hits()
    first, second = read_rb(), read_rb()
    k.check(first == 10 and second == 10 and hits() > h0,
            "before the switch: read %r then %r (want 10, the second a hit)" % (first, second))
    flushed0 = log_count(r"event=cache_flushed reason=primary_changed ")
    answer = rs_relay.control(a.control, "switch")
    v = None
    for _ in range(100):
        # The first reads reach the old member and get its NotPrimaryNoSecondaryOk, which
        # makes the monitor check at once (the heartbeat here is a minute).
        try:
            v = read_rb()
            if v == 20 or topology().get("primary") == answer.get("primary"):
                break
        except PyMongoError:
            pass
        time.sleep(0.05)
    k.check(topology().get("primary") == answer.get("primary"),
            "the proxy did not follow (relay: %r; topology: %r)" % (answer, topology()))
    v = read_rb()
    k.check(v == 20, "after the switch the read gave %r, not 20: the old primary's answer was "
            "served from the cache" % (v,))
    k.check(log_count(r"event=cache_flushed reason=primary_changed ") == flushed0 + 1,
            "the flush was not logged once")

# ---- 6. an election: no primary for a while ---------------------------------------------


def elect(k, conn=None):
    """Steps the primary down with no new one (connections kept), makes the proxy see it (a
    write through it gets NotWritablePrimary, or a hello on conn, a client connection bound
    to the old primary, is answered by a secondary: the monitor checks again), and checks
    that /stats shows the set with no primary. Returns the old primary's index."""
    old = members.index(rs_relay.control(a.control, "stats")["primary"])
    rs_relay.control(a.control, "elect keep")
    if conn is not None:
        r = conn.call(mctest.op_msg({"hello": 1, "$db": "admin"}), timeout=10.0)
        k.check(r.ok() and r.doc.get("msg") == "isdbgrid", "hello from the stepped-down "
                "member: %r" % (r,))
    else:
        c = pymongo.MongoClient(proxy_uri, retryWrites=False, serverSelectionTimeoutMS=5000)
        try:
            c[DB].probe.insert_one({"elect": 1})
        except PyMongoError:
            pass
        finally:
            c.close()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10 and topology().get("type") != "ReplicaSetNoPrimary":
        time.sleep(0.02)
    k.check(topology().get("type") == "ReplicaSetNoPrimary",
            "/stats never showed ReplicaSetNoPrimary: %r" % topology())
    return old


with mctest.Case(None, "an election (no primary for a second), seen in a client's hello: "
                 "connections to the stepped-down member are moved, a new client connection "
                 "waits for the new primary and its first write lands there") as k:
    idle = mctest.Conn(a.proxy, timeout=10.0)  # its upstream: the primary about to step down
    k.check(idle.call(mctest.ping(), timeout=10.0).ok(), "a ping through the proxy failed")
    moved0 = mctest.counters(a.http).get("upstream_moved", 0)
    old = elect(k, idle)  # the monitor learns of it from a client's hello
    k.check(mctest.counters(a.http).get("upstream_moved", 0) > moved0,
            "a client connection to the member that stepped down was not moved off it while "
            "the set had no primary (upstream_moved did not grow before the new primary)")
    idle.close()
    waited0 = mctest.counters(a.http).get("upstream_waited", 0)
    out = []

    def first_write():
        c = pymongo.MongoClient(proxy_uri, retryWrites=False, serverSelectionTimeoutMS=10000)
        try:
            c[DB].elect.insert_one({"_id": "elect-1"})
            out.append("acknowledged")
        except PyMongoError as e:
            out.append("%s: %s" % (name_of(e), str(e)[:200]))
        finally:
            c.close()
    e_th = threading.Thread(target=first_write)
    e_th.start()
    time.sleep(1.0)
    answer = rs_relay.control(a.control, "switch")
    e_th.join(30)
    new = 1 - old
    on = [pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, directConnection=True)[DB]
          .elect.count_documents({"_id": "elect-1"}) for port in ferret]
    k.check(out == ["acknowledged"], "the write through a connection opened with no primary "
            "(no retry allowed): %r" % out)
    k.check(answer.get("primary") == members[new] and on[new] == 1 and on[1 - new] == 0,
            "the write is on %r of FerretDB A, B (the new primary: %s)" % (on, members[new]))
    k.check(mctest.counters(a.http).get("upstream_waited", 0) > waited0,
            "upstream_waited did not grow")
    k.check(wait_primary(members[new]) is not None, "the proxy did not follow")

# A client connection opened now, its hello answered by the primary of the moment (B), is
# used again after the next election, which ends with A primary (section 7).
persona_conn = mctest.Conn(a.proxy, timeout=10.0)
persona_first = persona_conn.call(mctest.op_msg({"hello": 1, "$db": "admin"}), timeout=10.0)

with mctest.Case(None, "an election longer than connect_timeout: a new connection's hello "
                 "gets HostUnreachable (retryable: nothing was sent), not a stepped-down "
                 "member's answer, and the connection stays usable") as k:
    old = elect(k)
    none0 = mctest.counters(a.http).get("upstream_no_primary", 0)
    down0 = mctest.counters(a.http).get("upstream_connect_failures", 0)
    logged0 = (log_count(r"event=upstream_no_primary "), log_count(r"event=upstream_unreachable "))
    conn = mctest.Conn(a.proxy, timeout=10.0)
    r = conn.call(mctest.op_msg({"hello": 1, "$db": "admin"}), timeout=10.0)
    # errorLabels: drivers of 4.4+ servers retry a write on that label alone (retryable
    # writes specification), and nothing was sent, so a retry cannot apply it twice.
    k.check(r.doc is not None and r.doc.get("ok") in (0, 0.0) and r.doc.get("code") == 6 and
            r.doc.get("codeName") == "HostUnreachable" and "no primary" in r.doc.get("errmsg", "")
            and r.doc.get("errorLabels") == ["RetryableWriteError"],
            "the hello's reply: %r" % (r,))
    k.check(mctest.counters(a.http).get("upstream_no_primary", 0) == none0 + 1,
            "upstream_no_primary did not grow by one")
    k.check(mctest.counters(a.http).get("upstream_connect_failures", 0) == down0 and
            (log_count(r"event=upstream_no_primary "),
             log_count(r"event=upstream_unreachable ")) == (logged0[0] + 1, logged0[1]),
            "an election past connect_timeout is logged as no primary, not as the upstream "
            "down")
    rs_relay.control(a.control, "switch")
    k.check(wait_primary(members[1 - old]) is not None, "the proxy did not follow")
    r = conn.call(mctest.op_msg({"hello": 1, "$db": "admin"}), timeout=10.0)
    k.check(r.ok() and r.doc.get("msg") == "isdbgrid", "the next hello on that connection, "
            "with a primary: %r" % (r,))
    conn.close()

# ---- 7. the persona follows the deployment ----------------------------------------------
PERSONA_SAME = ("maxWireVersion", "minWireVersion", "maxBsonObjectSize", "maxMessageSizeBytes",
                "maxWriteBatchSize", "logicalSessionTimeoutMinutes")
SET_FIELDS = ("setName", "setVersion", "hosts", "primary", "me", "secondary", "electionId",
              "passives", "arbiters", "topologyVersion")
with mctest.Case(None, "the persona follows the deployment: after an election, hello on a "
                 "client connection opened before it is answered by the new primary as a "
                 "mongos (its limits and wire versions, none of the set's fields)") as k:
    now = rs_relay.control(a.control, "stats")["primary"]
    direct_hello = pymongo.MongoClient("mongodb://%s/" % now, directConnection=True) \
        .admin.command("hello")
    r = persona_conn.call(mctest.op_msg({"hello": 1, "$db": "admin"}), timeout=10.0)
    k.check(persona_first.ok() and r.ok(), "hello before: %r; after: %r" % (persona_first, r))
    d = r.doc or {}
    k.check(d.get("msg") == "isdbgrid" and d.get("isWritablePrimary") is True,
            "not a mongos: %r" % d)
    k.check(not [f for f in SET_FIELDS if f in d], "the set's fields leak: %r" % d)
    k.check(all(d.get(f) == direct_hello.get(f) for f in PERSONA_SAME),
            "limits differ from the new primary's (%s): %r vs %r" % (
                now, {f: d.get(f) for f in PERSONA_SAME},
                {f: direct_hello.get(f) for f in PERSONA_SAME}))
    k.check(direct_hello.get("setName") == "rs0" and direct_hello.get("isWritablePrimary"),
            "the relay's own hello is not a primary's: %r" % direct_hello)
    persona_conn.close()

with mctest.Case(None, "after the switches, hello through the proxy still answers as a "
                 "mongos (the persona follows the new primary)") as k:
    c = pymongo.MongoClient(proxy_uri, serverSelectionTimeoutMS=5000)
    h = c.admin.command("hello")
    k.check(h.get("msg") == "isdbgrid" and "setName" not in h and "hosts" not in h,
            "hello: %r" % h)
    k.check(c.topology_description.topology_type_name == "Sharded",
            "pymongo sees %s" % c.topology_description.topology_type_name)
    c.close()

print("# new connections followed the primary after: %s" % ", ".join(
    "%s %s" % (k2, "%.0f ms" % (v * 1000) if v is not None else "never")
    for k2, v in follow.items()), flush=True)
mctest.plan()
