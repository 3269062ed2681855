/*
 * advice/advisor.c: the index advisor's worker thread (see advisor.h). It
 * owns the thread, its libmongoc client (with the guard on its
 * connections), the mailbox that brings snapshots in, the pipe that takes
 * reports out and the libevent event that reads it on the loop, the
 * advisor's memory between runs (per namespace: the indexes, document
 * count and an epoch; per shape hash: the explain verdict, tied to its
 * namespace's epoch), which commands a run sends, the state, counters and
 * backoff. It does not send the commands or check their answers
 * (advice/probe.c), check messages (advice/guard.c), scrub secrets
 * (advice/secret.c), derive shapes, read plans or choose indexes
 * (advice/shape.c, plan.c, recommend.c: pure functions called from the
 * worker), does not keep the shape table (advice/table.c, loop thread) and
 * does not decide when to run: the loop submits a snapshot every
 * advice_interval.
 *
 * Two threads, and what each may touch:
 *
 *   loop thread                      mailbox (mu)          worker thread
 *   advice_advisor_submit  --swap-->  [snapshot]  --take-->  run()
 *   advice_advisor_reconfigure -->    [settings]  --copy-->  (at the next take)
 *   on_reports <-- read(rfd) <------- pipe: report pointers <-- write(wfd)
 *
 * - The loop never calls libmongoc and never waits: it holds mu only to
 *   swap a pointer or copy three settings, and reads the pipe without
 *   blocking. (advice_advisor_new and _destroy wait for the thread to start
 *   and to end: once each.)
 * - The worker makes every libmongoc call (mongoc_init, parsing the URI,
 *   the client, every command), and touches nothing of the loop's: not the
 *   event base, not the callback. Its own state (struct worker) is never
 *   read by the loop.
 * - A snapshot is owned by the mailbox from submit until the worker takes
 *   it (or until a newer one replaces it: freed then by submit), then by
 *   the run, which frees it. A report is built by the worker and owned by
 *   the pipe until on_reports hands it to the callback, which takes it;
 *   reports still in the pipe at destroy are freed there. When the pipe is
 *   full (the loop not reading), the worker frees the report instead: the
 *   next one replaces it anyway.
 *
 * Why one single-threaded mongoc_client_t and not a client pool: libmongoc
 * 1.23 parses a server's OP_MSG without bounds checks (a section kind it
 * does not know, a third section: a crash, in whichever thread reads it). A
 * single-threaded client reads every byte from the server (commands and
 * monitoring alike) through the stream initiator we give it, so the guard
 * checks each message with wire/ before libmongoc sees it; a pool's
 * monitoring threads cannot be given an initiator. The worker is one thread
 * anyway, and the single-threaded client selects servers by one bounded scan
 * (serverSelectionTryOnce), with no background threads to stop.
 *
 * A run: the namespaces of the snapshot's shapes, each read with one
 * listIndexes (its cursor read by hand: at most 64 entries, each checked, a
 * getMore only while each batch brings some) and one
 * count without a query (the estimated count); then explain, at
 * queryPlanner verbosity, for shapes without a verdict, most used first, at
 * most max_shapes, only where an index could help and the collection is big
 * enough to matter; then advice_recommend_namespace per namespace and the
 * ranking. A namespace that cannot be read this run is advised from what the
 * last successful read found, so an outage does not empty /advice. Stop is
 * checked before every command; every command is bounded by timeout_ms
 * (socket, connect and server selection timeouts set on the advisor's own
 * parsed URI).
 *
 * Failures: server selection or a network error makes the run unreachable
 * and ends its commands; error codes 13 and 18, and libmongoc's
 * authentication failures, are unauthorized (that namespace is skipped, the
 * others are still read); anything else, and an answer that is not what the
 * command returns, is error. Every failed command is counted; after a run
 * with a failure the next runs are skipped (the report still built, from
 * memory, with retry_in_ms) for a backoff that doubles from 1 s to 60 s and
 * resets after a clean run. A namespace that does not exist (26), cannot
 * exist (73: a client's invalid name) or is a view (166) is read as empty,
 * not as a failure; explain's own errors (a query the server refuses) are
 * "no mongod plan".
 */
#include "config.h"

#include "advice/advisor.h"

