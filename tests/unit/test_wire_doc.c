/*
 * tests/unit/test_wire_doc.c: owns the tests of wire_doc_check: every BSON
 * element type, bad lengths and terminators, unknown types, nesting depth up
 * to 100,000 levels (checked on a small thread stack), and a mutation sweep
 * cross-checked against libbson. It does not test OP_MSG framing
 * (test_wire_msg.c).
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "wire/doc.h"
#include "wire/frame.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* A byte string literal and its length, without the literal's own NUL. */
#define B(s) (const uint8_t *)(s), sizeof(s) - 1

struct doc_case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    bool valid;
    uint32_t code; /* when invalid */
};

#define OK_CASE(name, s) {name, B(s), true, 0}
#define BAD_CASE(name, s) {name, B(s), false, WIRE_ERR_INVALID_BSON}

static const struct doc_case cases[] = {
    /* Valid documents, one per element type. */
    OK_CASE("empty document", "\x05\0\0\0\0"),
    OK_CASE("double", "\x10\0\0\0\x01" "a\0" "\0\0\0\0\0\0\xf0\x3f" "\0"),
    OK_CASE("string", "\x0f\0\0\0\x02" "a\0" "\x03\0\0\0" "hi\0" "\0"),
    OK_CASE("empty string (length 1)", "\x0d\0\0\0\x02" "a\0" "\x01\0\0\0" "\0" "\0"),
    OK_CASE("embedded document", "\x0d\0\0\0\x03" "a\0" "\x05\0\0\0\0" "\0"),
    OK_CASE("array with an int32",
            "\x14\0\0\0\x04" "a\0" "\x0c\0\0\0\x10" "0\0" "\x01\0\0\0" "\0" "\0"),
    OK_CASE("binary length 0", "\x0d\0\0\0\x05" "a\0" "\0\0\0\0" "\x00" "\0"),
    OK_CASE("binary length 3 subtype 4", "\x10\0\0\0\x05" "a\0" "\x03\0\0\0" "\x04" "xyz" "\0"),
    OK_CASE("binary old subtype 2 consistent",
            "\x13\0\0\0\x05" "a\0" "\x06\0\0\0" "\x02" "\x02\0\0\0" "xy" "\0"),
    OK_CASE("undefined", "\x08\0\0\0\x06" "a\0" "\0"),
    OK_CASE("ObjectId", "\x14\0\0\0\x07" "a\0" "0123456789ab" "\0"),
    OK_CASE("bool false", "\x09\0\0\0\x08" "a\0" "\x00" "\0"),
    OK_CASE("bool true", "\x09\0\0\0\x08" "a\0" "\x01" "\0"),
    OK_CASE("date", "\x10\0\0\0\x09" "a\0" "\x01\0\0\0\0\0\0\x80" "\0"),
    OK_CASE("null", "\x08\0\0\0\x0a" "a\0" "\0"),
    OK_CASE("regex", "\x0c\0\0\0\x0b" "a\0" "x\0" "i\0" "\0"),
    OK_CASE("regex with empty pattern and options", "\x0a\0\0\0\x0b" "a\0" "\0" "\0" "\0"),
    OK_CASE("DBPointer",
            "\x1a\0\0\0\x0c" "a\0" "\x02\0\0\0" "c\0" "0123456789ab" "\0"),
    OK_CASE("code", "\x0f\0\0\0\x0d" "a\0" "\x03\0\0\0" "f;\0" "\0"),
    OK_CASE("symbol", "\x0f\0\0\0\x0e" "a\0" "\x03\0\0\0" "sy\0" "\0"),
    OK_CASE("code_w_scope with empty scope",
            "\x18\0\0\0\x0f" "a\0" "\x10\0\0\0" "\x03\0\0\0" "f;\0" "\x05\0\0\0\0" "\0"),
    OK_CASE("code_w_scope with a scope variable",
            "\x1f\0\0\0\x0f" "a\0" "\x17\0\0\0" "\x03\0\0\0" "f;\0"
            "\x0c\0\0\0\x10" "x\0" "\x01\0\0\0" "\0" "\0"),
    OK_CASE("int32", "\x0c\0\0\0\x10" "a\0" "\xff\xff\xff\xff" "\0"),
    OK_CASE("timestamp", "\x10\0\0\0\x11" "a\0" "\x01\0\0\0\x02\0\0\0" "\0"),
    OK_CASE("int64", "\x10\0\0\0\x12" "a\0" "\x01\0\0\0\0\0\0\0" "\0"),
    OK_CASE("decimal128", "\x18\0\0\0\x13" "a\0" "0123456789abcdef" "\0"),
    OK_CASE("minkey", "\x08\0\0\0\xff" "a\0" "\0"),
    OK_CASE("maxkey", "\x08\0\0\0\x7f" "a\0" "\0"),
    OK_CASE("empty key", "\x07\0\0\0\x0a" "\0" "\0"),
    OK_CASE("two elements", "\x0c\0\0\0\x0a" "a\0" "\x08" "b\0" "\x01" "\0"),

    /* Bad document lengths and terminators. */
    BAD_CASE("empty buffer", ""),
    BAD_CASE("3 bytes: length truncated", "\x05\0\0"),
    BAD_CASE("length 4 too small", "\x04\0\0\0\0"),
    BAD_CASE("length 0", "\0\0\0\0\0"),
    BAD_CASE("length -1", "\xff\xff\xff\xff\0"),
    BAD_CASE("length larger than the buffer", "\x06\0\0\0\0"),
    BAD_CASE("length 0x7fffffff", "\xff\xff\xff\x7f\0"),
    BAD_CASE("missing NUL terminator", "\x05\0\0\0\x01"),
    BAD_CASE("inner document longer than its container",
             "\x0d\0\0\0\x03" "a\0" "\x06\0\0\0\0" "\0"),
    BAD_CASE("inner document shorter than its content",
             "\x14\0\0\0\x03" "a\0" "\x05\0\0\0\x0a" "b\0" "\0\0" "\0\0\0\0"),
    BAD_CASE("inner document length 4", "\x0d\0\0\0\x03" "a\0" "\x04\0\0\0\0" "\0"),
    BAD_CASE("elements stop before the NUL", "\x07\0\0\0\0\0\0"),
    BAD_CASE("NUL byte where an element type should be",
             "\x0a\0\0\0\x0a" "a\0" "\0" "\0" "\0"),
    BAD_CASE("key runs into the terminator", "\x08\0\0\0\x0a" "ab" "\0"),
    BAD_CASE("int32 runs into the terminator", "\x0b\0\0\0\x10" "a\0" "\x01\0\0" "\0"),
    BAD_CASE("double truncated", "\x0c\0\0\0\x01" "a\0" "\0\0\0\0" "\0"),

    /* Unknown type bytes. */
    BAD_CASE("type 0x14 unknown", "\x08\0\0\0\x14" "a\0" "\0"),
    BAD_CASE("type 0x20 unknown", "\x08\0\0\0\x20" "a\0" "\0"),
    BAD_CASE("type 0x80 unknown", "\x08\0\0\0\x80" "a\0" "\0"),
    BAD_CASE("type 0xfe unknown", "\x08\0\0\0\xfe" "a\0" "\0"),

    /* Strings. */
    BAD_CASE("string length 0", "\x0d\0\0\0\x02" "a\0" "\0\0\0\0" "\0" "\0"),
    BAD_CASE("string length negative", "\x0d\0\0\0\x02" "a\0" "\xff\xff\xff\xff" "\0" "\0"),
    BAD_CASE("string length past the end", "\x0f\0\0\0\x02" "a\0" "\x04\0\0\0" "hi\0" "\0"),
    BAD_CASE("string length 0x7fffffff", "\x0f\0\0\0\x02" "a\0" "\xff\xff\xff\x7f" "hi\0" "\0"),
    BAD_CASE("string without NUL at its end", "\x0f\0\0\0\x02" "a\0" "\x03\0\0\0" "hij" "\0"),
    BAD_CASE("string length truncated", "\x0a\0\0\0\x02" "a\0" "\x03\0" "\0"),
    BAD_CASE("code with bad length", "\x0f\0\0\0\x0d" "a\0" "\x09\0\0\0" "f;\0" "\0"),
    BAD_CASE("symbol without NUL", "\x0f\0\0\0\x0e" "a\0" "\x03\0\0\0" "syy" "\0"),

    /* Booleans. */
    BAD_CASE("bool 2", "\x09\0\0\0\x08" "a\0" "\x02" "\0"),
    BAD_CASE("bool 0xff", "\x09\0\0\0\x08" "a\0" "\xff" "\0"),
    BAD_CASE("bool truncated", "\x08\0\0\0\x08" "a\0" "\0"),

    /* Binary. */
    BAD_CASE("binary length negative", "\x0d\0\0\0\x05" "a\0" "\xff\xff\xff\xff" "\x00" "\0"),
    BAD_CASE("binary length past the end", "\x10\0\0\0\x05" "a\0" "\x04\0\0\0" "\x00" "xyz" "\0"),
    BAD_CASE("binary subtype missing", "\x0c\0\0\0\x05" "a\0" "\0\0\0\0" "\0"),
    BAD_CASE("binary subtype 2 inner length inconsistent",
             "\x13\0\0\0\x05" "a\0" "\x06\0\0\0" "\x02" "\x03\0\0\0" "xy" "\0"),
    BAD_CASE("binary subtype 2 shorter than its inner length",
             "\x10\0\0\0\x05" "a\0" "\x03\0\0\0" "\x02" "\0\0\0" "\0"),

    /* Fixed-size values and compound types. */
    BAD_CASE("ObjectId truncated", "\x13\0\0\0\x07" "a\0" "0123456789a" "\0"),
    BAD_CASE("decimal128 truncated", "\x17\0\0\0\x13" "a\0" "0123456789abcde" "\0"),
    BAD_CASE("regex pattern unterminated", "\x0a\0\0\0\x0b" "a\0" "xy" "\0"),
    BAD_CASE("regex options unterminated", "\x0b\0\0\0\x0b" "a\0" "x\0" "i" "\0"),
    BAD_CASE("DBPointer ObjectId truncated",
             "\x19\0\0\0\x0c" "a\0" "\x02\0\0\0" "c\0" "0123456789a" "\0"),
    BAD_CASE("DBPointer bad string", "\x1a\0\0\0\x0c" "a\0" "\x00\0\0\0" "c\0" "0123456789ab" "\0"),
    BAD_CASE("code_w_scope total larger than its parts",
             "\x19\0\0\0\x0f" "a\0" "\x11\0\0\0" "\x03\0\0\0" "f;\0" "\x05\0\0\0\0" "\0" "\0"),
    BAD_CASE("code_w_scope total smaller than its parts",
             "\x18\0\0\0\x0f" "a\0" "\x0f\0\0\0" "\x03\0\0\0" "f;\0" "\x05\0\0\0\0" "\0"),
    BAD_CASE("code_w_scope total below 14",
             "\x18\0\0\0\x0f" "a\0" "\x0d\0\0\0" "\x03\0\0\0" "f;\0" "\x05\0\0\0\0" "\0"),
    BAD_CASE("code_w_scope total past the document",
             "\x18\0\0\0\x0f" "a\0" "\x20\0\0\0" "\x03\0\0\0" "f;\0" "\x05\0\0\0\0" "\0"),
    BAD_CASE("code_w_scope string length 0",
             "\x18\0\0\0\x0f" "a\0" "\x10\0\0\0" "\x00\0\0\0" "f;\0" "\x05\0\0\0\0" "\0"),
    BAD_CASE("code_w_scope string eats the scope",
             "\x18\0\0\0\x0f" "a\0" "\x10\0\0\0" "\x08\0\0\0" "f;\0" "\x05\0\0\0\0" "\0"),
    BAD_CASE("code_w_scope scope with a bad element",
             "\x1f\0\0\0\x0f" "a\0" "\x17\0\0\0" "\x03\0\0\0" "f;\0"
             "\x0c\0\0\0\x14" "x\0" "\x01\0\0\0" "\0" "\0"),
    BAD_CASE("code_w_scope scope missing its NUL",
             "\x18\0\0\0\x0f" "a\0" "\x10\0\0\0" "\x03\0\0\0" "f;\0" "\x05\0\0\0\x01" "\0"),
    BAD_CASE("bad element inside an array",
             "\x14\0\0\0\x04" "a\0" "\x0c\0\0\0\x08" "0\0" "\x07\0\0\0" "\0" "\0"),
};

