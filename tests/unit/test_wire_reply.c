/*
 * tests/unit/test_wire_reply.c: owns the tests of wire/reply.c: error bodies,
 * OP_MSG and OP_REPLY replies (checked by parsing them back with wire/msg.c)
 * and re-stamping stored reply headers. It does not test the parsers
 * themselves (test_wire_msg.c).
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "wire/msg.h"
#include "wire/reply.h"

#include <string.h>

struct error_case {
    const char *name;
    int32_t code;
    const char *code_name;
    const char *errmsg;
};

static const struct error_case error_cases[] = {
    {"host unreachable", WIRE_CODE_HOST_UNREACHABLE, "HostUnreachable", "upstream down"},
    {"network timeout", WIRE_CODE_NETWORK_TIMEOUT, "NetworkTimeout", "timed out"},
    {"protocol error", WIRE_CODE_PROTOCOL_ERROR, "ProtocolError", "bad OP_MSG"},
    {"command not found", WIRE_CODE_COMMAND_NOT_FOUND, "CommandNotFound", "no such command"},
    {"OP_QUERY unsupported", WIRE_CODE_UNSUPPORTED_OP_QUERY, "UnsupportedOpQueryCommand",
     "Unsupported OP_QUERY command: find"},
    {"empty message", 1, "InternalError", ""},
    {"negative code", -5, "Weird", "x"},
};

/* Checks out is {ok: 0.0, errmsg, code, codeName} in that order with those types. */
static bool
check_error_body(const bson_t *out, int32_t code, const char *code_name, const char *errmsg)
{
    bson_iter_t it;

    return bson_iter_init(&it, out) && bson_iter_next(&it) &&
           strcmp(bson_iter_key(&it), "ok") == 0 && BSON_ITER_HOLDS_DOUBLE(&it) &&
           bson_iter_double(&it) == 0.0 && bson_iter_next(&it) &&
           strcmp(bson_iter_key(&it), "errmsg") == 0 && BSON_ITER_HOLDS_UTF8(&it) &&
           strcmp(bson_iter_utf8(&it, NULL), errmsg) == 0 && bson_iter_next(&it) &&
           strcmp(bson_iter_key(&it), "code") == 0 && BSON_ITER_HOLDS_INT32(&it) &&
           bson_iter_int32(&it) == code && bson_iter_next(&it) &&
           strcmp(bson_iter_key(&it), "codeName") == 0 && BSON_ITER_HOLDS_UTF8(&it) &&
           strcmp(bson_iter_utf8(&it, NULL), code_name) == 0 && !bson_iter_next(&it);
}

static void
test_error_bodies(void)
{
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *c = &error_cases[i];
        bson_t out = BSON_INITIALIZER;

        wire_reply_error_body(&out, c->code, c->code_name, c->errmsg);
        ok(check_error_body(&out, c->code, c->code_name, c->errmsg), "error body: %s", c->name);
        bson_destroy(&out);
    }
}

static void
test_reply_msg(void)
{
    static const int32_t ids[][2] = {{1, 2}, {0, 0}, {-1, 0x7fffffff}};
    bson_t body = BSON_INITIALIZER;

    wire_reply_error_body(&body, WIRE_CODE_PROTOCOL_ERROR, "ProtocolError", "bad");
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct wire_msg msg;
        bson_error_t error;
        size_t len = 0;
        uint8_t *out = wire_reply_msg(ids[i][0], ids[i][1], &body, &len);
        bool got = wire_msg_parse(out, len, 0, &msg, &error);

        ok(got && len == 21 + body.len, "OP_MSG reply %zu parses back, %zu bytes", i, len);
        ok(got && msg.header.request_id == ids[i][0] && msg.header.response_to == ids[i][1] &&
               msg.flags == 0 && msg.n_seqs == 0 && msg.body_len == body.len &&
               memcmp(msg.body, bson_get_data(&body), body.len) == 0,
           "OP_MSG reply %zu: ids, flags 0, body", i);
        bson_free(out);
    }
    bson_destroy(&body);
}

static void
test_op_reply(void)
{
    static const int32_t flags[] = {0, WIRE_REPLY_QUERY_FAILURE, 8};
    bson_t doc = BSON_INITIALIZER;

    BSON_APPEND_DOUBLE(&doc, "ismaster", 1.0);
    BSON_APPEND_INT32(&doc, "maxWireVersion", 17);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        struct wire_reply r;
        bson_error_t error;
        size_t len = 0;
        uint8_t *out = wire_reply_op_reply(40, 41, flags[i], &doc, &len);
        bool got = wire_msg_parse_reply(out, len, 0, &r, &error);

        ok(got && len == 36 + doc.len, "OP_REPLY with flags %d parses back", (int)flags[i]);
        ok(got && r.header.request_id == 40 && r.header.response_to == 41 &&
               r.flags == flags[i] && r.cursor_id == 0 && r.starting_from == 0 &&
               r.n_returned == 1 && r.docs_len == doc.len &&
               memcmp(r.docs, bson_get_data(&doc), doc.len) == 0,
           "OP_REPLY with flags %d: responseFlags, cursor 0, from 0, one document",
           (int)flags[i]);
        bson_free(out);
    }
    bson_destroy(&doc);
}

static void
test_restamp(void)
{
    bson_t body = BSON_INITIALIZER;
    struct wire_msg msg;
    bson_error_t error;
    size_t len;
    uint8_t *out, *before;

    BSON_APPEND_INT32(&body, "ok", 1);
    out = wire_reply_msg(5, 6, &body, &len);
    before = bson_malloc(len);
    memcpy(before, out, len);
    wire_reply_restamp(out, 700, -8);
    ok(wire_msg_parse(out, len, 0, &msg, &error) && msg.header.request_id == 700 &&
           msg.header.response_to == -8,
       "restamp: new requestID and responseTo");
    ok(memcmp(out, before, 4) == 0 && memcmp(out + 12, before + 12, len - 12) == 0,
       "restamp: only bytes 4-11 change");
    bson_free(before);
    bson_free(out);
    bson_destroy(&body);
}

int
main(void)
{
    test_error_bodies();
    test_reply_msg();
    test_op_reply();
    test_restamp();
    return done_testing();
}