#include "advice/guard.h"
#include "advice/index.h"
#include "advice/plan.h"
#include "advice/probe.h"
#include "advice/recommend.h"
#include "advice/secret.h"
#include "advice/shape.h"
#include "advice/table.h"
#include "conf/clock.h"
#include "conf/error.h"
#include "conf/log.h"
#include "conf/thread.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000
#define DEFAULT_TIMEOUT_MS 5000
/* What the worker remembers of namespaces and verdicts not seen for this many runs is dropped. */
#define KEEP_RUNS 16
#define MAX_NAMESPACES 4096
#define MAX_VERDICTS 65536
/* Longest last_error (bytes). */
#define MAX_ERROR_LEN 300

/* The settings a reconfigure may change; copied by the worker when it takes a snapshot. */
struct settings {
    int64_t min_documents;
    bool explain;
    uint32_t max_shapes;
};

/* What the worker knows of one namespace. */
struct ns {
    char *db; /* owned */
    char *coll;
    uint64_t key;                  /* XXH3 of db NUL coll */
    struct advice_indexes indexes; /* as last read */
    int64_t documents;
    uint64_t fingerprint; /* of indexes: a change means verdicts are stale */
    uint64_t epoch;       /* verdicts of other epochs are forgotten */
    bool known;           /* indexes and documents read at least once */
    bool fresh;           /* read in this run */
    uint64_t last_run;    /* the last run whose snapshot named it */
};

/* The explain verdict on one shape, valid while its namespace keeps its epoch. */
struct verdict {
    uint64_t hash;
    uint64_t epoch;
    uint64_t last_run;
    enum advice_plan_verdict verdict;
};

/* The worker's own state: only the worker thread reads or writes it. */
struct worker {
    mongoc_uri_t *uri;
    mongoc_client_t *client;
    struct advice_guard guard;     /* its connections' junk count */
    struct advice_secrets secrets; /* scrubbed from every error text */
    struct ns *ns; /* owned array */
    uint32_t n_ns;
    uint32_t cap_ns;
    struct verdict *verdicts; /* sorted by hash */
    uint32_t n_verdicts;
    uint32_t cap_verdicts;
    uint64_t run_no;
    uint64_t epochs; /* the last epoch handed out */
    enum advice_state state;
    char *last_error;
    uint64_t errors;
    uint64_t runs;
    uint64_t explains;
    uint64_t list_indexes;
    int64_t last_run_ms;
    int64_t backoff_ms;
    int64_t retry_at_ms; /* monotonic; 0: not backing off */
};

struct advice_advisor {
    /* Loop thread only. */
    struct event_base *base;
    struct event *ev;
    advice_report_cb cb;
    void *cb_arg;
    int rfd;
    uint8_t carry[sizeof(void *)]; /* a report pointer read in part */
    size_t carry_len;

    /* Set before the thread starts, then read only. */
    int wfd;
    char *uri_text; /* the configured URI: a secret */
    int64_t timeout_ms;
    pthread_t thread;

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct advice_snapshot *mailbox;
    struct settings settings;
    bool started; /* the worker has parsed the URI (start_ok says how it went) */
    bool start_ok;
    bson_error_t start_error;
    struct conf_thread_end end; /* destroy gave up waiting: the worker frees the advisor */
    atomic_bool stop;

    struct worker w;
};

/* One run's working state. */
struct run {
    struct settings set;
    const struct advice_snapshot *snap;
    uint32_t *shape_ns;  /* per shape: its namespace's index in w->ns */
    bool *recommendable; /* per shape: advice_recommend_index found an index */
    uint32_t *used_ns;   /* the namespaces named, in first-seen order */
    uint32_t n_used;
    bool failed;
    enum advice_state state; /* of the last failure */
    bool unreachable;        /* no further command this run */
    bool abandoned;          /* stop asked: no report */
};

const char *
advice_state_name(enum advice_state state)
{
    switch (state) {
    case ADVICE_STATE_STARTING:
        return "starting";
    case ADVICE_STATE_OK:
        return "ok";
    case ADVICE_STATE_UNREACHABLE:
        return "unreachable";
    case ADVICE_STATE_UNAUTHORIZED:
        return "unauthorized";
    case ADVICE_STATE_ERROR:
        return "error";
    }
    return "error";
}

void
advice_report_destroy(struct advice_report *report)
{
    if (report == NULL)
        return;
    for (uint32_t i = 0; i < report->n_items; i++)
        advice_item_cleanup(&report->items[i]);
    for (uint32_t i = 0; i < report->n_redundant; i++)
        advice_redundant_cleanup(&report->redundant[i]);
    bson_free(report->items);
    bson_free(report->redundant);
    bson_free(report->last_error);
    bson_free(report);
}

/* ---- failures ------------------------------------------------------------ */

