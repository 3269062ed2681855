#!/usr/bin/env python3
"""tests/integration/redis_hostile.py: a hostile Redis cannot take the proxy
down (issue 6, item 4).

Driven by test_redis_hostile.sh:
    redis_hostile.py --mongocache BIN --direct FERRET_PORT --tmp DIR
For each case a fresh proxy is started against fake_redis.py (a scriptable
fake Redis) with one fault armed: malformed pub/sub pushes (wrong element
types, wrong arity, a non-array push, an integer where a bulk string is
expected, another channel, an error, garbage bytes, nesting, a push over the
size budget), an unsolicited reply or garbage on the command connection, a
lookup (MGET) answered with the wrong arity or element types; at start-up or
later. Each case prints one unnumbered TAP line (then the plan, mctest.py),
which passes when:
  - the proxy is still running after the fault (hiredis 0.14's async layer
    aborted here: three different asserts in its subscribe path, and one for
    an unsolicited reply on the command connection);
  - reads through it return what FerretDB returns directly;
  - the fault was counted (/stats redis_protocol_errors) and the proxy made
    a new connection of that kind afterwards (and, when the fault was sent
    once, is subscribed and connected again);
  - it exits 0 on SIGTERM.
One more case checks that a Redis that keeps misbehaving is logged once at
warn level, not once per reconnection. Proxy logs go to DIR/proxy.hostile-N.log
(the wrapper scans them for sanitizer reports).
"""
import argparse
import os
import signal
import random
import socket
import subprocess
import sys
import time

import pymongo

import mctest
from fake_redis import FakeRedis, Fault, bulk
from mctest import tap

DB = "mchostile"
CH = b"mongocache:inval"


