/*
 * tests/unit/test_cache_cache.c: the cache door (cache/cache.c) without a
 * server: lookups, fills, the generation checks that make invalidation and
 * the cache-aside race safe, transactions, w:0 grace, per-user entries,
 * namespace rules, and coalescing of identical misses.
 */
#include "cache/cache.h"
#include "conf/conf.h"
#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "wire/frame.h"
#include "wire/reply.h"

#include <event2/event.h>
#include <string.h>
#include <unistd.h>

struct fx {
    struct event_base *base;
    struct conf *conf;
    struct cache *cache;
};

/* A reply message {cursor: {firstBatch: [{v: n}], id: 0, ns}, ok: 1}. */
static uint8_t *
reply_for(int n, size_t *len, bson_t **body)
{
    char text[160];
    uint8_t *bytes;

    snprintf(text, sizeof text,
             "{'cursor': {'firstBatch': [{'v': %d}], 'id': 0, 'ns': 'd.c'}, 'ok': 1.0}", n);
    *body = json(text);
    bytes = wire_reply_msg(1, 2, *body, len);
    return bytes;
}

/* The command's $db ("d" when it has none). */
static const char *
db_of(const bson_t *cmd)
{
    bson_iter_t it;

    return bson_iter_init_find(&it, cmd, "$db") && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : "d";
}

/* Looks cmd up as principal; on a miss stores a reply carrying n (n < 0: stores
 * nothing, the read's records go idle). Returns the outcome. */
static enum cache_outcome
read_once(struct fx *f, const char *cmd_json, const char *principal, int n, int *got)
{
    bson_t *cmd = json(cmd_json);
    struct cache_request req = {cmd, NULL, db_of(cmd), 0, principal, 0, 0};
    struct cache_pending *p;
    struct cache_value *hit;
    struct cache_wait *wait;
    enum cache_outcome out;
    *got = -1;
    out = cache_lookup(f->cache, &req, &p, &hit, NULL, NULL, &wait);
    if (out == CACHE_HIT) {
        size_t len;
        const uint8_t *data = cache_value_data(hit, &len);
        struct cache_value *keep = hit;

        /* The stored reply's only document says which fill it came from. */
        for (size_t i = 0; i + 3 < len; i++)
            if (data[i] == 0x10 && data[i + 1] == 'v' && data[i + 2] == 0)
                *got = (int)wire_frame_read_i32(data + i + 3);
        cache_value_unref(keep);
    } else if (out == CACHE_MISS && n >= 0) {
        size_t len;
        bson_t *body;
        uint8_t *bytes = reply_for(n, &len, &body);

        cache_store(f->cache, p, bytes, len, body);
        bson_free(bytes);
        bson_destroy(body);
    }
    if (out != CACHE_BYPASS)
        cache_pending_free(f->cache, p);
    bson_destroy(cmd);
    return out;
}

static void
write_cmd(struct fx *f, const char *cmd_json, bool oneway)
{
    bson_t *cmd = json(cmd_json);
    struct cache_inval inv;

    if (cache_write_begin(f->cache, cmd, NULL, db_of(cmd), NULL, NULL, NULL, 0, oneway, &inv))
        cache_write_end(f->cache, &inv);
    bson_destroy(cmd);
}

static struct fx
setup(const char *const *flags, int n)
{
    struct fx f;
    char *argv[16] = {"test"};
    char copies[16][128];
    enum conf_action action;
    bson_error_t error;

    for (int i = 0; i < n && i < 15; i++) {
        snprintf(copies[i], sizeof copies[i], "%s", flags[i]);
        argv[i + 1] = copies[i];
    }
    f.base = event_base_new();
    f.conf = conf_new();
    if (!conf_load(f.conf, n + 1, argv, &action, &error))
        diag("conf_load: %s", error.message);
    f.cache = cache_new(f.conf, f.base, &error);
    return f;
}

static void
teardown(struct fx *f)
{
    cache_destroy(f->cache);
    conf_destroy(f->conf);
    event_base_free(f->base);
}

#define Q "{'find': 'c', 'filter': {'a': 1}, '$db': 'd'}"

