/*
 * wire/msg.c: owns whole-message parsing and rebuilding for OP_MSG (flag
 * bits, sections, sequence identifiers, checksum trailer) and the legacy
 * OP_QUERY / OP_REPLY pair, including the bounds of every document they
 * carry (each checked with wire_doc_check). It does not read the header off
 * the socket (wire/frame.c), interpret commands (wire/cmd.c) or build the
 * proxy's own replies (wire/reply.c).
 */
#include "config.h"

#include "wire/msg.h"

#include "wire/crc32c.h"
#include "wire/doc.h"
#include "wire/reader.h"

#include <stdio.h>
#include <string.h>

#define FLAGS_END (WIRE_HEADER_LEN + 4)
#define CRC_LEN 4
#define KIND_BODY 0
#define KIND_SEQUENCE 1
/* Flags the proxy understands among the required (low 16) bits. */
#define SUPPORTED_REQUIRED (WIRE_MSG_CHECKSUM_PRESENT | WIRE_MSG_MORE_TO_COME)

/* Decodes the header of a whole message of len bytes and checks its length and opcode. */
static bool
header(const uint8_t *data, size_t len, int32_t opcode, struct wire_header *h,
       bson_error_t *error)
{
    if (len < WIRE_HEADER_LEN)
        return wire_fail(error, WIRE_ERR_OVERFLOW, "message of %zu bytes is shorter than a header",
                         len);
    if (wire_frame_header(data, len, WIRE_MAX_MESSAGE_LEN, h, error) != WIRE_OK)
        return false;
    if ((size_t)h->length != len)
        return wire_fail(error, WIRE_ERR_PROTOCOL, "header length %d but message is %zu bytes",
                         (int)h->length, len);
    if (h->opcode != opcode)
        return wire_fail(error, WIRE_ERR_PROTOCOL, "opcode %d where %d was expected",
                         (int)h->opcode, (int)opcode);
    return true;
}

/*
 * Checks one document at p (avail bytes left in its container), recording
 * its top level in top unless NULL; `what` names it in errors.
 */
static bool
check_doc_top(const uint8_t *p, size_t avail, uint32_t max_depth, uint32_t *len,
              struct wire_doc_top *top, const char *what, bson_error_t *error)
{
    bson_error_t inner;

    if (wire_doc_check_top(p, avail, max_depth, len, top, &inner))
        return true;
    return wire_fail(error, inner.code, "%s: %s", what, inner.message);
}

static bool
check_doc(const uint8_t *p, size_t avail, uint32_t max_depth, uint32_t *len, const char *what,
          bson_error_t *error)
{
    return check_doc_top(p, avail, max_depth, len, NULL, what, error);
}

/* Finds the first key of it equal to key[0..n). */
static bool
find_key(bson_iter_t *it, const char *key, size_t n)
{
    while (bson_iter_next(it)) {
        if (bson_iter_key_len(it) == n && memcmp(bson_iter_key(it), key, n) == 0)
            return true;
    }
    return false;
}

/*
 * mongod's duplicate rule (dotted_path_support::extractElementAtPathOrArrayAlongPath):
 * the dotted id names something in the body when each component but the last
 * is an embedded document holding the next, and either the last component
 * exists or an array is met along the way. {cursor: {id: 1}} with sequence
 * "cursor.firstBatch" is therefore fine; {a: {b: []}} with "a.b" is not.
 */
static bool
in_body(const uint8_t *body, uint32_t body_len, const char *path)
{
    const uint8_t *d = body;
    uint32_t d_len = body_len;

    for (;;) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        bson_t b;
        bson_iter_t it;

        if (!bson_init_static(&b, d, d_len) || !bson_iter_init(&it, &b) ||
            !find_key(&it, path, n))
            return false;
        if (!dot || BSON_ITER_HOLDS_ARRAY(&it))
            return true;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            return false;
        bson_iter_document(&it, &d_len, &d);
        path = dot + 1;
    }
}

