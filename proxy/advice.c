/*
 * proxy/advice.c: index advice as the proxy runs it (see advice.h). Owns
 * the shape table, the advisor, the interval timer and the latest report,
 * and the log line of each new advice. Does not own what a shape is, how a
 * plan is read or what index to advise (advice/), nor where in a request's
 * life the recording happens (client.c, lookup.c).
 *
 * The loop thread alone touches the table; the advisor works on snapshots
 * and hands its reports back to advice_report_cb on the loop thread.
 */
#include "config.h"

#include "proxy/advice.h"

#include "advice/advisor.h"
#include "wire/reader.h"
#include "advice/sampler.h"
#include "advice/shape.h"
#include "advice/table.h"
#include "conf/clock.h"
#include "conf/error.h"
#include "conf/log.h"
#include "proxy/server.h"
#include "wire/cmd.h"
#include "wire/msg.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

/* Shapes the table keeps (the least recently used go beyond that). */
#define TABLE_SHAPES 4096
/* After an index change passed through, the advisor runs this soon. */
#define CHANGE_DELAY_MS 200
/* Each advisor command's timeout. */
#define COMMAND_TIMEOUT_MS 5000

struct proxy_advice {
    struct proxy_server *server;
    struct advice_table *table;
    struct advice_advisor *advisor;
    struct event *timer;
    struct advice_report *report; /* the latest, or NULL */
    struct advice_sampler sampler; /* which pass-throughs have their shapes derived */
};

static void
arm(struct proxy_advice *a, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000}, when, now, want;

    /* A run already due sooner stays: frequent index changes or reloads
     * would otherwise push it back for ever. */
    if (evtimer_pending(a->timer, &when)) {
        event_base_gettimeofday_cached(a->server->base, &now);
        evutil_timeradd(&now, &tv, &want);
        if (evutil_timercmp(&when, &want, <=))
            return;
    }
    evtimer_add(a->timer, &tv);
}

static void
interval_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_advice *a = arg;
    const struct conf *conf = a->server->conf;

    (void)fd;
    (void)what;
    advice_advisor_submit(a->advisor,
                          advice_table_snapshot(a->table, (uint32_t)conf->advice_max_shapes));
    arm(a, conf->advice_interval);
}

/* An advice's identity: its namespace and index name. */
static uint64_t
item_id(const struct advice_item *it)
{
    uint64_t h = XXH3_64bits(it->db, strlen(it->db) + 1);

    h = XXH3_64bits_withSeed(it->coll, strlen(it->coll) + 1, h);
    return XXH3_64bits_withSeed(it->index.name, strlen(it->index.name), h);
}

static int
id_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

    return a < b ? -1 : a > b;
}

static void
report_cb(void *arg, struct advice_report *report)
{
    struct proxy_advice *a = arg;
    enum advice_state before = a->report ? a->report->state : ADVICE_STATE_STARTING;

    /* The last report's advice, sorted, so that each new one is found in
     * log time (reports hold up to advice_max_shapes items). */
    uint32_t n_last = a->report ? a->report->n_items : 0;
    uint64_t *last = bson_malloc((n_last ? n_last : 1) * sizeof *last);

    for (uint32_t i = 0; i < n_last; i++)
        last[i] = item_id(&a->report->items[i]);
    qsort(last, n_last, sizeof *last, id_cmp);
    for (uint32_t i = 0; i < report->n_items; i++) {
        const struct advice_item *it = &report->items[i];
        uint64_t id = item_id(it);

        if (bsearch(&id, last, n_last, sizeof *last, id_cmp) == NULL)
            conf_log(CONF_LOG_INFO, 0, "index_advice",
                     "namespace=%s.%s index=%s reason=%s evidence=%s queries=%llu "
                     "server_ms=%.1f documents=%lld mongosh=\"%s\"",
                     it->db, it->coll, it->index.name, advice_reason_name(it->reason),
                     advice_evidence_name(it->evidence), (unsigned long long)it->queries,
                     it->server_ms, (long long)it->documents, it->mongosh);
    }
    bson_free(last);
    if (report->state != before && report->state != ADVICE_STATE_OK)
        conf_log(CONF_LOG_WARN, 0, "advisor_state",
                 "state=%s error=\"%s\" retry_in_ms=%lld msg=\"index advice is paused; "
                 "proxying and caching are not affected\"",
                 advice_state_name(report->state), report->last_error ? report->last_error : "",
                 (long long)report->retry_in_ms);
    else if (report->state != before)
        conf_log(CONF_LOG_INFO, 0, "advisor_state", "state=%s",
                 advice_state_name(report->state));
    advice_report_destroy(a->report);
    a->report = report;
}

