/*
 * tests/unit/test_wire_msg.c: owns the tests of wire/msg.c and wire/crc32c.c:
 * every OP_MSG rule mongod's OpMsg::parse enforces (RELIABILITY A5, OP_MSG
 * part), the checksum, clear_flags and rebuild round trips, and the legacy
 * OP_QUERY / OP_REPLY parsers. Messages are assembled in C from a small table
 * of build steps. It does not test document validation in depth
 * (test_wire_doc.c) or command reading (test_wire_cmd.c).
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "tests/unit/json.h"
#include "wire/crc32c.h"
#include "wire/doc.h"
#include "wire/msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- message builder ------------------------------------------------------ */

enum op {
    END = 0,
    FLAGS,    /* num: the flag word */
    KIND,     /* num: one section-kind byte */
    BODY,     /* str: kind 0 then the document */
    DOC,      /* str: one document */
    SEQ,      /* str: kind 1, a size placeholder, then the identifier (none when NULL) */
    SEQ_END,  /* num: patches the open sequence's size, plus num (may be negative) */
    RAW,      /* str, num: num raw bytes */
    CRC,      /* appends the CRC-32C of everything before it (header length included) */
    BAD_CRC,  /* appends a wrong CRC */
    SHRINK,   /* num: the message (and its header length) loses its last num bytes */
    OPCODE,   /* num: header opcode instead of OP_MSG */
    LEN_DELTA, /* num: header length is off by num from the bytes handed to the parser */
    POKE       /* num, str: overwrites the byte at offset num with str[0] */
};

struct step {
    enum op op;
    int64_t num;
    const char *str;
};

struct built {
    uint8_t *data;
    size_t len;
};

static void
put(uint8_t *buf, size_t *pos, const void *bytes, size_t n)
{
    if (*pos + n > 8192)
        abort();
    memcpy(buf + *pos, bytes, n);
    *pos += n;
}

static void
put_i32(uint8_t *buf, size_t *pos, int64_t v)
{
    uint8_t le[4];

    wire_frame_write_i32(le, (int32_t)v);
    put(buf, pos, le, 4);
}

static void
put_json(uint8_t *buf, size_t *pos, const char *text)
{
    bson_t *doc = json(text);

    put(buf, pos, bson_get_data(doc), doc->len);
    bson_destroy(doc);
}

/* Builds a message from steps; the bytes are an exact-size heap copy so ASan sees the end. */
static struct built
build(const struct step *steps)
{
    uint8_t buf[8192];
    size_t pos = WIRE_HEADER_LEN, seq_at = 0, len;
    int32_t len_delta = 0;
    struct built out;
    uint8_t kind;

    memset(buf, 0, WIRE_HEADER_LEN);
    wire_frame_write_i32(buf + 4, 1234);
    wire_frame_write_i32(buf + 8, 99);
    wire_frame_write_i32(buf + 12, WIRE_OP_MSG);
    for (const struct step *s = steps; s->op != END; s++) {
        switch (s->op) {
        case FLAGS:
            put_i32(buf, &pos, s->num);
            break;
        case KIND:
            kind = (uint8_t)s->num;
            put(buf, &pos, &kind, 1);
            break;
        case BODY:
            kind = 0;
            put(buf, &pos, &kind, 1);
            put_json(buf, &pos, s->str);
            break;
        case DOC:
            put_json(buf, &pos, s->str);
            break;
        case SEQ:
            kind = 1;
            put(buf, &pos, &kind, 1);
            seq_at = pos;
            put_i32(buf, &pos, 0);
            if (s->str)
                put(buf, &pos, s->str, strlen(s->str) + 1);
            break;
        case SEQ_END:
            wire_frame_write_i32(buf + seq_at, (int32_t)((int64_t)(pos - seq_at) + s->num));
            break;
        case RAW:
            put(buf, &pos, s->str, (size_t)s->num);
            break;
        case CRC:
        case BAD_CRC:
            wire_frame_write_i32(buf, (int32_t)(pos + 4));
            put_i32(buf, &pos, wire_crc32c(buf, pos) + (s->op == BAD_CRC ? 1 : 0));
            break;
        case SHRINK:
            pos -= (size_t)s->num;
            break;
        case OPCODE:
            wire_frame_write_i32(buf + 12, (int32_t)s->num);
            break;
        case POKE:
            buf[s->num] = (uint8_t)s->str[0];
            break;
        case LEN_DELTA:
            len_delta = (int32_t)s->num;
            break;
        case END:
            break;
        }
    }
    len = pos;
    wire_frame_write_i32(buf, (int32_t)len + len_delta);
    out.data = bson_malloc(len ? len : 1);
    memcpy(out.data, buf, len);
    out.len = len;
    return out;
}

/* ---- OP_MSG table --------------------------------------------------------- */

#define CHK WIRE_MSG_CHECKSUM_PRESENT
#define PING BODY, 0, "{'ping': 1}"
/* Eight empty kind-1 sections with ids "1" to "8". */
#define SEQS_8 \
    "\1\6\0\0\0" "1\0" "\1\6\0\0\0" "2\0" "\1\6\0\0\0" "3\0" "\1\6\0\0\0" "4\0" \
    "\1\6\0\0\0" "5\0" "\1\6\0\0\0" "6\0" "\1\6\0\0\0" "7\0" "\1\6\0\0\0" "8\0"

struct msg_case {
    const char *name;
    struct step steps[14];
    uint32_t code;     /* 0: must parse */
    uint32_t n_seqs;   /* when valid */
    uint32_t count0;   /* documents in the first sequence, when valid and n_seqs > 0 */
    uint32_t max_depth;
};

