"""tests/integration/faults.py: the cases of test_faults.sh (see there).

Two pymongo clients (retryWrites on, and off) run a workload through the
proxy P1 for the whole run, while the cases below apply one fault at a time
through toxiproxy's HTTP API to P1's upstream link ("mongo") or its Redis
link ("redis"). Every operation carries a tag (its `comment`, and for the
counter writes the value $pushed), so that command monitoring gives every
attempt's duration and outcome, and the final state read directly from
FerretDB tells how often each write was applied.

It starts toxiproxy-server and P1 itself, so that it can start either again
on the same ports: P1 after a crash (reported as a failure, and the cases go
on), toxiproxy when its API hangs (see Toxiproxy).

Prints "PLAN n", then unnumbered TAP lines ("ok - ...", "not ok - ...",
"# ...").
Everything is bounded: each case lasts its window plus a bounded recovery,
each operation is bounded by the clients' timeouts, each wait by a deadline.
"""

import argparse
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pymongo
from pymongo import errors, monitoring

DB = "faults"
WINDOW_S = 1.5  # how long each fault lasts
SETTLE_S = 0.3  # workload kept running after the recovery, same case
PULSE_S = 0.25  # a "pulse" case closes every connection through its link this often
# Stated margin on every latency bound: FerretDB's own time (it is part of
# every attempt that reaches it; up to 0.8 s seen on two shared cores),
# scheduling, the ASan build, pymongo itself. A case's bound is its fault's
# own delay (or the configured timeouts it involves) plus this.
MARGIN_MS = 1000
# The clients' own timeouts, longer than any fault lasts: the socket timeout
# is never meant to fire (an attempt failing with NetworkTimeout means the
# proxy left a request unanswered with its connection open).
CLIENT_SOCKET_TIMEOUT_MS = 3000
CLIENT_CONNECT_TIMEOUT_MS = 3000
CLIENT_SELECT_TIMEOUT_MS = 3000
GAP = 1000  # case index + GAP: the gap after a case
OP_PAUSE_S = 0.003  # between one thread's operations (shared machine)
N_ITEMS = 40
BIG_PAD = 200  # bytes of padding per item: the "all" query's reply is ~10 KB


def now():
    return time.monotonic()


def wall(t):
    """A monotonic time as the wall clock of the proxy's log lines (UTC)."""
    w = time.time() - (now() - t)
    return time.strftime("%H:%M:%S", time.gmtime(w)) + ".%03d" % (int(w * 1000) % 1000)


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def diag(text):
    for line in str(text).splitlines():
        out("# " + line)


# ---- toxiproxy --------------------------------------------------------------


class Toxiproxy:
    """toxiproxy-server, started here, and its HTTP API.

    Its API can hang for good removing or adding a toxic while a link's
    destination is gone (toxiproxy issue #558: a toxic blocks forever sending
    to a dead link, holding the lock every API call needs). A call that does
    not return in API_TIMEOUT_S kills the server and starts a new one on the
    same ports, with the same proxies and no toxics, which closes every
    connection through it; the case is marked as disturbed (self.hangs)."""

    API_TIMEOUT_S = 3

    def __init__(self, binary, api_port, links, pidfile, log_path):
        self.cmd = [binary, "-host", "127.0.0.1", "-port", str(api_port)]
        self.links, self.pidfile = links, pidfile
        self.log = open(log_path, "ab")  # noqa: SIM115 (open for the run)
        self.base = "http://127.0.0.1:%d" % api_port
        self.proc = None
        self.hangs = []  # (when, call) that hung

    def start(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, LOG_LEVEL="warn"))
        with open(self.pidfile, "w") as f:  # the running one only: the shell kills it
            f.write("%d\n" % self.proc.pid)
        t0 = now()
        while now() - t0 < 10:
            try:
                self._call("GET", "/version")
                break
            except OSError:
                time.sleep(0.05)
        for name, (listen, upstream) in self.links.items():
            self._call("POST", "/proxies", {"name": name, "listen": "127.0.0.1:%d" % listen,
                                            "upstream": "127.0.0.1:%d" % upstream,
                                            "enabled": True})

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.API_TIMEOUT_S) as r:
            return r.read()

    def call(self, method, path, body=None):
        try:
            return self._call(method, path, body)
        except OSError as exc:  # a timeout, or the server died
            self.hangs.append((now(), "%s %s: %s" % (method, path, exc)))
            self.start()
            return None

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        os.unlink(self.pidfile)

    def add(self, proxy, name, kind, stream, attrs):
        self.call("POST", "/proxies/%s/toxics" % proxy,
                  {"name": name, "type": kind, "stream": stream, "toxicity": 1.0,
                   "attributes": attrs})

    def remove(self, proxy, name):
        self.call("DELETE", "/proxies/%s/toxics/%s" % (proxy, name))

    def enable(self, proxy, on):
        self.call("POST", "/proxies/%s" % proxy, {"enabled": on})

    def reset(self):
        self.call("POST", "/reset")