static void
config_from(const struct proxy_server *server, struct advice_config *cfg)
{
    const struct conf *conf = server->conf;

    cfg->uri = conf->advice_uri[0] ? conf->advice_uri : conf->upstream;
    cfg->interval_ms = conf->advice_interval;
    cfg->min_documents = conf->advice_min_documents;
    cfg->explain = conf->advice_explain;
    cfg->max_shapes = (uint32_t)conf->advice_max_shapes;
    cfg->timeout_ms = COMMAND_TIMEOUT_MS;
}

struct proxy_advice *
proxy_advice_new(struct proxy_server *server, bson_error_t *error)
{
    struct proxy_advice *a;
    struct advice_config cfg;

    memset(error, 0, sizeof *error);
    if (!server->conf->advice)
        return NULL;
    a = bson_malloc0(sizeof *a);
    a->server = server;
    a->table = advice_table_new(TABLE_SHAPES);
    advice_sampler_init(&a->sampler, (uint32_t)server->conf->advice_exact_rate,
                        conf_clock_coarse_ms());
    config_from(server, &cfg);
    a->advisor = advice_advisor_new(server->base, &cfg, report_cb, a, error);
    a->timer = evtimer_new(server->base, interval_cb, a);
    if (!a->advisor || !a->timer) {
        if (!error->code)
            bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_START,
                           "cannot start the index advisor");
        proxy_advice_destroy(a);
        return NULL;
    }
    arm(a, server->conf->advice_interval);
    return a;
}

bool
proxy_advice_destroy(struct proxy_advice *a)
{
    bool stopped;

    if (!a)
        return true;
    if (a->timer)
        event_free(a->timer);
    /* joins the thread (no report comes after this), or leaves it behind */
    stopped = advice_advisor_destroy(a->advisor);
    advice_table_destroy(a->table);
    advice_report_destroy(a->report);
    bson_free(a);
    return stopped;
}

void
proxy_advice_reconfigure(struct proxy_advice *a)
{
    struct advice_config cfg;

    if (!a)
        return;
    config_from(a->server, &cfg);
    advice_advisor_reconfigure(a->advisor, &cfg);
    advice_sampler_set_exact(&a->sampler, (uint32_t)a->server->conf->advice_exact_rate);
    arm(a, cfg.interval_ms);
}

/* Only these commands have shapes: the rest cost one switch on the name's id. */
static bool
may_have_shape(enum wire_name name)
{
    switch (name) {
    case WIRE_NAME_FIND:
    case WIRE_NAME_FIND_AND_MODIFY:
    case WIRE_NAME_FINDANDMODIFY:
    case WIRE_NAME_AGGREGATE:
    case WIRE_NAME_COUNT:
    case WIRE_NAME_DISTINCT:
    case WIRE_NAME_DELETE:
    case WIRE_NAME_UPDATE:
        return true;
    default:
        return false;
    }
}

uint32_t
proxy_advice_record(struct proxy_advice *a, const struct wire_msg *msg, const struct wire_cmd *cmd,
                    const bson_t *body, bool sample, uint64_t *hashes, uint32_t max,
                    int64_t *sent_us, uint32_t *weight)
{
    struct advice_sequence seqs[WIRE_MSG_MAX_SEQUENCES];
    struct advice_shapes shapes;
    int64_t now;
    uint32_t n = 0, w = 1;

    if (!a || !cmd->name || !cmd->db || !may_have_shape(cmd->name_id))
        return 0;
    if (sample && (w = advice_sampler_take(&a->sampler, conf_clock_coarse_ms())) == 0)
        return 0;
    for (uint32_t i = 0; i < msg->n_seqs; i++) {
        seqs[i].id = msg->seqs[i].id;
        seqs[i].docs = msg->seqs[i].docs;
        seqs[i].len = msg->seqs[i].docs_len;
    }
    shapes.n = 0;
    if (advice_shape_extract_known(body, cmd, seqs, msg->n_seqs, advice_table_has, a->table,
                                   &shapes) == 0)
        return 0;
    *sent_us = conf_clock_us();
    *weight = w;
    now = *sent_us / 1000;
    /* Kept shapes first: a new one added after them, in a full table,
     * evicts the least used shape, never one of this command's. */
    for (uint32_t i = 0; i < shapes.n; i++) {
        const struct advice_shape *s = &shapes.shape[i];

        if (s->db == NULL)
            advice_table_record_known(a->table, s->hash, shapes.query[i], shapes.query_len[i],
                                      shapes.statement[i], w, now);
        if (n < max)
            hashes[n++] = s->hash;
    }
    for (uint32_t i = 0; i < shapes.n; i++) {
        if (shapes.shape[i].db != NULL)
            advice_table_record(a->table, &shapes.shape[i], shapes.query[i], shapes.query_len[i],
                                shapes.statement[i], w, now);
    }
    advice_shapes_cleanup(&shapes);
    return n;
}