/* Which state an error puts the advisor in. */
static enum advice_state
classify(const bson_error_t *e)
{
    if (advice_probe_unreachable(e))
        return ADVICE_STATE_UNREACHABLE;
    if (advice_probe_unauthorized(e))
        return ADVICE_STATE_UNAUTHORIZED;
    return ADVICE_STATE_ERROR;
}

/* A command failed: counted, remembered (scrubbed) as last_error, the run marked. */
static void
fail(struct worker *w, struct run *r, const char *what, const struct ns *ns,
     const bson_error_t *e)
{
    enum advice_state state = classify(e);
    char *text = bson_strdup_printf("%s %s.%s: %s", what, ns->db, ns->coll, e->message);

    bson_free(w->last_error);
    w->last_error = advice_secrets_scrub(&w->secrets, text, MAX_ERROR_LEN);
    bson_free(text);
    w->errors++;
    r->failed = true;
    r->state = state;
    if (state == ADVICE_STATE_UNREACHABLE)
        r->unreachable = true;
}

/* Whether stop was asked; then the run is abandoned. */
static bool
stopping(struct advice_advisor *a, struct run *r)
{
    if (atomic_load(&a->stop))
        r->abandoned = true;
    return r->abandoned;
}

/* ---- namespaces and verdicts ------------------------------------------- */

static uint64_t
ns_key(const char *db, const char *coll)
{
    XXH3_state_t *st = XXH3_createState();
    uint64_t h;

    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, db, strlen(db) + 1);
    XXH3_64bits_update(st, coll, strlen(coll));
    h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

static void
ns_cleanup(struct ns *ns)
{
    bson_free(ns->db);
    bson_free(ns->coll);
    advice_indexes_cleanup(&ns->indexes);
    memset(ns, 0, sizeof *ns);
}

/* The index of db.coll in w->ns, added (with a new epoch) when not there. */
static uint32_t
ns_get(struct worker *w, const char *db, const char *coll)
{
    uint64_t key = ns_key(db, coll);
    struct ns *ns;

    for (uint32_t i = 0; i < w->n_ns; i++)
        if (w->ns[i].key == key && strcmp(w->ns[i].db, db) == 0 &&
            strcmp(w->ns[i].coll, coll) == 0)
            return i;
    if (w->n_ns == w->cap_ns) {
        w->cap_ns = w->cap_ns ? w->cap_ns * 2 : 16;
        w->ns = bson_realloc(w->ns, w->cap_ns * sizeof *w->ns);
    }
    ns = &w->ns[w->n_ns];
    memset(ns, 0, sizeof *ns);
    ns->db = bson_strdup(db);
    ns->coll = bson_strdup(coll);
    ns->key = key;
    ns->epoch = ++w->epochs;
    return w->n_ns++;
}

/* Forgets the verdicts of namespaces named "db.coll", or every one of db for "db.*". */
static void
ns_changed(struct worker *w, const char *name)
{
    const char *dot = strchr(name, '.');
    size_t dblen;

    if (dot == NULL)
        return;
    dblen = (size_t)(dot - name);
    for (uint32_t i = 0; i < w->n_ns; i++) {
        struct ns *ns = &w->ns[i];

        if (strlen(ns->db) != dblen || memcmp(ns->db, name, dblen) != 0)
            continue;
        if (strcmp(dot + 1, "*") == 0 || strcmp(dot + 1, ns->coll) == 0)
            ns->epoch = ++w->epochs;
    }
}

