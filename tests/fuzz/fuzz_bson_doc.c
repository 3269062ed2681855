/*
 * tests/fuzz/fuzz_bson_doc.c: fuzz target for wire/doc.c's structural
 * checker on its own, with two differential checks (A6, A9). The input is
 * one document (and whatever follows it).
 *  - Against a reference: ref_doc below is a second, deliberately plain
 *    reading of the BSON 1.1 specification (bsonspec.org), recursive and
 *    bounded by the same depth. Both must give the same verdict, the same
 *    length and the same kind of error (too deep or malformed).
 *  - Against libbson: every document from a client, the upstream or Redis
 *    passes wire_doc_check before any libbson call, and the proxy then reads
 *    it with bson_iter. So a document wire_doc_check accepts must be one
 *    that bson_init_static accepts and bson_iter walks to the end, every
 *    value read with its accessor and every nested document and
 *    code-with-scope entered: a document libbson stopped reading half-way
 *    would hide its tail from the cache policy. bson_validate is not the
 *    yardstick: it also refuses keys that are not UTF-8 (through
 *    bson_iter_visit_all, whatever the flags), which wire_doc_check leaves
 *    to the server and the proxy never asks libbson about. Nor is the other
 *    way round required: libbson 1.23 accepts some documents the
 *    specification (and mongod) refuse, e.g. an embedded document whose
 *    last byte is not NUL.
 */
#include "config.h"

#include "tests/fuzz/fuzz.h"

#include "wire/doc.h"
#include "wire/frame.h"

#include <string.h>

/* Reads the value under it with its accessor, so that ASan sees what libbson touches. */
static void
touch(const bson_iter_t *it)
{
    uint32_t len = 0;
    const uint8_t *data = NULL;
    const char *s = NULL;
    const char *opts = NULL;
    bson_subtype_t subtype;
    const bson_oid_t *oid;
    bson_decimal128_t dec;
    uint32_t ts, inc;
    volatile size_t sink = 0;

    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &len);
        sink += len ? (size_t)s[len - 1] : 0;
        break;
    case BSON_TYPE_CODE:
        s = bson_iter_code(it, &len);
        sink += len ? (size_t)s[len - 1] : 0;
        break;
    case BSON_TYPE_SYMBOL:
        s = bson_iter_symbol(it, &len);
        sink += len ? (size_t)s[len - 1] : 0;
        break;
    case BSON_TYPE_BINARY:
        bson_iter_binary(it, &subtype, &len, &data);
        sink += len && data ? data[len - 1] : 0;
        break;
    case BSON_TYPE_REGEX:
        s = bson_iter_regex(it, &opts);
        sink += strlen(s) + strlen(opts);
        break;
    case BSON_TYPE_DBPOINTER:
        bson_iter_dbpointer(it, &len, &s, &oid);
        sink += len + oid->bytes[11];
        break;
    case BSON_TYPE_CODEWSCOPE: {
        uint32_t scope_len = 0;

        s = bson_iter_codewscope(it, &len, &scope_len, &data);
        sink += len + (data && scope_len ? data[scope_len - 1] : 0);
        break;
    }
    case BSON_TYPE_DECIMAL128:
        FUZZ_CHECK(bson_iter_decimal128(it, &dec));
        break;
    case BSON_TYPE_TIMESTAMP:
        bson_iter_timestamp(it, &ts, &inc);
        break;
    case BSON_TYPE_OID:
        sink += bson_iter_oid(it)->bytes[0];
        break;
    default:
        sink += (size_t)bson_iter_as_int64(it);
        break;
    }
    (void)sink;
}

/* One open document of the walk (a struct, so that an array of them may be aligned). */
struct frame {
    bson_iter_t it;
};

