#!/usr/bin/env python3
"""tests/integration/mctest.py: what the integration scripts share.

    TAP    results as unnumbered TAP lines ("ok - NAME", "not ok - NAME", "ok - NAME # SKIP
           WHY", "# " diagnostics) that lib.sh's mc_run_lines numbers, and plan(): "1..N",
           N the results this process printed, called once the script ran to its end. The
           wrapper fails a group whose plan is missing (it died, or stopped early) or whose
           count differs from it, so no shell script says how many results a group prints.
    Case   one result collecting the problems found while it ran (an exception is one)
    BSON   encode / decode / nested (enough for the cases; hand-built, so that broken
           documents can be made)
    wire   OP_MSG / OP_QUERY messages, CRC-32C, Reply, Conn (whole-message reads), and
           read_message for the fake upstreams' side
    HTTP   http(), stats() (GET /stats, parsed), counters()
    relay  pipe(): one direction of an asyncio relay

Python 3 stdlib only: docker_check.py runs under the system python3. A script that has
pymongo passes bson.encode(doc) bytes as an OP_MSG body and bson.decode as a Conn's decoder.
Imported as `import mctest` with the scripts' folder on sys.path (every script puts it there:
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))).
"""
import json
import socket
import ssl
import signal
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request

# ---- TAP ------------------------------------------------------------------------------------

_results = [0]  # every result this process printed, whichever Tap printed it


def _emit(ok, name, diag_lines):
    _results[0] += 1
    print("%s - %s" % ("ok" if ok else "not ok", name.replace("#", "")), flush=True)
    for d in diag_lines:
        print("# " + d, flush=True)


class Tap:
    """Counts what it printed (count, failed); label is appended to every name."""

    def __init__(self, label=""):
        self.label = label
        self.count = 0
        self.failed = 0

    def _name(self, name):
        return (name + " " + self.label).strip() if self.label else name

    def line(self, ok, name, diag=None):
        """One result; diag (a string, lines) is printed whether or not it passed."""
        self.count += 1
        self.failed += 0 if ok else 1
        _emit(ok, self._name(name), str(diag).splitlines() if diag else [])
        return ok

    def ok(self, cond, name, *diag):
        """One result; each diag item (first 40 lines of it) is printed when it failed."""
        self.count += 1
        self.failed += 0 if cond else 1
        lines = []
        if not cond:
            for d in diag:
                lines += ["  " + x[:300] for x in str(d).splitlines()[:40]]
        _emit(cond, self._name(name), lines)
        return cond

    def skip(self, name, reason):
        self.count += 1
        _results[0] += 1
        print("ok - %s # SKIP %s" % (self._name(name).replace("#", ""), reason.replace("#", "")),
              flush=True)


TAP = Tap()


def tap(cond, name, *diag):
    """TAP.ok: one result of the script's default Tap; returns cond."""
    return TAP.ok(cond, name, *diag)


def skip(name, reason):
    TAP.skip(name, reason)


def plan():
    """Prints "1..N" (N: the results printed so far): call it last, once every case ran."""
    print("1..%d" % _results[0], flush=True)


class Case:
    """One result: the problems found while the with-block ran; an exception is one and
    never stops the cases after it. Notes are printed whether or not it passed."""

    def __init__(self, tap, name):
        self.tap = tap if tap is not None else TAP
        self.name = name
        self.problems = []
        self.notes = []

    def check(self, cond, msg):
        if not cond:
            self.problems.append(msg)
        return cond

    def note(self, msg):
        self.notes.append(msg)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.problems.append("exception: %s: %s" % (et.__name__, short(str(ev), 600)))
        self.tap.line(not self.problems, self.name, "\n".join(self.problems + self.notes) or None)
        return True


# ---- BSON -------------------------------------------------------------------


class Raw(bytes):
    """Pre-encoded BSON document bytes, embedded as-is."""


class Int64(int):
    pass


def _cstr(s):
    b = s.encode()
    assert b"\0" not in b
    return b + b"\0"


def _element(key, v):
    k = _cstr(key)
    if isinstance(v, Raw):
        return b"\x03" + k + bytes(v)
    if isinstance(v, bool):
        return b"\x08" + k + (b"\x01" if v else b"\x00")
    if isinstance(v, Int64):
        return b"\x12" + k + struct.pack("<q", v)
    if isinstance(v, int):
        if -(2**31) <= v < 2**31:
            return b"\x10" + k + struct.pack("<i", v)
        return b"\x12" + k + struct.pack("<q", v)
    if isinstance(v, float):
        return b"\x01" + k + struct.pack("<d", v)
    if isinstance(v, str):
        b = v.encode() + b"\0"
        return b"\x02" + k + struct.pack("<i", len(b)) + b
    if v is None:
        return b"\x0a" + k
    if isinstance(v, dict):
        return b"\x03" + k + encode(v)
    if isinstance(v, (list, tuple)):
        return b"\x04" + k + encode({str(i): x for i, x in enumerate(v)})
    if isinstance(v, (bytes, bytearray)):
        return b"\x05" + k + struct.pack("<i", len(v)) + b"\x00" + bytes(v)
    raise TypeError("cannot encode %r" % type(v))


