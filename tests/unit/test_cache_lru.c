/*
 * tests/unit/test_cache_lru.c: owns the tests of cache/lru.c: put, get,
 * replace and remove; LRU eviction under the byte budget; expiry in get and
 * in expire; exact release accounting (destroy included); colliding keys;
 * and a randomized comparison against a simple array model through many
 * incremental rehashes. It does not test key derivation (cache/key.c).
 */
#include "config.h"

#include "cache/lru.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Values are addresses in pool: serial s is &pool[s]. Each put in the model
 * test uses a new serial, so released[] shows any double or missing release.
 */
#define MAX_SERIALS (1 << 18)
#define LOG_CAP 8192

static struct cache_lru_node pool[MAX_SERIALS];
static size_t charges[MAX_SERIALS]; /* what serial s is charged (set by put) */
static unsigned char released[MAX_SERIALS];
static size_t released_total;
static size_t double_releases;
static size_t release_log[LOG_CAP];
static size_t log_len;

static void
rel(struct cache_lru_node *value)
{
    size_t s = (size_t)(value - pool);

    if (released[s] != 0)
        double_releases++;
    released[s] = 1;
    released_total++;
    if (log_len < LOG_CAP)
        release_log[log_len] = s;
    log_len++;
}

static struct cache_lru_node *
val(size_t s)
{
    return &pool[s];
}

static size_t
serial_of(const struct cache_lru_node *value)
{
    return value == NULL ? SIZE_MAX : (size_t)(value - pool);
}

static size_t
charge(const struct cache_lru_node *value)
{
    return charges[value - pool];
}

/* Stores serial s under key, charged bytes. */
static bool
put(struct cache_lru *lru, const struct cache_key *key, size_t s, size_t bytes,
    uint64_t expires_ms, uint32_t *evicted)
{
    charges[s] = bytes;
    return cache_lru_put(lru, key, val(s), expires_ms, evicted);
}

static void
reset_releases(void)
{
    memset(released, 0, sizeof released);
    released_total = 0;
    double_releases = 0;
    log_len = 0;
}

static struct cache_key
mk(uint64_t hi, uint64_t lo)
{
    struct cache_key k = {hi, lo};

    return k;
}

static void
test_basic(void)
{
    struct cache_lru *lru = cache_lru_new(1000, rel, charge);
    struct cache_key a = mk(1, 2);
    struct cache_key b = mk(2, 1);
    uint32_t ev = 99;

    reset_releases();
    ok(put(lru, &a, 1, 10, UINT64_MAX, &ev), "put a");
    is_int(ev, 0, "put a evicted nothing");
    ok(cache_lru_get(lru, &a, 0) == val(1), "get a");
    ok(cache_lru_get(lru, &b, 0) == NULL, "get b misses (lo/hi swapped is another key)");
    is_int((long long)cache_lru_count(lru), 1, "count 1");
    is_int((long long)cache_lru_bytes(lru), 10, "bytes 10");

    ok(put(lru, &a, 2, 25, UINT64_MAX, NULL), "replace a");
    is_int(released[1], 1, "old value released on replace");
    is_int((long long)released_total, 1, "only the old value released");
    ok(cache_lru_get(lru, &a, 0) == val(2), "get a gives new value");
    is_int((long long)cache_lru_count(lru), 1, "count still 1");
    is_int((long long)cache_lru_bytes(lru), 25, "bytes follow the replacement");

    ok(put(lru, &b, 3, 5, UINT64_MAX, NULL), "put b");
    ok(cache_lru_remove(lru, &a), "remove a");
    is_int(released[2], 1, "removed value released");
    ok(!cache_lru_remove(lru, &a), "remove a again fails");
    ok(cache_lru_get(lru, &a, 0) == NULL, "a gone");
    ok(cache_lru_get(lru, &b, 0) == val(3), "b still there");
    is_int((long long)cache_lru_count(lru), 1, "count 1 after remove");
    is_int((long long)cache_lru_bytes(lru), 5, "bytes 5 after remove");
    is_int((long long)released_total, 2, "two released before destroy");
    cache_lru_destroy(lru);
    is_int(released[3], 1, "destroy releases the remaining value");
    is_int((long long)released_total, 3, "three released in all");
    is_int((long long)double_releases, 0, "no double release");
    ok(cache_lru_overhead() == sizeof(void *), "overhead %zu: a bucket pointer per entry",
       cache_lru_overhead());
}

