#!/usr/bin/env python3
"""tests/integration/dashboard_check.py: the dashboard (GET /) in a real
headless browser (Debian's chromium, driven by Selenium through Debian's
chromedriver), against a proxy started by test_dashboard.sh (http_token set,
the Redis tier, advice_interval short) in front of FerretDB. Prints
unnumbered TAP lines; exits 77 before any of them when the browser cannot
start.

What it checks, in order:
  - GET / without the token: the page, byte for byte the source file, under
    20 KB, with a restrictive Content-Security-Policy and no-store; the page
    uses no HTML parsing of data, no remote URL, no inline handler
  - loaded without the token, the page says a token is needed and shows no
    number; with the token entered, it reads the data
  - while pymongo repeats a cached read: hits per second above 0, misses 0,
    and the chart's newest point at 100 %
  - traffic stopped: what the page shows (hits, misses, hit ratio, entries,
    every namespace row) equals /stats read around it; every per-second rate
    is 0.0 and the totals by outcome (hit, miss, pass_through, error: the
    latency histograms' outcomes, each above 0) equal /stats'
    latency.request.<outcome>.count, all requests its counters.requests
  - the Redis tier's state and counters as /stats has them
  - a namespace named like HTML is shown as text, never as markup
  - the index advice of a scanning query, with its mongosh command exactly
    as /advice has it; the top shapes as /shapes has them (a missing /shapes
    fails)
  - invalidate through the page's button and dialog: a wrong token is
    refused and drops nothing; the right one drops the namespace's entries
    (the page says how many, /stats agrees, the next read is a miss); a
    missing POST route fails
  - flush through the page: no entry left
  - no script error and no CSP violation in the browser's console
  - a screenshot saved for the test's artifacts
"""
import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import tap  # noqa: E402

SKIP = 77
DB = "dash"
BOOKS = DB + ".books"
AUTHORS = DB + ".authors"
HOSTILE_COLL = "<img src=x onerror=alert(1)><b>bold</b>"
HOSTILE = DB + "." + HOSTILE_COLL
# The outcomes of the latency histograms, /metrics and the slow-request log.
OUTCOMES = ["hit", "miss", "pass_through", "error"]


def http(port, path, token=None, method="GET"):
    """(status, headers, body bytes) of one request to the HTTP endpoint."""
    return mctest.http(port, path, method, token, b"" if method == "POST" else None)


def stats(a):
    return mctest.stats(a.http, a.token)


def start_browser(a, tmp):
    """A headless chromium through chromedriver, or the reason it cannot start."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        return None, "selenium cannot be imported (%s)" % e
    opts = webdriver.ChromeOptions()
    opts.binary_location = a.chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                "--window-size=1280,1500", "--user-data-dir=" + os.path.join(tmp, "profile")):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=a.chromedriver,
                      log_output=os.path.join(a.tmp, "chromedriver.log"))
    try:
        driver = webdriver.Chrome(options=opts, service=service)
        driver.set_page_load_timeout(15)
        driver.set_script_timeout(10)
        return driver, None
    except Exception as e:  # noqa: BLE001: any failure to start is a skip reason
        return None, "the browser did not start: %s" % str(e).splitlines()[0][:200]


# What the page shows, read in one script so that no refresh falls in between.
READ_PAGE = """
const t = id => document.getElementById(id).textContent;
const rows = {};
document.querySelectorAll('#ns tr').forEach(tr => {
    const td = Array.from(tr.querySelectorAll('td'));
    rows[td[0].textContent] = td.slice(1, 6).map(x => x.textContent);
});
const rates = {};
document.querySelectorAll('#rates tr').forEach(tr => {
    const td = tr.querySelectorAll('td');
    rates[td[0].textContent] = [td[1].textContent, td[2].textContent];
});
const redis = {};
document.querySelectorAll('#redis tr').forEach(tr => {
    const td = tr.querySelectorAll('td');
    for (let i = 0; i + 1 < td.length; i += 2) redis[td[i].textContent] = td[i + 1].textContent;
});
const lines = Array.from(document.querySelectorAll('#plot polyline')).map(p => p.getAttribute('points'));
const shapes = Array.from(document.querySelectorAll('#shapes tbody tr')).map(
    tr => Array.from(tr.querySelectorAll('td')).map(x => x.textContent));
