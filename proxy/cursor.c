/*
 * proxy/cursor.c: the proxy's own cursors (see cursor.h). Owns the table
 * of open cursors (id -> result, position, owner), batch building, and the
 * replies to getMore and killCursors for those ids. Draining the server's
 * cursor is client.c's; storing results is the cache's. Cursors idle for
 * ten minutes are dropped, as the server drops its own.
 */
#include "proxy/cursor.h"

#include "cache/cache.h"
#include "wire/reply.h"

#include <event2/event.h>
#include <string.h>
#include <time.h>

#define BUCKETS 4096
#define IDLE_LIMIT_SECONDS 600
#define MAX_CURSORS 100000
/* Proxy cursor ids start with these bits: easy to tell apart in logs. */
#define ID_TAG (INT64_C(0x4d43) << 48)

struct proxy_cursor {
    struct proxy_cursor *next; /* hash chain */
    int64_t id;
    struct cache_value *value; /* one reference */
    uint32_t position;         /* next document to send */
    int64_t upstream_id;       /* the server's cursor after the drained part, or 0 */
    char *principal;
    time_t last_used;
};

struct proxy_cursors {
    struct proxy_cursor *buckets[BUCKETS];
    size_t count;
    uint64_t next_id;
    struct event *sweep;
    size_t max_batch_bytes; /* at most PROXY_CURSOR_MAX_BATCH_BYTES */
};

static struct proxy_cursor **
slot(struct proxy_cursors *t, int64_t id)
{
    return &t->buckets[(uint64_t)id % BUCKETS];
}

static struct proxy_cursor *
find(struct proxy_cursors *t, int64_t id)
{
    for (struct proxy_cursor *c = *slot(t, id); c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void
drop(struct proxy_cursors *t, struct proxy_cursor *c)
{
    struct proxy_cursor **link = slot(t, c->id);

    while (*link != c)
        link = &(*link)->next;
    *link = c->next;
    cache_value_unref(c->value);
    bson_free(c->principal);
    bson_free(c);
    t->count--;
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_cursors *t = arg;
    time_t limit = time(NULL) - IDLE_LIMIT_SECONDS;

    (void)fd;
    (void)what;
    for (size_t i = 0; i < BUCKETS; i++) {
        struct proxy_cursor *c = t->buckets[i];

        while (c) {
            struct proxy_cursor *next = c->next;

            if (c->last_used < limit)
                drop(t, c);
            c = next;
        }
    }
}

struct proxy_cursors *
proxy_cursors_new(struct event_base *base)
{
    struct proxy_cursors *t = bson_malloc0(sizeof *t);
    struct timeval every = {30, 0};

    t->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, t);
    evtimer_add(t->sweep, &every);
    t->max_batch_bytes = PROXY_CURSOR_MAX_BATCH_BYTES;
    return t;
}

void
proxy_cursors_set_max_batch_bytes(struct proxy_cursors *t, size_t bytes)
{
    t->max_batch_bytes = bytes < PROXY_CURSOR_MAX_BATCH_BYTES ? bytes
                                                              : PROXY_CURSOR_MAX_BATCH_BYTES;
}

void
proxy_cursors_destroy(struct proxy_cursors *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < BUCKETS; i++)
        while (t->buckets[i])
            drop(t, t->buckets[i]);
    if (t->sweep)
        event_free(t->sweep);
    bson_free(t);
}

size_t
proxy_cursor_count(const struct proxy_cursors *t)
{
    return t->count;
}

static struct proxy_cursor *
open_cursor(struct proxy_cursors *t, struct cache_value *value, uint32_t position,
            int64_t upstream_id, const char *principal)
{
    struct proxy_cursor *c = bson_malloc0(sizeof *c);
    struct proxy_cursor **head;

    if (t->count >= MAX_CURSORS)
        sweep_cb(-1, 0, t);
    do
        c->id = ID_TAG | (int64_t)(++t->next_id & UINT64_C(0xffffffffffff));
    while (find(t, c->id));
    cache_value_ref(value);
    c->value = value;
    c->position = position;
    c->upstream_id = upstream_id;
    c->principal = bson_strdup(principal);
    c->last_used = time(NULL);
    head = slot(t, c->id);
    c->next = *head;
    *head = c;
    t->count++;
    return c;
}

/* An array entry's bytes besides its document: type, decimal index (uint32), NUL. */
#define ENTRY_OVERHEAD 12

