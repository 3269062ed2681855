/*
 * tests/unit/test_advice_table.c: owns the tests of advice/table.c: the
 * counters of one shape (queries, hits, server time sum and maximum,
 * documents, last seen), the last query kept (and a too-long one not), the
 * bound and the LRU eviction order, replies and hits for shapes no longer
 * held, snapshots (most used first, bounded, new_shape only once, deep
 * copies that outlive the table), the namespaces whose indexes changed, and
 * a randomized comparison against a plain array model. It does not test
 * how shapes are derived or hashed (advice/shape.c).
 */
#include "config.h"

#include "advice/table.h"
#include "conf/clock.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A shape of db.coll with one equality path "f<tag>" and a sort key, hashed as hash. */
static void
make_shape(struct advice_shape *s, const char *db, const char *coll, uint64_t hash)
{
    char path[32];

    memset(s, 0, sizeof *s);
    snprintf(path, sizeof path, "f%" PRIu64, hash);
    s->db = bson_strdup(db);
    s->coll = bson_strdup(coll);
    s->source = ADVICE_SRC_FIND;
    s->paths[0].path = bson_strdup(path);
    s->paths[0].op = ADVICE_OP_EQ;
    s->n_paths = 1;
    s->sort[0].path = bson_strdup("year");
    s->sort[0].dir = -1;
    s->n_sort = 1;
    s->hash = hash;
}

/* Records one query of a shape hashed as hash (on app.books), query bytes "q<hash>". */
static void
record(struct advice_table *t, uint64_t hash, int64_t now)
{
    struct advice_shape s;
    char q[32];

    make_shape(&s, "app", "books", hash);
    snprintf(q, sizeof q, "q%" PRIu64, hash);
    advice_table_record(t, &s, (const uint8_t *)q, (uint32_t)strlen(q), 0, 1, now);
    advice_shape_cleanup(&s);
}

static const struct advice_snapshot_shape *
find_in(const struct advice_snapshot *snap, uint64_t hash)
{
    for (uint32_t i = 0; i < snap->n; i++)
        if (snap->shapes[i].shape.hash == hash)
            return &snap->shapes[i];
    return NULL;
}

/* Whether the table holds hash: a snapshot of everything, searched. */
static bool
holds(struct advice_table *t, uint64_t hash)
{
    struct advice_snapshot *snap = advice_table_snapshot(t, UINT32_MAX);
    bool found = find_in(snap, hash) != NULL;

    advice_snapshot_destroy(snap);
    return found;
}

static void
test_counters(void)
{
    struct advice_table *t = advice_table_new(16);
    struct advice_shape s;
    struct advice_snapshot *snap;
    const struct advice_snapshot_shape *a;

    make_shape(&s, "app", "books", 42);
    advice_table_record(t, &s, (const uint8_t *)"first", 5, 0, 1, 1000);
    advice_table_reply(t, 42, 3.5, 10, 1);
    advice_table_record(t, &s, (const uint8_t *)"second!", 7, 2, 1, 2000);
    advice_table_reply(t, 42, 1.5, 5, 1);
    advice_table_reply(t, 42, -1.0, 0, 1); /* a negative time is not counted */
    advice_table_hit(t, 42, 3000);
    advice_table_hit(t, 42, 3500);
    advice_table_hit(t, 42, 3600);
    advice_table_hit(t, 7777, 9999); /* unknown: ignored */
    advice_table_reply(t, 7777, 5.0, 5, 1);
    advice_shape_cleanup(&s);

    is_int((long long)advice_table_count(t), 1, "one shape held");
    snap = advice_table_snapshot(t, 10);
    is_int(snap->n, 1, "snapshot has the shape");
    a = find_in(snap, 42);
    if (!ok(a != NULL, "shape 42 in the snapshot")) {
        advice_snapshot_destroy(snap);
        advice_table_destroy(t);
        return;
    }
    is_int((long long)a->queries, 2, "queries counted by record");
    is_int((long long)a->hits, 3, "hits counted by hit");
    ok(a->server_ms == 5.0, "server time summed (%g)", a->server_ms);
    ok(a->server_ms_max == 3.5, "server time maximum (%g)", a->server_ms_max);
    is_int((long long)a->documents, 15, "documents summed");
    is_int(a->last_seen_ms, 3600, "last seen is the last hit");
    ok(a->query_len == 7 && a->query != NULL && memcmp(a->query, "second!", 7) == 0,
       "the last query is kept");
    is_int(a->statement, 2, "with its statement index");
    is_str(a->shape.db, "app", "db copied");
    is_str(a->shape.coll, "books", "coll copied");
    is_str(a->shape.paths[0].path, "f42", "paths copied");
    ok(a->new_shape, "new in its first snapshot");
    advice_snapshot_destroy(snap);

    snap = advice_table_snapshot(t, 10);
    ok(snap->n == 1 && !snap->shapes[0].new_shape, "not new in the next snapshot");
    advice_snapshot_destroy(snap);
    advice_table_destroy(t);
}