def get_stats(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def stat_numbers(stats):
    """Flattens the counters this suite reads from GET /stats."""
    res = collections.Counter()
    if not stats:
        return res
    for k, v in (stats.get("counters") or {}).items():
        if isinstance(v, (int, float)):
            res[k] = v
    cache = stats.get("cache") or {}
    for k in ("hits", "misses", "fills"):
        if isinstance(cache.get(k), (int, float)):
            res["cache_" + k] = cache[k]
    redis = cache.get("redis") or stats.get("redis") or {}
    for k, v in (redis.get("counters") or {}).items():
        if isinstance(v, (int, float)):
            res[k] = v
    return res


def redis_state(stats):
    if not stats:
        return None
    cache = stats.get("cache") or {}
    redis = cache.get("redis") or stats.get("redis") or {}
    return redis.get("state")


# ---- command monitoring: every attempt --------------------------------------


class AttemptListener(monitoring.CommandListener):
    """Per tag (the command's comment): how often it was sent, and each attempt's
    duration and failure."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inflight = {}
        self.by_tag = collections.defaultdict(list)  # tag -> [(ms, errtype or None, errmsg)]
        self.n_started = collections.Counter()

    def started(self, event):
        tag = event.command.get("comment")
        if not isinstance(tag, str):
            return
        with self.lock:
            self.inflight[(event.request_id, event.connection_id)] = tag
            self.n_started[tag] += 1

    def _end(self, event, errtype, errmsg):
        with self.lock:
            tag = self.inflight.pop((event.request_id, event.connection_id), None)
            if tag is not None:
                self.by_tag[tag].append((event.duration_micros / 1000.0, errtype, errmsg))

    def succeeded(self, event):
        self._end(event, None, None)

    def failed(self, event):
        f = event.failure or {}
        self._end(event, f.get("errtype") or "OperationFailure", str(f.get("errmsg", f))[:200])


# ---- the workload -------------------------------------------------------------

OK, ERROR, WRONG = "ok", "error", "wrong"


def classify(exc):
    """(outcome, short description) of an exception an operation raised."""
    name = type(exc).__name__
    if isinstance(exc, errors.ProtocolError):
        return WRONG, "%s: %s" % (name, exc)  # responseTo or opcode mismatch
    if isinstance(exc, errors.ConnectionFailure):  # AutoReconnect, NetworkTimeout, selection
        return ERROR, "%s: %s" % (name, str(exc)[:160])
    if isinstance(exc, errors.OperationFailure):
        if exc.code is not None and str(exc):
            return ERROR, "%s %s: %s" % (name, exc.code, str(exc)[:160])
        return WRONG, "%s without code or message: %r" % (name, exc.details)
    return WRONG, "%s: %s" % (name, str(exc)[:200])


class Run:
    """Shared state of the workload threads and the case runner."""

    def __init__(self):
        self.lock = threading.Lock()
        self.case = -1  # index of the case in progress (-1: before the first)
        self.case_end = 0.0  # when the last case (and its recovery) ended
        self.stop = threading.Event()
        self.ops = []  # dicts: tag mode kind case t0 ms outcome detail
        self.acked_incs = collections.Counter()  # mode -> acknowledged $inc
        self.sent_incs = collections.Counter()
        self.last_ok = {}  # (mode, reader?) -> start of the thread's last successful operation
        self.inflight = {}  # thread -> case of the operation it runs now

    def begin(self):
        """An operation starts: (its case, its start time)."""
        with self.lock:
            case = self.case
            self.inflight[threading.get_ident()] = case
            return case, now()

    def record(self, **op):
        with self.lock:
            self.inflight.pop(threading.get_ident(), None)
            self.ops.append(op)
            if op["outcome"] == OK:
                key = (op["mode"], op["kind"].startswith("read:") and op["kind"] != "read:counter")
                self.last_ok[key] = max(self.last_ok.get(key, 0), op["t0"])

    def wait_healthy(self, since, deadline_s):
        """True once every workload thread has completed an operation started
        after `since` (so a case never starts while the last one's aftermath
        still holds the threads), False after deadline_s."""
        t0 = now()
        while now() - t0 < deadline_s:
            with self.lock:
                if len(self.last_ok) == 4 and min(self.last_ok.values()) > since:
                    return True
            time.sleep(0.02)
        return False

    def enter_case(self, idx, deadline_s):
        """Operations starting from now belong to case idx; returns once none
        started before is still running (True), or after deadline_s (False)."""
        self.case = idx
        t0 = now()
        while now() - t0 < deadline_s:
            with self.lock:
                if all(c == idx for c in self.inflight.values()):
                    return True
            time.sleep(0.01)
        return False


def reader(run, coll, queries, mode, rng):
    seq = 0
    while not run.stop.is_set():
        name, fn, want = rng.choice(queries)
        seq += 1
        tag = "%s:r:%d" % (mode, seq)
        case, t0 = run.begin()
        try:
            got = fn(coll, tag)
            if got == want:
                outcome, detail = OK, ""
            else:
                outcome, detail = WRONG, "%s: got %r want %r" % (name, got, want)
        except Exception as exc:  # noqa: BLE001 (classified)
            outcome, detail = classify(exc)
        run.record(tag=tag, mode=mode, kind="read:" + name, case=case, t0=t0,
                   ms=(now() - t0) * 1000, outcome=outcome, detail=detail)
        time.sleep(OP_PAUSE_S)


def writer(run, db, mode):
    items, ctrs = db["inserts"], db["counters"]
    ctr_id = "ctr-" + mode
    seq = 0
    while not run.stop.is_set():
        seq += 1
        # an insert with a unique _id
        tag = "%s:i:%d" % (mode, seq)
        case, t0 = run.begin()
        try:
            res = items.insert_one({"_id": tag, "case": case}, comment=tag)
            outcome, detail = (OK, "") if res.acknowledged and res.inserted_id == tag else \
                (WRONG, "insert result %r" % (res.inserted_id,))
        except Exception as exc:  # noqa: BLE001
            outcome, detail = classify(exc)
        run.record(tag=tag, mode=mode, kind="insert", case=case, t0=t0,
                   ms=(now() - t0) * 1000, outcome=outcome, detail=detail)
        time.sleep(OP_PAUSE_S)

        # $inc the counter, $push this operation's tag
        tag = "%s:u:%d" % (mode, seq)
        case, t0 = run.begin()
        with run.lock:
            run.sent_incs[mode] += 1
        try:
            res = ctrs.update_one({"_id": ctr_id}, {"$inc": {"n": 1}, "$push": {"ops": tag}},
                                  comment=tag)
            if res.matched_count == 1 and res.modified_count == 1:
                outcome, detail = OK, ""
                with run.lock:
                    run.acked_incs[mode] += 1
            else:
                outcome, detail = WRONG, "update result %r" % (res.raw_result,)
        except Exception as exc:  # noqa: BLE001
            outcome, detail = classify(exc)
        run.record(tag=tag, mode=mode, kind="inc", case=case, t0=t0,
                   ms=(now() - t0) * 1000, outcome=outcome, detail=detail)
        time.sleep(OP_PAUSE_S)

        # read the counter back (a cacheable read): it must show every
        # acknowledged $inc, and cannot show more than were sent (twice
        # each at most: one retry)
        tag = "%s:c:%d" % (mode, seq)
        case, t0 = run.begin()
        with run.lock:
            acked, sent = run.acked_incs[mode], run.sent_incs[mode]
        try:
            doc = ctrs.find_one({"_id": ctr_id}, {"n": 1}, comment=tag)
            n = doc.get("n") if doc else None
            if isinstance(n, int) and acked <= n <= 2 * sent:
                outcome, detail = OK, ""
            else:
                outcome, detail = WRONG, "counter read %r, acknowledged %d, sent %d" % (
                    n, acked, sent)
        except Exception as exc:  # noqa: BLE001
            outcome, detail = classify(exc)
        run.record(tag=tag, mode=mode, kind="read:counter", case=case, t0=t0,
                   ms=(now() - t0) * 1000, outcome=outcome, detail=detail)
        time.sleep(OP_PAUSE_S)


def make_queries(direct_db):
    """Reads of the fixed collection, each with the answer FerretDB gives directly."""
    def q_id(i):
        return lambda c, tag: c.find_one({"_id": i}, comment=tag)

    def q_grp(g):
        return lambda c, tag: list(c.find({"grp": g}, comment=tag).sort("_id", 1).limit(5))

    def q_count(g):
        return lambda c, tag: c.count_documents({"grp": g}, comment=tag)

    def q_distinct(g):
        return lambda c, tag: sorted(c.distinct("v", {"grp": g}, comment=tag))

    def q_all():
        return lambda c, tag: list(c.find({}, comment=tag).sort("_id", 1))

    # a new query each time (never a hit): a ~10 KB reply from the upstream
    def q_all_miss():
        return lambda c, tag: list(c.find({"_id": {"$ne": -random.randrange(1, 1 << 40)}},
                                          comment=tag).sort("_id", 1))

    def q_id_miss(i):
        return lambda c, tag: c.find_one({"_id": i, "v": {"$ne": -random.randrange(1, 1 << 40)}},
                                         comment=tag)

    qs = [("id%d" % i, q_id(i)) for i in range(N_ITEMS)]
    for g in range(5):
        qs += [("grp%d" % g, q_grp(g)), ("count%d" % g, q_count(g)),
               ("distinct%d" % g, q_distinct(g))]
    qs += [("all", q_all())] * 3 + [("all-miss", q_all_miss())] * 3
    qs += [("id%d-miss" % i, q_id_miss(i)) for i in range(0, N_ITEMS, 4)]
    items = direct_db["items"]
    return [(name, fn, fn(items, "truth")) for name, fn in qs]


# ---- the cases ----------------------------------------------------------------


class Case:
    def __init__(self, name, link, toxics, lossy, extra_ms, end="remove", observe=None,
                 also=(), pulse=False, window_s=WINDOW_S):
        self.name = name
        self.link = link          # toxiproxy proxy: "mongo" or "redis"
        self.toxics = toxics      # [(type, stream, attributes)]; [] with end="refused"
        self.lossy = lossy        # operations may fail (with a clear error)
        self.extra_ms = extra_ms  # the fault's own delay, added to each attempt's bound
        self.end = end            # "remove", "reset" (close every connection), "refused"
        self.observe = observe    # how the fault is seen to have acted
        self.also = also          # [(link, type, stream, attributes)] at the same time
        self.pulse = pulse        # close every connection through link every PULSE_S
        self.window_s = window_s  # how long the fault lasts


def cases(conf):
    w = int(WINDOW_S * 1000)
    rt = conf.redis_timeout_ms
    lat = {"latency": 200, "jitter": 50}
    stall = {"latency": 60000, "jitter": 0}  # held for the whole window, then released
    slices = {"average_size": 16, "size_variation": 12, "delay": 100}
    # Redis faults never fail an operation (the tier fails open); an attempt
    # may wait for Redis a few times (lookup, check, bumps), each bounded by
    # redis_timeout.
    rb = 4 * rt
    m = [
        Case("upstream latency 200 ms (replies)", "mongo", [("latency", "downstream", lat)],
             False, 250, observe="slow"),
        Case("upstream latency 200 ms (requests)", "mongo", [("latency", "upstream", lat)],
             False, 250, observe="slow"),
        Case("upstream stalled %d ms (replies held)" % w, "mongo",
             [("latency", "downstream", stall)], False, w, observe="slow"),
        Case("upstream stalled %d ms (requests held)" % w, "mongo",
             [("latency", "upstream", stall)], False, w, observe="slow"),
        Case("upstream bandwidth 16 KB/s (replies)", "mongo",
             [("bandwidth", "downstream", {"rate": 16})], False, 1000, observe="slow"),
        Case("upstream bandwidth 16 KB/s (requests)", "mongo",
             [("bandwidth", "upstream", {"rate": 16})], False, 250),
        Case("upstream sliced into ~16-byte writes (replies)", "mongo",
             [("slicer", "downstream", slices)], False, 1000),
        Case("upstream sliced into ~16-byte writes (requests)", "mongo",
             [("slicer", "upstream", slices)], False, 250),
        Case("upstream reset (on reply bytes)", "mongo",
             [("reset_peer", "downstream", {"timeout": 0})], True, 0, observe="lost"),
        Case("upstream reset (on request bytes)", "mongo",
             [("reset_peer", "upstream", {"timeout": 0})], True, 0, observe="lost"),
        # Every upstream connection closed at moments unrelated to the
        # traffic, while most reads wait on Redis (slowed down, below
        # redis_timeout): a request popped while its Redis wait is pending.
        Case("upstream connections closed every %d ms while reads wait on a slow Redis "
             "(30 ms)" % int(PULSE_S * 1000), "mongo", [], True, rb, pulse=True,
             also=[("redis", "latency", "downstream", {"latency": 30, "jitter": 0})],
             observe="lost"),
        Case("upstream black hole %d ms (replies dropped), then closed" % w, "mongo",
             [("timeout", "downstream", {"timeout": 0})], True, w, end="reset",
             observe="lost"),
        Case("upstream black hole %d ms (requests dropped), then closed" % w, "mongo",
             [("timeout", "upstream", {"timeout": 0})], True, w, end="reset",
             observe="lost"),
        Case("upstream cut between request and reply", "mongo",
             [("limit_data", "downstream", {"bytes": 0})], True, 0, observe="lost"),
        Case("upstream cut inside a reply (40 bytes), slow close 800 ms", "mongo",
             [("limit_data", "downstream", {"bytes": 40}),
              ("slow_close", "downstream", {"delay": 800})], True, 800, observe="lost"),
        Case("upstream cut inside a request (100 bytes)", "mongo",
             [("limit_data", "upstream", {"bytes": 100})], True, 0, observe="lost"),
        Case("upstream refuses connections", "mongo", [], True, 0, end="refused",
             observe="lost"),
    ]
    r = [
        Case("redis latency 200 ms (replies)", "redis", [("latency", "downstream", lat)],
             False, rb, observe="redis"),
        Case("redis latency 200 ms (commands)", "redis", [("latency", "upstream", lat)],
             False, rb, observe="redis"),
        # longer than an attempt's bound: a proxy that waited for Redis
        # beyond redis_timeout would be seen
        Case("redis stalled 3000 ms (replies held)", "redis",
             [("latency", "downstream", stall)], False, rb, observe="redis", window_s=3.0),
        Case("redis bandwidth 1 KB/s (replies)", "redis",
             [("bandwidth", "downstream", {"rate": 1})], False, rb, observe="redis"),
        Case("redis sliced into ~16-byte writes (replies)", "redis",
             [("slicer", "downstream", slices)], False, rb),
        Case("redis sliced into ~16-byte writes (commands)", "redis",
             [("slicer", "upstream", slices)], False, rb),
        Case("redis reset (on reply bytes)", "redis",
             [("reset_peer", "downstream", {"timeout": 0})], False, rb, observe="redis"),
        Case("redis reset (on command bytes)", "redis",
             [("reset_peer", "upstream", {"timeout": 0})], False, rb, observe="redis"),
        Case("redis black hole %d ms (replies dropped), then closed" % w, "redis",
             [("timeout", "downstream", {"timeout": 0})], False, rb, end="reset",
             observe="redis"),
        Case("redis black hole %d ms (commands dropped), then closed" % w, "redis",
             [("timeout", "upstream", {"timeout": 0})], False, rb, end="reset",
             observe="redis"),
        Case("redis cut between command and reply", "redis",
             [("limit_data", "downstream", {"bytes": 0})], False, rb, observe="redis"),
        Case("redis cut inside a reply (20 bytes)", "redis",
             [("limit_data", "downstream", {"bytes": 20})], False, rb, observe="redis"),
        Case("redis refuses connections", "redis", [], False, rb, end="refused",
             observe="redis"),
    ]
    return m + r


# ---- checks -------------------------------------------------------------------


class Results:
    def check(self, ok, name, details=(), skip=None):
        """One TAP line; skip: why it could not be checked."""
        if skip:
            out("ok - %s # SKIP %s" % (name, skip))
        elif ok:
            out("ok - " + name)
        else:
            out("not ok - " + name)
        for d in list(details)[:16]:
            diag("  " + d)


def fresh_ping(uri, deadline_s, p1=None):
    """Seconds until a new client's ping through uri answers, or None (at
    once when P1 has died)."""
    t0 = now()
    while now() - t0 < deadline_s and (p1 is None or p1.alive()):
        c = pymongo.MongoClient(uri, directConnection=True, serverSelectionTimeoutMS=1000,
                                connectTimeoutMS=1000, socketTimeoutMS=1000, retryReads=False)
        try:
            c.admin.command("ping")
            return now() - t0
        except errors.PyMongoError:
            time.sleep(0.1)
        finally:
            c.close()
    return None


class Proxy1:
    """P1, the proxy under faults: started here so that it can be started
    again, on the same ports, after a crash (reported; the cases go on)."""

    def __init__(self, cmd, log_prefix, pidfile, port):
        self.cmd, self.log_prefix, self.pidfile, self.port = cmd, log_prefix, pidfile, port
        self.n = 0
        self.proc = None
        self.log = None

    def start(self):
        self.n += 1
        self.log = "%s-%d.log" % (self.log_prefix, self.n)
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(self.cmd, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        with open(self.pidfile, "w") as f:  # the running one only: the shell kills it
            f.write("%d\n" % self.proc.pid)
        t0 = now()
        while now() - t0 < 10 and self.alive():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def crash(self):
        """None while P1 runs; else what its death looked like, P1 started again:
        {"status": exit status, "excerpt", "restarted"}."""
        if self.alive():
            return None
        status = self.proc.wait()
        with open(self.log, "r", errors="replace") as f:
            text = f.read()
        i = text.find("ERROR: AddressSanitizer")
        excerpt = text[i:i + 1500] if i >= 0 else text[-1500:]
        return {"status": status, "excerpt": excerpt, "restarted": self.start()}

    def stop(self):
        """SIGTERM, bounded wait; the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        status = self.proc.wait()
        os.unlink(self.pidfile)
        return status