static void
test_lru_order(void)
{
    struct cache_lru *lru = cache_lru_new(300, rel, charge);
    struct cache_key k[5];
    uint32_t ev = 0;
    int i;

    reset_releases();
    for (i = 0; i < 5; i++)
        k[i] = mk(0, (uint64_t)i);
    for (i = 0; i < 3; i++)
        put(lru, &k[i], (size_t)i, 100, UINT64_MAX, &ev);
    is_int(ev, 0, "three fit the budget");
    ok(put(lru, &k[3], 3, 100, UINT64_MAX, &ev), "put a fourth");
    is_int(ev, 1, "fourth put evicts one");
    ok(cache_lru_get(lru, &k[0], 0) == NULL, "the least recently used went");
    is_int(released[0], 1, "and was released");
    ok(cache_lru_get(lru, &k[1], 0) == val(1) && cache_lru_get(lru, &k[2], 0) == val(2) &&
           cache_lru_get(lru, &k[3], 0) == val(3),
       "the other three stay");

    /* Order is now 1, 2, 3 (oldest first); a hit on 1 makes 2 the oldest. */
    ok(cache_lru_get(lru, &k[1], 0) == val(1), "hit on 1");
    put(lru, &k[4], 4, 100, UINT64_MAX, &ev);
    is_int(ev, 1, "put evicts one");
    ok(cache_lru_get(lru, &k[2], 0) == NULL, "a hit refreshes recency: 2 evicted, not 1");
    ok(cache_lru_get(lru, &k[1], 0) == val(1), "1 survived");

    /* A replace refreshes recency too: order 3, 4, 1 -> replace 3 -> 4, 1, 3. */
    put(lru, &k[3], 5, 100, UINT64_MAX, NULL);
    put(lru, &k[0], 6, 150, UINT64_MAX, &ev);
    is_int(ev, 2, "a 150-byte put evicts two");
    ok(cache_lru_get(lru, &k[4], 0) == NULL && cache_lru_get(lru, &k[1], 0) == NULL,
       "4 and 1 evicted");
    ok(cache_lru_get(lru, &k[3], 0) == val(5), "replaced 3 survived");
    is_int((long long)cache_lru_bytes(lru), 250, "bytes 250");
    cache_lru_destroy(lru);
    is_int((long long)released_total, 7, "all seven values released once");
    is_int((long long)double_releases, 0, "no double release");
}

static void
test_oversize(void)
{
    struct cache_lru *lru = cache_lru_new(100, rel, charge);
    struct cache_key a = mk(7, 7);
    struct cache_key b = mk(8, 8);
    uint32_t ev = 0;

    reset_releases();
    ok(!put(lru, &a, 1, 101, UINT64_MAX, &ev), "oversize put refused");
    is_int(released[1], 1, "oversize value released at once");
    is_int((long long)cache_lru_count(lru), 0, "nothing stored");
    is_int((long long)cache_lru_bytes(lru), 0, "no bytes charged");

    put(lru, &a, 2, 40, UINT64_MAX, NULL);
    put(lru, &b, 3, 40, UINT64_MAX, NULL);
    ok(!put(lru, &a, 4, 1000, UINT64_MAX, &ev), "oversize replace refused");
    is_int(released[4], 1, "its value released");
    is_int(released[2], 1, "the stale old value of that key is dropped too");
    ok(cache_lru_get(lru, &a, 0) == NULL, "key a is empty");
    ok(cache_lru_get(lru, &b, 0) == val(3), "b untouched");
    is_int(ev, 0, "no eviction counted");

    ok(put(lru, &a, 5, 100, UINT64_MAX, &ev), "a value of exactly the budget fits");
    is_int(ev, 1, "and evicts the rest");
    is_int((long long)cache_lru_bytes(lru), 100, "bytes at budget");
    cache_lru_destroy(lru);
    is_int((long long)released_total, 5, "five released in all");
}