/* A shape known by its hash alone (advice_table_has, advice_table_record_known). */
/* Sampled queries (advice/sampler.h) count for their weight: queries, server time, documents. */
static void
test_weights(void)
{
    struct advice_table *t = advice_table_new(16);
    struct advice_shape s;
    struct advice_snapshot *snap;
    const struct advice_snapshot_shape *a;

    make_shape(&s, "app", "books", 42);
    advice_table_record(t, &s, (const uint8_t *)"q", 1, 0, 1, 10);
    advice_table_reply(t, 42, 2.0, 3, 1);
    advice_table_record_known(t, 42, (const uint8_t *)"q", 1, 0, 7, 20);
    advice_table_reply(t, 42, 4.0, 2, 7);
    advice_table_hit(t, 42, 30); /* hits are never sampled */
    advice_shape_cleanup(&s);
    snap = advice_table_snapshot(t, 10);
    a = find_in(snap, 42);
    ok(a != NULL && a->queries == 8 && a->server_ms == 30.0 && a->server_ms_max == 4.0 &&
           a->documents == 17 && a->hits == 1,
       "a query of weight 7 counts 7 queries, 7 round trips and 7 times its documents; the "
       "maximum is one round trip");
    advice_snapshot_destroy(snap);
    advice_table_destroy(t);
}

static void
test_known(void)
{
    struct advice_table *t = advice_table_new(2);
    struct advice_snapshot *snap;
    const struct advice_snapshot_shape *a;

    ok(!advice_table_has(t, 42), "an empty table has no shape 42");
    advice_table_record_known(t, 42, (const uint8_t *)"lost", 4, 0, 1, 10);
    is_int((long long)advice_table_count(t), 0, "record_known of a shape not kept adds nothing");
    record(t, 42, 100);
    ok(advice_table_has(t, 42) && !advice_table_has(t, 43), "has: 42 yes, 43 no");
    record(t, 1, 150);
    advice_table_record_known(t, 42, (const uint8_t *)"later", 5, 3, 1, 200);
    record(t, 2, 300); /* evicts the least recently used: 1, not 42 (record_known touched it) */
    ok(advice_table_has(t, 42) && !advice_table_has(t, 1),
       "record_known counts as a use for eviction");
    snap = advice_table_snapshot(t, 10);
    a = find_in(snap, 42);
    ok(a != NULL && a->queries == 2 && a->last_seen_ms == 200,
       "record_known counts the query and its time");
    ok(a != NULL && a->query_len == 5 && memcmp(a->query, "later", 5) == 0 && a->statement == 3,
       "record_known keeps the last query and its statement");
    ok(a != NULL && a->shape.db != NULL && strcmp(a->shape.db, "app") == 0,
       "the shape itself is the one first recorded");
    advice_snapshot_destroy(snap);
    advice_table_destroy(t);
}

