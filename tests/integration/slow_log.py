"""tests/integration/slow_log.py: the parts of test_slow_log.sh (see there).

  relay LISTEN_PORT UPSTREAM_PORT DELAY_S MARKER
      A TCP relay in front of FerretDB: a client message holding MARKER is
      held DELAY_S seconds before it goes on, so a request is exactly as
      slow as the test wants and every other one is as fast as FerretDB.
      Prints "held" as it starts holding one.
  client PHASE URI PORT RELAY_LOG
      The workload of one phase (see PHASES), hostile values included;
      RELAY_LOG is the relay's output, read to know a request is held.
  check LOG ADVICE_OFF_LOG
      Reads the proxy logs back with real parsers (logfmtkv, strict:
      go-logfmt's rules; json) and prints unnumbered TAP lines, then its plan
      (mctest.py).
"""

import asyncio
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import Tap  # noqa: E402

MARKER = "SLOWMARK"
SECRETS = ["s3cr3t-VALUE-42", "s3cr3t-VALUE-43", "s3cr3t-VALUE-44", "s3cr3t-VALUE-45",
           "s3cr3t-VALUE-46", "y3ar-VALUE-1", "x-VALUE-bogus"]
HOSTILE_APP = 'app "q" back\\slash\n2026-01-01T00:00:00.000Z level=error event=forged \x01\x1b[31m \u2028 caf\u00e9'
DB = "slowlog"


# ---- the relay -------------------------------------------------------------------------

async def pump_client(reader, writer, marker, delay):
    """Client to upstream, one whole message at a time, holding those with the marker."""
    try:
        while True:
            head = await reader.readexactly(4)
            (n,) = struct.unpack("<i", head)
            rest = await reader.readexactly(n - 4)
            if marker in rest:
                print("held", flush=True)  # the workload waits for this line (held_count)
                await asyncio.sleep(delay)
            writer.write(head + rest)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


pump_raw = mctest.pipe  # upstream to client, as it comes


def relay(listen_port, upstream_port, delay, marker):
    async def handle(cr, cw):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump_client(cr, uw, marker, delay), pump_raw(ur, cw))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---- the workload --------------------------------------------------------------------------

def raw_op_msg(port, doc_bytes):
    """Sends one OP_MSG whose body is doc_bytes (hand-built BSON) and reads the reply header."""
    msg = mctest.op_msg(doc_bytes, request_id=99)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(msg)
        s.recv(16)
    except OSError:
        pass
    s.close()


def bson_doc(elements):
    """A BSON document from (type byte, key bytes, value bytes) without any checking."""
    body = b"".join(bytes([t]) + k + b"\x00" + v for t, k, v in elements)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def bson_str(b):
    return struct.pack("<i", len(b) + 1) + b + b"\x00"


def hostile_raw(port):
    """A $db with a newline and bytes that are not UTF-8; a saslStart naming a hostile user."""
    raw_op_msg(port, bson_doc([(0x02, b"find", bson_str(b"c")),
                               (0x02, b"$db", bson_str(b"d\xff\xfe\n2026-01-01T00:00:00.000Z level=error event=forged_db"))]))
    payload = b'n,,n=ev"il\\user\n\x01\xff,r=abcdefghijklmnop'
    raw_op_msg(port, bson_doc([(0x10, b"saslStart", struct.pack("<i", 1)),
                               (0x02, b"mechanism", bson_str(b"SCRAM-SHA-256")),
                               (0x05, b"payload", struct.pack("<i", len(payload)) + b"\x00" + payload),
                               (0x02, b"$db", bson_str(b"admin"))]))


def held_count(relay_log):
    """How many marked messages the relay has held so far (its "held" lines)."""
    with open(relay_log) as f:
        return sum(1 for line in f if line == "held\n")


