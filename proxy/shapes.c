/*
 * proxy/shapes.c: owns GET /shapes (see shapes.h): reading its query
 * parameters, ordering the shape table's entries (advice_table_top), and
 * writing each one's figures as JSON built with libbson. Whether advice
 * exists for a shape is read from the advisor's latest report: an advice
 * item lists the display text of every shape it serves, which is compared
 * with the shape's own. It does not count anything (advice/table.c does,
 * fed by proxy/advice.c) and never shows a value, a query or a principal.
 *
 * Bounded: at most PROXY_SHAPES_LIMIT_MAX shapes, each text at most
 * PROXY_SHAPES_TEXT_MAX bytes; one sort of the table (at most its 4,096
 * entries) per request, on the loop thread.
 */
#include "config.h"

#include "proxy/shapes.h"

#include "advice/advisor.h"
#include "advice/shape.h"
#include "advice/table.h"
#include "conf/clock.h"
#include "proxy/advice.h"
#include "proxy/http.h"
#include "proxy/server.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
send_error(struct evhttp_request *req, int code, const char *reason, const char *why)
{
    bson_t doc = BSON_INITIALIZER;

    BSON_APPEND_UTF8(&doc, "error", why);
    proxy_http_send_bson(req, code, reason, &doc);
    bson_destroy(&doc);
}

static const char *const order_names[] = {"count", "server_time", "hit_ratio"};

/* Reads sort= and limit=; false (and req answered) when one is not understood. */
static bool
read_params(struct evhttp_request *req, enum advice_table_order *order, uint32_t *limit)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    struct evkeyval *kv;
    bool ok = true;

    *order = ADVICE_TABLE_BY_COUNT;
    *limit = PROXY_SHAPES_LIMIT_DEFAULT;
    if (query == NULL)
        return true;
    if (strstr(query, "%00") != NULL) {
        /* decoded, it would cut a value short ("limit=1%00x" read as "1") */
        send_error(req, 400, "Bad Request", "the query string holds a NUL byte (%00)");
        return false;
    }
    TAILQ_INIT(&params);
    if (evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        send_error(req, 400, "Bad Request", "the query string does not parse");
        return false;
    }
    TAILQ_FOREACH(kv, &params, next)
    {
        if (strcmp(kv->key, "sort") == 0) {
            size_t i;

            for (i = 0; i < 3 && strcmp(kv->value, order_names[i]) != 0; i++)
                ;
            if (i == 3) {
                send_error(req, 400, "Bad Request", "sort is one of count, server_time, hit_ratio");
                ok = false;
                break;
            }
            *order = (enum advice_table_order)i;
        } else if (strcmp(kv->key, "limit") == 0) {
            char *end;
            long v = strtol(kv->value, &end, 10);

            if (kv->value[0] == '\0' || *end != '\0' || v < 1 || v > PROXY_SHAPES_LIMIT_MAX) {
                send_error(req, 400, "Bad Request", "limit is a number from 1 to 100");
                ok = false;
                break;
            }
            *limit = (uint32_t)v;
        } else {
            send_error(req, 400, "Bad Request", "the parameters are sort and limit");
            ok = false;
            break;
        }
    }
    evhttp_clear_headers(&params);
    return ok;
}

/* The advice item that serves this shape text on db.coll, or NULL. */
static const struct advice_item *
advice_for(const struct advice_report *report, const struct advice_shape *shape, const char *text)
{
    for (uint32_t i = 0; report && i < report->n_items; i++) {
        const struct advice_item *it = &report->items[i];

        if (strcmp(it->db, shape->db) != 0 || strcmp(it->coll, shape->coll) != 0)
            continue;
        for (uint32_t s = 0; s < it->n_shapes; s++)
            if (strcmp(it->shapes[s], text) == 0)
                return it;
    }
    return NULL;
}

/* text cut to PROXY_SHAPES_TEXT_MAX bytes at a UTF-8 character boundary. */
static void
append_text(bson_t *doc, const char *text)
{
    size_t len = strlen(text);
    char *cut;

    if (len <= PROXY_SHAPES_TEXT_MAX) {
        BSON_APPEND_UTF8(doc, "shape", text);
        return;
    }
    len = PROXY_SHAPES_TEXT_MAX;
    while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
        len--;
    cut = bson_strdup_printf("%.*s (cut)", (int)len, text);
    BSON_APPEND_UTF8(doc, "shape", cut);
    bson_free(cut);
}