/*
 * How many documents from position the next batch holds: at most `limit`
 * (all when < 0) and max_bytes of them with their array entries (but at
 * least one).
 */
static uint32_t
batch_count(struct cache_value *value, uint32_t position, int64_t limit, size_t max_bytes)
{
    uint32_t n = cache_value_n_docs(value);
    uint32_t k = 0;
    size_t bytes = 0;

    while (position + k < n && (limit < 0 || (int64_t)k < limit)) {
        uint32_t len;

        (void)cache_value_doc(value, position + k, &len);
        if (k > 0 && bytes + len + ENTRY_OVERHEAD > max_bytes)
            break;
        bytes += len + ENTRY_OVERHEAD;
        k++;
    }
    return k;
}

/* Appends {cursor: {<field>: [k documents from position], id, ns}, ok: 1} to body. */
static void
batch_body(bson_t *body, struct cache_value *value, uint32_t position, uint32_t k,
           const char *field, int64_t id)
{
    bson_t cursor, batch;
    char key[16];
    const char *key_str;

    BSON_APPEND_DOCUMENT_BEGIN(body, "cursor", &cursor);
    bson_append_array_begin(&cursor, field, -1, &batch);
    for (uint32_t i = 0; i < k; i++) {
        uint32_t len;
        const uint8_t *doc = cache_value_doc(value, position + i, &len);
        bson_t d;

        bson_uint32_to_string(i, &key_str, key, sizeof key);
        if (bson_init_static(&d, doc, len))
            bson_append_document(&batch, key_str, -1, &d);
    }
    bson_append_array_end(&cursor, &batch);
    BSON_APPEND_INT64(&cursor, "id", id);
    BSON_APPEND_UTF8(&cursor, "ns", cache_value_ns(value));
    bson_append_document_end(body, &cursor);
    BSON_APPEND_DOUBLE(body, "ok", 1.0);
}

/*
 * Like the server, a batch that was filled to its batchSize leaves the
 * cursor open even when nothing remains; the next getMore then ends it.
 */
static bool
stays_open(uint32_t position, uint32_t k, uint32_t n, int64_t limit)
{
    return position + k < n || (limit > 0 && (int64_t)k == limit);
}

uint8_t *
proxy_cursor_first(struct proxy_cursors *t, struct cache_value *value, int64_t batch_size,
                   int64_t upstream_id, const char *principal, int32_t request_id,
                   int32_t response_to, size_t *len)
{
    bson_t body = BSON_INITIALIZER;
    uint32_t n = cache_value_n_docs(value);
    int64_t limit = batch_size < 0 ? PROXY_CURSOR_DEFAULT_FIRST_BATCH : batch_size;
    uint32_t k = batch_count(value, 0, limit, t->max_batch_bytes);
    int64_t id = 0;
    uint8_t *bytes;

    if (k == n && upstream_id != 0)
        id = upstream_id; /* the drained part fits: straight on to the server's cursor */
    else if (stays_open(0, k, n, limit) || upstream_id != 0)
        id = open_cursor(t, value, k, upstream_id, principal)->id;
    batch_body(&body, value, 0, k, "firstBatch", id);
    bytes = wire_reply_msg(request_id, response_to, &body, len);
    bson_destroy(&body);
    return bytes;
}

static int64_t
as_int64(const bson_iter_t *it, bool *ok)
{
    *ok = true;
    if (BSON_ITER_HOLDS_INT64(it))
        return bson_iter_int64(it);
    if (BSON_ITER_HOLDS_INT32(it))
        return bson_iter_int32(it);
    *ok = false;
    return 0;
}

static uint8_t *
error_reply(int32_t request_id, int32_t response_to, int32_t code, const char *name,
            const char *msg, size_t *len)
{
    bson_t body = BSON_INITIALIZER;
    uint8_t *bytes;

    wire_reply_error_body(&body, code, name, msg);
    bytes = wire_reply_msg(request_id, response_to, &body, len);
    bson_destroy(&body);
    return bytes;
}

