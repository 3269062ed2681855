/*
 * wire/frame.c: owns the 16-byte message header: little-endian loads and
 * stores and the length check done before any body byte is read. It does
 * not look past the header: opcode-specific parsing is wire/msg.c.
 */
#include "config.h"

#include "wire/frame.h"

#include <stdarg.h>
#include <stdio.h>

int64_t
wire_frame_read_i64(const uint8_t *buf)
{
    uint64_t lo = (uint32_t)wire_frame_read_i32(buf);
    uint64_t hi = (uint32_t)wire_frame_read_i32(buf + 4);

    return (int64_t)(lo | hi << 32);
}

void
wire_frame_write_i32(uint8_t *buf, int32_t value)
{
    uint32_t v = (uint32_t)value;

    buf[0] = (uint8_t)v;
    buf[1] = (uint8_t)(v >> 8);
    buf[2] = (uint8_t)(v >> 16);
    buf[3] = (uint8_t)(v >> 24);
}

void
wire_frame_write_i64(uint8_t *buf, int64_t value)
{
    uint64_t v = (uint64_t)value;

    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(v >> (8 * i));
}

enum wire_status
wire_frame_header(const uint8_t *buf, size_t avail, int32_t max_len, struct wire_header *header,
                  bson_error_t *error)
{
    if (avail < WIRE_HEADER_LEN)
        return WIRE_NEED_MORE;
    if (max_len < WIRE_HEADER_LEN || max_len > WIRE_MAX_MESSAGE_LEN)
        max_len = WIRE_MAX_MESSAGE_LEN;

    header->length = wire_frame_read_i32(buf);
    header->request_id = wire_frame_read_i32(buf + 4);
    header->response_to = wire_frame_read_i32(buf + 8);
    header->opcode = wire_frame_read_i32(buf + 12);

    if (header->length < WIRE_HEADER_LEN || header->length > max_len) {
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_PROTOCOL,
                       "message length %d is invalid: min %d, max %d", (int)header->length,
                       WIRE_HEADER_LEN, (int)max_len);
        return WIRE_ERROR;
    }
    return WIRE_OK;
}

void
wire_frame_put_header(uint8_t *out, const struct wire_header *header)
{
    wire_frame_write_i32(out, header->length);
    wire_frame_write_i32(out + 4, header->request_id);
    wire_frame_write_i32(out + 8, header->response_to);
    wire_frame_write_i32(out + 12, header->opcode);
}

bool
wire_fail(bson_error_t *error, uint32_t code, const char *fmt, ...)
{
    char text[sizeof error->message];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    bson_set_error(error, WIRE_ERROR_DOMAIN, code, "%s", text);
    return false;
}