/* Parses the kind-1 section whose size field is at data + *pos; sections stop at end. */
static bool
sequence(const uint8_t *data, size_t *pos, size_t end, uint32_t max_depth, struct wire_msg *msg,
         bson_error_t *error)
{
    size_t at = *pos, stop, q;
    const uint8_t *nul;
    struct wire_seq *seq;
    int32_t size;

    if (msg->n_seqs == WIRE_MSG_MAX_SEQUENCES)
        return wire_fail(error, WIRE_ERR_TOO_MANY_SEQUENCES,
                         "more than %d document sequences in OP_MSG", WIRE_MSG_MAX_SEQUENCES);
    if (end - at < 4)
        return wire_fail(error, WIRE_ERR_OVERFLOW, "document sequence size truncated");
    size = wire_frame_read_i32(data + at);
    if (size < 4 + 1 || (size_t)size > end - at)
        return wire_fail(error, WIRE_ERR_OVERFLOW, "document sequence size %d out of bounds",
                         (int)size);
    stop = at + (size_t)size;
    nul = memchr(data + at + 4, 0, (size_t)size - 4);
    if (!nul)
        return wire_fail(error, WIRE_ERR_OVERFLOW, "document sequence identifier not terminated");

    seq = &msg->seqs[msg->n_seqs];
    seq->id = (const char *)(data + at + 4);
    for (uint32_t i = 0; i < msg->n_seqs; i++) {
        if (strcmp(msg->seqs[i].id, seq->id) == 0)
            return wire_fail(error, WIRE_ERR_DUPLICATE_SEQUENCE,
                             "Duplicate document sequence: %.64s", seq->id);
    }
    q = (size_t)(nul - data) + 1;
    seq->docs = data + q;
    seq->docs_len = (uint32_t)(stop - q);
    seq->count = 0;
    while (q < stop) {
        uint32_t len;

        if (!check_doc(data + q, stop - q, max_depth, &len, "document sequence", error))
            return false;
        q += len;
        seq->count++;
    }
    msg->n_seqs++;
    *pos = stop;
    return true;
}

bool
wire_msg_parse(const uint8_t *data, size_t len, uint32_t max_depth, struct wire_msg *msg,
               bson_error_t *error)
{
    size_t pos = FLAGS_END, end = len;

    /* Only what is read before it is set: seqs[i] is set for i < n_seqs, top by the body's
     * check. */
    memset(&msg->header, 0, sizeof msg->header);
    msg->flags = 0;
    msg->body = NULL;
    msg->body_len = 0;
    msg->n_seqs = 0;
    msg->top.n = 0;
    msg->top.all = false;
    if (!header(data, len, WIRE_OP_MSG, &msg->header, error))
        return false;
    if (len < FLAGS_END)
        return wire_fail(error, WIRE_ERR_OVERFLOW, "OP_MSG flag word truncated to %zu bytes",
                         len - WIRE_HEADER_LEN);
    msg->flags = (uint32_t)wire_frame_read_i32(data + WIRE_HEADER_LEN);
    if (msg->flags & WIRE_MSG_REQUIRED_BITS & ~SUPPORTED_REQUIRED)
        return wire_fail(error, WIRE_ERR_ILLEGAL_OP_MSG_FLAG,
                         "Message contains illegal flags value: 0x%08x", (unsigned)msg->flags);
    if (msg->flags & WIRE_MSG_CHECKSUM_PRESENT) {
        if (len - FLAGS_END < CRC_LEN)
            return wire_fail(error, WIRE_ERR_OVERFLOW, "OP_MSG too short for its checksum");
        end = len - CRC_LEN;
    }

    while (pos < end) {
        uint8_t kind = data[pos++];

        if (kind == KIND_SEQUENCE) {
            if (!sequence(data, &pos, end, max_depth, msg, error))
                return false;
        } else if (kind == KIND_BODY) {
            if (msg->body)
                return wire_fail(error, WIRE_ERR_MULTIPLE_BODIES,
                                 "Multiple body sections in message");
            if (!check_doc_top(data + pos, end - pos, max_depth, &msg->body_len, &msg->top,
                               "OP_MSG body", error))
                return false;
            msg->body = data + pos;
            pos += msg->body_len;
        } else {
            return wire_fail(error, WIRE_ERR_UNKNOWN_SECTION, "Unknown section kind %u",
                             (unsigned)kind);
        }
    }
    if (!msg->body)
        return wire_fail(error, WIRE_ERR_NO_BODY, "OP_MSG messages must have a body");

    for (uint32_t i = 0; i < msg->n_seqs; i++) {
        if (in_body(msg->body, msg->body_len, msg->seqs[i].id))
            return wire_fail(error, WIRE_ERR_SEQUENCE_IN_BODY,
                             "Duplicate field between body and document sequence %.64s",
                             msg->seqs[i].id);
    }
    if ((msg->flags & WIRE_MSG_CHECKSUM_PRESENT) &&
        (uint32_t)wire_frame_read_i32(data + end) != wire_crc32c(data, end))
        return wire_fail(error, WIRE_ERR_CHECKSUM_MISMATCH,
                         "OP_MSG checksum does not match contents");
    return true;
}

