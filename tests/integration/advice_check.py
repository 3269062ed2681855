#!/usr/bin/env python3
"""tests/integration/advice_check.py: index advice through the proxy (issue 7).

Groups, each against a proxy started by test_advice.sh (advice_interval
short), FerretDB as the upstream; prints unnumbered TAP lines.

  workload   an unindexed equality + sort + range query on a 5,000-document
             collection gets exactly the expected index (and the texts);
             _id lookups, an indexed query and a small collection get none;
             createIndex through the proxy withdraws it at the next run,
             createIndex on the server (around the proxy) within two
  off        advice = off: the server sees no listIndexes and no explain
             (FerretDB's own request counters, on its debug address)
  auth       FerretDB with authentication: the advisor with advice_uri
             credentials works; without them it says unauthorized; clients
             are served either way
  failures   the advisor's server (a second FerretDB, or a fake answering
             junk) killed, paused and lying: client traffic through the
             proxy is unaffected (errors 0, latency measured)
"""
import argparse
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import tap  # noqa: E402


def get(port, path):
    """GET path on the proxy's HTTP port, parsed; raises when it does not answer 200."""
    status, _, body = mctest.http(port, path)
    if status != 200:
        raise AssertionError("%s answered %d" % (path, status))
    return json.loads(body)


def advice_of(port, ns=None):
    a = get(port, "/advice")
    items = a.get("advice", [])
    return a, [i for i in items if ns is None or i["namespace"] == ns]


def wait_advice(port, pred, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = get(port, "/advice")
        if pred(last):
            return True, last
        time.sleep(0.1)
    return False, last


def runs(a):
    return a.get("advisor", {}).get("runs", 0)


def wait_runs(port, n, timeout):
    """Waits until the advisor has finished n more runs than now."""
    start = runs(get(port, "/advice"))
    return wait_advice(port, lambda a: runs(a) >= start + n, timeout)


def client(uri, **kw):
    import pymongo
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000, **kw)


def seed(direct, db, coll, n):
    c = direct[db][coll]
    c.drop()
    genres = ["fantasy", "fiction", "history", "poetry"]
    c.insert_many([{"_id": i, "author": "a%d" % (i % 50), "year": 1900 + i % 120,
                    "published": i % 365, "genre": genres[i % 4], "isbn": "isbn-%d" % i}
                   for i in range(n)])


def metric(port, command):
    """FerretDB's count of a command it received (its Prometheus metrics)."""
    text = mctest.http(port, "/debug/metrics")[2].decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("ferretdb_client_requests_total{") and \
                'command="%s"' % command in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


# ---- groups ------------------------------------------------------------------------------------