def encode(doc):
    """Encodes a dict (insertion order kept) as a BSON document."""
    body = b"".join(_element(k, v) for k, v in doc.items())
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def decode(data, pos=0):
    """Decodes the BSON document at data[pos:]; returns a dict."""
    (length,) = struct.unpack_from("<i", data, pos)
    end = pos + length - 1
    p = pos + 4
    out = {}
    while p < end:
        t = data[p]
        p += 1
        nul = data.index(b"\0", p)
        key = data[p:nul].decode("utf-8", "replace")
        p = nul + 1
        if t == 0x01:
            (v,) = struct.unpack_from("<d", data, p)
            p += 8
        elif t in (0x02, 0x0D, 0x0E):
            (n,) = struct.unpack_from("<i", data, p)
            v = data[p + 4 : p + 4 + n - 1].decode("utf-8", "replace")
            p += 4 + n
        elif t in (0x03, 0x04):
            (n,) = struct.unpack_from("<i", data, p)
            v = decode(data, p)
            if t == 0x04:
                v = list(v.values())
            p += n
        elif t == 0x05:
            (n,) = struct.unpack_from("<i", data, p)
            v = bytes(data[p + 5 : p + 5 + n])
            p += 5 + n
        elif t == 0x07:
            v = bytes(data[p : p + 12])
            p += 12
        elif t == 0x08:
            v = data[p] != 0
            p += 1
        elif t in (0x09, 0x11, 0x12):
            (v,) = struct.unpack_from("<q", data, p)
            p += 8
        elif t in (0x06, 0x0A, 0x7F, 0xFF):
            v = None
        elif t == 0x10:
            (v,) = struct.unpack_from("<i", data, p)
            p += 4
        elif t == 0x13:
            v = bytes(data[p : p + 16])
            p += 16
        elif t == 0x0B:
            a = data.index(b"\0", p)
            b = data.index(b"\0", a + 1)
            v = (data[p:a].decode(), data[a + 1 : b].decode())
            p = b + 1
        else:
            raise ValueError("unsupported BSON type 0x%02x" % t)
        out[key] = v
    return out


def nested(levels, key="a"):
    """A document nested `levels` deep ({} is 1 deep, {a: {}} is 2 deep).

    Built without recursion or quadratic copying: level i from the inside
    is 8*i - 3 bytes long.
    """
    kb = b"\x03" + _cstr(key)
    per = 4 + len(kb) + 1
    parts = []
    for i in range(levels, 1, -1):
        parts.append(struct.pack("<i", per * (i - 1) + 5) + kb)
    parts.append(b"\x05\x00\x00\x00\x00")
    parts.append(b"\x00" * (levels - 1))
    return Raw(b"".join(parts))


# ---- CRC-32C ----------------------------------------------------------------


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# ---- wire messages ----------------------------------------------------------

OP_REPLY, OP_UPDATE, OP_INSERT, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2001, 2002, 2004, 2012, 2013
CHECKSUM_PRESENT, MORE_TO_COME, EXHAUST_ALLOWED = 1, 2, 1 << 16

_next_id = [1000]


def next_id():
    _next_id[0] += 1
    return _next_id[0]


def header(length, request_id, response_to, opcode):
    return struct.pack("<iiii", length, request_id, response_to, opcode)


def frame(payload, opcode, request_id=None, response_to=0):
    rid = next_id() if request_id is None else request_id
    return header(16 + len(payload), rid, response_to, opcode) + payload


def section_body(doc):
    return b"\x00" + (doc if isinstance(doc, bytes) else encode(doc))


def section_seq(ident, docs):
    payload = _cstr(ident) + b"".join(d if isinstance(d, bytes) else encode(d) for d in docs)
    return b"\x01" + struct.pack("<i", 4 + len(payload)) + payload


def op_msg(body=None, flags=0, sections=None, request_id=None, checksum=False):
    """An OP_MSG: flag word, then `sections` (raw bytes) or one body section."""
    if sections is None:
        sections = section_body(body)
    if checksum:
        flags |= CHECKSUM_PRESENT
    rid = next_id() if request_id is None else request_id
    payload = struct.pack("<I", flags) + sections
    length = 16 + len(payload) + (4 if checksum else 0)
    msg = header(length, rid, 0, OP_MSG) + payload
    if checksum:
        msg += struct.pack("<I", crc32c(msg))
    return msg


def op_query(collection, query, request_id=None, flags=0, n_return=-1):
    payload = (
        struct.pack("<i", flags)
        + _cstr(collection)
        + struct.pack("<ii", 0, n_return)
        + (query if isinstance(query, bytes) else encode(query))
    )
    return frame(payload, OP_QUERY, request_id)


def ping(db="admin", request_id=None):
    return op_msg({"ping": 1, "$db": db}, request_id=request_id)