bool
wire_msg_parse_query(const uint8_t *data, size_t len, uint32_t max_depth,
                     struct wire_query *query, bson_error_t *error)
{
    size_t pos = FLAGS_END;
    const uint8_t *nul;

    memset(query, 0, sizeof *query);
    if (!header(data, len, WIRE_OP_QUERY, &query->header, error))
        return false;
    if (len < FLAGS_END)
        return wire_fail(error, WIRE_ERR_OVERFLOW, "OP_QUERY flags truncated");
    query->flags = wire_frame_read_i32(data + WIRE_HEADER_LEN);
    nul = memchr(data + pos, 0, len - pos);
    if (!nul)
        return wire_fail(error, WIRE_ERR_OVERFLOW, "OP_QUERY fullCollectionName not terminated");
    query->full_collection = (const char *)(data + pos);
    pos = (size_t)(nul - data) + 1;
    if (len - pos < 8)
        return wire_fail(error, WIRE_ERR_OVERFLOW,
                         "OP_QUERY numberToSkip/numberToReturn truncated");
    query->skip = wire_frame_read_i32(data + pos);
    query->n_return = wire_frame_read_i32(data + pos + 4);
    pos += 8;
    if (!check_doc(data + pos, len - pos, max_depth, &query->query_len, "OP_QUERY query", error))
        return false;
    query->query = data + pos;
    pos += query->query_len;
    if (pos < len) {
        if (!check_doc(data + pos, len - pos, max_depth, &query->selector_len, "OP_QUERY selector",
                 error))
            return false;
        query->selector = data + pos;
        pos += query->selector_len;
    }
    if (pos != len)
        return wire_fail(error, WIRE_ERR_PROTOCOL, "%zu bytes after the OP_QUERY selector",
                         len - pos);
    return true;
}

bool
wire_msg_parse_reply(const uint8_t *data, size_t len, uint32_t max_depth,
                     struct wire_reply *reply, bson_error_t *error)
{
    const size_t docs_at = WIRE_HEADER_LEN + 20;
    size_t pos = docs_at;

    memset(reply, 0, sizeof *reply);
    if (!header(data, len, WIRE_OP_REPLY, &reply->header, error))
        return false;
    if (len < docs_at)
        return wire_fail(error, WIRE_ERR_OVERFLOW, "OP_REPLY fields truncated");
    reply->flags = wire_frame_read_i32(data + 16);
    reply->cursor_id = wire_frame_read_i64(data + 20);
    reply->starting_from = wire_frame_read_i32(data + 28);
    reply->n_returned = wire_frame_read_i32(data + 32);
    if (reply->n_returned < 0)
        return wire_fail(error, WIRE_ERR_PROTOCOL, "OP_REPLY numberReturned %d is negative",
                         (int)reply->n_returned);
    for (int32_t i = 0; i < reply->n_returned; i++) {
        uint32_t doc_len;

        if (pos == len)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_REPLY numberReturned %d but %d documents", (int)reply->n_returned,
                             (int)i);
        if (!check_doc(data + pos, len - pos, max_depth, &doc_len, "OP_REPLY document", error))
            return false;
        pos += doc_len;
    }
    if (pos != len)
        return wire_fail(error, WIRE_ERR_PROTOCOL, "%zu bytes after OP_REPLY's %d documents",
                         len - pos, (int)reply->n_returned);
    reply->docs = data + docs_at;
    reply->docs_len = (uint32_t)(len - docs_at);
    return true;
}

