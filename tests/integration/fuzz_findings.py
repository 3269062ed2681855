#!/usr/bin/env python3
"""tests/integration/fuzz_findings.py: what the fuzz targets found (tests/fuzz),
checked end to end: the same raw message is sent through the proxy and straight
to the server, and the proxy's answer must be the server's.

    fuzz_findings.py --proxy HOST:PORT --direct HOST:PORT

Prints unnumbered TAP lines ("ok - ...", "not ok - ...", "# ..."), then its plan (mctest.py).
Stdlib plus pymongo's bson (the test venv).
"""
import argparse
import os
import struct
import sys

import bson
from pymongo import MongoClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import tap  # noqa: E402


def command(where, fields, request_id=7):
    """Sends one OP_MSG whose body has fields ((key, raw element bytes) or values) and
    returns the reply body, decoded."""
    elements = b""
    for key, value in fields:
        if isinstance(value, bytes):
            elements += value
        else:
            elements += bson.encode({key: value})[4:-1]
    body = struct.pack("<i", len(elements) + 5) + elements + b"\0"
    conn = mctest.Conn(where, 10, decoder=bson.decode)
    try:
        return conn.call(mctest.op_msg(body, request_id=request_id), 10).doc
    except mctest.Closed:
        return None
    finally:
        conn.close()


def raw_utf8(key, value):
    """A string element written by hand, so that the value may hold a NUL."""
    v = value.encode()
    return b"\x02" + key.encode() + b"\0" + struct.pack("<i", len(v) + 1) + v + b"\0"


def db_with_nul(proxy, direct, proxy_uri):
    """fuzz_client_msg, regress-db-with-nul: {find: c, $db: "app\\0x"} had the key
    of $db "app" and was answered from app's cache; the server refuses the name."""
    client = MongoClient(proxy_uri, directConnection=True)
    coll = client.fuzzdb.items
    coll.drop()
    coll.insert_one({"_id": 1, "v": "cached"})
    warm = [list(coll.find({})) for _ in range(2)]
    tap(warm[0] == warm[1] == [{"_id": 1, "v": "cached"}], "db-with-nul: warm the cache")
    for db in ("fuzzdb\0x", "fuzzdb\0"):
        fields = [("find", "items"), ("filter", {}), ("$db", raw_utf8("$db", db))]
        via_proxy = command(proxy, fields)
        via_server = command(direct, fields)
        same = (via_proxy is not None and via_server is not None and
                via_proxy.get("ok") == via_server.get("ok") and
                via_proxy.get("code") == via_server.get("code") and
                via_proxy.get("cursor") == via_server.get("cursor"))
        tap(same, "db-with-nul: %r answered as the server answers" % db,
               "proxy:  %r" % via_proxy, "server: %r" % via_server)
    client.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--direct", required=True)
    args = ap.parse_args()
    proxy, direct = mctest.parse_addr(args.proxy), mctest.parse_addr(args.direct)
    db_with_nul(proxy, direct, "mongodb://%s:%d/" % proxy)
    mctest.plan()


if __name__ == "__main__":
    main()