static void
test_expiry(void)
{
    struct cache_lru *lru = cache_lru_new(1 << 20, rel, charge);
    struct cache_key k[6];
    int i;

    reset_releases();
    for (i = 0; i < 6; i++)
        k[i] = mk(3, (uint64_t)i);
    put(lru, &k[0], 0, 1, 100, NULL);
    ok(cache_lru_get(lru, &k[0], 99) == val(0), "live before expiry");
    ok(cache_lru_get(lru, &k[0], 100) == NULL, "expired at expires_ms");
    is_int(released[0], 1, "expired value released by get");
    is_int((long long)cache_lru_count(lru), 0, "and removed");

    /* LRU order oldest first: 1 (exp 10), 2 (never), 3 (exp 10), 4 (exp 50), 5 (exp 10). */
    put(lru, &k[1], 1, 1, 10, NULL);
    put(lru, &k[2], 2, 1, UINT64_MAX, NULL);
    put(lru, &k[3], 3, 1, 10, NULL);
    put(lru, &k[4], 4, 1, 50, NULL);
    put(lru, &k[5], 5, 1, 10, NULL);
    is_int(cache_lru_expire(lru, 20, 0), 0, "expire with no checks removes nothing");
    is_int(cache_lru_expire(lru, 20, 2), 1, "two checks from the tail find one expired");
    is_int(released[1], 1, "the oldest expired one went");
    is_int(released[3], 0, "the third was not reached");
    is_int(cache_lru_expire(lru, 20, 100), 2, "a long scan finds the other two");
    is_int((long long)cache_lru_count(lru), 2, "two live entries left");
    ok(cache_lru_get(lru, &k[4], 20) == val(4) && cache_lru_get(lru, &k[2], 20) == val(2),
       "live entries kept");
    is_int(cache_lru_expire(lru, 50, 100), 1, "later, the 50 one expires");
    is_int((long long)cache_lru_bytes(lru), 1, "bytes follow expiry");
    cache_lru_destroy(lru);
    is_int((long long)released_total, 6, "all six released once");
    is_int((long long)double_releases, 0, "no double release");
}

static void
test_set_budget(void)
{
    struct cache_lru *lru = cache_lru_new(1000, rel, charge);
    struct cache_key k[10];
    int i;
    bool kept = true;

    reset_releases();
    for (i = 0; i < 10; i++) {
        k[i] = mk(0, (uint64_t)i + 100);
        put(lru, &k[i], (size_t)i, 100, UINT64_MAX, NULL);
    }
    is_int(cache_lru_set_budget(lru, 1000), 0, "same budget evicts nothing");
    is_int(cache_lru_set_budget(lru, 450), 6, "shrinking to 450 evicts six");
    is_int((long long)cache_lru_bytes(lru), 400, "400 bytes left");
    for (i = 0; i < 10; i++)
        kept = kept && (cache_lru_get(lru, &k[i], 0) != NULL) == (i >= 6);
    ok(kept, "the four most recently used are kept");
    is_int((long long)released_total, 6, "six released");
    ok(!put(lru, &k[0], 20, 451, UINT64_MAX, NULL), "new budget applies to put");
    is_int(cache_lru_set_budget(lru, 0), 4, "budget 0 evicts all");
    is_int((long long)cache_lru_count(lru), 0, "empty");
    cache_lru_destroy(lru);
    is_int((long long)released_total, 11, "eleven released in all");
}

