#!/usr/bin/env python3
"""tests/integration/request_life.py: a request held for the cache never takes
an upstream reply (proxy/request.c: a WAITING_CACHE request was not sent).

A fake upstream (a thread here, raw sockets) answers pings at once and holds
client A's find, so that client B's identical find waits for it (coalescing:
the message is held, B's connection reads no further). The fake upstream
then sends, on B's upstream connection, a reply naming B's held find, which
it never received. The proxy must treat that as the upstream's protocol
error (close B, count it), never relay it to B nor abort; A's read, released
afterwards, is answered. Then (admin_pipelined) in-band admin commands
pipelined behind a find the upstream holds are bounded by buffer_limit and
answered in order, (error_in_order) an upstream protocol error answers
the request in flight before the hit ready behind it, which gets nothing,
and (checksum_drain) a drained result's checksummed getMore reply is
drained, not relayed.
The proxy exits 0 on SIGTERM.

Usage (the wrapper test_request_life.sh runs it):
    request_life.py --bin MONGOCACHE --log PROXY_LOG --port PORT --http HTTP_PORT

Prints unnumbered TAP lines ("ok - ..." / "not ok - ...") and its plan
last; the wrapper numbers them (mc_relay in lib.sh). Python 3 stdlib only
(wire helpers from mctest.py).
"""
import argparse
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctest import (  # noqa: E402
    OP_MSG, OP_QUERY, OP_REPLY, Closed, Conn, FakeServer, counters, crc32c, decode, encode,
    op_msg, ping, plan, read_message, stop_process, tap)

FIND = {"find": "c", "filter": {}, "$db": "mcl"}


def out(ok, name, diag=None):
    tap(ok, name, *([] if diag is None else [diag]))


def hello_reply(response_to, opcode):
    """A standalone's hello, as an OP_REPLY to an OP_QUERY or an OP_MSG."""
    doc = {"ismaster": True, "maxWireVersion": 17, "minWireVersion": 0, "ok": 1.0}
    if opcode != OP_QUERY:
        return reply(response_to, doc)
    payload = struct.pack("<iqii", 0, 0, 0, 1) + encode(doc)
    return struct.pack("<iiii", 16 + len(payload), 9000, response_to, OP_REPLY) + payload


def reply(response_to, doc, checksum=False):
    payload = struct.pack("<I", 1 if checksum else 0) + b"\x00" + encode(doc)
    length = 16 + len(payload) + (4 if checksum else 0)
    msg = struct.pack("<iiii", length, 9000 + response_to, response_to, OP_MSG) + payload
    return msg + struct.pack("<I", crc32c(msg)) if checksum else msg


def client_messages(s):
    """The OP_MSG requests read from s, as (requestID, body), until it closes.
    mongocache's topology monitor (proxy/topology.h), whose handshake is an
    OP_QUERY isMaster, gets a standalone's hello to every message here and
    yields nothing."""
    monitor = False
    while True:
        m = read_message(s)
        if m is None:
            return
        rid, _, opcode = struct.unpack_from("<iii", m, 4)
        if monitor or opcode == OP_QUERY:
            monitor = True
            s.sendall(hello_reply(rid, opcode))
            continue
        yield rid, decode(m, 21)