def client(phase, uri, port, relay_log):
    import pymongo

    c = pymongo.MongoClient(uri, appname=HOSTILE_APP, directConnection=True,
                            serverSelectionTimeoutMS=10000)
    coll = c[DB]["books"]
    if phase == "logfmt":
        coll.drop()
        coll.insert_many([{"author": "a%d" % i, "year": "y%d" % i} for i in range(20)])
        # fast: none of these is slow
        for i in range(10):
            list(coll.find({"author": "a%d" % (i % 3)}))
        coll.update_one({"author": "a1"}, {"$set": {"year": "y"}})
        hostile_raw(port)
        # slow miss
        list(coll.find({"author": SECRETS[0], "year": {"$gte": SECRETS[5]}}, comment=MARKER))
        # slow miss and, coalesced behind it, a slow hit
        out = {}

        def leader():
            out["a"] = list(coll.find({"author": SECRETS[1], "year": {"$gte": SECRETS[5]}},
                                      comment=MARKER))
        held = held_count(relay_log)
        t = threading.Thread(target=leader)
        t.start()
        # the leader's find is held upstream (by the relay, for 1 s) before the
        # second is sent: the second then waits behind it, whatever the load
        t0 = time.monotonic()
        while held_count(relay_log) <= held and time.monotonic() - t0 < 10:
            time.sleep(0.01)
        out["b"] = list(coll.find({"author": SECRETS[1], "year": {"$gte": SECRETS[5]}},
                                  comment=MARKER))
        t.join()
        # slow error (FerretDB refuses the operator) and slow pass-through (a write)
        try:
            coll.find_one({"author": {"$bogusOp": SECRETS[6]}}, comment=MARKER)
        except pymongo.errors.OperationFailure:
            pass
        coll.insert_one({"author": SECRETS[2]}, comment=MARKER)
        # fast again, and a hit
        list(coll.find({"author": "a2"}))
    elif phase == "json":
        hostile_raw(port)
        list(coll.find({"author": "a2"}))
        list(coll.find({"author": SECRETS[3], "year": {"$gte": SECRETS[5]}}, comment=MARKER))
    elif phase == "advice_off":
        list(coll.find({"author": SECRETS[4]}, comment=MARKER))
    c.close()
    print("done", phase)


# ---- the check ---------------------------------------------------------------------------------


