#!/usr/bin/env python3
"""tests/integration/fake_redis.py: a scriptable fake Redis for faults a real
Redis cannot produce (stdlib only).

It speaks just enough RESP for mongocache's shared tier: AUTH and SELECT
(+OK), PING, SCRIPT LOAD (the SHA-1 of the script), MGET (reads: always
misses, nil for every value key, 100 for every counter), EVALSHA / EVAL of the tier's four
scripts (the lookup script answers as MGET does;
a fill is refused; a bump and the epoch bump succeed), and SUBSCRIBE (the
confirmation). One fault can be armed at a time (FakeRedis.arm): raw bytes
sent on the command or the subscription connection, at start-up (in place
of, or right after, a handshake reply), later (a while after the handshake),
or as the reply to the next lookup. Every connection, command kind and fault
sent is recorded (FakeRedis.events), so a test can see the proxy reconnect.

Use from Python:
    fake = FakeRedis(); fake.start()           # fake.port
    fake.arm(Fault("sub", "start", b"*0\\r\\n"))
    ...; fake.count("sub"); fake.faults_sent(); fake.stop()
or alone:  fake_redis.py --port P [--fault-target sub --fault-when start
                                   --fault-hex 2a300d0a]
"""
import argparse
import asyncio
import hashlib
import threading
import time


class Fault:
    """Bytes sent where a well-behaved Redis would not send them.

    target: "sub" (the subscription connection) or "cmd" (the command one).
    when:   "start":  sub: in place of the SUBSCRIBE confirmation;
                      cmd: with the last SCRIPT LOAD reply (mode "append":
                      after it, an unsolicited reply; "replace": instead)
            "later":  delay seconds after the handshake (sub: after the
                      confirmation)
            "lookup": cmd: in place of the reply to the next lookup (MGET, or
                      the lookup script)
    once:   only on the first connection of that kind after arm(); later
            connections behave (so that the proxy can recover)
    data may be a function of the lookup's key count (when "lookup").
    """

    def __init__(self, target, when, data, mode="append", delay=0.3, once=False):
        self.target = target
        self.when = when
        self.data = data
        self.mode = mode
        self.delay = delay
        self.once = once
        self.used = False


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def classify(script):
    """Which of the tier's four scripts this is (see cache/redis.c)."""
    if b"'PX'" in script:  # first: the fill reads counters with pcall too
        return "fill"
    if b"redis.pcall('GET'" in script:
        return "lookup"
    if b"return redis.call('GET', KEYS[1])" in script:
        return "epoch"
    return "bump"