/* Walks every element of b without recursion; false when libbson stops early. */
static bool
walk(const bson_t *b)
{
    struct frame stack[WIRE_DOC_MAX_DEPTH + 1];
    int depth = 0;

    if (!bson_iter_init(&stack[0].it, b))
        return false;
    while (depth >= 0) {
        bson_iter_t *it = &stack[depth].it;

        if (!bson_iter_next(it)) {
            if (it->err_off != 0)
                return false;
            depth--;
            continue;
        }
        touch(it);
        if (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) {
            FUZZ_CHECK(depth + 1 <= WIRE_DOC_MAX_DEPTH);
            if (!bson_iter_recurse(it, &stack[depth + 1].it))
                return false;
            depth++;
        } else if (BSON_ITER_HOLDS_CODEWSCOPE(it)) {
            uint32_t code_len, scope_len;
            const uint8_t *scope;
            bson_t sb;

            (void)bson_iter_codewscope(it, &code_len, &scope_len, &scope);
            FUZZ_CHECK(depth + 1 <= WIRE_DOC_MAX_DEPTH);
            if (!bson_init_static(&sb, scope, scope_len) ||
                !bson_iter_init(&stack[depth + 1].it, &sb))
                return false;
            depth++;
        }
    }
    return true;
}

/* Verdicts of the reference reading. */
#define REF_OK 1
#define REF_BAD 0
#define REF_TOO_DEEP (-1)

/*
 * The reference reading of one document at p with room bytes, at depth
 * (1 for the top level): REF_OK with its length in *len, REF_BAD when
 * malformed, REF_TOO_DEEP when nested deeper than WIRE_DOC_MAX_DEPTH.
 */
static int ref_doc(const uint8_t *p, size_t room, unsigned depth, size_t *len);

/* A string value (int32 length counting its NUL, bytes, NUL): its size, or 0. */
static size_t
ref_string(const uint8_t *p, size_t room)
{
    int32_t n;

    if (room < 4)
        return 0;
    n = wire_frame_read_i32(p);
    if (n < 1 || (size_t)n > room - 4 || p[4 + n - 1] != 0)
        return 0;
    return 4 + (size_t)n;
}

/* A NUL-terminated string: its size with the NUL, or 0. */
static size_t
ref_cstring(const uint8_t *p, size_t room)
{
    for (size_t i = 0; i < room; i++) {
        if (p[i] == 0)
            return i + 1;
    }
    return 0;
}

/* The value of type t at p (room bytes left in its document): its size in *size. */
static int
ref_value(uint8_t t, const uint8_t *p, size_t room, unsigned depth, size_t *size)
{
    size_t a, b;
    int32_t n;
    int r;

    switch (t) {
    case 0x06: /* undefined */
    case 0x0a: /* null */
    case 0xff: /* min key */
    case 0x7f: /* max key */
        *size = 0;
        return REF_OK;
    case 0x08: /* boolean: 0 or 1 */
        *size = 1;
        return room >= 1 && p[0] <= 1 ? REF_OK : REF_BAD;
    case 0x10: /* int32 */
        *size = 4;
        return room >= 4 ? REF_OK : REF_BAD;
    case 0x01: /* double */
    case 0x09: /* UTC datetime */
    case 0x11: /* timestamp */
    case 0x12: /* int64 */
        *size = 8;
        return room >= 8 ? REF_OK : REF_BAD;
    case 0x07: /* ObjectId */
        *size = 12;
        return room >= 12 ? REF_OK : REF_BAD;
    case 0x13: /* decimal128 */
        *size = 16;
        return room >= 16 ? REF_OK : REF_BAD;
    case 0x02: /* string */
    case 0x0d: /* JavaScript code */
    case 0x0e: /* symbol */
        *size = ref_string(p, room);
        return *size ? REF_OK : REF_BAD;
    case 0x03: /* document */
    case 0x04: /* array */
        return ref_doc(p, room, depth + 1, size);
    case 0x05: /* binary: int32 n, subtype, n bytes; old subtype 2 repeats n - 4 inside */
        if (room < 5)
            return REF_BAD;
        n = wire_frame_read_i32(p);
        if (n < 0 || (size_t)n > room - 5)
            return REF_BAD;
        if (p[4] == 0x02 && (n < 4 || wire_frame_read_i32(p + 5) != n - 4))
            return REF_BAD;
        *size = 5 + (size_t)n;
        return REF_OK;
    case 0x0b: /* regex: pattern and options, two cstrings */
        a = ref_cstring(p, room);
        b = a ? ref_cstring(p + a, room - a) : 0;
        *size = a + b;
        return b ? REF_OK : REF_BAD;
    case 0x0c: /* DBPointer: string, 12-byte ObjectId */
        a = ref_string(p, room);
        *size = a + 12;
        return a && a + 12 <= room ? REF_OK : REF_BAD;
    case 0x0f: /* code with scope: int32 total, string, document, total = all of it */
        if (room < 4)
            return REF_BAD;
        n = wire_frame_read_i32(p);
        if (n < 14 || (size_t)n > room)
            return REF_BAD;
        a = ref_string(p + 4, (size_t)n - 4);
        if (!a)
            return REF_BAD;
        r = ref_doc(p + 4 + a, (size_t)n - 4 - a, depth + 1, &b);
        if (r != REF_OK)
            return r;
        *size = (size_t)n;
        return b == (size_t)n - 4 - a ? REF_OK : REF_BAD;
    default:
        return REF_BAD;
    }
}