/*
 * Whether a decimal128 (16 bytes, little-endian, IEEE 754-2008 BID) is a
 * number other than zero: NaN is not; infinity is; otherwise its
 * coefficient is not zero. A coefficient past 10^34 - 1 (the "11" form, or
 * too large) is non-canonical, read as zero by the specification.
 */
static bool
decimal128_nonzero(const uint8_t *v)
{
    uint64_t lo = (uint64_t)wire_frame_read_i64(v), hi = (uint64_t)wire_frame_read_i64(v + 8);
    const uint64_t max_hi = 0x0001ed09bead87c0ull, max_lo = 0x378d8e63ffffffffull; /* 10^34-1 */

    if ((hi & 0x7c00000000000000ull) == 0x7c00000000000000ull)
        return false; /* NaN */
    if ((hi & 0x7c00000000000000ull) == 0x7800000000000000ull)
        return true; /* infinity */
    if ((hi & 0x6000000000000000ull) == 0x6000000000000000ull)
        return false; /* the "11" form: a coefficient past 2^113, non-canonical */
    hi &= 0x0001ffffffffffffull;
    if (hi > max_hi || (hi == max_hi && lo > max_lo))
        return false; /* past 10^34 - 1: non-canonical */
    return hi != 0 || lo != 0;
}

/* What an "ok" of `type` with its value at v says (wire_msg_ok). */
static int
ok_value(uint8_t type, const uint8_t *v)
{
    uint64_t bits;
    double d;

    switch (type) {
    case BSON_TYPE_BOOL:
        return v[0] != 0;
    case BSON_TYPE_INT32:
        return wire_frame_read_i32(v) != 0;
    case BSON_TYPE_INT64:
        return wire_frame_read_i64(v) != 0;
    case BSON_TYPE_DOUBLE:
        bits = (uint64_t)wire_frame_read_i64(v);
        memcpy(&d, &bits, sizeof d);
        return d != 0.0 && d == d; /* NaN != 0.0 is true: it is refused by name */
    case BSON_TYPE_DECIMAL128:
        return decimal128_nonzero(v);
    default:
        return 0; /* a string, a document, null, ...: not the server's ok */
    }
}

int
wire_msg_ok(const uint8_t *body, uint32_t body_len)
{
    struct wire_reader top;

    if (!wire_reader_init(&top, body, body_len))
        return -1;
    while (wire_reader_next(&top))
        if (top.key_len == 2 && top.key[0] == 'o' && top.key[1] == 'k')
            return ok_value(top.type, top.value);
    return -1;
}

bool
wire_msg_top_has(const uint8_t *body, uint32_t body_len, const struct wire_doc_top *top,
                 const char *key, uint32_t key_len)
{
    struct wire_reader r;

    if (top && top->all) {
        for (uint32_t i = 0; i < top->n; i++)
            if (top->key_len[i] == key_len && memcmp(body + top->off[i] + 1, key, key_len) == 0)
                return true;
        return false;
    }
    if (!wire_reader_init(&r, body, body_len))
        return false;
    while (wire_reader_next(&r))
        if (r.key_len == key_len && memcmp(r.key, key, key_len) == 0)
            return true;
    return false;
}