static void
test_cases(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct doc_case *c = &cases[i];
        bson_error_t error;
        uint32_t len = 0xdeadbeef;
        bool got;

        memset(&error, 0, sizeof error);
        got = wire_doc_check(c->bytes, c->len, 0, &len, &error);
        if (c->valid) {
            ok(got && len == c->len, "valid: %s (len %u)", c->name, (unsigned)len);
            if (!got)
                diag("error: %s", error.message);
        } else {
            ok(!got && error.domain == WIRE_ERROR_DOMAIN && error.code == c->code,
               "rejected: %s (%s)", c->name, error.message);
        }
    }
}

static void
test_doc_len(void)
{
    static const uint8_t buf[] = {5, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc};
    uint32_t len = 0;
    bson_error_t error;

    ok(wire_doc_check(buf, sizeof buf, 0, &len, &error) && len == 5,
       "document shorter than the buffer: doc_len is the document's length");
    ok(wire_doc_check(buf, sizeof buf, 0, NULL, &error), "doc_len may be NULL");
    ok(!wire_doc_check(buf, 4, 0, &len, &error), "same document with 4 bytes available");
}

/*
 * A document nested `depth` levels ({a: {a: ... {}}}), through documents or
 * arrays. Level i starts at 7 * i (length, type, "a\0"), the innermost empty
 * document follows, then one closing NUL per outer level.
 */
