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

#include <bson/bson.h>
#include <stdbool.h>

enum advice_plan_verdict {
    ADVICE_PLAN_NOT_MONGOD,     /* no mongod plan in it (FerretDB's SQL plan, an error):
                                 * decide from the indexes alone */
    ADVICE_PLAN_INDEXED,        /* served by an index */
    ADVICE_PLAN_COLLSCAN,       /* a COLLSCAN stage anywhere in the winning plan */
    ADVICE_PLAN_IN_MEMORY_SORT, /* a SORT stage (blocking, in memory) over an index scan */
    ADVICE_PLAN_FULL_IXSCAN,    /* an IXSCAN whose every bound is [MinKey, MaxKey] */
};

/* The verdict on an explain reply (checked BSON; any shape). */
enum advice_plan_verdict advice_plan_read(const bson_t *explain_reply);

/*
 * The explain command for a query as the proxy saw it (checked body of a
 * find, aggregate, count, distinct, update, delete or findAndModify):
 * {explain: <the command without $db, lsid, $clusterTime, txnNumber,
 * $readPreference, writeConcern, readConcern>, verbosity: "queryPlanner"},
 * into out (initialised here). For update and delete, statement is the
 * index of the statement to explain (its own q). Returns false (out empty)
 * for another command or a statement that is not there.
 */
bool advice_plan_command(const bson_t *query_body, uint32_t statement, bson_t *out);

const char *advice_plan_verdict_name(enum advice_plan_verdict verdict);

#endif
