/*
 * advice/table.h: the query shapes seen, counted on the event-loop thread
 * (and only there: no locks). Bounded: beyond max_shapes the least recently
 * used shape is evicted. Each entry keeps the shape, its counters (queries
 * that reached the server, cache hits, server time as the sum and maximum
 * of upstream round trips, documents returned, last seen) and the last
 * query of that shape as sent (for explain), whether it is new to the
 * advisor, and a small histogram of its round trips (advice/hist.h).
 * The advisor (advice/advisor.h) gets snapshots, never the table.
 */
#ifndef MONGOCACHE_ADVICE_TABLE_H
#define MONGOCACHE_ADVICE_TABLE_H

#include "advice/shape.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct advice_table;

/* Longest query kept for explain (bytes); a longer one is not kept. */
#define ADVICE_TABLE_MAX_QUERY 16384

/* An empty table of at most max_shapes shapes. Free with advice_table_destroy. */
struct advice_table *advice_table_new(size_t max_shapes);
void advice_table_destroy(struct advice_table *table);

/*
 * One query of shape went to the server (a miss or a pass-through): the
 * shape is added (copied) or found, counted, and query (its command body
 * as sent, query_len bytes; statement: which update/delete statement the
 * shape is of) kept as its last query (copied; a query longer than
 * ADVICE_TABLE_MAX_QUERY leaves the one kept before). At max_shapes, the
 * least recently recorded or hit shape is evicted first. The shape's hash
 * is its identity. now_ms: the loop's monotonic clock.
 */
void advice_table_record(struct advice_table *table, const struct advice_shape *shape,
                         const uint8_t *query, uint32_t query_len, uint32_t statement,
                         int64_t now_ms);

/*
 * Whether the shape of this hash is kept (for advice_shape_extract_known:
 * arg is the table). Touches nothing.
 */
bool advice_table_has(void *table, uint64_t hash);

/*
 * As advice_table_record for a shape known by its hash alone (kept, as
 * advice_table_has said): counted and its query kept; nothing when it is
 * not kept (evicted since).
 */
void advice_table_record_known(struct advice_table *table, uint64_t hash, const uint8_t *query,
                               uint32_t query_len, uint32_t statement, int64_t now_ms);

/* The reply to a query of shape hash came: its round trip and the documents it returned. */
void advice_table_reply(struct advice_table *table, uint64_t hash, double server_ms,
                        uint64_t documents);

/* A cache hit of a read whose shape hash is known (stored with the entry). */
void advice_table_hit(struct advice_table *table, uint64_t hash, int64_t now_ms);

/* Number of shapes held, and evicted so far. */
size_t advice_table_count(const struct advice_table *table);
uint64_t advice_table_evicted(const struct advice_table *table);

/* One shape as handed to the advisor (owned by its snapshot). */
struct advice_snapshot_shape {
    struct advice_shape shape;
    uint64_t queries;     /* reached the server */
    uint64_t hits;        /* answered from the cache */
    double server_ms;     /* sum of round trips */
    double server_ms_max;
    uint64_t documents;   /* returned, summed */
    int64_t last_seen_ms;
    uint8_t *query;       /* the last query as sent that was short enough to keep,
                           * or NULL when none was */
    uint32_t query_len;
    uint32_t statement;
    bool new_shape;       /* not in any earlier snapshot */
};

/* What the advisor works from. Free with advice_snapshot_destroy. */
struct advice_snapshot {
    struct advice_snapshot_shape *shapes;
    uint32_t n;
    char **changed_ns;    /* "db.coll" whose indexes changed through the proxy since the
                           * last snapshot ("db.*": a whole database dropped) */
    uint32_t n_changed;
};

/*
 * A copy of the table for the advisor: the max_shapes most used shapes
 * (by queries, then server time), and the namespaces marked with
 * advice_table_indexes_changed since the last snapshot (then forgotten).
 */
struct advice_snapshot *advice_table_snapshot(struct advice_table *table, uint32_t max_shapes);
void advice_snapshot_destroy(struct advice_snapshot *snapshot);

/*
 * A snapshot replaced before the advisor took it: its changed namespaces
 * move to the one replacing it (each once, as many as the table itself
 * keeps), so that no index change is forgotten. from keeps its shapes.
 */
void advice_snapshot_take_changed(struct advice_snapshot *to, struct advice_snapshot *from);

/* What GET /shapes orders the shapes by (most first). */
enum advice_table_order {
    ADVICE_TABLE_BY_COUNT,       /* queries that reached the server */
    ADVICE_TABLE_BY_SERVER_TIME, /* sum of their round trips */
    ADVICE_TABLE_BY_HIT_RATIO,   /* hits / (hits + queries), then traffic */
};

/* One shape's figures, as advice_table_top reads them. */
struct advice_table_row {
    const struct advice_shape *shape; /* borrowed: valid until the table next changes */
    uint64_t queries;
    uint64_t hits;
    double hit_ratio;
    double server_ms;
    double server_ms_max;
    double p50_ms; /* of the round trips (advice/hist.h: a bucket's upper bound) */
    double p99_ms;
    uint64_t documents;
    int64_t last_seen_ms; /* the caller's monotonic clock */
};

/*
 * The max first shapes by order into rows (room for max); returns how many.
 * One sort of the table (at most its max_shapes entries); nothing changes.
 */
uint32_t advice_table_top(const struct advice_table *table, enum advice_table_order order,
                          struct advice_table_row *rows, uint32_t max);

/* createIndexes, dropIndexes or drop passed through for db.coll (coll NULL: dropDatabase). */
void advice_table_indexes_changed(struct advice_table *table, const char *db, const char *coll);

#endif