static void
test_hits_and_invalidation(void)
{
    struct fx f = setup(NULL, 0);
    int got;

    is_int(read_once(&f, Q, "", 1, &got), CACHE_MISS, "first read misses");
    is_int(read_once(&f, Q, "", 2, &got), CACHE_HIT, "second read hits");
    is_int(got, 1, "the hit is the stored reply");
    is_int(read_once(&f,
                     "{'find': 'c', 'filter': {'a': 1}, '$db': 'd', 'lsid': {'id': {'$binary': "
                     "{'base64': 'AAAAAAAAAAAAAAAAAAAAAg==', 'subType': '04'}}}, "
                     "'$clusterTime': {'t': 5}, 'maxTimeMS': 9, 'comment': 'x'}",
                     "", 3, &got),
           CACHE_HIT, "lsid, $clusterTime, maxTimeMS and comment do not change the key");
    is_int(read_once(&f, "{'find': 'c', 'filter': {'a': 2}, '$db': 'd'}", "", 4, &got), CACHE_MISS,
           "another filter is another key");
    /* Issue 6 item 9: only values a server accepts are left out of the key. */
    {
        static const struct {
            const char *extra;
            enum cache_outcome want;
        } rows[] = {
            {"'maxTimeMS': 0", CACHE_HIT},
            {"'maxTimeMS': {'$numberLong': '2147483647'}", CACHE_HIT},
            {"'maxTimeMS': 250.0", CACHE_HIT},
            {"'comment': 'a string'", CACHE_HIT},
            {"'lsid': {'id': {'$binary': {'base64': 'AAAAAAAAAAAAAAAAAAAAAQ==', 'subType': '04'}}}, "
             "'$clusterTime': {'t': 1}", CACHE_HIT},
            {"'lsid': {}", CACHE_MISS},
            {"'lsid': {'id': 7}", CACHE_MISS},
            {"'maxTimeMS': 'abc'", CACHE_MISS},
            {"'maxTimeMS': -1", CACHE_MISS},
            {"'maxTimeMS': 1.5", CACHE_MISS},
            {"'maxTimeMS': {'$numberLong': '2147483648'}", CACHE_MISS},
            {"'maxTimeMS': null", CACHE_MISS},
            {"'comment': 5", CACHE_MISS},
            {"'comment': {'x': 1}", CACHE_MISS},
            {"'comment': null", CACHE_MISS},
            {"'lsid': 5", CACHE_MISS},
            {"'$clusterTime': 'now'", CACHE_MISS},
            {"'txnNumber': {'$numberLong': '3'}", CACHE_BYPASS}, /* a transaction's */
        };

        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            char text[256];

            snprintf(text, sizeof text, "{'find': 'c', 'filter': {'a': 1}, '$db': 'd', %s}",
                     rows[i].extra);
            is_int(read_once(&f, text, "", 100 + (int)i, &got), rows[i].want,
                   "%s: %s", rows[i].extra,
                   rows[i].want == CACHE_HIT    ? "left out of the key (a hit)"
                   : rows[i].want == CACHE_MISS ? "kept in the key (goes to the server)"
                                                : "not cacheable at all");
        }
    }
    read_once(&f, "{'find': 'c', 'sort': {'x': 1, 'y': 1}, '$db': 'd'}", "", 5, &got);
    is_int(read_once(&f, "{'find': 'c', 'sort': {'y': 1, 'x': 1}, '$db': 'd'}", "", 5, &got),
           CACHE_MISS, "field order is part of the key (sort order matters)");
    write_cmd(&f, "{'insert': 'other', 'documents': [{}], '$db': 'd'}", false);
    is_int(read_once(&f, Q, "", 6, &got), CACHE_HIT, "a write to another collection leaves it");
    write_cmd(&f, "{'update': 'c', 'updates': [{'q': {}, 'u': {}}], '$db': 'd'}", false);
    is_int(read_once(&f, Q, "", 7, &got), CACHE_MISS, "an update of the collection invalidates");
    is_int(read_once(&f, Q, "", 8, &got), CACHE_HIT, "and the next read is fresh");
    is_int(got, 7, "filled after the update");
    write_cmd(&f, "{'drop': 'elsewhere', '$db': 'd'}", false);
    is_int(read_once(&f, Q, "", 9, &got), CACHE_MISS, "DDL invalidates the whole database");
    write_cmd(&f, "{'createUser': 'bob', 'pwd': 'x', 'roles': [], '$db': 'admin'}", false);
    is_int(read_once(&f, Q, "", 10, &got), CACHE_HIT, "user management of another user leaves it");
    is_int(read_once(&f, Q, "3:bob@admin", 11, &got), CACHE_MISS, "each user has own entries");
    is_int(read_once(&f, Q, "3:bob@admin", 12, &got), CACHE_HIT, "bob's own entry");
    write_cmd(&f, "{'updateUser': 'bob', 'roles': [], '$db': 'admin'}", false);
    is_int(read_once(&f, Q, "3:bob@admin", 13, &got), CACHE_MISS, "changing bob drops bob's entries");
    is_int(read_once(&f, Q, "", 14, &got), CACHE_HIT, "but not the others'");
    is_int(read_once(&f, Q, NULL, 15, &got), CACHE_BYPASS, "unknown auth state bypasses");
    is_int((long long)cache_counter(f.cache, CACHE_CTR_hits), 12, "every hit counted");
    teardown(&f);
}