static struct verdict *
verdict_find(struct worker *w, uint64_t hash)
{
    uint32_t lo = 0, hi = w->n_verdicts;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (w->verdicts[mid].hash < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->n_verdicts && w->verdicts[lo].hash == hash ? &w->verdicts[lo] : NULL;
}

static void
verdict_set(struct worker *w, uint64_t hash, uint64_t epoch, enum advice_plan_verdict verdict)
{
    struct verdict *v = verdict_find(w, hash);
    uint32_t at = 0;

    if (v == NULL) {
        if (w->n_verdicts == w->cap_verdicts) {
            w->cap_verdicts = w->cap_verdicts ? w->cap_verdicts * 2 : 64;
            w->verdicts = bson_realloc(w->verdicts, w->cap_verdicts * sizeof *w->verdicts);
        }
        while (at < w->n_verdicts && w->verdicts[at].hash < hash)
            at++;
        memmove(&w->verdicts[at + 1], &w->verdicts[at],
                (w->n_verdicts - at) * sizeof *w->verdicts);
        w->n_verdicts++;
        v = &w->verdicts[at];
        v->hash = hash;
    }
    v->epoch = epoch;
    v->verdict = verdict;
    v->last_run = w->run_no;
}

/*
 * Drops what was not seen for KEEP_RUNS runs; beyond the bounds, whatever
 * this run did not name. Namespace indexes held by a run are rebuilt per
 * run, so the w->ns order may change here, after the report is built.
 */
static void
prune(struct worker *w)
{
    uint32_t keep = 0;
    uint64_t horizon = w->run_no > KEEP_RUNS ? w->run_no - KEEP_RUNS : 0;
    uint64_t floor_ns = w->n_ns > MAX_NAMESPACES ? w->run_no : horizon;
    uint64_t floor_v = w->n_verdicts > MAX_VERDICTS ? w->run_no : horizon;

    for (uint32_t i = 0; i < w->n_ns; i++) {
        if (w->ns[i].last_run < floor_ns)
            ns_cleanup(&w->ns[i]);
        else
            w->ns[keep++] = w->ns[i];
    }
    w->n_ns = keep;
    keep = 0;
    for (uint32_t i = 0; i < w->n_verdicts; i++)
        if (w->verdicts[i].last_run >= floor_v)
            w->verdicts[keep++] = w->verdicts[i];
    w->n_verdicts = keep;
}

/* XXH3 of the index set as read: names, keys, directions, flags, in order. */
static uint64_t
fingerprint(const struct advice_indexes *ix)
{
    XXH3_state_t *st = XXH3_createState();
    uint64_t h;

    XXH3_64bits_reset(st);
    for (uint32_t i = 0; i < ix->n; i++) {
        const struct advice_index *x = &ix->index[i];
        uint8_t flags[4] = {x->special, x->partial, x->sparse, x->unique};

        if (x->name != NULL)
            XXH3_64bits_update(st, x->name, strlen(x->name) + 1);
        XXH3_64bits_update(st, flags, sizeof flags);
        for (uint32_t k = 0; k < x->n_keys; k++) {
            int32_t dir = x->keys[k].dir;

            XXH3_64bits_update(st, x->keys[k].path, strlen(x->keys[k].path) + 1);
            XXH3_64bits_update(st, &dir, sizeof dir);
        }
        XXH3_64bits_update(st, "|", 1);
    }
    h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* ---- the commands -------------------------------------------------------- */

static struct advice_probe
probe_of(struct advice_advisor *a)
{
    struct advice_probe p = {a->w.client, &a->w.guard, &a->stop};

    return p;
}

/*
 * Reads ns's indexes and count (not for what is not a collection: a view's
 * count would run its pipeline); a changed index set forgets ns's verdicts.
 */
static void
read_namespace(struct advice_advisor *a, struct run *r, struct ns *ns)
{
    struct worker *w = &a->w;
    struct advice_probe p = probe_of(a);
    struct advice_indexes got = {0};
    int64_t documents = 0;
    bson_error_t error;
    enum advice_probe_result res;
    uint64_t fp;

    w->list_indexes++;
    res = advice_probe_indexes(&p, ns->db, ns->coll, &got, &error);
    if (res == ADVICE_PROBE_OK && !r->unreachable && !stopping(a, r)) {
        res = advice_probe_count(&p, ns->db, ns->coll, &documents, &error);
        if (res == ADVICE_PROBE_FAILED)
            fail(w, r, "count", ns, &error);
    } else if (res == ADVICE_PROBE_FAILED) {
        fail(w, r, "listIndexes", ns, &error);
    }
    if (res == ADVICE_PROBE_STOPPED)
        r->abandoned = true;
    if (res != ADVICE_PROBE_OK && res != ADVICE_PROBE_NONE) {
        advice_indexes_cleanup(&got);
        return;
    }
    if (res == ADVICE_PROBE_NONE) {
        advice_indexes_cleanup(&got); /* nothing to advise: no indexes, no documents */
        documents = 0;
    }
    fp = fingerprint(&got);
    if (ns->known && fp != ns->fingerprint)
        ns->epoch = ++w->epochs;
    advice_indexes_cleanup(&ns->indexes);
    ns->indexes = got;
    ns->documents = documents;
    ns->fingerprint = fp;
    ns->known = true;
    ns->fresh = true;
}

/*
 * Whether an explain can be built for s: from its last query (the body, or
 * an update or delete statement), or for a $lookup from the shape alone.
 */
static bool
explainable(const struct advice_snapshot_shape *s)
{
    return s->query != NULL || s->shape.source == ADVICE_SRC_LOOKUP;
}

/* explain of shape s: its verdict, or false when the run failed. */
static bool
explain(struct advice_advisor *a, struct run *r, const struct advice_snapshot_shape *s,
        const struct ns *ns, enum advice_plan_verdict *verdict)
{
    struct advice_probe p = probe_of(a);
    bson_error_t error;
    bool sent = false;
    enum advice_probe_result res = advice_probe_explain(&p, &s->shape, s->query, s->query_len,
                                                        s->statement, verdict, &sent, &error);

    if (sent)
        a->w.explains++;
    if (res == ADVICE_PROBE_OK)
        return true;
    fail(&a->w, r, "explain", ns, &error);
    return false;
}

/* ---- a run --------------------------------------------------------------- */

/* The verdict used for shape i: false while it waits for an explain. */
static bool
shape_verdict(struct worker *w, const struct run *r, uint32_t i, enum advice_plan_verdict *out)
{
    const struct advice_snapshot_shape *s = &r->snap->shapes[i];
    const struct ns *ns = &w->ns[r->shape_ns[i]];
    const struct verdict *v;

    *out = ADVICE_PLAN_NOT_MONGOD;
    if (!r->set.explain)
        return true;
    v = verdict_find(w, s->shape.hash);
    if (v != NULL && v->epoch == ns->epoch) {
        *out = v->verdict;
        return true;
    }
    /* shapes that would be explained wait for it; the others are judged by the indexes */
    return !(explainable(s) && r->recommendable[i] && ns->documents >= r->set.min_documents);
}

static void
explain_new_shapes(struct advice_advisor *a, struct run *r)
{
    struct worker *w = &a->w;
    uint32_t sent = 0;

    for (uint32_t i = 0; i < r->snap->n; i++) {
        const struct advice_snapshot_shape *s = &r->snap->shapes[i];
        struct ns *ns;
        struct verdict *v;
        enum advice_plan_verdict verdict;

        if (r->shape_ns[i] == UINT32_MAX)
            continue;
        ns = &w->ns[r->shape_ns[i]];
        v = verdict_find(w, s->shape.hash);
        if (v != NULL && v->epoch == ns->epoch) {
            v->last_run = w->run_no;
            continue;
        }
        if (!r->set.explain || r->unreachable || sent >= r->set.max_shapes)
            continue;
        if (!ns->fresh || !explainable(s) || !r->recommendable[i] ||
            ns->documents < r->set.min_documents)
            continue;
        if (stopping(a, r))
            return;
        sent++;
        if (explain(a, r, s, ns, &verdict))
            verdict_set(w, s->shape.hash, ns->epoch, verdict);
    }
}

/* Appends to the report the advice of namespace n, from what is known of it. */
static void
advise_namespace(struct worker *w, const struct run *r, uint32_t n, struct advice_report *rep,
                 struct advice_shape_input *inputs)
{
    const struct ns *ns = &w->ns[n];
    uint32_t k = 0;

    if (!ns->known)
        return;
    for (uint32_t i = 0; i < r->snap->n; i++) {
        const struct advice_snapshot_shape *s = &r->snap->shapes[i];
        enum advice_plan_verdict verdict;

        if (r->shape_ns[i] != n || !shape_verdict(w, r, i, &verdict))
            continue;
        inputs[k].shape = &s->shape;
        inputs[k].verdict = verdict;
        inputs[k].queries = s->queries + s->hits;
        inputs[k].server_ms = s->server_ms;
        k++;
    }
    advice_recommend_namespace(ns->db, ns->coll, inputs, k, &ns->indexes, ns->documents,
                               r->set.min_documents, &rep->items, &rep->n_items, &rep->redundant,
                               &rep->n_redundant);
}

static struct advice_report *
build_report(struct worker *w, const struct run *r, int64_t now)
{
    struct advice_report *rep = bson_malloc0(sizeof *rep);
    struct advice_shape_input *inputs = bson_malloc0((r->snap->n + 1) * sizeof *inputs);

    for (uint32_t u = 0; u < r->n_used; u++)
        advise_namespace(w, r, r->used_ns[u], rep, inputs);
    bson_free(inputs);
    advice_recommend_rank(rep->items, rep->n_items);
    rep->state = w->state;
    rep->last_error = w->last_error ? bson_strdup(w->last_error) : NULL;
    rep->errors = w->errors;
    rep->runs = w->runs;
    rep->last_run_ms = w->last_run_ms;
    rep->explains = w->explains;
    rep->list_indexes = w->list_indexes;
    rep->retry_in_ms = w->retry_at_ms > now ? w->retry_at_ms - now : 0;
    return rep;
}

/* The run's namespaces (in first-seen order) and what each shape may become. */
static void
prepare(struct worker *w, struct run *r)
{
    uint32_t n = r->snap->n;

    r->shape_ns = bson_malloc0((n + 1) * sizeof *r->shape_ns);
    r->recommendable = bson_malloc0((n + 1) * sizeof *r->recommendable);
    r->used_ns = bson_malloc0((n + 1) * sizeof *r->used_ns);
    for (uint32_t i = 0; i < w->n_ns; i++)
        w->ns[i].fresh = false;
    for (uint32_t i = 0; i < n; i++) {
        const struct advice_shape *shape = &r->snap->shapes[i].shape;
        struct advice_index ix;
        uint32_t k;

        if (shape->db == NULL || shape->coll == NULL) {
            /* not a shape advice_shape_extract makes: in no namespace, never advised */
            r->shape_ns[i] = UINT32_MAX;
            continue;
        }
        k = ns_get(w, shape->db, shape->coll);
        r->shape_ns[i] = k;
        if (w->ns[k].last_run != w->run_no) {
            w->ns[k].last_run = w->run_no;
            r->used_ns[r->n_used++] = k;
        }
        memset(&ix, 0, sizeof ix);
        r->recommendable[i] = advice_recommend_index(shape, &ix);
        advice_index_cleanup(&ix);
    }
}

/* Runs the advisor on snap; returns the report, or NULL when stop was asked. */
static struct advice_report *
run(struct advice_advisor *a, const struct advice_snapshot *snap, const struct settings *set)
{
    struct worker *w = &a->w;
    struct run r = {.set = *set, .snap = snap};
    struct advice_report *rep = NULL;
    int64_t now = conf_clock_ms();

    w->run_no++;
    for (uint32_t i = 0; i < snap->n_changed; i++)
        if (snap->changed_ns[i] != NULL)
            ns_changed(w, snap->changed_ns[i]);
    prepare(w, &r);
    if (w->retry_at_ms == 0 || now >= w->retry_at_ms) {
        w->runs++;
        for (uint32_t u = 0; u < r.n_used && !r.unreachable; u++) {
            if (stopping(a, &r))
                break;
            read_namespace(a, &r, &w->ns[r.used_ns[u]]);
        }
        if (!r.abandoned && !r.unreachable)
            explain_new_shapes(a, &r);
        if (r.abandoned)
            goto done;
        now = conf_clock_ms();
        w->last_run_ms = conf_clock_wall_ms();
        if (r.failed) {
            w->state = r.state;
            w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : BACKOFF_FIRST_MS;
            if (w->backoff_ms > BACKOFF_MAX_MS)
                w->backoff_ms = BACKOFF_MAX_MS;
            w->retry_at_ms = now + w->backoff_ms;
        } else {
            w->state = ADVICE_STATE_OK;
            bson_free(w->last_error);
            w->last_error = NULL;
            w->backoff_ms = 0;
            w->retry_at_ms = 0;
        }
    }
    rep = build_report(w, &r, now);
done:
    bson_free(r.shape_ns);
    bson_free(r.recommendable);
    bson_free(r.used_ns);
    prune(w);
    return rep;
}

/* ---- the thread ------------------------------------------------------------ */

/* Hands a report to the loop; a full pipe (the loop not reading) drops it. */
static void
post(struct advice_advisor *a, struct advice_report *rep)
{
    ssize_t n;

    do {
        n = write(a->wfd, &rep, sizeof rep);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof rep)
        advice_report_destroy(rep);
}

/*
 * Start-up on the worker: mongoc_init, the URI parsed and copied with the
 * timeouts, then new() is told how it went. The client is made after that
 * (a mongodb+srv URI resolves names then), so new() never waits on I/O.
 */
static bool
start(struct advice_advisor *a)
{
    struct worker *w = &a->w;
    bson_error_t error;
    int32_t t = a->timeout_ms > INT32_MAX ? INT32_MAX : (int32_t)a->timeout_ms;
    bool ok;

    mongoc_init();
    memset(&error, 0, sizeof error);
    /* our own mongoc_uri_t, parsed from the caller's text: the timeouts are set on it alone */
    w->uri = mongoc_uri_new_with_error(a->uri_text, &error);
    if (w->uri != NULL) {
        mongoc_uri_set_option_as_int32(w->uri, MONGOC_URI_SOCKETTIMEOUTMS, t);
        mongoc_uri_set_option_as_int32(w->uri, MONGOC_URI_CONNECTTIMEOUTMS, t);
        mongoc_uri_set_option_as_int32(w->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, t);
        /* replies must stay OP_MSG the guard can check: never negotiate compression */
        mongoc_uri_set_compressors(w->uri, NULL);
        if (mongoc_uri_get_appname(w->uri) == NULL)
            mongoc_uri_set_appname(w->uri, "mongocache-advisor");
    }
    advice_secrets_init(&w->secrets, a->uri_text, w->uri);
    pthread_mutex_lock(&a->mu);
    a->started = true;
    a->start_ok = ok = w->uri != NULL;
    if (!ok) {
        char *msg = advice_secrets_scrub(&w->secrets, error.message, MAX_ERROR_LEN);

        bson_set_error(&a->start_error, error.domain, error.code, "advice_uri: %s", msg);
        bson_free(msg);
    }
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->mu);
    if (!ok)
        return false;

    w->client = mongoc_client_new_from_uri_with_error(w->uri, &error);
    if (w->client == NULL) {
        char *msg = advice_secrets_scrub(&w->secrets, error.message, MAX_ERROR_LEN);

        w->state = ADVICE_STATE_ERROR;
        w->last_error = bson_strdup_printf("advice_uri: %s", msg);
        bson_free(msg);
        return true;
    }
    mongoc_client_set_error_api(w->client, MONGOC_ERROR_API_VERSION_2);
    w->guard.client = w->client;
    mongoc_client_set_stream_initiator(w->client, advice_guard_initiator, &w->guard);
    return true;
}

static void
worker_cleanup(struct worker *w)
{
    mongoc_client_destroy(w->client); /* before the guard its streams point to */
    mongoc_uri_destroy(w->uri);
    for (uint32_t i = 0; i < w->n_ns; i++)
        ns_cleanup(&w->ns[i]);
    bson_free(w->ns);
    bson_free(w->verdicts);
    advice_secrets_cleanup(&w->secrets);
    bson_free(w->last_error);
    memset(w, 0, sizeof *w);
}

/* A report from memory only, for a worker whose client could not be made. */
static struct advice_report *
stuck_report(struct worker *w)
{
    struct advice_report *rep = bson_malloc0(sizeof *rep);

    rep->state = w->state;
    rep->last_error = w->last_error ? bson_strdup(w->last_error) : NULL;
    rep->errors = w->errors;
    return rep;
}

static void free_advisor(struct advice_advisor *a);

static void *
worker_main(void *arg)
{
    struct advice_advisor *a = arg;
    if (!start(a))
        goto out;
    for (;;) {
        struct advice_snapshot *snap;
        struct settings set;
        struct advice_report *rep;

        pthread_mutex_lock(&a->mu);
        while (a->mailbox == NULL && !atomic_load(&a->stop))
            pthread_cond_wait(&a->wake, &a->mu);
        snap = a->mailbox;
        a->mailbox = NULL;
        set = a->settings;
        pthread_mutex_unlock(&a->mu);
        if (atomic_load(&a->stop)) {
            advice_snapshot_destroy(snap);
            break;
        }
        rep = a->w.client != NULL ? run(a, snap, &set) : stuck_report(&a->w);
        advice_snapshot_destroy(snap);
        if (rep != NULL)
            post(a, rep);
    }
out:
    worker_cleanup(&a->w);
    if (conf_thread_exiting(&a->end))
        free_advisor(a); /* the loop left it to us (advice_advisor_destroy) */
    return NULL;
}

/* ---- the loop's side --------------------------------------------------------- */

/*
 * Reads every whole report pointer in the pipe (never blocking) and hands
 * each report to the callback, or frees it when deliver is false (destroy).
 * Each pointer was written whole (PIPE_BUF makes small writes atomic);
 * carry only guards against a read that would split one.
 */
static void
take_reports(struct advice_advisor *a, bool deliver)
{
    uint8_t buf[16 * sizeof(void *)];

    for (;;) {
        ssize_t n;
        size_t have, off = 0;

        memcpy(buf, a->carry, a->carry_len);
        n = read(a->rfd, buf + a->carry_len, sizeof buf - a->carry_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        have = a->carry_len + (size_t)n;
        for (; off + sizeof(void *) <= have; off += sizeof(void *)) {
            struct advice_report *rep;

            memcpy(&rep, buf + off, sizeof rep);
            if (deliver)
                a->cb(a->cb_arg, rep);
            else
                advice_report_destroy(rep);
        }
        a->carry_len = have - off;
        memcpy(a->carry, buf + off, a->carry_len);
    }
}

static void
on_reports(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    take_reports(arg, true);
}

static struct settings
settings_of(const struct advice_config *cfg)
{
    struct settings s = {cfg->min_documents, cfg->explain, cfg->max_shapes};

    return s;
}

struct advice_advisor *
advice_advisor_new(struct event_base *base, const struct advice_config *cfg,
                   advice_report_cb cb, void *arg, bson_error_t *error)
{
    struct advice_advisor *a = bson_malloc0(sizeof *a);
    int fds[2] = {-1, -1};
    int rc;

    a->base = base;
    a->cb = cb;
    a->cb_arg = arg;
    a->rfd = a->wfd = -1;
    a->uri_text = bson_strdup(cfg->uri ? cfg->uri : "");
    a->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    a->settings = settings_of(cfg);
    a->w.state = ADVICE_STATE_STARTING;
    atomic_init(&a->stop, false);
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_ADVICE, (uint32_t)errno, "advisor: pipe: %s",
                       strerror(errno));
        bson_free(a->uri_text);
        bson_free(a);
        return NULL;
    }
    a->rfd = fds[0];
    a->wfd = fds[1];
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    conf_thread_end_init(&a->end);
    rc = conf_thread_spawn(&a->thread, worker_main, a, "mc-advisor");
    if (rc != 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_ADVICE, (uint32_t)rc, "advisor: thread: %s",
                       strerror(rc));
        goto fail;
    }
    pthread_mutex_lock(&a->mu);
    while (!a->started)
        pthread_cond_wait(&a->wake, &a->mu);
    pthread_mutex_unlock(&a->mu);
    if (!a->start_ok) {
        pthread_join(a->thread, NULL);
        *error = a->start_error;
        goto fail;
    }
    a->ev = event_new(base, a->rfd, EV_READ | EV_PERSIST, on_reports, a);
    if (a->ev == NULL || event_add(a->ev, NULL) != 0) {
        bson_set_error(error, CONF_ERROR_DOMAIN_ADVICE, CONF_ERROR_ADVICE_WATCH,
                       "advisor: cannot watch its pipe");
        advice_advisor_destroy(a);
        return NULL;
    }
    return a;
