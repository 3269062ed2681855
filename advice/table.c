/*
 * advice/table.c: owns the table of query shapes kept on the event-loop
 * thread (see table.h): the entries, their fixed chained hash index keyed by
 * the shape's hash, the intrusive LRU list that picks the entry to evict,
 * each entry's counters and its last query's bytes, and the set of
 * namespaces whose indexes changed since the last snapshot. It does not
 * derive or hash shapes (advice/shape.c: the hash in shape->hash is the
 * identity here, two shapes with one hash are one entry), does not read
 * clocks (the caller passes its loop's monotonic time), and does nothing
 * with a snapshot once made: the advisor (advice/advisor.c) owns it.
 *
 * Loop thread only: no lock anywhere. Every record, reply and hit is O(1):
 * one bucket walk (the bucket array is sized at creation for max_shapes and
 * never grows), a list move, a few additions and at most one memcpy of a
 * query of at most ADVICE_TABLE_MAX_QUERY bytes into a buffer that is only
 * reallocated when a longer query of that shape comes. A snapshot sorts the
 * entries (O(n log n), once per advice_interval) and deep-copies the most
 * used ones.
 *
 * An entry's life: created by advice_table_record for a hash not held (the
 * shape deep-copied into it; when the table is full the least recently
 * recorded or hit entry is evicted first and its memory reused), moved to
 * the most recently used end by each record and hit, freed by eviction or
 * advice_table_destroy. Nothing outside this file ever holds an entry.
 */
#include "config.h"

#include "advice/table.h"

#include "advice/hist.h"

#include <bson/bson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Bucket array bounds; the count is a power of two, at least max_shapes up to MAX_BUCKETS. */
#define MIN_BUCKETS 8
#define MAX_BUCKETS ((size_t)1 << 20)
/* Distinct namespaces kept between snapshots (more are dropped: see mark_changed). */
#define MAX_CHANGED 256
/* Longest namespace name kept (MongoDB allows 255 bytes). */
#define MAX_NS_LEN 512

/*
 * One shape and its counters. What a hit, a record or a reply reads and
 * writes (the hash, the links, the counters) comes first, in one cache
 * line; the shape (a kilobyte) and the query after it are read by
 * snapshots only.
 */
struct entry {
    uint64_t hash;       /* shape.hash, kept here for find */
    struct entry *chain; /* next in the hash bucket */
    struct entry *prev;  /* towards the most recently used end */
    struct entry *next;  /* towards the least recently used end */
    uint64_t queries;
    uint64_t hits;
    int64_t last_seen_ms;
    uint64_t documents;
    double server_ms;
    double server_ms_max;
    uint8_t *query; /* owned; query_cap bytes allocated, query_len used (0: none kept) */
    uint32_t query_len;
    uint32_t query_cap;
    uint32_t statement;
    bool snapshotted; /* included in a snapshot already */
    struct advice_hist latency; /* server round trips (GET /shapes' p50 and p99) */
    struct advice_shape shape; /* deep copy, owned */
};

struct advice_table {
    struct entry **buckets;
    size_t mask; /* bucket count - 1 */
    struct entry *head; /* most recently used */
    struct entry *tail; /* least recently used: evicted first */
    size_t count;
    size_t max;
    uint64_t evicted;
    char *changed[MAX_CHANGED]; /* "db.coll" or "db.*", owned */
    uint32_t n_changed;
};

/* Spreads the shape hash over the bucket index (the low bits of XXH3 are good; this is cheap). */
static size_t
bucket_of(const struct advice_table *table, uint64_t hash)
{
    return (size_t)(hash ^ (hash >> 32)) & table->mask;
}

static struct entry *
find(const struct advice_table *table, uint64_t hash)
{
    struct entry *e = table->buckets[bucket_of(table, hash)];

    while (e != NULL && e->hash != hash)
        e = e->chain;
    return e;
}

static void
list_unlink(struct advice_table *table, struct entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        table->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        table->tail = e->prev;
    e->prev = e->next = NULL;
}

static void
list_push_front(struct advice_table *table, struct entry *e)
{
    e->prev = NULL;
    e->next = table->head;
    if (table->head != NULL)
        table->head->prev = e;
    table->head = e;
    if (table->tail == NULL)
        table->tail = e;
}