def read_lines(path):
    raw = open(path, "rb").read()
    text = raw.decode("utf-8")  # strict: the log is valid UTF-8
    return raw, text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def check(log, advice_off_log):
    import logfmtkv

    tap = Tap()
    raw, lines = read_lines(log)
    tap.ok(all(b >= 0x20 or b == 0x0a for b in raw) and raw.endswith(b"\n"),
           "the log holds no control byte but its newlines, and is valid UTF-8 (%d lines)" % len(lines))

    # logfmt until the reload, JSON after it
    first_json = next((i for i, l in enumerate(lines) if l.startswith("{")), len(lines))
    lf_lines, js_lines = lines[:first_json], lines[first_json:]
    lf, js, bad = [], [], []
    for l in lf_lines:
        try:
            pairs = logfmtkv.parse_pairs(l, strict=True)
            d = dict((p.key, p.value) for p in pairs)
            if [p.key for p in pairs][:2] != ["ts", "level"] or "event" not in d:
                raise ValueError("not ts, level, ..., event")
            lf.append((pairs, d))
        except Exception as e:
            bad.append("%s: %r" % (e, l))
    tap.ok(len(lf_lines) > 10 and not bad,
           "every line before the reload parses as logfmt (logfmtkv strict, go-logfmt's rules): %d" % len(lf_lines),
           *bad[:5])
    bad = []
    for l in js_lines:
        try:
            d = json.loads(l)
            if not isinstance(d, dict) or list(d)[:2] != ["ts", "level"] or "event" not in d:
                raise ValueError("not an object of ts, level, ..., event")
            js.append(d)
        except Exception as e:
            bad.append("%s: %r" % (e, l))
    tap.ok(len(js_lines) > 3 and not bad,
           "after SIGHUP with log_format = json every line is one JSON object: %d" % len(js_lines),
           *bad[:5])

    # hostile values come back whole
    apps_lf = [d.get("app") for _, d in lf if d.get("event") == "client_hello"]
    apps_js = [d.get("app") for d in js if d.get("event") == "client_hello"]
    want_app = HOSTILE_APP[:64]
    tap.ok(apps_lf and apps_js and all(a == want_app for a in apps_lf + apps_js),
           "the hostile appName reads back the same from both formats",
           "want %r" % want_app, "logfmt %r" % apps_lf[:2], "json %r" % apps_js[:2])
    forged = [l for l in lines if "event=forged" in l.split(" ")[:4] or l.startswith("2026-01-01")]
    events = [d.get("event") for _, d in lf] + [d.get("event") for d in js]
    tap.ok(not forged and not any("forged" in (e or "") for e in events),
           "no forged line or event", *forged[:3])
    dbs_lf = [d.get("db") for _, d in lf if d.get("event") == "request" and "forged_db" in (d.get("db") or "")]
    dbs_js = [d.get("db") for d in js if d.get("event") == "request" and "forged_db" in (d.get("db") or "")]
    tap.ok(dbs_lf and dbs_js and dbs_lf[0] == dbs_js[0] and "\ufffd" in dbs_js[0] and "\n" in dbs_js[0],
           "a $db that is not UTF-8 reads the same from both (U+FFFD for its bad bytes)",
           "logfmt %r json %r" % (dbs_lf[:1], dbs_js[:1]))
    # an event's lines may vary (a request's op); each event logged in both
    # formats must have a line with the very same keys in each
    keys_lf, keys_js = {}, {}
    for pairs, d in lf:
        keys_lf.setdefault(d["event"], set()).add(tuple(p.key for p in pairs))
    for d in js:
        keys_js.setdefault(d["event"], set()).add(tuple(d))
    common = sorted(set(keys_lf) & set(keys_js))
    diff = [e for e in common if not keys_lf[e] & keys_js[e]]
    tap.ok(len(common) >= 4 and not diff,
           "the same keys in both formats for the events logged in both: %s" % ", ".join(common),
           *["%s: %s / %s" % (e, sorted(keys_lf[e]), sorted(keys_js[e])) for e in diff])

    # the slow lines
    slow_lf = [d for _, d in lf if d.get("event") == "slow_request"]
    slow_js = [d for d in js if d.get("event") == "slow_request"]
    tap.ok(len(slow_lf) == 5 and len(slow_js) == 1,
           "exactly the slow requests are logged: 5 in logfmt, 1 in JSON (got %d, %d)"
           % (len(slow_lf), len(slow_js)), *[json.dumps(d) for d in slow_lf + slow_js])
    outcomes = sorted(d.get("outcome") for d in slow_lf)
    tap.ok(outcomes == ["error", "hit", "miss", "miss", "pass_through"],
           "outcomes: miss, coalesced hit, error, pass-through: %s" % outcomes)
    problems = []
    for d in slow_lf + slow_js:
        ms = float(d.get("duration_ms", 0))
        if not (400 < ms < 10000) or str(d.get("threshold_ms")) != "400":
            problems.append("time %r" % d)
        if d.get("ns") != DB + ".books" or d.get("cmd") not in ("find", "insert") or not d.get("conn"):
            problems.append("names %r" % d)
        if d.get("outcome") in ("miss", "hit"):
            shape = d.get("shape", "")
            if not (shape.startswith("find " + DB + ".books") and "author" in shape and "year" in shape and "?" in shape):
                problems.append("shape %r" % d)
    tap.ok(not problems, "every slow line: duration over 400 ms, ns, cmd, conn, the find's shape", *problems)
    j = slow_js[0] if slow_js else {}
    tap.ok(isinstance(j.get("duration_ms"), float) and isinstance(j.get("conn"), int)
           and isinstance(j.get("threshold_ms"), int) and isinstance(j.get("request_id"), int)
           and isinstance(j.get("shape"), str),
           "JSON numbers are numbers, strings strings", json.dumps(j))
    lf_keys = next(([p.key for p in pairs] for pairs, d in lf if d.get("event") == "slow_request"), None)
    tap.ok(lf_keys is not None and lf_keys == list(j),
           "the slow line has the same keys in both formats", lf_keys, list(j))
    text = raw.decode("utf-8")
    leaked = [s for s in SECRETS + [MARKER] if s in text]
    tap.ok(not leaked, "no value of any query appears in the log (values, comment)", leaked)

    _, off = read_lines(advice_off_log)
    slow_off = [logfmtkv.parse(l, strict=True) for l in off if "event=slow_request" in l]
    tap.ok(len(slow_off) == 1 and slow_off[0].get("shape") == "-" and slow_off[0].get("outcome") == "miss",
           "advice = false: the slow line says shape=-", slow_off)
    mctest.plan()
    return 0


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "relay":
        relay(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5].encode())
    elif what == "client":
        client(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif what == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