def group_workload(a):
    direct = client(a.direct)
    seed(direct, "app", "books", 5000)
    seed(direct, "app", "small", 200)
    direct.app.books.create_index([("isbn", 1)])
    proxy = client(a.proxy)
    books = proxy.app.books
    for i in range(20):
        list(books.find({"author": "a%d" % i, "year": {"$gte": 1950 + i}}).sort("published", -1))
        books.find_one({"_id": i})
        books.find_one({"isbn": "isbn-%d" % i})
        list(proxy.app.small.find({"genre": "poetry"}))
    want_ns = "app.books"
    want_keys = {"author": 1, "published": -1, "year": 1}
    # Until the advisor has seen all 20 (a run may end while they are on their way).
    ok, adv = wait_advice(a.http, lambda x: any(i["namespace"] == want_ns and i["queries"] >= 20
                                                for i in x["advice"]), 10 * a.interval)
    items = [i for i in adv["advice"] if i["namespace"] == want_ns] if adv else []
    tap(ok and len(items) == 1, "workload: exactly one advice for app.books", adv)
    it = items[0] if items else {}
    tap(list(it.get("index", {}).items()) == list(want_keys.items()) and
        it.get("name") == "author_1_published_-1_year_1",
        "workload: the index is equality, sort, range: {author: 1, published: -1, year: 1}", it)
    tap(it.get("evidence") == "indexes" and it.get("reason") == "no_usable_index" and
        it.get("documents", 0) >= 5000 and it.get("queries", 0) >= 20,
        "workload: evidence indexes (FerretDB's explain is no mongod plan), reason, counts", it)
    tap(it.get("mongosh") == 'db.getSiblingDB("app").books.createIndex({author: 1, '
        'published: -1, year: 1}, {name: "author_1_published_-1_year_1"})' and
        it.get("mongoose") == "bookSchema.index({author: 1, published: -1, year: 1})",
        "workload: ready-to-paste mongosh and Mongoose texts", it.get("mongosh"),
        it.get("mongoose"))
    shapes = it.get("shapes", [])
    tap(any("author" in s and "?" in s for s in shapes) and
        not any("a1" in s or "1951" in s for s in shapes),
        "workload: the shapes it serves show no value", shapes)
    others = [i for i in adv["advice"] if i["namespace"] != want_ns] if adv else []
    tap(not others and not any("isbn" in json.dumps(i) or "_id" in i["name"] for i in items),
        "workload: none for _id lookups, the indexed query or the 200-document collection",
        others)
    stats = get(a.http, "/stats")
    tap(stats.get("advice", {}).get("open") == 1, "workload: /stats advice.open is 1",
        stats.get("advice"))

    # createIndex through the proxy: gone at the next run.
    books.create_index([("author", 1), ("published", -1), ("year", 1)])
    ok, adv = wait_runs(a.http, 2, 10 * a.interval)
    gone = ok and not [i for i in adv["advice"] if i["namespace"] == want_ns]
    tap(gone, "workload: createIndex through the proxy withdraws it at the next run", adv)

    # A second unindexed shape; its index created on the server directly.
    for i in range(10):
        list(books.find({"genre": "fantasy", "year": {"$lt": 1990 + i}}))
    ok, adv = wait_advice(a.http, lambda x: any(i["name"] == "genre_1_year_1"
                                                for i in x["advice"]), 10 * a.interval)
    tap(ok, "workload: a second shape gets genre_1_year_1", adv)
    direct.app.books.create_index([("genre", 1), ("year", 1)])
    start = runs(get(a.http, "/advice"))
    ok, adv = wait_advice(a.http, lambda x: not any(i["name"] == "genre_1_year_1"
                                                    for i in x["advice"]), 10 * a.interval)
    tap(ok and runs(adv) - start <= 2,
        "workload: createIndex on the server, around the proxy, withdraws it within two runs "
        "(%s)" % (runs(adv) - start if adv else "?"), adv)


def group_off(a):
    direct = client(a.direct)
    seed(direct, "off", "books", 2000)
    before = (metric(a.ferret_debug, "listIndexes"), metric(a.ferret_debug, "explain"))
    proxy = client(a.proxy)
    for i in range(30):
        list(proxy.off.books.find({"author": "a%d" % i}).sort("year", 1))
    time.sleep(5 * a.interval)
    after = (metric(a.ferret_debug, "listIndexes"), metric(a.ferret_debug, "explain"))
    adv = get(a.http, "/advice")
    tap(after == before and adv.get("advisor", {}).get("state") == "off",
        "off: with advice = off the server saw no listIndexes and no explain "
        "(%s -> %s)" % (before, after), adv)


def group_sampled(a):
    """A proxy with advice_exact_rate 20 and no cache: past the first second, one
    pass-through in k has its shape derived and counts for k. The advice's count
    estimates what was sent; /stats says how many were passed over."""
    direct = client(a.direct)
    seed(direct, "sampled", "books", 2000)
    proxy = client(a.proxy)
    n = 0
    start = time.monotonic()
    while n < 3000 and (n < 300 or time.monotonic() - start < 2.5):
        proxy.sampled.books.find_one({"author": "a%d" % (n % 50), "year": {"$gt": 1900 + n % 7}})
        n += 1
    rate = n / (time.monotonic() - start)
    ok, adv = wait_advice(a.http, lambda x: any(i["namespace"] == "sampled.books" and
                                                i["queries"] >= 0.6 * n for i in x["advice"]),
                          10 * a.interval)
    items = [i for i in adv["advice"] if i["namespace"] == "sampled.books"] if adv else []
    q = items[0]["queries"] if items else 0
    tap(ok and len(items) == 1 and 0.6 * n <= q <= 1.4 * n,
        "sampled: %d finds at %.0f a second (exact up to 20): the advice counts %d, an estimate "
        "within 40 %%" % (n, rate, q), items)
    st = get(a.http, "/stats").get("advice", {})
    tap(st.get("requests_not_sampled", 0) > 0 and st.get("sampling_one_in", 0) >= 1 and
        st.get("requests_not_sampled", 0) < n,
        "sampled: /stats shows the commands passed over (%s of %d) and k" %
        (st.get("requests_not_sampled"), n), st)


