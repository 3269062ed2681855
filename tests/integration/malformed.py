#!/usr/bin/env python3
"""tests/integration/malformed.py: RELIABILITY A5/A6, malformed client input.

Black-box test of a running mongocache: one fresh connection per case sends
broken bytes (framing, opcodes, OP_MSG sections and flags, BSON structure,
nesting depth) and the proxy must close that connection quickly (optionally
after an error reply), keep serving a long-lived connection opened at the
start, count the fault in /stats counters.decoding_errors and stay alive.

Python 3 stdlib only: BSON, CRC-32C and the wire messages are built by hand.
The BSON and wire helpers are mctest.py's.

Usage (the wrapper test_malformed.sh starts the proxies):
    malformed.py --proxy 127.0.0.1:PORT --http HTTP_PORT --pid PID
                 [--suite all|depth] [--label TEXT] [--message-timeout SECONDS]

Prints unnumbered TAP lines ("ok - ..." / "not ok - ..."), then its own plan
("1..N", mctest.plan()) once it ran to its end; the wrapper numbers them. Exit
status is always 0 unless the script itself breaks (the TAP lines carry the
verdicts).
"""
import argparse
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctest import (  # noqa: E402
    CHECKSUM_PRESENT, EXHAUST_ALLOWED, MORE_TO_COME, OP_COMPRESSED, OP_INSERT, OP_MSG, OP_QUERY,
    OP_REPLY, Conn, Tap, _cstr, _element, counters, crc32c, encode, frame, header, nested,
    next_id, op_msg, op_query, parse_addr, pid_alive, ping, plan, section_body, section_seq, short,
)

# ---- the cases ----------------------------------------------------------------

PING = {"ping": 1, "$db": "admin"}


def seq_docs(n=1):
    return [{"_id": i, "x": i} for i in range(n)]


def insert_body(**extra):
    d = {"insert": "malformed", "$db": "test"}
    d.update(extra)
    return d


def with_bad_sub(tail):
    """A body {find: "c", filter: <raw>, $db: "test"} with a raw filter value.

    The outer document's length is computed to be consistent, so only the
    inner fault is wrong.
    """
    body = (
        _element("find", "malformed")
        + b"\x03" + _cstr("filter") + tail
        + _element("$db", "test")
    )
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def depth_body(depth):
    """A find command whose whole body is `depth` documents deep (body = 1)."""
    return encode({"find": "malformed", "filter": nested(depth - 1), "$db": "test"})


def framing_cases():
    yield "A5 framing length 15 closes", header(15, next_id(), 0, OP_MSG)
    yield "A5 framing length 0 closes", header(0, next_id(), 0, OP_MSG)
    yield "A5 framing length -1 closes", header(-1, next_id(), 0, OP_MSG)
    yield "A5 framing length INT32_MIN closes", header(-(2**31), next_id(), 0, OP_MSG)
    yield "A5 framing length 48000001 closes", header(48_000_001, next_id(), 0, OP_MSG)
    # Only the 16-byte header is sent, then the socket stalls: the length
    # alone is invalid, so the proxy must not wait for a body.
    yield "A5 framing length 0x7fffffff header only closes", header(0x7FFFFFFF, next_id(), 0, OP_MSG)
    # A valid message followed by bytes that cannot start a message.
    yield "A5 framing trailing garbage after valid message closes", ping() + b"\xff" * 20
    # A valid message then a header whose length is below 16.
    yield "A5 framing valid message then short length closes", ping() + header(8, next_id(), 0, OP_MSG)


def opcode_cases():
    yield "A5 opcode unknown 9999 closes", frame(encode(PING), 9999)
    yield "A5 opcode OP_INSERT (removed) closes", frame(b"\0\0\0\0test.c\0" + encode({"x": 1}), OP_INSERT)
    yield "A5 opcode OP_REPLY from a client closes", frame(b"\0" * 20 + encode({"ok": 1}), OP_REPLY)
    yield "A5 opcode negative closes", frame(encode(PING), -5)