def run_case(conf, toxi, run, p1, idx, case):
    """Applies the case's fault for its window, removes it and waits for the
    recovery; returns what was measured (judged by judge_case at the end, once
    every operation started during the case has ended)."""
    healthy = run.wait_healthy(run.case_end, 10)
    healthy = run.enter_case(idx, 15) and healthy
    n_hangs = len(toxi.hangs)
    before = stat_numbers(get_stats(conf.stats))
    t_start = now()
    names = []
    if case.end == "refused":
        toxi.enable(case.link, False)
    toxics = [(case.link,) + t for t in case.toxics] + list(case.also)
    for i, (link, kind, stream, attrs) in enumerate(toxics):
        name = "t%d_%d" % (idx, i)
        toxi.add(link, name, kind, stream, attrs)
        names.append((link, name))
    crashes = []

    def check_p1():
        c = p1.crash()
        if c:
            crashes.append(c)

    while now() - t_start < case.window_s:
        if case.pulse:
            time.sleep(PULSE_S)
            toxi.enable(case.link, False)
            toxi.enable(case.link, True)
        else:
            time.sleep(0.05)
        check_p1()
    if case.end == "reset":
        toxi.enable(case.link, False)  # closes every connection through the link
    for link, name in names:
        toxi.remove(link, name)
    if case.end in ("reset", "refused"):
        toxi.enable(case.link, True)
    t_removed = now()
    # recovery: a fresh client's ping; with a Redis fault, the tier connected again
    ping_s = fresh_ping(conf.proxy, 10, p1)
    for _ in range(3):  # P1 died: started again, the ping tried again
        check_p1()
        if ping_s is not None or not crashes or not p1.alive():
            break
        ping_s = fresh_ping(conf.proxy, 10, p1)
    redis_s = None
    if case.link == "redis" or case.also:
        while now() - t_removed < 8:
            if redis_state(get_stats(conf.stats)) == "connected":
                redis_s = now() - t_removed
                break
            time.sleep(0.05)
    time.sleep(SETTLE_S)
    check_p1()
    # Operations started from here on belong to the gap after the case; they
    # are judged with it (a fault's aftermath).
    run.case = idx + GAP
    run.case_end = now()
    after = stat_numbers(get_stats(conf.stats))
    return {
        "idx": idx, "case": case, "seconds": now() - t_start, "ping_s": ping_s,
        "healthy": healthy, "window": (t_start, t_removed), "crashes": crashes,
        "hangs": [h for _, h in toxi.hangs[n_hangs:]],
        "redis_s": redis_s, "redis_state": redis_state(get_stats(conf.stats)),
        "delta": {k: after[k] - before[k] for k in after if after[k] != before[k]},
    }