def arr(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


def miss(nkeys):
    """A well-formed lookup reply: no value, then the epoch and the generations."""
    return b"*%d\r\n$-1\r\n" % nkeys + bulk(b"100") * (nkeys - 1)


def deep(n):
    return b"*1\r\n" * n + b":1\r\n"


# (target, when, name, bytes, mode, once)
CASES = [
    # the subscription, answering SUBSCRIBE
    ("sub", "start", "kind is an integer", arr(b":1\r\n", bulk(CH), b":1\r\n"), "", False),
    ("sub", "start", "one element", arr(bulk(b"subscribe")), "", False),
    ("sub", "start", "an empty array", b"*0\r\n", "", False),
    ("sub", "start", "channel is an integer", arr(bulk(b"subscribe"), b":5\r\n", b":1\r\n"), "",
     False),
    ("sub", "start", "unsubscribe with a bulk count",
     arr(bulk(b"unsubscribe"), bulk(CH), bulk(b"x")), "", False),
    ("sub", "start", "a status instead of an array", b"+OK\r\n", "", False),
    ("sub", "start", "count is a bulk string", arr(bulk(b"subscribe"), bulk(CH), bulk(b"1")), "",
     False),
    ("sub", "start", "message before the confirmation",
     arr(bulk(b"message"), bulk(CH), bulk(b"n:a.b")), "", False),
    ("sub", "start", "an error reply", b"-ERR no pub/sub for you\r\n", "", False),
    ("sub", "start", "garbage bytes", b"\x00\xff\xfegarbage\r\n", "", False),
    ("sub", "start", "nesting 9 deep", deep(9), "", False),
    ("sub", "start", "a push over the size budget",
     arr(bulk(b"message"), bulk(CH)) + b"$2000000\r\n" + b"x" * 1200000, "", False),
    # the subscription, after the confirmation
    ("sub", "later", "kind is an integer", arr(b":1\r\n", bulk(CH), b":1\r\n"), "", True),
    ("sub", "later", "one element", arr(bulk(b"message")), "", True),
    ("sub", "later", "channel is an integer", arr(bulk(b"message"), b":5\r\n", bulk(b"x")), "",
     True),
    ("sub", "later", "unsubscribe with a bulk count",
     arr(bulk(b"unsubscribe"), bulk(CH), bulk(b"x")), "", True),
    ("sub", "later", "an integer instead of an array", b":1\r\n", "", True),
    ("sub", "later", "an integer payload", arr(bulk(b"message"), bulk(CH), b":7\r\n"), "", True),
    ("sub", "later", "an array payload",
     arr(bulk(b"message"), bulk(CH), arr(bulk(b"x"))), "", True),
    ("sub", "later", "another channel", arr(bulk(b"message"), bulk(b"other"), bulk(b"x")), "",
     True),
    ("sub", "later", "a second confirmation", arr(bulk(b"subscribe"), bulk(CH), b":1\r\n"), "",
     True),
    ("sub", "later", "garbage bytes", b"?what\r\n", "", True),
    # the command connection
    ("cmd", "start", "an unsolicited integer after the handshake", b":1\r\n", "append", False),
    ("cmd", "start", "an unsolicited error after the handshake", b"-ERR surprise\r\n", "append",
     False),
    ("cmd", "start", "an integer for SCRIPT LOAD", b":1\r\n", "replace", False),
    ("cmd", "start", "garbage for SCRIPT LOAD", b"%%%\r\n", "replace", False),
    ("cmd", "later", "an unsolicited integer", b":1\r\n", "", True),
    ("cmd", "later", "an unsolicited bulk string", bulk(b"surprise"), "", True),
    ("cmd", "later", "garbage bytes", b"\x01\x02\r\n", "", True),
    ("cmd", "lookup", "an integer for a lookup", b":1\r\n", "", True),
    ("cmd", "lookup", "a one-element array for a lookup", arr(b"$-1\r\n"), "", True),
    ("cmd", "lookup", "two replies for a lookup", lambda nkeys: miss(nkeys) + b":1\r\n", "", True),
    # a read's MGET answered with what MGET cannot answer
    ("cmd", "lookup", "MGET: one element more than keys asked", lambda nkeys: miss(nkeys + 1),
     "", True),
    ("cmd", "lookup", "MGET: an integer where a counter is",
     lambda nkeys: b"*%d\r\n$-1\r\n" % nkeys + b":100\r\n" * (nkeys - 1), "", True),
    ("cmd", "lookup", "MGET: an array where the value is",
     lambda nkeys: b"*%d\r\n" % nkeys + arr(bulk(b"x")) + bulk(b"100") * (nkeys - 1), "", True),
    ("cmd", "lookup", "MGET: an error where a counter is",
     lambda nkeys: b"*%d\r\n$-1\r\n-ERR no\r\n" % nkeys + bulk(b"100") * (nkeys - 2), "", True),
]


def free_port():
    # Below the kernel's ephemeral range (as lib.sh's mc_free_port): a port the
    # kernel chose could be taken by another test's outgoing connection before
    # our server binds it, when tests run side by side.
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    top = lo if lo >= 30000 else 60000  # lib.sh's rule
    rnd = random.SystemRandom()
    for _ in range(200):
        port = rnd.randrange(20000, top)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise RuntimeError("no free port below %d" % top)


def wait_for(cond, secs, step=0.05):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Proxy:
    def __init__(self, binary, direct, fake_port, log):
        self.port = free_port()
        self.http = free_port()
        self.log = log
        self.out = open(log, "wb")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:%d" % self.port,
             "--upstream", "mongodb://127.0.0.1:%d" % direct,
             "--http-listen", "127.0.0.1:%d" % self.http, "--log-level", "debug",
             "--redis", "redis://127.0.0.1:%d" % fake_port,
             "--cache-key-secret", "hostile-secret", "--redis-timeout", "200ms"],
            stdout=self.out, stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc.poll() is None

    def up(self):
        def accepts():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        return wait_for(lambda: accepts() or not self.alive(), 10) and self.alive()

    def stats(self):
        try:
            return mctest.stats(self.http, timeout=2).get("cache", {}).get("redis", {})
        except (OSError, ValueError, AssertionError):
            return {}

    def counter(self, name):
        return self.stats().get("counters", {}).get(name)

    def stop(self):
        """SIGTERM; the exit status (-signal when killed by one)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        return self.proc.returncode

    def status_text(self):
        rc = self.proc.returncode
        if rc is not None and rc < 0:
            return "killed by signal %d" % -rc
        return "exit status %s" % rc


def reads_match(proxy, direct, problems):
    """Three finds through the proxy return what FerretDB returns directly."""
    try:
        c = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % proxy.port, directConnection=True,
                                serverSelectionTimeoutMS=3000, socketTimeoutMS=5000)
        try:
            for q in ({"k": {"$lt": 5}}, {"k": 7}, {"k": {"$gte": 15}}):
                want = list(direct[DB].c.find(q, {"_id": 0}).sort("k", 1))
                t0 = time.monotonic()
                got = list(c[DB].c.find(q, {"_id": 0}).sort("k", 1))
                took = time.monotonic() - t0
                if got != want:
                    problems.append("find %s: got %s, want %s" % (q, got, want))
                elif took > 2.0:
                    problems.append("find %s took %.2f s" % (q, took))
        finally:
            c.close()
    except pymongo.errors.PyMongoError as e:
        problems.append("read through the proxy failed: %s" % e)


def run_case(args, fake, direct, n, case):
    target, when, name, data, mode, once = case
    problems = []
    label = "hostile %s %s: %s" % (target, when, name)
    fake.disarm()
    t_start = time.monotonic()
    sent_before = fake.faults_sent()
    fake.arm(Fault(target, when, data, mode=mode or "append", delay=0.4, once=once))
    proxy = Proxy(args.mongocache, args.direct, fake.port,
                  os.path.join(args.tmp, "proxy.hostile-%d.log" % n))
    try:
        if not proxy.up():
            problems.append("the proxy did not start (%s)" % proxy.status_text())
            return label, problems
        if when == "lookup":
            # a lookup goes out only once the tier is usable
            if not wait_for(lambda: proxy.stats().get("state") == "connected", 5):
                problems.append("the tier never became usable: %s" % proxy.stats())
            reads_match(proxy, direct, problems)
        if not wait_for(lambda: fake.faults_sent() > sent_before, 5):
            problems.append("the fault was never sent (fake redis events: %s)" %
                            fake.events[-5:])
            return label, problems
        t_fault = time.monotonic()
        time.sleep(0.2)
        if not proxy.alive():
            problems.append("the proxy died when the fault arrived (%s)" % proxy.status_text())
            return label, problems
        reads_match(proxy, direct, problems)

        def reconnected():
            with fake.lock:
                return any(e[0] > t_fault and e[2] == "kind" and e[3] == target
                           for e in fake.events)
        if not wait_for(reconnected, 5):
            problems.append("no new %s connection after the fault" % target)
        errors = proxy.counter("redis_protocol_errors")
        if not errors:
            problems.append("redis_protocol_errors is %s" % errors)
        if once:
            st = {}

            def recovered():
                st.update(proxy.stats())
                return st.get("subscribed") is True and st.get("state") == "connected"
            if not wait_for(recovered, 5):
                problems.append("not connected and subscribed again: %s" % st)
        if not proxy.alive():
            problems.append("the proxy died (%s)" % proxy.status_text())
    finally:
        rc = proxy.stop()
        fake.disarm()
        if rc != 0 and not problems:
            problems.append("SIGTERM: %s" % proxy.status_text())
        elif rc != 0:
            problems.append("(%s)" % proxy.status_text())
        took = time.monotonic() - t_start
        if took > 20:
            problems.append("the case took %.1f s" % took)
    return label, problems


def run_log_once(args, fake, direct, n):
    """A Redis that keeps misbehaving: counted each time, logged at warn level once."""
    problems = []
    label = "hostile: a Redis that keeps sending junk is logged once at warn level"
    fake.disarm()
    fake.arm(Fault("sub", "start", b"*0\r\n"))
    log = os.path.join(args.tmp, "proxy.hostile-%d.log" % n)
    proxy = Proxy(args.mongocache, args.direct, fake.port, log)
    try:
        if not proxy.up():
            problems.append("the proxy did not start (%s)" % proxy.status_text())
            return label, problems
        if not wait_for(lambda: (proxy.counter("redis_protocol_errors") or 0) >= 3, 8):
            problems.append("redis_protocol_errors only %s" %
                            proxy.counter("redis_protocol_errors"))
        reads_match(proxy, direct, problems)
    finally:
        rc = proxy.stop()
        fake.disarm()
        if rc != 0:
            problems.append("SIGTERM: %s" % proxy.status_text())
    with open(log, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    warns = [ln for ln in lines if "redis_protocol_error" in ln and "level=warn" in ln]
    quiet = [ln for ln in lines if "redis_protocol_error" in ln and "level=debug" in ln]
    if len(warns) != 1 or not quiet:
        problems.append("%d warn and %d debug redis_protocol_error lines" %
                        (len(warns), len(quiet)))
    return label, problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mongocache", required=True)
    ap.add_argument("--direct", type=int, required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--only", help="run the cases whose label contains this")
    args = ap.parse_args()

    direct = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % args.direct, directConnection=True,
                                 serverSelectionTimeoutMS=10000)
    direct[DB].c.drop()
    direct[DB].c.insert_many([{"k": i, "v": "value %d" % i} for i in range(20)])
    fake = FakeRedis()
    fake.start()
    print("# fake redis on 127.0.0.1:%d" % fake.port, flush=True)
    failed = 0
    n = 0
    try:
        for case in CASES:
            n += 1
            if args.only and args.only not in "hostile %s %s: %s" % case[:3]:
                continue
            label, problems = run_case(args, fake, direct, n, case)
            tap(not problems, label, *problems)
            failed += bool(problems)
        n += 1
        label, problems = run_log_once(args, fake, direct, n)
        tap(not problems, label, *problems)
        failed += bool(problems)
    finally:
        fake.stop()
        direct.close()
    print("# %d of %d cases failed" % (failed, n), flush=True)
    mctest.plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