/* Keys of a tiny-key build: hi = 0 and lo < 256, plus ones whose lo ^ hi coincide. */
static void
test_collisions(void)
{
    struct cache_lru *lru = cache_lru_new(SIZE_MAX, rel, charge);
    struct cache_key k;
    size_t lo;
    size_t bad = 0;

    reset_releases();
    for (lo = 0; lo < 256; lo++) {
        k = mk(0, lo);
        put(lru, &k, lo, 1, UINT64_MAX, NULL);
        k = mk(1, lo); /* same lo, other hi; lo ^ hi equals that of (0, lo ^ 1) */
        put(lru, &k, 256 + lo, 1, UINT64_MAX, NULL);
        k = mk(lo | 0x100, 0x100); /* lo ^ hi equals that of (0, lo) */
        put(lru, &k, 512 + lo, 1, UINT64_MAX, NULL);
    }
    is_int((long long)cache_lru_count(lru), 768, "768 distinct keys stored");
    is_int((long long)released_total, 0, "none replaced");
    k = mk(0, 5);
    put(lru, &k, 800, 1, UINT64_MAX, NULL);
    is_int((long long)cache_lru_count(lru), 768, "an identical key replaces");
    is_int(released[5], 1, "and releases the old value");
    for (lo = 0; lo < 256; lo++) {
        k = mk(0, lo);
        bad += serial_of(cache_lru_get(lru, &k, 0)) != (lo == 5 ? 800 : lo);
        k = mk(1, lo);
        bad += serial_of(cache_lru_get(lru, &k, 0)) != 256 + lo;
        k = mk(lo | 0x100, 0x100);
        bad += serial_of(cache_lru_get(lru, &k, 0)) != 512 + lo;
    }
    is_int((long long)bad, 0, "every colliding key finds its own value");
    for (lo = 0; lo < 256; lo += 2) {
        k = mk(1, lo);
        bad += !cache_lru_remove(lru, &k);
    }
    for (lo = 0; lo < 256; lo++) {
        k = mk(1, lo);
        bad += serial_of(cache_lru_get(lru, &k, 0)) != (lo % 2 == 0 ? SIZE_MAX : 256 + lo);
        k = mk(0, lo);
        bad += serial_of(cache_lru_get(lru, &k, 0)) != (lo == 5 ? 800 : lo);
        k = mk(lo | 0x100, 0x100);
        bad += serial_of(cache_lru_get(lru, &k, 0)) != 512 + lo;
    }
    is_int((long long)bad, 0, "removing half of one family leaves the others");
    is_int((long long)cache_lru_count(lru), 768 - 128, "count after removals");
    cache_lru_destroy(lru);
    is_int((long long)released_total, 769, "every value released exactly once");
    is_int((long long)double_releases, 0, "no double release");
}

/* After every insert, every key inserted so far is found: lookups span both tables. */
static void
test_growth(void)
{
    struct cache_lru *lru = cache_lru_new(SIZE_MAX, rel, charge);
    size_t n = 3000;
    size_t i;
    size_t j;
    size_t bad = 0;

    reset_releases();
    for (i = 0; i < n; i++) {
        struct cache_key k = mk(i * UINT64_C(0x9e3779b97f4a7c15), i);

        put(lru, &k, i, 1, UINT64_MAX, NULL);
        for (j = 0; j <= i; j++) {
            struct cache_key q = mk(j * UINT64_C(0x9e3779b97f4a7c15), j);

            bad += serial_of(cache_lru_get(lru, &q, 0)) != j;
        }
        bad += cache_lru_count(lru) != i + 1;
    }
    is_int((long long)bad, 0, "all keys found after each of %zu inserts", n);
    for (i = 0; i < n; i += 3) {
        struct cache_key k = mk(i * UINT64_C(0x9e3779b97f4a7c15), i);

        bad += !cache_lru_remove(lru, &k);
        for (j = 0; j < n; j += 7) {
            struct cache_key q = mk(j * UINT64_C(0x9e3779b97f4a7c15), j);
            size_t want = (j % 3 == 0 && j <= i) ? SIZE_MAX : j;

            bad += serial_of(cache_lru_get(lru, &q, 0)) != want;
        }
    }
    is_int((long long)bad, 0, "removals interleaved with lookups");
    cache_lru_destroy(lru);
    is_int((long long)released_total, (long long)n, "all released once");
}

