#!/usr/bin/env python3
"""tests/integration/resources.py: issue 6's resource test (items 3, 7, 8).

Each phase attacks a running mongocache while a monitor thread opens a
fresh connection every 100 ms and times a ping through it. After the phase
the proxy's peak RSS (VmHWM, reset before the phase through
/proc/PID/clear_refs) must stay under BOUND = max_memory + cache_memory +
the proxy's RSS before any attack + SLACK (the stated constant: allocator
slack, generation records, proxy cursors), and the slowest fresh ping under
50 ms.

Phases:
  hits        150 pipelined finds, never read, of a result the proxy drained
              into its own cursor (a 4 MB first batch each), on 4 connections
  namespaces  200,000 reads of new collection names (no login), pipelined,
              against a canned upstream; then /stats stays small and quick
  halfsent    20 connections each announce a 47 MB message and send half
  waiting     4 clients whose read waits (coalesced behind a slow identical
              read) keep sending 145 MB each
  held        hits pipelined behind a read the server holds for 3 s (found in
              review): read no further past buffer_limit, then all answered
  held_tier   the same with the Redis tier (each hit first checked with Redis)

Prints unnumbered TAP lines, then its plan (mctest.py); the wrapper numbers
them. With --no-bounds (sanitizer builds, whose shadow memory and quarantine
make RSS and latency meaningless) the attacks run and the proxy must survive
them, and the bound checks are reported as skipped.
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest as mf  # noqa: E402
from hardening import alive  # noqa: E402
from mctest import skip, tap  # noqa: E402
from ops import http_request  # noqa: E402

MIB = 1024 * 1024
SLACK = 64 * MIB
PING_BOUND_MS = 50.0


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def _ping_loop(addr, stop, out):
    """The monitor process: a fresh connection every 100 ms (connect, ping, close)."""
    times, failures = [], 0
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            c = mf.Conn(addr, 2.0)
            r = c.call(mf.ping(), 2.0)
            c.sock.close()
            if not r.ok():
                failures += 1
        except Exception:
            failures += 1
        times.append((time.monotonic() - t0) * 1000.0)
        stop.wait(0.1)
    out.put((times, failures))


def small_window(addr):
    """A client socket whose receive buffer is set before connecting (no autotuning):
    what it does not read stays in the proxy's buffers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5.0)
    s.connect(addr)
    c = mf.Conn.__new__(mf.Conn)
    c.sock, c.buf = s, bytearray()
    return c


class PingMonitor:
    """Times fresh pings from a process of its own, so that the attackers' threads
    (and Python's interpreter lock) do not delay the measurement."""

    def __init__(self, addr):
        import multiprocessing as mp
        ctx = mp.get_context("fork")
        self.stop = ctx.Event()
        self.out = ctx.Queue()
        self.proc = ctx.Process(target=_ping_loop, args=(addr, self.stop, self.out), daemon=True)
        self.times, self.failures = [], 0

    def __enter__(self):
        self.proc.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        try:
            self.times, self.failures = self.out.get(timeout=10)
        except Exception:
            self.failures += 1
        self.proc.join(5)

    def summary(self):
        t = sorted(self.times)
        if not t:
            return 0, 0.0, 0.0
        return len(t), t[len(t) // 2], t[-1]


class Phase:
    """An attack on the proxy (pid) at addr: its peak RSS and fresh pings, checked at the end."""

    def __init__(self, a, name, pid, addr):
        self.a, self.name, self.pid, self.addr = a, name, pid, addr

    def __enter__(self):
        reset_peak(self.pid)
        self.mon = PingMonitor(self.addr).__enter__()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, et, ev, tb):
        self.mon.__exit__()
        secs = time.monotonic() - self.t0
        a = self.a
        up = alive(self.pid)
        tap(up and ev is None, "%s: the proxy survives the attack (%.1f s)" % (self.name, secs),
            "%s: %s" % (et.__name__, ev) if ev else "")
        if not up:
            return True
        peak = status_kb(self.pid, "VmHWM") * 1024
        n, p50, worst = self.mon.summary()
        print("# %s: peak RSS %.1f MiB (bound %.1f MiB); fresh pings: %d, p50 %.1f ms, "
              "max %.1f ms, failed %d" % (self.name, peak / MIB, a.bound / MIB, n, p50, worst,
                                         self.mon.failures))
        a.figures[self.name] = {"peak_rss_mib": round(peak / MIB, 1), "pings": n,
                                "ping_p50_ms": round(p50, 1), "ping_max_ms": round(worst, 1),
                                "seconds": round(secs, 1)}
        if a.no_bounds:
            skip("%s: peak RSS under max_memory + cache_memory + the stated constant" % self.name,
                 "sanitizer build")
            skip("%s: a fresh client's ping stays under %d ms" % (self.name, PING_BOUND_MS),
                 "sanitizer build")
        else:
            tap(peak <= a.bound, "%s: peak RSS %.1f MiB under max_memory + cache_memory + the "
                "stated constant (%.1f MiB)" % (self.name, peak / MIB, a.bound / MIB))
            tap(n > 0 and worst < PING_BOUND_MS and self.mon.failures == 0,
                "%s: a fresh client's ping stays under %d ms (max %.1f ms over %d, %d failed)"
                % (self.name, PING_BOUND_MS, worst, n, self.mon.failures))
        return True  # the exception is reported above


