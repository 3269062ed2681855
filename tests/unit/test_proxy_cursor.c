/*
 * tests/unit/test_proxy_cursor.c: the proxy's own cursors. A drained result
 * is served in batches the way the server serves them: firstBatch of
 * batchSize (101 by default), getMore batches of the getMore's batchSize,
 * the cursor left open when a batch is filled exactly, handed over to the
 * server's cursor after a partial drain, killable, and only by its owner.
 */
#include "cache/cache.h"
#include "conf/conf.h"
#include "proxy/cursor.h"
#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "wire/msg.h"

#include <event2/event.h>
#include <string.h>

struct fixture {
    struct event_base *base;
    struct conf *conf;
    struct cache *cache;
    struct proxy_cursors *cursors;
};

/* A stored result of n documents {_id: i}, as a drain would produce it. */
static struct cache_value *
result(struct fixture *f, const char *coll, uint32_t n, bool complete)
{
    char text[128];
    bson_t *cmd;
    struct cache_request req = {NULL, NULL, "d", 0, ""};
    struct cache_pending pending;
    struct cache_value *hit, *v;
    struct cache_wait *wait;
    bson_t docs = BSON_INITIALIZER;
    uint8_t *buf = NULL;
    size_t len = 0;

    snprintf(text, sizeof text, "{'find': '%s', 'filter': {}, '$db': 'd'}", coll);
    cmd = json(text);
    req.body = cmd;
    memset(&pending, 0, sizeof pending);
    ok(cache_lookup(f->cache, &req, &pending, &hit, NULL, NULL, &wait) == CACHE_MISS,
       "a new find is a miss");
    for (uint32_t i = 0; i < n; i++) {
        bson_t *d = bson_new();

        BSON_APPEND_INT32(d, "_id", (int32_t)i);
        buf = bson_realloc(buf, len + d->len);
        memcpy(buf + len, bson_get_data(d), d->len);
        len += d->len;
        bson_destroy(d);
    }
    v = cache_store_docs(f->cache, &pending, buf, len, n, "d.c", complete);
    cache_pending_cleanup(f->cache, &pending);
    bson_free(buf);
    bson_destroy(&docs);
    bson_destroy(cmd);
    return v;
}

/* Reads a reply message's cursor: id, batch length, first _id of the batch. */
static bool
read_batch(const uint8_t *bytes, size_t len, int64_t *id, uint32_t *count, int32_t *first)
{
    struct wire_msg msg;
    bson_error_t error;
    bson_t body;
    bson_iter_t it, batch;

    *count = 0;
    *first = -1;
    if (!wire_msg_parse(bytes, len, 200, &msg, &error) ||
        !bson_init_static(&body, msg.body, msg.body_len) || !bson_iter_init(&it, &body) ||
        !bson_iter_find_descendant(&it, "cursor.id", &it))
        return false;
    *id = bson_iter_int64(&it);
    if (!bson_iter_init(&it, &body) ||
        !(bson_iter_find_descendant(&it, "cursor.firstBatch", &it) ||
          (bson_iter_init(&it, &body) && bson_iter_find_descendant(&it, "cursor.nextBatch", &it))) ||
        !bson_iter_recurse(&it, &batch))
        return false;
    while (bson_iter_next(&batch)) {
        bson_iter_t d;

        if (*count == 0 && bson_iter_recurse(&batch, &d) && bson_iter_find(&d, "_id"))
            *first = bson_iter_int32(&d);
        (*count)++;
    }
    return true;
}

static bool
get_more(struct fixture *f, int64_t id, int64_t batch, const char *principal, int64_t *next,
         uint32_t *count, int32_t *first)
{
    bson_t *cmd = bson_new();
    size_t len;
    uint8_t *bytes;
    bool got;

    BSON_APPEND_INT64(cmd, "getMore", id);
    BSON_APPEND_UTF8(cmd, "collection", "c");
    if (batch > 0)
        BSON_APPEND_INT64(cmd, "batchSize", batch);
    bytes = proxy_cursor_get_more(f->cursors, cmd, principal, 1, 2, &len);
    bson_destroy(cmd);
    if (!bytes)
        return false;
    got = read_batch(bytes, len, next, count, first);
    bson_free(bytes);
    return got;
}