class FakeRedis:
    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port
        self.fault = None
        self.scripts = {}
        self.events = []  # (time, conn id, what, detail)
        self.lock = threading.Lock()
        self.loop = None
        self.thread = None
        self.server = None
        self.next_id = 0
        self.writers = set()
        self.ready = threading.Event()

    # ---- control (any thread) ----------------------------------------------------

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("fake redis did not start")

    def stop(self):
        if self.loop:
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread:
            self.thread.join(5)

    def arm(self, fault):
        with self.lock:
            self.fault = fault

    def disarm(self):
        with self.lock:
            self.fault = None

    def drop_all(self):
        """Closes every client connection (the proxy reconnects)."""
        def close():
            for w in list(self.writers):
                w.close()
        self.loop.call_soon_threadsafe(close)

    def record(self, cid, what, detail=""):
        with self.lock:
            self.events.append((time.monotonic(), cid, what, detail))

    def count(self, what, detail=None):
        with self.lock:
            return sum(1 for e in self.events
                       if e[2] == what and (detail is None or e[3] == detail))

    def faults_sent(self):
        return self.count("fault")

    # ---- the server (its own thread and loop) ---------------------------------------

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, self.host, self.port))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.server.close()
            for w in list(self.writers):
                w.close()
            self.loop.close()

    def _take_fault(self, target, when):
        with self.lock:
            f = self.fault
            if not f or f.target != target or f.when != when or (f.once and f.used):
                return None
            f.used = True
            return f

    async def _read_command(self, reader):
        line = await reader.readline()
        if not line:
            return None
        if not line.startswith(b"*"):
            return line.split()  # inline command
        n = int(line[1:].strip())
        args = []
        for _ in range(n):
            hdr = await reader.readline()
            size = int(hdr[1:].strip())
            data = await reader.readexactly(size + 2)
            args.append(data[:-2])
        return args

    async def _later(self, writer, cid, fault):
        await asyncio.sleep(fault.delay)
        if not writer.is_closing():
            writer.write(fault.data)
            self.record(cid, "fault", "later")

    async def _handle(self, reader, writer):
        self.next_id += 1
        cid = self.next_id
        self.writers.add(writer)
        self.record(cid, "connect")
        loaded = 0
        try:
            while True:
                try:
                    cmd = await self._read_command(reader)
                except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                    break
                if cmd is None:
                    break
                if not cmd:
                    continue
                name = cmd[0].upper()
                out = b""
                if name in (b"AUTH", b"SELECT"):
                    out = b"+OK\r\n"
                elif name == b"PING":
                    out = b"+PONG\r\n"
                elif name == b"SCRIPT" and len(cmd) == 3 and cmd[1].upper() == b"LOAD":
                    if loaded == 0:
                        self.record(cid, "kind", "cmd")
                    loaded += 1
                    sha = hashlib.sha1(cmd[2]).hexdigest().encode()
                    self.scripts[sha] = classify(cmd[2])
                    out = bulk(sha)
                    if loaded == 4:
                        f = self._take_fault("cmd", "start")
                        if f:
                            out = f.data if f.mode == "replace" else out + f.data
                            self.record(cid, "fault", "start")
                        f = self._take_fault("cmd", "later")
                        if f:
                            asyncio.ensure_future(self._later(writer, cid, f))
                elif name == b"SUBSCRIBE" and len(cmd) == 2:
                    self.record(cid, "kind", "sub")
                    out = b"*3\r\n" + bulk(b"subscribe") + bulk(cmd[1]) + b":1\r\n"
                    f = self._take_fault("sub", "start")
                    if f:
                        out = f.data
                        self.record(cid, "fault", "start")
                    f = self._take_fault("sub", "later")
                    if f:
                        asyncio.ensure_future(self._later(writer, cid, f))
                elif name == b"MGET" and len(cmd) >= 2:
                    # reads (the proxy's read batch): values, the epoch, the
                    # generations; no value exists, every counter is 100
                    nkeys = len(cmd) - 1
                    self.record(cid, "mget", "lookup")
                    keys = cmd[1:]
                    nvalues = next((i for i, k in enumerate(keys) if k.endswith(b"epoch")), 1)
                    out = (b"*%d\r\n" % nkeys + b"$-1\r\n" * nvalues +
                           bulk(b"100") * (nkeys - nvalues))
                    f = self._take_fault("cmd", "lookup")
                    if f:
                        out = f.data(nkeys) if callable(f.data) else f.data
                        self.record(cid, "fault", "lookup")
                elif name in (b"EVALSHA", b"EVAL") and len(cmd) >= 3:
                    kind = (self.scripts.get(cmd[1]) if name == b"EVALSHA"
                            else classify(cmd[1]))
                    nkeys = int(cmd[2])
                    self.record(cid, "eval", kind or "?")
                    if kind is None:
                        out = b"-NOSCRIPT No matching script.\r\n"
                    elif kind == "lookup":
                        out = b"*%d\r\n$-1\r\n" % nkeys + bulk(b"100") * (nkeys - 1)
                        f = self._take_fault("cmd", "lookup")
                        if f:
                            out = f.data(nkeys) if callable(f.data) else f.data
                            self.record(cid, "fault", "lookup")
                    elif kind == "fill":
                        out = b":0\r\n"
                    elif kind == "bump":
                        out = b":%d\r\n" % nkeys
                    else:
                        out = bulk(b"101")
                else:
                    out = b"-ERR unknown command\r\n"
                writer.write(out)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.writers.discard(writer)
            self.record(cid, "close")
            writer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fault-target", choices=("sub", "cmd"))
    ap.add_argument("--fault-when", choices=("start", "later", "lookup"), default="start")
    ap.add_argument("--fault-hex", help="the fault's bytes, in hex")
    args = ap.parse_args()
    fake = FakeRedis(port=args.port)
    if args.fault_target and args.fault_hex:
        fake.arm(Fault(args.fault_target, args.fault_when, bytes.fromhex(args.fault_hex)))
    fake.start()
    print("fake redis on 127.0.0.1:%d" % fake.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
