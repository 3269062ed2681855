"""tests/integration/metrics_check.py: GET /metrics against GET /stats.

Run by test_metrics.sh against a proxy with the Redis tier in front of
FerretDB. Prints unnumbered TAP lines ("ok - ..."), then its plan (mctest.py). The exposition is parsed
by prometheus_client's own text parser (a real one, not ours); the names
and JSON paths of every counter come from conf/counters.def, the list both
renderings are generated from, so a counter missing or different in either
output fails here.

  metrics_check.py PROXY_URI HTTP_PORT SRCDIR TOP N_NAMESPACES
"""
import os
import re
import sys
import threading
import time

import bson
import pymongo
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import tap as check  # noqa: E402

PROXY_URI, HTTP, SRCDIR, TOP, N_NS = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(
    sys.argv[5])


def get(path):
    status, headers, body = mctest.http(HTTP, path, timeout=10)
    if status != 200:
        raise AssertionError("%s answered %d" % (path, status))
    return headers, body


def stats():
    return mctest.stats(HTTP, timeout=10)


def scrape():
    headers, body = get("/metrics")
    families = list(text_string_to_metric_families(body.decode("utf-8")))
    samples = {}
    for f in families:
        for s in f.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return headers, body, families, samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


# The rows of the one list: group, JSON name, kind, unit, Prometheus name.
ROW = re.compile(r'^STAT_([A-Z]+)\((\w+), (\w+), (\w+), "([a-z0-9_]+)"', re.M)
with open(SRCDIR + "/conf/counters.def") as f:
    ROWS = [m.groups() for m in ROW.finditer(f.read())]


def stable(s):
    """A /stats document without what moves by itself (time, process)."""
    s = dict(s)
    for k in ("uptime_seconds", "process"):
        s.pop(k, None)
    return s


def quiet_snapshot():
    """/stats and /metrics with nothing in between (retried while traffic moved them)."""
    for _ in range(10):
        s1 = stats()
        m = scrape()
        s2 = stats()
        if stable(s1) == stable(s2):
            return s1, m
        time.sleep(0.2)
    raise SystemExit("Bail out! /stats kept moving with no traffic")


def hist_counts(samples):
    out = {}
    for (name, labels), v in samples.items():
        if name == "mongocache_request_duration_seconds_count":
            out[dict(labels)["outcome"]] = v
    return out


def check_monotonic(before, after, what):
    """Every *_total series of before is in after, not lower."""
    down = ["%s%s: %s -> %s" % (n, dict(lab), v, after.get((n, lab)))
            for (n, lab), v in sorted(before.items())
            if n.endswith("_total") and (after.get((n, lab)) is None or after[(n, lab)] < v)]
    n = sum(1 for (n, _) in before if n.endswith("_total"))
    check(not down and n > 50, "no counter series stepped down or vanished (%d): %s" % (n, what),
          *down)


def many_namespaces(first, count, errors):
    """count finds, one per collection, pipelined 250 at a time on one connection."""
    host, port = PROXY_URI.split("//")[1].rstrip("/").split(":")
    try:
        s = mctest.Conn((host, int(port)), timeout=60, decoder=bson.decode)
        i = first
        while i < first + count:
            n = min(250, first + count - i)
            s.send(b"".join(mctest.op_msg(bson.encode({"find": "c%d" % j, "filter": {},
                                                       "$db": "ns10k"}), request_id=j + 1)
                            for j in range(i, i + n)))
            for _ in range(n):
                s.recv_msg(60)
            i += n
        s.close()
    except Exception as e:  # reported by the caller
        errors.append(repr(e))


