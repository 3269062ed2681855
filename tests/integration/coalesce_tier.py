#!/usr/bin/env python3
"""tests/integration/coalesce_tier.py: a read that waited behind an identical
one (coalescing) with the shared Redis tier on is answered from the leader's
reply only once Redis confirms the generations it depends on (found in
review: followers were answered against this proxy's own generations, which
hear of another proxy's write by pub/sub, after its acknowledgement).

A fake upstream (a thread here) holds the first find of each collection
until the test releases it, and numbers its replies per collection (n: 1,
2, ...). Client A's find leads, client B's identical find follows it. Then:

  confirmed  nothing moves: B gets A's reply (n 1), a hit, no second find;
  moved      the namespace's generation counter in Redis is bumped directly
             (what another proxy's write does, less its pub/sub message):
             B is sent to the server and gets n 2, A still gets n 1.

The proxy runs with --redis on redis-server (started by the wrapper,
test_coalesce_tier.sh) and exits 0 on SIGTERM.

Usage: coalesce_tier.py --bin MONGOCACHE --log LOG --port PORT --http HTTP --redis-port PORT

Prints unnumbered TAP lines and its plan last (mctest.py).
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctest import (  # noqa: E402
    Closed, Conn, FakeServer, op_msg, plan, stats, stop_process, tap)
from request_life import arguments, client_messages, reply  # noqa: E402

DB = "mcl"


class Upstream(FakeServer):
    """Holds the first find of each collection until release(coll); numbers the replies."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = {}  # finds answered per collection
        self.held = {}  # collection -> Event released by the test
        self.seen = {}  # collection -> Event set when its first find arrives
        self.start()

    def events(self, coll):
        with self.lock:
            self.held.setdefault(coll, threading.Event())
            return self.seen.setdefault(coll, threading.Event()), self.held[coll]

    def serve(self, s):
        try:
            for rid, body in client_messages(s):
                coll = body.get("find")
                if not coll:
                    s.sendall(reply(rid, {"ok": 1.0}))
                    continue
                seen, held = self.events(coll)
                with self.lock:
                    self.count[coll] = self.count.get(coll, 0) + 1
                    n = self.count[coll]
                if n == 1:
                    seen.set()
                    held.wait(10)
                s.sendall(reply(rid, {"cursor": {"firstBatch": [{"_id": 1, "n": n}], "id": 0,
                                                 "ns": "%s.%s" % (DB, coll)}, "ok": 1.0}))
        except OSError:
            return


def redis_call(port, *args):
    """One Redis command over RESP: its reply's raw bytes (an integer ":1\r\n", or an
    array of bulk strings as sent), read whole."""
    cmd = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() if isinstance(x, str) else x
                                                  for x in args))
    with socket.create_connection(("127.0.0.1", port), timeout=3.0) as s:
        s.sendall(cmd)
        buf = b""
        while _resp_end(buf, 0) is None:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf


def _resp_end(buf, pos):
    """Where the RESP value at pos ends in buf, or None while it is incomplete."""
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        return None
    kind, n = buf[pos:pos + 1], buf[pos + 1:eol]
    if kind == b"$":
        end = eol + 2 + int(n) + 2 if int(n) >= 0 else eol + 2
        return end if len(buf) >= end else None
    if kind == b"*":
        at = eol + 2
        for _ in range(max(int(n), 0)):
            at = _resp_end(buf, at)
            if at is None:
                return None
        return at
    return eol + 2


def cache(http):
    return stats(http, timeout=5.0).get("cache", {})


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def first_n(r):
    try:
        return r.doc["cursor"]["firstBatch"][0]["n"]
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def case(up, a, name, coll, bump):
    q = op_msg({"find": coll, "filter": {"_id": 1}, "$db": DB})
    seen, held = up.events(coll)
    A = Conn(("127.0.0.1", a.port), 10.0)
    B = Conn(("127.0.0.1", a.port), 10.0)
    try:
        s0 = cache(a.http)
        A.send(q)
        seen.wait(5)
        B.send(q)
        waited = wait_for(lambda: cache(a.http).get("coalesced", 0) > s0.get("coalesced", 0), 5)
        tap(waited, "%s: B's identical find waits behind A's" % name)
        if bump:
            key = "mongocache:g:n:%s.%s" % (DB, coll)
            got = redis_call(a.redis_port, "INCR", key)
            tap(got.startswith(b":"), "%s: the namespace's counter bumped in Redis (%s)"
                % (name, key), got)
        held.set()
        ra, rb = A.recv_msg(10.0), B.recv_msg(10.0)
        s1 = cache(a.http)
        finds = up.count.get(coll, 0)
        if bump:
            tap(first_n(ra) == 1 and first_n(rb) == 2 and finds == 2,
                "%s: A gets its reply (n 1); B, arrived after the generation moved, is sent "
                "to the server (n 2), not answered with A's reply" % name, ra, rb)
        else:
            tap(first_n(ra) == 1 and first_n(rb) == 1 and finds == 1 and
                s1.get("hits", 0) - s0.get("hits", 0) == 1,
                "%s: B gets A's reply (n 1), a hit once Redis confirms it (hits +%d, finds %d)"
                % (name, s1.get("hits", 0) - s0.get("hits", 0), finds), ra, rb)
    except (socket.timeout, Closed, OSError) as e:
        tap(False, "%s: both finds answered" % name, e)
    finally:
        held.set()
        A.sock.close()
        B.sock.close()


def main():
    a = arguments("--redis-port")
    up = Upstream()
    log = open(a.log, "w")
    proxy = subprocess.Popen([a.bin, "--listen", "127.0.0.1:%d" % a.port, "--upstream",
                              "mongodb://127.0.0.1:%d" % up.port, "--http-listen",
                              "127.0.0.1:%d" % a.http, "--log-level", "debug",
                              "--redis", "redis://127.0.0.1:%d" % a.redis_port,
                              "--cache-key-secret", "coalesce-tier", "--redis-timeout", "2s",
                              "--cache-coalesce-wait", "5s", "--advice", "false"],
                             stdout=log, stderr=log)
    try:
        up_ok = wait_for(lambda: proxy.poll() is None and tier_up(a.http), 10)
        tap(up_ok, "the proxy is up, its Redis tier connected and subscribed")
        if up_ok:
            case(up, a, "confirmed", "fol0", bump=False)
            case(up, a, "moved", "fol1", bump=True)
    finally:
        st = stop_process(proxy)
        tap(st == 0, "the proxy exits 0 on SIGTERM", "status %s" % st)
        plan()


def tier_up(http):
    try:
        r = stats(http, timeout=1.0).get("cache", {}).get("redis", {})
    except (OSError, AssertionError, ValueError):
        return False
    return r.get("state") == "connected" and r.get("subscribed") is True


if __name__ == "__main__":
    main()