return {refreshes: +(document.body.dataset.refreshes || 0), hits: t('hits'), misses: t('misses'),
        ratio: t('ratio'), entries: t('entries'), rows: rows, rates: rates, lines: lines, redis: redis,
        banner: t('banner'), msg: t('msg'), shapes: shapes, shapes_text: t('shapes'),
        mongosh: Array.from(document.querySelectorAll('#advice pre.mongosh')).map(p => p.textContent),
        markup: document.images.length + document.querySelectorAll('#ns b, #shapes b').length};
"""


def page(d):
    return d.execute_script(READ_PAGE)


def wait_refreshes(d, n, timeout=12):
    """Waits until the page has finished n more refreshes than now."""
    start = page(d)["refreshes"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = page(d)
        if p["refreshes"] >= start + n:
            return p
        time.sleep(0.05)
    raise AssertionError("the page did not refresh %d times in %d s" % (n, timeout))


def shown_int(text):
    return int(text.replace(",", "")) if re.fullmatch(r"[0-9,]+", text) else None


def shown_pct(text):
    m = re.fullmatch(r"([0-9.]+) %", text)
    return float(m.group(1)) if m else None


def pct_equal(text, ratio):
    """The page shows ratio (0..1) as a percentage with one decimal."""
    v = shown_pct(text)
    return v is not None and abs(v - ratio * 100) <= 0.05 + 1e-9


def row_equal(cells, n):
    return (shown_int(cells[0]) == n["hits"] and shown_int(cells[1]) == n["misses"]
            and pct_equal(cells[2], n["hit_ratio"]) and shown_int(cells[3]) == n["fills"]
            and shown_int(cells[4]) == n["invalidations"])


def click_row_button(d, ns):
    """Clicks the Invalidate button of ns's row (the table is redrawn every 2 s)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    for _ in range(5):
        try:
            for tr in d.find_elements(By.CSS_SELECTOR, "#ns tr"):
                tds = tr.find_elements(By.TAG_NAME, "td")
                if tds and tds[0].text == ns:
                    tr.find_element(By.TAG_NAME, "button").click()
                    return
        except StaleElementReferenceException:
            continue
    raise AssertionError("no row for %s" % ns)


def confirm_dialog(d, token):
    from selenium.webdriver.common.by import By
    field = d.find_element(By.ID, "dlgtoken")
    assert field.is_displayed(), "the dialog did not open"
    field.clear()
    field.send_keys(token)
    before = page(d)["refreshes"]
    d.find_element(By.ID, "dlgok").click()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        p = page(d)
        if p["refreshes"] > before and p["msg"]:
            return p
        time.sleep(0.05)
    raise AssertionError("no answer shown after the dialog")


def answered(d, token):
    """Confirms the dialog, then waits for a refresh begun after the answer."""
    msg = confirm_dialog(d, token)["msg"]
    p = wait_refreshes(d, 1)
    p["msg"] = msg
    return p


def workload(a):
    import pymongo
    direct = pymongo.MongoClient(a.direct, serverSelectionTimeoutMS=10000)
    books = direct[DB]["books"]
    books.drop()
    genres = ["fantasy", "fiction", "history", "poetry"]
    books.insert_many([{"_id": i, "author": "a%d" % (i % 50), "year": 1900 + i % 120,
                        "genre": genres[i % 4]} for i in range(400)])
    direct[DB]["authors"].drop()
    direct[DB]["authors"].insert_many([{"_id": i, "name": "a%d" % i} for i in range(20)])
    direct.close()
    c = pymongo.MongoClient(a.proxy, serverSelectionTimeoutMS=10000)
    queries = [({"genre": "poetry"}, None), ({"year": 1950}, None), ({"author": "a7"}, "year")]
    for _ in range(4):
        for f, sort in queries:
            cur = c[DB]["books"].find(f)
            list(cur.sort(sort) if sort else cur)
    for _ in range(3):
        list(c[DB]["authors"].find({}))
    try:
        list(c[DB][HOSTILE_COLL].find({"x": 1}))
    except Exception as e:  # noqa: BLE001: the server may refuse the name; the proxy counts it anyway
        print("# the hostile collection name: %s" % str(e)[:100])
    try:  # an ok:0 from the server: the "error" outcome
        c[DB].command("noSuchCommandForTheDashboard")
    except pymongo.errors.OperationFailure:
        pass
    return c


