/*
 * proxy/drain.c: a cacheable read answered with an open cursor. The proxy
 * reads the cursor to its end itself, with getMore on the client's own
 * upstream connection (the client's later requests wait), stores the whole
 * result and answers the client from a cursor of its own (proxy/cursor.h).
 *
 * Owns: filling the drain state of one request (struct proxy_drain; freed
 * by request.c when the request leaves DRAINING) and the getMores it sends.
 * Tells client.c the drain is over by proxy_drain_step's result, never by a
 * call. Does not own checking the upstream's replies or relaying them
 * (client.c), nor the cache lookup that made the request a miss (lookup.c).
 */
#include "proxy/drain.h"

#include "cache/cache.h"
#include "conf/clock.h"
#include "conf/log.h"
#include "proxy/client_internal.h"
#include "proxy/server.h"
#include "proxy/upstream.h"
#include "wire/reply.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The requestID the upstream's next reply for req answers. */
int32_t
proxy_drain_expected_id(const struct proxy_request *req)
{
    return req->state == PROXY_REQUEST_DRAINING ? req->drain->expect : req->request_id;
}

/*
 * True when reply is ok:1 with a cursor whose id is not 0; sets the id, the
 * batch array (firstBatch or nextBatch) and the namespace when asked.
 */
bool
proxy_drain_open_cursor(const bson_t *reply, int64_t *id, bson_iter_t *batch, const char **ns)
{
    bson_iter_t it, cursor;
    int64_t cid = 0;
    bool have_batch = false;
    const char *cns = NULL;

    if (!bson_iter_init_find(&it, reply, "ok") || bson_iter_as_double(&it) != 1.0)
        return false;
    if (!bson_iter_init_find(&it, reply, "cursor") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &cursor))
        return false;
    while (bson_iter_next(&cursor)) {
        const char *key = bson_iter_key(&cursor);

        if (strcmp(key, "id") == 0 && BSON_ITER_HOLDS_INT64(&cursor))
            cid = bson_iter_int64(&cursor);
        else if (strcmp(key, "id") == 0 && BSON_ITER_HOLDS_INT32(&cursor))
            cid = bson_iter_int32(&cursor);
        else if ((strcmp(key, "firstBatch") == 0 || strcmp(key, "nextBatch") == 0) &&
                 BSON_ITER_HOLDS_ARRAY(&cursor)) {
            have_batch = true;
            if (batch)
                *batch = cursor;
        } else if (strcmp(key, "ns") == 0 && BSON_ITER_HOLDS_UTF8(&cursor)) {
            cns = bson_iter_utf8(&cursor, NULL);
        }
    }
    if (!have_batch || !cns || !strchr(cns, '.'))
        return false;
    if (id)
        *id = cid;
    if (ns)
        *ns = cns;
    return id ? true : cid != 0;
}

/* Asks the upstream for the next batch of the cursor being drained. */
static void
send_get_more(struct proxy_client *c, struct proxy_request *req)
{
    struct proxy_drain *d = req->drain;
    const char *dot = strchr(d->ns, '.');
    bson_t body = BSON_INITIALIZER, lsid;
    uint8_t *bytes;
    size_t len;
    char db[256];

    snprintf(db, sizeof db, "%.*s", (int)(dot - d->ns), d->ns);
    BSON_APPEND_INT64(&body, "getMore", d->upstream_id);
    BSON_APPEND_UTF8(&body, "collection", dot + 1);
    BSON_APPEND_UTF8(&body, "$db", db);
    if (req->lsid && bson_init_static(&lsid, req->lsid, req->lsid_len))
        BSON_APPEND_DOCUMENT(&body, "lsid", &lsid);
    d->expect = proxy_server_reply_id(c->server); /* unique per connection is all it needs */
    bytes = wire_reply_msg(d->expect, 0, &body, &len);
    bson_destroy(&body);
    evbuffer_add(c->scratch, bytes, len);
    proxy_upstream_send(c->up, c->scratch);
    bson_free(bytes);
    if (req->started_us)
        req->upstream_us = conf_clock_us(); /* each getMore's round trip is counted */
}

/*
 * The drain is over: the client gets the result from a proxy cursor. When
 * the server's cursor is still open (too large to keep, or the server
 * stopped answering with a batch), the client is handed over to it after
 * the drained part. Only a complete result is stored.
 */
