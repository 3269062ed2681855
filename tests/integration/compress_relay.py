#!/usr/bin/env python3
"""tests/integration/compress_relay.py: a relay that speaks wire compression in front of a
server that does not (FerretDB v1.24 neither negotiates nor accepts OP_COMPRESSED), so that
mongocache's compressed link to its upstream can be tested (test_compression.sh).

    compress_relay.py --listen PORT --upstream PORT --offer zstd,zlib,snappy --counts FILE

What it does, per connection, one request and one reply at a time:
- a hello (hello, isMaster, ismaster; OP_MSG or OP_QUERY) listing compressors is answered
  with the server's reply plus `compression`: the listed ones it offers, in the client's
  order (as mongod does);
- an OP_COMPRESSED request is decompressed (zlib, zstd, snappy, noop) and sent on plain;
  its reply is compressed back with the same compressor (as mongod does); a plain request
  gets a plain reply;
- counts, written to FILE (JSON) after every message: requests and replies compressed per
  compressor (in_<name>, out_<name>), plain requests (plain), compressed requests of a
  command that must never be compressed (violations: OP_COMPRESSED.md "Messages not
  allowed to be compressed"), and undecodable messages (errors; the connection closes).

A test tool only: it trusts lengths and serves one test at a time.
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import zlib

import bson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctest import read_message  # noqa: E402

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd
import snappy

OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013
NAMES = {0: "noop", 1: "snappy", 2: "zlib", 3: "zstd"}
IDS = {v: k for k, v in NAMES.items()}
NEVER = {"hello", "ismaster", "saslstart", "saslcontinue", "getnonce", "authenticate",
         "createuser", "updateuser", "copydbsaslstart", "copydbgetnonce", "copydb"}

lock = threading.Lock()
counts = {"plain": 0, "violations": 0, "errors": 0}
for n in NAMES.values():
    counts["in_" + n] = 0
    counts["out_" + n] = 0


def bump(key, path):
    with lock:
        counts[key] += 1
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(counts, f)
        os.replace(tmp, path)


def decompress(cid, data, size):
    if cid == 0:
        out = bytes(data)
    elif cid == 1:
        out = snappy.uncompress(bytes(data))
    elif cid == 2:
        out = zlib.decompress(data)
    elif cid == 3:
        out = zstd.decompress(data)
    else:
        raise ValueError("compressor %d" % cid)
    if len(out) != size:
        raise ValueError("uncompressedSize %d, got %d" % (size, len(out)))
    return out


def compress(cid, data):
    return {0: bytes, 1: snappy.compress, 2: zlib.compress, 3: zstd.compress}[cid](data)


def command_of(msg):
    """(first key of the command, its document) of an OP_MSG or OP_QUERY, or (None, None)."""
    opcode = struct.unpack_from("<i", msg, 12)[0]
    try:
        if opcode == OP_MSG and msg[20] == 0:
            n = struct.unpack_from("<i", msg, 21)[0]
            doc = bson.decode(msg[21:21 + n])
        elif opcode == OP_QUERY:
            end = msg.index(b"\0", 20)
            pos = end + 1 + 8
            n = struct.unpack_from("<i", msg, pos)[0]
            doc = bson.decode(msg[pos:pos + n])
        else:
            return None, None
    except Exception:
        return None, None
    return (next(iter(doc)) if doc else None), doc


def with_compression(reply, offer):
    """The reply with `compression: offer` added to its document (OP_MSG or OP_REPLY)."""
    length, rid, to, opcode = struct.unpack_from("<iiii", reply)
    if opcode == OP_MSG:
        flags = struct.unpack_from("<I", reply, 16)[0]
        n = struct.unpack_from("<i", reply, 21)[0]
        doc = bson.decode(reply[21:21 + n])
        doc["compression"] = offer
        payload = struct.pack("<I", flags & ~1) + b"\0" + bson.encode(doc) + reply[21 + n:]
    else:
        n = struct.unpack_from("<i", reply, 36)[0]
        doc = bson.decode(reply[36:36 + n])
        doc["compression"] = offer
        payload = reply[16:36] + bson.encode(doc) + reply[36 + n:]
    return struct.pack("<iiii", 16 + len(payload), rid, to, opcode) + payload


def serve(client, args, offered):
    up = socket.create_connection(("127.0.0.1", args.upstream))
    try:
        while True:
            msg = read_message(client)
            if msg is None:
                return
            length, rid, to, opcode = struct.unpack_from("<iiii", msg)
            cid = None
            if opcode == OP_COMPRESSED:
                original, size, cid = struct.unpack_from("<iiB", msg, 16)
                try:
                    body = decompress(cid, msg[25:], size)
                except Exception as e:
                    print("compress_relay: %s" % e, file=sys.stderr, flush=True)
                    bump("errors", args.counts)
                    return
                msg = struct.pack("<iiii", 16 + len(body), rid, to, original) + body
                bump("in_" + NAMES[cid], args.counts)
            name, doc = command_of(msg)
            if cid is not None and name and name.lower() in NEVER:
                bump("violations", args.counts)
            if cid is None:
                bump("plain", args.counts)
            up.sendall(msg)
            reply = read_message(up)
            if reply is None:
                return
            if name and name.lower() in ("hello", "ismaster") and \
                    isinstance(doc.get("compression"), list):
                offer = [n for n in doc["compression"] if n in offered]
                if offer:
                    reply = with_compression(reply, offer)
            if cid is not None:
                rlen, rrid, rto, rop = struct.unpack_from("<iiii", reply)
                packed = compress(cid, reply[16:])
                reply = struct.pack("<iiii", 16 + 9 + len(packed), rrid, rto, OP_COMPRESSED) + \
                    struct.pack("<iiB", rop, len(reply) - 16, cid) + packed
                bump("out_" + NAMES[cid], args.counts)
            client.sendall(reply)
    except OSError:
        return
    finally:
        client.close()
        up.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", type=int, required=True)
    p.add_argument("--offer", default="zstd,zlib,snappy")
    p.add_argument("--counts", required=True)
    args = p.parse_args()
    offered = [n for n in args.offer.split(",") if n in IDS]
    with open(args.counts, "w") as f:
        json.dump(counts, f)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.listen))
    ls.listen(64)
    while True:
        client, _ = ls.accept()
        threading.Thread(target=serve, args=(client, args, offered), daemon=True).start()


if __name__ == "__main__":
    main()
