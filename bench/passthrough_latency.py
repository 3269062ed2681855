#!/usr/bin/env python3
"""bench/passthrough_latency.py: pass-through latency of a simple find,
directly against the upstream and through mongocache, measured side by side.

Runs R rounds; each round times N finds {_id: k} on one connection per
target, alternating which target goes first, and records the median. Prints
per-round medians and the median of the per-round ratios (proxy / direct).
Numbers on a 2-core VM move by tens of percent between runs: only the ratio
from one run means anything.

usage: passthrough_latency.py DIRECT_URI PROXY_URI [--rounds 5] [--n 2000]
"""
import argparse
import statistics
import time

import pymongo


def one_round(client, n):
    coll = client.bench.items
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        coll.find_one({"_id": i % 100})
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("direct")
    ap.add_argument("proxy")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()

    direct = pymongo.MongoClient(args.direct, serverSelectionTimeoutMS=5000)
    proxy = pymongo.MongoClient(args.proxy, serverSelectionTimeoutMS=5000)
    direct.bench.items.drop()
    direct.bench.items.insert_many([{"_id": i, "name": "item %d" % i, "n": i} for i in range(100)])
    for c in (direct, proxy):  # warm-up, excluded
        one_round(c, 200)

    ratios = []
    for r in range(args.rounds):
        order = [("direct", direct), ("proxy", proxy)]
        if r % 2:
            order.reverse()
        res = {name: one_round(c, args.n) for name, c in order}
        ratios.append(res["proxy"] / res["direct"])
        print("round %d: direct p50 %.1f us, through mongocache p50 %.1f us, ratio %.2f"
              % (r + 1, res["direct"], res["proxy"], ratios[-1]))
    print("pass-through p50 ratio (median of %d rounds): %.2f  [min %.2f, max %.2f]"
          % (args.rounds, statistics.median(ratios), min(ratios), max(ratios)))


if __name__ == "__main__":
    main()
