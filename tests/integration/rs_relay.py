"""tests/integration/rs_relay.py: a two-member replica set made of two
FerretDB instances, for failover tests (no mongod can run here).

Each member has its own listening address on 127.0.0.1 and relays to its own
FerretDB (started with --repl-set-name rs0). The relay answers hello /
isMaster as that member of a replica set whose hosts are the two listening
addresses: setName, setVersion, hosts, primary, me, isWritablePrimary (or
ismaster) and secondary follow the relay's current primary, electionId grows
with every switch (SDAM ignores a primary with an older electionId), and
topologyVersion is left out (no streaming hello). Everything else goes to the
member's FerretDB, except on the secondary: writes get NotWritablePrimary
(10107, with the RetryableWriteError label when the write carries txnNumber,
as mongod 4.4+ adds it), other commands but a few handshake and session ones
get NotPrimaryNoSecondaryOk (13435), as a secondary answers a primary read.

Control lines (one per line on the control port, each answered with a JSON line):
"switch" ("switch keep" for close=False) makes the other member primary (or,
with no primary, the member that was not primary last); "elect" ("elect keep")
steps the primary down with no new one (an election under way: both members
answer as secondaries, "primary" absent from hello) until the next "switch".
"hold COLL applied|unapplied" holds the next write to collection COLL on the
primary: "applied" runs it on both FerretDBs (as if replicated) and holds the
reply; "unapplied" runs nothing yet. "wait_held" answers once a write is held.
"release [switch] [apply|late MS]" ends the hold: with "switch" the primary
steps down first (closing its connections, as below); the held write's client
connection is then closed without a reply; an unapplied write is run on both
FerretDBs before that ("apply"), MS milliseconds after it ("late MS"), or never.
A "switch" The old primary steps
down: from then on it answers as a secondary, and with close=True (a
pre-4.2 stepdown) every client connection to it is closed: at once when it
waits for a request, right after its reply when one is being served, so a
request is either answered whole or never executed. close=False keeps the
connections open (a 4.2+ stepdown): writes on them get NotWritablePrimary.

With --mongos it answers hello as two mongos servers instead (msg: isdbgrid, no
replica-set fields) and never refuses a command: a sharded cluster's router list.

With --lb it is a load balancer in front of those two mongos: one listening
address (the first of --listen), each new connection given to the next mongos
in turn (an L4 balancer's round robin), each mongos answering as one behind a
load balancer does (mongos's load_balancer_support: the connection's first
hello must say loadBalanced: true, else it gets LoadBalancerSupportMismatch
(354) and the connection is closed; that first hello's reply carries the
mongos's serviceId, later ones none). "stats" counts the connections each
mongos got, the first hellos that said loadBalanced and those refused.

The two FerretDBs do not replicate: a write is on the member that was
primary when it ran, which lets a test count where each write landed.
"""

import asyncio
import struct
import time

import bson
from bson.objectid import ObjectId

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
WRITES = {"insert", "update", "delete", "findandmodify", "create", "drop", "createindexes",
          "dropindexes", "dropdatabase", "renamecollection", "collmod", "bulkwrite"}
# answered by a secondary as by a primary
ANY_MEMBER = {"ping", "buildinfo", "getparameter", "endsessions", "saslstart", "saslcontinue",
              "getnonce", "whatsmyuri", "killcursors", "logout", "connectionstatus",
              "getlasterror"}
HELLO = {"hello", "ismaster"}


def _cstring(data, pos):
    end = data.index(b"\x00", pos)
    return data[pos:end].decode(), end + 1


def parse(opcode, body):
    """The command document of an OP_MSG or OP_QUERY body (after the header), or None."""
    if opcode == OP_MSG:
        if len(body) < 5 or body[4] != 0:
            return None, 0
        n = struct.unpack_from("<i", body, 5)[0]
        return bson.decode(body[5:5 + n]), struct.unpack_from("<I", body, 0)[0]
    if opcode == OP_QUERY:
        _, pos = _cstring(body, 4)
        pos += 8
        n = struct.unpack_from("<i", body, pos)[0]
        return bson.decode(body[pos:pos + n]), 0
    return None, 0