static uint8_t *
nested(uint32_t depth, uint8_t type, size_t *size)
{
    size_t total = 5 + 8 * (size_t)(depth - 1);
    uint8_t *buf = bson_malloc0(total);

    for (size_t i = 0; i + 1 < depth; i++) {
        uint8_t *p = buf + 7 * i;

        wire_frame_write_i32(p, (int32_t)(total - 8 * i));
        p[4] = type;
        p[5] = '0'; /* also a proper array index */
    }
    wire_frame_write_i32(buf + 7 * (size_t)(depth - 1), 5);
    *size = total;
    return buf;
}

struct depth_case {
    const char *name;
    uint32_t depth;
    uint8_t type;
    uint32_t max_depth;
    bool valid;
};

static const struct depth_case depth_cases[] = {
    {"depth 1", 1, BSON_TYPE_DOCUMENT, 0, true},
    {"depth 2", 2, BSON_TYPE_DOCUMENT, 0, true},
    {"depth 100", 100, BSON_TYPE_DOCUMENT, 0, true},
    {"depth 199", 199, BSON_TYPE_DOCUMENT, 0, true},
    {"depth 200", 200, BSON_TYPE_DOCUMENT, 0, true},
    {"depth 200 through arrays", 200, BSON_TYPE_ARRAY, 0, true},
    {"depth 201", 201, BSON_TYPE_DOCUMENT, 0, false},
    {"depth 201 through arrays", 201, BSON_TYPE_ARRAY, 0, false},
    {"depth 1000", 1000, BSON_TYPE_DOCUMENT, 0, false},
    {"depth 10000", 10000, BSON_TYPE_DOCUMENT, 0, false},
    {"depth 100000", 100000, BSON_TYPE_DOCUMENT, 0, false},
    {"depth 100000 through arrays", 100000, BSON_TYPE_ARRAY, 0, false},
    {"depth 200 with explicit max 200", 200, BSON_TYPE_DOCUMENT, 200, true},
    {"depth 201 with explicit max 200", 201, BSON_TYPE_DOCUMENT, 200, false},
    {"depth 10 with max 10", 10, BSON_TYPE_DOCUMENT, 10, true},
    {"depth 11 with max 10", 11, BSON_TYPE_DOCUMENT, 10, false},
    {"depth 1 with max 1", 1, BSON_TYPE_DOCUMENT, 1, true},
    {"depth 2 with max 1", 2, BSON_TYPE_DOCUMENT, 1, false},
    {"depth 201 with max 1000 (clamped to 200)", 201, BSON_TYPE_DOCUMENT, 1000, false},
};

