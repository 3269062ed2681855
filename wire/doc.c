/*
 * wire/doc.c: owns wire_doc_check, the structural validation of one
 * untrusted BSON document: lengths in bounds and consistent, every element
 * type known, strings and keys terminated, booleans 0/1, code-with-scope
 * sizes, nesting depth. Nested documents are walked with an explicit
 * fixed-size stack, never by recursion. It does not check UTF-8, array index
 * keys or duplicate fields, and does not interpret values: libbson does that
 * once a document has passed here.
 */
#include "config.h"

#include "wire/doc.h"

#include "wire/frame.h"
#include "wire/reader.h" /* wire_reader_i32: inline, read for every document and string */

#include <string.h>

#define MIN_DOC_LEN 5

/* The walk: position of the next byte and the open documents, innermost last. */
struct walk {
    const uint8_t *buf;
    size_t pos;
    size_t ends[WIRE_DOC_MAX_DEPTH]; /* offset of each open document's final NUL */
    uint32_t depth;
    uint32_t max_depth;
};

static bool
bad(bson_error_t *error, size_t off, const char *what)
{
    bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_INVALID_BSON,
                   "invalid BSON at offset %zu: %s", off, what);
    return false;
}

/* Size of a length-prefixed string at p with room bytes available, or 0 when malformed. */
static size_t
string_size(const uint8_t *p, size_t room)
{
    int32_t n;

    if (room < 5)
        return 0;
    n = wire_reader_i32(p);
    if (n < 1 || (size_t)n > room - 4 || p[4 + (size_t)n - 1] != 0)
        return 0;
    return 4 + (size_t)n;
}

/* Size of a NUL-terminated string at p within room bytes, or 0 when unterminated. */
static size_t
cstring_size(const uint8_t *p, size_t room)
{
    const uint8_t *nul = memchr(p, 0, room);

    return nul ? (size_t)(nul - p) + 1 : 0;
}

/* Enters the document at w->pos, which must lie entirely before limit. */
static bool
enter(struct walk *w, size_t limit, bson_error_t *error)
{
    size_t room = limit - w->pos;
    int32_t len;

    if (w->depth >= w->max_depth) {
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_OVERFLOW,
                       "invalid BSON at offset %zu: nesting deeper than %u", w->pos,
                       (unsigned)w->max_depth);
        return false;
    }
    if (room < 4)
        return bad(error, w->pos, "document length truncated");
    len = wire_reader_i32(w->buf + w->pos);
    if (len < MIN_DOC_LEN)
        return bad(error, w->pos, "document length below 5");
    if ((size_t)len > room)
        return bad(error, w->pos, "document length past the end of its container");
    if (w->buf[w->pos + (size_t)len - 1] != 0)
        return bad(error, w->pos, "document does not end with NUL");
    w->ends[w->depth++] = w->pos + (size_t)len - 1;
    w->pos += 4;
    return true;
}

static bool
binary(struct walk *w, size_t room, bson_error_t *error)
{
    const uint8_t *p = w->buf + w->pos;
    int32_t n;

    if (room < 5)
        return bad(error, w->pos, "binary truncated");
    n = wire_reader_i32(p);
    if (n < 0 || (size_t)n > room - 5)
        return bad(error, w->pos, "binary length out of bounds");
    /* Old subtype 2 repeats the length inside the payload; libbson insists they agree. */
    if (p[4] == BSON_SUBTYPE_BINARY_DEPRECATED && (n < 4 || wire_reader_i32(p + 5) != n - 4))
        return bad(error, w->pos, "binary subtype 2 inner length inconsistent");
    w->pos += 5 + (size_t)n;
    return true;
}

static bool
code_w_scope(struct walk *w, size_t room, bson_error_t *error)
{
    const uint8_t *p = w->buf + w->pos;
    size_t code, scope;
    int32_t total;

    if (room < 4)
        return bad(error, w->pos, "code_w_scope truncated");
    total = wire_reader_i32(p);
    if (total < 4 + 5 + MIN_DOC_LEN || (size_t)total > room)
        return bad(error, w->pos, "code_w_scope length out of bounds");
    code = string_size(p + 4, (size_t)total - 4);
    if (code == 0)
        return bad(error, w->pos, "code_w_scope code string malformed");
    scope = (size_t)total - 4 - code;
    if (scope < MIN_DOC_LEN || (size_t)wire_reader_i32(p + 4 + code) != scope)
        return bad(error, w->pos, "code_w_scope length != 4 + code + scope");
    w->pos += 4 + code;
    return enter(w, w->pos + scope, error);
}

