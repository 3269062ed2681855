#!/usr/bin/env python3
"""tests/integration/shared_check.py: two proxies sharing one Redis tier.

Driven by test_shared.sh, which starts FerretDB, redis-server and two proxies
(same --redis, same --cache-key-secret) and runs
    shared_check.py GROUP --p1 PORT --h1 PORT --p2 PORT --h2 PORT
                          --direct PORT [--redis-port P --redis-pid PID
                          --redis-pidfile FILE --redis-dir DIR --timeout-ms N]
Each group prints unnumbered TAP lines ("ok - ..." / "not ok - ...") with
"# " diagnostics, then its plan (mctest.py); the wrapper numbers them.

Groups (numbers are the sections of test_shared.sh):
  share    1  a query filled through P1 is a Redis hit through P2
  history  2  randomized readers/writers through P1 and P2; no read older
              than a write acknowledged before the read started
  kill     3  redis-server killed (-9) under load, then restarted on the
              same port: pass-through, bounded latency, nothing stale after
  pause    4  redis-server SIGSTOPped 3 s: bounded latency, breaker trips,
              hits resume after SIGCONT, nothing stale

The pid of any redis-server started here is written to --redis-pidfile (the
wrapper tracks it and SIGCONTs it on exit).
"""
import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import pymongo
from pymongo.errors import PyMongoError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402


def Case(name):
    """mctest.Case on the script's one Tap."""
    return mctest.Case(mctest.TAP, name)

DB = "mcshared"


# ---- /stats ----------------------------------------------------------------------------


def snap(http_port):
    return mctest.stats(http_port, timeout=3)


def cval(s, name):
    return s["cache"].get(name, 0)


def bval(s, reason):
    return s["cache"].get("bypass_reasons", {}).get(reason, 0)


def rsec(s):
    return s["cache"].get("redis") or s.get("redis") or {}


def rval(s, name):
    return rsec(s).get("counters", {}).get(name, 0)


def rstate(s):
    return rsec(s).get("state")


def wait_state(http_ports, want, secs):
    """True once every proxy's redis.state == want (polled, bounded)."""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            if all(rstate(snap(h)) == want for h in http_ports):
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


# ---- clients ----------------------------------------------------------------------------


def client(port, **kw):
    kw.setdefault("serverSelectionTimeoutMS", 10000)
    kw.setdefault("directConnection", True)
    kw.setdefault("socketTimeoutMS", 10000)
    return pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, **kw)


def rows(cl, coll, flt):
    return list(cl[DB][coll].find(flt, sort=[("_id", 1)]))


STATIC_QUERIES = [
    {},
    {"g": 0},
    {"g": 1},
    {"n": {"$gte": 10}},
    {"n": {"$lt": 5}},
    {"s": "x3"},
]


def seed_static(direct, coll):
    direct[DB][coll].drop()
    direct[DB][coll].insert_many([{"_id": i, "n": i, "g": i % 3, "s": "x%d" % (i % 7)}
                                  for i in range(20)])
    return [rows(direct, coll, q) for q in STATIC_QUERIES]


class Reader(threading.Thread):
    """Reads the static collection through one proxy in a loop; records the
    latency of each query and every answer that differs from FerretDB's."""

    def __init__(self, cl, coll, expected):
        super().__init__(daemon=True)
        self.cl, self.coll, self.expected = cl, coll, expected
        self.stop = threading.Event()
        self.lat = []  # (start, seconds)
        self.wrong = []
        self.errors = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            q = i % len(STATIC_QUERIES)
            i += 1
            t0 = time.monotonic()
            try:
                got = rows(self.cl, self.coll, STATIC_QUERIES[q])
            except PyMongoError as e:
                self.errors.append("%s: %s" % (STATIC_QUERIES[q], str(e)[:200]))
                time.sleep(0.05)
                continue
            self.lat.append((t0, time.monotonic() - t0))
            if got != self.expected[q]:
                self.wrong.append((STATIC_QUERIES[q], got[:3]))
            time.sleep(0.005)

    def max_between(self, a, b):
        ls = [d for (t, d) in self.lat if a <= t <= b]
        return (max(ls) if ls else 0.0), len(ls)