struct depth_run {
    const struct depth_case *c;
    bool got;
    bool lengths_ok;
    bson_error_t error;
};

static void *
depth_thread(void *arg)
{
    struct depth_run *run = arg;
    size_t size;
    uint8_t *buf = nested(run->c->depth, run->c->type, &size);
    uint32_t len = 0;

    /* The built document must be structurally right apart from depth. */
    run->lengths_ok = wire_frame_read_i32(buf) == (int32_t)size && buf[size - 1] == 0;
    run->got = wire_doc_check(buf, size, run->c->max_depth, &len, &run->error);
    if (run->got && len != size)
        run->got = false;
    bson_free(buf);
    return NULL;
}

/*
 * Runs every depth case on a thread with a 128 KiB stack: a validator that
 * recursed once per level would need far more than that for 100,000 levels.
 */
static void
test_depth(void)
{
    for (size_t i = 0; i < sizeof depth_cases / sizeof depth_cases[0]; i++) {
        struct depth_run run;
        pthread_attr_t attr;
        pthread_t th;
        bool started;

        memset(&run, 0, sizeof run);
        run.c = &depth_cases[i];
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 128 * 1024);
        started = pthread_create(&th, &attr, depth_thread, &run) == 0;
        pthread_attr_destroy(&attr);
        if (started)
            pthread_join(th, NULL);
        else
            depth_thread(&run);
        ok(run.lengths_ok, "%s: test document well formed", run.c->name);
        if (run.c->valid)
            ok(run.got, "%s: accepted", run.c->name);
        else
            ok(!run.got && run.error.code == WIRE_ERR_OVERFLOW,
               "%s: rejected as too deep (%s)", run.c->name, run.error.message);
    }
}

