#!/usr/bin/env python3
"""tests/integration/redis_deploy_check.py: one proxy whose Redis tier is
down for a reason the test made (a refused certificate, a TLS port reached
in plaintext, ...), or up. Driven by test_redis_deploy.sh:

    redis_deploy_check.py down --name NAME --port P --http H --direct D
                               --log FILE --event EVENT --reason TEXT [--secs S]
        within S seconds (default 5) the proxy's log holds a line of EVENT
        at level error or warn whose reason holds TEXT; the tier's state is
        not "connected" (and never was: no redis_connected line); reads are
        answered equal to FerretDB's, counted as bypassed (redis_unavailable)
    redis_deploy_check.py up --name NAME --port P --http H --direct D [--secs S]
        the tier's state becomes "connected" within S seconds; a read is
        answered equal to FerretDB's and stored in Redis (redis_fills grows)
    redis_deploy_check.py cluster --name NAME --port P --http H --direct D --log FILE
        the tier reaches a Redis Cluster node: reads (the same one three
        times) are answered equal to FerretDB's, none is a Redis hit nor a
        fill, redis_errors grows, and a redis_cluster_unsupported warning is
        logged (once, however many errors)

    redis_deploy_check.py sentinel --p1 P --h1 H --p2 P --h2 H --direct D
                               --sentinel-port S --master-port M --replica-port R
                               --replica-pid PID
        two proxies on redis-sentinel://: (1) a value filled through P1 is a
        Redis hit through P2; (2) SENTINEL FAILOVER: both follow to the new
        master within 10 s, every read meanwhile equal to FerretDB's (writes
        going on through P1), a hit through P2 again; (3) the old master,
        once a replica, got no command from either proxy after the switch
        (INFO commandstats: no MGET, EVALSHA, EVAL; errorstats: no READONLY);
        (4) the new master killed (-9): the Sentinel promotes the old one and
        both proxies follow within 15 s, reads correct throughout.
    redis_deploy_check.py demoted --name NAME --port P --http H --direct D --log FILE
                               --fake-port F --node-port X --replica-port R
        a fake Sentinel on F (started here) names X as the master of the
        proxy on redis-sentinel://127.0.0.1:F/mymaster: (a) the tier
        connects to X and stores a value there; (b) X is made a replica of
        R (REPLICAOF, which keeps client connections, unlike a Sentinel's
        failover; R need not be up): the next write's bump is refused (READONLY), the proxy
        drops the connection, asks the Sentinel again, finds X's ROLE is
        "slave" and logs redis_not_master; the tier stays down, reads are
        answered equal to FerretDB's, and X gets no MGET, EVALSHA or EVAL
        once refused

Each prints unnumbered TAP lines and its plan (mctest.py).
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pymongo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402

DB = "mcdeploy"


def rsec(s):
    return s["cache"].get("redis") or s.get("redis") or {}


def wait_state(https, want, secs):
    """The tier's state once every proxy's is want, or the first one's when secs ran out."""
    deadline = time.monotonic() + secs
    while True:
        states = [rsec(mctest.stats(h, timeout=3)).get("state") for h in https]
        if all(x == want for x in states) or time.monotonic() >= deadline:
            return states[0] if all(x == want for x in states) else states
        time.sleep(0.1)


def client(port):
    return pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, directConnection=True,
                               serverSelectionTimeoutMS=10000, socketTimeoutMS=10000)


def rows(cl, coll, flt):
    return list(cl[DB][coll].find(flt, sort=[("_id", 1)]))


def seed(direct, coll):
    direct[DB][coll].drop()
    direct[DB][coll].insert_many([{"_id": i, "k": i % 3, "t": "v%d" % i} for i in range(9)])