class Reply:
    """One whole message read back; .doc is its first kind-0 section, decoded by
    `decoder` (this module's decode, or pymongo's bson.decode for typed values)."""

    def __init__(self, raw, decoder=None):
        self.raw = raw
        self.length, self.request_id, self.response_to, self.opcode = struct.unpack_from("<iiii", raw)
        self.flags = None
        self.doc = None
        self.error = None
        try:
            if self.opcode == OP_MSG:
                (self.flags,) = struct.unpack_from("<I", raw, 16)
                if raw[20] == 0:
                    self.doc = _decode_at(decoder, raw, 21)
            elif self.opcode == OP_REPLY:
                (self.flags,) = struct.unpack_from("<i", raw, 16)
                self.doc = _decode_at(decoder, raw, 36)
        except Exception as e:  # the caller reports it
            self.error = "undecodable reply: %s" % e

    def ok(self):
        return self.doc is not None and self.doc.get("ok") in (1, 1.0, True)

    def __repr__(self):
        return "Reply(op=%d rid=%d to=%d flags=%s doc=%s)" % (
            self.opcode, self.request_id, self.response_to, self.flags, short(self.doc))


def short(x, n=300):
    """x (repr'd unless it is a string) cut to n characters."""
    s = repr(x) if not isinstance(x, str) else x
    return s if len(s) <= n else s[:n] + "..."


def _decode_at(decoder, raw, pos):
    if decoder is None:
        return decode(raw, pos)
    (n,) = struct.unpack_from("<i", raw, pos)
    return decoder(raw[pos:pos + n])


class Closed(Exception):
    pass


class Conn:
    """A blocking client socket with whole-message reads. addr: "host:port", (host, port), a
    port number on 127.0.0.1 or a unix socket path; decoder: see Reply."""

    def __init__(self, addr, timeout=1.0, decoder=None):
        self.decoder = decoder
        if isinstance(addr, int):
            addr = ("127.0.0.1", addr)
        if isinstance(addr, str) and addr.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(addr)
        else:
            host, port = addr if isinstance(addr, tuple) else parse_addr(addr)
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = bytearray()  # appended and consumed in place: no quadratic copies

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                raise Closed("reset")
            if not chunk:
                raise Closed("eof")
            self.buf += chunk

    def recv_msg(self, timeout=1.0):
        """Returns the next whole Reply; raises socket.timeout or Closed."""
        deadline = time.monotonic() + timeout
        self._fill(4, deadline)
        (length,) = struct.unpack_from("<i", self.buf)
        if length < 16 or length > 48_000_000:
            raise ValueError("reply with bad length %d" % length)
        self._fill(length, deadline)
        raw = bytes(self.buf[:length])
        del self.buf[:length]
        return Reply(raw, self.decoder)

    def call(self, msg, timeout=2.0):
        self.send(msg)
        return self.recv_msg(timeout)

    def wait_closed(self, timeout=1.0):
        """Reads until the peer closes. Returns (closed, replies, how, seconds)."""
        start = time.monotonic()
        deadline = start + timeout
        replies = []
        while True:
            try:
                replies.append(self.recv_msg(max(deadline - time.monotonic(), 0.001)))
            except Closed as e:
                return True, replies, str(e), time.monotonic() - start
            except socket.timeout:
                return False, replies, "timeout", time.monotonic() - start
            except ValueError as e:
                # Bytes the proxy should never write: report them as not closed.
                return False, replies, "garbage: %s" % e, time.monotonic() - start
            except OSError as e:
                return True, replies, "error %s" % e, time.monotonic() - start

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_message(sock):
    """The next whole message on a blocking socket (the fake upstreams' side: they read what
    the proxy sends), or None at EOF."""
    head = _read_exact(sock, 16)
    if head is None:
        return None
    (length,) = struct.unpack_from("<i", head)
    rest = _read_exact(sock, length - 16)
    return None if rest is None else head + rest


async def pipe(reader, writer):
    """Copies reader to writer (asyncio streams, TLS or not) until EOF or an error, then
    closes writer: one direction of a relay."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def parse_addr(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


# ---- HTTP -----------------------------------------------------------------------------------


def http(port, path, method="GET", token=None, body=None, timeout=5.0):
    """(status, headers (case-insensitive .get), body bytes) of one request to
    127.0.0.1:port; an HTTP error status is an answer, not an exception."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=body)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def stats(port, token=None, timeout=5.0):
    """GET /stats, parsed; raises when it does not answer 200."""
    status, _, body = http(port, "/stats", token=token, timeout=timeout)
    if status != 200:
        raise AssertionError("/stats answered %d: %s" % (status, short(body)))
    return json.loads(body)


def counters(port):
    return stats(port)["counters"]


def redis_counter(port, name):
    """A counter of the proxy's Redis tier (/stats: cache.redis.counters), 0 when absent."""
    return stats(port, timeout=3.0).get("cache", {}).get("redis", {}).get("counters", {}).get(name, 0)


class FakeServer:
    """A listening socket on 127.0.0.1 (self.port); each connection is served by
    self.serve(sock) on a thread of its own. Subclasses set their state, then
    call start()."""

    def start(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, sock):
        raise NotImplementedError


def stop_process(proc, timeout=15):
    """SIGTERM to proc (if still running), then its exit status (killed after timeout s)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