static void
append_time(bson_t *doc, const char *key, int64_t wall_ms)
{
    char when[40];
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    size_t n;

    gmtime_r(&secs, &tm);
    n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    bson_snprintf(when + n, sizeof when - n, ".%03dZ", (int)(wall_ms % 1000));
    BSON_APPEND_UTF8(doc, key, when);
}

static void
append_row(bson_t *array, uint32_t i, const struct advice_table_row *r,
           const struct advice_report *report, int64_t mono_now, int64_t wall_now)
{
    const struct advice_item *it;
    char key[16], id[17], ns[512];
    const char *key_str;
    char *text = advice_shape_display(r->shape);
    bson_t doc;

    bson_uint32_to_string(i, &key_str, key, sizeof key);
    bson_append_document_begin(array, key_str, -1, &doc);
    bson_snprintf(id, sizeof id, "%016llx", (unsigned long long)r->shape->hash);
    BSON_APPEND_UTF8(&doc, "id", id);
    bson_snprintf(ns, sizeof ns, "%s.%s", r->shape->db, r->shape->coll);
    BSON_APPEND_UTF8(&doc, "namespace", ns);
    append_text(&doc, text);
    BSON_APPEND_INT64(&doc, "count", (int64_t)r->queries);
    BSON_APPEND_INT64(&doc, "hits", (int64_t)r->hits);
    BSON_APPEND_DOUBLE(&doc, "hit_ratio", r->hit_ratio);
    BSON_APPEND_DOUBLE(&doc, "server_ms_sum", r->server_ms);
    BSON_APPEND_DOUBLE(&doc, "server_ms_max", r->server_ms_max);
    BSON_APPEND_DOUBLE(&doc, "p50_ms", r->p50_ms);
    BSON_APPEND_DOUBLE(&doc, "p99_ms", r->p99_ms);
    BSON_APPEND_INT64(&doc, "documents", (int64_t)r->documents);
    append_time(&doc, "last_seen", wall_now - (mono_now - r->last_seen_ms));
    it = advice_for(report, r->shape, text);
    BSON_APPEND_BOOL(&doc, "advice", it != NULL);
    if (it)
        BSON_APPEND_UTF8(&doc, "advice_index", it->index.name);
    bson_append_document_end(array, &doc);
    bson_free(text);
}

void
proxy_shapes_http(struct evhttp_request *req, void *arg)
{
    struct proxy_server *server = arg;
    struct advice_table_row rows[PROXY_SHAPES_LIMIT_MAX];
    enum advice_table_order order;
    const struct advice_report *report;
    struct advice_table *table;
    uint32_t limit, n;
    bson_t doc = BSON_INITIALIZER, shapes;
    int64_t mono_now, wall_now;

    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        send_error(req, 501, "Not Implemented", "this route takes GET only");
        bson_destroy(&doc);
        return;
    }
    if (!proxy_http_authorized(server, req)) {
        send_error(req, 401, "Unauthorized", "unauthorized");
        bson_destroy(&doc);
        return;
    }
    if (server->advice == NULL) {
        BSON_APPEND_UTF8(&doc, "error",
                         "no shape table: index advice is off (advice = off); turn it on to "
                         "count query shapes");
        BSON_APPEND_BOOL(&doc, "advice", false);
        proxy_http_send_bson(req, 404, "Not Found", &doc);
        bson_destroy(&doc);
        return;
    }
    if (!read_params(req, &order, &limit)) {
        bson_destroy(&doc);
        return;
    }
    table = proxy_advice_table(server->advice);
    report = proxy_advice_report(server->advice);
    n = advice_table_top(table, order, rows, limit);
    mono_now = conf_clock_ms();
    wall_now = conf_clock_wall_ms();
    BSON_APPEND_UTF8(&doc, "sort", order_names[order]);
    BSON_APPEND_INT32(&doc, "limit", (int32_t)limit);
    BSON_APPEND_INT64(&doc, "shapes_held", (int64_t)advice_table_count(table));
    BSON_APPEND_INT64(&doc, "shapes_evicted", (int64_t)advice_table_evicted(table));
    BSON_APPEND_UTF8(&doc, "advisor_state",
                     advice_state_name(report ? report->state : ADVICE_STATE_STARTING));
    bson_append_array_begin(&doc, "shapes", -1, &shapes);
    for (uint32_t i = 0; i < n; i++)
        append_row(&shapes, i, &rows[i], report, mono_now, wall_now);
    bson_append_array_end(&doc, &shapes);
    proxy_http_send_bson(req, 200, "OK", &doc);
    bson_destroy(&doc);
}