# ---- phases -----------------------------------------------------------------------------------


def phase_hits(a):
    """Item 3: pipelined hits of a drained result, never read."""
    import pymongo
    d = pymongo.MongoClient(a.direct, serverSelectionTimeoutMS=10000)
    coll = d.res.big
    coll.drop()
    pad = "x" * 4000
    coll.insert_many([{"_id": i, "pad": pad} for i in range(3000)])
    q = mf.op_msg({"find": "big", "filter": {}, "batchSize": 2500, "$db": "res"})
    warm = mf.Conn(a.addr, 30.0)
    r = warm.call(q, 30.0)
    batch = (r.doc or {}).get("cursor", {})
    tap(r.ok() and len(batch.get("firstBatch", [])) == 2500 and batch.get("id"),
        "hits: the result is drained into a proxy cursor (a first batch of 2500, 10 MB, and "
        "the cursor open)",
        "%r" % r if not r.ok() else "")
    warm.sock.close()
    with Phase(a, "hits", a.pid, a.addr):
        conns = []
        for _ in range(2):
            c = small_window(a.addr_tuple)
            c.send(q * 150)  # 150 pipelined finds, replies never read
            conns.append(c)
        time.sleep(4.0)
        for c in conns:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.sock.close()
        time.sleep(0.5)
    # 40 slow readers that each have the 10 MB first batch waiting (about 240 MB of it in
    # the proxy's buffers, past max_memory, but by reference: the cache's bytes): a 2 MB
    # insert must still be admitted.
    readers = []
    for _ in range(40):
        c = small_window(a.addr_tuple)
        c.send(q)
        readers.append(c)
    time.sleep(1.0)
    refusals = mf.stats(a.http, timeout=10.0).get("counters", {}).get("memory_refusals", 0)
    w = mf.Conn(a.addr, 10.0)
    r = w.call(mf.op_msg({"insert": "ins", "documents": [{"_id": 1, "pad": "y" * 2000000}],
                          "$db": "res"}), 10.0)
    after = mf.stats(a.http, timeout=10.0).get("counters", {})
    tap(r.ok() and after.get("memory_refusals", 0) == refusals,
        "hits: with 40 slow readers of the result (%.0f MiB of it buffered, by reference), a "
        "2 MB insert is admitted: references are the cache's memory"
        % (after.get("memory_buffered", 0) / MIB), r)
    w.sock.close()
    for c in readers:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()