static const struct msg_case msg_cases[] = {
    /* Valid messages. */
    {"body only", {{FLAGS, 0, NULL}, {PING}}, 0, 0, 0, 0},
    {"body then sequence of 2",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "docs"}, {DOC, 0, "{'a': 1}"}, {DOC, 0, "{'a': 2}"},
      {SEQ_END, 0, NULL}},
     0, 1, 2, 0},
    {"body + 2 sequences",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "documents"}, {DOC, 0, "{'a': 1}"},
      {DOC, 0, "{'a': 2}"}, {SEQ_END, 0, NULL}, {SEQ, 0, "updates"}, {DOC, 0, "{'q': {}}"},
      {SEQ_END, 0, NULL}},
     0, 2, 2, 0},
    {"sequence then body",
     {{FLAGS, 0, NULL}, {SEQ, 0, "docs"}, {DOC, 0, "{'a': 1}"}, {SEQ_END, 0, NULL}, {PING}},
     0, 1, 1, 0},
    {"empty sequence then body then sequence",
     {{FLAGS, 0, NULL}, {SEQ, 0, "empty"}, {SEQ_END, 0, NULL}, {PING}, {SEQ, 0, "docs"},
      {DOC, 0, "{'a': 1}"}, {SEQ_END, 0, NULL}},
     0, 2, 0, 0},
    {"empty sequence identifier", {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, ""}, {SEQ_END, 0, NULL}},
     0, 1, 0, 0},
    {"checksum present and correct", {{FLAGS, CHK, NULL}, {PING}, {CRC, 0, NULL}}, 0, 0, 0, 0},
    {"checksum with a sequence",
     {{FLAGS, CHK, NULL}, {PING}, {SEQ, 0, "docs"}, {DOC, 0, "{'a': 1}"}, {SEQ_END, 0, NULL},
      {CRC, 0, NULL}},
     0, 1, 1, 0},
    {"exhaustAllowed set", {{FLAGS, WIRE_MSG_EXHAUST_ALLOWED, NULL}, {PING}}, 0, 0, 0, 0},
    {"moreToCome set", {{FLAGS, WIRE_MSG_MORE_TO_COME, NULL}, {PING}}, 0, 0, 0, 0},
    {"all optional bits 16-31 set", {{FLAGS, 0xffff0000u, NULL}, {PING}}, 0, 0, 0, 0},
    {"all known bits and checksum",
     {{FLAGS, 0xffff0003u, NULL}, {PING}, {CRC, 0, NULL}}, 0, 0, 0, 0},
    {"sequence and body share a prefix only (cursor.firstBatch)",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'cursor': {'ns': 'foo.bar', 'id': 1}}"},
      {SEQ, 0, "cursor.firstBatch"}, {DOC, 0, "{'_id': 1}"}, {SEQ_END, 0, NULL}},
     0, 1, 1, 0},
    {"dotted id whose first component is a scalar",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'a': 1}"}, {SEQ, 0, "a.b"}, {SEQ_END, 0, NULL}}, 0, 1, 0,
     0},
    {"dotted id with a missing leaf",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'a': {'c': 1}}"}, {SEQ, 0, "a.b"}, {SEQ_END, 0, NULL}}, 0,
     1, 0, 0},
    {"body key with a dot is not a path",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'a.b': 1}"}, {SEQ, 0, "a.b"}, {SEQ_END, 0, NULL}}, 0, 1, 0,
     0},
    {"8 sequences (the limit)", {{FLAGS, 0, NULL}, {PING}, {RAW, sizeof SEQS_8 - 1, SEQS_8}},
     0, 8, 0, 0},
    {"body at exactly max_depth 2", {{FLAGS, 0, NULL}, {BODY, 0, "{'a': {}}"}}, 0, 0, 0, 2},

    /* Section structure. */
    {"no body", {{FLAGS, 0, NULL}}, WIRE_ERR_NO_BODY, 0, 0, 0},
    {"no body, checksum only", {{FLAGS, CHK, NULL}, {CRC, 0, NULL}}, WIRE_ERR_NO_BODY, 0, 0, 0},
    {"no body even with a sequence",
     {{FLAGS, 0, NULL}, {SEQ, 0, "docs"}, {SEQ_END, 0, NULL}}, WIRE_ERR_NO_BODY, 0, 0, 0},
    {"two bodies", {{FLAGS, 0, NULL}, {PING}, {BODY, 0, "{'pong': 1}"}},
     WIRE_ERR_MULTIPLE_BODIES, 0, 0, 0},
    {"two bodies around a sequence",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "docs"}, {SEQ_END, 0, NULL}, {PING}},
     WIRE_ERR_MULTIPLE_BODIES, 0, 0, 0},
    {"unknown section kind 2", {{FLAGS, 0, NULL}, {PING}, {KIND, 2, NULL}, {DOC, 0, "{}"}},
     WIRE_ERR_UNKNOWN_SECTION, 0, 0, 0},
    {"unknown section kind 0x99", {{FLAGS, 0, NULL}, {KIND, 0x99, NULL}, {RAW, 4, "\4\0\0\0"}},
     WIRE_ERR_UNKNOWN_SECTION, 0, 0, 0},
    {"unknown section kind 0xff after a body", {{FLAGS, 0, NULL}, {PING}, {KIND, 0xff, NULL}},
     WIRE_ERR_UNKNOWN_SECTION, 0, 0, 0},
    {"duplicate document sequence ids",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "docs"}, {SEQ_END, 0, NULL}, {SEQ, 0, "docs"},
      {SEQ_END, 0, NULL}},
     WIRE_ERR_DUPLICATE_SEQUENCE, 0, 0, 0},
    {"duplicate ids with documents",
     {{FLAGS, 0, NULL}, {SEQ, 0, "docs"}, {DOC, 0, "{'a': 1}"}, {SEQ_END, 0, NULL}, {PING},
      {SEQ, 0, "docs"}, {DOC, 0, "{'a': 2}"}, {SEQ_END, 0, NULL}},
     WIRE_ERR_DUPLICATE_SEQUENCE, 0, 0, 0},
    {"sequence id also a body field",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'ping': 1, 'docs': []}"}, {SEQ, 0, "docs"},
      {SEQ_END, 0, NULL}},
     WIRE_ERR_SEQUENCE_IN_BODY, 0, 0, 0},
    {"sequence id also a scalar body field",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'docs': 1}"}, {SEQ, 0, "docs"}, {SEQ_END, 0, NULL}},
     WIRE_ERR_SEQUENCE_IN_BODY, 0, 0, 0},
    {"dotted sequence id a.b inside the body",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'ping': 1, 'a': {'b': []}}"}, {SEQ, 0, "a.b"},
      {SEQ_END, 0, NULL}},
     WIRE_ERR_SEQUENCE_IN_BODY, 0, 0, 0},
    {"dotted sequence id through an array",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'a': [{'b': 1}]}"}, {SEQ, 0, "a.b"}, {SEQ_END, 0, NULL}},
     WIRE_ERR_SEQUENCE_IN_BODY, 0, 0, 0},
    {"three-part dotted sequence id",
     {{FLAGS, 0, NULL}, {BODY, 0, "{'a': {'b': {'c': 0}}}"}, {SEQ, 0, "a.b.c"},
      {SEQ_END, 0, NULL}},
     WIRE_ERR_SEQUENCE_IN_BODY, 0, 0, 0},
    {"9 sequences (over the limit)",
     {{FLAGS, 0, NULL}, {PING}, {RAW, sizeof SEQS_8 - 1, SEQS_8}, {SEQ, 0, "9"},
      {SEQ_END, 0, NULL}},
     WIRE_ERR_TOO_MANY_SEQUENCES, 0, 0, 0},

    /* Lengths: past the end, into the checksum, truncated pieces. */
    {"body past the end", {{FLAGS, 0, NULL}, {PING}, {SHRINK, 1, NULL}},
     WIRE_ERR_INVALID_BSON, 0, 0, 0},
    {"body header past the end", {{FLAGS, 0, NULL}, {KIND, 0, NULL}, {RAW, 3, "\x10\0\0"}},
     WIRE_ERR_INVALID_BSON, 0, 0, 0},
    {"body kind byte with nothing after it", {{FLAGS, 0, NULL}, {KIND, 0, NULL}},
     WIRE_ERR_INVALID_BSON, 0, 0, 0},
    {"sequence past the end",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "docs"}, {DOC, 0, "{'a': 1}"}, {SEQ_END, 0, NULL},
      {SHRINK, 1, NULL}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"body into the checksum",
     {{FLAGS, CHK, NULL}, {PING}, {CRC, 0, NULL}, {SHRINK, 1, NULL}},
     WIRE_ERR_INVALID_BSON, 0, 0, 0},
    {"sequence into the checksum",
     {{FLAGS, CHK, NULL}, {PING}, {SEQ, 0, "docs"}, {DOC, 0, "{'a': 1}"}, {SEQ_END, 0, NULL},
      {CRC, 0, NULL}, {SHRINK, 1, NULL}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"document runs past its sequence",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "docs"}, {DOC, 0, "{'a': 1}"}, {SEQ_END, -1, NULL}},
     WIRE_ERR_INVALID_BSON, 0, 0, 0},
    {"sequence size cuts its identifier",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "foo"}, {SEQ_END, -1, NULL}, {KIND, 0, NULL}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"unterminated sequence id",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, NULL}, {RAW, 3, "foo"}, {SEQ_END, 0, NULL}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"unterminated sequence id before a checksum",
     {{FLAGS, CHK, NULL}, {PING}, {SEQ, 0, NULL}, {RAW, 3, "foo"}, {SEQ_END, 0, NULL},
      {CRC, 0, NULL}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"sequence size 4 (no room for an id)",
     {{FLAGS, 0, NULL}, {PING}, {KIND, 1, NULL}, {RAW, 4, "\4\0\0\0"}}, WIRE_ERR_OVERFLOW, 0,
     0, 0},
    {"sequence size 0", {{FLAGS, 0, NULL}, {PING}, {KIND, 1, NULL}, {RAW, 6, "\0\0\0\0a\0"}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"sequence size -1",
     {{FLAGS, 0, NULL}, {PING}, {KIND, 1, NULL}, {RAW, 6, "\xff\xff\xff\xff" "a\0"}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"sequence size 0x7fffffff",
     {{FLAGS, 0, NULL}, {PING}, {KIND, 1, NULL}, {RAW, 6, "\xff\xff\xff\x7f" "a\0"}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"sequence size truncated", {{FLAGS, 0, NULL}, {PING}, {KIND, 1, NULL}, {RAW, 2, "\6\0"}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"flag word truncated to 0 bytes", {{END, 0, NULL}}, WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"flag word truncated to 1 byte", {{RAW, 1, "\0"}}, WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"flag word truncated to 2 bytes", {{RAW, 2, "\0\0"}}, WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"flag word truncated to 3 bytes", {{RAW, 3, "\0\0\0"}}, WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"checksum flag with no room for it", {{FLAGS, CHK, NULL}, {RAW, 3, "\0\0\0"}},
     WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"checksum flag with nothing after the flags", {{FLAGS, CHK, NULL}}, WIRE_ERR_OVERFLOW, 0,
     0, 0},
    {"checksum flag but no trailer", {{FLAGS, CHK, NULL}, {PING}}, WIRE_ERR_INVALID_BSON, 0, 0,
     0},
    {"checksum mismatch", {{FLAGS, CHK, NULL}, {PING}, {BAD_CRC, 0, NULL}},
     WIRE_ERR_CHECKSUM_MISMATCH, 0, 0, 0},
    {"checksum covers the header (requestID changed after)",
     {{FLAGS, CHK, NULL}, {PING}, {CRC, 0, NULL}, {POKE, 4, "\x55"}},
     WIRE_ERR_CHECKSUM_MISMATCH, 0, 0, 0},
    {"checksum covers the flags (optional bit set after)",
     {{FLAGS, CHK, NULL}, {PING}, {CRC, 0, NULL}, {POKE, 18, "\x01"}},
     WIRE_ERR_CHECKSUM_MISMATCH, 0, 0, 0},
    {"checksum covers the body (value changed after)",
     {{FLAGS, CHK, NULL}, {PING}, {CRC, 0, NULL}, {POKE, 32, "\x02"}},
     WIRE_ERR_CHECKSUM_MISMATCH, 0, 0, 0},

    /* Documents and header. */
    {"bad BSON in the body", {{FLAGS, 0, NULL}, {KIND, 0, NULL}, {RAW, 8, "\x08\0\0\0\x14x\0\0"}},
     WIRE_ERR_INVALID_BSON, 0, 0, 0},
    {"bad BSON in a sequence",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "d"}, {RAW, 9, "\x09\0\0\0\x08x\0\x02\0"},
      {SEQ_END, 0, NULL}},
     WIRE_ERR_INVALID_BSON, 0, 0, 0},
    {"body deeper than max_depth", {{FLAGS, 0, NULL}, {BODY, 0, "{'a': {'b': {}}}"}},
     WIRE_ERR_OVERFLOW, 0, 0, 2},
    {"sequence document deeper than max_depth",
     {{FLAGS, 0, NULL}, {PING}, {SEQ, 0, "d"}, {DOC, 0, "{'a': {'b': {}}}"},
      {SEQ_END, 0, NULL}},
     WIRE_ERR_OVERFLOW, 0, 0, 2},
    {"stray 0x00 after the body reads as a second body", {{FLAGS, 0, NULL}, {PING},
     {RAW, 1, "\0"}}, WIRE_ERR_MULTIPLE_BODIES, 0, 0, 0},
    {"stray 0x01 after the body reads as a truncated sequence", {{FLAGS, 0, NULL}, {PING},
     {RAW, 1, "\1"}}, WIRE_ERR_OVERFLOW, 0, 0, 0},
    {"opcode OP_QUERY", {{OPCODE, WIRE_OP_QUERY, NULL}, {FLAGS, 0, NULL}, {PING}},
     WIRE_ERR_PROTOCOL, 0, 0, 0},
    {"header length larger than the bytes", {{FLAGS, 0, NULL}, {PING}, {LEN_DELTA, 1, NULL}},
     WIRE_ERR_PROTOCOL, 0, 0, 0},
    {"header length smaller than the bytes", {{FLAGS, 0, NULL}, {PING}, {LEN_DELTA, -1, NULL}},
     WIRE_ERR_PROTOCOL, 0, 0, 0},
    {"header length negative", {{FLAGS, 0, NULL}, {PING}, {LEN_DELTA, -1000, NULL}},
     WIRE_ERR_PROTOCOL, 0, 0, 0},
};

static void
run_msg_case(const char *name, const struct step *steps, uint32_t code, uint32_t n_seqs,
             uint32_t count0, uint32_t max_depth)
{
    struct built m = build(steps);
    struct wire_msg msg;
    bson_error_t error;
    bool got;

    memset(&error, 0, sizeof error);
    got = wire_msg_parse(m.data, m.len, max_depth, &msg, &error);
    if (code == 0) {
        ok(got && msg.body != NULL && msg.n_seqs == n_seqs &&
               (n_seqs == 0 || msg.seqs[0].count == count0),
           "OP_MSG valid: %s", name);
        if (!got)
            diag("error %u: %s", (unsigned)error.code, error.message);
    } else {
        ok(!got && error.domain == WIRE_ERROR_DOMAIN && error.code == code,
           "OP_MSG rejected: %s (%u: %s)", name, (unsigned)error.code, error.message);
        if (got || error.code != code)
            diag("expected code %u", (unsigned)code);
    }
    bson_free(m.data);
}

static void
test_msg_cases(void)
{
    for (size_t i = 0; i < sizeof msg_cases / sizeof msg_cases[0]; i++) {
        const struct msg_case *c = &msg_cases[i];

        run_msg_case(c->name, c->steps, c->code, c->n_seqs, c->count0, c->max_depth);
    }
}

/* One case per flag bit: 2-15 are required and unknown, 16-31 optional. */
static void
test_flag_bits(void)
{
    for (uint32_t bit = 2; bit < 32; bit++) {
        struct step steps[] = {{FLAGS, (int64_t)(1u << bit), NULL}, {PING}, {END, 0, NULL}};
        char name[64];

        snprintf(name, sizeof name, "flag bit %u set", (unsigned)bit);
        run_msg_case(name, steps, bit < 16 ? WIRE_ERR_ILLEGAL_OP_MSG_FLAG : 0, 0, 0, 0);
    }
}

static void
test_short_messages(void)
{
    static const uint8_t ten[10] = {10, 0, 0, 0};
    struct wire_msg msg;
    bson_error_t error;

    ok(!wire_msg_parse(ten, sizeof ten, 0, &msg, &error) && error.code == WIRE_ERR_OVERFLOW,
       "OP_MSG rejected: 10 bytes, shorter than a header");
    ok(!wire_msg_parse(ten, 0, 0, &msg, &error), "OP_MSG rejected: 0 bytes");
}

/* ---- parsed contents ------------------------------------------------------ */

static bool
same_doc(const uint8_t *data, uint32_t len, const char *text)
{
    bson_t *want = json(text);
    bool same = want->len == len && memcmp(bson_get_data(want), data, len) == 0;

    bson_destroy(want);
    return same;
}

static const struct step two_seqs[] = {
    {FLAGS, CHK | WIRE_MSG_EXHAUST_ALLOWED, NULL},
    {SEQ, 0, "documents"}, {DOC, 0, "{'a': 1}"}, {DOC, 0, "{'a': 2}"}, {SEQ_END, 0, NULL},
    {BODY, 0, "{'insert': 'c', '$db': 'd'}"},
    {SEQ, 0, "more"}, {DOC, 0, "{'b': 'x'}"}, {SEQ_END, 0, NULL},
    {CRC, 0, NULL}, {END, 0, NULL},
};

static void
test_parsed_fields(void)
{
    struct built m = build(two_seqs);
    struct wire_msg msg;
    bson_error_t error;

    if (!ok(wire_msg_parse(m.data, m.len, 0, &msg, &error), "two sequences + checksum parse")) {
        diag("%s", error.message);
        bson_free(m.data);
        return;
    }
    ok(msg.header.request_id == 1234 && msg.header.response_to == 99 &&
           msg.header.opcode == WIRE_OP_MSG && (size_t)msg.header.length == m.len,
       "header fields");
    is_int(msg.flags, CHK | WIRE_MSG_EXHAUST_ALLOWED, "flags");
    ok(same_doc(msg.body, msg.body_len, "{'insert': 'c', '$db': 'd'}"), "body bytes");
    is_str(msg.seqs[0].id, "documents", "first sequence id");
    is_int(msg.seqs[0].count, 2, "first sequence count");
    ok(same_doc(msg.seqs[0].docs, 12, "{'a': 1}") &&
           same_doc(msg.seqs[0].docs + 12, 12, "{'a': 2}") && msg.seqs[0].docs_len == 24,
       "first sequence documents");
    is_str(msg.seqs[1].id, "more", "second sequence id");
    ok(msg.seqs[1].count == 1 && same_doc(msg.seqs[1].docs, msg.seqs[1].docs_len, "{'b': 'x'}"),
       "second sequence document");
    ok(msg.body > m.data && msg.body + msg.body_len <= m.data + m.len - 4,
       "body points inside the message, before the checksum");
    bson_free(m.data);
}

/* ---- clear_flags and rebuild ---------------------------------------------- */

struct clear_case {
    const char *name;
    uint32_t flags;
    bool checksum;
    uint32_t clear;
    uint32_t want;
};

static const struct clear_case clear_cases[] = {
    {"clear exhaustAllowed and moreToCome, checksum kept", CHK | WIRE_MSG_EXHAUST_ALLOWED |
     WIRE_MSG_MORE_TO_COME, true, WIRE_MSG_EXHAUST_ALLOWED | WIRE_MSG_MORE_TO_COME, CHK},
    {"clear exhaustAllowed without checksum", WIRE_MSG_EXHAUST_ALLOWED, false,
     WIRE_MSG_EXHAUST_ALLOWED, 0},
    {"clear nothing", CHK | WIRE_MSG_MORE_TO_COME, true, 0, CHK | WIRE_MSG_MORE_TO_COME},
    {"clear optional bits 16-31 with checksum", CHK | 0xffff0000u, true, 0xffff0000u, CHK},
    {"checksumPresent is never cleared in place", CHK | WIRE_MSG_MORE_TO_COME, true,
     CHK | WIRE_MSG_MORE_TO_COME, CHK},
    {"clearing bits that are not set", 0, false, WIRE_MSG_EXHAUST_ALLOWED, 0},
};

static void
test_clear_flags(void)
{
    for (size_t i = 0; i < sizeof clear_cases / sizeof clear_cases[0]; i++) {
        const struct clear_case *c = &clear_cases[i];
        struct step steps[] = {
            {FLAGS, c->flags, NULL}, {PING}, {SEQ, 0, "d"}, {DOC, 0, "{'x': 1}"},
            {SEQ_END, 0, NULL}, {c->checksum ? CRC : END, 0, NULL}, {END, 0, NULL},
        };
        struct built m = build(steps);
        struct wire_msg msg;
        bson_error_t error;
        uint8_t *before = bson_malloc(m.len);
        bool got;

        memcpy(before, m.data, m.len);
        wire_msg_clear_flags(m.data, m.len, c->clear);
        got = wire_msg_parse(m.data, m.len, 0, &msg, &error);
        ok(got && msg.flags == c->want && msg.n_seqs == 1 && msg.seqs[0].count == 1,
           "clear_flags: %s: re-parses with flags 0x%08x", c->name, (unsigned)c->want);
        if (!got)
            diag("%s", error.message);
        ok(memcmp(before, m.data, 16) == 0 &&
               memcmp(before + 20, m.data + 20, m.len - 20 - (c->checksum ? 4 : 0)) == 0,
           "clear_flags: %s: only the flag word%s changed", c->name,
           c->checksum ? " and checksum" : "");
        bson_free(before);
        bson_free(m.data);
    }
}

static void
test_rebuild(void)
{
    struct built m = build(two_seqs);
    struct wire_msg msg, again;
    bson_error_t error;
    bson_t *body = json("{'insert': 'other', 'ordered': false, '$db': 'd'}");
    bson_t *clash = json("{'insert': 'c', 'more': [], '$db': 'd'}");
    uint8_t *out;
    size_t out_len = 0;

    if (!wire_msg_parse(m.data, m.len, 0, &msg, &error))
        diag("%s", error.message);
    out = wire_msg_rebuild(&msg, body, &out_len);
    ok(out != NULL && (size_t)wire_frame_read_i32(out) == out_len, "rebuild: length in header");
    ok(wire_msg_parse(out, out_len, 0, &again, &error), "rebuild: result re-parses");
    ok(again.header.request_id == 1234 && again.header.response_to == 99 &&
           again.header.opcode == WIRE_OP_MSG,
       "rebuild: requestID, responseTo and opcode kept");
    is_int(again.flags, WIRE_MSG_EXHAUST_ALLOWED, "rebuild: checksumPresent dropped, rest kept");
    ok(again.body_len == body->len && memcmp(again.body, bson_get_data(body), body->len) == 0,
       "rebuild: new body in place");
    is_int(again.n_seqs, 2, "rebuild: both sequences kept");
    for (uint32_t i = 0; i < 2 && i < again.n_seqs; i++) {
        ok(strcmp(again.seqs[i].id, msg.seqs[i].id) == 0 &&
               again.seqs[i].count == msg.seqs[i].count &&
               again.seqs[i].docs_len == msg.seqs[i].docs_len &&
               memcmp(again.seqs[i].docs, msg.seqs[i].docs, msg.seqs[i].docs_len) == 0,
           "rebuild: sequence %s identical", msg.seqs[i].id);
    }
    is_int(out_len, m.len - 4 + (body->len - msg.body_len), "rebuild: size without checksum");
    bson_free(out);

    out = wire_msg_rebuild(&msg, clash, &out_len);
    ok(out && !wire_msg_parse(out, out_len, 0, &again, &error) &&
           error.code == WIRE_ERR_SEQUENCE_IN_BODY,
       "rebuild: a body naming a sequence fails re-parse with 40433");
    bson_free(out);

    msg.n_seqs = 0;
    out = wire_msg_rebuild(&msg, body, &out_len);
    ok(out && wire_msg_parse(out, out_len, 0, &again, &error) && again.n_seqs == 0 &&
           out_len == 21 + body->len,
       "rebuild: without sequences is header, flags, kind, body");
    bson_free(out);
    bson_destroy(body);
    bson_destroy(clash);
    bson_free(m.data);
}

/* ---- CRC-32C ------------------------------------------------------------- */

static void
test_crc32c(void)
{
    uint8_t buf[32];

    is_int(wire_crc32c((const uint8_t *)"123456789", 9), 0xe3069283u, "crc32c(123456789)");
    is_int(wire_crc32c(buf, 0), 0, "crc32c of nothing");
    memset(buf, 0, sizeof buf);
    is_int(wire_crc32c(buf, 32), 0x8a9136aau, "crc32c of 32 zero bytes (RFC 3720)");
    memset(buf, 0xff, sizeof buf);
    is_int(wire_crc32c(buf, 32), 0x62a8ab43u, "crc32c of 32 0xff bytes (RFC 3720)");
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    is_int(wire_crc32c(buf, 32), 0x46dd794eu, "crc32c of 0..31 (RFC 3720)");
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    is_int(wire_crc32c(buf, 32), 0x113fdb5cu, "crc32c of 31..0 (RFC 3720)");
}

/* ---- OP_QUERY ------------------------------------------------------------ */

/* Builds an OP_QUERY: flags 4, name_len bytes of name, skip 0, nReturn -1, docs, tail. */
static struct built
query_msg(const char *name, size_t name_len, const char *query, const char *selector,
          const char *tail, size_t tail_len)
{
    uint8_t buf[1024];
    size_t pos = WIRE_HEADER_LEN;
    struct built out;

    memset(buf, 0, WIRE_HEADER_LEN);
    wire_frame_write_i32(buf + 4, 77);
    wire_frame_write_i32(buf + 12, WIRE_OP_QUERY);
    put_i32(buf, &pos, 4);
    put(buf, &pos, name, name_len);
    if (query) {
        put_i32(buf, &pos, 0);
        put_i32(buf, &pos, -1);
        put_json(buf, &pos, query);
    }
    if (selector)
        put_json(buf, &pos, selector);
    put(buf, &pos, tail, tail_len);
    wire_frame_write_i32(buf, (int32_t)pos);
    out.data = bson_malloc(pos);
    memcpy(out.data, buf, pos);
    out.len = pos;
    return out;
}

static void
test_query(void)
{
    static const char ns[] = "admin.$cmd";
    struct wire_query q;
    bson_error_t error;
    struct built m;
    uint8_t *out;
    size_t out_len;
    bson_t *doc = json("{'isMaster': 1, 'client': {'x': 1}}");

    m = query_msg(ns, sizeof ns, "{'isMaster': 1}", NULL, "", 0);
    ok(wire_msg_parse_query(m.data, m.len, 0, &q, &error) && q.flags == 4 && q.skip == 0 &&
           q.n_return == -1 && strcmp(q.full_collection, ns) == 0 && q.selector == NULL &&
           same_doc(q.query, q.query_len, "{'isMaster': 1}") && q.header.request_id == 77,
       "OP_QUERY valid without selector");

    out = wire_msg_rebuild_query(&q, doc, &out_len);
    ok(out && wire_msg_parse_query(out, out_len, 0, &q, &error) && q.flags == 4 &&
           q.n_return == -1 && q.header.request_id == 77 &&
           strcmp(q.full_collection, ns) == 0 && q.selector == NULL &&
           q.query_len == doc->len && memcmp(q.query, bson_get_data(doc), doc->len) == 0,
       "OP_QUERY rebuild without selector re-parses with the new query");
    bson_free(out);
    bson_free(m.data);

    m = query_msg(ns, sizeof ns, "{'find': 'c'}", "{'a': 1}", "", 0);
    ok(wire_msg_parse_query(m.data, m.len, 0, &q, &error) && q.selector != NULL &&
           same_doc(q.selector, q.selector_len, "{'a': 1}"),
       "OP_QUERY valid with selector");
    out = wire_msg_rebuild_query(&q, doc, &out_len);
    ok(out && wire_msg_parse_query(out, out_len, 0, &q, &error) && q.selector != NULL &&
           same_doc(q.selector, q.selector_len, "{'a': 1}") && q.query_len == doc->len &&
           (size_t)q.header.length == out_len,
       "OP_QUERY rebuild keeps the selector");
    bson_free(out);
    bson_free(m.data);

    m = query_msg(ns, sizeof ns, "{'a': 1}", "{'b': 1}", "\0", 1);
    ok(!wire_msg_parse_query(m.data, m.len, 0, &q, &error), "OP_QUERY rejected: trailing byte");
    bson_free(m.data);

    m = query_msg(ns, sizeof ns, "{'a': 1}", NULL, "\5\0\0", 3);
    ok(!wire_msg_parse_query(m.data, m.len, 0, &q, &error),
       "OP_QUERY rejected: selector truncated");
    bson_free(m.data);

    m = query_msg(ns, sizeof ns - 1, NULL, NULL, "", 0);
    ok(!wire_msg_parse_query(m.data, m.len, 0, &q, &error) && error.code == WIRE_ERR_OVERFLOW,
       "OP_QUERY rejected: collection name not terminated");
    bson_free(m.data);

    m = query_msg(ns, sizeof ns, NULL, NULL, "\0\0\0\0\0\0\0", 7);
    ok(!wire_msg_parse_query(m.data, m.len, 0, &q, &error) && error.code == WIRE_ERR_OVERFLOW,
       "OP_QUERY rejected: skip/nReturn truncated");
    bson_free(m.data);

    m = query_msg(ns, sizeof ns, NULL, NULL, "\0\0\0\0\0\0\0\0", 8);
    ok(!wire_msg_parse_query(m.data, m.len, 0, &q, &error) &&
           error.code == WIRE_ERR_INVALID_BSON,
       "OP_QUERY rejected: no query document");
    bson_free(m.data);

    m = query_msg(ns, sizeof ns, NULL, NULL, "\0\0\0\0\0\0\0\0\x09\0\0\0\x08x\0\x02\0", 17);
    ok(!wire_msg_parse_query(m.data, m.len, 0, &q, &error) &&
           error.code == WIRE_ERR_INVALID_BSON,
       "OP_QUERY rejected: bad query document");
    bson_free(m.data);

    m = query_msg(ns, sizeof ns, "{'a': 1}", NULL, "", 0);
    wire_frame_write_i32(m.data + 12, WIRE_OP_MSG);
    ok(!wire_msg_parse_query(m.data, m.len, 0, &q, &error) && error.code == WIRE_ERR_PROTOCOL,
       "OP_QUERY rejected: wrong opcode");
    ok(!wire_msg_parse_query(m.data, 18, 0, &q, &error), "OP_QUERY rejected: 18 bytes");
    bson_free(m.data);
    bson_destroy(doc);
}

/* ---- OP_REPLY ------------------------------------------------------------ */

static struct built
reply_msg(int32_t n_returned, const char *const *docs, size_t n_docs, size_t cut)
{
    uint8_t buf[1024];
    size_t pos = WIRE_HEADER_LEN;
    struct built out;

    memset(buf, 0, WIRE_HEADER_LEN);
    wire_frame_write_i32(buf + 8, 5);
    wire_frame_write_i32(buf + 12, WIRE_OP_REPLY);
    put_i32(buf, &pos, WIRE_REPLY_QUERY_FAILURE);
    put_i32(buf, &pos, 0x01020304);
    put_i32(buf, &pos, 0x05060708);
    put_i32(buf, &pos, 3);
    put_i32(buf, &pos, n_returned);
    for (size_t i = 0; i < n_docs; i++)
        put_json(buf, &pos, docs[i]);
    pos -= cut;
    wire_frame_write_i32(buf, (int32_t)pos);
    out.data = bson_malloc(pos);
    memcpy(out.data, buf, pos);
    out.len = pos;
    return out;
}

struct reply_case {
    const char *name;
    int32_t n_returned;
    size_t n_docs;
    size_t cut;
    bool valid;
};

static const struct reply_case reply_cases[] = {
    {"no documents", 0, 0, 0, true},
    {"one document", 1, 1, 0, true},
    {"two documents", 2, 2, 0, true},
    {"numberReturned negative", -1, 0, 0, false},
    {"numberReturned 2 but 1 document", 2, 1, 0, false},
    {"numberReturned 1 but 2 documents", 1, 2, 0, false},
    {"numberReturned 0 but 1 document", 0, 1, 0, false},
    {"numberReturned 0x7fffffff", 0x7fffffff, 1, 0, false},
    {"last document truncated", 2, 2, 1, false},
    {"fields truncated", 0, 0, 1, false},
};

static void
test_reply(void)
{
    static const char *const docs[] = {"{'ok': 1}", "{'x': 'y'}"};

    for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
        const struct reply_case *c = &reply_cases[i];
        struct built m = reply_msg(c->n_returned, docs, c->n_docs, c->cut);
        struct wire_reply r;
        bson_error_t error;
        bool got = wire_msg_parse_reply(m.data, m.len, 0, &r, &error);

        if (c->valid)
            ok(got && r.n_returned == c->n_returned && r.flags == WIRE_REPLY_QUERY_FAILURE &&
                   r.cursor_id == 0x0506070801020304ll && r.starting_from == 3 &&
                   r.header.response_to == 5 && r.docs_len == m.len - 36 &&
                   (c->n_docs == 0 || same_doc(r.docs, 13, "{'ok': 1}")),
               "OP_REPLY valid: %s", c->name);
        else
            ok(!got && error.domain == WIRE_ERROR_DOMAIN, "OP_REPLY rejected: %s (%s)", c->name,
               error.message);
        bson_free(m.data);
    }
}