static void
test_batches(struct fixture *f)
{
    struct cache_value *v = result(f, "a", 250, true);
    size_t len;
    uint8_t *bytes;
    int64_t id, next;
    uint32_t count;
    int32_t first;

    bytes = proxy_cursor_first(f->cursors, v, -1, 0, "", 1, 2, &len);
    ok(read_batch(bytes, len, &id, &count, &first) && count == 101 && first == 0 && id != 0,
       "default firstBatch is 101 documents with an open cursor");
    bson_free(bytes);
    ok(get_more(f, id, 100, "", &next, &count, &first) && count == 100 && first == 101 &&
           next == id,
       "getMore batchSize 100 continues at 101");
    ok(get_more(f, id, -1, "", &next, &count, &first) && count == 49 && first == 201 && next == 0,
       "getMore without batchSize returns the rest and closes the cursor");
    ok(!get_more(f, id, -1, "", &next, &count, &first), "the closed cursor is no longer ours");

    bytes = proxy_cursor_first(f->cursors, v, 50, 0, "", 1, 2, &len);
    ok(read_batch(bytes, len, &id, &count, &first) && count == 50 && id != 0,
       "firstBatch honours batchSize 50");
    bson_free(bytes);
    for (int i = 0; i < 4; i++)
        get_more(f, id, 50, "", &next, &count, &first);
    ok(count == 50 && first == 200 && next == id,
       "a batch filled exactly at the end leaves the cursor open, as the server does");
    ok(get_more(f, id, 50, "", &next, &count, &first) && count == 0 && next == 0,
       "the next getMore is empty and closes it");

    bytes = proxy_cursor_first(f->cursors, v, 0, 0, "", 1, 2, &len);
    ok(read_batch(bytes, len, &id, &count, &first) && count == 0 && id != 0,
       "batchSize 0: an empty firstBatch and an open cursor");
    bson_free(bytes);
    ok(get_more(f, id, 1000, "", &next, &count, &first) && count == 250 && next == 0,
       "then everything in one getMore");

    bytes = proxy_cursor_first(f->cursors, v, 1000, 0, "", 1, 2, &len);
    ok(read_batch(bytes, len, &id, &count, &first) && count == 250 && id == 0,
       "a result smaller than batchSize needs no cursor");
    bson_free(bytes);
    is_int((long long)proxy_cursor_count(f->cursors), 0, "no cursor left open");
    cache_value_unref(v);
}

static void
test_owner_and_kill(struct fixture *f)
{
    struct cache_value *v = result(f, "b", 30, true);
    size_t len;
    uint8_t *bytes;
    int64_t id, next;
    uint32_t count;
    int32_t first;
    bson_t *kill;
    char text[128];

    bytes = proxy_cursor_first(f->cursors, v, 10, 0, "alice@admin", 1, 2, &len);
    ok(read_batch(bytes, len, &id, &count, &first) && id != 0, "alice's cursor is open");
    bson_free(bytes);
    bytes = NULL;
    {
        bson_t *cmd = bson_new();
        struct wire_msg msg;
        bson_error_t error;
        bson_t body;
        bson_iter_t it;

        BSON_APPEND_INT64(cmd, "getMore", id);
        bytes = proxy_cursor_get_more(f->cursors, cmd, "bob@admin", 1, 2, &len);
        ok(bytes && wire_msg_parse(bytes, len, 200, &msg, &error) &&
               bson_init_static(&body, msg.body, msg.body_len) &&
               bson_iter_init_find(&it, &body, "code") && bson_iter_int32(&it) == 13,
           "another principal's getMore is refused with Unauthorized");
        bson_free(bytes);
        bson_destroy(cmd);
    }
    snprintf(text, sizeof text, "{'killCursors': 'c', 'cursors': [{'$numberLong': '%lld'}]}",
             (long long)id);
    kill = json(text);
    bytes = proxy_cursor_kill(f->cursors, kill, "alice@admin", 1, 2, &len);
    ok(bytes != NULL, "killCursors on a proxy cursor is answered by the proxy");
    bson_free(bytes);
    ok(!get_more(f, id, 10, "alice@admin", &next, &count, &first), "the killed cursor is gone");
    bson_destroy(kill);
    kill = json("{'killCursors': 'c', 'cursors': [{'$numberLong': '12345'}]}");
    ok(proxy_cursor_kill(f->cursors, kill, "alice@admin", 1, 2, &len) == NULL,
       "killCursors on a server cursor goes to the server");
    bson_destroy(kill);
    cache_value_unref(v);
}

static void
test_handover(struct fixture *f)
{
    struct cache_value *v = result(f, "c", 30, false);
    size_t len;
    uint8_t *bytes;
    int64_t id, next;
    uint32_t count;
    int32_t first;

    bytes = proxy_cursor_first(f->cursors, v, 20, 777, "", 1, 2, &len);
    ok(read_batch(bytes, len, &id, &count, &first) && count == 20 && id != 0 && id != 777,
       "a partial drain starts on a proxy cursor");
    bson_free(bytes);
    ok(get_more(f, id, 20, "", &next, &count, &first) && count == 10 && next == 777,
       "after the drained part the client is handed the server's cursor id");
    bytes = proxy_cursor_first(f->cursors, v, 100, 777, "", 1, 2, &len);
    ok(read_batch(bytes, len, &id, &count, &first) && count == 30 && id == 777,
       "when the drained part fits the first batch, straight to the server's cursor");
    bson_free(bytes);
    cache_value_unref(v);
}

int
main(void)
{
    struct fixture f;
    bson_error_t error;

    f.base = event_base_new();
    f.conf = conf_new();
    f.cache = cache_new(f.conf, f.base, &error);
    f.cursors = proxy_cursors_new(f.base);
    test_batches(&f);
    test_owner_and_kill(&f);
    test_handover(&f);
    proxy_cursors_destroy(f.cursors);
    cache_destroy(f.cache);
    conf_destroy(f.conf);
    event_base_free(f.base);
    return done_testing();
}