static void
test_race(void)
{
    struct fx f = setup(NULL, 0);
    bson_t *cmd = json(Q);
    struct cache_request req = {cmd, NULL, "d", 0, "", 0, 0};
    struct cache_pending *p;
    struct cache_value *hit;
    struct cache_wait *wait;
    struct cache_inval inv;
    bson_t *w = json("{'delete': 'c', 'deletes': [{'q': {}, 'limit': 0}], '$db': 'd'}");
    bson_t *body;
    size_t len;
    uint8_t *bytes = reply_for(1, &len, &body);
    int got;
    is_int(cache_lookup(f.cache, &req, &p, &hit, NULL, NULL, &wait), CACHE_MISS, "race: a miss");
    ok(cache_write_begin(f.cache, w, NULL, "d", NULL, NULL, NULL, 0, false, &inv),
       "race: a write begins while the read is in flight");
    cache_write_end(f.cache, &inv);
    cache_store(f.cache, p, bytes, len, body);
    cache_pending_free(f.cache, p);
    is_int((long long)cache_counter(f.cache, CACHE_CTR_fills_refused_generation), 1,
           "race: the read's reply is not stored");
    is_int(read_once(&f, Q, "", 2, &got), CACHE_MISS, "race: the next read goes upstream");

    /* A read that starts after the first bump but returns before the ack. */
    ok(cache_write_begin(f.cache, w, NULL, "d", NULL, NULL, NULL, 0, false, &inv),
       "race 2: write begins");
    is_int(cache_lookup(f.cache, &req, &p, &hit, NULL, NULL, &wait), CACHE_MISS,
           "race 2: a read after the first bump misses");
    cache_store(f.cache, p, bytes, len, body);
    cache_pending_free(f.cache, p);
    cache_write_end(f.cache, &inv);
    is_int(read_once(&f, Q, "", 3, &got), CACHE_MISS,
           "race 2: its reply, stored before the ack, is dropped by the second bump");
    bson_free(bytes);
    bson_destroy(body);
    bson_destroy(w);
    bson_destroy(cmd);
    teardown(&f);
}

static void
test_oneway_and_txn(void)
{
    const char *flags[] = {"--cache-write-grace", "300ms"};
    struct fx f = setup(flags, 2);
    int got;
    bson_t *in_txn, *commit;
    struct cache_inval inv;

    read_once(&f, Q, "", 1, &got);
    write_cmd(&f, "{'insert': 'c', 'documents': [{}], '$db': 'd', 'writeConcern': {'w': 0}}", true);
    is_int(read_once(&f, Q, "", 2, &got), CACHE_MISS, "w:0: the entry is invalid at once");
    is_int(read_once(&f, Q, "", 3, &got), CACHE_MISS, "w:0: nothing is stored during the grace");
    usleep(350 * 1000);
    read_once(&f, Q, "", 4, &got);
    is_int(read_once(&f, Q, "", 5, &got), CACHE_HIT, "w:0: after the grace, cached again");

    in_txn = json("{'insert': 'c', 'documents': [{}], '$db': 'd', 'lsid': {'id': 7}, "
                  "'txnNumber': 1, 'autocommit': false, 'startTransaction': true}");
    commit = json("{'commitTransaction': 1, '$db': 'admin', 'lsid': {'id': 7}, 'txnNumber': 1, "
                  "'autocommit': false}");
    ok(cache_write_begin(f.cache, in_txn, NULL, "d", NULL, NULL, NULL, 0, false, &inv),
       "txn: a write inside a transaction");
    cache_write_end(f.cache, &inv);
    read_once(&f, Q, "", 6, &got);
    is_int(read_once(&f, Q, "", 7, &got), CACHE_HIT, "txn: reads before the commit are cached");
    ok(cache_write_begin(f.cache, commit, NULL, "admin", NULL, NULL, NULL, 0, false, &inv),
       "txn: commitTransaction is a write");
    cache_write_end(f.cache, &inv);
    is_int(read_once(&f, Q, "", 8, &got), CACHE_MISS,
           "txn: the commit invalidates what the transaction wrote");
    read_once(&f, "{'find': 'unrelated', '$db': 'x'}", "", 9, &got);
    ok(cache_write_begin(f.cache, commit, NULL, "admin", NULL, NULL, NULL, 0, false, &inv),
       "txn: a commit of an unknown session");
    cache_write_end(f.cache, &inv);
    is_int(read_once(&f, "{'find': 'unrelated', '$db': 'x'}", "", 10, &got), CACHE_MISS,
           "txn: ...invalidates everything, to be safe");
    bson_destroy(in_txn);
    bson_destroy(commit);
    teardown(&f);
}

/*
 * A write whose reply was lost (its connection closed at a failover) may be
 * applied by the server after the proxy's second bump: fills of what it
 * touches are refused for the grace period, where an acknowledged write's
 * end lets the next read be stored at once.
 */
