"""tests/integration/notify_listen.py: stands in for systemd's side of the
sd_notify protocol. Binds an AF_UNIX datagram socket (a path, or "@name" for
the abstract namespace, as NOTIFY_SOCKET spells them), prints "LISTENING"
once bound, then one line per datagram received: the receiver's own
CLOCK_MONOTONIC time in microseconds, a tab, and the payload with each
newline written as "|" (other control bytes as \\xNN). Exits after
--seconds (default 30) or on SIGTERM.

usage: notify_listen.py SOCKET [--seconds N]
"""
import argparse
import signal
import socket
import sys
import time


def printable(data):
    out = []
    for b in data:
        if b == 0x0A:
            out.append("|")
        elif b < 0x20 or b >= 0x7F:
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    addr = args.socket
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    print("LISTENING", flush=True)
    deadline = time.monotonic() + args.seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return
        now_us = time.monotonic_ns() // 1000
        print("%d\t%s" % (now_us, printable(data)), flush=True)


if __name__ == "__main__":
    main()
