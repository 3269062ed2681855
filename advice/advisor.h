/*
 * advice/advisor.h: the index advisor, a worker thread with a libmongoc
 * client of its own on advice_uri (single-threaded, every byte it reads
 * checked by advice/guard.h first: libmongoc 1.23 crashes on a malformed
 * OP_MSG, and a client pool's monitors cannot be guarded): never on the
 * event loop, never on a client's connection. The loop hands it snapshots of the shape table
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
 *
 * libmongoc: the worker calls mongoc_init (once per process; libmongoc
 * makes it idempotent) and makes every libmongoc call; the loop thread
 * makes none. mongoc_cleanup is the process's to call at exit, after every
 * advisor is destroyed, if at all. libmongoc logs through its own default
 * handler (stderr and stdout) unless the process sets one
 * (mongoc_log_set_handler): its messages name hosts, never credentials.
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
    int64_t interval_ms;      /* advice_interval (the caller's timer: not read here) */
    int64_t min_documents;    /* advice_min_documents */
    bool explain;             /* advice_explain */
    uint32_t max_shapes;      /* advice_max_shapes: explains per run, shapes per snapshot */
    int64_t timeout_ms;       /* each command's socket, connect and server selection
                               * timeout (<= 0: 5000) */
};

enum advice_state {
    ADVICE_STATE_STARTING,     /* no run finished yet */
    ADVICE_STATE_OK,           /* the last run finished */
    ADVICE_STATE_UNREACHABLE,  /* the server could not be reached */
    ADVICE_STATE_UNAUTHORIZED, /* the server refused the advisor's commands */
    ADVICE_STATE_ERROR,        /* junk, or another error: see last_error */
};

/*
 * What one run found. Everything owned: advice_report_destroy. The advice
 * is that of the snapshot's shapes, each namespace judged by its last
 * successful read: a namespace that could not be read this run (or a run
 * skipped while backing off) keeps the advice of the last run that read it.
 */
struct advice_report {
    struct advice_item *items;       /* ranked (advice_recommend_rank) */
    uint32_t n_items;
    struct advice_redundant *redundant;
    uint32_t n_redundant;
    enum advice_state state;
    char *last_error;                /* the last failure's, NULL once a run is clean; never
                                      * holds the URI or a credential */
    uint64_t errors;                 /* commands that failed, since start */
    uint64_t runs;                   /* runs made (not those skipped while backing off) */
    int64_t last_run_ms;             /* wall clock (ms since the epoch) of the last run's
                                      * end; 0 before the first */
    uint64_t explains;               /* explain commands sent, since start */
    uint64_t list_indexes;           /* listIndexes commands sent, since start */
    int64_t retry_in_ms;             /* while backing off: how long until the next try */
};

/*
 * Called on the loop thread with each report, which it takes. It must not
 * destroy the advisor.
 */
typedef void (*advice_report_cb)(void *arg, struct advice_report *report);

/*
 * Starts the worker thread (its client on cfg->uri, copied) and a libevent
 * event on base for its reports. Waits for the thread to parse the URI (no
 * I/O: the client connects on the first run). Returns NULL with error set
 * (never holding a credential) when the URI does not parse or the thread
 * cannot start. Free with advice_advisor_destroy.
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

/* How long advice_advisor_destroy waits for the worker to stop. */
#define ADVICE_ADVISOR_STOP_WAIT_MS 3000

/*
 * Stops and joins the worker (a run in progress is abandoned at its next
 * command: about two timeout_ms at worst, the command in flight and
 * libmongoc's endSessions). Reports not yet delivered are freed. Waits at
 * most ADVICE_ADVISOR_STOP_WAIT_MS: a worker still inside libmongoc then
 * is left behind (logged advisor_abandoned), owning the advisor, and
 * false is returned: libmongoc may still be in use (no mongoc_cleanup).
 */
bool advice_advisor_destroy(struct advice_advisor *advisor);

void advice_report_destroy(struct advice_report *report);
const char *advice_state_name(enum advice_state state);

#endif
