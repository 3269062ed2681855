/*
 * advice/advisor.c: the index advisor's worker thread (see advisor.h). It
 * owns the thread, its libmongoc client (and the guard on its connections,
 * advice/guard.c), the mailbox that brings snapshots in, the pipe that takes reports out and the
 * libevent event that reads it on the loop, the advisor's memory between
 * runs (per namespace: the indexes, document count and an epoch; per shape
 * hash: the explain verdict, tied to its namespace's epoch), the state,
 * counters and backoff, the checks on every answer, and the scrubbing of
 * error texts. It does not derive shapes, read plans or choose indexes
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
 * listIndexes (its cursor read by hand: at most ADVISOR_MAX_INDEXES entries,
 * each checked, a getMore only while each batch brings some) and one
 * count without a query (the estimated count); then explain, at
 * queryPlanner verbosity, for shapes without a verdict, most used first, at
 * most max_shapes, only where an index could help and the collection is big
 * enough to matter; then advice_recommend_namespace per namespace and the
 * ranking. A namespace that cannot be read this run is advised from what the
 * last successful read found, so an outage does not empty /advice. Stop is
 * checked before every command; every command is bounded by timeout_ms
 * (socket, connect and server selection timeouts set on a copy of the URI).
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
#include "advice/recommend.h"
#include "advice/shape.h"
#include "advice/table.h"
#include "wire/doc.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* mongod allows 64 indexes per collection: a longer listIndexes answer is junk. */
#define ADVISOR_MAX_INDEXES 64
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000
#define DEFAULT_TIMEOUT_MS 5000
/* What the worker remembers of namespaces and verdicts not seen for this many runs is dropped. */
#define KEEP_RUNS 16
#define MAX_NAMESPACES 4096
#define MAX_VERDICTS 65536
/* Longest last_error (bytes). */
#define MAX_ERROR_LEN 300
#define MAX_SECRETS 8
/* Server error codes. */
#define CODE_UNAUTHORIZED 13
#define CODE_AUTH_FAILED 18
#define CODE_NAMESPACE_NOT_FOUND 26
#define CODE_INVALID_NAMESPACE 73
#define CODE_NOT_ON_VIEW 166 /* CommandNotSupportedOnView */
/* bson_error_t domain of an answer refused as junk (by the guard or by the checks here). */
#define JUNK_DOMAIN 0x6a756e6bu /* "junk" */

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
    struct advice_guard guard; /* its connections' junk count */
    char *secrets[MAX_SECRETS]; /* scrubbed from every error text; owned */
    uint32_t n_secrets;
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

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* ---- error texts ------------------------------------------------------- */

static void
add_secret(struct worker *w, const char *s, size_t len)
{
    if (s == NULL || len == 0 || w->n_secrets >= MAX_SECRETS)
        return;
    w->secrets[w->n_secrets++] = bson_strndup(s, len);
}

/*
 * The secrets of uri_text: the whole URI, its user-info as written
 * (percent-encoded) and its parts, and what libmongoc decoded from them.
 * Longest first, so a secret containing another is replaced whole.
 */
static void
collect_secrets(struct worker *w, const char *uri_text)
{
    const char *start = strstr(uri_text, "://");
    const char *p;

    add_secret(w, uri_text, strlen(uri_text));
    if (start != NULL) {
        const char *end, *at = NULL, *colon;

        start += 3;
        end = start + strcspn(start, "/?");
        for (p = start; p < end; p++)
            if (*p == '@')
                at = p;
        if (at != NULL) {
            add_secret(w, start, (size_t)(at - start));
            colon = memchr(start, ':', (size_t)(at - start));
            if (colon != NULL) {
                add_secret(w, colon + 1, (size_t)(at - colon - 1));
                add_secret(w, start, (size_t)(colon - start));
            } else {
                add_secret(w, start, (size_t)(at - start));
            }
        }
    }
    if (w->uri != NULL) {
        const char *pw = mongoc_uri_get_password(w->uri);
        const char *user = mongoc_uri_get_username(w->uri);
        const char *keypw = mongoc_uri_get_option_as_utf8(
            w->uri, MONGOC_URI_TLSCERTIFICATEKEYFILEPASSWORD, NULL);

        if (pw != NULL)
            add_secret(w, pw, strlen(pw));
        if (keypw != NULL)
            add_secret(w, keypw, strlen(keypw));
        if (user != NULL)
            add_secret(w, user, strlen(user));
    }
}