static void
test_query_kept(void)
{
    struct advice_table *t = advice_table_new(4);
    struct advice_shape s;
    struct advice_snapshot *snap;
    uint8_t *big = bson_malloc0(ADVICE_TABLE_MAX_QUERY + 1);
    const struct advice_snapshot_shape *a, *b;

    memset(big, 'x', ADVICE_TABLE_MAX_QUERY + 1);
    make_shape(&s, "app", "books", 1);
    advice_table_record(t, &s, big, ADVICE_TABLE_MAX_QUERY + 1, 0, 1, 1);
    advice_shape_cleanup(&s);
    make_shape(&s, "app", "books", 2);
    advice_table_record(t, &s, (const uint8_t *)"short", 5, 1, 1, 1);
    advice_table_record(t, &s, big, ADVICE_TABLE_MAX_QUERY + 1, 3, 1, 2);
    advice_shape_cleanup(&s);
    make_shape(&s, "app", "books", 3);
    advice_table_record(t, &s, big, ADVICE_TABLE_MAX_QUERY, 4, 1, 1);
    advice_shape_cleanup(&s);

    snap = advice_table_snapshot(t, 10);
    a = find_in(snap, 1);
    b = find_in(snap, 2);
    ok(a != NULL && a->query == NULL && a->query_len == 0,
       "a query over ADVICE_TABLE_MAX_QUERY is not kept");
    ok(b != NULL && b->query_len == 5 && memcmp(b->query, "short", 5) == 0 && b->statement == 1,
       "a too-long query leaves the earlier one (and its statement)");
    ok(find_in(snap, 3) != NULL && find_in(snap, 3)->query_len == ADVICE_TABLE_MAX_QUERY,
       "a query of exactly ADVICE_TABLE_MAX_QUERY bytes is kept");
    advice_snapshot_destroy(snap);
    bson_free(big);
    advice_table_destroy(t);
}

static void
test_bound_and_order(void)
{
    struct advice_table *t = advice_table_new(4);
    struct advice_table *zero = advice_table_new(0);

    for (uint64_t h = 1; h <= 10; h++)
        record(t, h, (int64_t)h);
    is_int((long long)advice_table_count(t), 4, "never more than max_shapes");
    is_int((long long)advice_table_evicted(t), 6, "6 evicted");
    ok(holds(t, 7) && holds(t, 8) && holds(t, 9) && holds(t, 10) && !holds(t, 6),
       "the 4 most recent remain");

    /* 7 8 9 10 (10 newest); hit 7, record 8: order 9 10 7 8 -> next evictions 9, then 10 */
    advice_table_hit(t, 7, 20);
    record(t, 8, 21);
    record(t, 11, 22);
    ok(!holds(t, 9) && holds(t, 7) && holds(t, 8) && holds(t, 10) && holds(t, 11),
       "the least recently used (9) evicted, not a hit (7) or a re-recorded (8) one");
    record(t, 12, 23);
    ok(!holds(t, 10) && holds(t, 7) && holds(t, 8), "then 10");
    advice_table_reply(t, 9, 1.0, 1, 1); /* evicted: ignored */
    advice_table_hit(t, 10, 30);
    is_int((long long)advice_table_count(t), 4, "replies and hits for evicted shapes add nothing");
    is_int((long long)advice_table_evicted(t), 8, "8 evicted");

    /* an evicted shape that comes back starts from zero and is new again */
    {
        struct advice_snapshot *snap = advice_table_snapshot(t, 10);

        advice_snapshot_destroy(snap);
        record(t, 9, 40);
        snap = advice_table_snapshot(t, 10);
        ok(find_in(snap, 9) && find_in(snap, 9)->queries == 1 && find_in(snap, 9)->new_shape,
           "an evicted shape recorded again starts over, new");
        ok(find_in(snap, 8) && !find_in(snap, 8)->new_shape, "the others are not new");
        advice_snapshot_destroy(snap);
    }

    record(zero, 1, 1);
    is_int((long long)advice_table_count(zero), 0, "max_shapes 0 holds nothing");
    advice_table_destroy(zero);
    advice_table_destroy(t);
}