static void
touch(struct advice_table *table, struct entry *e)
{
    if (table->head == e)
        return;
    list_unlink(table, e);
    list_push_front(table, e);
}

static void
bucket_unlink(struct advice_table *table, struct entry *e)
{
    struct entry **link = &table->buckets[bucket_of(table, e->hash)];

    while (*link != e)
        link = &(*link)->chain;
    *link = e->chain;
    e->chain = NULL;
}

/* Takes the least recently used entry out of the table; returns it with its contents freed. */
static struct entry *
evict_tail(struct advice_table *table)
{
    struct entry *e = table->tail;

    bucket_unlink(table, e);
    list_unlink(table, e);
    advice_shape_cleanup(&e->shape);
    bson_free(e->query);
    memset(e, 0, sizeof *e);
    table->count--;
    table->evicted++;
    return e;
}

struct advice_table *
advice_table_new(size_t max_shapes)
{
    struct advice_table *table = bson_malloc0(sizeof *table);
    size_t n = MIN_BUCKETS;

    while (n < max_shapes && n < MAX_BUCKETS)
        n <<= 1;
    table->buckets = bson_malloc0(n * sizeof *table->buckets);
    table->mask = n - 1;
    table->max = max_shapes;
    return table;
}

void
advice_table_destroy(struct advice_table *table)
{
    struct entry *e;

    if (table == NULL)
        return;
    e = table->head;
    while (e != NULL) {
        struct entry *next = e->next;

        advice_shape_cleanup(&e->shape);
        bson_free(e->query);
        bson_free(e);
        e = next;
    }
    for (uint32_t i = 0; i < table->n_changed; i++)
        bson_free(table->changed[i]);
    bson_free(table->buckets);
    bson_free(table);
}

/*
 * Keeps query as e's last query. A query too long (or absent) leaves the
 * one kept before: any query of the shape serves for explain, and its
 * statement index stays with it.
 */
static void
keep_query(struct entry *e, const uint8_t *query, uint32_t query_len, uint32_t statement)
{
    if (query == NULL || query_len == 0 || query_len > ADVICE_TABLE_MAX_QUERY)
        return;
    if (query_len > e->query_cap) {
        bson_free(e->query);
        e->query = bson_malloc(query_len);
        e->query_cap = query_len;
    }
    memcpy(e->query, query, query_len);
    e->query_len = query_len;
    e->statement = statement;
}

void
advice_table_record(struct advice_table *table, const struct advice_shape *shape,
                    const uint8_t *query, uint32_t query_len, uint32_t statement, int64_t now_ms)
{
    struct entry *e;

    if (table->max == 0)
        return;
    e = find(table, shape->hash);
    if (e != NULL) {
        touch(table, e);
    } else {
        size_t b;

        e = table->count >= table->max ? evict_tail(table) : bson_malloc0(sizeof *e);
        advice_shape_copy(&e->shape, shape);
        /* the copy keeps the caller's hash: it is the identity of the entry */
        e->shape.hash = shape->hash;
        e->hash = shape->hash;
        b = bucket_of(table, shape->hash);
        e->chain = table->buckets[b];
        table->buckets[b] = e;
        list_push_front(table, e);
        table->count++;
    }
    e->queries++;
    e->last_seen_ms = now_ms;
    keep_query(e, query, query_len, statement);
}

bool
advice_table_has(void *table, uint64_t hash)
{
    return find(table, hash) != NULL;
}

void
advice_table_record_known(struct advice_table *table, uint64_t hash, const uint8_t *query,
                          uint32_t query_len, uint32_t statement, int64_t now_ms)
{
    struct entry *e = find(table, hash);

    if (e == NULL)
        return;
    touch(table, e);
    e->queries++;
    e->last_seen_ms = now_ms;
    keep_query(e, query, query_len, statement);
}

void
advice_table_reply(struct advice_table *table, uint64_t hash, double server_ms,
                   uint64_t documents)
{
    struct entry *e = find(table, hash);

    if (e == NULL)
        return; /* evicted while its query was upstream */
    if (isfinite(server_ms) && server_ms > 0) {
        e->server_ms += server_ms;
        if (server_ms > e->server_ms_max)
            e->server_ms_max = server_ms;
    }
    advice_hist_add(&e->latency, server_ms);
    e->documents += documents;
}