def opmsg_cases():
    for bit in range(2, 16):
        yield "A5 flags bit %d closes" % bit, op_msg(PING, flags=1 << bit)
    yield "A5 OP_MSG no body closes", op_msg(sections=section_seq("documents", seq_docs()))
    yield "A5 OP_MSG no sections at all closes", op_msg(sections=b"")
    yield "A5 OP_MSG two bodies closes", op_msg(sections=section_body(PING) + section_body(PING))
    yield "A5 OP_MSG section kind 2 closes", op_msg(sections=section_body(PING) + b"\x02" + encode({"x": 1}))
    yield "A5 OP_MSG section kind 0x99 closes", op_msg(sections=b"\x99" + encode(PING))
    yield "A5 OP_MSG duplicate doc-seq ids closes", op_msg(
        sections=section_body(insert_body())
        + section_seq("documents", seq_docs())
        + section_seq("documents", seq_docs()))
    yield "A5 OP_MSG seq/body duplicate plain closes", op_msg(
        sections=section_body(insert_body(documents=[{"_id": 9}]))
        + section_seq("documents", seq_docs()))
    yield "A5 OP_MSG seq/body duplicate dotted closes", op_msg(
        sections=section_body({"insert": "malformed", "a": {"b": 1}, "$db": "test"})
        + section_seq("a.b", seq_docs()))
    yield "A5 OP_MSG seq/body duplicate dotted through array closes", op_msg(
        sections=section_body({"insert": "malformed", "a": {"b": []}, "$db": "test"})
        + section_seq("a.b.c", seq_docs()))
    yield "A5 OP_MSG more than 8 sequences closes", op_msg(
        sections=section_body(insert_body())
        + b"".join(section_seq("s%d" % i, seq_docs()) for i in range(9)))
    # body document length runs past the end of the message
    b = bytearray(encode(PING))
    struct.pack_into("<i", b, 0, len(b) + 10)
    yield "A5 OP_MSG body past end closes", op_msg(sections=b"\x00" + bytes(b))
    # sequence size runs past the end of the message
    s = bytearray(section_seq("documents", seq_docs()))
    struct.pack_into("<i", s, 1, len(s) + 50)
    yield "A5 OP_MSG seq past end closes", op_msg(sections=section_body(insert_body()) + bytes(s))
    s = bytearray(section_seq("documents", seq_docs()))
    struct.pack_into("<i", s, 1, 3)
    yield "A5 OP_MSG seq size below 5 closes", op_msg(sections=section_body(insert_body()) + bytes(s))
    # A document inside a sequence runs past the sequence's end (but not the message's).
    d = bytearray(encode({"_id": 1}))
    struct.pack_into("<i", d, 0, len(d) + 3)
    seq_payload = _cstr("documents") + bytes(d)
    yield "A5 OP_MSG seq document past seq end closes", op_msg(
        sections=section_body(insert_body())
        + b"\x01" + struct.pack("<i", 4 + len(seq_payload)) + seq_payload
        + b"\x00\x00\x00")
    # checksumPresent, and the body's length field also covers the 4 checksum bytes
    body = bytearray(encode(PING))
    struct.pack_into("<i", body, 0, len(body) + 4)
    payload = struct.pack("<I", CHECKSUM_PRESENT) + b"\x00" + bytes(body)
    msg = header(16 + len(payload) + 4, next_id(), 0, OP_MSG) + payload
    yield "A5 OP_MSG body into checksum closes", msg + struct.pack("<I", crc32c(msg))
    # checksumPresent but fewer than 4 bytes after the flag word
    yield "A5 OP_MSG checksum flag with 2 bytes left closes", \
        header(22, next_id(), 0, OP_MSG) + struct.pack("<I", CHECKSUM_PRESENT) + b"\x00\x00"
    # sequence identifier without its NUL inside the section
    ident = b"documents"
    yield "A5 OP_MSG unterminated seq id closes", op_msg(
        sections=section_body(insert_body()) + b"\x01" + struct.pack("<i", 4 + len(ident)) + ident)
    for n in range(4):
        yield "A5 OP_MSG flag word truncated to %d bytes closes" % n, \
            header(16 + n, next_id(), 0, OP_MSG) + b"\x00" * n
    good = op_msg(PING, checksum=True)
    bad = good[:-4] + struct.pack("<I", (crc32c(good[:-4]) ^ 1))
    yield "A5 OP_MSG checksum mismatch closes", bad
    flipped = bytearray(good)
    flipped[27] ^= 0x20  # "ping" -> "pIng": the stored CRC no longer matches
    yield "A5 OP_MSG checksum over altered body closes", bytes(flipped)
    # Bytes inside the message after the body: read as a section of unknown kind.
    yield "A5 OP_MSG trailing bytes inside the message closes", op_msg(
        sections=section_body(PING) + b"\xde\xad\xbe\xef")