static void
test_snapshot(void)
{
    struct advice_table *t = advice_table_new(100);
    struct advice_snapshot *snap, *keep;
    bool order = true;

    /* shape h gets h queries; shapes 20 and 21 tie on queries and differ by server time */
    for (uint64_t h = 1; h <= 21; h++) {
        uint64_t n = h <= 19 ? h : 50;

        for (uint64_t i = 0; i < n; i++)
            record(t, h, (int64_t)i);
    }
    advice_table_reply(t, 20, 1.0, 0, 1);
    advice_table_reply(t, 21, 9.0, 0, 1);

    snap = advice_table_snapshot(t, 5);
    is_int(snap->n, 5, "a snapshot holds at most max_shapes");
    ok(snap->n == 5 && snap->shapes[0].shape.hash == 21 && snap->shapes[1].shape.hash == 20,
       "ties on queries: more server time first");
    for (uint32_t i = 1; i < snap->n; i++)
        order = order && snap->shapes[i - 1].queries >= snap->shapes[i].queries;
    ok(order && snap->n == 5 && snap->shapes[2].shape.hash == 19 &&
           snap->shapes[4].shape.hash == 17,
       "most used first");
    advice_snapshot_destroy(snap);

    keep = advice_table_snapshot(t, 100);
    is_int(keep->n, 21, "the whole table");
    ok(find_in(keep, 21) && !find_in(keep, 21)->new_shape, "in the first snapshot: not new");
    ok(find_in(keep, 16) && find_in(keep, 16)->new_shape, "left out of the first: still new");

    /* the snapshot must outlive every change of the table and the table itself */
    for (uint64_t h = 1000; h < 1300; h++)
        record(t, h, 99);
    advice_table_destroy(t);
    {
        const struct advice_snapshot_shape *a = find_in(keep, 7);

        ok(a != NULL && a->queries == 7 && strcmp(a->shape.db, "app") == 0 &&
               strcmp(a->shape.coll, "books") == 0 && strcmp(a->shape.paths[0].path, "f7") == 0 &&
               strcmp(a->shape.sort[0].path, "year") == 0 && a->query_len == 2 &&
               memcmp(a->query, "q7", 2) == 0,
           "snapshot copies survive eviction and the table's destruction");
    }
    advice_snapshot_destroy(keep);
    advice_snapshot_destroy(NULL);
}

static bool
has_ns(const struct advice_snapshot *snap, const char *ns)
{
    for (uint32_t i = 0; i < snap->n_changed; i++)
        if (strcmp(snap->changed_ns[i], ns) == 0)
            return true;
    return false;
}

/* A snapshot replaced unread hands its changed namespaces to the next one. */
static void
test_take_changed(void)
{
    struct advice_table *t = advice_table_new(8);
    struct advice_snapshot *first, *second;
    char coll[32];

    advice_table_indexes_changed(t, "app", "books");
    advice_table_indexes_changed(t, "app", "users");
    first = advice_table_snapshot(t, 8);
    advice_table_indexes_changed(t, "app", "users");
    advice_table_indexes_changed(t, "shop", NULL);
    second = advice_table_snapshot(t, 8);
    advice_snapshot_take_changed(second, first);
    ok(second->n_changed == 3 && has_ns(second, "app.books") && has_ns(second, "app.users") &&
           has_ns(second, "shop.*"),
       "the replacing snapshot has both lists, each namespace once (%u)", second->n_changed);
    is_int(first->n_changed, 0, "the replaced one keeps none (freed once, by the other)");
    advice_snapshot_destroy(first);
    for (int i = 0; i < 300; i++) {
        snprintf(coll, sizeof coll, "c%d", i);
        advice_table_indexes_changed(t, "db", coll);
    }
    first = advice_table_snapshot(t, 8);
    advice_snapshot_take_changed(second, first);
    is_int(second->n_changed, 256, "at most as many as the table keeps");
    advice_snapshot_destroy(first);
    advice_snapshot_destroy(second);
    advice_table_destroy(t);
}

static void
test_changed(void)
{
    struct advice_table *t = advice_table_new(8);
    struct advice_snapshot *snap;
    char coll[32];
    char *longname = bson_malloc0(600);

    advice_table_indexes_changed(t, "app", "books");
    advice_table_indexes_changed(t, "app", "books");
    advice_table_indexes_changed(t, "shop", NULL);
    advice_table_indexes_changed(t, NULL, "x");
    memset(longname, 'c', 599);
    advice_table_indexes_changed(t, "app", longname);
    bson_free(longname);
    record(t, 1, 1);

    snap = advice_table_snapshot(t, 8);
    is_int(snap->n_changed, 2, "two distinct namespaces (a repeat, no db and a huge name ignored)");
    ok(has_ns(snap, "app.books") && has_ns(snap, "shop.*"),
       "db.coll, and db.* for a dropped database");
    advice_snapshot_destroy(snap);

    snap = advice_table_snapshot(t, 8);
    is_int(snap->n_changed, 0, "forgotten once handed over");
    advice_snapshot_destroy(snap);

    for (int i = 0; i < 300; i++) {
        snprintf(coll, sizeof coll, "c%d", i);
        advice_table_indexes_changed(t, "db", coll);
    }
    snap = advice_table_snapshot(t, 0);
    ok(snap->n_changed > 0 && snap->n_changed <= 256 && snap->n == 0,
       "bounded (%u kept of 300); max_shapes 0 copies no shape", snap->n_changed);
    advice_snapshot_destroy(snap);
    advice_table_destroy(t);
}

