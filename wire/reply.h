/*
 * wire/reply.h: replies the proxy writes itself: OP_MSG and OP_REPLY
 * messages around a body, MongoDB-style error documents, and re-stamping
 * requestID/responseTo on stored reply bytes.
 */
#ifndef MONGOCACHE_WIRE_REPLY_H
#define MONGOCACHE_WIRE_REPLY_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

/* Well-known server error codes the proxy uses in its own replies. */
#define WIRE_CODE_HOST_UNREACHABLE 6
#define WIRE_CODE_NETWORK_TIMEOUT 89
#define WIRE_CODE_PROTOCOL_ERROR 17
#define WIRE_CODE_COMMAND_NOT_FOUND 59
#define WIRE_CODE_UNSUPPORTED_OP_QUERY 352
#define WIRE_CODE_EXCEEDED_MEMORY 146

/* Appends {ok: 0.0, errmsg, code, codeName} to the empty document out. */
void wire_reply_error_body(bson_t *out, int32_t code, const char *code_name, const char *errmsg);

/*
 * An OP_MSG reply (flags 0, one kind-0 section) carrying body.
 * Returns a buffer freed with bson_free; its length in *out_len.
 */
uint8_t *wire_reply_msg(int32_t request_id, int32_t response_to, const bson_t *body,
                        size_t *out_len);

/*
 * An OP_REPLY with one document (cursorID 0, startingFrom 0, numberReturned 1).
 * Returns a buffer freed with bson_free; its length in *out_len.
 */
uint8_t *wire_reply_op_reply(int32_t request_id, int32_t response_to, int32_t flags,
                             const bson_t *doc, size_t *out_len);

/* Writes a fresh requestID and responseTo into a 16-byte header in place. */
void wire_reply_restamp(uint8_t *header, int32_t request_id, int32_t response_to);

#endif
