/*
 * wire/frame.h: the 16-byte MongoDB message header and the size limits that
 * are checked before a single body byte is read.
 * Spec: mongodb/specifications source/message/OP_MSG.md ("Standard message header").
 */
#ifndef MONGOCACHE_WIRE_FRAME_H
#define MONGOCACHE_WIRE_FRAME_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_HEADER_LEN 16
/* mongod's MaxMessageSizeBytes; the largest message either side may send. */
#define WIRE_MAX_MESSAGE_LEN 48000000

enum wire_opcode {
    WIRE_OP_REPLY = 1,
    WIRE_OP_QUERY = 2004,
    WIRE_OP_COMPRESSED = 2012,
    WIRE_OP_MSG = 2013,
};

/* Result of every incremental parser in wire/. */
enum wire_status {
    WIRE_OK,
    WIRE_NEED_MORE,
    WIRE_ERROR,
};

/* Error domain and codes put in a bson_error_t by wire/ parsers. */
#define WIRE_ERROR_DOMAIN 0x77697265u /* "wire" */

/* error->code values: mongod's ErrorCodes number for the same fault. */
#define WIRE_ERR_TYPE_MISMATCH 14      /* $db is not a string */
#define WIRE_ERR_INVALID_NAMESPACE 73  /* $db holds a NUL */
#define WIRE_ERR_OVERFLOW 15           /* a field or section runs past its end; nesting too deep */
#define WIRE_ERR_PROTOCOL 17           /* bad message length or opcode, trailing bytes */
#define WIRE_ERR_INVALID_BSON 22       /* a document is malformed */
#define WIRE_ERR_COMMAND_NOT_FOUND 59  /* empty command body */
#define WIRE_ERR_ILLEGAL_OP_MSG_FLAG 223
#define WIRE_ERR_TOO_MANY_SEQUENCES 233
#define WIRE_ERR_CHECKSUM_MISMATCH 288
#define WIRE_ERR_MULTIPLE_BODIES 40430
#define WIRE_ERR_DUPLICATE_SEQUENCE 40431
#define WIRE_ERR_UNKNOWN_SECTION 40432
#define WIRE_ERR_SEQUENCE_IN_BODY 40433
#define WIRE_ERR_NO_BODY 40587

/* Sets error (WIRE_ERROR_DOMAIN, code, the formatted text) and returns false: a parser's
 * refusal in one statement. */
bool wire_fail(bson_error_t *error, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct wire_header {
    int32_t length;
    int32_t request_id;
    int32_t response_to;
    int32_t opcode;
};

/* Little-endian loads and stores; buf need not be aligned. The int32 load is
 * inline: every BSON length in wire/ is read with it. */
static inline int32_t
wire_frame_read_i32(const uint8_t *buf)
{
    return (int32_t)((uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
                     (uint32_t)buf[3] << 24);
}

int64_t wire_frame_read_i64(const uint8_t *buf);
void wire_frame_write_i32(uint8_t *buf, int32_t value);
void wire_frame_write_i64(uint8_t *buf, int64_t value);

/*
 * Decodes the header at buf when at least 16 bytes are available and checks
 * 16 <= length <= max_len (max_len <= WIRE_MAX_MESSAGE_LEN). Returns
 * WIRE_NEED_MORE when avail < 16, WIRE_ERROR (error set, WIRE_ERR_PROTOCOL)
 * on a bad length; header is filled whenever 16 bytes are there. A max_len outside
 * [16, WIRE_MAX_MESSAGE_LEN] is treated as WIRE_MAX_MESSAGE_LEN.
 * The caller then waits for header->length bytes before parsing the body.
 */
enum wire_status wire_frame_header(const uint8_t *buf, size_t avail, int32_t max_len,
                                   struct wire_header *header, bson_error_t *error);

/* Encodes header into out[0..16). */
void wire_frame_put_header(uint8_t *out, const struct wire_header *header);

#endif