static void
test_write_lost(void)
{
    const char *flags[] = {"--cache-write-grace", "300ms"};
    struct fx f = setup(flags, 2);
    bson_t *w = json("{'update': 'c', 'updates': [{'q': {}, 'u': {'$set': {'a': 1}}}], "
                     "'$db': 'd'}");
    struct cache_inval inv;
    int got;

    read_once(&f, Q, "", 1, &got);
    is_int(read_once(&f, Q, "", 2, &got), CACHE_HIT, "lost: the read is cached");
    ok(cache_write_begin(f.cache, w, NULL, "d", NULL, NULL, NULL, 0, false, &inv),
       "lost: a write is sent");
    is_int(read_once(&f, Q, "", 3, &got), CACHE_MISS, "lost: in flight, the entry is invalid");
    cache_write_lost(f.cache, &inv);
    is_int(inv.n, 0, "lost: its records are released");
    is_int(read_once(&f, Q, "", 4, &got), CACHE_MISS,
           "lost: what was stored while it was in flight is dropped by the second bump");
    is_int(read_once(&f, Q, "", 5, &got), CACHE_MISS,
           "lost: nothing is stored during the grace (the server may still apply it)");
    {
        /* A read looked up inside the grace, its reply stored after it: it may
         * have run before the late write, so it is not stored either. */
        bson_t *cmd = json(Q);
        struct cache_request req = {cmd, NULL, db_of(cmd), 0, "", 0, 0};
        struct cache_pending *p;
        struct cache_value *hit;
        struct cache_wait *wait;
        size_t len;
        bson_t *body;
        uint8_t *bytes;

        is_int(cache_lookup(f.cache, &req, &p, &hit, NULL, NULL, &wait), CACHE_MISS,
               "lost: a slow read begins inside the grace");
        usleep(350 * 1000);
        bytes = reply_for(50, &len, &body);
        cache_store(f.cache, p, bytes, len, body);
        cache_pending_free(f.cache, p);
        bson_free(bytes);
        bson_destroy(body);
        bson_destroy(cmd);
        is_int(read_once(&f, Q, "", 6, &got), CACHE_MISS,
               "lost: its reply, come after the grace, was not stored");
    }
    is_int(read_once(&f, Q, "", 7, &got), CACHE_HIT, "lost: after the grace, cached again");
    /* the same write acknowledged: the next read is stored at once */
    ok(cache_write_begin(f.cache, w, NULL, "d", NULL, NULL, NULL, 0, false, &inv),
       "acked: a write is sent");
    cache_write_end(f.cache, &inv);
    read_once(&f, Q, "", 8, &got);
    is_int(read_once(&f, Q, "", 9, &got), CACHE_HIT, "acked: no grace after an acknowledged write");
    bson_destroy(w);
    teardown(&f);
}

/*
 * A transaction that wrote more namespaces than one write's invalidation
 * holds (CACHE_MAX_INVAL): its commit must still invalidate every one of
 * them (found in review: the commit bumped only the first 17).
 */
static void
test_txn_many_namespaces(void)
{
    struct fx f = setup(NULL, 0);
    enum { N = 24 };
    char text[256];
    int got;
    bson_t *commit;
    struct cache_inval inv;
    bool all_missed = true;

    for (int i = 0; i < N; i++) {
        bson_t *w;

        snprintf(text, sizeof text,
                 "{'insert': 'c%d', 'documents': [{}], '$db': 'd', 'lsid': {'id': 9}, "
                 "'txnNumber': 1, 'autocommit': false%s}",
                 i, i == 0 ? ", 'startTransaction': true" : "");
        w = json(text);
        if (cache_write_begin(f.cache, w, NULL, "d", NULL, NULL, NULL, 0, false, &inv))
            cache_write_end(f.cache, &inv);
        bson_destroy(w);
    }
    /* Reads by others before the commit see the old data, and are cached. */
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "{'find': 'c%d', 'filter': {}, '$db': 'd'}", i);
        read_once(&f, text, "", 1, &got);
    }
    commit = json("{'commitTransaction': 1, '$db': 'admin', 'lsid': {'id': 9}, 'txnNumber': 1, "
                  "'autocommit': false}");
    ok(cache_write_begin(f.cache, commit, NULL, "admin", NULL, NULL, NULL, 0, false, &inv),
       "txn of %d namespaces: the commit is a write", N);
    cache_write_end(f.cache, &inv);
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "{'find': 'c%d', 'filter': {}, '$db': 'd'}", i);
        if (read_once(&f, text, "", 2, &got) != CACHE_MISS) {
            diag("d.c%d was served from before the commit", i);
            all_missed = false;
        }
    }
    ok(all_missed, "txn of %d namespaces: the commit invalidates every one of them", N);
    bson_destroy(commit);
    teardown(&f);
}

/* One statement of session `id`'s transaction `number` writing d.COLL (start: its first). */
static void
txn_write_n(struct fx *f, int id, int number, const char *coll, bool start)
{
    char text[256];
    struct cache_inval inv;
    bson_t *w;

    snprintf(text, sizeof text,
             "{'insert': '%s', 'documents': [{}], '$db': 'd', 'lsid': {'id': %d}, "
             "'txnNumber': %d, 'autocommit': false%s}",
             coll, id, number, start ? ", 'startTransaction': true" : "");
    w = json(text);
    if (cache_write_begin(f->cache, w, NULL, "d", NULL, NULL, NULL, 0, false, &inv))
        cache_write_end(f->cache, &inv);
    bson_destroy(w);
}

/* One statement of session `id`'s transaction 1 writing d.COLL (start: its first). */
static void
txn_write(struct fx *f, int id, const char *coll, bool start)
{
    txn_write_n(f, id, 1, coll, start);
}

