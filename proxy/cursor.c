/*
 * proxy/cursor.c: the proxy's own cursors (see cursor.h). Owns the table
 * of open cursors (id -> result, position, owner), batch building, the
 * replies to getMore and killCursors for those ids (asked by lookup.c) and
 * the random ids. Draining the server's cursor is drain.c's; storing
 * results is the cache's; the first batch is written when lookup.c writes
 * a drained result as a hit. Cursors idle for ten minutes are dropped, as
 * the server drops its own; past PROXY_CURSORS_MAX open no more are wanted
 * (proxy_cursor_full).
 *
 * Like mongod's, a cursor can be read only by the principal that opened it,
 * on its own namespace, in its own session; and its id is 63 random bits,
 * so it cannot be guessed by anyone else.
 */
#include "proxy/cursor.h"

#include "cache/cache.h"
#include "conf/random.h"
#include "proxy/io.h"
#include "wire/frame.h"
#include "wire/msg.h"
#include "wire/reply.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>
#include <time.h>

#define BUCKETS 4096
#define IDLE_LIMIT_SECONDS 600

struct proxy_cursor {
    struct proxy_cursor *next; /* hash chain */
    int64_t id;
    struct cache_value *value; /* one reference */
    uint32_t position;         /* next document to send */
    int64_t upstream_id;       /* the server's cursor after the drained part, or 0 */
    char *principal;           /* the owner (cache_key_principal's name), owned */
    uint8_t *lsid;             /* the session it was opened in, or NULL; owned */
    uint32_t lsid_len;
    time_t last_used;
};