int
wire_msg_ok_top(const uint8_t *body, uint32_t body_len, const struct wire_doc_top *top)
{
    if (!top->all)
        return wire_msg_ok(body, body_len);
    for (uint32_t i = 0; i < top->n; i++) {
        const uint8_t *e = body + top->off[i];

        if (top->key_len[i] == 2 && e[1] == 'o' && e[2] == 'k')
            return ok_value(e[0], e + 4);
    }
    return -1;
}

void
wire_msg_clear_flags(uint8_t *data, size_t len, uint32_t bits)
{
    uint32_t flags;

    if (len < FLAGS_END)
        return;
    /* The trailer cannot be removed in place, so checksumPresent is never cleared here. */
    bits &= ~WIRE_MSG_CHECKSUM_PRESENT;
    flags = (uint32_t)wire_frame_read_i32(data + WIRE_HEADER_LEN) & ~bits;
    wire_frame_write_i32(data + WIRE_HEADER_LEN, (int32_t)flags);
    if ((flags & WIRE_MSG_CHECKSUM_PRESENT) && len >= FLAGS_END + CRC_LEN)
        wire_frame_write_i32(data + len - CRC_LEN, (int32_t)wire_crc32c(data, len - CRC_LEN));
}

/* Allocates a message of total bytes and writes its header; NULL when total overflows int32. */
static uint8_t *
start(size_t total, const struct wire_header *from, int32_t opcode, size_t *out_len)
{
    struct wire_header h;
    uint8_t *out;

    if (total > INT32_MAX)
        return NULL;
    h.length = (int32_t)total;
    h.request_id = from->request_id;
    h.response_to = from->response_to;
    h.opcode = opcode;
    out = bson_malloc(total);
    wire_frame_put_header(out, &h);
    *out_len = total;
    return out;
}

uint8_t *
wire_msg_rebuild(const struct wire_msg *msg, const bson_t *body, size_t *out_len)
{
    size_t total = FLAGS_END + 1 + body->len, pos;
    uint8_t *out;

    for (uint32_t i = 0; i < msg->n_seqs; i++)
        total += 1 + 4 + strlen(msg->seqs[i].id) + 1 + msg->seqs[i].docs_len;
    out = start(total, &msg->header, WIRE_OP_MSG, out_len);
    if (!out)
        return NULL;
    wire_frame_write_i32(out + WIRE_HEADER_LEN,
                         (int32_t)(msg->flags & ~WIRE_MSG_CHECKSUM_PRESENT));
    out[FLAGS_END] = KIND_BODY;
    memcpy(out + FLAGS_END + 1, bson_get_data(body), body->len);
    pos = FLAGS_END + 1 + body->len;
    for (uint32_t i = 0; i < msg->n_seqs; i++) {
        const struct wire_seq *seq = &msg->seqs[i];
        size_t id_size = strlen(seq->id) + 1;

        out[pos] = KIND_SEQUENCE;
        wire_frame_write_i32(out + pos + 1, (int32_t)(4 + id_size + seq->docs_len));
        memcpy(out + pos + 5, seq->id, id_size);
        memcpy(out + pos + 5 + id_size, seq->docs, seq->docs_len);
        pos += 5 + id_size + seq->docs_len;
    }
    return out;
}

uint8_t *
wire_msg_rebuild_query(const struct wire_query *query, const bson_t *doc, size_t *out_len)
{
    size_t name_size = strlen(query->full_collection) + 1;
    size_t total = FLAGS_END + name_size + 8 + doc->len + query->selector_len, pos;
    uint8_t *out = start(total, &query->header, WIRE_OP_QUERY, out_len);

    if (!out)
        return NULL;
    wire_frame_write_i32(out + WIRE_HEADER_LEN, query->flags);
    memcpy(out + FLAGS_END, query->full_collection, name_size);
    pos = FLAGS_END + name_size;
    wire_frame_write_i32(out + pos, query->skip);
    wire_frame_write_i32(out + pos + 4, query->n_return);
    pos += 8;
    memcpy(out + pos, bson_get_data(doc), doc->len);
    pos += doc->len;
    if (query->selector)
        memcpy(out + pos, query->selector, query->selector_len);
    return out;
}