fail:
    conf_thread_end_cleanup(&a->end);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    close(a->rfd);
    close(a->wfd);
    bson_free(a->uri_text);
    bson_free(a);
    return NULL;
}

void
advice_advisor_submit(struct advice_advisor *advisor, struct advice_snapshot *snapshot)
{
    struct advice_snapshot *old;

    pthread_mutex_lock(&advisor->mu);
    old = advisor->mailbox;
    advice_snapshot_take_changed(snapshot, old); /* old was never read */
    advisor->mailbox = snapshot;
    pthread_cond_signal(&advisor->wake);
    pthread_mutex_unlock(&advisor->mu);
    advice_snapshot_destroy(old);
}

void
advice_advisor_reconfigure(struct advice_advisor *advisor, const struct advice_config *cfg)
{
    struct settings s = settings_of(cfg);

    pthread_mutex_lock(&advisor->mu);
    advisor->settings = s;
    pthread_mutex_unlock(&advisor->mu);
}

/* Frees what the advisor holds once its worker is done with it (either side may run this). */
static void
free_advisor(struct advice_advisor *a)
{
    advice_snapshot_destroy(a->mailbox);
    take_reports(a, false); /* reports posted but not read: the pipe's */
    close(a->rfd);
    close(a->wfd);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    conf_thread_end_cleanup(&a->end);
    bson_free(a->uri_text);
    bson_free(a);
}

bool
advice_advisor_destroy(struct advice_advisor *advisor)
{
    pthread_t thread;

    if (advisor == NULL)
        return true;
    thread = advisor->thread;
    if (advisor->ev != NULL)
        event_free(advisor->ev);
    pthread_mutex_lock(&advisor->mu);
    atomic_store(&advisor->stop, true);
    pthread_cond_signal(&advisor->wake);
    pthread_mutex_unlock(&advisor->mu);
    if (!conf_thread_stop(thread, &advisor->end, ADVICE_ADVISOR_STOP_WAIT_MS)) {
        /* Still inside libmongoc (1.23's client destroy can wait for ever on
         * its own lock when its server went away as it ended its sessions):
         * the worker is left behind and frees the advisor if it ever ends. */
        conf_log(CONF_LOG_WARN, 0, "advisor_abandoned",
                 "waited_ms=%d msg=\"the index advisor's thread did not stop in time; left "
                 "behind\"",
                 ADVICE_ADVISOR_STOP_WAIT_MS);
        return false;
    }
    free_advisor(advisor);
    return true;
}