/* ---- randomized model test -------------------------------------------- */

#define MAX_KEYS 4096

struct model_entry {
    bool present;
    size_t serial;
    size_t bytes;
    uint64_t expires;
    uint64_t used; /* larger is more recent */
};

struct model {
    struct model_entry e[MAX_KEYS];
    struct cache_key keys[MAX_KEYS];
    size_t nkeys;
    size_t count;
    size_t bytes;
    size_t budget;
    uint64_t tick;
    size_t want_log[LOG_CAP];
    size_t want_len;
    size_t evictions; /* per round, to show what the round exercised */
    size_t expiries;
    size_t refused;
};

static struct model m;
static uint64_t rng_state;

static uint64_t
rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static size_t
below(size_t n)
{
    return (size_t)(rnd() % n);
}

static void
m_release(size_t serial)
{
    if (m.want_len < LOG_CAP)
        m.want_log[m.want_len] = serial;
    m.want_len++;
}

static void
m_drop(size_t id)
{
    m.e[id].present = false;
    m.count--;
    m.bytes -= m.e[id].bytes;
    m_release(m.e[id].serial);
}

static uint32_t
m_shed(void)
{
    uint32_t n = 0;

    while (m.bytes > m.budget) {
        size_t oldest = SIZE_MAX;
        size_t id;

        for (id = 0; id < m.nkeys; id++)
            if (m.e[id].present && (oldest == SIZE_MAX || m.e[id].used < m.e[oldest].used))
                oldest = id;
        m_drop(oldest);
        m.evictions++;
        n++;
    }
    return n;
}

static int
cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a;
    size_t y = *(const size_t *)b;

    return x < y ? -1 : x > y;
}

static int
cmp_used(const void *a, const void *b)
{
    uint64_t x = m.e[*(const size_t *)a].used;
    uint64_t y = m.e[*(const size_t *)b].used;

    return x < y ? -1 : x > y;
}

static uint32_t
m_expire(uint64_t now, uint32_t max_checks)
{
    static size_t order[MAX_KEYS];
    size_t n = 0;
    size_t i;
    uint32_t removed = 0;

    for (i = 0; i < m.nkeys; i++)
        if (m.e[i].present)
            order[n++] = i;
    qsort(order, n, sizeof *order, cmp_used);
    for (i = 0; i < n && i < max_checks; i++) {
        if (m.e[order[i]].expires <= now) {
            m_drop(order[i]);
            m.expiries++;
            removed++;
        }
    }
    return removed;
}

/* True when the map released exactly the values the model expected, in any order. */
static bool
logs_match(void)
{
    size_t i;

    if (log_len != m.want_len || log_len > LOG_CAP)
        return false;
    qsort(release_log, log_len, sizeof *release_log, cmp_size);
    qsort(m.want_log, m.want_len, sizeof *m.want_log, cmp_size);
    for (i = 0; i < log_len; i++)
        if (release_log[i] != m.want_log[i])
            return false;
    return true;
}

struct round {
    const char *name;
    size_t nkeys;
    int tiny; /* keys as in a tiny-key build: hi < 16, lo < 256 */
    size_t budget;
    size_t max_bytes;
    size_t ops;
    size_t recreate_every;
};

static size_t next_serial;

static void
model_reset(const struct round *r)
{
    memset(m.e, 0, sizeof m.e);
    m.count = 0;
    m.bytes = 0;
    m.budget = r->budget;
}

