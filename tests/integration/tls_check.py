#!/usr/bin/env python3
"""tests/integration/tls_check.py: the parts of test_tls.sh (see there).

  relay TARGET_PORT PORT:CERT:KEY...
      A TLS-terminating relay in front of FerretDB's plaintext port, one
      listener per PORT, each serving its own certificate (expired, for
      another host, from another CA): the upstream-side refusals and
      tlsAllowInvalidHostnames need a server with a bad certificate that
      otherwise speaks MongoDB.
  GROUP ARGS...
      One group of cases (below), printing unnumbered TAP lines, then its
      plan (mctest.py).

Groups (CERTS: the directory test_tls.sh made the certificates in):
  both PORT HTTP LOG CERTS     TLS both ways (proxy A: clients over TLS, the
                               upstream FerretDB over TLS with a client certificate)
  clientcert PORT LOG CERTS    tls_ca_file: a client certificate required
  plainport PORT LOG CERTS     a plaintext port (upstream over TLS): TLS refused
  refused PORT LOG EXPECT      an upstream whose certificate the proxy must refuse
  lax PORT LOG                 tlsAllowInvalidHostnames: works, and says so loudly
  reload PORT PID LOG CERTS    SIGHUP swaps the certificate for new connections
"""

import asyncio
import os
import shutil
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import Case  # noqa: E402

import pymongo  # noqa: E402
from pymongo.errors import PyMongoError  # noqa: E402

TIMEOUT = 5000  # ms: server selection and sockets
BOUND = 5.0  # s: a refused connection is closed well within this (message_timeout is 30 s)