def bson_cases():
    b = bytearray(encode(PING))
    struct.pack_into("<i", b, 0, 4)
    yield "A5 BSON body length 4 closes", op_msg(sections=b"\x00" + bytes(b))
    b = bytearray(encode(PING))
    struct.pack_into("<i", b, 0, len(b) - 3)  # shorter than its elements
    yield "A5 BSON body length short closes", op_msg(sections=b"\x00" + bytes(b))
    yield "A5 BSON nested doc length past parent closes", op_msg(
        sections=b"\x00" + with_bad_sub(struct.pack("<i", 200) + b"\x10x\x00\x01\x00\x00\x00\x00"))
    yield "A5 BSON nested doc length negative closes", op_msg(
        sections=b"\x00" + with_bad_sub(struct.pack("<i", -12) + b"\x10x\x00\x01\x00\x00\x00\x00"))
    b = bytearray(encode(PING))
    b[-1] = 0x01
    yield "A5 BSON missing NUL closes", op_msg(sections=b"\x00" + bytes(b))
    yield "A5 BSON nested missing NUL closes", op_msg(
        sections=b"\x00" + with_bad_sub(struct.pack("<i", 12) + b"\x10x\x00\x01\x00\x00\x00\x07"))
    b = bytearray(encode({"ping": 1, "x": 1, "$db": "admin"}))
    i = b.index(b"x\x00") - 1
    b[i] = 0x42
    yield "A5 BSON bad type byte 0x42 closes", op_msg(sections=b"\x00" + bytes(b))
    b[i] = 0x14  # one past decimal128
    yield "A5 BSON bad type byte 0x14 closes", op_msg(sections=b"\x00" + bytes(b))
    b = bytearray(encode({"ping": 1, "s": "hello", "$db": "admin"}))
    i = b.index(b"s\x00") + 2
    struct.pack_into("<i", b, i, 1000)
    yield "A5 BSON string length past end closes", op_msg(sections=b"\x00" + bytes(b))
    struct.pack_into("<i", b, i, 0)
    yield "A5 BSON string length 0 closes", op_msg(sections=b"\x00" + bytes(b))
    struct.pack_into("<i", b, i, -1)
    yield "A5 BSON string length negative closes", op_msg(sections=b"\x00" + bytes(b))
    b = bytearray(encode({"ping": 1, "s": "hello", "$db": "admin"}))
    i = b.index(b"hello\x00") + 5
    b[i] = ord("!")  # string not NUL-terminated
    yield "A5 BSON string missing terminator closes", op_msg(sections=b"\x00" + bytes(b))
    b = bytearray(encode({"ping": 1, "flag": True, "$db": "admin"}))
    i = b.index(b"flag\x00") + 5
    b[i] = 2
    yield "A5 BSON bool value 2 closes", op_msg(sections=b"\x00" + bytes(b))
    # a key that runs into the document's final NUL: element type then no key terminator
    body = b"\x10" + b"kkkk"
    yield "A5 BSON unterminated key closes", op_msg(
        sections=b"\x00" + struct.pack("<i", 4 + len(body) + 1) + body + b"\x00")
    yield "A5 BSON in a document sequence closes", op_msg(
        sections=section_body(insert_body())
        + b"\x01" + struct.pack("<i", 4 + 10 + 5) + b"documents\x00" + struct.pack("<i", 5) + b"\x01")