static void
test_scope_depth(void)
{
    /* {a: code_w_scope("f;", {})} has depth 2; {a: code_w_scope("f;", {x: {}})} depth 3. */
    static const uint8_t two[] =
        "\x18\0\0\0\x0f" "a\0" "\x10\0\0\0" "\x03\0\0\0" "f;\0" "\x05\0\0\0\0" "\0";
    static const uint8_t three[] = "\x20\0\0\0\x0f" "a\0" "\x18\0\0\0" "\x03\0\0\0" "f;\0"
                                   "\x0d\0\0\0\x03" "x\0" "\x05\0\0\0\0" "\0" "\0";
    bson_error_t error;
    uint32_t len;

    ok(wire_doc_check(two, sizeof two - 1, 2, &len, &error),
       "code_w_scope scope counts as one level: depth 2 ok with max 2");
    ok(!wire_doc_check(two, sizeof two - 1, 1, &len, &error) &&
           error.code == WIRE_ERR_OVERFLOW,
       "code_w_scope scope counts as one level: depth 2 rejected with max 1");
    ok(wire_doc_check(three, sizeof three - 1, 3, &len, &error) && len == sizeof three - 1,
       "document inside a scope: depth 3 ok with max 3");
    ok(!wire_doc_check(three, sizeof three - 1, 2, &len, &error),
       "document inside a scope: depth 3 rejected with max 2");
}

static void
test_wide(void)
{
    /* 100,000 null elements with key "k": 3 bytes each. */
    const size_t n = 100000, total = 5 + 3 * n;
    uint8_t *buf = bson_malloc0(total);
    bson_error_t error;
    uint32_t len = 0;

    wire_frame_write_i32(buf, (int32_t)total);
    for (size_t i = 0; i < n; i++) {
        buf[4 + 3 * i] = BSON_TYPE_NULL;
        buf[5 + 3 * i] = 'k';
    }
    ok(wire_doc_check(buf, total, 0, &len, &error) && len == total,
       "100,000 sibling elements accepted");
    buf[4 + 3 * (n - 1)] = 0x42;
    ok(!wire_doc_check(buf, total, 0, &len, &error), "bad type in the last of 100,000 elements");
    bson_free(buf);
}