/* Session `id` commits its transaction `number` (a write, checked). */
static void
txn_commit(struct fx *f, int id, int number, const char *label)
{
    char text[256];
    struct cache_inval inv;
    bson_t *commit;

    snprintf(text, sizeof text,
             "{'commitTransaction': 1, '$db': 'admin', 'lsid': {'id': %d}, 'txnNumber': %d, "
             "'autocommit': false}",
             id, number);
    commit = json(text);
    ok(cache_write_begin(f->cache, commit, NULL, "admin", NULL, NULL, NULL, 0, false, &inv),
       "%s: the commit is a write", label);
    cache_write_end(f->cache, &inv);
    bson_destroy(commit);
}

/*
 * More transactions open than the table keeps (1,024): the oldest set is
 * forgotten. When that session then writes again before its commit, the
 * set opened then must not stand for the whole transaction (found in
 * review: the commit bumped only the later write's namespace, and a read
 * of the first one filled before the commit was served after it).
 */
static void
test_txn_forgotten(void)
{
    struct fx f = setup(NULL, 0);
    const char *qa = "{'find': 'a', 'filter': {}, '$db': 'd'}";
    const char *qc = "{'find': 'quiet', 'filter': {}, '$db': 'd'}";
    int got;

    txn_write(&f, 1, "a", true);
    for (int id = 100; id < 100 + 1024; id++)
        txn_write(&f, id, "other", true); /* session 1's set is forgotten */
    txn_write(&f, 1, "b", false);
    read_once(&f, qa, "", 1, &got); /* before the commit: the old data of d.a, stored */
    is_int(read_once(&f, qa, "", 2, &got), CACHE_HIT, "txn forgotten: d.a read before the commit");
    txn_commit(&f, 1, 1, "txn forgotten");
    is_int(read_once(&f, qa, "", 3, &got), CACHE_MISS,
           "txn forgotten: the commit invalidates d.a, written before its set was forgotten");

    /* Another transaction begun by a read, whose set was never forgotten,
     * keeps a precise set, even now that the table forgets sets. */
    read_once(&f, qc, "", 4, &got);
    txn_write(&f, 2, "b", false); /* its first write: the transaction began with a read */
    txn_commit(&f, 2, 1, "txn begun by a read");
    is_int(read_once(&f, qc, "", 5, &got), CACHE_HIT,
           "txn begun by a read, its set not forgotten: the commit invalidates only what it "
           "wrote");

    /* A session's next transaction: the set of the one before (never
     * committed here) is dropped, not merged, and not taken as forgotten. */
    teardown(&f);
    f = setup(NULL, 0);
    txn_write_n(&f, 3, 1, "a", true);
    read_once(&f, qa, "", 6, &got);
    read_once(&f, qc, "", 7, &got);
    txn_write_n(&f, 3, 2, "b", false); /* transaction 2, begun by a read */
    txn_commit(&f, 3, 2, "the session's next txn");
    is_int(read_once(&f, qa, "", 8, &got), CACHE_HIT,
           "the session's next txn: its commit does not bump what the one before wrote");
    is_int(read_once(&f, qc, "", 9, &got), CACHE_HIT,
           "the session's next txn: nor everything (its set is precise)");
    teardown(&f);
}

static void
test_rules(void)
{
    const char *flags[] = {"--cache-exclude", "d.secret, x.*", "--cache-ttl-overrides",
                           "d.fast=100ms, d.never=0"};
    struct fx f = setup(flags, 4);
    int got;

    read_once(&f, "{'find': 'secret', '$db': 'd'}", "", 1, &got);
    is_int(read_once(&f, "{'find': 'secret', '$db': 'd'}", "", 2, &got), CACHE_BYPASS,
           "an excluded collection bypasses");
    is_int(read_once(&f, "{'find': 'any', '$db': 'x'}", "", 3, &got), CACHE_BYPASS,
           "an excluded database bypasses");
    is_int(read_once(&f, "{'find': 'never', '$db': 'd'}", "", 4, &got), CACHE_BYPASS,
           "a TTL of 0 bypasses");
    read_once(&f, "{'find': 'fast', '$db': 'd'}", "", 5, &got);
    is_int(read_once(&f, "{'find': 'fast', '$db': 'd'}", "", 6, &got), CACHE_HIT,
           "a short TTL hits at first");
    usleep(150 * 1000);
    is_int(read_once(&f, "{'find': 'fast', '$db': 'd'}", "", 7, &got), CACHE_MISS,
           "and misses once it has passed");
    is_int(read_once(&f, "{'find': 'c', '$db': 'd', 'comment': 'mongocache:nocache'}", "", 8, &got),
           CACHE_BYPASS, "the skip comment bypasses");
    teardown(&f);
    {
        const char *off[] = {"--cache", "false"};
        struct fx g = setup(off, 2);

        read_once(&g, Q, "", 1, &got);
        is_int(read_once(&g, Q, "", 2, &got), CACHE_BYPASS, "cache = false: a pass-through");
        teardown(&g);
    }
}