static void
drain_finish(struct proxy_client *c, struct proxy_request *req, int64_t upstream_id)
{
    struct proxy_drain *d = req->drain;
    struct cache_value *value;

    value = cache_store_docs(c->server->cache, req->miss, d->docs.data, d->docs.len, d->docs.n,
                             d->ns,
                             upstream_id == 0);
    conf_log(CONF_LOG_DEBUG, c->id, "cursor_drained", "ns=%s docs=%u bytes=%zu complete=%d",
             d->ns, d->docs.n, d->docs.len, upstream_id == 0);
    proxy_request_set_state(req, PROXY_REQUEST_READY); /* frees the drain */
    if (value) {
        /* Served like a hit of the stored result (proxy_lookup_write_hit). */
        req->hit = value;
        req->cursor_upstream_id = upstream_id;
    } else {
        req->canned = proxy_request_make_error(c->server, req->request_id, false,
                                              WIRE_CODE_PROTOCOL_ERROR, "ProtocolError",
                                              "mongocache: inconsistent cursor batches",
                                              &req->canned_len);
        req->outcome = PROXY_OUTCOME_ERROR;
    }
}

uint32_t
proxy_drain_docs_append(struct proxy_drain_docs *docs, const bson_iter_t *batch)
{
    bson_iter_t it;
    uint32_t n = 0;

    if (!bson_iter_recurse(batch, &it))
        return 0;
    while (bson_iter_next(&it)) {
        const uint8_t *doc;
        uint32_t len;

        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            continue;
        bson_iter_document(&it, &len, &doc);
        if (docs->len + len > docs->cap) {
            docs->cap = (docs->len + len) * 2;
            docs->data = bson_realloc(docs->data, docs->cap);
        }
        memcpy(docs->data + docs->len, doc, len);
        docs->len += len;
        docs->n++;
        n++;
    }
    return n;
}

/*
 * A drain is cut (the client goes on with the server's cursor, nothing is
 * stored) after this many getMores, after this many empty batches in a row
 * (an upstream that never ends its cursor), or once message_timeout has
 * passed since the first batch.
 */
#define DRAIN_MAX_ROUNDS 10000
#define DRAIN_MAX_EMPTY 8

/* True (logged and counted) when the drain has gone on too long to go on. */
static bool
drain_exhausted(struct proxy_client *c, const struct proxy_drain *d)
{
    const char *why = d->rounds >= DRAIN_MAX_ROUNDS       ? "rounds"
                      : d->empty_rounds >= DRAIN_MAX_EMPTY ? "empty_batches"
                      : conf_clock_ms() - d->started_ms > c->server->conf->message_timeout ? "time"
                                                                                      : NULL;

    if (!why)
        return false;
    proxy_stats_add(&c->server->stats, PROXY_STAT_drains_cut, 1);
    conf_log(CONF_LOG_WARN, c->id, "drain_cut",
             "ns=%s why=%s rounds=%u docs=%u msg=\"the upstream did not end its cursor in "
             "time; the client goes on with the server's cursor, nothing is stored\"",
             d->ns, why, d->rounds, d->docs.n);
    return true;
}

/*
 * Takes one batch (the first reply, or a getMore's) of a cursor being
 * drained. True when the drain is over (req READY).
 */
bool
proxy_drain_step(struct proxy_client *c, struct proxy_request *req, const bson_t *reply)
{
    struct proxy_drain *d = req->drain;
    bson_iter_t batch;
    const char *ns;
    int64_t id;
    uint32_t appended;

    if (!proxy_drain_open_cursor(reply, &id, &batch, &ns)) {
        /* An error in the middle: serve what came, then the server's own answer. */
        drain_finish(c, req, d->upstream_id);
        return true;
    }
    if (!d) {
        proxy_request_set_state(req, PROXY_REQUEST_DRAINING);
        d = req->drain = bson_malloc0(sizeof *d);
        d->ns = bson_strdup(ns);
        d->started_ms = conf_clock_ms();
    } else {
        d->rounds++;
    }
    appended = proxy_drain_docs_append(&d->docs, &batch);
    d->upstream_id = id;
    d->empty_rounds = appended == 0 && d->rounds > 0 ? d->empty_rounds + 1 : 0;
    if (id == 0 || d->docs.len > (size_t)c->server->conf->cache_max_entry_bytes || !c->up ||
        drain_exhausted(c, d)) {
        drain_finish(c, req, id);
        return true;
    }
    send_get_more(c, req);
    return false;
}
