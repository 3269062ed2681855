/*
 * advice/recommend.h: from shapes that scan to the indexes that fix them.
 * The index for a shape follows the equality, sort, range rule: equality
 * paths first (in the shape's order), then the sort keys with their
 * directions, then at most one range path ($in counts as equality unless
 * the shape also sorts, when it counts as a range: an $in before a sort
 * key would make the sort blocking). Unindexable paths are left out. A
 * shape with a collation or a hint, or whose sort no index can serve, gets
 * no sort part.
 *
 * One namespace at a time (advice_recommend_namespace): shapes whose
 * recommended index is a prefix of another's are served by the longer one
 * (merged); an index already present, or a prefix of one present, is not
 * advised. Pure functions: no I/O.
 */
#ifndef MONGOCACHE_ADVICE_RECOMMEND_H
#define MONGOCACHE_ADVICE_RECOMMEND_H

#include "advice/index.h"
#include "advice/plan.h"
#include "advice/shape.h"

#include <stdbool.h>
#include <stdint.h>

enum advice_reason {
    ADVICE_REASON_COLLECTION_SCAN, /* explain: COLLSCAN, or an IXSCAN over the whole range */
    ADVICE_REASON_IN_MEMORY_SORT,  /* explain: a blocking SORT */
    ADVICE_REASON_NO_USABLE_INDEX, /* no explain plan: no index leads with a shape's path */
};

enum advice_evidence {
    ADVICE_EVIDENCE_EXPLAIN, /* the server's winning plan */
    ADVICE_EVIDENCE_INDEXES, /* the namespace's indexes alone (no mongod plan) */
};

/*
 * The index that serves shape (ESR, see above), keys only (name NULL), into
 * out. False (out empty) when no index can help: no indexable path and no
 * usable sort, or the only path is _id.
 */
bool advice_recommend_index(const struct advice_shape *shape, struct advice_index *out);

/*
 * Whether an existing ordinary index would be used for shape (the check
 * when there is no mongod plan): its first key is an equality, $in or range
 * path of the shape, or the shape's first sort key. A special, partial or
 * hidden index never counts, nor one with a collation for a shape without.
 */
bool advice_index_serves(const struct advice_index *index, const struct advice_shape *shape);

/* One query shape of a namespace, as the advisor knows it. */
struct advice_shape_input {
    const struct advice_shape *shape;
    enum advice_plan_verdict verdict; /* NOT_MONGOD when explain was off or not a plan */
    uint64_t queries;                 /* how many times it reached the server, or was hit */
    double server_ms;                 /* server time spent on it (sum of round trips) */
};

/* One advice: an index to create. Everything owned (advice_item_cleanup). */
struct advice_item {
    char *db;
    char *coll;
    struct advice_index index; /* keys and default name */
    enum advice_reason reason;
    enum advice_evidence evidence;
    uint64_t queries;          /* of the shapes it serves */
    double server_ms;          /* of the shapes it serves: what it would save */
    int64_t documents;         /* the collection's estimated count */
    char **shapes;             /* advice_shape_display of each shape served */
    uint32_t n_shapes;
    char *mongosh;             /* db.getSiblingDB("app").books.createIndex({author: 1},
                                *     {name: "author_1"}) */
    char *mongoose;            /* bookSchema.index({author: 1}) */
};

/* Two indexes of a namespace, the first a prefix of the second (the first is redundant). */
struct advice_redundant {
    char *db;
    char *coll;
    char *index;    /* the redundant one's name */
    char *covered_by;
};

/*
 * The advice for one namespace: its shapes (those that scan, by the
 * verdict or, without a plan, by the indexes), its indexes (from
 * listIndexes) and its estimated document count. Appends items (none when
 * documents < min_documents) and redundant index pairs to the arrays
 * (grown with bson_realloc; *n counts). Items are not yet ranked.
 */
void advice_recommend_namespace(const char *db, const char *coll,
                                const struct advice_shape_input *shapes, uint32_t n_shapes,
                                const struct advice_indexes *indexes, int64_t documents,
                                int64_t min_documents, struct advice_item **items,
                                uint32_t *n_items, struct advice_redundant **redundant,
                                uint32_t *n_redundant);

/* Orders items by server time saved, most first (then queries, then name). */
void advice_recommend_rank(struct advice_item *items, uint32_t n);

void advice_item_cleanup(struct advice_item *item);
void advice_redundant_cleanup(struct advice_redundant *redundant);

/* The ready-to-paste texts (strings freed with bson_free). */
char *advice_mongosh_text(const char *db, const char *coll, const struct advice_index *index);
char *advice_mongoose_text(const char *coll, const struct advice_index *index);

const char *advice_reason_name(enum advice_reason reason);
const char *advice_evidence_name(enum advice_evidence evidence);

#endif