/* Skips `size` bytes of value when they fit in room (size 0 means malformed). */
static bool
skip(struct walk *w, size_t size, size_t room, bson_error_t *error, const char *what)
{
    if (size == 0 || size > room)
        return bad(error, w->pos, what);
    w->pos += size;
    return true;
}

/* Checks the value of an element of `type` at w->pos; the open document ends at end. */
static bool
value(struct walk *w, uint8_t type, size_t end, bson_error_t *error)
{
    const uint8_t *p = w->buf + w->pos;
    size_t room = end - w->pos;
    size_t n, m;

    switch (type) {
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_TIMESTAMP:
    case BSON_TYPE_INT64:
        return skip(w, 8, room, error, "8-byte value truncated");
    case BSON_TYPE_INT32:
        return skip(w, 4, room, error, "int32 truncated");
    case BSON_TYPE_DECIMAL128:
        return skip(w, 16, room, error, "decimal128 truncated");
    case BSON_TYPE_OID:
        return skip(w, 12, room, error, "ObjectId truncated");
    case BSON_TYPE_BOOL:
        if (room >= 1 && p[0] > 1)
            return bad(error, w->pos, "bool is neither 0 nor 1");
        return skip(w, 1, room, error, "bool truncated");
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_NULL:
    case BSON_TYPE_MINKEY:
    case BSON_TYPE_MAXKEY:
        return true;
    case BSON_TYPE_UTF8:
    case BSON_TYPE_CODE:
    case BSON_TYPE_SYMBOL:
        return skip(w, string_size(p, room), room, error, "string length or terminator bad");
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        return enter(w, end, error);
    case BSON_TYPE_BINARY:
        return binary(w, room, error);
    case BSON_TYPE_REGEX:
        n = cstring_size(p, room);
        m = n == 0 ? 0 : cstring_size(p + n, room - n);
        return skip(w, m == 0 ? 0 : n + m, room, error, "regex pattern or options unterminated");
    case BSON_TYPE_DBPOINTER:
        n = string_size(p, room);
        return skip(w, n == 0 ? 0 : n + 12, room, error, "DBPointer malformed");
    case BSON_TYPE_CODEWSCOPE:
        return code_w_scope(w, room, error);
    default:
        return bad(error, w->pos, "unknown element type");
    }
}

bool
wire_doc_check(const uint8_t *buf, size_t avail, uint32_t max_depth, uint32_t *doc_len,
               bson_error_t *error)
{
    struct walk w;
    size_t total;

    w.buf = buf;
    w.pos = 0;
    w.depth = 0;
    w.max_depth = max_depth == 0 || max_depth > WIRE_DOC_MAX_DEPTH ? WIRE_DOC_MAX_DEPTH
                                                                     : max_depth;
    if (!enter(&w, avail, error))
        return false;
    total = w.ends[0] + 1;

    while (w.depth > 0) {
        size_t end = w.ends[w.depth - 1];
        const uint8_t *key;
        uint8_t type;

        if (w.pos == end) {
            w.pos++;
            w.depth--;
            continue;
        }
        type = buf[w.pos];
        if (type == BSON_TYPE_EOD)
            return bad(error, w.pos, "elements do not end at the document's NUL");
        /* Unbounded: the open document's final NUL (checked by enter) stops it at the latest. */
        for (key = buf + w.pos + 1; *key != 0; key++)
            ;
        if ((size_t)(key - buf) >= end)
            return bad(error, w.pos, "key not terminated inside the document");
        w.pos = (size_t)(key - buf) + 1;
        if (!value(&w, type, end, error))
            return false;
    }
    if (doc_len)
        *doc_len = (uint32_t)total;
    return true;
}