/*
 * text with every secret replaced by "***", control bytes by '?', cut to
 * MAX_ERROR_LEN bytes at a character boundary. Freed with bson_free.
 */
static char *
scrub(char *const *secrets, uint32_t n_secrets, const char *text)
{
    char *out = bson_strdup(text);
    size_t len;

    for (uint32_t i = 0; i < n_secrets; i++) {
        size_t slen = strlen(secrets[i]);
        bson_string_t *b;
        const char *p = out, *hit;

        if (slen == 0 || strstr(out, secrets[i]) == NULL)
            continue;
        b = bson_string_new(NULL);
        while ((hit = strstr(p, secrets[i])) != NULL) {
            char *part = bson_strndup(p, (size_t)(hit - p));

            bson_string_append(b, part);
            bson_string_append(b, "***");
            bson_free(part);
            p = hit + slen;
        }
        bson_string_append(b, p);
        bson_free(out);
        out = bson_string_free(b, false);
    }
    for (char *c = out; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    len = strlen(out);
    if (len > MAX_ERROR_LEN) {
        len = MAX_ERROR_LEN;
        while (len > 0 && ((unsigned char)out[len] & 0xc0) == 0x80)
            len--;
        out[len] = '\0';
    }
    return out;
}

/* Which state an error puts the advisor in. */
static enum advice_state
classify(const bson_error_t *e)
{
    switch (e->domain) {
    case MONGOC_ERROR_SERVER_SELECTION:
    case MONGOC_ERROR_STREAM:
        return ADVICE_STATE_UNREACHABLE;
    case MONGOC_ERROR_SASL:
    case MONGOC_ERROR_SCRAM:
        return ADVICE_STATE_UNAUTHORIZED;
    case MONGOC_ERROR_CLIENT:
        return e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE ? ADVICE_STATE_UNAUTHORIZED
                                                           : ADVICE_STATE_ERROR;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_QUERY:
    case MONGOC_ERROR_COMMAND:
        return e->code == CODE_UNAUTHORIZED || e->code == CODE_AUTH_FAILED
                   ? ADVICE_STATE_UNAUTHORIZED
                   : ADVICE_STATE_ERROR;
    default:
        return ADVICE_STATE_ERROR;
    }
}

/* The server answered the command with an error of its own (ok: 0). */
static bool
server_said(const bson_error_t *e)
{
    return e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_QUERY ||
           e->domain == MONGOC_ERROR_COMMAND;
}

/*
 * The server says the namespace is not a collection: none (26), a name
 * that cannot be one (73: a client's typo), a view (166). Not a failure:
 * nothing to advise there.
 */
static bool
missing_namespace(const bson_error_t *e)
{
    return server_said(e) &&
           (e->code == CODE_NAMESPACE_NOT_FOUND || e->code == CODE_INVALID_NAMESPACE ||
            e->code == CODE_NOT_ON_VIEW);
}

/* A command failed: counted, remembered (scrubbed) as last_error, the run marked. */
static void
fail(struct worker *w, struct run *r, enum advice_state state, const char *what,
     const struct ns *ns, const char *message)
{
    char *text = bson_strdup_printf("%s %s.%s: %s", what, ns->db, ns->coll, message);

    bson_free(w->last_error);
    w->last_error = scrub(w->secrets, w->n_secrets, text);
    bson_free(text);
    w->errors++;
    r->failed = true;
    r->state = state;
    if (state == ADVICE_STATE_UNREACHABLE)
        r->unreachable = true;
}

static void
fail_error(struct worker *w, struct run *r, const char *what, const struct ns *ns,
           const bson_error_t *e)
{
    fail(w, r, classify(e), what, ns, e->message);
}

/* Checks a document from the server like any untrusted input, before libbson reads it. */
static bool
doc_ok(const bson_t *doc)
{
    bson_error_t error;
    uint32_t len = 0;

    return wire_doc_check(bson_get_data(doc), doc->len, 0, &len, &error) && len == doc->len;
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

/*
 * Sends cmd to db. True when the server answered ok: 1 with a well-formed
 * document (reply: the answer). False with error set otherwise: the
 * server's own error (server_said), the connection's, or junk (JUNK_DOMAIN:
 * a message the guard refused, or an answer that is not BSON). reply is
 * initialised either way.
 */
static bool
send_command(struct worker *w, const char *db, const bson_t *cmd, bson_t *reply,
             bson_error_t *error)
{
    uint64_t junk = w->guard.junk;
    bool ok = mongoc_client_command_simple(w->client, db, cmd, NULL, reply, error);

    if (!ok && w->guard.junk != junk) {
        bson_set_error(error, JUNK_DOMAIN, 0, "%s", w->guard.reason);
        return false;
    }
    if (ok && !doc_ok(reply)) {
        bson_set_error(error, JUNK_DOMAIN, 0, "an answer that is not valid BSON");
        return false;
    }
    return ok;
}

/*
 * Finds cursor.id and cursor.<batch_name> (an array) in a checked reply.
 * Returns NULL, or what is wrong with it.
 */
static const char *
read_cursor(const bson_t *reply, const char *batch_name, int64_t *id, bson_iter_t *batch)
{
    bson_iter_t it, c;
    bool have_id = false, have_batch = false;

    if (!bson_iter_init_find(&it, reply, "cursor") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &c))
        return "an answer without a cursor";
    while (bson_iter_next(&c)) {
        const char *key = bson_iter_key(&c);

        if (strcmp(key, "id") == 0) {
            if (BSON_ITER_HOLDS_INT64(&c))
                *id = bson_iter_int64(&c);
            else if (BSON_ITER_HOLDS_INT32(&c))
                *id = bson_iter_int32(&c);
            else
                return "a cursor id that is not an integer";
            have_id = true;
        } else if (strcmp(key, batch_name) == 0) {
            if (!BSON_ITER_HOLDS_ARRAY(&c))
                return "a cursor batch that is not an array";
            *batch = c;
            have_batch = true;
        }
    }
    return have_id && have_batch ? NULL : "an answer without a cursor";
}

/* Adds the index specs of a batch to out (checked, at most ADVISOR_MAX_INDEXES in all). */
static const char *
take_batch(const bson_iter_t *batch, struct advice_indexes *out, uint32_t *taken)
{
    bson_iter_t it;

    *taken = 0;
    if (!bson_iter_recurse(batch, &it))
        return "a cursor batch that is not an array";
    while (bson_iter_next(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_t spec;

        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            return "an index entry that is not a document";
        if (out->n == ADVISOR_MAX_INDEXES)
            return "more than 64 indexes";
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&spec, data, len))
            return "an index entry that is not valid BSON";
        if (!advice_index_from_spec(&spec, &out->index[out->n]))
            return "an index entry without a usable key";
        out->n++;
        (*taken)++;
    }
    return NULL;
}

