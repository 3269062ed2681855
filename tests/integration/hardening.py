#!/usr/bin/env python3
"""tests/integration/hardening.py: regression tests of issue 6 (hardening).

Black-box groups run against a live mongocache started by
test_hardening.sh. Each prints unnumbered TAP lines ("ok - ..." /
"not ok - ...", "# ..." diagnostics); the wrapper numbers them.

Groups:
  redis_wait   a client that resets, a lost upstream and a shutdown while
               one of its reads waits on Redis (item 1)
  scram        pipelined SCRAM never credits one user's verdict to another
               (item 2), unambiguous principals (item 6)
  volatile     only valid lsid/$clusterTime/comment/maxTimeMS are left out
               of the key (item 9)
  oneway       more than 4,096 outstanding w:0 writes (item 11)
  cursors      proxy cursor ids: unguessable, bound to user, namespace and
               session (item 12)
  hostile      an upstream that never ends a cursor, and one that breaks
               framing (item 13)

The raw wire helpers (Conn, op_msg, encode, decode) are malformed.py's.
"""
import argparse
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import malformed as mf  # noqa: E402
from ops import stat, wait_for  # noqa: E402

OUT = []


def tap(cond, name, *diag):
    print(("ok - " if cond else "not ok - ") + name)
    if not cond:
        for d in diag:
            print("# " + str(d).replace("\n", "\n# "))
    sys.stdout.flush()
    return cond


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


GROUPS = {
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
    a = p.parse_args()
    GROUPS[a.group](a)


if __name__ == "__main__":
    main()