/*
 * A model: an array of hashes, most recently used first, with each one's
 * query count. Random records and hits on a small hash space with a small
 * bound; after each step the table's count, evicted total, membership and
 * counts must agree.
 */
#define MODEL_MAX 16
#define MODEL_SPACE 40
#define MODEL_STEPS 20000

static void
test_model(void)
{
    uint64_t order[MODEL_MAX];
    uint64_t queries[MODEL_SPACE + 1] = {0};
    uint64_t hits[MODEL_SPACE + 1] = {0};
    size_t n = 0;
    uint64_t evicted = 0;
    struct advice_table *t = advice_table_new(MODEL_MAX);
    bool agree = true;
    uint32_t seed = 12345;

    for (int step = 0; step < MODEL_STEPS && agree; step++) {
        uint64_t h;
        size_t at = n;
        bool is_hit;

        seed = seed * 1103515245u + 12345u;
        h = 1 + (seed >> 8) % MODEL_SPACE;
        is_hit = ((seed >> 20) & 3) == 0;
        for (size_t i = 0; i < n; i++)
            if (order[i] == h)
                at = i;
        if (is_hit) {
            advice_table_hit(t, h, step);
            if (at == n)
                continue;
            hits[h]++;
        } else {
            record(t, h, step);
            if (at == n) {
                if (n == MODEL_MAX) {
                    queries[order[n - 1]] = hits[order[n - 1]] = 0;
                    n--;
                    evicted++;
                }
                at = n++;
                order[at] = h;
            }
            queries[h]++;
        }
        memmove(order + 1, order, at * sizeof *order);
        order[0] = h;

        if (step % 97 == 0 || step == MODEL_STEPS - 1) {
            struct advice_snapshot *snap = advice_table_snapshot(t, MODEL_MAX);

            agree = snap->n == n && advice_table_count(t) == n &&
                    advice_table_evicted(t) == evicted;
            for (size_t i = 0; i < n && agree; i++) {
                const struct advice_snapshot_shape *a = find_in(snap, order[i]);

                agree = a && a->queries == queries[order[i]] && a->hits == hits[order[i]];
            }
            if (!agree)
                diag("disagreement at step %d", step);
            advice_snapshot_destroy(snap);
        }
    }
    ok(agree, "%d random records and hits agree with the array model", MODEL_STEPS);
    advice_table_destroy(t);
}

/* What a record of a known shape costs (reported, not asserted: machines differ). */
static void
measure(void)
{
    struct advice_table *t = advice_table_new(10000);
    struct advice_shape s[64];
    uint8_t q[300];
    int64_t a, b;
    const int rounds = 200000;
    double ns;

    memset(q, 'q', sizeof q);
    for (int i = 0; i < 64; i++)
        make_shape(&s[i], "app", "books", (uint64_t)i * 0x9e3779b97f4a7c15u + 1);
    a = conf_clock_us();
    for (int i = 0; i < rounds; i++) {
        advice_table_record(t, &s[i & 63], q, sizeof q, 0, 1, i);
        advice_table_reply(t, s[i & 63].hash, 1.0, 1, 1);
    }
    b = conf_clock_us();
    ns = (double)(b - a) * 1e3 / rounds;
    diag("record + reply of a known shape (300-byte query): %.0f ns", ns);
    ok(advice_table_count(t) == 64, "measured on 64 shapes");
    for (int i = 0; i < 64; i++)
        advice_shape_cleanup(&s[i]);
    advice_table_destroy(t);
}

int
main(void)
{
    test_counters();
    test_weights();
    test_known();
    test_query_kept();
    test_bound_and_order();
    test_snapshot();
    test_changed();
    test_take_changed();
    test_model();
    measure();
    return done_testing();
}
