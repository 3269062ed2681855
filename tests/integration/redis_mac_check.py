#!/usr/bin/env python3
"""tests/integration/redis_mac_check.py: values in Redis are authentic (issue
6, item 5), against a real redis-server.

Driven by test_redis_mac.sh, which starts FerretDB, redis-server and one proxy
with the Redis tier only (--cache-memory 0: every hit is read from Redis):
    redis_mac_check.py --proxy PORT --http PORT --direct PORT --redis-port PORT
                       --prefix PREFIX --secret SECRET
It fills one value through the proxy, then tampers with it in Redis the way
an attacker with access to Redis would, and checks that the proxy answers
exactly what FerretDB answers, counting the refusal:
  - one bit flipped inside the stored reply (the value stays well formed:
    without a MAC the proxy served the altered document);
  - a forged error reply planted with redis-cli in place of the value (same
    generations, epoch and key material: well formed, only its MAC is wrong);
  - the value as the previous version wrote it ("MCV2", sealed with its
    HMAC-SHA-256 under the same secret, valid for that version): refused for
    its version (redis_corrupt), not as a forgery, and never served.
Prints unnumbered TAP lines, then its plan (mctest.py); the wrapper numbers them.
"""
import argparse
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import sys
import time

import bson
import pymongo
from pymongo.errors import PyMongoError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctest import OP_MSG, Tap, frame, plan, redis_counter, section_body, stats  # noqa: E402

DB = "mcmac"


