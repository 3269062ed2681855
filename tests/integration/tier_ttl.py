#!/usr/bin/env python3
"""tests/integration/tier_ttl.py: a value in the shared Redis tier lives no
longer than cache_ttl from its fill (found in review: the value carried no
fill time, so a proxy that took it from Redis kept its copy for cache_ttl
again, and a value kept in Redis past its TTL was served as long as it
stayed).

Two proxies P1 and P2 (--cache-ttl 2s) share redis-server (started by the
wrapper, test_tier_ttl.sh) in front of coalesce_tier.py's fake upstream,
whose answers to a collection's finds are numbered (n: 1, 2, ...), as if the
data changed around the proxies after each read.

  copy     P1 fills (n 1); 1.5 s later P2 reads it from Redis; 2.8 s after
           the fill P2 reads again: its copy (and the stored value) expired
           with the fill's TTL, so the server answers (n 2);
  persist  P1 fills (n 1); the value is made to stay in Redis (PERSIST);
           2.8 s later P2's read is the server's (n 2), not the kept value.

Usage: tier_ttl.py --bin MONGOCACHE --log LOG_PREFIX (LOG_PREFIX.N.log) --port P1 --http H1 --port2 P2
       --http2 H2 --redis-port PORT
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coalesce_tier import DB, Upstream, first_n, redis_call, tier_up, wait_for  # noqa: E402
from mctest import Closed, Conn, op_msg, plan, redis_counter, stop_process, tap  # noqa: E402
from request_life import arguments  # noqa: E402

TTL_S = 2.0


def find(port, coll):
    c = Conn(("127.0.0.1", port), 10.0)
    try:
        return first_n(c.call(op_msg({"find": coll, "filter": {"_id": 1}, "$db": DB}), 10.0))
    except (OSError, Closed) as e:
        return "error: %s" % e
    finally:
        c.sock.close()


def value_keys(redis_port):
    """The names of the stored values in Redis (KEYS mongocache:v:*)."""
    out = redis_call(redis_port, "KEYS", "mongocache:v:*")
    return {line for line in out.split(b"\r\n") if line.startswith(b"mongocache:v:")}


def fills(http):
    """The fills the proxy's tier has had answered (stored or refused)."""
    return redis_counter(http, "redis_fills") + redis_counter(http, "redis_fills_refused")


def case_copy(up, a):
    up.events("ttl1")[1].set()  # answered at once
    t0 = time.monotonic()
    n1 = find(a.port, "ttl1")
    time.sleep(max(0.0, t0 + 1.5 - time.monotonic()))
    n2 = find(a.port2, "ttl1")
    time.sleep(max(0.0, t0 + TTL_S + 0.8 - time.monotonic()))
    filled = fills(a.http2)
    n3 = find(a.port2, "ttl1")
    # P2 stores the server's answer after replying: wait for it, so that the
    # next case sees only its own fill appear in Redis (found in CI).
    stored = wait_for(lambda: fills(a.http2) > filled, 5)
    tap(n1 == 1 and n2 == 1 and n3 == 2 and stored,
        "copy: P2's copy of a value it read from Redis 1.5 s after the fill expires with the "
        "fill's TTL: 2.8 s after the fill the server answers, and P2 stores its answer (n %r, "
        "%r, %r; stored %s)" % (n1, n2, n3, stored))


def case_persist(up, a):
    up.events("ttl2")[1].set()
    before = value_keys(a.redis_port)
    t0 = time.monotonic()
    n1 = find(a.port, "ttl2")
    wait_for(lambda: bool(value_keys(a.redis_port) - before), 2)
    new = value_keys(a.redis_port) - before
    persisted = [redis_call(a.redis_port, "PERSIST", k.decode()) for k in new]
    tap(n1 == 1 and len(new) == 1 and persisted == [b":1\r\n"],
        "persist: P1's fill is in Redis, made to stay there (PERSIST %s)" % sorted(new))
    time.sleep(max(0.0, t0 + TTL_S + 0.8 - time.monotonic()))
    n2 = find(a.port2, "ttl2")
    tap(n2 == 2, "persist: 2.8 s after the fill, the value kept in Redis is past its sealed "
        "expiry: P2's read is the server's (n %r)" % (n2,))


def main():
    a = arguments("--port2", "--http2", "--redis-port")
    up = Upstream()
    procs = []
    for i, (port, http) in enumerate(((a.port, a.http), (a.port2, a.http2))):
        log = open("%s.%d.log" % (a.log, i + 1), "w")
        procs.append(subprocess.Popen(
            [a.bin, "--listen", "127.0.0.1:%d" % port, "--upstream",
             "mongodb://127.0.0.1:%d" % up.port, "--http-listen", "127.0.0.1:%d" % http,
             "--log-level", "debug", "--redis", "redis://127.0.0.1:%d" % a.redis_port,
             "--cache-key-secret", "tier-ttl", "--redis-timeout", "2s",
             "--cache-ttl", "%ds" % TTL_S, "--advice", "false"], stdout=log, stderr=log))
    try:
        up_ok = wait_for(lambda: all(p.poll() is None for p in procs) and
                         tier_up(a.http) and tier_up(a.http2), 10)
        tap(up_ok, "both proxies are up, their Redis tiers connected and subscribed")
        if up_ok:
            case_copy(up, a)
            case_persist(up, a)
    finally:
        for i, p in enumerate(procs):
            st = stop_process(p)
            tap(st == 0, "P%d exits 0 on SIGTERM" % (i + 1), "status %s" % st)
        plan()


if __name__ == "__main__":
    main()