uint8_t *
proxy_cursor_get_more(struct proxy_cursors *t, const bson_t *cmd, const char *principal,
                      int32_t request_id, int32_t response_to, size_t *len)
{
    bson_iter_t it;
    struct proxy_cursor *c;
    int64_t id, batch = -1;
    uint32_t n, k;
    bool ok;
    bson_t body = BSON_INITIALIZER;
    uint8_t *bytes;
    char msg[128];

    if (!bson_iter_init(&it, cmd) || !bson_iter_next(&it))
        return NULL;
    id = as_int64(&it, &ok);
    if (!ok || !(c = find(t, id)))
        return NULL;
    if (!principal || strcmp(principal, c->principal) != 0) {
        snprintf(msg, sizeof msg, "cursor id %lld belongs to a different user",
                 (long long)id);
        return error_reply(request_id, response_to, 13, "Unauthorized", msg, len);
    }
    if (bson_iter_init_find(&it, cmd, "batchSize")) {
        batch = as_int64(&it, &ok);
        if (!ok || batch <= 0)
            batch = -1;
    }
    c->last_used = time(NULL);
    n = cache_value_n_docs(c->value);
    k = batch_count(c->value, c->position, batch, t->max_batch_bytes);
    if (stays_open(c->position, k, n, batch) && !(c->position + k >= n && c->upstream_id))
        id = c->id;
    else
        id = c->upstream_id; /* the end, or on to the server's cursor */
    batch_body(&body, c->value, c->position, k, "nextBatch", id);
    c->position += k;
    if (id != c->id)
        drop(t, c);
    bytes = wire_reply_msg(request_id, response_to, &body, len);
    bson_destroy(&body);
    return bytes;
}

uint8_t *
proxy_cursor_kill(struct proxy_cursors *t, const bson_t *cmd, const char *principal,
                  int32_t request_id, int32_t response_to, size_t *len)
{
    bson_iter_t it, ids;
    bson_t body = BSON_INITIALIZER, killed, not_found, empty;
    bool all_ours = true, any = false, ok;
    uint32_t n_killed = 0;
    char key[16];
    const char *key_str;
    uint8_t *bytes;

    if (!bson_iter_init_find(&it, cmd, "cursors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &ids))
        return NULL;
    bson_append_array_begin(&body, "cursorsKilled", -1, &killed);
    while (bson_iter_next(&ids)) {
        int64_t id = as_int64(&ids, &ok);
        struct proxy_cursor *c = ok ? find(t, id) : NULL;

        any = true;
        if (!c) {
            all_ours = false;
            continue;
        }
        if (!principal || strcmp(principal, c->principal) != 0)
            continue; /* listed as not found below */
        drop(t, c);
        bson_uint32_to_string(n_killed++, &key_str, key, sizeof key);
        BSON_APPEND_INT64(&killed, key_str, id);
    }
    bson_append_array_end(&body, &killed);
    if (!any || !all_ours) {
        bson_destroy(&body);
        return NULL;
    }
    /* Another user's cursors are reported as not found, as the server would. */
    bson_append_array_begin(&body, "cursorsNotFound", -1, &not_found);
    if (bson_iter_init_find(&it, cmd, "cursors") && bson_iter_recurse(&it, &ids)) {
        uint32_t k = 0;

        while (bson_iter_next(&ids)) {
            int64_t id = as_int64(&ids, &ok);
            struct proxy_cursor *c = ok ? find(t, id) : NULL;

            if (c) {
                bson_uint32_to_string(k++, &key_str, key, sizeof key);
                BSON_APPEND_INT64(&not_found, key_str, id);
            }
        }
    }
    bson_append_array_end(&body, &not_found);
    bson_append_array_begin(&body, "cursorsAlive", -1, &empty);
    bson_append_array_end(&body, &empty);
    bson_append_array_begin(&body, "cursorsUnknown", -1, &empty);
    bson_append_array_end(&body, &empty);
    BSON_APPEND_DOUBLE(&body, "ok", 1.0);
    bytes = wire_reply_msg(request_id, response_to, &body, len);
    bson_destroy(&body);
    return bytes;
}

int64_t
proxy_cursor_requested_batch(const bson_t *cmd)
{
    bson_iter_t it, sub;
    bool ok;
    int64_t v;

    if (bson_iter_init_find(&it, cmd, "batchSize")) {
        v = as_int64(&it, &ok);
        return ok && v >= 0 ? v : -1;
    }
    if (bson_iter_init_find(&it, cmd, "cursor") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &sub) && bson_iter_find(&sub, "batchSize")) {
        v = as_int64(&sub, &ok);
        return ok && v >= 0 ? v : -1;
    }
    return -1;
}