/*
 * A reply's ok as wire_msg_ok reads it: true or a number other than zero
 * (NaN is not one), as mongod writes it; anything else present is not ok.
 */
static void
test_reply_ok(void)
{
    static const struct {
        const char *json;
        int want;
    } cases[] = {
        {"{'ok': 1}", 1},
        {"{'ok': 0}", 0},
        {"{'ok': 1.0}", 1},
        {"{'ok': 0.0}", 0},
        {"{'ok': -0.5}", 1},
        {"{'ok': 0.5}", 1},
        {"{'ok': -0.0}", 0},
        {"{'ok': {'$numberDouble': 'NaN'}}", 0},
        {"{'ok': {'$numberDouble': 'Infinity'}}", 1},
        {"{'ok': {'$numberDecimal': '1'}}", 1},
        {"{'ok': {'$numberDecimal': '0'}}", 0},
        {"{'ok': {'$numberDecimal': '-0.00'}}", 0},
        {"{'ok': {'$numberDecimal': '1E-6176'}}", 1},
        {"{'ok': {'$numberDecimal': '9999999999999999999999999999999999'}}", 1},
        {"{'ok': {'$numberDecimal': 'NaN'}}", 0},
        {"{'ok': {'$numberDecimal': '-Infinity'}}", 1},
        {"{'ok': {'$numberLong': '0'}}", 0},
        {"{'ok': {'$numberLong': '4294967296'}}", 1},
        {"{'ok': true}", 1},
        {"{'ok': false}", 0},
        {"{'ok': null}", 0},
        {"{'ok': {'$undefined': true}}", 0},
        {"{'ok': 'no'}", 0},
        {"{'ok': '1'}", 0},
        {"{'ok': {}}", 0},
        {"{'ok': []}", 0},
        {"{'cursor': {'id': 0, 'ok': 0}, 'ok': 1}", 1},
        {"{'cursor': {'ok': 1}, 'okay': 1, 'o': 1}", -1},
        {"{'ok': 0, 'ok': 1}", 0},
        {"{'on': 1, 'ko': 1}", -1},
        {"{'oz': 0, 'ok': 1}", 1},
        {"{}", -1},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bson_t *doc = json(cases[i].json);
        int got = wire_msg_ok(bson_get_data(doc), doc->len);
        struct wire_doc_top top;
        bson_error_t error;
        int from_top = -2;

        ok(got == cases[i].want, "wire_msg_ok %s: %d (want %d)", cases[i].json, got,
           cases[i].want);
        if (wire_doc_check_top(bson_get_data(doc), doc->len, 0, NULL, &top, &error))
            from_top = wire_msg_ok_top(bson_get_data(doc), doc->len, &top);
        ok(from_top == cases[i].want, "wire_msg_ok_top %s: %d (want %d)", cases[i].json,
           from_top, cases[i].want);
        bson_destroy(doc);
    }
    {
        /* wire_msg_top_has, from the records and by a walk, against bson_iter's find. */
        static const char *const docs[] = {
            "{'ok': 1, 'writeConcernError': {'code': 91}}",
            "{'ok': 1, 'n': 1}",
            "{'writeConcernErrors': 1, 'ok': 1}",
            "{'ok': 1, 'writeConcernErro': 1}",
            "{'ok': 1, 'x': {'writeConcernError': 1}}",
            "{}",
        };
        bool all = true;

        for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
            bson_t *doc = json(docs[i]);
            struct wire_doc_top top;
            bson_error_t error;
            bson_iter_t it;
            bool want = bson_iter_init_find(&it, doc, "writeConcernError");
            bool checked = wire_doc_check_top(bson_get_data(doc), doc->len, 0, NULL, &top, &error);

            all = all && checked &&
                  wire_msg_top_has(bson_get_data(doc), doc->len, &top, "writeConcernError", 17) ==
                      want &&
                  wire_msg_top_has(bson_get_data(doc), doc->len, NULL, "writeConcernError", 17) ==
                      want;
            bson_destroy(doc);
        }
        ok(all, "wire_msg_top_has: from the records and by a walk, as bson_iter finds it "
                "(a longer, a shorter and a nested key are not it)");
    }
    {
        /* More top-level elements than the check records: read by a walk instead. */
        bson_t doc = BSON_INITIALIZER;
        struct wire_doc_top top;
        bson_error_t error;
        char key[16];

        for (int i = 0; i < WIRE_DOC_TOP_MAX + 3; i++) {
            snprintf(key, sizeof key, "k%d", i);
            BSON_APPEND_INT32(&doc, key, 0);
        }
        BSON_APPEND_INT32(&doc, "ok", 1);
        ok(wire_doc_check_top(bson_get_data(&doc), doc.len, 0, NULL, &top, &error) && !top.all &&
               wire_msg_ok_top(bson_get_data(&doc), doc.len, &top) == 1,
           "wire_msg_ok_top: an ok past the recorded elements is still found");
        bson_destroy(&doc);
    }
    {
        bson_t *doc = json("{'ok': 1}");
        const uint8_t *d = bson_get_data(doc);

        ok(wire_msg_ok(d, doc->len - 1) == -1 && wire_msg_ok(d, 4) == -1 &&
               wire_msg_ok(NULL, 0) == -1,
           "wire_msg_ok: a document longer than its bytes, or none, has no ok");
        bson_destroy(doc);
    }
}

int
main(void)
{
    test_msg_cases();
    test_flag_bits();
    test_short_messages();
    test_parsed_fields();
    test_clear_flags();
    test_rebuild();
    test_crc32c();
    test_query();
    test_reply();
    test_reply_ok();
    return done_testing();
}