/* Steps r to its first element named key (len bytes); false when there is none. Inlined,
 * so that each comparison is with a constant length (no call to memcmp). */
static inline __attribute__((always_inline)) bool
find_key(struct wire_reader *r, const char *key, uint32_t len)
{
    while (wire_reader_next(r)) {
        if (r->key_len == len && memcmp(r->key, key, len) == 0)
            return true;
    }
    return false;
}

uint64_t
proxy_advice_batch_documents(const uint8_t *reply, uint32_t len)
{
    struct wire_reader top, cursor, next, batch;
    const struct wire_reader *found;
    uint64_t n = 0;

    if (!wire_reader_init(&top, reply, len) || !find_key(&top, "cursor", 6) ||
        !wire_reader_recurse(&top, &cursor))
        return 0;
    next = cursor;
    if (find_key(&cursor, "firstBatch", 10))
        found = &cursor;
    else if (find_key(&next, "nextBatch", 9))
        found = &next;
    else
        return 0;
    if (!wire_reader_is_array(found) || !wire_reader_recurse(found, &batch))
        return 0;
    while (wire_reader_next(&batch))
        n++;
    return n;
}

void
proxy_advice_reply(struct proxy_advice *a, const uint64_t *hashes, uint32_t n, double server_ms,
                   uint64_t documents, uint32_t weight)
{
    if (!a)
        return;
    for (uint32_t i = 0; i < n; i++)
        advice_table_reply(a->table, hashes[i], server_ms, documents, weight);
}

void
proxy_advice_indexes_changed(struct proxy_advice *a, const char *db, const char *coll)
{
    if (!a)
        return;
    advice_table_indexes_changed(a->table, db, coll);
    arm(a, CHANGE_DELAY_MS); /* the interval timer runs sooner, then re-arms as usual */
}

void
proxy_advice_hit(struct proxy_advice *a, uint64_t hash, int64_t now_ms)
{
    if (a && hash)
        advice_table_hit(a->table, hash, now_ms > 0 ? now_ms : conf_clock_ms());
}

char *
proxy_advice_shape_display(struct proxy_advice *a, uint64_t hash)
{
    return a && hash ? advice_table_display(a->table, hash) : NULL;
}

struct advice_table *
proxy_advice_table(struct proxy_advice *a)
{
    return a->table;
}

const struct advice_report *
proxy_advice_report(const struct proxy_advice *a)
{
    return a->report;
}

/* ---- the report as JSON ------------------------------------------------------- */

static void
append_index_keys(bson_t *parent, const char *key, const struct advice_index *index)
{
    bson_t keys;

    advice_index_keys_bson(index, &keys);
    bson_append_document(parent, key, -1, &keys);
    bson_destroy(&keys);
}

static void
append_item(bson_t *array, uint32_t i, const struct advice_item *it)
{
    char key[16];
    const char *key_str;
    bson_t doc, shapes;
    char ns[512];

    bson_uint32_to_string(i, &key_str, key, sizeof key);
    bson_append_document_begin(array, key_str, -1, &doc);
    bson_snprintf(ns, sizeof ns, "%s.%s", it->db, it->coll);
    BSON_APPEND_UTF8(&doc, "namespace", ns);
    append_index_keys(&doc, "index", &it->index);
    BSON_APPEND_UTF8(&doc, "name", it->index.name);
    BSON_APPEND_UTF8(&doc, "reason", advice_reason_name(it->reason));
    BSON_APPEND_UTF8(&doc, "evidence", advice_evidence_name(it->evidence));
    BSON_APPEND_INT64(&doc, "queries", (int64_t)it->queries);
    BSON_APPEND_DOUBLE(&doc, "server_ms", it->server_ms);
    BSON_APPEND_INT64(&doc, "documents", it->documents);
    bson_append_array_begin(&doc, "shapes", -1, &shapes);
    for (uint32_t s = 0; s < it->n_shapes; s++) {
        bson_uint32_to_string(s, &key_str, key, sizeof key);
        BSON_APPEND_UTF8(&shapes, key_str, it->shapes[s]);
    }
    bson_append_array_end(&doc, &shapes);
    BSON_APPEND_UTF8(&doc, "mongosh", it->mongosh);
    BSON_APPEND_UTF8(&doc, "mongoose", it->mongoose);
    bson_append_document_end(array, &doc);
}