def group_auth(a):
    # The proxy under test has advice_uri with the advisor's own credentials
    # (a.with_creds) or none (a.without): clients log in themselves.
    seed(client(a.direct, username=a.user, password=a.password, authSource="admin"),
         "sec", "books", 2000)
    for port, http, want in ((a.port_with, a.http_with, "ok"),
                             (a.port_without, a.http_without, "unauthorized")):
        c = client("mongodb://127.0.0.1:%d/" % port, username=a.user, password=a.password,
                   authSource="admin")
        errors = 0
        for i in range(20):
            try:
                list(c.sec.books.find({"author": "a%d" % i}).sort("year", 1))
            except Exception:
                errors += 1
        ok, adv = wait_advice(http, lambda x: x.get("advisor", {}).get("state") == want,
                              10 * a.interval)
        tap(ok and errors == 0,
            "auth: the advisor %s credentials: state %s; clients served (%d errors)"
            % ("with" if want == "ok" else "without", want, errors),
            adv.get("advisor") if adv else None)
        if want == "ok":
            ok, adv = wait_advice(http, lambda x: any(i["namespace"] == "sec.books"
                                                      for i in x["advice"]), 10 * a.interval)
            tap(ok, "auth: with credentials it advises author_1_year_1",
                adv.get("advice") if adv else None)
        c.close()


def group_failures(a):
    """The advisor's server (a.advisor_pid, another FerretDB) killed and paused,
    then a fake answering junk (a.proxy_junk): client traffic is unaffected."""
    direct = client(a.direct)
    seed(direct, "fail", "books", 2000)

    def traffic(uri, seconds):
        c = client(uri, socketTimeoutMS=3000)
        lat, errors, t_end = [], 0, time.monotonic() + seconds
        i = 0
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            try:
                list(c.fail.books.find({"author": "a%d" % (i % 50)}, comment="mongocache:nocache"))
            except Exception:
                errors += 1
            lat.append((time.monotonic() - t0) * 1000)
            i += 1
        c.close()
        lat.sort()
        return errors, lat[len(lat) // 2] if lat else 0, lat[-1] if lat else 0, len(lat)

    base = traffic(a.proxy, 2)
    os.kill(a.advisor_pid, signal.SIGSTOP)
    paused = traffic(a.proxy, 3)
    os.kill(a.advisor_pid, signal.SIGCONT)
    os.kill(a.advisor_pid, signal.SIGKILL)
    killed = traffic(a.proxy, 3)
    ok, adv = wait_advice(a.http, lambda x: x.get("advisor", {}).get("state") == "unreachable",
                          20 * a.interval + 10)
    junk = traffic(a.proxy_junk, 3)
    ok2, adv2 = wait_advice(a.http_junk, lambda x: x.get("advisor", {}).get("state") == "error",
                            20 * a.interval + 10)
    print("# traffic (errors, p50 ms, max ms, n): baseline %s; advisor's server paused %s, "
          "killed %s; junk %s" % (base, paused, killed, junk))
    tap(base[0] == 0 and paused[0] == 0 and killed[0] == 0 and junk[0] == 0,
        "failures: no client error while the advisor's server is paused, killed or lying")
    tap(max(paused[2], killed[2], junk[2]) < max(10 * base[2], 500),
        "failures: client latency stays bounded (max %.1f / %.1f / %.1f ms, baseline %.1f)"
        % (paused[2], killed[2], junk[2], base[2]))
    tap(ok, "failures: the advisor reports unreachable", adv.get("advisor") if adv else None)
    tap(ok2 and "junk" not in json.dumps(adv2.get("advice", [])),
        "failures: a server answering junk: state error, no advice from it",
        adv2.get("advisor") if adv2 else None)


GROUPS = {"workload": group_workload, "off": group_off, "auth": group_auth,
          "failures": group_failures, "sampled": group_sampled}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("group", choices=sorted(GROUPS))
    p.add_argument("--proxy", default="")
    p.add_argument("--http", type=int, default=0)
    p.add_argument("--direct", default="")
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--ferret-debug", type=int, default=0)
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--port-with", type=int, default=0)
    p.add_argument("--http-with", type=int, default=0)
    p.add_argument("--port-without", type=int, default=0)
    p.add_argument("--http-without", type=int, default=0)
    p.add_argument("--advisor-pid", type=int, default=0)
    p.add_argument("--proxy-junk", default="")
    p.add_argument("--http-junk", type=int, default=0)
    a = p.parse_args()
    GROUPS[a.group](a)
    mctest.plan()


if __name__ == "__main__":
    main()