struct follower {
    enum cache_outcome outcome;
    struct cache_value *hit;
    int calls;
};

static void
follower_cb(void *arg, enum cache_outcome outcome, struct cache_value *hit)
{
    struct follower *fo = arg;

    fo->outcome = outcome;
    fo->hit = hit;
    fo->calls++;
}

static void
test_coalescing(void)
{
    struct fx f = setup(NULL, 0);
    bson_t *cmd = json(Q);
    struct cache_request req = {cmd, NULL, "d", 0, "", 0, 0};
    struct cache_pending *leader, *p2, *p3;
    struct cache_value *hit;
    struct cache_wait *w2, *w3, *w1;
    struct follower a = {0}, b = {0};
    bson_t *body;
    size_t len;
    uint8_t *bytes = reply_for(1, &len, &body);
    is_int(cache_lookup(f.cache, &req, &leader, &hit, follower_cb, &a, &w1), CACHE_MISS,
           "coalescing: the first read leads");
    is_int(cache_lookup(f.cache, &req, &p2, &hit, follower_cb, &a, &w2), CACHE_WAIT,
           "coalescing: an identical read waits");
    is_int(cache_lookup(f.cache, &req, &p3, &hit, follower_cb, &b, &w3), CACHE_WAIT,
           "coalescing: and another");
    cache_pending_free(f.cache, p2);
    cache_pending_free(f.cache, p3);
    cache_wait_cancel(w3);
    cache_store(f.cache, leader, bytes, len, body);
    cache_pending_free(f.cache, leader);
    ok(a.calls == 1 && a.outcome == CACHE_HIT && a.hit != NULL,
       "coalescing: the waiter gets the leader's reply");
    is_int(b.calls, 0, "coalescing: a cancelled waiter is not called");
    cache_value_unref(a.hit);

    /* The leader's reply is not storable: waiters go upstream themselves. */
    write_cmd(&f, "{'delete': 'c', 'deletes': [], '$db': 'd'}", false);
    memset(&a, 0, sizeof a);
    cache_lookup(f.cache, &req, &leader, &hit, follower_cb, &a, &w1);
    is_int(cache_lookup(f.cache, &req, &p2, &hit, follower_cb, &a, &w2), CACHE_WAIT,
           "coalescing: waiting again");
    cache_pending_free(f.cache, p2);
    cache_pending_free(f.cache, leader);
    ok(a.calls == 1 && a.outcome == CACHE_BYPASS,
       "coalescing: a failed leader sends waiters upstream");
    bson_free(bytes);
    bson_destroy(body);
    bson_destroy(cmd);
    teardown(&f);
}

/*
 * Issue 6 item 7: reads of ever new namespaces must not grow the generation
 * table without bound, and forgetting idle records must not lose an
 * invalidation (a held record stays; a w:0 grace period stays).
 */
static void
test_bounded_namespaces(void)
{
    static const char *const flags[] = {"--cache-memory", "64KiB", "--cache-write-grace", "1h"};
    struct fx f = setup(flags, 4);
    enum { FLOOD = 20000 };
    size_t most = 0;
    char text[160];
    int got;
    bool all_missed = true;

    is_int(read_once(&f, Q, "", 1, &got), CACHE_MISS, "Q is read once");
    is_int(read_once(&f, Q, "", 2, &got), CACHE_HIT, "and cached");
    write_cmd(&f, "{'insert': 'w0', 'documents': [{}], '$db': 'd'}", true);
    for (int i = 0; i < FLOOD; i++) {
        snprintf(text, sizeof text, "{'find': 'flood%d', 'filter': {}, '$db': 'f%d'}", i, i % 7);
        all_missed = all_missed && read_once(&f, text, "", 10, &got) == CACHE_MISS;
        if (cache_records(f.cache) > most)
            most = cache_records(f.cache);
    }
    ok(all_missed, "%d reads of new namespaces all miss", FLOOD);
    ok(most < 2 * CACHE_GEN_MAX_IDLE + 200,
       "the generation table stays bounded: at most %zu records (idle cap %d)", most,
       CACHE_GEN_MAX_IDLE);
    ok(cache_records_forgotten(f.cache) > 10000, "idle records were forgotten (%llu)",
       (unsigned long long)cache_records_forgotten(f.cache));
    is_int(read_once(&f, "{'find': 'w0', 'filter': {}, '$db': 'd'}", "", 11, &got), CACHE_MISS,
           "a read inside the w:0 write's grace period misses");
    is_int(read_once(&f, "{'find': 'w0', 'filter': {}, '$db': 'd'}", "", 12, &got), CACHE_MISS,
           "and was not stored: the grace period survived the flood");
    write_cmd(&f, "{'update': 'c', 'updates': [{'q': {}, 'u': {}}], '$db': 'd'}", false);
    is_int(read_once(&f, Q, "", 3, &got), CACHE_MISS,
           "a write after the flood still invalidates Q");
    is_int(read_once(&f, Q, "", 4, &got), CACHE_HIT, "Q is cached again");
    is_int(got, 3, "with the reply read after the write");
    teardown(&f);
}