def phase_namespaces(a):
    """Item 7: reads of 200,000 new collection names."""
    total, conns_n, depth = 200000, 8, 200
    per = total // conns_n

    def worker(k, errors):
        try:
            c = mf.Conn(a.canned_addr, 30.0)
            for start in range(0, per, depth):
                batch = b"".join(
                    mf.op_msg({"find": "c%d_%d" % (k, i), "filter": {}, "$db": "ns%d" % (i % 3)})
                    for i in range(start, min(start + depth, per)))
                c.send(batch)
                for _ in range(min(depth, per - start)):
                    c.recv_msg(30.0)
            c.sock.close()
        except Exception as e:
            errors.append(repr(e))

    with Phase(a, "namespaces", a.canned_pid, a.canned_addr):
        errors = []
        threads = [threading.Thread(target=worker, args=(k, errors)) for k in range(conns_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        tap(not errors, "namespaces: %d reads of new names answered" % total, errors[:3])
    t0 = time.monotonic()
    status, body = http_request(a.canned_http, "GET", "/stats", timeout=10.0)
    took = (time.monotonic() - t0) * 1000.0
    s = json.loads(body) if status == 200 else {}
    cache = s.get("cache", {})
    print("# namespaces: /stats %d bytes in %.1f ms; records %s, forgotten %s; "
          "namespaces shown %d, other %s" % (len(body), took, cache.get("records"),
                                             cache.get("records_forgotten"),
                                             len(s.get("namespaces", {})),
                                             s.get("namespaces_other", {}).get("count")))
    a.figures.setdefault("namespaces", {}).update({"stats_bytes": len(body), "stats_ms": round(took, 1),
                                    "records": cache.get("records"),
                                    "records_forgotten": cache.get("records_forgotten")})
    tap(status == 200 and len(body) < 64 * 1024 and len(s.get("namespaces", {})) <= 100,
        "namespaces: /stats stays bounded (%d bytes, %d namespaces by name, the rest summed)"
        % (len(body), len(s.get("namespaces", {}))))
    tap((cache.get("records_forgotten") or 0) > 100000,
        "namespaces: idle namespace records were forgotten (%s)" % cache.get("records_forgotten"))


def phase_halfsent(a):
    """Item 8: 20 half-sent 47 MB messages."""
    big = 47 * 1000 * 1000
    body = b"\x00" * (big // 2)
    results = []

    def sender(i):
        try:
            s = socket.create_connection(a.addr_tuple, timeout=20.0)
            s.sendall(struct.pack("<iiii", big, 9000 + i, 0, 2013) + body)
            results.append(("sent", s))
        except OSError as e:
            results.append(("refused", repr(e)))

    with Phase(a, "halfsent", a.pid, a.addr):
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        time.sleep(1.0)
        told, silent = 0, 0
        for kind, x in results:
            if kind != "sent":
                silent += 1
                continue
            data = bytearray()
            try:
                x.settimeout(0.5)
                while b"ExceededMemoryLimit" not in data:
                    chunk = x.recv(1 << 16)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            if b"ExceededMemoryLimit" in data:
                told += 1
        st = mf.stats(a.http, timeout=10.0).get("counters", {})
        tap(told >= 1 and told == st.get("memory_refusals", 0) and silent == 0,
            "halfsent: messages that would pass max_memory are refused, and each refused "
            "client reads the ExceededMemoryLimit error (%d of 20; memory_refusals %s)"
            % (told, st.get("memory_refusals")))
        for kind, x in results:
            if kind == "sent":
                x.close()
        time.sleep(0.5)


def phase_waiting(a):
    """Item 8: clients whose read waits keep sending."""
    q = mf.op_msg({"find": "slow", "filter": {"_id": 1}, "$db": "res"})
    leader = mf.Conn(a.slow_addr, 30.0)
    leader.send(q)
    time.sleep(0.3)
    junk = mf.ping() * (145 * MIB // len(mf.ping()))
    done = []

    def follower():
        s = socket.create_connection(a.slow_tuple, timeout=3.0)
        try:
            s.sendall(q)  # waits behind the leader
            s.sendall(junk)  # then keeps sending: the proxy must stop reading
            done.append("all sent")
        except OSError:
            done.append("stalled")
        finally:
            s.close()

    with Phase(a, "waiting", a.slow_pid, a.slow_addr):
        st0 = mf.stats(a.slow_http, timeout=10.0).get("cache", {}).get("coalesced", 0)
        threads = [threading.Thread(target=follower) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        st1 = mf.stats(a.slow_http, timeout=10.0).get("cache", {}).get("coalesced", 0)
        tap(st1 - st0 >= 4 and done.count("stalled") == 4,
            "waiting: 4 reads waiting behind a slow identical read are not read further "
            "(coalesced +%d, senders stalled: %d of 4)" % (st1 - st0, done.count("stalled")))
    leader.sock.close()


def _replies(sock, want, timeout):
    """The responseTo of each whole reply read from sock, until want of them or timeout."""
    got, buf, pos = [], bytearray(), 0
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
            while len(buf) - pos >= 16:
                n = struct.unpack_from("<i", buf, pos)[0]
                if len(buf) - pos < n:
                    break
                got.append(struct.unpack_from("<i", buf, pos + 8)[0])
                pos += n
    except (socket.timeout, OSError):
        pass
    return got


def _held(a, name, addr, tup, http, pid):
    """Hits pipelined behind a read the server holds (3 s) wait for their turn
    in the proxy; they count with the client's queue, so past buffer_limit
    (1 MiB on these proxies) it reads the client no further. Then every reply
    arrives, in order."""
    count_q = {"count": "held", "query": {}, "$db": "res"}
    warm = mf.Conn(addr, 10.0)
    warm.call(mf.op_msg(count_q), 10.0)
    h0 = mf.stats(http, timeout=10.0).get("cache", {}).get("hits", 0)
    second = warm.call(mf.op_msg(count_q), 10.0)
    h1 = mf.stats(http, timeout=10.0).get("cache", {}).get("hits", 0)
    warm.sock.close()
    tap(second.ok() and h1 - h0 == 1, "%s: the count is cached (hits +%d)" % (name, h1 - h0))
    pad = "x" * 4000  # the comment is left out of the key: each one is a hit
    s = socket.create_connection(tup, timeout=10.0)
    try:
        with Phase(a, name, pid, addr):
            s.sendall(mf.op_msg({"find": "slow", "filter": {"_id": 1}, "$db": "res"},
                                request_id=1))
            time.sleep(0.2)  # the find is on its way to the server, which holds it 3 s
            s.setblocking(False)
            ids, sent, cap = [1], 0, 64 * MIB
            out, t_end = b"", time.monotonic() + 2.0
            while time.monotonic() < t_end and sent < cap:
                if not out:
                    ids.append(len(ids) + 1)
                    out = mf.op_msg(dict(count_q, comment=pad), request_id=ids[-1])
                try:
                    n = s.send(out)
                    sent += n
                    out = out[n:]
                except BlockingIOError:
                    time.sleep(0.005)
            hits = mf.stats(http, timeout=5.0).get("cache", {}).get("hits", 0) - h1
            s.setblocking(True)
            s.settimeout(10.0)
            if out:
                s.sendall(out)  # the last message whole: taken once the find is answered
            tap(hits < 4000,
                "%s: hits behind a held read are read no further past buffer_limit (%d answered "
                "while it was held; %.1f MiB taken in 2 s, the kernel's buffers included)"
                % (name, hits, sent / MIB))
            got = _replies(s, len(ids), 30.0)
        tap(got == ids, "%s: then all %d replies arrive, in order (%d came)"
            % (name, len(ids), len(got)),
            "first out of order: %r" % next((g for g, i in zip(got, ids) if g != i), None))
    finally:
        s.close()


def phase_held(a):
    """Found in review: hits behind a held read, in process."""
    _held(a, "held", a.held_addr, a.held_tuple, a.held_http, a.held_pid)


def phase_held_tier(a):
    """The same with the Redis tier, where each hit waits for Redis's check first."""
    _held(a, "held_tier", a.tier_addr, a.tier_tuple, a.tier_http, a.tier_pid)


PHASES = {"hits": phase_hits, "namespaces": phase_namespaces, "halfsent": phase_halfsent,
          "waiting": phase_waiting, "held": phase_held, "held_tier": phase_held_tier}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--direct", required=True)
    p.add_argument("--canned-port", type=int, required=True)
    p.add_argument("--canned-http", type=int, required=True)
    p.add_argument("--canned-pid", type=int, required=True)
    p.add_argument("--slow-port", type=int, required=True)
    p.add_argument("--slow-http", type=int, required=True)
    p.add_argument("--slow-pid", type=int, required=True)
    p.add_argument("--held-port", type=int, required=True)
    p.add_argument("--held-http", type=int, required=True)
    p.add_argument("--held-pid", type=int, required=True)
    p.add_argument("--tier-port", type=int, required=True)
    p.add_argument("--tier-http", type=int, required=True)
    p.add_argument("--tier-pid", type=int, required=True)
    p.add_argument("--max-memory", type=int, required=True)
    p.add_argument("--cache-memory", type=int, required=True)
    p.add_argument("--no-bounds", action="store_true")
    p.add_argument("--figures-file", default="")
    a = p.parse_args()
    a.addr = "127.0.0.1:%d" % a.port
    a.addr_tuple = ("127.0.0.1", a.port)
    a.canned_addr = "127.0.0.1:%d" % a.canned_port
    a.slow_addr = "127.0.0.1:%d" % a.slow_port
    a.slow_tuple = ("127.0.0.1", a.slow_port)
    a.held_addr = "127.0.0.1:%d" % a.held_port
    a.held_tuple = ("127.0.0.1", a.held_port)
    a.tier_addr = "127.0.0.1:%d" % a.tier_port
    a.tier_tuple = ("127.0.0.1", a.tier_port)
    a.figures = {}
    base = max(status_kb(pid, "VmRSS")
               for pid in (a.pid, a.canned_pid, a.slow_pid, a.held_pid, a.tier_pid)) * 1024
    a.bound = a.max_memory + a.cache_memory + base + SLACK
    print("# bound: max_memory %.0f MiB + cache_memory %.0f MiB + RSS before the attacks "
          "%.1f MiB + %d MiB = %.1f MiB" % (a.max_memory / MIB, a.cache_memory / MIB, base / MIB,
                                             SLACK // MIB, a.bound / MIB))
    for fn in PHASES.values():
        fn(a)
    print("# figures " + json.dumps(a.figures, sort_keys=True))
    if a.figures_file:
        with open(a.figures_file, "w") as f:
            json.dump(a.figures, f, indent=1, sort_keys=True)
    mf.plan()


if __name__ == "__main__":
    main()
