#!/usr/bin/env bash
# bench/idle_conn.sh [N]: mongocache's memory per idle client connection
# after a driver's handshake. Opens N connections (default 10,000, fewer when
# the descriptor limit cannot hold a client and an upstream socket for each),
# each sends the hello a driver sends first (client metadata, compression,
# helloOk) and reads its reply, then stays open and silent. Prints the rise
# of mongocache's VmRSS over the N connections, divided by N. Kernel socket
# buffers are not in VmRSS: this is the proxy's own memory (its structures,
# libevent's, malloc's). A count of bytes, not a timing. Target (issue 9):
# <= 2 KB per idle connection.
#
# Environment: BUILD_DIR (default ./_build) holding mongocache and
# bench/mcload; MONGOCACHE, MCLOAD override each binary.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=${BUILD_DIR:-$here/../_build}
MONGOCACHE=${MONGOCACHE:-$BUILD_DIR/mongocache}
MCLOAD=${MCLOAD:-$BUILD_DIR/bench/mcload}
[ -x "$MONGOCACHE" ] && [ -x "$MCLOAD" ] || { echo "idle_conn.sh: build first ($BUILD_DIR)" >&2; exit 2; }

ulimit -n "$(ulimit -Hn)"
fit=$(( ($(ulimit -n) - 64) / 2 - 200 )) # 200: the warm-up connections
N=${1:-10000}
[ "$N" -gt "$fit" ] && N=$fit

OUT=$(mktemp -d)
mkdir -p "$OUT/logs"
SUT_CPU=${SUT_CPU:-0-$(($(nproc) - 1))}
# shellcheck source=bench/ab_lib.sh
. "$here/ab_lib.sh" # start, free_port, wait_port; cleanup stops them at exit
trap 'cleanup; rm -rf "$OUT"' EXIT

up_port=$(free_port)
start upstream "$up_port" "$MCLOAD" --server --port "$up_port" --size 256 || exit 1
mc_port=$(free_port)
start mongocache "$mc_port" "$MONGOCACHE" --listen "127.0.0.1:$mc_port" \
    --upstream "mongodb://127.0.0.1:$up_port" --log-level warn --max-clients $((N + 300)) || exit 1
mc_pid=${PIDS[-1]}

python3 - "$mc_port" "$mc_pid" "$N" <<'EOF'
import socket, struct, sys, time

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def enc(doc):
    """A small BSON encoder: str, int, bool, dict, list."""
    out = b""
    for k, v in doc.items():
        key = k.encode() + b"\0"
        if isinstance(v, bool):
            out += b"\x08" + key + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            out += b"\x10" + key + struct.pack("<i", v)
        elif isinstance(v, str):
            b = v.encode() + b"\0"
            out += b"\x02" + key + struct.pack("<i", len(b)) + b
        elif isinstance(v, dict):
            out += b"\x03" + key + enc(v)
        elif isinstance(v, list):
            out += b"\x04" + key + enc({str(i): x for i, x in enumerate(v)})
    return struct.pack("<i", len(out) + 5) + out + b"\0"


def rss():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024


def hello(rid):
    body = enc({
        "hello": 1, "helloOk": True,
        "client": {"driver": {"name": "nodejs|Mongoose", "version": "6.3.0|8.1.0"},
                   "platform": "Node.js v20.11.0, LE",
                   "os": {"name": "linux", "architecture": "x64", "version": "6.1.0",
                          "type": "Linux"}},
        "compression": ["none"], "$db": "admin"})
    msg = struct.pack("<I", 0) + b"\0" + body
    return struct.pack("<iiii", 16 + len(msg), rid, 0, 2013) + msg


def read_reply(s):
    head = b""
    while len(head) < 16:
        chunk = s.recv(16 - len(head))
        if not chunk:
            raise SystemExit("idle_conn: the proxy closed a connection during the handshake")
        head += chunk
    left = struct.unpack("<i", head[:4])[0] - 16
    while left > 0:
        chunk = s.recv(left)
        if not chunk:
            raise SystemExit("idle_conn: the proxy closed a connection during the handshake")
        left -= len(chunk)


def open_some(count, keep):
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(hello(i + 1))
        read_reply(s)
        keep.append(s)


warm = []
open_some(200, warm)  # the first connections grow one-time tables: not counted
time.sleep(0.5)
before = rss()
conns = []
open_some(n, conns)
time.sleep(1.0)
after = rss()
print("idle connections: %d, mongocache VmRSS %d -> %d KB: %d bytes per idle connection "
      "(target <= 2048)" % (n, before // 1024, after // 1024, (after - before) // n))
EOF