class FakeUpstream(FakeServer):
    """Connection 1 (A): its find is held until release. Connection 2 (B): a
    ping is answered, then a reply naming the ping's requestID + 1 follows
    (B's held find, never sent here). The proxy's topology monitor connects
    too: its connections (an OP_QUERY handshake first) get hello replies and
    are not numbered."""

    def __init__(self):
        self.release = threading.Event()
        self.hostile_sent = threading.Event()
        self.find_seen = threading.Event()
        self.slow_seen = threading.Event()
        self.slow_release = threading.Event()
        self.n = 0
        self.lock = threading.Lock()
        self.start()

    def serve(self, s):
        n = None  # the client connections (A, B) are numbered by their first OP_MSG
        try:
            for rid, body in client_messages(s):
                if n is None:
                    with self.lock:
                        self.n += 1
                        n = self.n
                if body.get("find") == "ck":
                    # a result of two batches: the proxy drains it (getMore below)
                    s.sendall(reply(rid, {"cursor": {"firstBatch": [{"_id": 1}], "id": 77,
                                                     "ns": "mcl.ck"}, "ok": 1.0}))
                elif body.get("getMore") == 77:
                    s.sendall(reply(rid, {"cursor": {"nextBatch": [{"_id": 2}], "id": 0,
                                                     "ns": "mcl.ck"}, "ok": 1.0}, checksum=True))
                elif body.get("find") == "bad":
                    time.sleep(0.3)  # the find behind it is answered (a hit) meanwhile
                    s.sendall(reply(rid + 77, {"ok": 1.0}))  # names no request: invalid
                elif body.get("find") == "slow":
                    self.slow_seen.set()
                    self.slow_release.wait(10)
                    s.sendall(reply(rid, {"cursor": {"firstBatch": [], "id": 0, "ns": "mcl.slow"},
                                          "ok": 1.0}))
                elif "find" in body:
                    self.find_seen.set()
                    self.release.wait(10)
                    s.sendall(reply(rid, {"cursor": {"firstBatch": [{"_id": 1}], "id": 0,
                                                     "ns": "mcl.c"}, "ok": 1.0}))
                else:
                    s.sendall(reply(rid, {"ok": 1.0}))
                    if n == 2 and "ping" in body:
                        time.sleep(0.5)  # B's find is held by now
                        s.sendall(reply(rid + 1, {"ok": 1.0, "hostile": True}))
                        self.hostile_sent.set()
        except OSError:
            return


def admin_pipelined(up, http, port):
    """In-band admin commands pipelined behind a request the upstream holds
    are answered by the proxy but wait for their turn: they are bounded like
    relayed requests (buffer_limit, 64 KiB here), so the proxy stops reading
    the client instead of holding every answer."""
    n = 300
    C = Conn(("127.0.0.1", port), 5.0)
    try:
        C.send(op_msg({"find": "slow", "filter": {}, "$db": "mcl"}, request_id=300))
        up.slow_seen.wait(3)
        r0 = counters(http)["requests"]
        C.send(b"".join(op_msg({"mongocacheStats": 1, "$db": "admin"}, request_id=301 + i)
                        for i in range(n)))
        time.sleep(0.5)
        taken = counters(http)["requests"] - r0
        out(0 < taken < n // 2,
            "%d mongocacheStats pipelined behind a held find: the proxy stops reading at "
            "buffer_limit instead of answering all and holding the answers" % n,
            "%d taken while the find was held" % taken)
        up.slow_release.set()
        got = [C.recv_msg(5.0) for _ in range(n + 1)]
        order = [x.response_to for x in got]
        out(order == list(range(300, 301 + n)) and all(x.ok() for x in got),
            "... once the find is answered, every one is answered, in request order",
            "%s ... %s" % (order[:3], order[-3:]))
    except (socket.timeout, Closed, OSError) as e:
        out(False, "in-band admin commands pipelined behind a held find", e)
    finally:
        up.slow_release.set()
        C.close()


def error_in_order(http, port):
    """An upstream protocol error answers the client's requests in order: a
    find the upstream answers wrongly, then a hit ready behind it: the find's
    error comes first, nothing after it, and the connection closes."""
    D = Conn(("127.0.0.1", port), 3.0)
    try:
        h0 = counters(http)["requests"]
        D.send(op_msg({"find": "bad", "filter": {}, "$db": "mcl"}, request_id=400) +
               op_msg(FIND, request_id=401))
        closed, replies, how, _ = D.wait_closed(3.0)
        order = [x.response_to for x in replies]
        out(closed and order == [400] and not replies[0].ok() and
            counters(http)["requests"] - h0 == 2,
            "an upstream protocol error: the request in flight gets its error first, the "
            "one behind it nothing, and the client is closed",
            "closed=%s how=%s replies=%s"
            % (closed, how, [(x.response_to, x.doc) for x in replies]))
    finally:
        D.close()


