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

struct wire_header {
    int32_t length;
    int32_t request_id;
    int32_t response_to;
    int32_t opcode;
};

/* Little-endian loads and stores; buf need not be aligned. */
int32_t wire_frame_read_i32(const uint8_t *buf);
int64_t wire_frame_read_i64(const uint8_t *buf);
void wire_frame_write_i32(uint8_t *buf, int32_t value);

/*
 * Decodes the header at buf when at least 16 bytes are available and checks
 * 16 <= length <= max_len (max_len <= WIRE_MAX_MESSAGE_LEN). Returns
 * WIRE_NEED_MORE when avail < 16, WIRE_ERROR (error set) on a bad length.
 * The caller then waits for header->length bytes before parsing the body.
 */
enum wire_status wire_frame_header(const uint8_t *buf, size_t avail, int32_t max_len,
                                   struct wire_header *header, bson_error_t *error);

/* Encodes header into out[0..16). */
void wire_frame_put_header(uint8_t *out, const struct wire_header *header);

#endif
