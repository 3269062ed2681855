/*
 * tests/unit/test_proxy_advice.c: owns the tests of what proxy/advice.c
 * reads from replies on the data path: proxy_advice_batch_documents, the
 * documents of a reply's first (or next) batch, counted without libbson,
 * against libbson-built replies and replies that lie about their lengths.
 * The advisor, the table and the JSON report are tested elsewhere
 * (test_advice_*, tests/integration/test_advice.sh).
 */
#include "config.h"

#include "proxy/advice.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <string.h>

/*
 * {ok: 1, cursor: {id: 0, ns: "app.books", <batch>: [n documents]}}, or
 * in a server's order (server_order): {cursor: {<batch>: [...], id, ns}, ok: 1}.
 */
static bson_t *
reply_ordered(const char *batch, int n, bool server_order)
{
    bson_t *reply = bson_new(), cursor, arr;
    char key[16];

    if (!server_order)
        BSON_APPEND_DOUBLE(reply, "ok", 1.0);
    BSON_APPEND_DOCUMENT_BEGIN(reply, "cursor", &cursor);
    if (!server_order) {
        BSON_APPEND_INT64(&cursor, "id", 0);
        BSON_APPEND_UTF8(&cursor, "ns", "app.books");
    }
    BSON_APPEND_ARRAY_BEGIN(&cursor, batch, &arr);
    for (int i = 0; i < n; i++) {
        bson_t doc;

        snprintf(key, sizeof key, "%d", i);
        bson_append_document_begin(&arr, key, -1, &doc);
        BSON_APPEND_INT32(&doc, "_id", i);
        BSON_APPEND_UTF8(&doc, "title", "a title");
        bson_append_document_end(&arr, &doc);
    }
    bson_append_array_end(&cursor, &arr);
    if (server_order) {
        BSON_APPEND_INT64(&cursor, "id", 0);
        BSON_APPEND_UTF8(&cursor, "ns", "app.books");
    }
    bson_append_document_end(reply, &cursor);
    if (server_order)
        BSON_APPEND_DOUBLE(reply, "ok", 1.0);
    return reply;
}

static bson_t *
reply_with(const char *batch, int n)
{
    return reply_ordered(batch, n, false);
}

static uint64_t
count(const bson_t *b)
{
    return proxy_advice_batch_documents(bson_get_data(b), b->len);
}

static void
test_batches(void)
{
    static const int sizes[] = {0, 1, 3, 101};

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bson_t *first = reply_with("firstBatch", sizes[i]);
        bson_t *next = reply_with("nextBatch", sizes[i]);

        is_int((long long)count(first), sizes[i], "firstBatch of %d documents", sizes[i]);
        is_int((long long)count(next), sizes[i], "nextBatch of %d documents", sizes[i]);
        bson_destroy(first);
        bson_destroy(next);
        /* where a server puts them: read at once, without stepping */
        first = reply_ordered("firstBatch", sizes[i], true);
        next = reply_ordered("nextBatch", sizes[i], true);
        is_int((long long)count(first), sizes[i], "firstBatch first, of %d documents", sizes[i]);
        is_int((long long)count(next), sizes[i], "nextBatch first, of %d documents", sizes[i]);
        bson_destroy(first);
        bson_destroy(next);
    }
}

static void
test_no_batch(void)
{
    bson_t *other = reply_with("batch", 3);
    bson_t *n = BCON_NEW("n", BCON_INT32(5), "ok", BCON_DOUBLE(1));
    bson_t *not_doc = BCON_NEW("cursor", BCON_INT32(1), "ok", BCON_DOUBLE(1));
    bson_t *not_array =
        BCON_NEW("cursor", "{", "firstBatch", "{", "0", "{", "}", "}", "}", "ok", BCON_DOUBLE(1));

    is_int((long long)count(other), 0, "a batch under another name: 0");
    is_int((long long)count(n), 0, "a count's reply: 0");
    is_int((long long)count(not_doc), 0, "cursor that is not a document: 0");
    is_int((long long)count(not_array), 0, "firstBatch that is a document, not an array: 0");
    is_int((long long)proxy_advice_batch_documents(NULL, 0), 0, "no reply: 0");
    bson_destroy(other);
    bson_destroy(n);
    bson_destroy(not_doc);
    bson_destroy(not_array);
}

/* Lengths that lie: the count never reads past the reply, and stops at what it cannot read. */
static void
test_lies(bool server_order)
{
    bson_t *reply = reply_ordered("firstBatch", 3, server_order);
    uint32_t len = reply->len;
    uint8_t *bytes = bson_malloc(len);
    uint64_t n;

    memcpy(bytes, bson_get_data(reply), len);
    is_int((long long)proxy_advice_batch_documents(bytes, len - 1), 0,
           "a buffer shorter than the reply says: 0");
    for (uint32_t i = 0; i < len; i++) {
        for (int v = 0; v < 3; v++) {
            static const uint8_t values[] = {0x00, 0x7f, 0xff};
            uint8_t saved = bytes[i];

            bytes[i] = values[v];
            n = proxy_advice_batch_documents(bytes, len);
            bytes[i] = saved;
            if (n > 3) {
                ok(false, "byte %u set to 0x%02x: %llu documents counted", i, values[v],
                   (unsigned long long)n);
                goto out;
            }
        }
    }
    ok(true, "every byte of a %u-byte reply (%s) set to 0x00, 0x7f, 0xff: never more than 3 "
             "documents, never a read outside (ASan)",
       len, server_order ? "a server's order" : "cursor and firstBatch last");
out:
    bson_free(bytes);
    bson_destroy(reply);
}

int
main(void)
{
    test_batches();
    test_no_batch();
    test_lies(false);
    test_lies(true);
    return done_testing();
}