def query_cases():
    yield ("A5 OP_QUERY ping on admin.$cmd gets OP_REPLY error then closes",
           op_query("admin.$cmd", {"ping": 1}), "op_reply_error")
    yield ("A5 OP_QUERY find on admin.$cmd gets OP_REPLY error then closes",
           op_query("admin.$cmd", {"find": "x"}), "op_reply_error")
    yield ("A5 OP_QUERY isMaster on a non-$cmd collection gets OP_REPLY error then closes",
           op_query("admin.users", {"isMaster": 1}), "op_reply_error")
    yield ("A5 OP_QUERY hello on a non-$cmd collection gets OP_REPLY error then closes",
           op_query("test.coll", {"hello": 1}), "op_reply_error")
    # OP_COMPRESSED: originalOpcode, uncompressedSize, compressorId, payload
    comp = struct.pack("<iiB", OP_MSG, 100, 0) + b"\x00" * 10
    yield ("A5 OP_COMPRESSED gets an error reply then closes", frame(comp, OP_COMPRESSED), "op_msg_error")
    yield ("A5 OP_QUERY with bad BSON closes", op_query("admin.$cmd", b"\x05\x00\x00\x00\x01"), None)
    yield ("A5 OP_QUERY unterminated collection name closes",
           frame(struct.pack("<i", 0) + b"admin.$cmd", OP_QUERY), None)