def judge_case(conf, run, res, attempts, rec):
    idx, case, delta, ping_s, redis_s = (rec["idx"], rec["case"], rec["delta"], rec["ping_s"],
                                         rec["redis_s"])

    # toxiproxy's API hung and it was restarted (every link closed, for an
    # unknown time): only "never a wrong answer" can still be judged
    disturbed = rec["hangs"]
    skip = None
    if disturbed:
        skip = "toxiproxy's API hung (toxiproxy issue #558: %s); it was restarted, so the " \
            "fault's length and end are unknown" % disturbed[0]
    with run.lock:
        ops = [o for o in run.ops if o["case"] in (idx, idx + GAP)]
    by_outcome = collections.Counter(o["outcome"] for o in ops)
    problems = []
    for o in ops:
        if o["outcome"] == WRONG:
            problems.append("WRONG %s %s at %s: %s" % (o["kind"], o["tag"], wall(o["t0"]),
                                                     o["detail"]))
        elif o["outcome"] == ERROR and not case.lossy and not disturbed:
            problems.append("error %s %s at %s: %s" % (o["kind"], o["tag"], wall(o["t0"]),
                                                     o["detail"]))
    tries = []
    with attempts.lock:
        for o in ops:
            for a in attempts.by_tag.get(o["tag"], ()):
                tries.append((o, a))
    timeouts = [(o, a) for o, a in tries if a[1] == "NetworkTimeout" and not disturbed]
    for o, a in timeouts:
        problems.append("attempt of %s %s at %s timed out client-side after %.0f ms: the "
                        "proxy held the request with its connection open" % (
                            o["kind"], o["tag"], wall(o["t0"]), a[0]))
    # the fault acted
    slow = max((a[0] for _, a in tries), default=0)
    seen = {
        None: True,
        "slow": slow >= 150,
        "lost": by_outcome[ERROR] > 0 or any(a[1] for _, a in tries) or
        delta.get("upstream_lost", 0) > 0 or
        delta.get("upstream_connect_failures", 0) > 0,
        "redis": sum(delta.get(k, 0) for k in (
            "redis_errors", "redis_timeouts", "redis_skipped", "redis_reconnects",
            "redis_bumps_failed")) > 0,
    }[case.observe]
    if not ops:
        problems.append("no operation ran during the case")
    if not seen and not disturbed:
        problems.append("the fault was not observed (%s): slowest attempt %.0f ms, "
                        "stats delta %s" % (case.observe, slow, delta))
    label = "%s: %d ops (%d ok, %d errors, %d wrong)" % (
        case.name, len(ops), by_outcome[OK], by_outcome[ERROR], by_outcome[WRONG])
    res.check(not problems,
              label + (", every answer correct" if not case.lossy and not disturbed else
                       ", answers correct or clear errors"), problems)
    if disturbed:
        diag("  " + skip)

    # latency: each attempt within the fault's delay + the margin; each
    # operation within what the client's timeouts allow for two attempts
    a_bound = case.extra_ms + MARGIN_MS
    o_bound = 2 * (CLIENT_SELECT_TIMEOUT_MS + CLIENT_CONNECT_TIMEOUT_MS + a_bound)
    if not case.lossy:
        # nothing fails, so no retry and no new server selection: one
        # attempt, possibly behind a new connection's handshake
        o_bound = 2 * a_bound + (case.extra_ms if case.link == "mongo" else 0)
    slow_tries = sorted(((a[0], o["kind"], o["tag"], a[1], wall(o["t0"])) for o, a in tries
                         if a[0] > a_bound), reverse=True)
    slow_ops = sorted(((o["ms"], o["kind"], o["tag"], o["outcome"]) for o in ops
                       if o["ms"] > o_bound), reverse=True)
    lat = sorted(a[0] for _, a in tries) or [0]
    olat = sorted(o["ms"] for o in ops) or [0]
    res.check(not slow_tries and not slow_ops,
              "%s: attempts <= %d ms (max %.0f, p50 %.0f), operations <= %d ms (max %.0f)" % (
                  case.name, a_bound, lat[-1], lat[len(lat) // 2], o_bound, olat[-1]),
              ["attempt %.0f ms %s %s %s (operation started %s)" % t for t in slow_tries[:6]] +
              ["operation %.0f ms %s %s %s" % t for t in slow_ops[:6]], skip=skip)

    rec_problems = []
    for crash in rec["crashes"]:
        rec_problems.append("P1 died (exit status %s)%s" % (
            crash["status"], "" if crash["restarted"] else " and could not be started again"))
        rec_problems += crash["excerpt"].splitlines()[:14]
    if ping_s is None:
        rec_problems.append("no fresh ping answered within 10 s of the fault's end")
    if (case.link == "redis" or case.also) and redis_s is None:
        rec_problems.append("the Redis tier did not report 'connected' within 8 s: %s" %
                            rec["redis_state"])
    res.check(not rec_problems,
              "%s: P1 alive, a fresh client's ping answered %s after the fault%s" % (
                  case.name, "%.2f s" % ping_s if ping_s is not None else "never",
                  "" if case.link == "mongo" and not case.also else
                  ", Redis connected again after %s" % (
                      "%.2f s" % redis_s if redis_s is not None else "never")),
              rec_problems)
    errs = collections.Counter(o["detail"].split(":")[0] for o in ops if o["outcome"] == ERROR)
    kinds = collections.Counter(o["kind"].split(":")[0] + "/" + o["outcome"] for o in ops)
    diag("  window %s-%s%s" % (wall(rec["window"][0]), wall(rec["window"][1]),
                               "" if rec["healthy"] else
                               " (the workload had not recovered from the previous case)"))
    diag("  %.1f s; ops %s; errors %s; stats %s" % (rec["seconds"], dict(kinds), dict(errs), {
        k: v for k, v in delta.items() if k.startswith(("upstream", "redis_", "error", "cache_"))
    }))


def case_label(idx, names):
    if idx < 0:
        return "warm-up"
    if idx >= GAP:
        return names[idx - GAP] + ", after"
    return names[idx]


def final_writes(run, res, attempts, direct_db, names):
    """Read directly: each write applied at most as often as it was sent."""
    ctrs = direct_db["counters"]
    ins = direct_db["inserts"]
    with run.lock:
        ops = list(run.ops)
    for mode in ("on", "off"):
        problems = []
        doc = ctrs.find_one({"_id": "ctr-" + mode}) or {}
        applied = collections.Counter(doc.get("ops", []))
        if doc.get("n") != len(doc.get("ops", [])):
            problems.append("counter n=%r but %d operation ids pushed" % (
                doc.get("n"), len(doc.get("ops", []))))
        incs = [o for o in ops if o["mode"] == mode and o["kind"] == "inc"]
        acked = [o for o in incs if o["outcome"] == OK]
        doubt = [o for o in incs if o["outcome"] != OK]
        twice = []
        cut = collections.Counter()
        for o in incs:
            k = applied.get(o["tag"], 0)
            sent = attempts.n_started.get(o["tag"], 0)
            if o["outcome"] == OK and k < 1:
                problems.append("%s acknowledged but not applied" % o["tag"])
            if k > max(sent, 1) or (mode == "off" and k > 1):
                problems.append("%s applied %d times, sent %d times (case %s)" % (
                    o["tag"], k, sent, case_label(o["case"], names)))
            if k > 1:
                twice.append(case_label(o["case"], names))
            if o["outcome"] != OK and k >= 1:
                cut[case_label(o["case"], names)] += 1
        unknown = set(applied) - set(o["tag"] for o in incs)
        if unknown:
            problems.append("applied but never sent: %s" % sorted(unknown)[:5])
        inserted = set(d["_id"] for d in ins.find({"_id": {"$regex": "^%s:" % mode}}, {"_id": 1}))
        i_ops = [o for o in ops if o["mode"] == mode and o["kind"] == "insert"]
        i_acked = set(o["tag"] for o in i_ops if o["outcome"] == OK)
        i_all = set(o["tag"] for o in i_ops)
        if i_acked - inserted:
            problems.append("acknowledged inserts missing: %s" % sorted(i_acked - inserted)[:5])
        if inserted - i_all:
            problems.append("documents never inserted: %s" % sorted(inserted - i_all)[:5])
        res.check(not problems,
                  "writes, retryWrites %s: %d $inc acknowledged + %d in doubt -> counter %r "
                  "(each applied at most as often as the client sent it%s); %d inserts "
                  "acknowledged + %d in doubt -> %d documents" % (
                      mode, len(acked), len(doubt), doc.get("n"),
                      ", i.e. once" if mode == "off" else "", len(i_acked),
                      len(i_all) - len(i_acked), len(inserted)), problems)
        if cut:
            diag("  retryWrites %s: writes that failed for the client but were applied (cut "
                 "between request and reply), by case: %s" % (mode, dict(cut)))
        if twice:
            diag("  retryWrites %s: %d writes applied twice, each sent twice by the driver "
                 "(a retry after a lost reply; FerretDB does not deduplicate txnNumber): %s" % (
                     mode, len(twice), dict(collections.Counter(twice))))


def stale_case(conf, toxi, res):
    """A write made through P1 while its Redis link is a black hole is never lost."""
    try:
        stale_steps(conf, toxi, res)
    except errors.PyMongoError as exc:
        toxi.reset()
        res.check(False, "stale: a write through P1 while its Redis link is black-holed is "
                  "seen after recovery (the case ran to its end)", ["%r" % exc])


def stale_steps(conf, toxi, res):
    opts = dict(directConnection=True, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000,
                socketTimeoutMS=3000, retryReads=False, retryWrites=False)
    p1 = pymongo.MongoClient(conf.proxy, **opts)
    p2 = pymongo.MongoClient(conf.proxy2, **opts)
    c1, c2 = p1[DB]["stale"], p2[DB]["stale"]
    problems = []

    def read(c):
        d = c.find_one({"_id": 1})
        return d and d.get("v")

    # warm: P1 fills Redis, then P2 hits it there (and keeps its own copy)
    s1_before = stat_numbers(get_stats(conf.stats))
    s2_before = stat_numbers(get_stats(conf.stats2))
    warm = [read(c1)]
    t0 = now()
    while now() - t0 < 3 and \
            stat_numbers(get_stats(conf.stats))["redis_fills"] <= s1_before["redis_fills"]:
        time.sleep(0.02)
    for _ in range(3):
        warm += [read(c1), read(c2)]
    s1, s2 = stat_numbers(get_stats(conf.stats)), stat_numbers(get_stats(conf.stats2))
    if warm != [0] * 7 or s2["redis_hits"] <= s2_before["redis_hits"]:
        problems.append("not set up: reads %r, P2 redis_hits %d -> %d (the value must be in "
                        "Redis)" % (warm, s2_before["redis_hits"], s2["redis_hits"]))
    n_hangs = len(toxi.hangs)
    toxi.add("redis", "stale_d", "timeout", "downstream", {"timeout": 0})
    toxi.add("redis", "stale_u", "timeout", "upstream", {"timeout": 0})
    add_hung = len(toxi.hangs) > n_hangs
    t0 = now()
    try:
        p1[DB]["stale"].update_one({"_id": 1}, {"$set": {"v": 1}})
        w_ms = (now() - t0) * 1000
        if w_ms > 4 * conf.redis_timeout_ms + MARGIN_MS:
            problems.append("the write took %.0f ms with Redis black-holed" % w_ms)
    except errors.PyMongoError as exc:
        problems.append("the write failed with Redis black-holed: %r" % exc)
    during = [read(c1) for _ in range(3)]
    p2_during = read(c2)
    if p2_during != 0:
        # P1 could not tell Redis, so P2's copy still passes Redis's check:
        # P2 serving the old value here shows that the copies exist.
        problems.append("not set up: P2 read %r during the black hole, not its cached 0" % (
            p2_during,))
    time.sleep(0.5)
    toxi.enable("redis", False)
    toxi.remove("redis", "stale_d")
    toxi.remove("redis", "stale_u")
    toxi.enable("redis", True)
    t_rec = now()
    if during != [1, 1, 1]:
        problems.append("P1 read %r during the black hole, after its own write" % during)
    p1_after, p2_after = [], []
    p2_fresh_s = None
    while now() - t_rec < 8:
        p1_after.append(read(c1))
        v2 = read(c2)
        p2_after.append(v2)
        if v2 == 1 and p2_fresh_s is None:
            p2_fresh_s = now() - t_rec
        if p2_fresh_s is not None and now() - t_rec > p2_fresh_s + 1 and \
                redis_state(get_stats(conf.stats)) == "connected":
            break
        time.sleep(0.05)
    if any(v != 1 for v in p1_after):
        problems.append("P1 served the old value after recovery: %r" % p1_after[:20])
    if p2_fresh_s is None:
        problems.append("P2 still served the old value 8 s after recovery")
    else:
        first = p2_after.index(1)
        if any(v != 1 for v in p2_after[first:]):
            problems.append("P2 served the old value again after the new one: %r" % p2_after)
    s1b = stat_numbers(get_stats(conf.stats))
    if s1b["redis_epoch_bumps"] <= s1["redis_epoch_bumps"]:
        problems.append("P1 made no epoch bump after the black hole")
    res.check(not problems, skip="toxiproxy's API hung adding the black hole (toxiproxy issue "
              "#558): %s" % toxi.hangs[n_hangs][1] if add_hung else None, details=problems,
              name="stale: a write through P1 while its Redis link is black-holed is seen by P1 "
              "during and after (%d reads), and by P2 (which served its cached copy meanwhile) "
              "%s after recovery (P1's epoch bump)" % (
                  len(during) + len(p1_after),
                  "%.2f s" % p2_fresh_s if p2_fresh_s is not None else "never"))
    p1.close()
    p2.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True, help="P1's URI")
    ap.add_argument("--stats", required=True, help="P1's GET /stats URL")
    ap.add_argument("--proxy2", required=True)
    ap.add_argument("--stats2", required=True)
    ap.add_argument("--direct", required=True, help="FerretDB's URI, no fault on the way")
    ap.add_argument("--toxiproxy", required=True, help="toxiproxy-server")
    ap.add_argument("--toxiproxy-log", required=True)
    ap.add_argument("--toxiproxy-port", type=int, required=True, help="its API port")
    ap.add_argument("--mongo-link", required=True, help="LISTEN-PORT:FERRETDB-PORT")
    ap.add_argument("--redis-link", required=True, help="LISTEN-PORT:REDIS-PORT")
    ap.add_argument("--redis-timeout-ms", type=int, required=True)
    ap.add_argument("--p1-port", type=int, required=True)
    ap.add_argument("--p1-log-prefix", required=True)
    ap.add_argument("--pidfile", required=True,
                    help="prefix: PREFIX.p1, PREFIX.toxiproxy hold the pids running")
    ap.add_argument("--only", default="", help="development: run cases whose name has this")
    ap.add_argument("p1_cmd", nargs=argparse.REMAINDER, help="-- P1's command line")
    conf = ap.parse_args()
    cmd = conf.p1_cmd[1:] if conf.p1_cmd[:1] == ["--"] else conf.p1_cmd

    all_cases = [c for c in cases(conf) if conf.only in c.name]
    out("PLAN %d" % (3 * len(all_cases) + 6))
    res = Results()
    links = {name: tuple(int(p) for p in spec.split(":"))
             for name, spec in (("mongo", conf.mongo_link), ("redis", conf.redis_link))}
    toxi = Toxiproxy(conf.toxiproxy, conf.toxiproxy_port, links, conf.pidfile + ".toxiproxy",
                     conf.toxiproxy_log)
    toxi.start()
    p1 = Proxy1(cmd, conf.p1_log_prefix, conf.pidfile + ".p1", conf.p1_port)
    if not p1.start():
        diag("P1 did not start: see %s" % p1.log)
        return 1

    direct = pymongo.MongoClient(conf.direct, directConnection=True,
                                 serverSelectionTimeoutMS=10000)
    ddb = direct[DB]
    ddb.drop_collection("items")
    ddb["items"].insert_many([{"_id": i, "grp": i % 5, "v": (i * 7) % 13, "pad": "x" * BIG_PAD}
                              for i in range(N_ITEMS)])
    ddb["counters"].insert_many([{"_id": "ctr-on", "n": 0, "ops": []},
                                 {"_id": "ctr-off", "n": 0, "ops": []}])
    ddb["stale"].insert_one({"_id": 1, "v": 0})
    queries = make_queries(ddb)

    attempts = AttemptListener()
    run = Run()
    clients = {}
    threads = []
    for mode in ("on", "off"):
        c = pymongo.MongoClient(conf.proxy, directConnection=True, appname="faults-" + mode,
                                retryWrites=(mode == "on"), retryReads=True,
                                connectTimeoutMS=CLIENT_CONNECT_TIMEOUT_MS,
                                socketTimeoutMS=CLIENT_SOCKET_TIMEOUT_MS,
                                serverSelectionTimeoutMS=CLIENT_SELECT_TIMEOUT_MS,
                                heartbeatFrequencyMS=500, maxPoolSize=4,
                                event_listeners=[attempts])
        clients[mode] = c
        rng = random.Random(hash(mode) & 0xffff)
        threads.append(threading.Thread(target=reader, daemon=True,
                                        args=(run, c[DB]["items"], queries, mode, rng)))
        threads.append(threading.Thread(target=writer, daemon=True, args=(run, c[DB], mode)))
    for t in threads:
        t.start()
    time.sleep(1.0)  # warm: connections open, cache filled
    with run.lock:
        warm = [o for o in run.ops if o["case"] == -1]
    bad = [o for o in warm if o["outcome"] != OK]
    lat = sorted(o["ms"] for o in warm) or [0]
    diag("warm-up without faults: %d ops, p50 %.1f ms, max %.1f ms" % (
        len(warm), lat[len(lat) // 2], lat[-1]))
    res.check(not bad and warm, "without faults: %d operations, all correct" % len(warm),
              ["%s %s: %s" % (o["kind"], o["outcome"], o["detail"]) for o in bad])

    t_all = now()
    recs = []
    for idx, case in enumerate(all_cases):
        recs.append(run_case(conf, toxi, run, p1, idx, case))
    run.stop.set()
    for t in threads:
        t.join(timeout=2 * (CLIENT_SELECT_TIMEOUT_MS + CLIENT_SOCKET_TIMEOUT_MS) / 1000 + 5)
    diag("cases took %.1f s" % (now() - t_all))
    toxi.reset()
    for rec in recs:
        judge_case(conf, run, res, attempts, rec)
    if toxi.hangs:
        diag("toxiproxy's API hung %d times (restarted each time): %s" % (
            len(toxi.hangs), [h for _, h in toxi.hangs]))
    final_writes(run, res, attempts, ddb, [c.name for c in all_cases])
    s = stat_numbers(get_stats(conf.stats))
    stale_case(conf, toxi, res)
    diag("P1 totals: hits %d, misses %d, redis_hits %d, upstream_lost %d, "
         "upstream_connect_failures %d, error_replies %d, upstream_protocol_errors %d" % (
             s["cache_hits"], s["cache_misses"], s["redis_hits"], s["upstream_lost"],
             s["upstream_connect_failures"], s["error_replies"], s["upstream_protocol_errors"]))
    for c in clients.values():
        c.close()
    direct.close()

    crash = p1.crash()
    res.check(not crash, "P1 still running after the stale case",
              crash and crash["excerpt"].splitlines()[:14] or ())
    status = p1.stop()
    res.check(status == 0, "P1 exits 0 on SIGTERM (status %s)" % status)
    toxi.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