# ---- 1: sharing -------------------------------------------------------------------------


def g_share(a):
    c1, c2, d = client(a.p1), client(a.p2), client(a.direct)
    with Case("shared 1: a query filled through P1 is a Redis hit through P2, equal to FerretDB's") as c:
        d[DB].share.drop()
        d[DB].share.insert_many([{"_id": i, "k": i % 4, "t": "share-%d" % i} for i in range(12)])
        q = {"k": 2}
        want = rows(d, "share", q)
        s1a, s2a = snap(a.h1), snap(a.h2)
        got1 = rows(c1, "share", q)
        c.check(got1 == want, "P1 differs from FerretDB: %r" % got1[:3])
        # the fill reaches Redis asynchronously: wait for P1's redis_fills
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and rval(snap(a.h1), "redis_fills") <= rval(s1a, "redis_fills"):
            time.sleep(0.05)
        s1b = snap(a.h1)
        c.check(rval(s1b, "redis_fills") > rval(s1a, "redis_fills"),
                "P1 stored nothing in Redis (redis_fills %d -> %d)"
                % (rval(s1a, "redis_fills"), rval(s1b, "redis_fills")))
        got2 = rows(c2, "share", q)
        s2b = snap(a.h2)
        c.check(got2 == want, "P2 differs from FerretDB: %r" % got2[:3])
        dh = rval(s2b, "redis_hits") - rval(s2a, "redis_hits")
        dc = cval(s2b, "hits") - cval(s2a, "hits")
        dm = cval(s2b, "misses") - cval(s2a, "misses")
        c.check(dh == 1, "P2's first read was not a Redis hit: redis_hits +%d" % dh)
        c.check(dc == 1, "P2's first read was not a cache hit: hits +%d, misses +%d" % (dc, dm))
        c.note("P2: redis_hits +%d, hits +%d, misses +%d" % (dh, dc, dm))


# ---- late: a w:0 write's grace ends in a bump other proxies hear ---------------------------


def g_late(a):
    """P1 refuses fills of what a w:0 write touches for cache_write_grace (1 s): the
    server may apply it later. P2 does not know and fills what it reads meanwhile; the
    bump P1 sends when the grace ends makes that stale everywhere. The FerretDB write
    that stands for the late-applied one bypasses both proxies, so only that bump can
    make P2 see it."""
    c1, c2, d = client(a.p1), client(a.p2), client(a.direct)
    with Case("shared late: when P1's w:0 grace ends, P2's entry filled during it is "
              "stale (P1's late bump, heard through Redis)") as c:
        d[DB].late.drop()
        d[DB].late.insert_one({"_id": 1, "v": 0})
        t0 = time.monotonic()
        client(a.p1, w=0)[DB].late.update_one({"_id": 1}, {"$set": {"v": 1}})
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and d[DB].late.find_one({"_id": 1})["v"] != 1:
            time.sleep(0.02)
        first = c2[DB].late.find_one({"_id": 1})
        s = snap(a.h2)
        again = c2[DB].late.find_one({"_id": 1})
        c.check(first == again == {"_id": 1, "v": 1} and cval(snap(a.h2), "hits") > cval(s, "hits"),
                "P2 did not fill during the grace: %r, %r" % (first, again))
        d[DB].late.update_one({"_id": 1}, {"$set": {"v": 2}})  # behind both proxies' backs
        inside = c2[DB].late.find_one({"_id": 1})
        took = time.monotonic() - t0
        if took < 0.9:  # (a slower run proves less, but not wrong)
            c.check(inside == {"_id": 1, "v": 1},
                    "inside the grace P2 should still serve its entry (%r after %.2f s)"
                    % (inside, took))
        c.note("P2's entry filled and read back %.2f s into the grace" % took)
        time.sleep(max(0.0, 1.6 - (time.monotonic() - t0)))  # the grace, the timer's step, Redis
        after = c2[DB].late.find_one({"_id": 1})
        c.check(after == {"_id": 1, "v": 2}, "after the grace P2 served %r" % (after,))
        c.note("P2 after the grace: %r" % (after,))


# ---- 2: history check ----------------------------------------------------------------------