/*
 * listIndexes on ns into out (the caller's on success), its cursor read
 * here: the first batch, then a getMore while the cursor lives and each
 * batch brings entries (an empty batch from a live cursor is junk), so at
 * most ADVISOR_MAX_INDEXES getMores. What is not a collection (see
 * missing_namespace) has no indexes and *not_collection set. False when a
 * command failed or the answer is junk (recorded).
 */
static bool
list_indexes(struct advice_advisor *a, struct run *r, struct ns *ns, struct advice_indexes *out,
             bool *not_collection)
{
    struct worker *w = &a->w;
    bson_t cmd = BSON_INITIALIZER;
    bson_t reply;
    bson_error_t error;
    bson_iter_t batch;
    int64_t id = 0;
    uint32_t taken = 0;
    const char *junk;
    const char *what = "listIndexes";

    *not_collection = false;
    out->index = bson_malloc0(ADVISOR_MAX_INDEXES * sizeof *out->index);
    out->n = 0;
    BSON_APPEND_UTF8(&cmd, "listIndexes", ns->coll);
    w->list_indexes++;
    if (!send_command(w, ns->db, &cmd, &reply, &error)) {
        bson_destroy(&cmd);
        bson_destroy(&reply);
        if (missing_namespace(&error)) {
            *not_collection = true;
            return true;
        }
        fail_error(w, r, what, ns, &error);
        advice_indexes_cleanup(out);
        return false;
    }
    bson_destroy(&cmd);
    junk = read_cursor(&reply, "firstBatch", &id, &batch);
    if (junk == NULL)
        junk = take_batch(&batch, out, &taken);
    bson_destroy(&reply);
    while (junk == NULL && id != 0) {
        what = "getMore";
        if (stopping(a, r)) {
            advice_indexes_cleanup(out);
            return false;
        }
        bson_init(&cmd);
        BSON_APPEND_INT64(&cmd, "getMore", id);
        BSON_APPEND_UTF8(&cmd, "collection", ns->coll);
        if (!send_command(w, ns->db, &cmd, &reply, &error)) {
            bson_destroy(&cmd);
            bson_destroy(&reply);
            fail_error(w, r, what, ns, &error);
            advice_indexes_cleanup(out);
            return false;
        }
        bson_destroy(&cmd);
        junk = read_cursor(&reply, "nextBatch", &id, &batch);
        if (junk == NULL)
            junk = take_batch(&batch, out, &taken);
        if (junk == NULL && taken == 0 && id != 0)
            junk = "a cursor that does not end";
        bson_destroy(&reply);
    }
    if (junk != NULL) {
        fail(w, r, ADVICE_STATE_ERROR, what, ns, junk);
        advice_indexes_cleanup(out);
        return false;
    }
    return true;
}

