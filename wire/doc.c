/*
 * wire/doc.c: owns wire_doc_check, the structural validation of one
 * untrusted BSON document: lengths in bounds and consistent, every element
 * type known, strings and keys terminated, booleans 0/1, code-with-scope
 * sizes, nesting depth. Nested documents are walked with an explicit
 * fixed-size stack, never by recursion. On the way it can record where the
 * top-level elements are (wire_doc_check_top), so that the command parse
 * does not walk the body a second time. It does not check UTF-8, array index
 * keys or duplicate fields, and does not interpret values: libbson does that
 * once a document has passed here.
 */
#include "config.h"

#include "wire/doc.h"

#include "wire/frame.h"
#include "wire/reader.h" /* the fixed-size table, key end and string size, shared with the reader */

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
    len = wire_frame_read_i32(w->buf + w->pos);
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
    n = wire_frame_read_i32(p);
    if (n < 0 || (size_t)n > room - 5)
        return bad(error, w->pos, "binary length out of bounds");
    /* Old subtype 2 repeats the length inside the payload; libbson insists they agree. */
    if (p[4] == BSON_SUBTYPE_BINARY_DEPRECATED && (n < 4 || wire_frame_read_i32(p + 5) != n - 4))
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
    total = wire_frame_read_i32(p);
    if (total < 4 + 5 + MIN_DOC_LEN || (size_t)total > room)
        return bad(error, w->pos, "code_w_scope length out of bounds");
    code = wire_reader_string_size(p + 4, (size_t)total - 4);
    if (code == 0)
        return bad(error, w->pos, "code_w_scope code string malformed");
    scope = (size_t)total - 4 - code;
    if (scope < MIN_DOC_LEN || (size_t)wire_frame_read_i32(p + 4 + code) != scope)
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
        return skip(w, wire_reader_string_size(p, room), room, error, "string length or terminator bad");
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
        n = wire_reader_string_size(p, room);
        return skip(w, n == 0 ? 0 : n + 12, room, error, "DBPointer malformed");
    case BSON_TYPE_CODEWSCOPE:
        return code_w_scope(w, room, error);
    default:
        return bad(error, w->pos, "unknown element type");
    }
}

/*
 * The walk. Valid values of a fixed size, strings, binaries (but the old
 * subtype 2), documents and arrays, nearly all of what drivers send, are
 * taken here; every other type, and
 * any of these that is malformed, goes through value(), which names the
 * fault (so the fast path never decides an error by itself).
 */
bool
wire_doc_check_top(const uint8_t *buf, size_t avail, uint32_t max_depth, uint32_t *doc_len,
                   struct wire_doc_top *top, bson_error_t *error)
{
    struct walk w;
    size_t total, pos, end;
    uint32_t depth, n_top = 0;

    w.buf = buf;
    w.pos = 0;
    w.depth = 0;
    w.max_depth = max_depth == 0 || max_depth > WIRE_DOC_MAX_DEPTH ? WIRE_DOC_MAX_DEPTH
                                                                     : max_depth;
    if (!enter(&w, avail, error))
        return false;
    total = w.ends[0] + 1;
    pos = w.pos;
    depth = w.depth;
    end = w.ends[0];

    for (;;) {
        const uint8_t *key, *v;
        uint8_t type;
        size_t room;
        uint32_t size;
        int32_t n;

        if (pos == end) {
            pos++;
            if (--depth == 0)
                break;
            end = w.ends[depth - 1];
            continue;
        }
        type = buf[pos];
        if (type == BSON_TYPE_EOD)
            return bad(error, pos, "elements do not end at the document's NUL");
        key = wire_reader_key_end(buf + pos + 1, buf + end);
        if ((size_t)(key - buf) >= end)
            return bad(error, pos, "key not terminated inside the document");
        if (top != NULL && depth == 1) {
            if (n_top < WIRE_DOC_TOP_MAX) {
                top->off[n_top] = (uint32_t)pos;
                top->key_len[n_top] = (uint32_t)((size_t)(key - buf) - pos - 1);
            }
            n_top++;
        }
        pos = (size_t)(key - buf) + 1;
        v = key + 1;
        room = end - pos;
        size = wire_reader_fixed_sizes[type];
        if (size > 0) {
            if (size - 1 <= room && (type != BSON_TYPE_BOOL || v[0] <= 1)) {
                pos += size - 1;
                continue;
            }
        } else if (type == BSON_TYPE_UTF8) {
            if ((size = wire_reader_string_size(v, room)) != 0) {
                pos += size;
                continue;
            }
        } else if (type == BSON_TYPE_BINARY) {
            /* Length, subtype, bytes (a session id, a signature); the old
             * subtype 2, with its inner length, goes the slow way. */
            if (room >= 5 && (n = wire_frame_read_i32(v)) >= 0 && (size_t)n <= room - 5 &&
                v[4] != BSON_SUBTYPE_BINARY_DEPRECATED) {
                pos += 5 + (size_t)n;
                continue;
            }
        } else if (type == BSON_TYPE_DOCUMENT || type == BSON_TYPE_ARRAY) {
            if (depth < w.max_depth && room >= 4 && (n = wire_frame_read_i32(v)) >= MIN_DOC_LEN &&
                (size_t)n <= room && v[n - 1] == 0) {
                end = pos + (size_t)n - 1;
                w.ends[depth++] = end;
                pos += 4;
                continue;
            }
        }
        w.pos = pos;
        w.depth = depth;
        if (!value(&w, type, end, error))
            return false;
        pos = w.pos;
        depth = w.depth;
        end = w.ends[depth - 1];
    }
    if (doc_len)
        *doc_len = (uint32_t)total;
    if (top != NULL) {
        top->all = n_top <= WIRE_DOC_TOP_MAX;
        top->n = top->all ? n_top : WIRE_DOC_TOP_MAX;
    }
    return true;
}

bool
wire_doc_check(const uint8_t *buf, size_t avail, uint32_t max_depth, uint32_t *doc_len,
               bson_error_t *error)
{
    return wire_doc_check_top(buf, avail, max_depth, doc_len, NULL, error);
}