class Runner:
    def __init__(self, args, tap):
        self.args = args
        self.tap = tap
        self.addr = parse_addr(args.proxy)
        self.http = args.http
        self.keeper = None

    def keeper_ping(self):
        """The long-lived connection must still answer a ping."""
        try:
            if self.keeper is None:
                self.keeper = Conn(self.addr, 2.0)
            r = self.keeper.call(ping(), 3.0)
            if r.ok():
                return True, None
            return False, "long-lived ping reply: %r" % r
        except Exception as e:  # any failure is the verdict
            self.keeper = None
            return False, "long-lived ping failed: %r" % e

    def stat(self, name):
        try:
            return counters(self.http).get(name)
        except Exception as e:
            return "stats unavailable: %r" % e

    def bad_case(self, name, data, expect_reply=None, decode_delta=1, timeout=1.0,
                 stall=False, counter="decoding_errors", min_time=None):
        before = self.stat(counter)
        problems = []
        conn = None
        try:
            conn = Conn(self.addr, 2.0)
            try:
                conn.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the proxy may close before a large message is fully written
            closed, replies, how, took = conn.wait_closed(timeout)
        except Exception as e:
            closed, replies, how, took = False, [], "exception %r" % e, 0.0
        finally:
            if conn:
                conn.close()
        if not closed:
            problems.append("connection not closed within %.1fs (%s); replies=%s"
                            % (timeout, how, short(replies)))
        if min_time is not None and closed and took < min_time:
            problems.append("closed after %.2fs, before the %.1fs deadline" % (took, min_time))
        for r in replies:
            if r.error:
                problems.append(r.error)
        if expect_reply == "op_reply_error":
            if len(replies) != 1 or replies[0].opcode != OP_REPLY or replies[0].ok() \
                    or replies[0].response_to != struct.unpack_from("<i", data, 4)[0]:
                problems.append("expected one OP_REPLY error answering the request, got %s"
                                % short(replies))
        elif expect_reply == "op_msg_error":
            if len(replies) != 1 or replies[0].opcode != OP_MSG or replies[0].ok() \
                    or replies[0].response_to != struct.unpack_from("<i", data, 4)[0]:
                problems.append("expected one OP_MSG error answering the request, got %s"
                                % short(replies))
        else:
            for r in replies:
                # An error reply is allowed; a success reply to a broken message is not.
                if r.ok() and not name.startswith("A5 framing"):
                    problems.append("a broken message got a success reply: %r" % r)
        ok, why = self.keeper_ping()
        if not ok:
            problems.append(why)
        after = self.stat(counter)
        if decode_delta is not None:
            if not isinstance(before, int) or not isinstance(after, int) or after - before != decode_delta:
                problems.append("%s went %s -> %s, expected +%d" % (counter, before, after, decode_delta))
        self.tap.line(not problems, name, "\n".join(problems) if problems else None)

    def forwarded_case(self, name, data):
        """A valid message that must be forwarded and answered (whatever the answer)."""
        before = self.stat("decoding_errors")
        problems = []
        conn = None
        try:
            conn = Conn(self.addr, 5.0)
            rid = struct.unpack_from("<i", data, 4)[0]
            conn.send(data)
            r = conn.recv_msg(10.0)
            if r.response_to != rid or r.opcode != OP_MSG or r.doc is None:
                problems.append("unexpected reply %r" % r)
            elif "ok" not in r.doc:
                problems.append("reply without ok: %r" % r)
            # and the connection still works
            r2 = conn.call(ping(), 3.0)
            if not r2.ok():
                problems.append("ping after it failed: %r" % r2)
        except Exception as e:
            problems.append("no reply: %r" % e)
        finally:
            if conn:
                conn.close()
        ok, why = self.keeper_ping()
        if not ok:
            problems.append(why)
        after = self.stat("decoding_errors")
        if before != after:
            problems.append("decoding_errors went %s -> %s, expected no change" % (before, after))
        self.tap.line(not problems, name, "\n".join(problems) if problems else None)

    def control_cases(self):
        problems = []
        try:
            c = Conn(self.addr, 3.0)
            msg = op_msg(PING, checksum=True)
            r = c.call(msg, 3.0)
            if not r.ok() or r.response_to != struct.unpack_from("<i", msg, 4)[0]:
                problems.append("checksummed ping reply: %r" % r)
            # exhaustAllowed (bit 16) and an unknown optional bit (20) are not errors
            r = c.call(op_msg(PING, flags=EXHAUST_ALLOWED | (1 << 20)), 3.0)
            if not r.ok() or r.flags & MORE_TO_COME:
                problems.append("ping with optional bits: %r" % r)
            c.close()
        except Exception as e:
            problems.append("control failed: %r" % e)
        self.tap.line(not problems, "A5 control ping with CRC-32C checksum gets ok 1",
                      "\n".join(problems) if problems else None)

    def depth_cases(self):
        for d in (100, 200):
            self.forwarded_case("A6 depth %d forwarded" % d, op_msg(sections=b"\x00" + depth_body(d)))
        for d in (201, 1000, 10000, 100000):
            self.bad_case("A6 depth %d closes" % d, op_msg(sections=b"\x00" + depth_body(d)))
        # too deep inside a document sequence too
        self.bad_case("A6 depth 201 in a document sequence closes", op_msg(
            sections=section_body(insert_body())
            + section_seq("documents", [nested(201)])))

    def run(self):
        ok, why = self.keeper_ping()
        self.tap.line(ok, "A5 long-lived connection answers ping at start", why)
        if self.args.suite == "all":
            self.control_cases()
            for name, data in framing_cases():
                self.bad_case(name, data)
            for name, data in opcode_cases():
                self.bad_case(name, data)
            for name, data, expect in query_cases():
                self.bad_case(name, data, expect_reply=expect)
            for name, data in opmsg_cases():
                self.bad_case(name, data)
            for name, data in bson_cases():
                self.bad_case(name, data)
        self.depth_cases()
        if self.args.suite == "all" and self.args.message_timeout:
            mt = self.args.message_timeout
            # A valid length but only part of the body, then a stall: closed at
            # message_timeout, counted as a message timeout, not a decoding error.
            partial = ping()[:20]
            before = self.stat("decoding_errors")
            self.bad_case("A5 framing stalled body closes at message_timeout", partial,
                          decode_delta=1, timeout=mt + 1.5, counter="message_timeouts",
                          min_time=mt - 0.5)
            after = self.stat("decoding_errors")
            self.tap.line(before == after, "A5 stalled body is not a decoding error",
                          None if before == after else "decoding_errors %s -> %s" % (before, after))
            # Header only (length valid), nothing more.
            self.bad_case("A5 framing header only with valid length closes at message_timeout",
                          ping()[:16], decode_delta=1, timeout=mt + 1.5,
                          counter="message_timeouts", min_time=mt - 0.5)
        alive = pid_alive(self.args.pid) if self.args.pid else True
        ok, why = self.keeper_ping()
        self.tap.line(alive and ok, "A5 proxy alive and serving at the end",
                      None if alive and ok else "alive=%s %s" % (alive, why or ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True, help="HOST:PORT of the proxy")
    ap.add_argument("--http", type=int, required=True, help="the proxy's HTTP port")
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--suite", choices=("all", "depth"), default="all")
    ap.add_argument("--label", default="")
    ap.add_argument("--message-timeout", type=float, default=0.0,
                    help="the proxy's message_timeout in seconds (0: skip that case)")
    args = ap.parse_args()
    tap = Tap(args.label)
    Runner(args, tap).run()
    plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