def g_history(a):
    nkeys, nwriters, nreaders = 12, 3, 5
    max_ops, max_secs = a.ops, 20.0
    with Case("shared 2: %d threads, P1/P2 at random: no read older than an acknowledged write"
              % (nwriters + nreaders)) as c:
        d = client(a.direct)
        cls = [client(a.p1, maxPoolSize=16), client(a.p2, maxPoolSize=16)]
        # one key per collection: a write invalidates only its own key's entries
        for k in range(nkeys):
            d[DB]["h%d" % k].drop()
            d[DB]["h%d" % k].insert_one({"_id": k, "v": 0})
        s1a, s2a = snap(a.h1), snap(a.h2)
        lock = threading.Lock()
        # separate budgets, so that fast readers do not starve the writers
        budget = {"w": max_ops // 5, "r": max_ops - max_ops // 5}
        acks = {k: [] for k in range(nkeys)}  # (ack time, v)
        reads = []  # (key, start, v, proxy)
        errors = []
        t_end = time.monotonic() + max_secs
        rnd = random.Random(a.seed)
        seeds = [rnd.randrange(1 << 30) for _ in range(nwriters + nreaders)]

        def more(kind):
            with lock:
                if budget[kind] <= 0 or time.monotonic() > t_end:
                    return False
                budget[kind] -= 1
                return True

        def writer(w):
            r = random.Random(seeds[w])
            mine = [k for k in range(nkeys) if k % nwriters == w]
            counter = {k: 0 for k in mine}
            while more("w"):
                k = r.choice(mine)
                counter[k] += 1
                v = counter[k]
                p = r.randrange(2)
                try:
                    cls[p][DB]["h%d" % k].replace_one({"_id": k}, {"v": v}, upsert=True)
                except PyMongoError as e:
                    errors.append("write k=%d v=%d P%d: %s" % (k, v, p + 1, str(e)[:200]))
                    continue
                t = time.monotonic()
                with lock:
                    acks[k].append((t, v))
                time.sleep(r.uniform(0.002, 0.02))

        def reader(i):
            r = random.Random(seeds[nwriters + i])
            while more("r"):
                k = r.randrange(nkeys)
                p = r.randrange(2)
                t0 = time.monotonic()
                try:
                    got = list(cls[p][DB]["h%d" % k].find({"_id": k}))
                except PyMongoError as e:
                    errors.append("read k=%d P%d: %s" % (k, p + 1, str(e)[:200]))
                    continue
                v = got[0]["v"] if len(got) == 1 else None
                with lock:
                    reads.append((k, t0, v, p + 1))
                # paced (0-5 ms between reads; the writers wait 2-20 ms), so that the reads
                # spread over the writes instead of racing ahead of them when hits are fast
                time.sleep(r.uniform(0.0, 0.005))

        ths = [threading.Thread(target=writer, args=(w,)) for w in range(nwriters)]
        ths += [threading.Thread(target=reader, args=(i,)) for i in range(nreaders)]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        for t in ths:
            t.join(max_secs + 15)
        took = time.monotonic() - t0
        c.check(not any(t.is_alive() for t in ths), "a worker thread is still running")
        s1b, s2b = snap(a.h1), snap(a.h2)

        viol = []
        floored = newer = 0
        for (k, ts, v, p) in reads:
            floor = max([wv for (ta, wv) in acks[k] if ta < ts], default=0)
            floored += floor > 0
            newer += v is not None and v > floor
            if v is None or v < floor:
                viol.append("key %d via P%d at +%.3fs: saw v=%r, acknowledged v=%d"
                            % (k, p, ts - t0, v, floor))
        nw = sum(len(x) for x in acks.values())
        h1 = cval(s1b, "hits") - cval(s1a, "hits")
        h2 = cval(s2b, "hits") - cval(s2a, "hits")
        rh1 = rval(s1b, "redis_hits") - rval(s1a, "redis_hits")
        rh2 = rval(s2b, "redis_hits") - rval(s2a, "redis_hits")
        c.check(not viol, "%d stale reads (of %d), first: %s" % (len(viol), len(reads), viol[:5]))
        c.check(not errors, "%d errors: %s" % (len(errors), errors[:3]))
        c.check(h1 > 0 and h2 > 0, "the cache served no hits on a proxy (P1 +%d, P2 +%d)" % (h1, h2))
        c.check(len(reads) > 200 and nw > 50, "too few operations: %d reads, %d writes" % (len(reads), nw))
        # Enough reads must be constrained by an acknowledged write for the check to mean
        # something; the share depends on timing (faster hits, fewer constrained reads),
        # so a third is asked for, not a half (513 of 1,200 is as telling as 601).
        c.check(floored > len(reads) // 3, "only %d reads followed an acknowledged write" % floored)
        c.note("%d reads (%d after an acknowledged write, %d saw a write still in flight), "
               "%d acknowledged writes in %.1f s; violations %d; "
               "hits P1 +%d (redis +%d), P2 +%d (redis +%d)"
               % (len(reads), floored, newer, nw, took, len(viol), h1, rh1, h2, rh2))
        # the Redis tier was not bypassed during the run
        b1 = bval(s1b, "redis_unavailable") - bval(s1a, "redis_unavailable")
        b2 = bval(s2b, "redis_unavailable") - bval(s2a, "redis_unavailable")
        c.note("redis_unavailable bypasses: P1 +%d, P2 +%d" % (b1, b2))


# ---- 3: kill -9 ----------------------------------------------------------------------------


def start_redis(a):
    """A fresh redis-server on the same port, flags as lib.sh's mc_start_redis."""
    ddir = os.path.join(a.redis_dir, "restart.%d" % random.randrange(1 << 30))
    os.makedirs(ddir, exist_ok=True)
    log = open(os.path.join(ddir, "redis.log"), "w")
    deadline = time.monotonic() + 10
    while True:
        p = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(a.redis_port),
                              "--save", "", "--appendonly", "no", "--daemonize", "no",
                              "--dir", ddir, "--protected-mode", "yes"],
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        with open(a.redis_pidfile, "a") as f:
            f.write("%d\n" % p.pid)
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", a.redis_port), timeout=0.5).close()
                return p
            except OSError:
                if p.poll() is not None:
                    break
                time.sleep(0.1)
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not come back on port %d" % a.redis_port)
        time.sleep(0.3)  # port still held: try again


def g_kill(a):
    c1, c2, d = client(a.p1), client(a.p2), client(a.direct)
    bound = a.timeout_ms / 1000.0 + 0.5
    with Case("shared 3: redis-server killed (-9) under load, then restarted: "
              "answers correct, latency < %d ms, nothing stale after" % (bound * 1000)) as c:
        expected = seed_static(d, "kstatic")
        d[DB].kq.drop()
        d[DB].kq.insert_one({"_id": "q", "v": 0})
        # warm Q in both proxies (local tier and Redis)
        for cl in (c1, c2, c1, c2):
            c.check(rows(cl, "kq", {"_id": "q"}) == [{"_id": "q", "v": 0}], "warm-up read of Q")
        for cl in (c1, c2):
            for q in STATIC_QUERIES:
                rows(cl, "kstatic", q)
        s1a, s2a = snap(a.h1), snap(a.h2)
        c.check(rstate(s1a) == "connected" and rstate(s2a) == "connected",
                "tier not connected before the kill: %s %s" % (rstate(s1a), rstate(s2a)))
        rd = Reader(client(a.p1), "kstatic", expected)
        rd.start()
        time.sleep(0.5)
        t_kill = time.monotonic()
        os.kill(a.redis_pid, signal.SIGKILL)
        time.sleep(1.0)
        # while Redis is down: a direct write, then one through P1
        d[DB].kq.update_one({"_id": "q"}, {"$set": {"v": 1}})
        st_w = rstate(snap(a.h1))
        c.check(st_w != "connected", "P1's tier still connected 1 s after the kill")
        tw = time.monotonic()
        c1[DB].kq.update_one({"_id": "q"}, {"$set": {"v": 2}})
        wlat = time.monotonic() - tw
        c.check(wlat < bound, "the write through P1 took %.0f ms while Redis was down" % (wlat * 1000))
        # reads of Q while down (pass-through): the new value
        for cl, name in ((c1, "P1"), (c2, "P2")):
            got = rows(cl, "kq", {"_id": "q"})
            c.check(got == [{"_id": "q", "v": 2}], "%s while Redis is down: %r" % (name, got))
        time.sleep(0.5)
        s1m = snap(a.h1)
        t_restart = time.monotonic()
        down_max, down_n = rd.max_between(t_kill, t_restart)
        p = start_redis(a)
        back = wait_state([a.h1, a.h2], "connected", 10)
        c.check(back, "tier not connected 10 s after the restart: P1 %s, P2 %s"
                % (rstate(snap(a.h1)), rstate(snap(a.h2))))
        time.sleep(0.3)
        rd.stop.set()
        rd.join(15)
        after_max, _ = rd.max_between(t_restart, time.monotonic())
        stale = 0
        seen = []
        for i in range(20):
            for cl, name in ((c2, "P2"), (c1, "P1")):
                got = rows(cl, "kq", {"_id": "q"})
                if got != [{"_id": "q", "v": 2}]:
                    stale += 1
                    seen.append((name, got))
        s1b, s2b = snap(a.h1), snap(a.h2)
        byp = bval(s1m, "redis_unavailable") - bval(s1a, "redis_unavailable")
        eb1 = rval(s1b, "redis_epoch_bumps") - rval(s1a, "redis_epoch_bumps")
        eb2 = rval(s2b, "redis_epoch_bumps") - rval(s2a, "redis_epoch_bumps")
        rh = (rval(s1b, "redis_hits") - rval(s1a, "redis_hits"),
              rval(s2b, "redis_hits") - rval(s2a, "redis_hits"))
        c.check(not rd.wrong, "%d wrong answers through P1, first: %r" % (len(rd.wrong), rd.wrong[:2]))
        c.check(not rd.errors, "%d failed queries through P1, first: %r" % (len(rd.errors), rd.errors[:2]))
        c.check(down_n > 10, "only %d queries answered during the outage" % down_n)
        c.check(down_max < bound, "max latency during the outage %.0f ms" % (down_max * 1000))
        c.check(byp > 0, "bypass_reasons.redis_unavailable did not rise on P1")
        c.check(stale == 0, "%d stale reads of Q after Redis returned: %r" % (stale, seen[:4]))
        c.check(eb1 > 0 and eb2 > 0, "redis_epoch_bumps did not rise: P1 +%d, P2 +%d" % (eb1, eb2))
        c.note("outage: %d queries, max %.1f ms (bound %d ms); after restart max %.1f ms; "
               "write during outage %.1f ms; redis_unavailable +%d; epoch bumps P1 +%d P2 +%d; "
               "stale after return %d; redis_hits P1 +%d P2 +%d"
               % (down_n, down_max * 1000, bound * 1000, after_max * 1000, wlat * 1000, byp,
                  eb1, eb2, stale, rh[0], rh[1]))
        a.redis_pid = p.pid


# ---- 4: SIGSTOP ----------------------------------------------------------------------------


def g_pause(a):
    c1, c2, d = client(a.p1), client(a.p2), client(a.direct)
    bound = 3 * a.timeout_ms / 1000.0 + 0.5
    with Case("shared 4: redis-server SIGSTOPped 3 s: answers correct, latency < %d ms, "
              "breaker trips, hits resume, nothing stale" % (bound * 1000)) as c:
        pid = a.redis_pid
        expected = seed_static(d, "pstatic")
        d[DB].pw.drop()
        d[DB].pw.insert_one({"_id": "w", "v": 0})
        for cl in (c1, c2, c1, c2):
            rows(cl, "pw", {"_id": "w"})
        for cl in (c1, c2):
            for q in STATIC_QUERIES:
                rows(cl, "pstatic", q)
        c.check(wait_state([a.h1, a.h2], "connected", 5), "tier not connected before the pause")
        s1a, s2a = snap(a.h1), snap(a.h2)
        rd1 = Reader(client(a.p1), "pstatic", expected)
        rd2 = Reader(client(a.p2), "pstatic", expected)
        rd1.start()
        rd2.start()
        time.sleep(0.3)
        t_stop = time.monotonic()
        wlat = None
        try:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(1.5)
            tw = time.monotonic()
            c1[DB].pw.update_one({"_id": "w"}, {"$set": {"v": 1}})
            wlat = time.monotonic() - tw
            time.sleep(max(0.0, 3.0 - (time.monotonic() - t_stop)))
        finally:
            os.kill(pid, signal.SIGCONT)
        t_cont = time.monotonic()
        s1m = snap(a.h1)
        paused_max, paused_n = rd1.max_between(t_stop, t_cont)
        paused_max2, paused_n2 = rd2.max_between(t_stop, t_cont)
        # hits resume: a warm static query through P1 until it is a hit again.
        # With Redis configured nothing is served from cache without Redis
        # (a Redis hit, or an in-process copy Redis has just vouched for).
        resumed = None
        while time.monotonic() - t_cont < 5:
            sb = snap(a.h1)
            rows(c1, "pstatic", STATIC_QUERIES[1])
            sa = snap(a.h1)
            if cval(sa, "hits") > cval(sb, "hits"):
                resumed = time.monotonic() - t_cont
                break
            time.sleep(0.1)
        rd1.stop.set()
        rd2.stop.set()
        rd1.join(15)
        rd2.join(15)
        stale = []
        for i in range(10):
            for cl, name in ((c2, "P2"), (c1, "P1")):
                got = rows(cl, "pw", {"_id": "w"})
                if got != [{"_id": "w", "v": 1}]:
                    stale.append((name, got))
        s1b = snap(a.h1)
        trips = rval(s1m, "redis_breaker_trips") - rval(s1a, "redis_breaker_trips")
        tmo = rval(s1m, "redis_timeouts") - rval(s1a, "redis_timeouts")
        for rd, name in ((rd1, "P1"), (rd2, "P2")):
            c.check(not rd.wrong, "%d wrong answers through %s: %r" % (len(rd.wrong), name, rd.wrong[:2]))
            c.check(not rd.errors, "%d failed queries through %s: %r" % (len(rd.errors), name, rd.errors[:2]))
        c.check(paused_n > 10 and paused_n2 > 10, "few queries during the pause: %d, %d" % (paused_n, paused_n2))
        c.check(max(paused_max, paused_max2) < bound,
                "max latency during the pause: P1 %.0f ms, P2 %.0f ms"
                % (paused_max * 1000, paused_max2 * 1000))
        c.check(wlat is not None and wlat < bound, "the write during the pause took %r s" % wlat)
        c.check(trips > 0, "no breaker trip counted on P1 (timeouts +%d)" % tmo)
        c.check(resumed is not None, "no hit within 5 s of SIGCONT (state %s)" % rstate(s1b))
        c.check(not stale, "%d stale reads of W after SIGCONT: %r" % (len(stale), stale[:4]))
        c.note("pause: P1 %d queries max %.1f ms, P2 %d queries max %.1f ms (bound %d ms); "
               "write %.1f ms; P1 breaker trips +%d, timeouts +%d; hits resumed after %s s"
               % (paused_n, paused_max * 1000, paused_n2, paused_max2 * 1000, bound * 1000,
                  (wlat or 0) * 1000, trips, tmo,
                  "%.2f" % resumed if resumed is not None else "never"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("group", choices=["share", "late", "history", "kill", "pause", "killpause"])
    ap.add_argument("--p1", type=int, required=True)
    ap.add_argument("--h1", type=int, required=True)
    ap.add_argument("--p2", type=int, required=True)
    ap.add_argument("--h2", type=int, required=True)
    ap.add_argument("--direct", type=int, required=True)
    ap.add_argument("--redis-port", type=int)
    ap.add_argument("--redis-pid", type=int)
    ap.add_argument("--redis-pidfile")
    ap.add_argument("--redis-dir")
    ap.add_argument("--timeout-ms", type=int, default=50)
    ap.add_argument("--ops", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("MC_SEED", random.randrange(1 << 30))))
    a = ap.parse_args()
    print("# seed %d" % a.seed, flush=True)
    if a.group == "share":
        g_share(a)
    elif a.group == "late":
        g_late(a)
    elif a.group == "history":
        g_history(a)
    else:
        # kill restarts redis-server; pause stops the restarted one
        g_kill(a)
        g_pause(a)
    mctest.plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