/* Runs one round; returns the number of mismatches (diagnosing the first few). */
static size_t
model_round(const struct round *r)
{
    struct cache_lru *lru = cache_lru_new(r->budget, rel, charge);
    uint64_t now = 1000;
    size_t failures = 0;
    size_t op;
    size_t i;

    m.nkeys = r->nkeys;
    m.evictions = 0;
    m.expiries = 0;
    m.refused = 0;
    for (i = 0; i < r->nkeys; i++)
        m.keys[i] = r->tiny ? mk(i >> 8, i & 255) : mk(rnd(), rnd());
    model_reset(r);
    for (op = 0; op < r->ops; op++) {
        size_t id = below(r->nkeys);
        const struct cache_key *key = &m.keys[id];
        unsigned dice = (unsigned)below(1000);
        const char *what;
        long long got = 0;
        long long want = 0;

        log_len = 0;
        m.want_len = 0;
        now += below(3);
        if (r->recreate_every != 0 && op > 0 && op % r->recreate_every == 0) {
            what = "destroy";
            for (i = 0; i < m.nkeys; i++)
                if (m.e[i].present)
                    m_drop(i);
            cache_lru_destroy(lru);
            lru = cache_lru_new(r->budget, rel, charge);
            model_reset(r);
        } else if (dice < 450) {
            size_t s = next_serial++;
            size_t bytes = dice < 5 ? m.budget + 1 + below(10) : 1 + below(r->max_bytes);
            uint64_t exp = below(2) ? UINT64_MAX : now + 1 + below(3000);
            uint32_t ev = 0;
            bool stored;
            bool want_stored = bytes <= m.budget;
            uint32_t want_ev = 0;

            what = "put";
            stored = put(lru, key, s, bytes, exp, &ev);
            if (!want_stored) {
                m.refused++;
                if (m.e[id].present)
                    m_drop(id);
                m_release(s);
            } else {
                if (m.e[id].present)
                    m_drop(id);
                m.e[id].present = true;
                m.e[id].serial = s;
                m.e[id].bytes = bytes;
                m.e[id].expires = exp;
                m.e[id].used = ++m.tick;
                m.count++;
                m.bytes += bytes;
                want_ev = m_shed();
            }
            got = (long long)stored * 1000000 + ev;
            want = (long long)want_stored * 1000000 + want_ev;
        } else if (dice < 850) {
            what = "get";
            got = (long long)serial_of(cache_lru_get(lru, key, now));
            if (m.e[id].present && m.e[id].expires <= now) {
                m_drop(id);
                m.expiries++;
            }
            if (m.e[id].present) {
                m.e[id].used = ++m.tick;
                want = (long long)m.e[id].serial;
            } else {
                want = (long long)SIZE_MAX;
            }
        } else if (dice < 980) {
            what = "remove";
            got = cache_lru_remove(lru, key);
            want = m.e[id].present;
            if (m.e[id].present)
                m_drop(id);
        } else if (dice < 995) {
            uint32_t checks = (uint32_t)below(64);

            what = "expire";
            got = cache_lru_expire(lru, now, checks);
            want = m_expire(now, checks);
        } else {
            size_t budget = r->budget / 2 + below(r->budget / 2 + 1);

            what = "set_budget";
            got = cache_lru_set_budget(lru, budget);
            m.budget = budget;
            want = m_shed();
        }
        if (got != want || cache_lru_count(lru) != m.count || cache_lru_bytes(lru) != m.bytes ||
            !logs_match() || double_releases != 0) {
            if (failures < 5)
                diag("%s op %zu (%s, key %zu): got %lld want %lld, count %zu/%zu, bytes "
                     "%zu/%zu, released %zu/%zu, double %zu",
                     r->name, op, what, id, got, want, cache_lru_count(lru), m.count,
                     cache_lru_bytes(lru), m.bytes, log_len, m.want_len, double_releases);
            failures++;
        }
    }
    log_len = 0;
    m.want_len = 0;
    for (i = 0; i < m.nkeys; i++)
        if (m.e[i].present)
            m_drop(i);
    cache_lru_destroy(lru);
    diag("%s: %zu evictions, %zu expiries, %zu oversize puts", r->name, m.evictions, m.expiries,
         m.refused);
    if (!logs_match()) {
        diag("%s: destroy released %zu values, model expected %zu", r->name, log_len,
             m.want_len);
        failures++;
    }
    return failures;
}