def log_lines(path, event):
    """The lines of EVENT in the log: (level, reason)."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if "event=%s " % event not in line and not line.rstrip().endswith("event=" + event):
                    continue
                lv = re.search(r"\blevel=(\w+)", line)
                rs = re.search(r'\breason="((?:[^"\\]|\\.)*)"', line)
                out.append((lv.group(1) if lv else "", rs.group(1) if rs else "", line.strip()))
    except OSError:
        pass
    return out


def g_down(a):
    d, p = client(a.direct), client(a.port)
    coll = "down_" + re.sub(r"\W", "_", a.name)
    with mctest.Case(mctest.TAP, "%s: refused with a clear log line, tier down, reads answered"
                     % a.name) as c:
        deadline = time.monotonic() + a.secs
        found = []
        while time.monotonic() < deadline:
            found = [x for x in log_lines(a.log, a.event)
                     if x[0] in ("error", "warn") and a.reason in x[1]]
            if found:
                break
            time.sleep(0.1)
        c.check(found, "no %s line (error or warn) with reason holding %r within %.0f s; "
                "lines of that event: %r" % (a.event, a.reason, a.secs,
                                             [x[2][:300] for x in log_lines(a.log, a.event)][:3]))
        if found:
            c.note(found[0][2][:300])
        st = rsec(mctest.stats(a.http, timeout=3))
        c.check(st.get("state") != "connected", "the tier says %r" % st.get("state"))
        c.check(not log_lines(a.log, "redis_connected"), "the tier connected at some point")
        seed(d, coll)
        before = mctest.stats(a.http, timeout=3)["cache"].get("bypass_reasons", {})
        for q in ({"k": 1}, {"k": 1}, {}):
            got, want = rows(p, coll, q), rows(d, coll, q)
            c.check(got == want, "read %r through the proxy differs from FerretDB's: %r"
                    % (q, got[:3]))
        after = mctest.stats(a.http, timeout=3)["cache"].get("bypass_reasons", {})
        dn = after.get("redis_unavailable", 0) - before.get("redis_unavailable", 0)
        c.check(dn >= 3, "reads not counted as redis_unavailable bypasses (+%d)" % dn)


def g_up(a):
    d, p = client(a.direct), client(a.port)
    coll = "up_" + re.sub(r"\W", "_", a.name)
    with mctest.Case(mctest.TAP, "%s: the tier connects and stores values" % a.name) as c:
        state = wait_state([a.http], "connected", a.secs)
        c.check(state == "connected", "state %r after %.0f s" % (state, a.secs))
        seed(d, coll)
        fills = mctest.redis_counter(a.http, "redis_fills")
        got, want = rows(p, coll, {"k": 2}), rows(d, coll, {"k": 2})
        c.check(got == want, "read differs from FerretDB's: %r" % got[:3])
        deadline = time.monotonic() + 3
        now = fills
        while time.monotonic() < deadline and now <= fills:
            time.sleep(0.05)
            now = mctest.redis_counter(a.http, "redis_fills")
        c.check(now > fills, "nothing stored in Redis (redis_fills %d -> %d)" % (fills, now))


def g_cluster(a):
    d, p = client(a.direct), client(a.port)
    coll = "cluster_" + re.sub(r"\W", "_", a.name)
    with mctest.Case(mctest.TAP, "%s: a Redis Cluster node is refused clearly, never served from"
                     % a.name) as c:
        wait_state([a.http], "connected", a.secs)
        seed(d, coll)
        before = rsec(mctest.stats(a.http, timeout=3)).get("counters", {})
        for q in ({"k": 0}, {"k": 0}, {"k": 0}):
            got, want = rows(p, coll, q), rows(d, coll, q)
            c.check(got == want, "read %r differs from FerretDB's: %r" % (q, got[:3]))
        time.sleep(0.3)
        after = rsec(mctest.stats(a.http, timeout=3)).get("counters", {})
        delta = {k: after.get(k, 0) - before.get(k, 0)
                 for k in ("redis_hits", "redis_fills", "redis_errors")}
        c.check(delta["redis_hits"] == 0 and delta["redis_fills"] == 0,
                "served or stored through a cluster node: %r" % delta)
        c.check(delta["redis_errors"] >= 3, "errors not counted: %r" % delta)
        warned = [x for x in log_lines(a.log, "redis_cluster_unsupported") if x[0] == "warn"]
        c.check(len(warned) == 1, "%d redis_cluster_unsupported warnings (want 1)" % len(warned))
        c.note("counters: %r" % delta)


def rcli(port, *args):
    """redis-cli's answer (text), or "" when it fails."""
    try:
        return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                              text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def info(port, section):
    out = {}
    for line in rcli(port, "INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def calls(port, *cmds):
    """{command: calls} from INFO commandstats, for the commands named (0 when never called)."""
    st = info(port, "commandstats")
    got = {}
    for c in cmds:
        m = re.search(r"\bcalls=(\d+)", st.get("cmdstat_" + c, ""))
        got[c] = int(m.group(1)) if m else 0
    return got


def role(port):
    return (rcli(port, "ROLE").split("\n") or [""])[0].strip()


def switches(h):
    return mctest.redis_counter(h, "redis_master_switches")


def shared_hit(c, a, d, p1, p2, coll, label):
    """A fresh query read through P1 (filled) is a Redis hit through P2, both equal to FerretDB's.
    True when it was; problems are recorded on c only when record is set."""
    q = {"k": int(time.monotonic() * 1000) % 1000003, "label": label}
    d[DB][coll].insert_one(dict(q, _id="%s-%d" % (label, q["k"])))
    want = rows(d, coll, q)
    f0 = mctest.redis_counter(a.h1, "redis_fills")
    if rows(p1, coll, q) != want:
        return "P1 differs from FerretDB"
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if mctest.redis_counter(a.h1, "redis_fills") > f0:
            break
        time.sleep(0.05)
    else:
        return "P1 stored nothing in Redis"
    h0 = mctest.redis_counter(a.h2, "redis_hits")
    if rows(p2, coll, q) != want:
        return "P2 differs from FerretDB"
    h1 = mctest.redis_counter(a.h2, "redis_hits")
    return None if h1 == h0 + 1 else "P2's read was not a Redis hit (+%d)" % (h1 - h0)


def follow(c, a, d, p1, p2, coll, bound, done):
    """Writes through P1 and reads through P1 and P2 (each compared with FerretDB's) until
    done() holds and a fill through P1 is a hit through P2; returns the seconds it took."""
    t0 = time.monotonic()
    wrong = []
    i = 0
    while time.monotonic() - t0 < bound:
        i += 1
        p1[DB][coll].update_one({"_id": "ctr"}, {"$inc": {"n": 1}}, upsert=True)
        for name, cl in (("P1", p1), ("P2", p2)):
            got, want = rows(cl, coll, {"_id": "ctr"}), rows(d, coll, {"_id": "ctr"})
            if got != want:
                wrong.append("%s read %r, FerretDB %r" % (name, got, want))
        if done() and shared_hit(c, a, d, p1, p2, coll, "f%d" % i) is None:
            took = time.monotonic() - t0
            c.check(not wrong, "stale or wrong reads: %r" % wrong[:3])
            return took
        time.sleep(0.05)
    c.check(False, "not followed within %.0f s (switches P1 %d, P2 %d; stale reads %r)"
            % (bound, switches(a.h1), switches(a.h2), wrong[:3]))
    return None


def g_sentinel(a):
    d, p1, p2 = client(a.direct), client(a.p1), client(a.p2)
    coll = "sentinel"
    d[DB][coll].drop()
    with mctest.Case(mctest.TAP, "sentinel 1: both proxies find the master through the "
                     "Sentinel; a fill through P1 is a Redis hit through P2") as c:
        wait_state([a.h1, a.h2], "connected", 10)
        why = shared_hit(c, a, d, p1, p2, coll, "share")
        c.check(why is None, why or "")
    with mctest.Case(mctest.TAP, "sentinel 2: SENTINEL FAILOVER: both proxies follow to the new "
                     "master within 10 s, no stale read, hits again") as c:
        base1, base2 = switches(a.h1), switches(a.h2)
        out = rcli(a.sentinel_port, "SENTINEL", "FAILOVER", "mymaster")
        c.check("OK" in out, "SENTINEL FAILOVER answered %r" % out)
        snap = {}

        def switched():
            if switches(a.h1) > base1 and switches(a.h2) > base2:
                if not snap:  # what the old master had served when both had left it
                    snap.update(calls(a.master_port, "mget", "evalsha", "eval"))
                return role(a.replica_port) == "master"
            return False
        took = follow(c, a, d, p1, p2, coll, 10, switched)
        if took is not None:
            c.note("followed in %.2f s (from SENTINEL FAILOVER to a hit on the new master)" % took)
    with mctest.Case(mctest.TAP, "sentinel 3: the old master, a replica now, got no command from "
                     "the proxies after the switch") as c:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and role(a.master_port) != "slave":
            time.sleep(0.2)
        c.check(role(a.master_port) == "slave", "the old master is still %r after 15 s"
                % role(a.master_port))
        for _ in range(5):  # more traffic while it is a replica
            rows(p1, coll, {"_id": "ctr"})
            rows(p2, coll, {"_id": "ctr"})
        now = calls(a.master_port, "mget", "evalsha", "eval")
        c.check(snap and now == snap, "commands on the old master after the switch: %r -> %r"
                % (snap, now))
        errs = info(a.master_port, "errorstats")
        c.check(not any("READONLY" in k for k in errs), "writes refused there: %r" % errs)
        c.note("old master: role %s, mget/evalsha/eval calls %r" % (role(a.master_port), now))
    with mctest.Case(mctest.TAP, "sentinel 4: the new master killed (-9): both proxies re-ask "
                     "the Sentinel and follow the promoted one within 15 s") as c:
        base1, base2 = switches(a.h1), switches(a.h2)
        os.kill(a.replica_pid, signal.SIGKILL)
        took = follow(c, a, d, p1, p2, coll, 15,
                      lambda: switches(a.h1) > base1 and switches(a.h2) > base2 and
                      role(a.master_port) == "master")
        if took is not None:
            c.note("followed in %.2f s (from the kill to a hit on the promoted master)" % took)


def resp_bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def read_command(f):
    """One RESP array of bulk strings from a socket file, or None at its end."""
    line = f.readline()
    if not line.startswith(b"*"):
        return None
    args = []
    for _ in range(int(line[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:n])
    return args


def fake_sentinel(port, master_port):
    """A Sentinel that names 127.0.0.1:master_port as mymaster's master (threads, stdlib)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)

    def serve(conn):
        f = conn.makefile("rb")
        try:
            while True:
                cmd = read_command(f)
                if cmd is None:
                    return
                name = cmd[0].upper()
                if name == b"SENTINEL":
                    conn.sendall(b"*2\r\n" + resp_bulk(b"127.0.0.1") +
                                 resp_bulk(str(master_port).encode()))
                elif name == b"SUBSCRIBE":
                    conn.sendall(b"*3\r\n" + resp_bulk(b"subscribe") + resp_bulk(cmd[1]) + b":1\r\n")
                else:
                    conn.sendall(b"+OK\r\n")
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def accept():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return srv


def g_demoted(a):
    d, p = client(a.direct), client(a.port)
    coll = "demoted"
    srv = fake_sentinel(a.fake_port, a.node_port)
    seed(d, coll)
    with mctest.Case(mctest.TAP, "%s: the master a Sentinel names is used" % a.name) as c:
        state = wait_state([a.http], "connected", 8)
        c.check(state == "connected", "state %r" % state)
        fills = mctest.redis_counter(a.http, "redis_fills")
        c.check(rows(p, coll, {"k": 1}) == rows(d, coll, {"k": 1}), "read differs")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and mctest.redis_counter(a.http, "redis_fills") <= fills:
            time.sleep(0.05)
        c.check(mctest.redis_counter(a.http, "redis_fills") > fills, "nothing stored on the master")
    with mctest.Case(mctest.TAP, "%s: the master turned replica under the proxy: READONLY drops "
                     "it, ROLE keeps it out, reads answered" % a.name) as c:
        out = rcli(a.node_port, "REPLICAOF", "127.0.0.1", str(a.replica_port))
        c.check("OK" in out, "REPLICAOF answered %r" % out)
        p[DB][coll].update_one({"_id": 1}, {"$set": {"t": "changed"}})
        deadline = time.monotonic() + 8
        found = []
        while time.monotonic() < deadline and not found:
            found = [x for x in log_lines(a.log, "redis_not_master") if x[0] == "warn"]
            time.sleep(0.1)
        c.check(found and 'role="slave"' in found[0][2],
                "no redis_not_master warning naming role slave: %r" % found[:1])
        dropped = [x for x in log_lines(a.log, "redis_disconnected") if "READONLY" in x[1]]
        c.check(dropped, "the READONLY reply did not drop the connection")
        st = rsec(mctest.stats(a.http, timeout=3))
        c.check(st.get("state") != "connected", "the tier says %r" % st.get("state"))
        before = calls(a.node_port, "mget", "evalsha", "eval")
        for q in ({"k": 1}, {"k": 1}, {"_id": 1}):
            got, want = rows(p, coll, q), rows(d, coll, q)
            c.check(got == want, "read %r differs from FerretDB's: %r" % (q, got[:3]))
        time.sleep(0.5)
        after = calls(a.node_port, "mget", "evalsha", "eval")
        c.check(after == before, "commands reached the replica: %r -> %r" % (before, after))
        for x in (dropped[:1] + found[:1]):
            c.note(x[2][:300])
    srv.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("group", choices=["down", "up", "cluster", "sentinel", "demoted"])
    ap.add_argument("--name")
    ap.add_argument("--port", type=int)
    ap.add_argument("--http", type=int)
    ap.add_argument("--direct", type=int, required=True)
    for opt in ("--p1", "--h1", "--p2", "--h2", "--sentinel-port", "--master-port",
                "--replica-port", "--replica-pid", "--fake-port", "--node-port"):
        ap.add_argument(opt, type=int)
    ap.add_argument("--log")
    ap.add_argument("--event")
    ap.add_argument("--reason")
    ap.add_argument("--secs", type=float, default=5.0)
    a = ap.parse_args()
    if a.group == "down":
        g_down(a)
    elif a.group == "cluster":
        g_cluster(a)
    elif a.group == "sentinel":
        g_sentinel(a)
    elif a.group == "demoted":
        g_demoted(a)
    else:
        g_up(a)
    mctest.plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