def main():
    client = pymongo.MongoClient(PROXY_URI, heartbeatFrequencyMS=60000, directConnection=True)
    db = client.mt
    db.command("ping")
    db.c.insert_many([{"x": i % 3, "i": i} for i in range(30)])
    db.command("ping")

    headers, body, families, samples = scrape()
    check(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          "/metrics is the text exposition format 0.0.4", headers.get("Content-Type"))
    names = [f.name for f in families]
    check(all(n.startswith("mongocache_") for n in names) and len(names) > 60,
          "%d families, every one named mongocache_*" % len(names),
          [n for n in names if not n.startswith("mongocache_")])
    before = hist_counts(samples)
    hits0 = value(samples, "mongocache_cache_hits_total")
    misses0 = value(samples, "mongocache_cache_misses_total")
    up0 = value(samples, "mongocache_upstream_round_trip_seconds_count")

    # The known workload: 1 miss, 3 hits, 3 pass-through, 2 errors (ok: 0 from the server).
    list(db.c.find({"x": 1}))
    for _ in range(3):
        list(db.c.find({"x": 1}))
    db.command("ping")
    db.command("ping")
    db.c.insert_one({"x": 9})
    for _ in range(2):
        try:
            db.command("noSuchCommandForMetricsTest")
        except pymongo.errors.OperationFailure:
            pass

    s, (headers, body, families, samples) = quiet_snapshot()
    after = hist_counts(samples)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("hit", "miss", "pass_through", "error")}
    check(delta == {"hit": 3, "miss": 1, "pass_through": 3, "error": 2},
          "request histogram counts equal the requests sent, by outcome", delta)
    check(value(samples, "mongocache_cache_hits_total") - hits0 == 3 and
          value(samples, "mongocache_cache_misses_total") - misses0 == 1,
          "... and the cache's hit and miss counters agree")
    check(value(samples, "mongocache_upstream_round_trip_seconds_count") - up0 == 6,
          "upstream round trips: the miss, the pass-through and the errors (6)",
          value(samples, "mongocache_upstream_round_trip_seconds_count") - up0)
    redis_n = value(samples, "mongocache_redis_round_trip_seconds_count")
    check(redis_n is not None and 0 < redis_n <= value(samples, "mongocache_redis_commands_total"),
          "Redis round trips counted, at most one per command sent", redis_n)

    # Every histogram: le ascending, counts cumulative, +Inf equals _count.
    bad = []
    n_hist = 0
    for f in families:
        if f.type != "histogram":
            continue
        series = {}
        for smp in f.samples:
            if smp.name.endswith("_bucket"):
                key = tuple(sorted((k, v) for k, v in smp.labels.items() if k != "le"))
                series.setdefault(key, []).append((float(smp.labels["le"]), smp.value))
        for key, buckets in series.items():
            n_hist += 1
            les = [b[0] for b in buckets]
            counts = [b[1] for b in buckets]
            count = value(samples, f.name + "_count", **dict(key))
            if les != sorted(les) or les[-1] != float("inf") or len(set(les)) != len(les):
                bad.append((f.name, key, "le order", les))
            if any(b > a for a, b in zip(counts[1:], counts)):
                bad.append((f.name, key, "not cumulative", counts))
            if counts[-1] != count:
                bad.append((f.name, key, "+Inf != _count", counts[-1], count))
    check(not bad and n_hist == 6,
          "%d histogram series: buckets cumulative and monotone, +Inf = _count" % n_hist, bad)

    # Every row of conf/counters.def: the same value in both outputs.
    where = {
        "PROXY": lambda name: s["counters"][name],
        "CACHE": lambda name: s["cache"][name],
        "REDIS": lambda name: s["cache"]["redis"]["counters"][name],
        "ADVICE": lambda name: s["advice"][name],
    }
    compared, diff = 0, []
    # Every group of the list is compared here or deliberately left to the checks below.
    left = {r[0] for r in ROWS} - set(where)
    if left != {"NAMESPACE", "PROCESS", "REASON"}:
        diff.append("groups neither compared nor checked elsewhere: %s" % sorted(left))
    for group, name, kind, unit, prom in ROWS:
        if group not in where:
            continue
        got = value(samples, "mongocache_" + prom)
        want = where[group](name)
        compared += 1
        if got != want:
            diff.append("%s %s: /metrics %s, /stats %s" % (group, name, got, want))
    check(not diff and compared == sum(1 for r in ROWS if r[0] in where) >= 64,
          "every counter and gauge of the list: /metrics equals /stats (%d)" % compared, *diff)
    reasons = s["cache"]["bypass_reasons"]
    diff = [r for (n, labels), v in samples.items()
            if n == "mongocache_cache_bypass_reasons_total"
            for r in [dict(labels)["reason"]] if v != reasons.get(r, 0)]
    check(not diff and sum(reasons.values()) > 0, "reads not cached by reason: /metrics equals /stats",
          diff, reasons)
    procs = {"resident_memory_bytes": 1 << 20, "open_fds": 5, "max_fds": 64}
    check(all(value(samples, "mongocache_process_" + k) >= v for k, v in procs.items()) and
          abs(value(samples, "mongocache_process_start_time_seconds") - time.time()) < 3600,
          "process metrics: resident memory, fds, start time",
          {k: value(samples, "mongocache_process_" + k) for k in procs})
    ns = value(samples, "mongocache_namespace_hits_total", namespace="mt.c")
    check(ns == s["namespaces"]["mt.c"]["hits"] == 3,
          "namespace mt.c: hits by label equal /stats", ns, s["namespaces"].get("mt.c"))

    # Counters never step down, "other" included: namespaces overtake the
    # labelled ones between two scrapes (ov4 and ov5, in "other" at the first,
    # become the most read), and later 10,000 namespaces make the cache forget
    # idle records.
    for i in range(4):
        for _ in range(5):
            list(db["ov%d" % i].find({"k": 1}))  # 1 miss, 4 hits: 5 reads
    for i in (4, 5):
        for k in range(3):
            list(db["ov%d" % i].find({"k": k}))  # 3 misses
    snap_a = quiet_snapshot()[1][3]
    for i in (4, 5):
        for k in range(3, 13):
            list(db["ov%d" % i].find({"k": k}))  # 10 more misses: the most read now
    snap_b = quiet_snapshot()[1][3]
    check_monotonic(snap_a, snap_b, "a namespace overtaking the top %d" % TOP)

    # 10,000 namespaces: the label stays bounded, the totals still add up.
    errors = []
    per = N_NS // 4
    threads = [threading.Thread(target=many_namespaces, args=(k * per, per, errors))
               for k in range(4)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "%d finds on %d collections in %.1f s" % (N_NS, N_NS, time.time() - t0),
          *errors)
    s, (headers, body, families, samples) = quiet_snapshot()
    check_monotonic(snap_b, samples, "%d namespaces" % N_NS)
    snap_c = samples
    labels = {}
    for (n, lab), v in samples.items():
        if n.startswith("mongocache_namespace_"):
            labels.setdefault(n, set()).add(dict(lab)["namespace"])
    sizes = {n: len(v) for n, v in labels.items()}
    check(len(sizes) == 4 and all(v == TOP + 1 for v in sizes.values()) and
          all("other" in v for v in labels.values()),
          "namespace label: at most metrics_namespaces (%d) + other per family" % TOP, sizes)
    check(len(body) < 64 * 1024, "/metrics stays small: %d bytes" % len(body))
    total = value(samples, "mongocache_cache_misses_total")
    other = s["namespaces_other"]
    # every namespace of the workload had exactly one miss
    # (but ov4 and ov5: 13 each)
    check(len(s["namespaces"]) == 100 and other["count"] + 100 == total - 24 and total > N_NS,
          "/stats: 100 namespaces by name, %d others summed (%d misses)" % (other["count"], total),
          s["cache"]["bypass_reasons"])
    # Emptying the cache releases the 10,000 records: the idle ones beyond
    # the table's bound are forgotten.
    client.admin.command({"mongocacheFlush": 1})  # (admin_commands on)
    list(db.after_flush.find({}))  # a new record: the idle ones beyond the bound go
    s, (headers, body, families, samples) = quiet_snapshot()
    forgotten = value(samples, "mongocache_cache_generation_records_forgotten_total")
    check(forgotten > 0, "the cache forgot idle namespace records (%d)" % forgotten)
    check_monotonic(snap_c, samples, "%d namespaces, records forgotten" % N_NS)
    sums = {}
    for c in ("hits", "misses"):
        sums[c] = (sum(v for (n, lab), v in samples.items()
                       if n == "mongocache_namespace_%s_total" % c),
                   value(samples, "mongocache_cache_%s_total" % c))
    check(all(a == b for a, b in sums.values()),
          "namespace hits and misses by label plus other equal the cache's (records forgotten: %d)"
          % forgotten, sums)
    client.close()
    mctest.plan()


main()
