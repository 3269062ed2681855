#!/usr/bin/env python3
"""tests/integration/ops.py: operational behaviour of a running mongocache.

Driven by test_ops.sh, which starts one proxy per group and runs
    ops.py GROUP --proxy 127.0.0.1:PORT --http HTTP_PORT --pid PID [options]
Each group prints unnumbered TAP lines ("ok - ..." / "not ok - ...") with
"# " diagnostics, then the group's plan (mctest.plan()); the wrapper numbers
them.

Groups:
  unreachable  the upstream is a closed port: error replies, never a hang
  ferret       FerretDB upstream: pipelining, moreToCome, exhaustAllowed,
               unix socket, HTTP endpoint
  maxclients   --max-clients 3
  reload       --config FILE, SIGHUP with a good and a bad file
  fake         a fault-injecting fake upstream run in this process (--fake-port):
               moreToCome, idle timeout, upstream lost, invalid replies, and
               last SIGTERM drain with a slow request in flight
  emfile       the proxy runs under `ulimit -n 64`

Python 3 stdlib only; wire helpers and TAP come from mctest.py.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctest import (  # noqa: E402
    EXHAUST_ALLOWED, MORE_TO_COME, OP_MSG, OP_QUERY, OP_REPLY, Case, Closed, Conn, Int64, Tap,
    counters, decode, encode, header, nested, op_msg, op_query, parse_addr, pid_alive, ping, plan,
    read_message, short,
)


def rid_of(msg):
    return struct.unpack_from("<i", msg, 4)[0]


def http_request(port, method, path, timeout=2.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def stat(port, name):
    try:
        return counters(port).get(name)
    except Exception as e:
        return "stats unavailable: %r" % e


def delta(before, after):
    if isinstance(before, int) and isinstance(after, int):
        return after - before
    return None


def wait_for(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def no_reply_within(conn, seconds):
    """True when nothing arrives (and the connection stays open) for `seconds`."""
    try:
        r = conn.recv_msg(seconds)
        return False, "unexpected reply %r" % r
    except socket.timeout:
        return True, None
    except Closed as e:
        return False, "connection closed (%s)" % e


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def fd_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return -1


def count_in_log(path, needle):
    """Lines of the log at path containing needle (0 without a log)."""
    if not path:
        return 0
    n = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                if needle.encode() in line:
                    n += 1
    except OSError:
        pass
    return n


def proc_exited(pid):
    return not pid_alive(pid)


# ---- groups ----------------------------------------------------------------------


def group_unreachable(a, tap):
    up = a.upstream_label
    before = stat(a.http, "upstream_connect_failures")
    with Case(tap, "ops upstream unreachable: OP_MSG ping gets ok 0 HostUnreachable naming it") as c:
        conn = Conn(a.addr, 2.0)
        msg = ping()
        t = time.monotonic()
        r = conn.call(msg, 2.0)
        took = time.monotonic() - t
        c.check(r.opcode == OP_MSG and r.response_to == rid_of(msg), "reply %r" % r)
        d = r.doc or {}
        c.check(d.get("ok") == 0, "ok is %r" % d.get("ok"))
        c.check(d.get("code") == 6, "code is %r, want 6" % d.get("code"))
        c.check(d.get("codeName") == "HostUnreachable", "codeName %r" % d.get("codeName"))
        c.check(up in str(d.get("errmsg")), "errmsg %r does not name %s" % (d.get("errmsg"), up))
        c.check(took < 1.5, "reply took %.2fs" % took)
        # the connection stays usable: a second request gets the same answer
        r = conn.call(ping(), 2.0)
        c.check((r.doc or {}).get("code") == 6, "second ping %r" % r)
        conn.close()
    with Case(tap, "ops upstream unreachable: OP_QUERY isMaster gets an OP_REPLY error") as c:
        conn = Conn(a.addr, 2.0)
        msg = op_query("admin.$cmd", {"isMaster": 1, "client": {"driver": {"name": "t", "version": "1"}}})
        t = time.monotonic()
        r = conn.call(msg, 2.0)
        took = time.monotonic() - t
        d = r.doc or {}
        c.check(r.opcode == OP_REPLY and r.response_to == rid_of(msg), "reply %r" % r)
        c.check(d.get("ok") == 0 and d.get("code") == 6, "doc %s" % short(d))
        c.check(up in str(d.get("errmsg")), "errmsg %r does not name %s" % (d.get("errmsg"), up))
        c.check(took < 1.5, "reply took %.2fs" % took)
        conn.close()
    with Case(tap, "ops upstream unreachable: pipelined pings all answered, counter rises") as c:
        conn = Conn(a.addr, 2.0)
        msgs = [ping() for _ in range(5)]
        conn.send(b"".join(msgs))
        for m in msgs:
            r = conn.recv_msg(2.0)
            c.check(r.response_to == rid_of(m) and (r.doc or {}).get("code") == 6, "reply %r" % r)
        conn.close()
        after = stat(a.http, "upstream_connect_failures")
        c.check((delta(before, after) or 0) >= 3,
                "upstream_connect_failures %s -> %s" % (before, after))


def group_ferret(a, tap):
    coll = "ops_%d_%d" % (os.getpid(), int(time.time() * 1000) % 1000000)
    with Case(tap, "ops pipelined 50 requests in one write: 50 replies in order") as c:
        conn = Conn(a.addr, 5.0)
        msgs = []
        for i in range(50):
            if i % 2:
                msgs.append(ping())
            else:
                msgs.append(op_msg({"find": coll, "filter": {"i": i}, "$db": "test"}))
        conn.send(b"".join(msgs))
        got = []
        for m in msgs:
            r = conn.recv_msg(5.0)
            got.append(r.response_to)
            if not r.ok():
                c.check(False, "not ok reply %r" % r)
        want = [rid_of(m) for m in msgs]
        c.check(got == want, "responseTo order %s, want %s" % (got[:10], want[:10]))
        conn.close()
    with Case(tap, "ops moreToCome insert (w:0) gets no reply; count on the same connection sees it [FerretDB]") as c:
        conn = Conn(a.addr, 3.0)
        conn.send(op_msg({"insert": coll + "_w0", "documents": [{"_id": 1, "v": "w0"}],
                          "writeConcern": {"w": 0}, "$db": "test"}, flags=MORE_TO_COME))
        quiet, why = no_reply_within(conn, 0.5)
        c.check(quiet, "after the moreToCome insert: %s" % why)
        if quiet:
            r = conn.call(op_msg({"count": coll + "_w0", "$db": "test"}), 3.0)
            c.check(r.ok() and (r.doc or {}).get("n") == 1, "count reply %r" % r)
        else:
            c.problems.append("note: FerretDB answers moreToCome requests, which the proxy "
                              "treats as an upstream protocol error (see the proxy log)")
        conn.close()
    with Case(tap, "ops hello with exhaustAllowed gets exactly one reply without moreToCome") as c:
        conn = Conn(a.addr, 3.0)
        for body in ({"hello": 1, "$db": "admin"},
                     {"hello": 1, "topologyVersion": {"processId": b"\x00" * 12, "counter": Int64(0)},
                      "maxAwaitTimeMS": 300, "$db": "admin"}):
            msg = op_msg(body, flags=EXHAUST_ALLOWED)
            r = conn.call(msg, 3.0)
            c.check(r.response_to == rid_of(msg), "responseTo %d" % r.response_to)
            c.check(r.flags is not None and not (r.flags & MORE_TO_COME), "flags %r" % r.flags)
            c.check("ok" in (r.doc or {}), "reply %r" % r)
            quiet, why = no_reply_within(conn, 0.7)
            c.check(quiet, "after the hello reply: %s" % why)
        r = conn.call(ping(), 3.0)
        c.check(r.ok(), "ping after: %r" % r)
        conn.close()
    with Case(tap, "ops unix socket listener answers ping") as c:
        if not a.unix:
            c.problems.append("no --unix path given")
        else:
            conn = Conn(a.unix, 3.0)
            msg = ping()
            r = conn.call(msg, 3.0)
            c.check(r.ok() and r.response_to == rid_of(msg), "reply %r" % r)
            conn.close()
    with Case(tap, "ops GET /stats is JSON with counters") as c:
        st, body = http_request(a.http, "GET", "/stats")
        c.check(st == 200, "status %d" % st)
        j = json.loads(body)
        cnt = j.get("counters", {})
        for k in ("decoding_errors", "clients_rejected", "message_timeouts", "idle_timeouts",
                  "requests", "replies", "accept_paused", "upstream_protocol_errors"):
            c.check(isinstance(cnt.get(k), int), "counter %s missing: %s" % (k, short(cnt)))
        c.check(cnt.get("requests", 0) >= 50, "requests %r" % cnt.get("requests"))
    with Case(tap, "ops GET /healthz answers ok") as c:
        st, body = http_request(a.http, "GET", "/healthz")
        c.check(st == 200 and json.loads(body).get("status") == "ok", "%d %s" % (st, body))
    with Case(tap, "ops non-GET methods to /stats are refused") as c:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            st, body = http_request(a.http, method, "/stats")
            c.check(400 <= st < 600 and "counters" not in body, "%s -> %d %s" % (method, st, short(body)))
        st, body = http_request(a.http, "GET", "/nope")
        c.check(st == 404, "GET /nope -> %d" % st)


def group_maxclients(a, tap):
    with Case(tap, "ops max_clients 3: 4th connection closed, clients_rejected rises, slot reused") as c:
        before = stat(a.http, "clients_rejected")
        conns = []
        for i in range(3):
            conn = Conn(a.addr, 3.0)
            r = conn.call(ping(), 3.0)
            c.check(r.ok(), "client %d ping %r" % (i, r))
            conns.append(conn)
        fourth = Conn(a.addr, 1.0)
        try:
            fourth.send(ping())
        except OSError:
            pass
        closed, replies, how, took = fourth.wait_closed(1.0)
        c.check(closed and not replies, "4th: closed=%s replies=%s (%s)" % (closed, short(replies), how))
        fourth.close()
        after = stat(a.http, "clients_rejected")
        c.check(delta(before, after) == 1, "clients_rejected %s -> %s" % (before, after))
        for i, conn in enumerate(conns):
            c.check(conn.call(ping(), 3.0).ok(), "client %d no longer served" % i)
        conns.pop(0).close()
        # the proxy notices the close asynchronously: try for up to 2 s
        ok = False
        for _ in range(20):
            n = Conn(a.addr, 1.0)
            try:
                ok = n.call(ping(), 1.0).ok()
            except (Closed, OSError):
                ok = False
            if ok:
                conns.append(n)
                break
            n.close()
            time.sleep(0.1)
        c.check(ok, "no new connection accepted after one closed")
        for conn in conns:
            conn.close()


def group_reload(a, tap):
    def log_text():
        with open(a.log, errors="replace") as f:
            return f.read()

    def write_conf(level):
        with open(a.config, "w") as f:
            f.write("# written by ops.py\n")
            f.write("listen = %s:%d\n" % a.addr)
            f.write("upstream = %s\n" % a.upstream_uri)
            f.write("http_listen = 127.0.0.1:%d\n" % a.http)
            f.write("log_level = %s\n" % level)

    conn = Conn(a.addr, 3.0)
    with Case(tap, "ops SIGHUP applies a changed log_level (reload_applied)") as c:
        r = conn.call(op_msg({"ping": 1, "comment": "before-reload", "$db": "admin"}), 3.0)
        c.check(r.ok(), "ping %r" % r)
        c.check("event=request" not in log_text(), "debug lines logged at log_level info")
        write_conf("debug")
        os.kill(a.pid, signal.SIGHUP)
        applied = wait_for(lambda: "reload_applied option=log_level" in log_text(), 3.0)
        c.check(applied, "no 'reload_applied option=log_level' in the log")
        msg = ping()
        r = conn.call(msg, 3.0)
        c.check(r.ok(), "ping after reload %r" % r)
        c.check(wait_for(lambda: "event=request request_id=%d " % rid_of(msg) in log_text(), 2.0),
                "log_level debug not in force: the ping was not logged")
    with Case(tap, "ops SIGHUP with a bad value is refused, old config kept, still serving") as c:
        write_conf("verbose")
        os.kill(a.pid, signal.SIGHUP)
        failed = wait_for(lambda: "reload_failed" in log_text(), 3.0)
        c.check(failed, "no 'reload_failed' in the log")
        c.check(pid_alive(a.pid), "the proxy died")
        msg = ping()
        r = conn.call(msg, 3.0)
        c.check(r.ok(), "ping after the bad reload %r" % r)
        n = Conn(a.addr, 3.0)
        c.check(n.call(ping(), 3.0).ok(), "new connection not served")
        n.close()
        c.check(wait_for(lambda: "event=request request_id=%d " % rid_of(msg) in log_text(), 2.0),
                "old log_level (debug) not kept")
    conn.close()


# ---- fake upstream ------------------------------------------------------------------


class FakeUpstream:
    """A fault-injecting MongoDB server: one thread per connection.

    A request's body may carry {fault: NAME, ms: N}; see reply_for.
    moreToCome requests are never answered (as the OP_MSG spec requires);
    inserts are counted per collection so a later `count` sees them.
    """

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.counts = {}
        self.lock = threading.Lock()
        self.conns = 0
        self.stop = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.stop:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        s.settimeout(30)
        try:
            while True:
                raw = read_message(s)
                if raw is None:
                    return
                _, rid, _, opcode = struct.unpack_from("<iiii", raw)
                if not self.handle(s, rid, opcode, raw):
                    return
        except OSError:
            return
        finally:
            try:
                s.close()
            except OSError:
                pass

    @staticmethod
    def msg(doc, response_to, flags=0):
        body = struct.pack("<I", flags) + b"\x00" + (doc if isinstance(doc, bytes) else encode(doc))
        return header(16 + len(body), 7, response_to, OP_MSG) + body

    def handle(self, s, rid, opcode, raw):
        if opcode == OP_QUERY:
            doc = encode({"ismaster": True, "maxWireVersion": 17, "minWireVersion": 0, "ok": 1.0})
            body = struct.pack("<iqii", 0, 0, 0, 1) + doc
            s.sendall(header(16 + len(body), 7, rid, OP_REPLY) + body)
            return True
        flags = struct.unpack_from("<I", raw, 16)[0]
        body = decode(raw, 21) if raw[20] == 0 else {}
        name = next(iter(body), "")
        if name == "insert":
            n = len(body.get("documents", [])) or 1
            with self.lock:
                self.counts[body["insert"]] = self.counts.get(body["insert"], 0) + n
        if flags & MORE_TO_COME:
            return True
        fault = body.get("fault")
        if fault == "delay":
            time.sleep(body.get("ms", 1000) / 1000.0)
        if fault == "close":
            return False
        if fault == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        marker = "BADBYTES-%s" % fault
        if fault == "wrong_response_to":
            s.sendall(self.msg({"ok": 1.0, "m": marker}, rid + 1000))
        elif fault == "len8":
            s.sendall(header(8, 7, rid, OP_MSG) + marker.encode())
        elif fault == "huge_len":
            s.sendall(header(0x7FFFFFFF, 7, rid, OP_MSG) + marker.encode())
        elif fault == "truncated":
            # announces 200 bytes, sends 40, then the "process dies"
            s.sendall((header(200, 7, rid, OP_MSG) + b"\x00" * 5 + marker.encode() + b"\x00" * 40)[:40])
            return False
        elif fault == "bad_bson":
            d = bytearray(encode({"ok": 1.0, "b": True, "m": marker}))
            d[d.index(b"b\x00") + 2] = 2
            s.sendall(self.msg(bytes(d), rid))
        elif fault == "body_past_end":
            d = bytearray(encode({"ok": 1.0, "m": marker}))
            struct.pack_into("<i", d, 0, len(d) + 20)
            s.sendall(self.msg(bytes(d), rid))
        elif fault == "more_to_come":
            s.sendall(self.msg({"ok": 1.0, "m": marker}, rid, flags=MORE_TO_COME))
        elif fault == "op_reply":
            doc = encode({"ok": 1.0, "m": marker})
            body2 = struct.pack("<iqii", 0, 0, 0, 1) + doc
            s.sendall(header(16 + len(body2), 7, rid, OP_REPLY) + body2)
        elif fault == "too_deep":
            s.sendall(self.msg(encode({"ok": 1.0, "m": marker, "d": nested(300)}), rid))
        elif fault == "unsolicited":
            # a correct reply, then a second one nobody asked for
            s.sendall(self.msg({"ok": 1.0}, rid) + self.msg({"ok": 1.0, "m": marker}, rid))
        elif name == "find" and body.get("comment") == "endless":
            # an open cursor that never ends: empty batches forever
            ns = "%s.%s" % (body.get("$db"), body["find"])
            s.sendall(self.msg({"cursor": {"firstBatch": [], "id": Int64(42), "ns": ns},
                                "ok": 1.0}, rid))
        elif name == "getMore" and body.get("getMore") == 42:
            ns = "%s.%s" % (body.get("$db"), body.get("collection"))
            s.sendall(self.msg({"cursor": {"nextBatch": [], "id": Int64(42), "ns": ns},
                                "ok": 1.0}, rid))
        elif name == "count":
            with self.lock:
                n = self.counts.get(body["count"], 0)
            s.sendall(self.msg({"n": n, "ok": 1.0}, rid))
        else:
            s.sendall(self.msg({"ok": 1.0}, rid))
        return True


def faulty_ping(fault, **extra):
    d = {"ping": 1, "fault": fault}
    d.update(extra)
    d["$db"] = "admin"
    return op_msg(d)


def group_fake(a, tap):
    fake = FakeUpstream(a.fake_port)

    with Case(tap, "ops fake upstream answers through the proxy") as c:
        conn = Conn(a.addr, 3.0)
        c.check(conn.call(ping(), 3.0).ok(), "ping through the fake upstream failed")
        conn.close()

    with Case(tap, "ops moreToCome insert (w:0) gets no reply; count on the same connection sees it [spec upstream]") as c:
        conn = Conn(a.addr, 3.0)
        conn.send(op_msg({"insert": "w0", "documents": [{"_id": 1}], "writeConcern": {"w": 0},
                          "$db": "test"}, flags=MORE_TO_COME))
        quiet, why = no_reply_within(conn, 0.4)
        c.check(quiet, "after the moreToCome insert: %s" % why)
        r = conn.call(op_msg({"count": "w0", "$db": "test"}), 3.0)
        c.check(r.ok() and (r.doc or {}).get("n") == 1, "count reply %r" % r)
        conn.close()

    with Case(tap, "ops idle_timeout 1s closes idle clients, not one with a request in flight") as c:
        before = stat(a.http, "idle_timeouts")
        t0 = time.monotonic()
        idle = Conn(a.addr, 3.0)
        after_req = Conn(a.addr, 3.0)
        busy = Conn(a.addr, 3.0)
        c.check(after_req.call(ping(), 2.0).ok(), "quick ping failed")
        slow = faulty_ping("delay", ms=2200)
        busy.send(slow)
        closed, replies, how, _ = idle.wait_closed(2.5)
        elapsed = time.monotonic() - t0
        c.check(closed and not replies, "idle client: closed=%s (%s) replies=%s" % (closed, how, short(replies)))
        c.check(0.8 <= elapsed <= 2.6, "idle client closed after %.2fs" % elapsed)
        closed2, replies2, how2, _ = after_req.wait_closed(1.5)
        c.check(closed2 and not replies2, "client idle after its reply: closed=%s (%s)" % (closed2, how2))
        try:
            r = busy.recv_msg(3.0)
            c.check(r.ok() and r.response_to == rid_of(slow), "slow reply %r" % r)
            c.check(time.monotonic() - t0 >= 2.0, "slow reply came too early")
        except (Closed, socket.timeout) as e:
            c.check(False, "client with a request in flight lost its reply: %r" % e)
        after = stat(a.http, "idle_timeouts")
        c.check((delta(before, after) or 0) >= 2, "idle_timeouts %s -> %s" % (before, after))
        for x in (idle, after_req, busy):
            x.close()

    for fault in ("close", "reset"):
        with Case(tap, "ops upstream dies mid-request (%s): client closed, no fabricated reply" % fault) as c:
            before = stat(a.http, "upstream_lost")
            conn = Conn(a.addr, 2.0)
            conn.send(faulty_ping(fault))
            closed, replies, how, took = conn.wait_closed(2.0)
            c.check(closed, "client not closed (%s)" % how)
            c.check(not replies, "fabricated replies %s" % short(replies))
            conn.close()
            after = stat(a.http, "upstream_lost")
            c.check(delta(before, after) == 1, "upstream_lost %s -> %s" % (before, after))

    with Case(tap, "ops upstream closes mid-reply (truncated): client closed, no partial bytes") as c:
        conn = Conn(a.addr, 2.0)
        conn.send(faulty_ping("truncated"))
        closed, replies, how, took = conn.wait_closed(2.0)
        c.check(closed and not replies and b"BADBYTES" not in conn.buf,
                "closed=%s replies=%s buf=%r (%s)" % (closed, short(replies), conn.buf[:40], how))
        conn.close()

    for fault in ("wrong_response_to", "len8", "huge_len", "bad_bson", "body_past_end",
                  "more_to_come", "op_reply", "too_deep", "unsolicited"):
        with Case(tap, "ops upstream invalid reply (%s): an error reply then close, never the bytes" % fault) as c:
            before = stat(a.http, "upstream_protocol_errors")
            conn = Conn(a.addr, 2.0)
            msg = faulty_ping(fault)
            conn.send(msg)
            closed, replies, how, took = conn.wait_closed(2.0)
            raw = b"".join(r.raw for r in replies) + conn.buf
            c.check(b"BADBYTES" not in raw, "the upstream's bad bytes reached the client: %r" % raw[:120])
            if fault == "unsolicited":
                # the first, valid reply is relayed; then the stray one must not be
                good = [r for r in replies if r.ok()]
                c.check(len(good) <= 1, "replies %s" % short(replies))
                rest = [r for r in replies if not r.ok()]
            else:
                c.check(not any(r.ok() for r in replies), "an ok reply was relayed: %s" % short(replies))
                rest = replies
                # issue 6 item 13: framing errors too get the error the README promises
                c.check(len(rest) == 1, "want exactly one error reply, got %s" % short(replies))
            for r in rest:
                d = r.doc or {}
                c.check(r.response_to == rid_of(msg) and d.get("ok") == 0 and "code" in d,
                        "reply is not an error answering the request: %r" % r)
            c.check(closed, "client not closed within 2 s (%s)" % how)
            conn.close()
            after = stat(a.http, "upstream_protocol_errors")
            c.check((delta(before, after) or 0) >= 1,
                    "upstream_protocol_errors %s -> %s" % (before, after))

    with Case(tap, "ops an upstream cursor that never ends (empty batches forever): the drain is "
                   "cut, the client gets the first batch and the server's cursor [issue 6 item 13]") as c:
        before = stat(a.http, "drains_cut")
        conn = Conn(a.addr, 2.0)
        msg = op_msg({"find": "endless", "filter": {}, "comment": "endless", "$db": "hostile"})
        try:
            r = conn.call(msg, 10.0)
            cur = (r.doc or {}).get("cursor", {})
            c.check(r.ok() and cur.get("id") == 42 and cur.get("firstBatch") == [],
                    "reply %r" % r)
            r = conn.call(op_msg({"getMore": Int64(42), "collection": "endless",
                                  "$db": "hostile"}), 5.0)
            c.check(r.ok() and r.doc["cursor"]["id"] == 42,
                    "the client goes on with the server's cursor: %r" % r)
        except (socket.timeout, Closed) as e:
            c.check(False, "no reply to a find whose cursor never ends: %s" % e)
        conn.close()
        c.check((delta(before, stat(a.http, "drains_cut")) or 0) == 1,
                "drains_cut %s -> %s" % (before, stat(a.http, "drains_cut")))

    with Case(tap, "ops proxy and fake upstream still serve after the faults") as c:
        conn = Conn(a.addr, 3.0)
        c.check(conn.call(ping(), 3.0).ok(), "ping failed")
        conn.close()

    # ---- SIGTERM drain: last, it stops the proxy
    drain_s = a.drain_timeout
    c_reply = Case(tap, "ops SIGTERM: in-flight request gets its full reply")
    c_refused = Case(tap, "ops SIGTERM: new connections refused, healthz draining")
    c_exit = Case(tap, "ops SIGTERM: process exits within drain_timeout")
    try:
        conn = Conn(a.addr, 3.0)
        idle_conn = Conn(a.addr, 3.0)
        slow = faulty_ping("delay", ms=1000, pad="x" * 100000)  # a big reply to relay whole
        conn.send(slow)
        time.sleep(0.2)
        t_term = time.monotonic()
        os.kill(a.pid, signal.SIGTERM)
        time.sleep(0.2)
        try:
            st, body = http_request(a.http, "GET", "/healthz", 1.0)
            c_refused.check(st == 503 and "draining" in body, "healthz %d %s" % (st, body))
        except Exception as e:
            c_refused.check(False, "healthz during drain: %r" % e)
        try:
            n = socket.create_connection(a.addr, timeout=1.0)
            n.settimeout(1.0)
            try:
                n.sendall(ping())
                data = n.recv(100)
                c_refused.check(data == b"", "a new connection got %r" % data[:40])
            except (ConnectionResetError, BrokenPipeError):
                pass
            n.close()
        except ConnectionRefusedError:
            pass
        except Exception as e:
            c_refused.check(False, "new connection: %r" % e)
        try:
            r = conn.recv_msg(drain_s + 1.0)
            c_reply.check(r.ok() and r.response_to == rid_of(slow), "reply %r" % r)
        except Exception as e:
            c_reply.check(False, "no full reply: %r" % e)
        exited = wait_for(lambda: proc_exited(a.pid), drain_s + 1.5)
        took = time.monotonic() - t_term
        c_exit.check(exited, "still running %.1fs after SIGTERM" % took)
        c_exit.check(took <= drain_s + 0.5, "exit took %.2fs, drain_timeout %.1fs" % (took, drain_s))
        conn.close()
        idle_conn.close()
    except Exception as e:
        c_exit.problems.append("exception: %r" % e)
    for c in (c_reply, c_refused, c_exit):
        c.__exit__(None, None, None)
    fake.stop = True
    fake.sock.close()


def group_emfile(a, tap):
    pid = a.pid
    limit = fd_limit(pid)
    conns = []
    with Case(tap, "ops EMFILE: proxy stops accepting at its fd limit (%d)" % limit) as c:
        c.check(0 < limit <= 256, "the proxy's fd limit is %d; run it under ulimit -n 64" % limit)
        # Open connections until the proxy holds `limit` descriptors, then a
        # few more that stay in the listen backlog.
        for _ in range(limit + 20):
            try:
                conns.append(Conn(a.addr, 2.0))
            except OSError as e:
                c.check(False, "connect failed: %r" % e)
                break
            if len(conns) % 8 == 0 and wait_for(lambda: fd_count(pid) >= limit, 0.05, 0.01):
                break
        full = wait_for(lambda: fd_count(pid) >= limit, 2.0)
        c.check(full, "the proxy holds %d fds, limit %d" % (fd_count(pid), limit))
        for _ in range(10):
            conns.append(Conn(a.addr, 2.0))
        time.sleep(0.3)
        c.check(pid_alive(pid), "the proxy died")
    with Case(tap, "ops EMFILE: proxy CPU stays low while descriptors are exhausted") as c:
        hz = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), cpu_ticks(pid)
        time.sleep(2.0)
        t1, c1 = time.monotonic(), cpu_ticks(pid)
        share = (c1 - c0) / hz / (t1 - t0)
        c.check(share < 0.2, "proxy used %.0f%% of a core over %.1fs" % (share * 100, t1 - t0))
    with Case(tap, "ops EMFILE: accepting resumes after clients close, accept_paused rose") as c:
        n_close = max(len(conns) - 10, 0)
        for conn in conns[:n_close]:
            conn.close()
        del conns[:n_close]
        ok = False
        deadline = time.monotonic() + 5.0
        while not ok and time.monotonic() < deadline:
            n = Conn(a.addr, 1.0)
            try:
                ok = n.call(ping(), 1.5).ok()
            except (Closed, OSError):
                ok = False
            if ok:
                conns.append(n)
            else:
                n.close()
                time.sleep(0.1)
        c.check(ok, "no new connection served within 5 s after closing %d" % n_close)
        paused = stat(a.http, "accept_paused")
        c.check(isinstance(paused, int) and paused >= 1, "accept_paused %r" % paused)
    with Case(tap, "ops EMFILE: a pending /stats request does not make the proxy spin") as c:
        # Fill the descriptors again, leave a few clients in the backlog, then
        # one HTTP connection that cannot be accepted either.
        for _ in range(limit + 20):
            if fd_count(pid) >= limit:
                break
            try:
                conns.append(Conn(a.addr, 2.0))
            except OSError:
                break
            time.sleep(0.005)
        full = wait_for(lambda: fd_count(pid) >= limit, 2.0)
        c.check(full, "could not fill the proxy's descriptors again (%d/%d)" % (fd_count(pid), limit))
        for _ in range(5):
            conns.append(Conn(a.addr, 2.0))
        flood_before = count_in_log(a.log, "Error from accept")
        h = socket.create_connection(("127.0.0.1", a.http), timeout=1.0)
        h.sendall(b"GET /stats HTTP/1.0\r\n\r\n")
        hz = os.sysconf("SC_CLK_TCK")
        time.sleep(0.2)
        t0, c0 = time.monotonic(), cpu_ticks(pid)
        time.sleep(1.0)
        t1, c1 = time.monotonic(), cpu_ticks(pid)
        share = (c1 - c0) / hz / (t1 - t0)
        # release the descriptors at once: a spinning proxy floods its log
        for conn in conns:
            conn.close()
        conns = []
        flood = count_in_log(a.log, "Error from accept") - flood_before
        c.check(share < 0.2, "proxy used %.0f%% of a core with an HTTP connection pending; "
                "the log got %d 'Error from accept() call' lines (the HTTP listener has no "
                "accept error callback, so libevent retries accept() at once)" % (share * 100, flood))
        h.close()
        ok = wait_for(lambda: _ping_ok(a.addr), 4.0, 0.2)
        c.check(ok, "not serving after the descriptors were released")
    for conn in conns:
        conn.close()


def _ping_ok(addr):
    try:
        n = Conn(addr, 1.0)
        try:
            return n.call(ping(), 1.0).ok()
        finally:
            n.close()
    except (Closed, OSError):
        return False


GROUPS = {
    "unreachable": group_unreachable,
    "ferret": group_ferret,
    "maxclients": group_maxclients,
    "reload": group_reload,
    "fake": group_fake,
    "emfile": group_emfile,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("group", choices=sorted(GROUPS))
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--unix", default="")
    ap.add_argument("--upstream-label", default="", help="HOST:PORT the proxy forwards to")
    ap.add_argument("--upstream-uri", default="")
    ap.add_argument("--fake-port", type=int, default=0)
    ap.add_argument("--drain-timeout", type=float, default=3.0)
    ap.add_argument("--config", default="")
    ap.add_argument("--log", default="")
    a = ap.parse_args()
    a.addr = parse_addr(a.proxy)
    tap = Tap()
    GROUPS[a.group](a, tap)
    plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