def log_has(path, text, timeout=3.0):
    """True once the log at path holds text (the proxy logs as it closes)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(path, encoding="utf-8", errors="replace") as f:
            if text in f.read():
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def log_count(path, text):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().count(text)


def client(port, certs, tls=True, cert=None, ca="ca.pem", **kw):
    opts = dict(serverSelectionTimeoutMS=TIMEOUT, connectTimeoutMS=TIMEOUT,
                socketTimeoutMS=TIMEOUT, directConnection=True)
    if tls:
        opts.update(tls=True, tlsCAFile=os.path.join(certs, ca))
        if cert:
            opts["tlsCertificateKeyFile"] = os.path.join(certs, cert)
    opts.update(kw)
    return pymongo.MongoClient("127.0.0.1", port, **opts)


def peer_serial(port, certs):
    """The serial (hex, upper case) of the certificate the proxy presents now."""
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    return serial_of_der(der)


def serial_of_der(der):
    # The serial is the first INTEGER of tbsCertificate after the [0] version: parse just that.
    def tlv(b, i):
        tag = b[i]
        n = b[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[i:i + k], "big")
            i += k
        return tag, i, n

    _, i, _ = tlv(der, 0)  # Certificate SEQUENCE
    _, i, _ = tlv(der, i)  # tbsCertificate SEQUENCE
    tag, j, n = tlv(der, i)
    if tag == 0xA0:  # version
        i = j + n
    tag, j, n = tlv(der, i)
    return der[j:j + n].hex().upper().lstrip("0") or "0"


def file_serial(path):
    import subprocess
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-serial"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1].upper().lstrip("0") or "0"


def closed_within(sock, bound):
    """(closed, seconds): reads until the peer closes or bound passes."""
    start = time.monotonic()
    sock.settimeout(bound)
    try:
        while True:
            if not sock.recv(65536):
                return True, time.monotonic() - start
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True, time.monotonic() - start
    except socket.timeout:
        return False, time.monotonic() - start
    except OSError:
        return True, time.monotonic() - start


def crud(c, db, case):
    """Ping, a write, a read twice, an update, the read again: what a client sees."""
    coll = c[db].items
    coll.delete_many({})
    coll.insert_many([{"_id": i, "v": i, "pad": "p" * 100} for i in range(20)])
    first = list(coll.find({"v": {"$lt": 5}}, {"pad": 0}).sort("_id", 1))
    second = list(coll.find({"v": {"$lt": 5}}, {"pad": 0}).sort("_id", 1))
    case.check([d["v"] for d in first] == [0, 1, 2, 3, 4], "first read: %r" % first)
    case.check(first == second, "second read differs: %r" % second)
    coll.update_one({"_id": 3}, {"$set": {"v": 33}})
    third = list(coll.find({"v": {"$lt": 5}}, {"pad": 0}).sort("_id", 1))
    case.check([d["v"] for d in third] == [0, 1, 2, 4], "read after the update: %r" % third)


# ---- groups --------------------------------------------------------------------------------

def group_both(port, http, log, certs):
    port, http = int(port), int(http)
    with Case(None, "TLS both ways: pymongo ping, write, reads, update") as case:
        c = client(port, certs)
        case.check(c.admin.command("ping").get("ok") == 1, "ping")
        hits0 = mctest.stats(http)["cache"]["hits"]
        crud(c, "tlsboth", case)
        hits = mctest.stats(http)["cache"]["hits"] - hits0
        case.check(hits >= 1, "no cache hit through TLS (hits +%d)" % hits)
        case.note("hits +%d" % hits)
        c.close()
    with Case(None, "TLS both ways: a reply of several MB (many records, partial writes)") as case:
        c = client(port, certs)
        coll = c.tlsboth.big
        coll.delete_many({})
        blob = "b" * (1 << 20)
        coll.insert_many([{"_id": i, "blob": blob} for i in range(6)])
        for _ in range(2):  # a miss, then a hit served from the stored bytes
            docs = list(coll.find({}).sort("_id", 1).batch_size(100))
            case.check(len(docs) == 6 and all(d["blob"] == blob for d in docs),
                       "big read: %d docs" % len(docs))
        c.close()
    with Case(None, "TLS upstream: /readyz's probe and the advisor (libmongoc) reach it") as case:
        status, _, body = mctest.http(http, "/readyz")
        case.check(status == 200 and b'"reachable"' in body, "/readyz: %d %r" % (status, body))
        deadline, state = time.monotonic() + 10, None
        while time.monotonic() < deadline:
            state = mctest.stats(http)["advice"].get("state")
            if state == "ok":
                break
            time.sleep(0.2)
        case.check(state == "ok", "advisor state %r" % state)
    with Case(None, "TLS both ways: the proxy presents tls_cert_file") as case:
        got, want = peer_serial(port, certs), file_serial(os.path.join(certs, "live.pem"))
        case.check(got == want, "serial %s, want %s" % (got, want))
    with Case(None, "a plaintext client on the TLS port: closed at once, with a log line") as case:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(mctest.op_msg({"hello": 1, "$db": "admin"}))
        closed, took = closed_within(s, BOUND)
        s.close()
        case.check(closed, "still open after %.1f s" % took)
        case.check(log_has(log, "plaintext on the TLS port: the client sent a MongoDB message"),
                   "no log line naming it")
        case.note("closed after %.2f s" % took)
    with Case(None, "pymongo without tls on the TLS port: an error, not a hang") as case:
        c = client(port, certs, tls=False, serverSelectionTimeoutMS=1000)
        start = time.monotonic()
        try:
            c.admin.command("ping")
            case.check(False, "ping answered in plaintext")
        except PyMongoError as e:
            case.note("error after %.2f s: %s" % (time.monotonic() - start, mctest.short(e, 200)))
        c.close()


def group_clientcert(port, log, certs):
    port = int(port)
    with Case(None, "tls_ca_file: a client certificate from its CA is taken") as case:
        c = client(port, certs, cert="client.both.pem")
        crud(c, "tlscc", case)
        c.close()
    refusals = [
        (None, "the client sent no certificate, and tls_ca_file requires one"),
        ("client2.both.pem", "the client's certificate was refused"),
    ]
    for cert, text in refusals:
        with Case(None, "tls_ca_file: %s refused, with a log line" % (cert or "no certificate")) \
                as case:
            c = client(port, certs, cert=cert, serverSelectionTimeoutMS=1000)
            try:
                c.admin.command("ping")
                case.check(False, "ping answered")
            except PyMongoError as e:
                case.note(mctest.short(e, 200))
            c.close()
            case.check(log_has(log, text), "no log line: %s" % text)
    with Case(None, "a handshake begun and never finished: closed at message_timeout") as case:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"\x16\x03\x01")  # a record header cut short
        closed, took = closed_within(s, BOUND)
        s.close()
        case.check(closed, "still open after %.1f s" % took)
        case.check(log_has(log, "no TLS handshake within 1000 ms"), "no log line")


def group_plainport(port, log, certs):
    port = int(port)
    with Case(None, "plaintext port, TLS upstream with a client certificate: CRUD") as case:
        c = client(port, certs, tls=False)
        crud(c, "tlsplain", case)
        c.close()
    with Case(None, "a TLS client on the plaintext port: closed at once, with a log line") as case:
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        start = time.monotonic()
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.settimeout(BOUND)
                s.recv(1)
            case.check(False, "the handshake went through")
        except (ssl.SSLError, ConnectionResetError, OSError) as e:
            took = time.monotonic() - start
            case.check(not isinstance(e, socket.timeout), "no close within %.1f s" % BOUND)
            case.note("%.2f s: %s" % (took, e))
        raw.close()
        case.check(log_has(log, "event=tls_on_plaintext_port"), "no log line")


def group_refused(port, log, expect):
    port = int(port)
    with Case(None, "upstream certificate refused (%s): a clear error to the client and the log"
              % expect) as case:
        # A raw OP_MSG, as a driver's first hello: the answer is the proxy's error reply
        # (a driver would only retry it until its server selection timed out).
        conn = mctest.Conn(port, timeout=5)
        reply = conn.call(mctest.op_msg({"find": "c", "filter": {}, "$db": "t"}), timeout=5)
        conn.close()
        doc = reply.doc or {}
        case.check(doc.get("ok") == 0 and doc.get("codeName") == "HostUnreachable",
                   "not a HostUnreachable error reply: %r" % reply)
        case.check(expect in str(doc.get("errmsg")),
                   "the client's error does not say %r: %s" % (expect, doc.get("errmsg")))
        case.check(log_has(log, expect), "the log does not say %r" % expect)


def group_lax(port, log):
    port = int(port)
    with Case(None, "tlsAllowInvalidHostnames: a wrong-host certificate taken, loudly") as case:
        c = pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=TIMEOUT,
                                directConnection=True)
        c.tlslax.c.insert_one({"x": 1})
        case.check(c.tlslax.c.find_one({}, {"_id": 0}) == {"x": 1}, "read")
        c.close()
        case.check(log_has(log, "event=upstream_tls_unverified unchecked=hostname"),
                   "no warning in the log")


def group_reload(port, pid, log, certs):
    port, pid = int(port), int(pid)
    live = os.path.join(certs, "live.pem")
    live_key = os.path.join(certs, "live.key")
    first = file_serial(os.path.join(certs, "server.pem"))
    second = file_serial(os.path.join(certs, "server2.pem"))
    with Case(None, "SIGHUP: a new connection sees the new certificate, an open one goes on") \
            as case:
        case.check(peer_serial(port, certs) == first, "not the first certificate at start")
        c = client(port, certs)
        c.tlsreload.c.insert_one({"x": 1})
        reloaded = log_count(log, "event=reloaded")
        shutil.copyfile(os.path.join(certs, "server2.pem"), live)
        shutil.copyfile(os.path.join(certs, "server2.key"), live_key)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while log_count(log, "event=reloaded") == reloaded and time.monotonic() < deadline:
            time.sleep(0.05)
        got = peer_serial(port, certs)
        case.check(got == second, "serial %s after SIGHUP, want %s" % (got, second))
        case.check(c.tlsreload.c.count_documents({}) == 1, "the open client's read")
        c.close()
    bad = [("not a certificate", "does not hold a PEM certificate"),
           ("the first certificate with the second's key",
            "does not match the certificate in")]
    for what, text in bad:
        with Case(None, "SIGHUP with %s: refused, the running one stays" % what) as case:
            if what == "not a certificate":
                with open(live, "w") as f:
                    f.write("not a certificate\n")
            else:
                shutil.copyfile(os.path.join(certs, "server.pem"), live)
            failed = log_count(log, "event=reload_failed")
            os.kill(pid, signal.SIGHUP)
            deadline = time.monotonic() + 5
            while log_count(log, "event=reload_failed") == failed and time.monotonic() < deadline:
                time.sleep(0.05)
            case.check(log_count(log, "event=reload_failed") > failed, "no reload_failed line")
            case.check(log_has(log, text, 0), "the log does not say %r" % text)
            got = peer_serial(port, certs)
            case.check(got == second, "serial %s, want %s still" % (got, second))


# ---- the relay -----------------------------------------------------------------------------

async def relay_main(target, specs):
    async def serve(reader, writer):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(mctest.pipe(reader, uw), mctest.pipe(ur, writer))

    servers = []
    for spec in specs:
        port, cert, key = spec.split(":")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        servers.append(await asyncio.start_server(serve, "127.0.0.1", int(port), ssl=ctx))
    print("listening", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    group, args = sys.argv[1], sys.argv[2:]
    if group == "relay":
        asyncio.run(relay_main(int(args[0]), args[1:]))
        return
    groups = {"both": group_both, "clientcert": group_clientcert, "plainport": group_plainport,
              "refused": group_refused, "lax": group_lax, "reload": group_reload}
    groups[group](*args)
    mctest.plan()


if __name__ == "__main__":
    main()
