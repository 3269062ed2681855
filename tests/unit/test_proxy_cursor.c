/*
 * tests/unit/test_proxy_cursor.c: the proxy's own cursors. A drained result
 * is served in batches the way the server serves them: firstBatch of
 * batchSize (101 by default), getMore batches of the getMore's batchSize,
 * the cursor left open when a batch is filled exactly, handed over to the
 * server's cursor after a partial drain, killable, and only by its owner
 * (principal, namespace and session, as mongod binds cursors); ids are
 * random; the first batch, written by hand around the stored documents, is a
 * valid OP_MSG equal to the one libbson builds.
 */
#include "cache/cache.h"
#include "conf/conf.h"
#include "proxy/cursor.h"
#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "wire/msg.h"
#include "wire/reply.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>

struct fixture {
    struct event_base *base;
    struct conf *conf;
    struct cache *cache;
    struct proxy_cursors *cursors;
    size_t shared; /* bytes queued by reference */
};

/* A stored result of n documents {_id: i}, as a drain would produce it. */
static struct cache_value *
result(struct fixture *f, const char *coll, uint32_t n, bool complete)
{
    char text[128];
    bson_t *cmd;
    struct cache_request req = {NULL, NULL, "d", 0, "", 0, 0};
    struct cache_pending *pending;
    struct cache_value *hit, *v;
    struct cache_wait *wait;
    bson_t docs = BSON_INITIALIZER;
    uint8_t *buf = NULL;
    size_t len = 0;

    snprintf(text, sizeof text, "{'find': '%s', 'filter': {}, '$db': 'd'}", coll);
    cmd = json(text);
    req.body = cmd;
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
    v = cache_store_docs(f->cache, pending, buf, len, n, "d.c", complete);
    cache_pending_free(f->cache, pending);
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

static const struct proxy_cursor_owner anyone = {"", NULL, 0};

/* proxy_cursor_first's reply, parsed. */
static bool
first_batch(struct fixture *f, struct cache_value *v, int64_t batch, int64_t upstream,
            const struct proxy_cursor_owner *owner, int64_t *id, uint32_t *count,
            int32_t *first)
{
    struct evbuffer *out = evbuffer_new();
    size_t len = proxy_cursor_first(f->cursors, v, batch, upstream, owner, 1, 2, out);
    bool got = len == evbuffer_get_length(out) &&
               read_batch(evbuffer_pullup(out, -1), len, id, count, first);

    evbuffer_free(out);
    return got;
}

/* A getMore as owner; *code is the error code of a refusal, 0 on success. */
static bool
get_more_as(struct fixture *f, int64_t id, int64_t batch, const char *db, const char *coll,
            const struct proxy_cursor_owner *owner, int64_t *next, uint32_t *count,
            int32_t *first, int32_t *code)
{
    bson_t *cmd = bson_new();
    size_t len;
    uint8_t *bytes;
    bool got;
    struct wire_msg msg;
    bson_error_t error;
    bson_t body;
    bson_iter_t it;

    BSON_APPEND_INT64(cmd, "getMore", id);
    BSON_APPEND_UTF8(cmd, "collection", coll);
    if (batch > 0)
        BSON_APPEND_INT64(cmd, "batchSize", batch);
    bytes = proxy_cursor_get_more(f->cursors, cmd, db, owner, 1, 2, &len);
    bson_destroy(cmd);
    *code = 0;
    if (!bytes)
        return false;
    if (wire_msg_parse(bytes, len, 200, &msg, &error) &&
        bson_init_static(&body, msg.body, msg.body_len) &&
        bson_iter_init_find(&it, &body, "code"))
        *code = bson_iter_int32(&it);
    got = *code != 0 || read_batch(bytes, len, next, count, first);
    bson_free(bytes);
    return got;
}

static bool
get_more(struct fixture *f, int64_t id, int64_t batch, const char *principal, int64_t *next,
         uint32_t *count, int32_t *first)
{
    struct proxy_cursor_owner owner = {principal, NULL, 0};
    int32_t code;

    return get_more_as(f, id, batch, "d", "c", &owner, next, count, first, &code) && code == 0;
}

static void
test_batches(struct fixture *f)
{
    struct cache_value *v = result(f, "a", 250, true);
    int64_t id, next;
    uint32_t count;
    int32_t first;

    ok(first_batch(f, v, -1, 0, &anyone, &id, &count, &first) && count == 101 && first == 0 &&
           id != 0,
       "default firstBatch is 101 documents with an open cursor");
    ok(get_more(f, id, 100, "", &next, &count, &first) && count == 100 && first == 101 &&
           next == id,
       "getMore batchSize 100 continues at 101");
    ok(get_more(f, id, -1, "", &next, &count, &first) && count == 49 && first == 201 && next == 0,
       "getMore without batchSize returns the rest and closes the cursor");
    ok(!get_more(f, id, -1, "", &next, &count, &first), "the closed cursor is no longer ours");

    ok(first_batch(f, v, 50, 0, &anyone, &id, &count, &first) && count == 50 && id != 0,
       "firstBatch honours batchSize 50");
    for (int i = 0; i < 4; i++)
        get_more(f, id, 50, "", &next, &count, &first);
    ok(count == 50 && first == 200 && next == id,
       "a batch filled exactly at the end leaves the cursor open, as the server does");
    ok(get_more(f, id, 50, "", &next, &count, &first) && count == 0 && next == 0,
       "the next getMore is empty and closes it");

    ok(first_batch(f, v, 0, 0, &anyone, &id, &count, &first) && count == 0 && id != 0,
       "batchSize 0: an empty firstBatch and an open cursor");
    ok(get_more(f, id, 1000, "", &next, &count, &first) && count == 250 && next == 0,
       "then everything in one getMore");

    ok(first_batch(f, v, 1000, 0, &anyone, &id, &count, &first) && count == 250 && id == 0,
       "a result smaller than batchSize needs no cursor");
    is_int((long long)proxy_cursor_count(f->cursors), 0, "no cursor left open");
    cache_value_unref(v);
}

static void
test_owner_and_kill(struct fixture *f)
{
    struct cache_value *v = result(f, "b", 30, true);
    struct proxy_cursor_owner alice = {"5:alice@admin", NULL, 0};
    struct proxy_cursor_owner bob = {"3:bob@admin", NULL, 0};
    struct proxy_cursor_owner unusable = {NULL, NULL, 0};
    size_t len;
    uint8_t *bytes;
    int64_t id, next;
    uint32_t count;
    int32_t first, code;
    bson_t *kill;
    char text[160];

    ok(first_batch(f, v, 10, 0, &alice, &id, &count, &first) && id != 0, "alice's cursor is open");
    ok(get_more_as(f, id, 5, "d", "c", &bob, &next, &count, &first, &code) && code == 13,
       "another principal's getMore is refused with Unauthorized (13)");
    ok(get_more_as(f, id, 5, "d", "c", &unusable, &next, &count, &first, &code) && code == 13,
       "a connection whose principal is unusable is refused too");
    ok(get_more_as(f, id, 5, "d", "other", &alice, &next, &count, &first, &code) && code == 13,
       "a getMore on another collection is refused (13), as mongod does");
    ok(get_more_as(f, id, 5, "e", "c", &alice, &next, &count, &first, &code) && code == 13,
       "a getMore on another database is refused (13)");
    ok(get_more_as(f, id, 5, "d", "c", &alice, &next, &count, &first, &code) && code == 0 &&
           count == 5 && first == 10,
       "the refusals did not move the cursor: its owner reads on from 10");

    snprintf(text, sizeof text, "{'killCursors': 'other', 'cursors': [{'$numberLong': '%lld'}]}",
             (long long)id);
    kill = json(text);
    bytes = proxy_cursor_kill(f->cursors, kill, "d", &alice, 1, 2, &len);
    ok(bytes != NULL && proxy_cursor_count(f->cursors) == 1,
       "killCursors naming another collection reports it not found and leaves it open");
    bson_free(bytes);
    bson_destroy(kill);
    snprintf(text, sizeof text, "{'killCursors': 'c', 'cursors': [{'$numberLong': '%lld'}]}",
             (long long)id);
    kill = json(text);
    bytes = proxy_cursor_kill(f->cursors, kill, "d", &bob, 1, 2, &len);
    ok(bytes != NULL && proxy_cursor_count(f->cursors) == 1,
       "killCursors by another principal reports it not found and leaves it open");
    bson_free(bytes);
    bytes = proxy_cursor_kill(f->cursors, kill, "d", &alice, 1, 2, &len);
    ok(bytes != NULL, "killCursors on a proxy cursor is answered by the proxy");
    bson_free(bytes);
    ok(!get_more(f, id, 10, "5:alice@admin", &next, &count, &first), "the killed cursor is gone");
    bson_destroy(kill);
    kill = json("{'killCursors': 'c', 'cursors': [{'$numberLong': '12345'}]}");
    ok(proxy_cursor_kill(f->cursors, kill, "d", &alice, 1, 2, &len) == NULL,
       "killCursors on a server cursor goes to the server");
    bson_destroy(kill);
    cache_value_unref(v);
}

/* mongod binds a cursor to the session it was opened in (codes 50736, 50737, 50738). */
static void
test_sessions(struct fixture *f)
{
    struct cache_value *v = result(f, "s", 40, true);
    bson_t *a = json("{'id': {'$binary': {'base64': 'AAAAAAAAAAAAAAAAAAAAAQ==', 'subType': '04'}}}");
    bson_t *b = json("{'id': {'$binary': {'base64': 'AAAAAAAAAAAAAAAAAAAAAg==', 'subType': '04'}}}");
    struct proxy_cursor_owner in_a = {"", bson_get_data(a), a->len};
    struct proxy_cursor_owner in_b = {"", bson_get_data(b), b->len};
    int64_t id, plain, next;
    uint32_t count;
    int32_t first, code;

    ok(first_batch(f, v, 10, 0, &in_a, &id, &count, &first) && id != 0,
       "a cursor opened in session A");
    ok(get_more_as(f, id, 5, "d", "c", &anyone, &next, &count, &first, &code) && code == 50737,
       "its getMore without an lsid is refused (50737)");
    ok(get_more_as(f, id, 5, "d", "c", &in_b, &next, &count, &first, &code) && code == 50738,
       "its getMore in session B is refused (50738)");
    ok(get_more_as(f, id, 5, "d", "c", &in_a, &next, &count, &first, &code) && code == 0 &&
           first == 10,
       "its getMore in session A reads on");
    ok(first_batch(f, v, 10, 0, &anyone, &plain, &count, &first) && plain != 0,
       "a cursor opened outside a session");
    ok(get_more_as(f, plain, 5, "d", "c", &in_a, &next, &count, &first, &code) && code == 50736,
       "its getMore in a session is refused (50736)");
    proxy_cursors_destroy(f->cursors);
    f->cursors = proxy_cursors_new(f->base, &f->shared);
    bson_destroy(a);
    bson_destroy(b);
    cache_value_unref(v);
}

/* Ids are 63 random bits: distinct, positive, never a counter. */
static void
test_random_ids(struct fixture *f)
{
    struct cache_value *v = result(f, "r", 5, true);
    enum { N = 2000 };
    static int64_t ids[N];
    int64_t or_bits = 0, and_bits = INT64_MAX;
    bool distinct = true, positive = true, sequential = false;
    uint32_t count;
    int32_t first;

    for (int i = 0; i < N; i++) {
        if (!first_batch(f, v, 1, 0, &anyone, &ids[i], &count, &first))
            ids[i] = 0;
        positive = positive && ids[i] > 0;
        or_bits |= ids[i];
        and_bits &= ids[i];
        for (int j = 0; j < i && distinct; j++)
            distinct = ids[j] != ids[i];
        if (i > 0 && (ids[i] - ids[i - 1] == 1 || ids[i - 1] - ids[i] == 1))
            sequential = true;
    }
    ok(positive && distinct, "%d cursor ids: all positive and distinct", N);
    ok(!sequential, "no id follows its predecessor");
    ok(or_bits == INT64_MAX && and_bits == 0, "each of the 63 bits varies across ids");
    proxy_cursors_destroy(f->cursors);
    f->cursors = proxy_cursors_new(f->base, &f->shared);
    cache_value_unref(v);
}

/* The hand-written first batch equals what libbson builds for the same reply. */
static void
test_first_reply_bytes(struct fixture *f)
{
    struct cache_value *v = result(f, "x", 7, true);
    struct evbuffer *out = evbuffer_new();
    size_t len = proxy_cursor_first(f->cursors, v, -1, 0, &anyone, 5, 6, out);
    size_t shared = f->shared;
    const uint8_t *got = evbuffer_pullup(out, -1); /* copies the referenced pieces */
    bson_t body = BSON_INITIALIZER, cursor, batch;
    size_t want_len;
    uint8_t *want;

    BSON_APPEND_DOCUMENT_BEGIN(&body, "cursor", &cursor);
    bson_append_array_begin(&cursor, "firstBatch", -1, &batch);
    for (uint32_t i = 0; i < 7; i++) {
        char key[16];
        const char *key_str;
        bson_t d = BSON_INITIALIZER;

        bson_uint32_to_string(i, &key_str, key, sizeof key);
        BSON_APPEND_INT32(&d, "_id", (int32_t)i);
        bson_append_document(&batch, key_str, -1, &d);
        bson_destroy(&d);
    }
    bson_append_array_end(&cursor, &batch);
    BSON_APPEND_INT64(&cursor, "id", 0);
    BSON_APPEND_UTF8(&cursor, "ns", "d.c");
    bson_append_document_end(&body, &cursor);
    BSON_APPEND_DOUBLE(&body, "ok", 1.0);
    want = wire_reply_msg(5, 6, &body, &want_len);
    ok(len == want_len && evbuffer_get_length(out) == len && memcmp(got, want, len) == 0,
       "the first batch by reference is byte for byte the reply libbson builds");
    ok(shared > 0 && shared < len, "its documents were counted as shared, not the envelope");
    bson_free(want);
    bson_destroy(&body);
    evbuffer_free(out);
    is_int((long long)f->shared, 0, "copied out, nothing is counted as shared any more");
    cache_value_unref(v);
}

static void
test_handover(struct fixture *f)
{
    struct cache_value *v = result(f, "c", 30, false);
    int64_t id, next;
    uint32_t count;
    int32_t first;

    ok(first_batch(f, v, 20, 777, &anyone, &id, &count, &first) && count == 20 && id != 0 &&
           id != 777,
       "a partial drain starts on a proxy cursor");
    ok(get_more(f, id, 20, "", &next, &count, &first) && count == 10 && next == 777,
       "after the drained part the client is handed the server's cursor id");
    ok(first_batch(f, v, 100, 777, &anyone, &id, &count, &first) && count == 30 && id == 777,
       "when the drained part fits the first batch, straight to the server's cursor");
    cache_value_unref(v);
}

/*
 * The table's bound (found in review: past it every open swept the table
 * and opened anyway): full at PROXY_CURSORS_MAX open, whose idle ones are
 * not yet old enough to drop, and no longer once one is closed.
 */
static void
test_full(struct fixture *f)
{
    struct cache_value *v = result(f, "full", 2, true);
    size_t before = proxy_cursor_count(f->cursors);
    int64_t id = 0, last = 0, next;
    uint32_t count;
    int32_t first;
    bool opened = true;

    ok(!proxy_cursor_full(f->cursors), "full: not with %zu open", before);
    while (proxy_cursor_count(f->cursors) < PROXY_CURSORS_MAX && opened) {
        opened = first_batch(f, v, 1, 0, &anyone, &id, &count, &first) && id != 0;
        last = id;
    }
    ok(opened, "full: %d cursors opened", PROXY_CURSORS_MAX);
    ok(proxy_cursor_full(f->cursors), "full: at %d open", PROXY_CURSORS_MAX);
    ok(proxy_cursor_full(f->cursors), "full: still, asked again within the second (no sweep)");
    ok(get_more(f, last, 5, "", &next, &count, &first) && next == 0 && count == 1,
       "full: a cursor read to its end closes");
    ok(!proxy_cursor_full(f->cursors), "full: not any more, with one closed");
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
    f.shared = 0;
    f.cursors = proxy_cursors_new(f.base, &f.shared);
    test_batches(&f);
    test_owner_and_kill(&f);
    test_sessions(&f);
    test_random_ids(&f);
    test_first_reply_bytes(&f);
    test_handover(&f);
    test_full(&f);
    proxy_cursors_destroy(f.cursors);
    cache_destroy(f.cache);
    conf_destroy(f.conf);
    event_base_free(f.base);
    return done_testing();
}