/* cache_admin_drop without the shared tier: taken at once (DONE); what it dropped. */
static long long
admin_drop(struct fx *f, const char *ns, size_t ns_len)
{
    struct cache_write_wait *wait = (struct cache_write_wait *)f; /* must be reset */
    size_t dropped = 0;
    enum cache_drop_state st = cache_admin_drop(f->cache, ns, ns_len, NULL, NULL, &wait, &dropped);

    if (st != CACHE_DROP_DONE || wait != NULL)
        return -1;
    return (long long)dropped;
}

/* An operator's flush and invalidation (cache_admin_drop, issue 8). */
static void
test_admin_drop(void)
{
    struct fx f = setup(NULL, 0);
    const char *q2 = "{'find': 'c', 'filter': {'a': 2}, '$db': 'd'}";
    const char *q3 = "{'find': 'other', 'filter': {'a': 1}, '$db': 'd'}";
    const char *q4 = "{'find': 'c', 'filter': {'a': 1}, '$db': 'e'}";
    uint64_t inval0;
    int got;

    read_once(&f, Q, "", 1, &got);
    read_once(&f, q2, "", 2, &got);
    read_once(&f, q3, "", 3, &got);
    read_once(&f, q4, "", 4, &got);
    read_once(&f, Q, "3:bob@admin", 5, &got);
    inval0 = cache_counter(f.cache, CACHE_CTR_invalidations);
    is_int(admin_drop(&f, "d.c", 3), 3,
           "invalidating d.c drops its 3 entries (two filters, two principals)");
    is_int((long long)cache_counter(f.cache, CACHE_CTR_invalidations), (long long)inval0 + 1,
           "counted as one invalidation, as a write");
    is_int(read_once(&f, Q, "", 6, &got), CACHE_MISS, "a d.c read goes to the server again");
    is_int(read_once(&f, q3, "", 7, &got), CACHE_HIT, "d.other is still cached");
    is_int(read_once(&f, q4, "", 8, &got), CACHE_HIT, "e.c (same collection name) is still cached");
    is_int(admin_drop(&f, "d.nothing", 9), 0, "a namespace nothing depends on: 0 dropped");
    {
        /* A read in flight when its namespace is invalidated is not stored. */
        bson_t *cmd = json(q2);
        struct cache_request req = {cmd, NULL, "d", 0, "", 0, 0};
        struct cache_pending *p;
        struct cache_value *hit;
        struct cache_wait *wait;
        uint64_t refused = cache_counter(f.cache, CACHE_CTR_fills_refused_generation);
        size_t len;
        bson_t *body;
        uint8_t *bytes;

        is_int(cache_lookup(f.cache, &req, &p, &hit, NULL, NULL, &wait), CACHE_MISS,
               "a read of d.c misses");
        ok(admin_drop(&f, "d.c", 3) >= 0, "invalidating d.c again: taken at once (no Redis tier)");
        bytes = reply_for(20, &len, &body);
        cache_store(f.cache, p, bytes, len, body);
        cache_pending_free(f.cache, p);
        bson_free(bytes);
        bson_destroy(body);
        bson_destroy(cmd);
        is_int((long long)cache_counter(f.cache, CACHE_CTR_fills_refused_generation),
               (long long)refused + 1, "its reply, after the invalidation, is refused");
    }
    is_int(admin_drop(&f, NULL, 0), 2,
           "a flush drops every entry left (d.other, e.c; d.c's went with the last invalidation)");
    is_int(read_once(&f, q3, "", 9, &got), CACHE_MISS, "d.other goes to the server after it");
    is_int(read_once(&f, q3, "", 10, &got), CACHE_HIT, "and is cached again");
    is_int(got, 9, "with the reply filled after the flush");
    teardown(&f);
}

/*
 * Forced collisions: in a --enable-tiny-keys build (8-bit keys) 600
 * distinct finds share 256 keys, so most lookups find another query's
 * entry under their key; the digest must turn every one into a miss, never
 * a hit on the wrong reply. In a normal build the same reads run (and must
 * be right) but meet no collision.
 */
static void
test_collisions(void)
{
    struct fx f = setup(NULL, 0);
    int wrong = 0, hits = 0, got;
    char q[128];

    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 600; i++) {
            enum cache_outcome out;

            snprintf(q, sizeof q, "{'find': 'c', 'filter': {'a': %d}, '$db': 'd'}", i);
            out = read_once(&f, q, "", i, &got);
            if (out == CACHE_MISS) /* stored: read it back at once */
                out = read_once(&f, q, "", -1, &got);
            if (out == CACHE_HIT) {
                hits++;
                wrong += got != i;
            }
        }
    }
    is_int(wrong, 0, "collisions: no read of 600 finds was answered with another's reply");
    ok(hits >= 600, "collisions: %d hits, each the query's own reply", hits);
    if (cache_key_bits() < 64)
        ok(cache_counter(f.cache, CACHE_CTR_collisions) > 300,
           "collisions: %d-bit keys met %llu collisions, each caught by the digest",
           cache_key_bits(), (unsigned long long)cache_counter(f.cache, CACHE_CTR_collisions));
    teardown(&f);
}