class Redis:
    """Just enough RESP to read keys and values (binary-safe)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError("bad reply %r" % line)

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._reply()


def split_value(v):
    """A stored value (MCV1 to MCV4) as (everything before the reply's length, reply, rest).
    MCV4 has the expiry (u64) after the epoch."""
    at = 20 if v[:4] == b"MCV4" else 12
    pos = at + 4
    (n,) = struct.unpack_from("<I", v, at)
    for _ in range(n):
        (nl,) = struct.unpack_from("<I", v, pos)
        pos += 4 + nl + 8
    (ml,) = struct.unpack_from("<I", v, pos)
    pos += 4 + ml
    (rl,) = struct.unpack_from("<I", v, pos)
    return v[:pos], v[pos + 4:pos + 4 + rl], v[pos + 4 + rl:]


def previous_version(value, key, secret):
    """value (MCV4) as the MCV2 version stored it: its layout (no expiry after the
    epoch), and HMAC-SHA-256 (32 bytes) over u32 len(key) || key || the rest, under
    the key it derived from the secret with its label."""
    body = b"MCV2" + value[4:12] + value[20:-16]
    mac_key = hmac.new(secret.encode(), b"mongocache value MAC v2", hashlib.sha256).digest()
    tag = hmac.new(mac_key, struct.pack("<I", len(key)) + key + body, hashlib.sha256).digest()
    return body + tag


def reply_msg(doc):
    """An OP_MSG reply (request id 1, responseTo 2) holding doc."""
    return frame(struct.pack("<I", 0) + section_body(bson.encode(doc)), OP_MSG, 1, 2)


def read(client, q):
    try:
        return list(client[DB].c.find(q))
    except PyMongoError as e:
        return "error: %s" % e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", type=int, required=True)
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--direct", type=int, required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--prefix", default="mongocache:")
    ap.add_argument("--secret", required=True)
    args = ap.parse_args()
    t = Tap()

    direct = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % args.direct, directConnection=True)
    proxy = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % args.proxy, directConnection=True,
                                serverSelectionTimeoutMS=5000)
    r = Redis(args.redis_port)
    direct[DB].c.drop()
    direct[DB].c.insert_many([{"_id": i, "v": i * 10} for i in range(10)])
    q = {"_id": 3}
    want = list(direct[DB].c.find(q))

    # the tier connected
    for _ in range(100):
        if stats(args.http).get("cache", {}).get("redis", {}).get("state") == "connected":
            break
        time.sleep(0.1)

    # 1: miss, fill, then a Redis hit
    hits0 = redis_counter(args.http, "redis_hits") or 0
    first = read(proxy, q)
    key = None
    for _ in range(50):
        keys = r.call("KEYS", args.prefix + "v:*")
        if keys:
            key = keys[0]
            break
        time.sleep(0.05)
    second = read(proxy, q)
    hits1 = redis_counter(args.http, "redis_hits") or 0
    t.ok(first == want and second == want and key is not None and hits1 == hits0 + 1,
         "a read is filled into Redis, and the next one is a Redis hit",
         "first %s second %s want %s key %s hits %s -> %s" % (first, second, want, key, hits0,
                                                              hits1))
    if key is None:
        print("# no value in Redis: nothing to tamper with", flush=True)
        return 1
    value = r.call("GET", key)
    print("# value %s: %d bytes, version %r" % (key.decode(), len(value), value[:4]), flush=True)

    # 2: one bit flipped inside the stored reply: v 30 -> 31, still a valid document
    refused0 = redis_counter(args.http, "redis_values_refused_mac") or 0
    needle = b"\x10v\x00" + struct.pack("<i", 30)
    at = value.find(needle)
    if not t.ok(at > 0, "the stored reply holds {v: 30}"):
        return 1
    flipped = bytearray(value)
    flipped[at + 3] ^= 0x01
    r.call("SET", key, bytes(flipped), "KEEPTTL")
    got = read(proxy, q)
    refused1 = redis_counter(args.http, "redis_values_refused_mac")
    t.ok(got == want, "a bit flipped in the stored reply is not served: the answer is FerretDB's",
         "got %s, want %s" % (got, want))
    t.ok(refused1 == refused0 + 1, "the refusal is counted (redis_values_refused_mac %s -> %s)" %
         (refused0, refused1))

    # 3: the proxy refilled the value; it is a Redis hit again
    def refilled():
        v = r.call("GET", key)
        return v if v and v != bytes(flipped) and needle in v else None
    for _ in range(50):
        if refilled():
            break
        time.sleep(0.05)
    value = refilled()
    hits2 = redis_counter(args.http, "redis_hits") or 0
    got = read(proxy, q)
    hits3 = redis_counter(args.http, "redis_hits") or 0
    t.ok(value is not None and got == want and hits3 == hits2 + 1,
         "the proxy stored the value again, and serves it from Redis",
         "hits %s -> %s, got %s" % (hits2, hits3, got))

    # 4: a forged error reply planted with redis-cli: generations, epoch, material kept
    head, reply, tail = split_value(value if value is not None else r.call("GET", key))
    fake = reply_msg({"ok": 0.0, "errmsg": "forged by whoever can write to Redis", "code": 13})
    forged = head + struct.pack("<I", len(fake)) + fake + tail
    cli = subprocess.run(["redis-cli", "-p", str(args.redis_port), "-x", "SET", key.decode()],
                         input=forged, capture_output=True, timeout=10)
    t.ok(cli.returncode == 0 and b"OK" in cli.stdout,
         "a forged error reply planted with redis-cli under the proxy's prefix",
         "redis-cli: %s %s" % (cli.stdout, cli.stderr))
    refused2 = redis_counter(args.http, "redis_values_refused_mac") or 0
    got = read(proxy, q)
    refused3 = redis_counter(args.http, "redis_values_refused_mac")
    t.ok(got == want, "the forged reply is not served: the answer is FerretDB's",
         "got %s, want %s" % (got, want))
    t.ok(refused3 == refused2 + 1, "the refusal is counted (redis_values_refused_mac %s -> %s)" %
         (refused2, refused3))

    # 5: the value as the previous version wrote it, valid for that version
    for _ in range(50):
        if refilled():
            break
        time.sleep(0.05)
    value = refilled()
    old = previous_version(value, key, args.secret) if value else None
    t.ok(value is not None and value[:4] == b"MCV4" and r.call("SET", key, old, "KEEPTTL") == "OK",
         "the value, re-sealed as the previous version (MCV2, HMAC-SHA-256), planted",
         "value %r" % (value[:4] if value else None))
    corrupt0 = redis_counter(args.http, "redis_corrupt") or 0
    refused4 = redis_counter(args.http, "redis_values_refused_mac") or 0
    hits4 = redis_counter(args.http, "redis_hits") or 0
    got = read(proxy, q)
    corrupt1 = redis_counter(args.http, "redis_corrupt") or 0
    refused5 = redis_counter(args.http, "redis_values_refused_mac") or 0
    hits5 = redis_counter(args.http, "redis_hits") or 0
    t.ok(got == want and hits5 == hits4,
         "a previous version's value is a miss: the answer is FerretDB's",
         "got %s, want %s, hits %s -> %s" % (got, want, hits4, hits5))
    t.ok(corrupt1 == corrupt0 + 1 and refused5 == refused4,
         "refused for its version, counted as redis_corrupt (%s -> %s), not by the MAC (%s -> %s)"
         % (corrupt0, corrupt1, refused4, refused5))

    proxy.close()
    direct.close()
    plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