static void
test_model(void)
{
    static const struct round rounds[] = {
        /* No eviction: the table grows 8 -> 4096 over and over. */
        {"grow", 4096, 0, SIZE_MAX / 2, 1000, 50000, 8000},
        /* Tiny keys (hi < 16, lo < 256), moderate eviction. */
        {"tiny", 4096, 1, 200000, 100, 50000, 12500},
        /* Heavy eviction with few keys. */
        {"evict", 512, 0, 5000, 200, 50000, 0},
        /* Tiny keys, heavy eviction and expiry, recreated often. */
        {"tiny-evict", 1024, 1, 20000, 100, 50000, 5000},
    };
    size_t total_ops = 0;
    size_t r;
    size_t i;
    size_t missing = 0;

    reset_releases();
    next_serial = 0;
    rng_state = UINT64_C(0x853c49e6748fea9b);
    diag("model seed 0x%" PRIx64, rng_state);
    for (r = 0; r < sizeof rounds / sizeof rounds[0]; r++) {
        is_int((long long)model_round(&rounds[r]), 0, "model round %s: %zu ops agree",
               rounds[r].name, rounds[r].ops);
        total_ops += rounds[r].ops;
    }
    for (i = 0; i < next_serial; i++)
        missing += released[i] != 1;
    is_int((long long)missing, 0, "each of %zu values released exactly once", next_serial);
    is_int((long long)double_releases, 0, "no double release in the model test");
    is_int((long long)total_ops, 200000, "200k random operations in all");
}

/* Bytes the live entries of test_shared hold outside their charge: 30 each. */
static size_t shared_puts;

static size_t
shared_of_live(void *arg)
{
    (void)arg;
    return 30 * (shared_puts - released_total);
}

/*
 * Shared bytes count against the budget: entries charged 10 that each hold
 * 30 more in common (a snapshot of their own) are evicted as 40-byte entries.
 */
static void
test_shared(void)
{
    struct cache_lru *lru = cache_lru_new(1000, rel, charge);
    size_t over = 0;

    reset_releases();
    shared_puts = 0;
    cache_lru_set_shared(lru, shared_of_live, NULL);
    for (size_t s = 1; s <= 100; s++) {
        struct cache_key k = mk(s, 7);

        shared_puts++;
        ok(put(lru, &k, s, 10, UINT64_MAX, NULL), "shared: put %zu", s);
        if (cache_lru_bytes(lru) + shared_of_live(NULL) > 1000)
            over++;
    }
    is_int((long long)over, 0, "shared: charges plus shared bytes never pass the budget");
    is_int((long long)cache_lru_count(lru), 25, "shared: 25 entries of 10 + 30 fit in 1000");
    ok(cache_lru_get(lru, &(struct cache_key){0}, 0) == NULL && released[75] && !released[76],
       "shared: the least recently used went first");
    /* Shared bytes alone over the budget (held by others): a put keeps its entry. */
    shared_puts += 100;
    {
        struct cache_key k = mk(500, 7);

        ok(put(lru, &k, 500, 10, UINT64_MAX, NULL) && cache_lru_get(lru, &k, 0) == val(500),
           "shared: over the budget by shared bytes alone, the entry just stored stays");
        is_int((long long)cache_lru_count(lru), 1, "shared: ... and only it");
    }
    cache_lru_destroy(lru);
    is_int((long long)double_releases, 0, "shared: no double release");
}

int
main(void)
{
    test_basic();
    test_lru_order();
    test_oversize();
    test_expiry();
    test_set_budget();
    test_collisions();
    test_growth();
    test_model();
    test_shared();
    return done_testing();
}
