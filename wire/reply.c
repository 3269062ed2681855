/*
 * wire/reply.c: owns the bytes of replies the proxy writes itself: OP_MSG and
 * OP_REPLY messages around one document, MongoDB-style error bodies, and
 * re-stamping requestID/responseTo on stored reply bytes. It does not decide
 * what to answer (proxy/) or parse anything (wire/msg.c).
 */
#include "config.h"

#include "wire/reply.h"

#include "wire/frame.h"

#include <string.h>

#define OP_MSG_PREFIX (WIRE_HEADER_LEN + 4 + 1)  /* header, flags, kind-0 byte */
#define OP_REPLY_PREFIX (WIRE_HEADER_LEN + 20)   /* header, flags, cursorID, from, count */

void
wire_reply_error_body(bson_t *out, int32_t code, const char *code_name, const char *errmsg)
{
    BSON_APPEND_DOUBLE(out, "ok", 0.0);
    BSON_APPEND_UTF8(out, "errmsg", errmsg ? errmsg : "");
    BSON_APPEND_INT32(out, "code", code);
    BSON_APPEND_UTF8(out, "codeName", code_name ? code_name : "");
}

/* Allocates prefix + doc bytes, writes the header and copies doc after the prefix. */
static uint8_t *
wrap(int32_t request_id, int32_t response_to, int32_t opcode, size_t prefix, const bson_t *doc,
     size_t *out_len)
{
    struct wire_header h;
    size_t total = prefix + doc->len;
    uint8_t *out = bson_malloc0(total);

    h.length = (int32_t)total;
    h.request_id = request_id;
    h.response_to = response_to;
    h.opcode = opcode;
    wire_frame_put_header(out, &h);
    memcpy(out + prefix, bson_get_data(doc), doc->len);
    *out_len = total;
    return out;
}

uint8_t *
wire_reply_msg(int32_t request_id, int32_t response_to, const bson_t *body, size_t *out_len)
{
    /* bson_malloc0 leaves flags 0 and the section kind 0. */
    return wrap(request_id, response_to, WIRE_OP_MSG, OP_MSG_PREFIX, body, out_len);
}

uint8_t *
wire_reply_op_reply(int32_t request_id, int32_t response_to, int32_t flags, const bson_t *doc,
                    size_t *out_len)
{
    uint8_t *out = wrap(request_id, response_to, WIRE_OP_REPLY, OP_REPLY_PREFIX, doc, out_len);

    /* cursorID and startingFrom stay 0 from bson_malloc0. */
    wire_frame_write_i32(out + WIRE_HEADER_LEN, flags);
    wire_frame_write_i32(out + WIRE_HEADER_LEN + 16, 1);
    return out;
}

void
wire_reply_restamp(uint8_t *header, int32_t request_id, int32_t response_to)
{
    wire_frame_write_i32(header + 4, request_id);
    wire_frame_write_i32(header + 8, response_to);
}
