/*
 * advice/advisor.h: the index advisor, a worker thread with a libmongoc
 * client pool of its own on advice_uri: never on the event loop, never on a
 * client's connection. The loop hands it snapshots of the shape table
 * (advice/table.h) every advice_interval; for each it reads, per namespace
 * involved, listIndexes (cached; re-read every run, and at once for a
 * namespace whose indexes changed through the proxy) and the estimated
 * document count, runs explain at queryPlanner verbosity for shapes new to
 * it (at most advice_max_shapes per run; none with advice_explain off),
 * and builds the advice (advice/recommend.h). The result comes back to the
 * loop thread as a report, through a pipe read by a libevent event: no
 * lock is taken on the loop's side.
 *
 * It never creates or drops an index. Every command is bounded (one
 * listIndexes and one count per namespace per run, one explain per new
 * shape). Its server down, refusing it, slow or answering junk shows in
 * the report's state and errors and is retried with backoff; answers are
 * checked like any untrusted input.
 */
#ifndef MONGOCACHE_ADVICE_ADVISOR_H
#define MONGOCACHE_ADVICE_ADVISOR_H

#include "advice/recommend.h"
#include "advice/table.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct advice_advisor;

struct advice_config {
    const char *uri;          /* advice_uri (may hold credentials: never logged) */
    int64_t interval_ms;      /* advice_interval */
    int64_t min_documents;    /* advice_min_documents */
    bool explain;             /* advice_explain */
    uint32_t max_shapes;      /* advice_max_shapes: explains per run, shapes per snapshot */
    int64_t timeout_ms;       /* each command's socket timeout */
};

enum advice_state {
    ADVICE_STATE_STARTING,     /* no run finished yet */
    ADVICE_STATE_OK,           /* the last run finished */
    ADVICE_STATE_UNREACHABLE,  /* the server could not be reached */
    ADVICE_STATE_UNAUTHORIZED, /* the server refused the advisor's commands */
    ADVICE_STATE_ERROR,        /* junk, or another error: see last_error */
};

/* What one run found. Everything owned: advice_report_destroy. */
struct advice_report {
    struct advice_item *items;       /* ranked (advice_recommend_rank) */
    uint32_t n_items;
    struct advice_redundant *redundant;
    uint32_t n_redundant;
    enum advice_state state;
    char *last_error;                /* or NULL; never holds a credential */
    uint64_t errors;                 /* commands that failed, since start */
    uint64_t runs;
    int64_t last_run_ms;             /* wall clock (ms since the epoch) of this run's end */
    uint64_t explains;               /* explain commands sent, since start */
    uint64_t list_indexes;           /* listIndexes commands sent, since start */
    int64_t retry_in_ms;             /* after a failure: the backoff before the next try */
};

/* Called on the loop thread with each report, which it takes. */
typedef void (*advice_report_cb)(void *arg, struct advice_report *report);

/*
 * Starts the worker thread (its pool on cfg->uri, copied). Returns NULL
 * with error set when the URI does not parse or the thread cannot start.
 * Free with advice_advisor_destroy.
 */
struct advice_advisor *advice_advisor_new(struct event_base *base, const struct advice_config *cfg,
                                          advice_report_cb cb, void *arg, bson_error_t *error);

/*
 * Hands the worker a snapshot (taken). When it is still busy with the last
 * one, the newer replaces any that waits: at most one run is queued.
 */
void advice_advisor_submit(struct advice_advisor *advisor, struct advice_snapshot *snapshot);

/* New settings (SIGHUP): min_documents, explain and max_shapes apply from the next run. */
void advice_advisor_reconfigure(struct advice_advisor *advisor, const struct advice_config *cfg);

/* Stops and joins the worker (a run in progress is abandoned at its next command). */
void advice_advisor_destroy(struct advice_advisor *advisor);

void advice_report_destroy(struct advice_report *report);
const char *advice_state_name(enum advice_state state);

#endif
