#!/usr/bin/env python3
"""bench/tls_ab.py: what TLS costs mongocache per request, as a same-run ratio.

Two proxies run side by side on one CPU, identical but for TLS: one takes
plaintext clients, the other TLS clients (tls_cert_file); for the
pass-through both ways case the TLS one also reaches the upstream over TLS
(tls=true), through a TLS-terminating relay in front of the same canned
upstream. A Python asyncio client (on the other CPU) drives each in turn,
closed loop, interleaved A B A B ...; what is compared is the proxy's own CPU
time per request (utime + stime from /proc/PID/stat over the measured
requests), which the client's speed does not change. Throughput is printed
but means little here: the Python client is the bottleneck.

    bench/tls_ab.py [--build DIR] [--reps N] [--seconds S] [--connections C]

Scenarios: hit (cache on, every key warmed: the proxy's own reply, encrypted),
pass (cache off: the request decrypted, forwarded, the reply relayed and
encrypted), pass-relayed (pass, both proxies behind the same Python relay in
plaintext: the relay's latency changes how the proxy's work batches, so this
is the control for the next), pass-both (cache off, TLS to the upstream too:
A behind the plaintext relay, B behind the same relay code speaking TLS).
Needs: the build's mongocache and bench/mcload, openssl, taskset.
"""

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import mctest  # noqa: E402

SUT_CPU, LOAD_CPU = "0", "1"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, secs=10):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d did not open" % port)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def make_certs(d):
    def run(*a):
        subprocess.run(a, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/ca.key",
        "-out", d + "/ca.pem", "-days", "2", "-subj", "/CN=bench ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/s.key", "-out",
        d + "/s.csr", "-subj", "/CN=localhost")
    with open(d + "/s.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", d + "/s.csr", "-CA", d + "/ca.pem", "-CAkey",
        d + "/ca.key", "-CAcreateserial", "-out", d + "/s.pem", "-days", "2", "-extfile",
        d + "/s.ext")


def find_msg(k, rid):
    return mctest.op_msg({"find": "items", "filter": {"_id": k}, "limit": 1, "$db": "bench"},
                         request_id=rid)


async def one_conn(port, ctx, keys, stop_at, counter, idx):
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname="localhost" if ctx else None)
    k = idx
    rid = idx * 1000000
    while time.monotonic() < stop_at:
        rid += 1
        w.write(find_msg(k % keys, rid))
        head = await r.readexactly(4)
        (n,) = struct.unpack("<i", head)
        await r.readexactly(n - 4)
        counter[0] += 1
        k += 1
    w.close()


def drive(port, ctx, seconds, conns, keys):
    counter = [0]

    async def main():
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(one_conn(port, ctx, keys, stop_at, counter, i)
                               for i in range(conns)))

    asyncio.run(main())
    return counter[0]


async def relay_serve(target, cert, key, port):
    ctx = None
    if cert != "-":  # "-": a plaintext relay, the same code without TLS
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)

    async def serve(r, w):
        ur, uw = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(mctest.pipe(r, uw), mctest.pipe(ur, w))

    srv = await asyncio.start_server(serve, "127.0.0.1", port, ssl=ctx)
    await srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "_build"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--relay", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.relay:
        target, cert, key, port = a.relay
        asyncio.run(relay_serve(int(target), cert, key, int(port)))
        return
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    tmp = tempfile.mkdtemp(prefix="tls_ab.")
    procs = []

    def start(cpu, *argv):
        p = subprocess.Popen(["taskset", "-c", cpu] + list(argv), stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(tmp, "log.%d" % len(procs)), "w"))
        procs.append(p)
        return p

    try:
        make_certs(tmp)
        up = free_port()
        start(SUT_CPU, os.path.join(a.build, "bench", "mcload"), "--server", "--port", str(up))
        wait_port(up)
        relay, plain_relay = free_port(), free_port()
        start(LOAD_CPU, sys.executable, os.path.abspath(__file__), "--relay", str(up),
              tmp + "/s.pem", tmp + "/s.key", str(relay))
        start(LOAD_CPU, sys.executable, os.path.abspath(__file__), "--relay", str(up),
              "-", "-", str(plain_relay))
        wait_port(relay)
        wait_port(plain_relay)
        mc = os.path.join(a.build, "mongocache")
        common = ["--http-listen", "", "--advice", "off", "--log-level", "warn",
                  "--slow-request-ms", "0"]
        tls = ["--tls-cert-file", tmp + "/s.pem", "--tls-key-file", tmp + "/s.key"]
        up_plain = "mongodb://127.0.0.1:%d" % up
        up_tls = "mongodb://127.0.0.1:%d/?tls=true&tlsCAFile=%s/ca.pem" % (relay, tmp)
        up_relayed = "mongodb://127.0.0.1:%d" % plain_relay
        cctx = ssl.create_default_context(cafile=tmp + "/ca.pem")
        scenarios = {
            "hit": (["--cache", "on"], up_plain, up_plain),
            "pass": (["--cache", "off"], up_plain, up_plain),
            "pass-relayed": (["--cache", "off"], up_relayed, up_relayed),
            "pass-both": (["--cache", "off"], up_relayed, up_tls),
        }
        print("| scenario | plaintext us/req | TLS us/req | ratio | req/s plain | req/s TLS |")
        print("|---|---|---|---|---|---|")
        for name, (extra, a_up, b_up) in scenarios.items():
            pa, pb = free_port(), free_port()
            A = start(SUT_CPU, mc, "--listen", "127.0.0.1:%d" % pa, "--upstream", a_up,
                      *common, *extra)
            B = start(SUT_CPU, mc, "--listen", "127.0.0.1:%d" % pb, "--upstream", b_up,
                      *common, *extra, *tls)
            wait_port(pa)
            wait_port(pb)
            drive(pa, None, 1.0, a.connections, a.keys)  # warm-up: keys cached, conns made
            drive(pb, cctx, 1.0, a.connections, a.keys)
            cost = {"A": [0.0, 0], "B": [0.0, 0]}
            for _ in range(a.reps):
                for label, proc, port, ctx in (("A", A, pa, None), ("B", B, pb, cctx)):
                    c0 = cpu_seconds(proc.pid)
                    n = drive(port, ctx, a.seconds, a.connections, a.keys)
                    cost[label][0] += cpu_seconds(proc.pid) - c0
                    cost[label][1] += n
            ua = cost["A"][0] / cost["A"][1] * 1e6
            ub = cost["B"][0] / cost["B"][1] * 1e6
            print("| %s | %.1f | %.1f | %.2f | %.0f | %.0f |" % (
                name, ua, ub, ub / ua, cost["A"][1] / (a.reps * a.seconds),
                cost["B"][1] / (a.reps * a.seconds)), flush=True)
            for p in (A, B):
                p.terminate()
                p.wait()
                procs.remove(p)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