void
advice_table_hit(struct advice_table *table, uint64_t hash, int64_t now_ms)
{
    struct entry *e = find(table, hash);

    if (e == NULL)
        return;
    e->hits++;
    e->last_seen_ms = now_ms;
    touch(table, e);
}

size_t
advice_table_count(const struct advice_table *table)
{
    return table->count;
}

uint64_t
advice_table_evicted(const struct advice_table *table)
{
    return table->evicted;
}

/* Most queries first, then most server time, then the hash (a total order: stable output). */
static int
by_use(const void *pa, const void *pb)
{
    const struct entry *a = *(const struct entry *const *)pa;
    const struct entry *b = *(const struct entry *const *)pb;

    if (a->queries != b->queries)
        return a->queries > b->queries ? -1 : 1;
    if (a->server_ms != b->server_ms)
        return a->server_ms > b->server_ms ? -1 : 1;
    if (a->shape.hash != b->shape.hash)
        return a->shape.hash < b->shape.hash ? -1 : 1;
    return 0;
}

static void
copy_out(struct advice_snapshot_shape *out, struct entry *e)
{
    advice_shape_copy(&out->shape, &e->shape);
    out->shape.hash = e->shape.hash;
    out->queries = e->queries;
    out->hits = e->hits;
    out->server_ms = e->server_ms;
    out->server_ms_max = e->server_ms_max;
    out->documents = e->documents;
    out->last_seen_ms = e->last_seen_ms;
    out->query = NULL;
    out->query_len = 0;
    out->statement = e->statement;
    if (e->query_len > 0) {
        out->query = bson_malloc(e->query_len);
        memcpy(out->query, e->query, e->query_len);
        out->query_len = e->query_len;
    }
    out->new_shape = !e->snapshotted;
    e->snapshotted = true;
}

struct advice_snapshot *
advice_table_snapshot(struct advice_table *table, uint32_t max_shapes)
{
    struct advice_snapshot *snap = bson_malloc0(sizeof *snap);
    size_t n = table->count < max_shapes ? table->count : max_shapes;

    if (n > 0) {
        struct entry **all = bson_malloc(table->count * sizeof *all);
        size_t i = 0;

        for (struct entry *e = table->head; e != NULL; e = e->next)
            all[i++] = e;
        qsort(all, table->count, sizeof *all, by_use);
        snap->shapes = bson_malloc0(n * sizeof *snap->shapes);
        for (i = 0; i < n; i++)
            copy_out(&snap->shapes[i], all[i]);
        snap->n = (uint32_t)n;
        bson_free(all);
    }
    if (table->n_changed > 0) {
        snap->changed_ns = bson_malloc(table->n_changed * sizeof *snap->changed_ns);
        memcpy(snap->changed_ns, table->changed, table->n_changed * sizeof *snap->changed_ns);
        snap->n_changed = table->n_changed;
        table->n_changed = 0;
    }
    return snap;
}

void
advice_snapshot_destroy(struct advice_snapshot *snapshot)
{
    if (snapshot == NULL)
        return;
    for (uint32_t i = 0; i < snapshot->n; i++) {
        advice_shape_cleanup(&snapshot->shapes[i].shape);
        bson_free(snapshot->shapes[i].query);
    }
    for (uint32_t i = 0; i < snapshot->n_changed; i++)
        bson_free(snapshot->changed_ns[i]);
    bson_free(snapshot->shapes);
    bson_free(snapshot->changed_ns);
    bson_free(snapshot);
}

void
advice_snapshot_take_changed(struct advice_snapshot *to, struct advice_snapshot *from)
{
    if (to == NULL || from == NULL || from->n_changed == 0)
        return;
    to->changed_ns = bson_realloc(to->changed_ns, MAX_CHANGED * sizeof *to->changed_ns);
    for (uint32_t i = 0; i < from->n_changed; i++) {
        char *ns = from->changed_ns[i];
        uint32_t j;

        for (j = 0; j < to->n_changed && strcmp(to->changed_ns[j], ns) != 0; j++)
            ;
        if (j < to->n_changed || to->n_changed >= MAX_CHANGED) {
            bson_free(ns);
            continue;
        }
        to->changed_ns[to->n_changed++] = ns;
    }
    from->n_changed = 0;
}