/*
 * What an in-process entry costs beyond its reply, from the cache's own
 * accounting (cache_bytes: every value's allocation as charged, the shared
 * dependency snapshots and their table): at most 96 bytes for an entry of
 * one namespace (issue 9). Was about 670: a copy of the key material and
 * fixed arrays of 18 dependencies.
 */
static void
test_entry_bytes(void)
{
    static const char *const flags[] = {"--cache-memory", "1073741824"};
    struct fx f = setup(flags, 2);
    enum { N = 5000 };
    size_t len;
    bson_t *body;
    uint8_t *bytes = reply_for(0, &len, &body);
    char q[128];
    int got, misses = 0;
    double per;

    uint64_t entries;

    for (int i = 0; i < N; i++) {
        snprintf(q, sizeof q, "{'find': 'c', 'filter': {'a': %d, 'b': 'x'}, '$db': 'd'}", i);
        misses += read_once(&f, q, "5:alice@d", i, &got) == CACHE_MISS;
    }
    entries = cache_counter(f.cache, CACHE_CTR_entries);
    /* With 8-bit keys (a tiny-key build) entries replace each other: fewer are kept. */
    ok(misses == N && (entries == N || (cache_key_bits() < 64 && entries > 0)),
       "entry bytes: %llu entries of one namespace stored", (unsigned long long)entries);
    per = ((double)cache_counter(f.cache, CACHE_CTR_bytes) - (double)entries * (double)len) /
          (double)(entries ? entries : 1);
    ok(per > 0 && per <= 96,
       "entry bytes: %.1f bytes per entry beyond its %zu-byte reply (at most 96)", per, len);
    bson_free(bytes);
    bson_destroy(body);
    teardown(&f);
}

/*
 * The lookup's namespace memo (cache.c ns_record) holds no reference: once
 * the table has forgotten the record it remembers, a lookup of that
 * namespace must find the record that now stands for it, the one writes
 * bump. The flood's namespaces ("f.gNNNNNz") share no memo slot with d.m,
 * so only the forgotten count can tell the memo that d.m's record is gone.
 */
static void
test_ns_memo_forgotten(void)
{
    struct fx f = setup(NULL, 0);
    enum { FLOOD = CACHE_GEN_MAX_IDLE + 2000 };
    char text[160];
    int got;

    is_int(read_once(&f, "{'find': 'm', 'filter': {}, '$db': 'd'}", "", -1, &got), CACHE_MISS,
           "memo: d.m is looked up, nothing stored (its record idle)");
    for (int i = 0; i < FLOOD; i++) {
        snprintf(text, sizeof text, "{'find': 'g%05dz', 'filter': {}, '$db': 'f'}", i);
        (void)read_once(&f, text, "", -1, &got);
    }
    ok(cache_records_forgotten(f.cache) > (uint64_t)FLOOD - CACHE_GEN_MAX_IDLE,
       "memo: the flood made the table forget idle records (%llu)",
       (unsigned long long)cache_records_forgotten(f.cache));
    is_int(read_once(&f, "{'find': 'm', 'filter': {}, '$db': 'd'}", "", 1, &got), CACHE_MISS,
           "memo: d.m is read again and stored");
    is_int(read_once(&f, "{'find': 'm', 'filter': {}, '$db': 'd'}", "", 2, &got), CACHE_HIT,
           "memo: and hit");
    write_cmd(&f, "{'update': 'm', 'updates': [{'q': {}, 'u': {}}], '$db': 'd'}", false);
    is_int(read_once(&f, "{'find': 'm', 'filter': {}, '$db': 'd'}", "", 3, &got), CACHE_MISS,
           "memo: a write to d.m invalidates it (the entry hangs on the record writes bump)");
    is_int(read_once(&f, "{'find': 'm', 'filter': {}, '$db': 'd'}", "", 4, &got), CACHE_HIT,
           "memo: cached again");
    is_int(got, 3, "memo: with the reply read after the write");
    teardown(&f);
}

int
main(void)
{
    if (cache_key_bits() < 64) {
        /* A tiny-key build (run-all's step 4): two queries may share a key,
         * so the tests that count entries per query would fail by chance;
         * they run in the normal build. Here: collisions never answer wrong. */
        diag("tiny keys (%u bits): the collision tests only", cache_key_bits());
        test_collisions();
        return done_testing();
    }
    test_admin_drop();
    test_hits_and_invalidation();
    test_race();
    test_oneway_and_txn();
    test_write_lost();
    test_txn_many_namespaces();
    test_txn_forgotten();
    test_rules();
    test_coalescing();
    test_bounded_namespaces();
    test_ns_memo_forgotten();
    test_collisions();
    test_entry_bytes();
    return done_testing();
}