/* The estimated document count of ns (the count command without a query). */
static bool
count_documents(struct advice_advisor *a, struct run *r, struct ns *ns, int64_t *documents)
{
    struct worker *w = &a->w;
    bson_t cmd = BSON_INITIALIZER;
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    bool sent;
    double n = -1;

    BSON_APPEND_UTF8(&cmd, "count", ns->coll);
    sent = send_command(w, ns->db, &cmd, &reply, &error);
    bson_destroy(&cmd);
    if (!sent) {
        bson_destroy(&reply);
        if (missing_namespace(&error)) {
            *documents = 0;
            return true;
        }
        fail_error(w, r, "count", ns, &error);
        return false;
    }
    if (bson_iter_init_find(&it, &reply, "n")) {
        if (BSON_ITER_HOLDS_INT32(&it))
            n = bson_iter_int32(&it);
        else if (BSON_ITER_HOLDS_INT64(&it))
            n = (double)bson_iter_int64(&it);
        else if (BSON_ITER_HOLDS_DOUBLE(&it))
            n = bson_iter_double(&it);
    }
    bson_destroy(&reply);
    if (!isfinite(n) || n < 0 || n > 9.0e18) {
        fail(w, r, ADVICE_STATE_ERROR, "count", ns, "an answer without a document count");
        return false;
    }
    *documents = (int64_t)n;
    return true;
}

/*
 * Reads ns's indexes and count (not for what is not a collection: a view's
 * count would run its pipeline); a changed index set forgets ns's verdicts.
 */
