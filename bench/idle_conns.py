#!/usr/bin/env python3
"""bench/idle_conns.py: RSS per idle client connection after a driver's
handshake, for bench/run.sh (BENCH W3, issue 9's "<= 2 KB per idle
connection").

    idle_conns.py --port P --pid PID [-n 10000] [--hold-seconds 60]

Opens one connection and shakes hands (so that the first connection's
one-off allocations are not counted), reads PID's VmRSS, then opens N more
connections, each sending the handshake a driver sends (legacy OP_QUERY
isMaster on admin.$cmd with helloOk, client metadata and compression, as
the Node and Python drivers do) and reading its reply. When all are open it
waits for PID's RSS to settle, prints one JSON line

    {"idle_connections": N, "failed": F, "rss_before": B, "rss_after": A,
     "bytes_per_connection": (A - B) / N}

and holds the connections open (idle) until --hold-seconds pass or it is
killed, so that a latency run can be measured beside them. The RSS is the
proxy's whole RSS, so its upstream connection per client (if it opens one)
is counted too: that is what a client costs. Standard library only.
"""
import argparse
import json
import os
import socket
import struct
import sys
import time


def bson_doc(items):
    """A BSON document from (name, value) pairs: str, int (int32), bool, list of str, dict."""
    out = b""
    for k, v in items:
        key = k.encode() + b"\0"
        if isinstance(v, bool):
            out += b"\x08" + key + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            out += b"\x10" + key + struct.pack("<i", v)
        elif isinstance(v, str):
            s = v.encode() + b"\0"
            out += b"\x02" + key + struct.pack("<i", len(s)) + s
        elif isinstance(v, list):
            out += b"\x04" + key + bson_doc([(str(i), x) for i, x in enumerate(v)])
        elif isinstance(v, dict):
            out += b"\x03" + key + bson_doc(list(v.items()))
        else:
            raise TypeError(type(v))
    return struct.pack("<i", len(out) + 5) + out + b"\0"


def handshake(request_id):
    doc = bson_doc([
        ("isMaster", 1),
        ("helloOk", True),
        ("client", {
            "driver": {"name": "nodejs|Mongoose", "version": "6.20.0|8.24.10"},
            "platform": "Node.js v20.20.2, LE",
            "os": {"name": "linux", "architecture": "x64", "version": "6.1.0", "type": "Linux"},
        }),
        ("compression", ["none"]),
    ])
    body = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + doc
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2004) + body


def read_reply(s):
    hdr = b""
    while len(hdr) < 16:
        chunk = s.recv(16 - len(hdr))
        if not chunk:
            raise ConnectionError("closed")
        hdr += chunk
    (length,) = struct.unpack("<i", hdr[:4])
    left = length - 16
    while left > 0:
        chunk = s.recv(min(left, 65536))
        if not chunk:
            raise ConnectionError("closed")
        left -= len(chunk)


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settle(pid, seconds=3.0):
    """RSS once it stops moving (two equal reads 0.2 s apart), at most `seconds`."""
    last = rss(pid)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.2)
        now = rss(pid)
        if now == last:
            return now
        last = now
    return last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the proxy's process id (its RSS is read)")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--hold-seconds", type=float, default=60)
    a = ap.parse_args()

    def connect(i):
        s = socket.create_connection((a.host, a.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(handshake(i + 1))
        read_reply(s)
        return s

    first = connect(0)
    before = settle(a.pid)
    socks, failed = [first], 0
    for i in range(a.n):
        try:
            socks.append(connect(i + 1))
        except OSError as e:
            failed += 1
            if failed == 1:
                print("idle_conns.py: connection %d: %s" % (i, e), file=sys.stderr)
            if failed > 100:
                break
    after = settle(a.pid)
    n = len(socks) - 1
    print(json.dumps({"idle_connections": n, "failed": failed, "rss_before": before,
                      "rss_after": after,
                      "bytes_per_connection": round((after - before) / n, 1) if n else None}),
          flush=True)
    end = time.monotonic() + a.hold_seconds
    while time.monotonic() < end:
        time.sleep(0.2)
    for s in socks:
        s.close()
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