def reply_doc(opcode, body):
    if opcode == OP_MSG:
        n = struct.unpack_from("<i", body, 5)[0]
        return bson.decode(body[5:5 + n])
    if opcode == OP_REPLY:
        n = struct.unpack_from("<i", body, 20)[0]
        return bson.decode(body[20:20 + n])
    raise ValueError("opcode %d" % opcode)


_ids = iter(range(1 << 20, 1 << 30))


def encode_reply(request_opcode, response_to, doc):
    raw = bson.encode(doc)
    if request_opcode == OP_QUERY:
        payload = struct.pack("<iqii", 0, 0, 0, 1) + raw
        opcode = OP_REPLY
    else:
        payload = struct.pack("<I", 0) + b"\x00" + raw
        opcode = OP_MSG
    return struct.pack("<iiii", 16 + len(payload), next(_ids), response_to, opcode) + payload


class Conn:
    def __init__(self, member, reader, writer):
        self.member = member
        self.reader = reader
        self.writer = writer
        self.idle = True
        self.closing = False
        self.up_reader = None
        self.up_writer = None

    def close(self):
        for w in (self.writer, self.up_writer):
            if w is not None:
                try:
                    w.close()
                except Exception:
                    pass


class Relay:
    """Two members on ports listen[0], listen[1] in front of FerretDB ports ferret[0], ferret[1]."""

    def __init__(self, ferret_ports, listen_ports, set_name="rs0", log=None, mongos=False,
                 lb=False):
        self.ferret = list(ferret_ports)
        self.listen = list(listen_ports)
        self.set_name = set_name
        self.primary = 0
        self.epoch = 1
        self.conns = []
        self.log = log
        self.served = [0, 0]       # commands relayed to each FerretDB
        self.refused = [0, 0]      # commands refused as a secondary
        self.closed_at_switch = 0
        self.loop = None
        self.mongos = mongos  # answer hello as two mongos servers, never switch
        self.last = 0         # the last member that was primary (self.primary None: elect)
        self.hold = None      # {"coll", "mode", "held": Event, "release": Future, "data"}
        self.lb = lb          # a load balancer in front of the two mongos
        self.lb_next = 0      # the mongos the next connection goes to
        self.lb_conns = [0, 0]
        self.lb_hellos = 0    # first hellos that said loadBalanced: true
        self.lb_refused = 0   # first hellos that did not (connection closed)
        self.service_ids = [ObjectId(), ObjectId()]

    def addr(self, i):
        return "127.0.0.1:%d" % self.listen[i] if i is not None else "-"

    def _log(self, msg):
        if self.log:
            with open(self.log, "a") as f:
                f.write("%.3f %s\n" % (time.time(), msg))

    async def _switch(self, close, elect=False):
        old = self.primary
        self.primary = None if elect else 1 - self.last
        if self.primary is not None:
            self.last = self.primary
            self.epoch += 1
        n = 0
        if close and old is not None:
            for c in list(self.conns):
                if c.member != old:
                    continue
                c.closing = True
                if c.idle:
                    c.close()
                    n += 1
        self.closed_at_switch += n
        self._log("switch primary=%s old=%s close=%s closed_idle=%d" %
                  (self.addr(self.primary), self.addr(old), close, n))
        return n

    # ---- one client connection -------------------------------------------
    async def _serve(self, member, reader, writer):
        if self.lb:
            member = self.lb_next
            self.lb_next = 1 - member
            self.lb_conns[member] += 1
        c = Conn(member, reader, writer)
        c.did_hello = False
        self.conns.append(c)
        try:
            c.up_reader, c.up_writer = await asyncio.open_connection(
                "127.0.0.1", self.ferret[member])
            while not c.closing:
                c.idle = True
                head = await reader.readexactly(16)
                c.idle = False
                length, request_id, _, opcode = struct.unpack("<iiii", head)
                if length < 16 or length > 48_000_000:
                    break
                body = await reader.readexactly(length - 16)
                await self._handle(c, head, body, request_id, opcode)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            c.close()
            self.conns.remove(c)

    async def _upstream(self, c, data, want_reply=True):
        c.up_writer.write(data)
        await c.up_writer.drain()
        if not want_reply:
            return None, None
        head = await c.up_reader.readexactly(16)
        length, _, _, opcode = struct.unpack("<iiii", head)
        body = await c.up_reader.readexactly(length - 16)
        return head, body

    def _hello(self, member, doc, legacy_name):
        primary = member == self.primary
        for k in ("topologyVersion", "isWritablePrimary", "ismaster", "secondary", "me",
                  "primary", "hosts", "setName", "setVersion", "electionId", "passives",
                  "arbiters"):
            doc.pop(k, None)
        if self.mongos or self.lb:
            doc["ismaster" if legacy_name else "isWritablePrimary"] = True
            doc["msg"] = "isdbgrid"
            return doc
        doc["ismaster" if legacy_name else "isWritablePrimary"] = primary
        doc["secondary"] = not primary
        doc["setName"] = self.set_name
        doc["setVersion"] = 1
        doc["hosts"] = [self.addr(0), self.addr(1)]
        doc["primary"] = self.addr(self.primary)
        doc["me"] = self.addr(member)
        if self.primary is None:
            del doc["primary"]
        if primary:
            doc["electionId"] = ObjectId("7fffffff%016x" % self.epoch)
        return doc

    async def _handle(self, c, head, body, request_id, opcode):
        try:
            cmd, flags = parse(opcode, body)
        except Exception:
            cmd, flags = None, 0
        name = next(iter(cmd)).lower() if cmd else ""
        oneway = opcode == OP_MSG and (flags & 2)
        secondary = c.member != self.primary and not self.mongos and not self.lb
        first_lb_hello = self.lb and name in HELLO and not c.did_hello
        if first_lb_hello and cmd.get("loadBalanced") is not True:
            self.lb_refused += 1
            err = {"ok": 0.0, "code": 354, "codeName": "LoadBalancerSupportMismatch",
                   "errmsg": "The server is being accessed through a load balancer, but this "
                             "driver does not have load balancing enabled"}
            c.writer.write(encode_reply(opcode, request_id, err))
            await c.writer.drain()
            c.closing = True  # _serve closes it (not a stepdown: closed_at_switch untouched)
            return
        elif name in HELLO:
            rhead, rbody = await self._upstream(c, head + body)
            rop = struct.unpack_from("<i", rhead, 12)[0]
            doc = self._hello(c.member, reply_doc(rop, rbody), name == "ismaster")
            if first_lb_hello:
                self.lb_hellos += 1
                c.did_hello = True
                doc["serviceId"] = self.service_ids[c.member]
            c.writer.write(encode_reply(opcode, request_id, doc))
            await c.writer.drain()
        elif (self.hold is not None and not self.hold["held"].is_set() and not secondary
              and name in WRITES and cmd is not None and cmd.get(next(iter(cmd))) ==
              self.hold["coll"]):
            await self._hold(c, head + body)
        elif secondary and name not in ANY_MEMBER:
            self.refused[c.member] += 1
            if name in WRITES:
                err = {"ok": 0.0, "errmsg": "not primary", "code": 10107,
                       "codeName": "NotWritablePrimary"}
                if cmd is not None and "txnNumber" in cmd:
                    err["errorLabels"] = ["RetryableWriteError"]
            else:
                err = {"ok": 0.0, "errmsg": "not primary and secondaryOk=false", "code": 13435,
                       "codeName": "NotPrimaryNoSecondaryOk"}
            if not oneway:
                c.writer.write(encode_reply(opcode, request_id, err))
                await c.writer.drain()
        else:
            self.served[c.member] += 1
            rhead, rbody = await self._upstream(c, head + body, want_reply=not oneway)
            if rhead is not None:
                c.writer.write(rhead + rbody)
                await c.writer.drain()
        if c.closing:
            # stepped down while serving: the reply is out, now the connection goes
            self.closed_at_switch += 1
            c.close()

    async def _apply_both(self, data):
        """Runs one request on both FerretDBs (a write replicated to both), replies dropped."""
        for port in self.ferret:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            try:
                w.write(data)
                await w.drain()
                head = await r.readexactly(16)
                await r.readexactly(struct.unpack("<i", head[:4])[0] - 16)
            finally:
                w.close()

    async def _hold(self, c, data):
        """A held write: see the module's text. The client connection ends with no reply."""
        h = self.hold
        h["data"] = data
        h["conn"] = c
        if h["mode"] == "applied":
            await self._apply_both(data)
        self._log("held a write to %s (%s) on %s" % (h["coll"], h["mode"], self.addr(c.member)))
        h["held"].set()
        await h["release"]
        c.closing = True
        c.close()

    async def _release(self, words):
        h = self.hold
        if h is None or not h["held"].is_set():
            return {"error": "nothing held"}
        if "switch" in words:
            await self._switch(close=True)
        if h["mode"] == "unapplied" and "apply" in words:
            await self._apply_both(h["data"])
        h["release"].set_result(True)
        await asyncio.sleep(0)
        if h["mode"] == "unapplied" and "late" in words:
            await asyncio.sleep(int(words[words.index("late") + 1]) / 1000.0)
            await self._apply_both(h["data"])
        self.hold = None
        self._log("released %s" % " ".join(words))
        return {"primary": self.addr(self.primary), "released": True}

    # ---- control: one command per line on a TCP port ----------------------
    async def _control(self, reader, writer):
        import json
        while True:
            line = await reader.readline()
            if not line:
                break
            words = line.decode().split()
            if words[:1] in (["switch"], ["elect"]):
                n = await self._switch(close=words[1:2] != ["keep"], elect=words[0] == "elect")
                out = {"primary": self.addr(self.primary), "closed_idle": n}
            elif words[:1] == ["hold"] and len(words) == 3:
                self.hold = {"coll": words[1], "mode": words[2], "held": asyncio.Event(),
                             "release": self.loop.create_future()}
                out = {"holding": words[1]}
            elif words[:1] == ["wait_held"]:
                try:
                    await asyncio.wait_for(self.hold["held"].wait(), 15)
                    out = {"held": True}
                except (asyncio.TimeoutError, TypeError):
                    out = {"held": False}
            elif words[:1] == ["release"]:
                out = await self._release(words[1:])
            else:
                out = {"primary": self.addr(self.primary), "served": self.served,
                       "refused": self.refused, "closed_at_switch": self.closed_at_switch,
                       "lb_conns": self.lb_conns, "lb_hellos": self.lb_hellos,
                       "lb_refused": self.lb_refused,
                       "service_ids": [str(x) for x in self.service_ids]}
            writer.write((json.dumps(out) + "\n").encode())
            await writer.drain()
        writer.close()


