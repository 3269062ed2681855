/*
 * advice/probe.h: the advisor's commands to its server and the checks on
 * their answers, every one untrusted: listIndexes (its cursor read here,
 * bounded), the estimated document count (count without a query), and
 * explain at queryPlanner verbosity. Blocking libmongoc calls, each bounded
 * by the client's timeouts: the advisor's worker thread only.
 */
#ifndef MONGOCACHE_ADVICE_PROBE_H
#define MONGOCACHE_ADVICE_PROBE_H

#include "advice/guard.h"
#include "advice/index.h"
#include "advice/plan.h"
#include "advice/shape.h"
#include "conf/error.h"

#include <bson/bson.h>
#include <mongoc/mongoc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* mongod allows 64 indexes per collection: a longer listIndexes answer is junk. */
#define ADVICE_PROBE_MAX_INDEXES 64
/* bson_error_t domain of an answer refused as junk (by the guard or by the checks here). */
#define ADVICE_PROBE_JUNK_DOMAIN CONF_ERROR_DOMAIN_JUNK /* conf/error.h */

/* What the probes use (all borrowed). */
struct advice_probe {
    mongoc_client_t *client;          /* with advice_guard_initiator on guard */
    const struct advice_guard *guard; /* tells a refused message from a lost connection */
    const atomic_bool *stop;          /* checked between the commands of one probe */
};

enum advice_probe_result {
    ADVICE_PROBE_OK,
    ADVICE_PROBE_NONE,    /* not a collection: none (26), an impossible name (73), a view
                           * (166); nothing to read there, and not a failure */
    ADVICE_PROBE_FAILED,  /* error set: the server's refusal, the connection's loss, or junk
                           * (ADVICE_PROBE_JUNK_DOMAIN) */
    ADVICE_PROBE_STOPPED, /* stop was set between two commands */
};

/*
 * listIndexes on db.coll into out (initialised here; the caller's to clean
 * up with advice_indexes_cleanup whatever the result): the first batch,
 * then a getMore while the cursor lives and each batch brings entries (an
 * empty batch from a live cursor is junk), at most ADVICE_PROBE_MAX_INDEXES
 * entries, each read with advice_index_from_spec (one it refuses is junk).
 */
enum advice_probe_result advice_probe_indexes(const struct advice_probe *probe, const char *db,
                                              const char *coll, struct advice_indexes *out,
                                              bson_error_t *error);

/* The estimated document count of db.coll: {count: coll}, n a number >= 0. */
enum advice_probe_result advice_probe_count(const struct advice_probe *probe, const char *db,
                                            const char *coll, int64_t *documents,
                                            bson_error_t *error);

/*
 * explain of a shape (advice_plan_shape_command from its last query, which
 * may be NULL for a $lookup shape), its verdict by advice_plan_read. *sent
 * says whether a command went out. The server refusing to plan the query
 * is not a failure: OK with ADVICE_PLAN_NOT_MONGOD, as is a query that
 * gives no command.
 */
enum advice_probe_result advice_probe_explain(const struct advice_probe *probe,
                                              const struct advice_shape *shape,
                                              const uint8_t *query, uint32_t query_len,
                                              uint32_t statement,
                                              enum advice_plan_verdict *verdict, bool *sent,
                                              bson_error_t *error);

/* The server could not be reached: server selection failed, or the connection. */
bool advice_probe_unreachable(const bson_error_t *error);
/* The server refused the advisor: codes 13 and 18, libmongoc's authentication failures. */
bool advice_probe_unauthorized(const bson_error_t *error);

#endif