def checksum_drain(port):
    """Found in review: a result the proxy drains whose getMore reply carries a
    checksum (checksumPresent, its CRC-32C right) is drained like any other:
    the client gets the whole result in one reply naming its request, never
    the raw reply to the proxy's own getMore."""
    E = Conn(("127.0.0.1", port), 3.0)
    try:
        r = E.call(op_msg({"find": "ck", "filter": {}, "$db": "mcl"}, request_id=500), 3.0)
        batch = (r.doc or {}).get("cursor", {}).get("firstBatch")
        out(r.response_to == 500 and r.ok() and batch == [{"_id": 1}, {"_id": 2}],
            "a drain whose getMore reply is checksummed: the whole result, naming the "
            "client's request", r)
    except (socket.timeout, Closed, OSError) as e:
        out(False, "a drain whose getMore reply is checksummed", e)
    finally:
        E.close()


def arguments(*ports):
    """The command line of a script that runs its own proxy: --bin, --log, --port,
    --http, and each of ports (more port numbers, "--redis-port")."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--log", required=True)
    for name in ("--port", "--http") + ports:
        ap.add_argument(name, type=int, required=True)
    return ap.parse_args()


def main():
    a = arguments()
    up = FakeUpstream()
    port, http = a.port, a.http
    log = open(a.log, "w")
    proxy = subprocess.Popen([a.bin, "--listen", "127.0.0.1:%d" % port, "--upstream",
                              "mongodb://127.0.0.1:%d" % up.port, "--http-listen",
                              "127.0.0.1:%d" % http, "--log-level", "debug",
                              "--cache-coalesce-wait", "5s", "--advice", "false",
                              "--admin-commands", "true", "--buffer-limit", "64KiB"],
                             stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proxy.poll() is not None:
                    out(False, "the proxy started")
                    return
                time.sleep(0.05)
        c0 = counters(http)
        A = Conn(("127.0.0.1", port), 3.0)
        A.send(op_msg(FIND, request_id=100))
        up.find_seen.wait(3)
        B = Conn(("127.0.0.1", port), 3.0)
        r = B.call(ping("admin", request_id=200))
        out(r.response_to == 200 and r.ok(), "B's ping is answered", r)
        B.send(op_msg(FIND, request_id=201))  # waits for A's identical find
        up.hostile_sent.wait(3)
        closed, replies, how, _ = B.wait_closed(3.0)
        named = [x for x in replies if x.response_to == 201]
        out(closed and not named,
            "a reply naming B's held find (never sent upstream) is the upstream's error: "
            "B is closed, nothing relayed to it",
            "closed=%s how=%s replies=%s" % (closed, how, replies))
        out(proxy.poll() is None, "the proxy is alive after the hostile reply",
            "exit status %s" % proxy.poll())
        up.release.set()
        try:
            r = A.recv_msg(3.0)
            out(r.response_to == 100 and r.ok() and r.doc["cursor"]["firstBatch"] == [{"_id": 1}],
                "A's find, released afterwards, is answered", r)
        except (socket.timeout, Closed) as e:
            out(False, "A's find, released afterwards, is answered", e)
        try:
            d = counters(http)["upstream_protocol_errors"] - c0["upstream_protocol_errors"]
            out(d == 1, "counters.upstream_protocol_errors +1", "+%d" % d)
        except OSError as e:
            out(False, "counters.upstream_protocol_errors +1", "no /stats: %s" % e)
        A.close()
        admin_pipelined(up, http, port)
        error_in_order(http, port)
        checksum_drain(port)
    finally:
        st = stop_process(proxy)
        out(st == 0, "the proxy exits 0 on SIGTERM", "status %s" % st)
        plan()


if __name__ == "__main__":
    main()
