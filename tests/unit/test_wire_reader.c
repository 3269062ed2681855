/*
 * tests/unit/test_wire_reader.c: owns the tests of wire/reader.c, the
 * BSON element reader for checked documents: the same elements as libbson's bson_iter
 * (type, key, value, recursively) over documents holding every BSON type,
 * over random documents, and over random corruptions of them (whatever
 * wire_doc_check accepts, the reader's contract, must read the same; the
 * rest must stop without reading out of bounds, which ASan checks: the
 * reader is stricter than libbson, which for instance steps over a
 * subdocument that does not end with its NUL); and the refusals of bad
 * headers, lengths and terminators.
 */
#include "config.h"

#include "wire/reader.h"
#include "tests/unit/tap.h"
#include "wire/doc.h"

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0xadcafe5eedull;

static uint32_t
below(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/*
 * Walks a reader and a bson_iter over the same document side by side; the
 * reason they differ, or NULL. depth bounds the comparison's own recursion.
 */
static const char *
same_walk(struct wire_reader *r, bson_iter_t *it, int depth)
{
    while (true) {
        bool a = wire_reader_next(r), b = bson_iter_next(it);

        if (a != b)
            return a ? "the reader read past libbson's end" : "the reader stopped early";
        if (!a)
            return NULL;
        if (r->type != (uint8_t)bson_iter_type(it))
            return "types differ";
        if (r->key_len != bson_iter_key_len(it) || strcmp(r->key, bson_iter_key(it)) != 0)
            return "keys differ";
        if (r->type == 0x03 || r->type == 0x04) {
            struct wire_reader rc;
            bson_iter_t ic;
            const char *why;

            if (depth > 100)
                return NULL;
            if (!wire_reader_recurse(r, &rc) || !bson_iter_recurse(it, &ic))
                return "recurse differs";
            why = same_walk(&rc, &ic, depth + 1);
            if (why)
                return why;
        } else if (r->type == 0x02) {
            const char *s, *t;
            uint32_t n, m;

            if (!wire_reader_utf8(r, &s, &n))
                return "no string";
            t = bson_iter_utf8(it, &m);
            if (n != m || memcmp(s, t, n) != 0)
                return "strings differ";
        } else if (r->type == 0x01 || r->type == 0x10 || r->type == 0x12) {
            double v;

            if (!wire_reader_number(r, &v) || v != bson_iter_as_double(it))
                return "numbers differ";
        } else if (r->type == 0x0B) {
            const char *p, *o, *lo;
            const char *lp = bson_iter_regex(it, &lo);

            if (!wire_reader_regex(r, &p, &o) || strcmp(p, lp) != 0 || strcmp(o, lo) != 0)
                return "regexes differ";
        } else {
            double v;
            const char *s;
            uint32_t n;

            if (wire_reader_number(r, &v) || wire_reader_utf8(r, &s, &n))
                return "a number or string read from another type";
        }
    }
}

static const char *
compare(const uint8_t *data, uint32_t len)
{
    struct wire_reader r;
    bson_iter_t it;
    bson_t b;

    if (!bson_init_static(&b, data, len) || !bson_iter_init(&it, &b))
        return "libbson refused";
    if (!wire_reader_init(&r, data, len))
        return "the reader refused";
    return same_walk(&r, &it, 0);
}

/* A document with one element of every type, nested. */
static bson_t *
every_type(void)
{
    bson_t *b = bson_new(), sub, arr;
    bson_oid_t oid;
    bson_decimal128_t dec = {0, 0};
    const uint8_t bin[3] = {1, 2, 3};

    bson_oid_init_from_string(&oid, "0123456789abcdef01234567");
    BSON_APPEND_DOUBLE(b, "double", 1.5);
    BSON_APPEND_UTF8(b, "string", "hello");
    bson_append_utf8(b, "nul", -1, "a\0b", 3);
    BSON_APPEND_DOCUMENT_BEGIN(b, "doc", &sub);
    BSON_APPEND_INT32(&sub, "x", -7);
    BSON_APPEND_DOCUMENT_BEGIN(&sub, "deeper", &arr);
    bson_append_document_end(&sub, &arr);
    bson_append_document_end(b, &sub);
    BSON_APPEND_ARRAY_BEGIN(b, "array", &arr);
    BSON_APPEND_INT64(&arr, "0", -5000000000LL);
    BSON_APPEND_UTF8(&arr, "1", "");
    bson_append_array_end(b, &arr);
    BSON_APPEND_BINARY(b, "binary", BSON_SUBTYPE_BINARY, bin, sizeof bin);
    BSON_APPEND_BINARY(b, "empty binary", BSON_SUBTYPE_BINARY, bin, 0);
    BSON_APPEND_UNDEFINED(b, "undefined");
    BSON_APPEND_OID(b, "oid", &oid);
    BSON_APPEND_BOOL(b, "bool", true);
    BSON_APPEND_DATE_TIME(b, "date", 1700000000000LL);
    BSON_APPEND_NULL(b, "null");
    BSON_APPEND_REGEX(b, "regex", "^ab.*", "im");
    BSON_APPEND_DBPOINTER(b, "dbpointer", "db.coll", &oid);
    BSON_APPEND_CODE(b, "code", "function () {}");
    BSON_APPEND_SYMBOL(b, "symbol", "sym");
    BSON_APPEND_DOCUMENT_BEGIN(b, "scope", &sub);
    BSON_APPEND_INT32(&sub, "y", 1);
    bson_append_document_end(b, &sub);
    {
        bson_t scope = BSON_INITIALIZER;

        BSON_APPEND_INT32(&scope, "z", 2);
        BSON_APPEND_CODE_WITH_SCOPE(b, "code_w_scope", "return z;", &scope);
        bson_destroy(&scope);
    }
    BSON_APPEND_INT32(b, "int32", 42);
    BSON_APPEND_TIMESTAMP(b, "timestamp", 1, 2);
    BSON_APPEND_INT64(b, "int64", 1LL << 40);
    BSON_APPEND_DECIMAL128(b, "decimal", &dec);
    BSON_APPEND_MINKEY(b, "minkey");
    BSON_APPEND_MAXKEY(b, "maxkey");
    BSON_APPEND_INT32(b, "", 0);
    return b;
}

/* A random document of random types, up to depth levels. */
static void
random_doc(bson_t *b, int depth)
{
    char key[16];

    for (uint32_t i = 0, n = below(8); i < n; i++) {
        bson_t sub;

        snprintf(key, sizeof key, "k%u", below(100));
        switch (below(depth > 6 ? 7 : 9)) {
        case 0:
            BSON_APPEND_INT32(b, key, (int32_t)below(1000) - 500);
            break;
        case 1: {
            const char *v = below(2) ? "value" : ""; /* the macro reads its argument twice */

            BSON_APPEND_UTF8(b, key, v);
            break;
        }
        case 2:
            BSON_APPEND_DOUBLE(b, key, below(1000) / 7.0);
            break;
        case 3: {
            const char *flags = below(2) ? "i" : "";

            BSON_APPEND_REGEX(b, key, "^x", flags);
            break;
        }
        case 4:
            BSON_APPEND_NULL(b, key);
            break;
        case 5:
            BSON_APPEND_INT64(b, key, (int64_t)below(1u << 30) << 20);
            break;
        case 6:
            BSON_APPEND_BOOL(b, key, below(2));
            break;
        case 7:
            BSON_APPEND_DOCUMENT_BEGIN(b, key, &sub);
            random_doc(&sub, depth + 1);
            bson_append_document_end(b, &sub);
            break;
        default:
            BSON_APPEND_ARRAY_BEGIN(b, key, &sub);
            random_doc(&sub, depth + 1);
            bson_append_array_end(b, &sub);
            break;
        }
    }
}

/* Reads everything a reader gives, into every document and array (bounded). */
static uint32_t
walk_all(struct wire_reader *r, int depth)
{
    uint32_t n = 0;

    while (wire_reader_next(r)) {
        struct wire_reader c;

        n++;
        if (depth < 200 && wire_reader_recurse(r, &c))
            n += walk_all(&c, depth + 1);
    }
    return n;
}

static void
test_refusals(void)
{
    struct wire_reader r, c;
    uint8_t buf[16];

    ok(!wire_reader_init(&r, NULL, 5), "init refuses NULL");
    memcpy(buf, "\x05\x00\x00\x00\x00", 5);
    ok(!wire_reader_init(&r, buf, 4), "init refuses fewer than 5 bytes");
    ok(wire_reader_init(&r, buf, 5) && !wire_reader_next(&r), "the empty document reads nothing");
    memcpy(buf, "\x06\x00\x00\x00\x00\x00", 6);
    ok(!wire_reader_init(&r, buf, 5), "init refuses a length past what is there");
    memcpy(buf, "\x05\x00\x00\x00\x01", 5);
    ok(!wire_reader_init(&r, buf, 5), "init refuses a document not ending with NUL");
    memcpy(buf, "\xfb\xff\xff\xff\x00", 5);
    ok(!wire_reader_init(&r, buf, 5), "init refuses a negative length");
    /* {a: "x"} with the string length lying */
    memcpy(buf, "\x0e\x00\x00\x00\x02\x61\x00\x09\x00\x00\x00\x78\x00\x00", 14);
    ok(wire_reader_init(&r, buf, 14) && !wire_reader_next(&r) && !wire_reader_next(&r),
       "a string length past the document ends it, for good");
    /* {a: "x"} whose string length claims the document's own final NUL */
    memcpy(buf, "\x0e\x00\x00\x00\x02\x61\x00\x03\x00\x00\x00\x78\x00\x00", 14);
    ok(wire_reader_init(&r, buf, 14) && !wire_reader_next(&r),
       "a string running onto the document's final NUL is refused");
    /* {a: {}} whose subdocument length claims the final NUL */
    memcpy(buf, "\x0d\x00\x00\x00\x03\x61\x00\x06\x00\x00\x00\x00\x00", 13);
    ok(wire_reader_init(&r, buf, 13) && !wire_reader_next(&r),
       "a subdocument running onto the document's final NUL is refused");
    /* {a: {$binary}} of 1 byte claimed 2 */
    memcpy(buf, "\x0e\x00\x00\x00\x05\x61\x00\x02\x00\x00\x00\x00\x07\x00", 14);
    ok(wire_reader_init(&r, buf, 14) && !wire_reader_next(&r), "a binary running past the end");
    /* {a: <type 0x42>} */
    memcpy(buf, "\x08\x00\x00\x00\x42\x61\x00\x00", 8);
    ok(wire_reader_init(&r, buf, 8) && !wire_reader_next(&r), "an unknown type ends the document");
    /* a key without its NUL before the end */
    memcpy(buf, "\x07\x00\x00\x00\x10\x61\x00", 7);
    ok(!wire_reader_init(&r, buf, 7) || !wire_reader_next(&r), "a key running into the end");
    /* {a: int32} cut short: 4 bytes of value, 2 there */
    memcpy(buf, "\x0a\x00\x00\x00\x10\x61\x00\x01\x02\x00", 10);
    ok(wire_reader_init(&r, buf, 10) && !wire_reader_next(&r), "a fixed-size value cut short");
    /* a subdocument whose length passes its parent's end */
    memcpy(buf, "\x0d\x00\x00\x00\x03\x61\x00\x09\x00\x00\x00\x00\x00", 13);
    ok(wire_reader_init(&r, buf, 13) && !wire_reader_next(&r), "a subdocument past its parent");
    memset(&r, 0, sizeof r);
    ok(!wire_reader_next(&r) && !wire_reader_recurse(&r, &c), "a zeroed reader reads nothing");
}

int
main(void)
{
    bson_t *all = every_type();
    const char *why = compare(bson_get_data(all), all->len);
    uint32_t docs = 0, bad = 0, corrupted_valid = 0, corrupted_bad = 0;

    if (!ok(why == NULL, "every BSON type reads as libbson reads it"))
        diag("%s", why);
    test_refusals();

    for (int i = 0; i < 3000; i++) {
        bson_t b = BSON_INITIALIZER;

        random_doc(&b, 0);
        docs++;
        why = compare(bson_get_data(&b), b.len);
        if (why && bad++ < 3)
            diag("random document %d: %s", i, why);
        /* corruptions: valid ones must read the same, the others must not crash */
        for (int k = 0; k < 10 && b.len > 5; k++) {
            uint8_t *buf = malloc(b.len);
            struct wire_reader r;
            bson_error_t error;
            uint32_t checked_len;
            bson_t v;

            memcpy(buf, bson_get_data(&b), b.len);
            buf[below(b.len)] = (uint8_t)below(256);
            if (wire_doc_check(buf, b.len, 0, &checked_len, &error) && checked_len == b.len &&
                bson_init_static(&v, buf, b.len)) {
                corrupted_valid++;
                why = compare(buf, b.len);
                if (why && corrupted_bad++ < 3) {
                    char *j = bson_as_canonical_extended_json(&v, NULL);

                    diag("corrupted document: %s: %s", why, j ? j : "(not printable)");
                    bson_free(j);
                }
            } else if (wire_reader_init(&r, buf, b.len)) {
                walk_all(&r, 0);
            }
            free(buf);
        }
        bson_destroy(&b);
    }
    is_int(bad, 0, "%u random documents read as libbson reads them", docs);
    is_int(corrupted_bad, 0, "%u corrupted documents wire_doc_check still accepts read the same",
           corrupted_valid);
    bson_destroy(all);
    return done_testing();
}