/* A document with every element type, built with libbson. */
static bson_t *
rich_doc(void)
{
    bson_t *doc = bson_new(), child, scope;
    bson_oid_t oid;
    bson_decimal128_t dec = {1, 2};

    bson_oid_init_from_string(&oid, "0123456789abcdef01234567");
    BSON_APPEND_DOUBLE(doc, "d", 1.5);
    BSON_APPEND_UTF8(doc, "s", "str");
    BSON_APPEND_DOCUMENT_BEGIN(doc, "o", &child);
    BSON_APPEND_INT32(&child, "i", 1);
    bson_append_document_end(doc, &child);
    BSON_APPEND_ARRAY_BEGIN(doc, "a", &child);
    BSON_APPEND_UTF8(&child, "0", "x");
    bson_append_array_end(doc, &child);
    BSON_APPEND_BINARY(doc, "b", BSON_SUBTYPE_BINARY, (const uint8_t *)"xyz", 3);
    BSON_APPEND_UNDEFINED(doc, "u");
    BSON_APPEND_OID(doc, "id", &oid);
    BSON_APPEND_BOOL(doc, "t", true);
    BSON_APPEND_DATE_TIME(doc, "dt", 12345);
    BSON_APPEND_NULL(doc, "n");
    BSON_APPEND_REGEX(doc, "re", "^a", "i");
    BSON_APPEND_DBPOINTER(doc, "p", "c.d", &oid);
    BSON_APPEND_CODE(doc, "c", "f();");
    BSON_APPEND_SYMBOL(doc, "sy", "sym");
    bson_init(&scope);
    BSON_APPEND_INT32(&scope, "x", 2);
    BSON_APPEND_CODE_WITH_SCOPE(doc, "cs", "g();", &scope);
    bson_destroy(&scope);
    BSON_APPEND_INT32(doc, "i", -1);
    BSON_APPEND_TIMESTAMP(doc, "ts", 1, 2);
    BSON_APPEND_INT64(doc, "l", 1);
    BSON_APPEND_DECIMAL128(doc, "dec", &dec);
    BSON_APPEND_MINKEY(doc, "mn");
    BSON_APPEND_MAXKEY(doc, "mx");
    return doc;
}

/* Walks doc and everything nested in it with bson_iter and an explicit stack. */
static bool
libbson_walks(const bson_t *doc)
{
    /* Wrapped: libbson over-aligns bson_iter_t, which a bare array rejects. */
    struct {
        bson_iter_t it;
    } stack[8];
    size_t depth = 1;

    if (!bson_iter_init(&stack[0].it, doc))
        return false;
    while (depth > 0) {
        bson_iter_t *it = &stack[depth - 1].it;
        uint32_t code_len, scope_len;
        const uint8_t *scope;
        bson_t scope_doc;

        if (!bson_iter_next(it)) {
            if (it->err_off != 0)
                return false;
            depth--;
            continue;
        }
        if (depth == sizeof stack / sizeof stack[0])
            return false;
        if (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) {
            if (!bson_iter_recurse(it, &stack[depth].it))
                return false;
            depth++;
        } else if (BSON_ITER_HOLDS_CODEWSCOPE(it)) {
            if (!bson_iter_codewscope(it, &code_len, &scope_len, &scope) ||
                !bson_init_static(&scope_doc, scope, scope_len) ||
                !bson_iter_init(&stack[depth].it, &scope_doc))
                return false;
            depth++;
        }
    }
    return true;
}