static void
read_namespace(struct advice_advisor *a, struct run *r, struct ns *ns)
{
    struct advice_indexes got = {0};
    int64_t documents = 0;
    bool not_collection = false;
    uint64_t fp;

    if (!list_indexes(a, r, ns, &got, &not_collection))
        return;
    if (!not_collection &&
        (r->unreachable || stopping(a, r) || !count_documents(a, r, ns, &documents))) {
        advice_indexes_cleanup(&got);
        return;
    }
    fp = fingerprint(&got);
    if (ns->known && fp != ns->fingerprint)
        ns->epoch = ++a->w.epochs;
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

/*
 * explain (advice_plan_shape_command) of shape s: its verdict, or false
 * when the run failed. A query that gives no command is "no mongod plan".
 */
static bool
explain(struct advice_advisor *a, struct run *r, const struct advice_snapshot_shape *s,
        const struct ns *ns, enum advice_plan_verdict *verdict)
{
    struct worker *w = &a->w;
    bson_t body, cmd, reply;
    bson_error_t error;
    bool sent;

    *verdict = ADVICE_PLAN_NOT_MONGOD;
    if (s->query == NULL)
        bson_init(&body); /* a $lookup's explain is built from its shape alone */
    else if (!bson_init_static(&body, s->query, s->query_len))
        return true;
    if (!advice_plan_shape_command(&s->shape, &body, s->statement, &cmd)) {
        bson_destroy(&cmd);
        bson_destroy(&body);
        return true;
    }
    bson_destroy(&body);
    w->explains++;
    sent = send_command(w, ns->db, &cmd, &reply, &error);
    bson_destroy(&cmd);
    if (!sent) {
        bson_destroy(&reply);
        if (server_said(&error) && classify(&error) == ADVICE_STATE_ERROR)
            return true; /* the server refuses to plan this query: no mongod plan */
        fail_error(w, r, "explain", ns, &error);
        return false;
    }
    *verdict = advice_plan_read(&reply);
    bson_destroy(&reply);
    return true;
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
    int64_t now = mono_ms();

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
        now = mono_ms();
        w->last_run_ms = wall_ms();
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
    collect_secrets(w, a->uri_text);
    pthread_mutex_lock(&a->mu);
    a->started = true;
    a->start_ok = ok = w->uri != NULL;
    if (!ok) {
        char *msg = scrub(w->secrets, w->n_secrets, error.message);

        bson_set_error(&a->start_error, error.domain, error.code, "advice_uri: %s", msg);
        bson_free(msg);
    }
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->mu);
    if (!ok)
        return false;

    w->client = mongoc_client_new_from_uri_with_error(w->uri, &error);
    if (w->client == NULL) {
        char *msg = scrub(w->secrets, w->n_secrets, error.message);

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
    for (uint32_t i = 0; i < w->n_secrets; i++)
        bson_free(w->secrets[i]);
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

/* Starts the thread with every signal blocked (the loop's thread handles them). */
static int
spawn(struct advice_advisor *a)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&a->thread, NULL, worker_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_setname_np(a->thread, "mc-advisor");
    return rc;
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
        bson_set_error(error, 0, (uint32_t)errno, "advisor: pipe: %s", strerror(errno));
        bson_free(a->uri_text);
        bson_free(a);
        return NULL;
    }
    a->rfd = fds[0];
    a->wfd = fds[1];
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    rc = spawn(a);
    if (rc != 0) {
        bson_set_error(error, 0, (uint32_t)rc, "advisor: thread: %s", strerror(rc));
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
        bson_set_error(error, 0, 0, "advisor: cannot watch its pipe");
        advice_advisor_destroy(a);
        return NULL;
    }
    return a;
fail:
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

void
advice_advisor_destroy(struct advice_advisor *advisor)
{
    if (advisor == NULL)
        return;
    if (advisor->ev != NULL)
        event_free(advisor->ev);
    pthread_mutex_lock(&advisor->mu);
    atomic_store(&advisor->stop, true);
    pthread_cond_signal(&advisor->wake);
    pthread_mutex_unlock(&advisor->mu);
    pthread_join(advisor->thread, NULL);
    advice_snapshot_destroy(advisor->mailbox);
    take_reports(advisor, false); /* reports posted but not read: the pipe's */
    close(advisor->rfd);
    close(advisor->wfd);
    pthread_cond_destroy(&advisor->wake);
    pthread_mutex_destroy(&advisor->mu);
    bson_free(advisor->uri_text);
    bson_free(advisor);
}