static int
ref_doc(const uint8_t *p, size_t room, unsigned depth, size_t *len)
{
    size_t at = 4, end;
    int32_t n;

    if (depth > WIRE_DOC_MAX_DEPTH)
        return REF_TOO_DEEP;
    if (room < 5)
        return REF_BAD;
    n = wire_frame_read_i32(p);
    if (n < 5 || (size_t)n > room || p[n - 1] != 0)
        return REF_BAD;
    end = (size_t)n - 1;
    while (at < end) {
        uint8_t t = p[at];
        size_t key = ref_cstring(p + at + 1, end - at - 1);
        size_t size = 0;
        int r;

        if (t == 0 || key == 0)
            return REF_BAD;
        at += 1 + key;
        r = ref_value(t, p + at, end - at, depth, &size);
        if (r != REF_OK)
            return r;
        at += size;
    }
    *len = (size_t)n;
    return REF_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = bson_malloc(size ? size : 1);
    uint32_t doc_len = 0;
    bson_error_t error;
    size_t ref_len = 0;
    int ref;
    bool ok;
    bson_t b;

    memcpy(copy, data, size);
    ok = wire_doc_check(copy, size, WIRE_DOC_MAX_DEPTH, &doc_len, &error);
    ref = ref_doc(copy, size, 1, &ref_len);
    if (ok != (ref == REF_OK) || (ok && doc_len != ref_len) ||
        (!ok && (error.code == WIRE_ERR_OVERFLOW) != (ref == REF_TOO_DEEP))) {
        fprintf(stderr, "wire_doc_check: %s (%u bytes); reference: %d (%zu bytes)\n",
                ok ? "accepted" : error.message, (unsigned)doc_len, ref, ref_len);
        FUZZ_CHECK(!"wire_doc_check agrees with the reference reading of the spec");
    }
    if (ok) {
        FUZZ_CHECK(doc_len >= 5 && doc_len <= size);
        FUZZ_CHECK((uint32_t)wire_frame_read_i32(copy) == doc_len);
        FUZZ_CHECK(bson_init_static(&b, copy, doc_len));
        if (!walk(&b)) {
            fprintf(stderr, "wire_doc_check accepted a document libbson cannot iterate\n");
            FUZZ_CHECK(!"libbson iterates what wire_doc_check accepts");
        }
        /* A shallower limit refuses only for depth. */
        if (!wire_doc_check(copy, size, 2, NULL, &error))
            FUZZ_CHECK(error.code == WIRE_ERR_OVERFLOW);
    } else {
        FUZZ_CHECK(error.domain == WIRE_ERROR_DOMAIN && error.message[0] != '\0');
    }
    bson_free(copy);
    return 0;
}
