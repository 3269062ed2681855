/*
 * tests/unit/test_wire_frame.c: owns the tests of wire/frame.c (header
 * decoding, the length limits, little-endian loads and stores). It does not
 * test message bodies: those are test_wire_msg.c and test_wire_doc.c.
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "wire/frame.h"

#include <stdint.h>
#include <string.h>

struct header_case {
    const char *name;
    int32_t length;
    size_t avail;
    int32_t max_len;
    enum wire_status want;
    const char *errmsg; /* expected error text, or NULL */
};

static const struct header_case header_cases[] = {
    {"length 0", 0, 16, WIRE_MAX_MESSAGE_LEN, WIRE_ERROR,
     "message length 0 is invalid: min 16, max 48000000"},
    {"length -1", -1, 16, WIRE_MAX_MESSAGE_LEN, WIRE_ERROR,
     "message length -1 is invalid: min 16, max 48000000"},
    {"length INT32_MIN", INT32_MIN, 16, WIRE_MAX_MESSAGE_LEN, WIRE_ERROR, NULL},
    {"length 15", 15, 16, WIRE_MAX_MESSAGE_LEN, WIRE_ERROR,
     "message length 15 is invalid: min 16, max 48000000"},
    {"length 16", 16, 16, WIRE_MAX_MESSAGE_LEN, WIRE_OK, NULL},
    {"length 17 with only the header available", 17, 16, WIRE_MAX_MESSAGE_LEN, WIRE_OK, NULL},
    {"length 48000000", 48000000, 16, WIRE_MAX_MESSAGE_LEN, WIRE_OK, NULL},
    {"length 48000001", 48000001, 16, WIRE_MAX_MESSAGE_LEN, WIRE_ERROR,
     "message length 48000001 is invalid: min 16, max 48000000"},
    {"length 0x7fffffff", 0x7fffffff, 16, WIRE_MAX_MESSAGE_LEN, WIRE_ERROR, NULL},
    {"avail 0 needs more", 100, 0, WIRE_MAX_MESSAGE_LEN, WIRE_NEED_MORE, NULL},
    {"avail 1 needs more", 100, 1, WIRE_MAX_MESSAGE_LEN, WIRE_NEED_MORE, NULL},
    {"avail 15 needs more", 100, 15, WIRE_MAX_MESSAGE_LEN, WIRE_NEED_MORE, NULL},
    {"avail 15 needs more even with a bad length", -1, 15, WIRE_MAX_MESSAGE_LEN, WIRE_NEED_MORE,
     NULL},
    {"custom max 1024: 1024 ok", 1024, 16, 1024, WIRE_OK, NULL},
    {"custom max 1024: 1025 rejected", 1025, 16, 1024, WIRE_ERROR,
     "message length 1025 is invalid: min 16, max 1024"},
    {"max_len 0 means the default", 48000000, 16, 0, WIRE_OK, NULL},
    {"max_len above the limit is clamped", 48000001, 16, 0x7fffffff, WIRE_ERROR,
     "message length 48000001 is invalid: min 16, max 48000000"},
};

static void
test_header_cases(void)
{
    for (size_t i = 0; i < sizeof header_cases / sizeof header_cases[0]; i++) {
        const struct header_case *c = &header_cases[i];
        uint8_t buf[16];
        struct wire_header h;
        bson_error_t error;
        enum wire_status st;

        memset(&h, 0, sizeof h);
        memset(&error, 0, sizeof error);
        wire_frame_write_i32(buf, c->length);
        wire_frame_write_i32(buf + 4, 42);
        wire_frame_write_i32(buf + 8, 41);
        wire_frame_write_i32(buf + 12, WIRE_OP_MSG);
        st = wire_frame_header(buf, c->avail, c->max_len, &h, &error);
        is_int(st, c->want, "header: %s", c->name);
        if (c->want == WIRE_OK)
            ok(h.length == c->length && h.request_id == 42 && h.response_to == 41 &&
                   h.opcode == WIRE_OP_MSG,
               "header: %s: fields decoded", c->name);
        if (c->want == WIRE_ERROR)
            ok(error.domain == WIRE_ERROR_DOMAIN && error.code == WIRE_ERR_PROTOCOL,
               "header: %s: error domain and code", c->name);
        if (c->errmsg)
            is_str(error.message, c->errmsg, "header: %s: error message", c->name);
    }
}

static void
test_endian(void)
{
    static const uint8_t le[8] = {0x01, 0x02, 0x03, 0x84, 0x05, 0x06, 0x07, 0x88};
    uint8_t unaligned[9] = {0xee};
    uint8_t out[4];

    is_int(wire_frame_read_i32(le), (int32_t)0x84030201u, "read_i32 is little-endian");
    is_int(wire_frame_read_i64(le), (int64_t)0x8807060584030201ull,
           "read_i64 is little-endian and signed");
    memcpy(unaligned + 1, le, sizeof le);
    is_int(wire_frame_read_i32(unaligned + 1), wire_frame_read_i32(le), "read_i32 unaligned");
    is_int(wire_frame_read_i64(unaligned + 1), wire_frame_read_i64(le), "read_i64 unaligned");

    wire_frame_write_i32(out, -2);
    ok(out[0] == 0xfe && out[1] == 0xff && out[2] == 0xff && out[3] == 0xff,
       "write_i32(-2) is ff ff ff fe little-endian");
    wire_frame_write_i32(out, 0x11223344);
    ok(out[0] == 0x44 && out[3] == 0x11, "write_i32 byte order");
    is_int(wire_frame_read_i32(out), 0x11223344, "write_i32 then read_i32 round trip");
}

static void
test_put_header(void)
{
    struct wire_header in = {300, -5, 7, WIRE_OP_QUERY}, back;
    uint8_t buf[16];
    bson_error_t error;

    wire_frame_put_header(buf, &in);
    is_int(wire_frame_header(buf, sizeof buf, WIRE_MAX_MESSAGE_LEN, &back, &error), WIRE_OK,
           "put_header then header decodes");
    ok(back.length == 300 && back.request_id == -5 && back.response_to == 7 &&
           back.opcode == WIRE_OP_QUERY,
       "put_header round trip keeps every field");
}

int
main(void)
{
    test_header_cases();
    test_endian();
    test_put_header();
    return done_testing();
}
