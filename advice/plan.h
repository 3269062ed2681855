/*
 * advice/plan.h: reading the server's query plan. explain at queryPlanner
 * verbosity plans a query without running it; its winningPlan (mongod's
 * documented format: a tree of stages, each {stage, inputStage |
 * inputStages, ...}; also under queryPlanner.winningPlan.queryPlan for the
 * slot-based engine, and under stages[0].$cursor for aggregate) says
 * whether the query scans the whole collection. The reply is untrusted:
 * depth and size bounded, anything unexpected is "not a mongod plan".
 */
#ifndef MONGOCACHE_ADVICE_PLAN_H
#define MONGOCACHE_ADVICE_PLAN_H

#include "advice/shape.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

enum advice_plan_verdict {
    ADVICE_PLAN_NOT_MONGOD,     /* no mongod plan in it (FerretDB's SQL plan, an error):
                                 * decide from the indexes alone */
    ADVICE_PLAN_INDEXED,        /* served by an index */
    ADVICE_PLAN_COLLSCAN,       /* a COLLSCAN stage anywhere in the winning plan */
    ADVICE_PLAN_IN_MEMORY_SORT, /* a SORT stage (blocking, in memory) over an index scan */
    ADVICE_PLAN_FULL_IXSCAN,    /* an IXSCAN whose every bound is [MinKey, MaxKey] */
};

/*
 * The verdict on an explain reply (checked BSON; any shape). Where several
 * plans are found (the shards of a sharded explain) the worst wins:
 * COLLSCAN, then FULL_IXSCAN, then IN_MEMORY_SORT, then INDEXED. A reply
 * with ok: 0, without a winning plan, with a stage that is not a document
 * holding a string "stage", nested deeper than 64 stages or holding more
 * than 1024 is NOT_MONGOD. An EOF plan (no such collection) is INDEXED:
 * nothing scans.
 */
enum advice_plan_verdict advice_plan_read(const bson_t *explain_reply);

/*
 * The explain command for a query as the proxy saw it (checked body of a
 * find, aggregate, count, distinct, update, delete or findAndModify):
 * {explain: <the command without $db, lsid, $clusterTime, txnNumber,
 * autocommit, startTransaction, $readPreference, writeConcern, readConcern,
 * apiVersion, apiStrict, apiDeprecationErrors, and an aggregate's own
 * explain flag>, verbosity: "queryPlanner"}, into out (initialised here).
 * For update and delete, statement is the index of the statement to
 * explain (its own q), the only one kept. Returns false (out initialised
 * and empty) for another command or a statement that is not there.
 */
bool advice_plan_command(const bson_t *query_body, uint32_t statement, bson_t *out)
    __attribute__((warn_unused_result));

/*
 * The explain command for a shape from what advice_shape_extract gave with
 * it (advice_shapes' query and statement, as the table keeps them), into out
 * (initialised here):
 *   - find, aggregate, count, distinct, findAndModify: query is the body
 *     (advice_plan_command); its command must be the shape's source;
 *   - update, delete: query is the statement document ({q, ...}), explained
 *     as {update|delete: coll, updates|deletes: [query]}; a whole body
 *     ({update: ..., updates: [...]}) is taken too, with statement;
 *   - lookup: a find on the foreign collection, {foreignField: null}: the
 *     planner's choice for an equality does not depend on the value (query
 *     is not read).
 * Returns false (out initialised and empty) when query does not fit.
 */
bool advice_plan_shape_command(const struct advice_shape *shape, const bson_t *query,
                               uint32_t statement, bson_t *out) __attribute__((warn_unused_result));

const char *advice_plan_verdict_name(enum advice_plan_verdict verdict);

#endif