/*
 * Remembers "db.coll" ("db.*" when coll is NULL) once. Beyond MAX_CHANGED
 * distinct names until the next snapshot, further names are dropped: the
 * advisor re-reads every namespace's indexes each run and notices a changed
 * index set by itself; this list only makes it forget verdicts sooner.
 */
void
advice_table_indexes_changed(struct advice_table *table, const char *db, const char *coll)
{
    char *ns;

    if (db == NULL || db[0] == '\0')
        return;
    if (strlen(db) + (coll ? strlen(coll) : 1) + 1 > MAX_NS_LEN)
        return;
    ns = bson_strdup_printf("%s.%s", db, coll ? coll : "*");
    for (uint32_t i = 0; i < table->n_changed; i++) {
        if (strcmp(table->changed[i], ns) == 0) {
            bson_free(ns);
            return;
        }
    }
    if (table->n_changed >= MAX_CHANGED) {
        bson_free(ns);
        return;
    }
    table->changed[table->n_changed++] = ns;
}

/* ---- the top shapes (GET /shapes) ------------------------------------------- */

static double
hit_ratio(const struct entry *e)
{
    uint64_t all = e->hits + e->queries;

    return all ? (double)e->hits / (double)all : 0;
}

/* Ties broken by the hash: a total order, so the output is stable. */
static int
by_hash(const struct entry *a, const struct entry *b)
{
    return a->hash < b->hash ? -1 : a->hash > b->hash;
}

static int
by_count(const void *pa, const void *pb)
{
    const struct entry *a = *(const struct entry *const *)pa;
    const struct entry *b = *(const struct entry *const *)pb;

    if (a->queries != b->queries)
        return a->queries > b->queries ? -1 : 1;
    return by_hash(a, b);
}

static int
by_server_time(const void *pa, const void *pb)
{
    const struct entry *a = *(const struct entry *const *)pa;
    const struct entry *b = *(const struct entry *const *)pb;

    if (a->server_ms != b->server_ms)
        return a->server_ms > b->server_ms ? -1 : 1;
    return by_hash(a, b);
}

static int
by_hit_ratio(const void *pa, const void *pb)
{
    const struct entry *a = *(const struct entry *const *)pa;
    const struct entry *b = *(const struct entry *const *)pb;
    double ra = hit_ratio(a), rb = hit_ratio(b);

    if (ra != rb)
        return ra > rb ? -1 : 1;
    if (a->hits + a->queries != b->hits + b->queries)
        return a->hits + a->queries > b->hits + b->queries ? -1 : 1;
    return by_hash(a, b);
}

uint32_t
advice_table_top(const struct advice_table *table, enum advice_table_order order,
                 struct advice_table_row *rows, uint32_t max)
{
    struct entry **all;
    size_t i = 0;
    uint32_t n;
    int (*cmp)(const void *, const void *) = order == ADVICE_TABLE_BY_SERVER_TIME ? by_server_time
                                             : order == ADVICE_TABLE_BY_HIT_RATIO ? by_hit_ratio
                                                                                  : by_count;

    if (table->count == 0 || max == 0)
        return 0;
    all = bson_malloc(table->count * sizeof *all);
    for (struct entry *e = table->head; e != NULL; e = e->next)
        all[i++] = e;
    qsort(all, table->count, sizeof *all, cmp);
    n = table->count < max ? (uint32_t)table->count : max;
    for (i = 0; i < n; i++) {
        const struct entry *e = all[i];
        struct advice_table_row *r = &rows[i];

        r->shape = &e->shape;
        r->queries = e->queries;
        r->hits = e->hits;
        r->hit_ratio = hit_ratio(e);
        r->server_ms = e->server_ms;
        r->server_ms_max = e->server_ms_max;
        r->p50_ms = advice_hist_quantile(&e->latency, 0.5);
        r->p99_ms = advice_hist_quantile(&e->latency, 0.99);
        r->documents = e->documents;
        r->last_seen_ms = e->last_seen_ms;
    }
    bson_free(all);
    return n;
}