class Traffic(threading.Thread):
    """Repeats one cached read until stopped (hits only)."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client, self.stop, self.n = client, threading.Event(), 0

    def run(self):
        while not self.stop.is_set():
            list(self.client[DB]["books"].find({"genre": "poetry"}))
            self.n += 1
            time.sleep(0.005)


def static_checks(a):
    status, headers, body = http(a.http, "/")
    h = {k.lower(): v for k, v in headers.items()}
    with open(a.page, "rb") as f:
        source = f.read()
    csp = h.get("content-security-policy", "")
    tap(status == 200 and body == source, "GET / without the token: 200, the page as in the source",
        "status %d, %d bytes served, %d in %s" % (status, len(body), len(source), a.page))
    tap(len(body) < 20 * 1024, "the page is under 20 KB (%d bytes)" % len(body))
    policy = {p.strip().split(" ")[0]: p.strip() for p in csp.split(";") if p.strip()}
    good = (policy.get("default-src") == "default-src 'none'"
            and re.fullmatch(r"script-src 'sha256-[A-Za-z0-9+/]{43}='", policy.get("script-src", ""))
            and re.fullmatch(r"style-src 'sha256-[A-Za-z0-9+/]{43}='", policy.get("style-src", ""))
            and policy.get("connect-src") == "connect-src 'self'"
            and policy.get("frame-ancestors") == "frame-ancestors 'none'"
            and "unsafe" not in csp
            and h.get("cache-control") == "no-store"
            and h.get("content-type", "").startswith("text/html")
            and h.get("x-content-type-options") == "nosniff")
    tap(bool(good), "GET /: Content-Security-Policy by hashes only, Cache-Control no-store, nosniff",
        "headers: %r" % h)
    text = body.decode("utf-8")
    bad = [w for w in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                       "new Function", "setAttribute('on", ' style="') if w in text]
    bad += re.findall(r"\son[a-z]+\s*=", text)
    bad += [u for u in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s'\"]*", text)
            if u != "http://www.w3.org/2000/svg"]
    tap(not bad, "the page parses no data as HTML, has no inline handler and loads nothing remote",
        "found: %r" % bad)
    status, _, _ = http(a.http, "/stats")
    tap(status == 401, "/stats still needs the token (401 without it)", "status %d" % status)
    post, _, _ = http(a.http, "/", a.token, "POST")
    head, _, hbody = http(a.http, "/?x=1", None, "HEAD")
    tap(post == 501 and head == 200 and hbody == b"",
        "POST / is refused (501); HEAD / answers 200 without a body",
        "POST %d, HEAD %d with %d bytes" % (post, head, len(hbody)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--direct", required=True)
    ap.add_argument("--page", required=True, help="proxy/dashboard.html")
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--chromedriver", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--screenshot", required=True)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(dir=a.tmp)
    d, why = start_browser(a, tmp)
    if not d:
        print(why, file=sys.stderr)
        sys.exit(SKIP)
    try:
        run(a, d)
    finally:
        d.quit()
    mctest.plan()


def run(a, d):
    from selenium.webdriver.common.by import By
    url = "http://127.0.0.1:%d/" % a.http
    static_checks(a)
    client = workload(a)

    # ---- loaded without the token, then with it --------------------------
    d.get(url)
    p = wait_refreshes(d, 1)
    tap("http_token" in p["banner"] and p["hits"] == "-",
        "without the token the page asks for it and shows no number", "page: %r" % p)
    traffic = Traffic(client)
    traffic.start()
    d.find_element(By.ID, "token").send_keys(a.token)
    d.find_element(By.ID, "usetoken").click()
    p = wait_refreshes(d, 3)
    hit_rate = p["rates"].get("hit", ["", ""])[0]
    miss_rate = p["rates"].get("miss", ["", ""])[0]
    tap(p["banner"] == "" and re.fullmatch(r"[0-9]+\.[0-9]", hit_rate) and float(hit_rate) > 0
        and miss_rate == "0.0",
        "during a cached read loop: hits per second above 0, misses per second 0.0",
        "rates: %r, banner %r" % (p["rates"], p["banner"]))
    last = p["lines"][-1].split(" ")[-1].split(",") if p["lines"] else None
    tap(last is not None and float(last[1]) == 10.0 and 560 <= float(last[0]) <= 600,
        "the chart's newest point is at 100 % hit rate, at the right edge", "polylines: %r" % p["lines"])
    d.save_screenshot(a.screenshot)
    traffic.stop.set()
    traffic.join()
    client.close()
    print("# %d reads in the traffic loop" % traffic.n)

    # ---- quiet: the page equals /stats ----------------------------------
    wait_refreshes(d, 1)
    before = stats(a)
    p = wait_refreshes(d, 2)
    s = stats(a)
    c = s["cache"]
    tap(before["cache"] == c and before["namespaces"] == s["namespaces"]
        and before["latency"]["request"] == s["latency"]["request"]
        and before["counters"]["requests"] == s["counters"]["requests"],
        "no change in /stats while nothing runs (the comparison is fair)",
        "before %r" % before["cache"], "after  %r" % c)
    tap(shown_int(p["hits"]) == c["hits"] and shown_int(p["misses"]) == c["misses"]
        and pct_equal(p["ratio"], c["hit_ratio"]) and shown_int(p["entries"]) == c["entries"]
        and c["hits"] > 0,
        "the page's hits, misses, hit ratio and entries equal /stats (%d hits, %d misses)"
        % (c["hits"], c["misses"]),
        "page: %r" % {k: p[k] for k in ("hits", "misses", "ratio", "entries")})
    bad = [ns for ns, n in s["namespaces"].items() if not row_equal(p["rows"].get(ns, [""] * 5), n)]
    tap(BOOKS in s["namespaces"] and AUTHORS in s["namespaces"] and not bad
        and set(p["rows"]) == set(s["namespaces"]),
        "every namespace row equals /stats (%d rows)" % len(s["namespaces"]),
        "differ: %r" % bad, "page rows: %r" % p["rows"], "/stats: %r" % s["namespaces"])
    rates = p["rates"]
    want = {o: ["0.0", "{:,}".format(s["latency"]["request"][o]["count"])] for o in OUTCOMES}
    want["all requests"] = ["0.0", "{:,}".format(s["counters"]["requests"])]
    tap(rates == want and all(s["latency"]["request"][o]["count"] > 0 for o in OUTCOMES),
        "with no traffic every rate falls to 0.0 and each outcome's total equals /stats' "
        "latency.request.<outcome>.count (%s)"
        % ", ".join("%s %d" % (o, s["latency"]["request"][o]["count"]) for o in OUTCOMES),
        "page: %r" % rates, "/stats: %r" % want)
    r = c.get("redis", {})
    want = {"state": r.get("state"), "subscribed to invalidations": "yes" if r.get("subscribed") else "no"}
    want.update({k: "{:,}".format(v) for k, v in r.get("counters", {}).items()})
    tap(r.get("state") == "connected" and p["redis"] == want,
        "the Redis tier's state and counters equal /stats (%s, %d counters)"
        % (r.get("state"), len(r.get("counters", {}))), "page: %r" % p["redis"], "/stats: %r" % r)
    tap(HOSTILE in s["namespaces"] and HOSTILE in p["rows"] and p["markup"] == 0,
        "a namespace named like HTML is shown as its text, no element made of it",
        "page rows: %r, elements: %d" % (list(p["rows"]), p["markup"]))

    # ---- advice and shapes ----------------------------------------------
    deadline = time.monotonic() + 10
    advice = []
    while time.monotonic() < deadline:
        advice = [i for i in json.loads(http(a.http, "/advice", a.token)[2]).get("advice", [])
                  if i["namespace"] == BOOKS]
        if advice:
            break
        time.sleep(0.2)
    p = wait_refreshes(d, 1)
    tap(advice and all(i["mongosh"] in p["mongosh"] for i in advice),
        "the page shows the scanning query's index advice, its mongosh command as /advice has it",
        "/advice: %r" % [i.get("mongosh") for i in advice], "page: %r" % p["mongosh"])
    status, _, body = http(a.http, "/shapes", a.token)
    want = json.loads(body).get("shapes", [])[:20] if status == 200 else []
    got = [r[:3] for r in p["shapes"]]
    tap(status == 200 and want
        and got == [[w.get("namespace"), w.get("shape"), "{:,}".format(w.get("count"))] for w in want],
        "the top shapes are /shapes' shapes in its order: namespace, shape, count (%d)" % len(want),
        "GET /shapes: HTTP %d" % status, "page: %r" % got, "/shapes: %r" % want)

    # ---- invalidate and flush through the page -----------------------------
    admin_actions(a, d)

    # ---- the console -----------------------------------------------------
    logs = d.get_log("browser")
    bad = [e["message"] for e in logs
           if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]
           or (e["level"] == "SEVERE" and "Failed to load resource" not in e["message"])]
    tap(not bad, "no script error and no CSP violation in the console (%d entries)" % len(logs),
        *bad[:5])
    tap(os.path.getsize(a.screenshot) > 10000, "screenshot saved: %s" % a.screenshot)


def admin_actions(a, d):
    import pymongo
    s0 = stats(a)
    n0 = s0["namespaces"][BOOKS]
    click_row_button(d, BOOKS)
    p = confirm_dialog(d, "wrong-" + a.token)
    s1 = stats(a)
    tap("refused, HTTP 401" in p["msg"] and s1["cache"]["entries"] == s0["cache"]["entries"]
        and s1["namespaces"][BOOKS] == n0,
        "invalidate with a wrong token: the page shows 401, nothing dropped",
        "msg %r" % p["msg"], "entries %d -> %d" % (s0["cache"]["entries"], s1["cache"]["entries"]))

    click_row_button(d, BOOKS)
    p = answered(d, a.token)
    s2 = stats(a)
    m = re.search(r"done, ([0-9,]+) entries dropped", p["msg"])
    dropped = shown_int(m.group(1)) if m else None
    tap(p["msg"].startswith("invalidate " + BOOKS) and dropped == 3
        and s2["cache"]["entries"] == s0["cache"]["entries"] - 3,
        "invalidate %s through the page: its 3 entries dropped (page and /stats)" % BOOKS,
        "msg %r" % p["msg"], "entries %d -> %d" % (s0["cache"]["entries"], s2["cache"]["entries"]))
    s3 = stats(a)
    tap(shown_int(p["entries"]) == s3["cache"]["entries"]
        and row_equal(p["rows"][BOOKS], s3["namespaces"][BOOKS]),
        "after it the page's entries and %s row equal /stats" % BOOKS,
        "page %r %r" % (p["entries"], p["rows"][BOOKS]), "/stats %r" % s3["namespaces"][BOOKS])
    c = pymongo.MongoClient(a.proxy, serverSelectionTimeoutMS=10000)
    list(c[DB]["books"].find({"year": 1950}))
    c.close()
    s4 = stats(a)["namespaces"][BOOKS]
    tap(s4["misses"] == s3["namespaces"][BOOKS]["misses"] + 1,
        "the next read of %s is a miss: its entry is gone" % BOOKS, "before %r after %r"
        % (s3["namespaces"][BOOKS], s4))

    from selenium.webdriver.common.by import By
    d.find_element(By.ID, "flush").click()
    p = answered(d, a.token)
    s5 = stats(a)
    tap(p["msg"].startswith("flush: done") and s5["cache"]["entries"] == 0
        and shown_int(p["entries"]) == 0,
        "flush through the page: no entry left (page and /stats)", "msg %r, entries %r / %d"
        % (p["msg"], p["entries"], s5["cache"]["entries"]))


if __name__ == "__main__":
    main()