static void
append_advisor(bson_t *parent, const struct proxy_advice *a)
{
    const struct advice_report *r = a->report;
    bson_t doc;

    BSON_APPEND_DOCUMENT_BEGIN(parent, "advisor", &doc);
    BSON_APPEND_UTF8(&doc, "state", advice_state_name(r ? r->state : ADVICE_STATE_STARTING));
    if (r && r->last_run_ms) {
        char when[40];
        time_t secs = (time_t)(r->last_run_ms / 1000);
        struct tm tm;
        size_t n;

        gmtime_r(&secs, &tm);
        n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        bson_snprintf(when + n, sizeof when - n, ".%03dZ", (int)(r->last_run_ms % 1000));
        BSON_APPEND_UTF8(&doc, "last_run", when);
    } else {
        BSON_APPEND_NULL(&doc, "last_run");
    }
    BSON_APPEND_INT64(&doc, "runs", r ? (int64_t)r->runs : 0);
    BSON_APPEND_INT64(&doc, "errors", r ? (int64_t)r->errors : 0);
    if (r && r->last_error)
        BSON_APPEND_UTF8(&doc, "last_error", r->last_error);
    BSON_APPEND_INT64(&doc, "retry_in_ms", r ? r->retry_in_ms : 0);
    BSON_APPEND_INT64(&doc, "explains", r ? (int64_t)r->explains : 0);
    BSON_APPEND_INT64(&doc, "list_indexes", r ? (int64_t)r->list_indexes : 0);
    BSON_APPEND_INT64(&doc, "shapes", (int64_t)advice_table_count(a->table));
    BSON_APPEND_INT64(&doc, "shapes_evicted", (int64_t)advice_table_evicted(a->table));
    bson_append_document_end(parent, &doc);
}

static void
add_json(struct evbuffer *out, const bson_t *doc)
{
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);

    if (json)
        evbuffer_add(out, json, len);
    bson_free(json);
    evbuffer_add(out, "\n", 1);
}

void
proxy_advice_json(struct proxy_advice *a, struct evbuffer *out)
{
    bson_t doc = BSON_INITIALIZER, items, redundant;
    char key[16];
    const char *key_str;

    if (!a) {
        evbuffer_add_printf(out, "{\"advice\": [], \"redundant\": [], "
                                 "\"advisor\": {\"state\": \"off\"}}\n");
        return;
    }
    bson_append_array_begin(&doc, "advice", -1, &items);
    for (uint32_t i = 0; a->report && i < a->report->n_items; i++)
        append_item(&items, i, &a->report->items[i]);
    bson_append_array_end(&doc, &items);
    bson_append_array_begin(&doc, "redundant", -1, &redundant);
    for (uint32_t i = 0; a->report && i < a->report->n_redundant; i++) {
        const struct advice_redundant *r = &a->report->redundant[i];
        bson_t one;
        char ns[512];

        bson_uint32_to_string(i, &key_str, key, sizeof key);
        bson_append_document_begin(&redundant, key_str, -1, &one);
        bson_snprintf(ns, sizeof ns, "%s.%s", r->db, r->coll);
        BSON_APPEND_UTF8(&one, "namespace", ns);
        BSON_APPEND_UTF8(&one, "index", r->index);
        BSON_APPEND_UTF8(&one, "covered_by", r->covered_by);
        bson_append_document_end(&redundant, &one);
    }
    bson_append_array_end(&doc, &redundant);
    append_advisor(&doc, a);
    add_json(out, &doc);
    bson_destroy(&doc);
}

uint64_t
proxy_advice_stat(const struct proxy_advice *a, enum proxy_advice_stat id)
{
    if (!a)
        return 0;
    switch (id) {
    case PROXY_ADVICE_STAT_open:
        return a->report ? a->report->n_items : 0;
    case PROXY_ADVICE_STAT_redundant:
        return a->report ? a->report->n_redundant : 0;
    case PROXY_ADVICE_STAT_shapes:
        return (uint64_t)advice_table_count(a->table);
    case PROXY_ADVICE_STAT_sampling_one_in:
        return a->sampler.k;
    case PROXY_ADVICE_STAT_requests_not_sampled:
        return a->sampler.skipped;
    case PROXY_ADVICE_STAT_COUNT:
        break;
    }
    return 0;
}

void
proxy_advice_stats_bson(struct proxy_advice *a, bson_t *doc)
{
    bson_t sub;

    BSON_APPEND_DOCUMENT_BEGIN(doc, "advice", &sub);
    BSON_APPEND_BOOL(&sub, "enabled", a != NULL);
    if (!a) {
        BSON_APPEND_INT64(&sub, "open", 0);
        bson_append_document_end(doc, &sub);
        return;
    }
#define STAT_ADVICE(name, kind, unit, prom, help)                                                  \
    BSON_APPEND_INT64(&sub, #name, (int64_t)proxy_advice_stat(a, PROXY_ADVICE_STAT_##name));       \
    if (PROXY_ADVICE_STAT_##name == PROXY_ADVICE_STAT_shapes)                                      \
        BSON_APPEND_UTF8(&sub, "state",                                                            \
                         advice_state_name(a->report ? a->report->state : ADVICE_STATE_STARTING));
#include "conf/counters.def"
    bson_append_document_end(doc, &sub);
}