def control(port, line):
    """Sends one control line to a relay process; returns its JSON answer."""
    import json
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((line + "\n").encode())
        f = s.makefile("r")
        return json.loads(f.readline())


def update_in_thread(uri, db, coll, doc_id, v):
    """A test's write for the relay to hold: sets v of {_id: doc_id} through uri (pymongo,
    no retry) in a thread. Returns (thread, outcome list: "acknowledged" or the error's
    class name)."""
    import threading
    import pymongo
    from pymongo.errors import PyMongoError
    out = []

    def run():
        c = pymongo.MongoClient(uri, retryWrites=False, serverSelectionTimeoutMS=5000)
        try:
            c[db][coll].update_one({"_id": doc_id}, {"$set": {"v": v}})
            out.append("acknowledged")
        except PyMongoError as e:
            out.append(type(e).__name__)
        finally:
            c.close()
    th = threading.Thread(target=run)
    th.start()
    return th, out


def main():
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--ferret", required=True, help="PORT_A,PORT_B")
    p.add_argument("--listen", required=True, help="PORT_A,PORT_B")
    p.add_argument("--control", type=int, required=True)
    p.add_argument("--log")
    p.add_argument("--mongos", action="store_true", help="two mongos servers, not a set")
    p.add_argument("--lb", action="store_true",
                   help="a load balancer (the first --listen port) in front of two mongos")
    a = p.parse_args()
    relay = Relay([int(x) for x in a.ferret.split(",")], [int(x) for x in a.listen.split(",")],
                  log=a.log, mongos=a.mongos, lb=a.lb)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    relay.loop = loop
    for i in range(1 if relay.lb else 2):
        loop.run_until_complete(asyncio.start_server(
            lambda r, w, i=i: relay._serve(i, r, w), "127.0.0.1", relay.listen[i]))
    loop.run_until_complete(asyncio.start_server(relay._control, "127.0.0.1", a.control))
    relay._log("listening %s %s control %d" % (relay.addr(0), relay.addr(1), a.control))
    loop.run_forever()


if __name__ == "__main__":
    main()