static void
test_rich_and_mutations(void)
{
    static const uint8_t values[] = {0x00, 0x01, 0x02, 0x05, 0x7f, 0x80, 0xfe, 0xff};
    bson_t *doc = rich_doc();
    const uint32_t n = doc->len;
    uint8_t *copy = bson_malloc(n);
    bson_error_t error;
    uint32_t len = 0;
    size_t accepted = 0, disagree = 0, truncated_ok = 0;

    ok(wire_doc_check(bson_get_data(doc), n, 0, &len, &error) && len == n,
       "libbson document with every element type accepted");

    /* Every proper prefix must be rejected; each is copied so ASan sees the exact end. */
    for (uint32_t cut = 0; cut < n; cut++) {
        uint8_t *prefix = bson_malloc(cut + 1);

        memcpy(prefix, bson_get_data(doc), cut);
        if (wire_doc_check(prefix, cut, 0, &len, &error))
            truncated_ok++;
        bson_free(prefix);
    }
    is_int((long long)truncated_ok, 0, "all %u truncations of the rich document rejected",
           (unsigned)n);

    /*
     * Single-byte mutations: whatever wire_doc_check accepts, bson_iter must
     * walk without error (bson_validate is not used: it also checks UTF-8,
     * which wire_doc_check deliberately leaves to libbson).
     */
    for (uint32_t at = 0; at < n; at++) {
        for (size_t v = 0; v < sizeof values; v++) {
            bson_t view;

            memcpy(copy, bson_get_data(doc), n);
            if (copy[at] == values[v])
                continue;
            copy[at] = values[v];
            if (!wire_doc_check(copy, n, 0, &len, &error))
                continue;
            accepted++;
            if (!bson_init_static(&view, copy, len) || !libbson_walks(&view)) {
                disagree++;
                diag("mutation at %u to 0x%02x accepted but libbson rejects", (unsigned)at,
                     values[v]);
            }
        }
    }
    ok(accepted > 0, "some single-byte mutations are still valid BSON (%zu)", accepted);
    is_int((long long)disagree, 0, "libbson iterates every accepted mutation without error");
    bson_free(copy);
    bson_destroy(doc);
}

/*
 * Keys of every length from 0 to 40, with 0 to 20 bytes after them in
 * their document: the key's NUL is found sixteen, eight or one byte at a
 * time depending on what is left before the document's end, and every
 * boundary is met. A key that runs into the document's final NUL is
 * refused at every length; the top level is recorded with each key's
 * length.
 */
static void
test_key_lengths(void)
{
    unsigned good = 0, refused = 0, n_cases = 0;

    for (size_t klen = 0; klen <= 40; klen++) {
        for (size_t tail = 0; tail <= 20; tail++) {
            uint8_t doc[128];
            struct wire_doc_top top;
            bson_error_t error;
            uint32_t len = 0;
            size_t n = 4;

            /* {key: null, "t": "x..." (a string of tail bytes, when tail > 0)} */
            doc[n++] = 0x0A;
            memset(doc + n, 'k', klen);
            n += klen;
            doc[n++] = 0;
            if (tail > 0) {
                doc[n++] = 0x02;
                doc[n++] = 't';
                doc[n++] = 0;
                wire_frame_write_i32(doc + n, (int32_t)tail);
                n += 4;
                memset(doc + n, 'x', tail - 1);
                n += tail - 1;
                doc[n++] = 0;
            }
            doc[n++] = 0;
            wire_frame_write_i32(doc, (int32_t)n);
            n_cases++;
            if (wire_doc_check_top(doc, n, 0, &len, &top, &error) && len == n &&
                top.all && top.n == (tail > 0 ? 2u : 1u) && top.off[0] == 4 &&
                top.key_len[0] == klen)
                good++;
            else
                diag("key of %zu bytes, %zu after: refused or misread", klen, tail);
            /* the same key left unterminated: its NUL would be the document's own */
            n = 4;
            doc[n++] = 0x0A;
            memset(doc + n, 'k', klen + 1 + tail);
            n += klen + 1 + tail;
            doc[n++] = 0;
            wire_frame_write_i32(doc, (int32_t)n);
            if (!wire_doc_check(doc, n, 0, &len, &error) && error.code == WIRE_ERR_INVALID_BSON)
                refused++;
            else
                diag("unterminated key of %zu bytes accepted", klen + 1 + tail);
        }
    }
    is_int(good, n_cases, "keys of 0 to 40 bytes, 0 to 20 bytes before the end: each read");
    is_int(refused, n_cases, "and each left unterminated: refused");
}

int
main(void)
{
    test_cases();
    test_doc_len();
    test_depth();
    test_scope_depth();
    test_wide();
    test_rich_and_mutations();
    test_key_lengths();
    return done_testing();
}