struct proxy_cursors {
    struct proxy_cursor *buckets[BUCKETS];
    size_t count;
    struct conf_random_pool random; /* the ids' bits */
    struct event *sweep;
    size_t max_batch_bytes; /* at most PROXY_CURSOR_MAX_BATCH_BYTES */
    size_t *shared;         /* bytes of stored results queued by reference (proxy_io_add_value) */
    time_t full_swept;      /* when proxy_cursor_full last swept a full table */
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
    bson_free(c->lsid);
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
proxy_cursors_new(struct event_base *base, size_t *shared)
{
    struct proxy_cursors *t = bson_malloc0(sizeof *t);
    struct timeval every = {30, 0};

    conf_random_pool_init(&t->random);
    t->shared = shared;
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

bool
proxy_cursor_full(struct proxy_cursors *t)
{
    time_t now;

    if (t->count < PROXY_CURSORS_MAX)
        return false;
    /* A sweep walks every cursor: once a second at most, not per request. */
    now = time(NULL);
    if (now != t->full_swept) {
        t->full_swept = now;
        sweep_cb(-1, 0, t);
    }
    return t->count >= PROXY_CURSORS_MAX;
}

size_t
proxy_cursor_count(const struct proxy_cursors *t)
{
    return t->count;
}

/* A fresh random id: positive, not 0, not in use. */
static int64_t
random_id(struct proxy_cursors *t)
{
    int64_t id;

    do
        id = (int64_t)(conf_random_pool_u64(&t->random) & INT64_MAX);
    while (id == 0 || find(t, id));
    return id;
}

static struct proxy_cursor *
open_cursor(struct proxy_cursors *t, struct cache_value *value, uint32_t position,
            int64_t upstream_id, const struct proxy_cursor_owner *owner)
{
    struct proxy_cursor *c = bson_malloc0(sizeof *c);
    struct proxy_cursor **head;

    c->id = random_id(t);
    cache_value_ref(value);
    c->value = value;
    c->position = position;
    c->upstream_id = upstream_id;
    c->principal = bson_strdup(owner->principal ? owner->principal : "");
    if (owner->lsid) {
        c->lsid = bson_malloc(owner->lsid_len);
        memcpy(c->lsid, owner->lsid, owner->lsid_len);
        c->lsid_len = owner->lsid_len;
    }
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

static uint8_t *
put_i32(uint8_t *p, int32_t v)
{
    wire_frame_write_i32(p, v);
    return p + 4;
}

static uint8_t *
put_bytes(uint8_t *p, const void *data, size_t len)
{
    memcpy(p, data, len);
    return p + len;
}

/*
 * The reply {cursor: {firstBatch: [...], id, ns}, ok: 1} written by hand
 * around the value's first k elements, which go out by reference: pipelined
 * hits of one large result share its bytes instead of copying them.
 */
static size_t
first_reply(struct proxy_cursors *t, struct cache_value *value, uint32_t k, int64_t id,
            int32_t request_id, int32_t response_to, struct evbuffer *out)
{
    static const uint8_t ok_one[] = {0x01, 'o', 'k', 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
    const char *ns = cache_value_ns(value);
    size_t ns_len = strlen(ns) + 1;
    size_t elems_len;
    const uint8_t *elems = cache_value_elements(value, k, &elems_len);
    size_t array_len = 4 + elems_len + 1;
    size_t cursor_len = 4 + (1 + 11 + array_len) + (1 + 3 + 8) + (1 + 3 + 4 + ns_len) + 1;
    size_t body_len = 4 + (1 + 7 + cursor_len) + sizeof ok_one + 1;
    size_t total = WIRE_HEADER_LEN + 4 + 1 + body_len;
    struct wire_header h = {(int32_t)total, request_id, response_to, WIRE_OP_MSG};
    uint8_t head[WIRE_HEADER_LEN + 4 + 1 + 4 + 8 + 4 + 12 + 4];
    uint8_t tail[1 + 1 + 3 + 8 + 1 + 3 + 4 + 1 + sizeof ok_one + 1];
    uint8_t *p = head;
    uint8_t *q = tail;

    wire_frame_put_header(p, &h);
    p += WIRE_HEADER_LEN;
    p = put_i32(p, 0); /* flags */
    *p++ = 0;          /* kind 0: the body */
    p = put_i32(p, (int32_t)body_len);
    p = put_bytes(p, "\x03" "cursor", 8);
    p = put_i32(p, (int32_t)cursor_len);
    p = put_bytes(p, "\x04" "firstBatch", 12);
    p = put_i32(p, (int32_t)array_len);
    evbuffer_add(out, head, (size_t)(p - head));
    proxy_io_add_value(out, value, elems, elems_len, t->shared);
    *q++ = 0; /* the array's end */
    q = put_bytes(q, "\x12" "id", 4);
    wire_frame_write_i64(q, id);
    q += 8;
    q = put_bytes(q, "\x02" "ns", 4);
    q = put_i32(q, (int32_t)ns_len);
    evbuffer_add(out, tail, (size_t)(q - tail));
    evbuffer_add(out, ns, ns_len);
    q = tail;
    *q++ = 0; /* the cursor's end */
    q = put_bytes(q, ok_one, sizeof ok_one);
    *q++ = 0; /* the body's end */
    evbuffer_add(out, tail, (size_t)(q - tail));
    return total;
}

size_t
proxy_cursor_first(struct proxy_cursors *t, struct cache_value *value, int64_t batch_size,
                   int64_t upstream_id, const struct proxy_cursor_owner *owner,
                   int32_t request_id, int32_t response_to, struct evbuffer *out)
{
    uint32_t n = cache_value_n_docs(value);
    int64_t limit = batch_size < 0 ? PROXY_CURSOR_DEFAULT_FIRST_BATCH : batch_size;
    uint32_t k = batch_count(value, 0, limit, t->max_batch_bytes);
    int64_t id = 0;

    if (k == n && upstream_id != 0)
        id = upstream_id; /* the drained part fits: straight on to the server's cursor */
    else if (stays_open(0, k, n, limit) || upstream_id != 0)
        id = open_cursor(t, value, k, upstream_id, owner)->id;
    return first_reply(t, value, k, id, request_id, response_to, out);
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

/* The string value of cmd's field `name` (the collection of getMore / killCursors), or NULL. */
static const char *
utf8_field(const bson_t *cmd, const char *name, bool first)
{
    bson_iter_t it;

    if (first ? !(bson_iter_init(&it, cmd) && bson_iter_next(&it))
              : !bson_iter_init_find(&it, cmd, name))
        return NULL;
    return BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
}

/* True when db.coll names c's namespace. */
static bool
same_ns(const struct proxy_cursor *c, const char *db, const char *coll)
{
    const char *ns = cache_value_ns(c->value);
    size_t db_len = db ? strlen(db) : 0;

    return db && coll && strncmp(ns, db, db_len) == 0 && ns[db_len] == '.' &&
           strcmp(ns + db_len + 1, coll) == 0;
}

static bool
same_owner(const struct proxy_cursor *c, const struct proxy_cursor_owner *owner)
{
    return owner->principal && strcmp(owner->principal, c->principal) == 0;
}

/*
 * Whether owner may getMore c on db.coll: 0, or mongod's error code for the
 * refusal, with its message in msg (checks in mongod's order).
 */
static int32_t
refusal(const struct proxy_cursor *c, const char *db, const char *coll,
        const struct proxy_cursor_owner *owner, char *msg, size_t size, const char **name)
{
    *name = "Unauthorized";
    if (!same_ns(c, db, coll)) {
        snprintf(msg, size, "Requested getMore on namespace '%.200s.%.200s', but cursor "
                 "belongs to a different namespace %.400s", db ? db : "", coll ? coll : "",
                 cache_value_ns(c->value));
        return 13;
    }
    if (!same_owner(c, owner)) {
        snprintf(msg, size, "cursor id %lld was not created by the authenticated user",
                 (long long)c->id);
        return 13;
    }
    *name = "Location";
    if (!c->lsid && owner->lsid) {
        snprintf(msg, size, "Cannot run getMore on cursor %lld, which was not created in a "
                 "session, in a session", (long long)c->id);
        return 50736;
    }
    if (c->lsid && !owner->lsid) {
        snprintf(msg, size, "Cannot run getMore on cursor %lld, which was created in a "
                 "session, without an lsid", (long long)c->id);
        return 50737;
    }
    if (c->lsid && (c->lsid_len != owner->lsid_len ||
                    memcmp(c->lsid, owner->lsid, c->lsid_len) != 0)) {
        snprintf(msg, size, "Cannot run getMore on cursor %lld, which was created in another "
                 "session", (long long)c->id);
        return 50738;
    }
    return 0;
}

uint8_t *
proxy_cursor_get_more(struct proxy_cursors *t, const bson_t *cmd, const char *db,
                      const struct proxy_cursor_owner *owner, int32_t request_id,
                      int32_t response_to, size_t *len)
{
    bson_iter_t it;
    struct proxy_cursor *c;
    int64_t id, batch = -1;
    uint32_t n, k;
    int32_t code;
    bool ok;
    bson_t body = BSON_INITIALIZER;
    uint8_t *bytes;
    const char *code_name;
    char msg[1024];

    if (!bson_iter_init(&it, cmd) || !bson_iter_next(&it))
        return NULL;
    id = as_int64(&it, &ok);
    if (!ok || !(c = find(t, id)))
        return NULL;
    code = refusal(c, db, utf8_field(cmd, "collection", false), owner, msg, sizeof msg,
                   &code_name);
    if (code != 0) {
        bson_destroy(&body);
        return error_reply(request_id, response_to, code, code_name, msg, len);
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
proxy_cursor_kill(struct proxy_cursors *t, const bson_t *cmd, const char *db,
                  const struct proxy_cursor_owner *owner, int32_t request_id,
                  int32_t response_to, size_t *len)
{
    const char *coll = utf8_field(cmd, NULL, true);
    bson_iter_t it, ids;
    bson_t body = BSON_INITIALIZER, killed, not_found, empty;
    bool all_ours = true, any = false, ok;
    uint32_t n_killed = 0;
    char key[16];
    const char *key_str;
    uint8_t *bytes;

    if (!bson_iter_init_find(&it, cmd, "cursors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &ids)) {
        bson_destroy(&body);
        return NULL;
    }
    bson_append_array_begin(&body, "cursorsKilled", -1, &killed);
    while (bson_iter_next(&ids)) {
        int64_t id = as_int64(&ids, &ok);
        struct proxy_cursor *c = ok ? find(t, id) : NULL;

        any = true;
        if (!c) {
            all_ours = false;
            continue;
        }
        if (!same_owner(c, owner) || !same_ns(c, db, coll))
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
    /* Another user's or namespace's cursors are reported as not found, as the server would. */
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
proxy_cursor_requested_batch(const bson_t *body, const struct wire_cmd *cmd)
{
    struct wire_cmd_walk walk;
    struct wire_cmd_elem e, cursor;
    bool have_cursor = false;
    bson_iter_t it, sub;
    bool ok;
    int64_t v;

    /* The first top-level batchSize (find), else the first cursor's (aggregate). */
    wire_cmd_walk_init(&walk, cmd, bson_get_data(body), body->len);
    while (wire_cmd_walk_next(&walk, &e)) {
        if (e.id == WIRE_NAME_BATCH_SIZE) {
            if (!wire_cmd_elem_iter(&e, &it))
                return -1;
            v = as_int64(&it, &ok);
            return ok && v >= 0 ? v : -1;
        }
        if (e.id == WIRE_NAME_CURSOR && !have_cursor) {
            cursor = e;
            have_cursor = true;
        }
    }
    if (have_cursor && cursor.type == BSON_TYPE_DOCUMENT && wire_cmd_elem_iter(&cursor, &it) &&
        bson_iter_recurse(&it, &sub) && bson_iter_find(&sub, "batchSize")) {
        v = as_int64(&sub, &ok);
        return ok && v >= 0 ? v : -1;
    }
    return -1;
}
