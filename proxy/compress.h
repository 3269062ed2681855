/*
 * proxy/compress.h: wire compression with clients (OP_COMPRESSED.md): the
 * compressors the proxy offers, decoding a client's compressed request
 * within the proxy's limits, and compressing a reply with the compressor
 * its request used (as mongod does: a plain request gets a plain reply, so
 * hello and authentication replies, never sent compressed by drivers,
 * never are either). The codec itself is wire/compress.c.
 */
#ifndef MONGOCACHE_PROXY_COMPRESS_H
#define MONGOCACHE_PROXY_COMPRESS_H

#include "wire/frame.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy_server;

struct wire_cmd;

/*
 * Whether cmd (parsed, or its name NULL) is one whose messages are never
 * compressed, request or reply (OP_COMPRESSED.md "Messages not allowed to
 * be compressed"): hello and legacy hello, saslStart, saslContinue,
 * getnonce, authenticate, createUser, updateUser, copydbSaslStart,
 * copydbgetnonce, copydb.
 */
bool proxy_compress_never(const struct wire_cmd *cmd);

/* The compressors a `compressors` option value names that this build has: bit (1 << id). */
uint32_t proxy_compress_offer(const char *list);

/*
 * Decodes a client's OP_COMPRESSED (data: the whole message, len bytes)
 * sent on a connection that agreed on the compressors in `agreed` (bit
 * (1 << id)): returns the message it wraps, which the caller frees with
 * bson_free, its length in *out_len and its compressor in *id, counted in
 * compressed_requests_<name>. NULL with error set when it is invalid (a
 * compressor not agreed included), or, *over_memory set, when its
 * uncompressed size (above PROXY_MEMORY_SMALL) would take the proxy past
 * max_memory. The size is checked before anything is allocated for it.
 */
uint8_t *proxy_compress_request(struct proxy_server *server, uint32_t agreed, const uint8_t *data,
                                size_t len, int *id, size_t *out_len, bool *over_memory,
                                bson_error_t *error) __attribute__((warn_unused_result));

/*
 * A reply to a compressed request, compressed with id: header (16 bytes,
 * already stamped for the client) and body (what follows it). Returns the
 * OP_COMPRESSED (bson_free), counted in compressed_replies_<name>; NULL
 * when compressing failed (counted in compression_failures): the caller
 * sends the reply as it is, which OP_COMPRESSED.md allows ("There is no
 * guarantee that a response will be compressed").
 */
uint8_t *proxy_compress_reply(struct proxy_server *server, int id, const uint8_t *header,
                              const uint8_t *body, size_t body_len, size_t *out_len)
    __attribute__((warn_unused_result));

/* A reply sent to a client compressed with id as the upstream compressed it (no re-encode):
 * counted as proxy_compress_reply counts one. */
void proxy_compress_count_reply(struct proxy_server *server, int id);

/*
 * The upstream link, independent of the clients': each client connection's
 * hello to the upstream offers the upstream URI's compressors= (in its
 * order); the first of them the upstream's reply lists is used for that
 * connection's requests from then on (never for the handshake or
 * authentication); the upstream's compressed replies are decoded whatever
 * compressor they name (one this build has), before anything reads them.
 */

/* Appends `compression: [the URI's compressors]` to hello (nothing when it names none). */
void proxy_compress_upstream_offer(const struct proxy_server *server, bson_t *hello);

/* The compressor the upstream's hello reply (checked, borrowed) agrees to, or -1. */
int proxy_compress_upstream_pick(const struct proxy_server *server, const bson_t *reply);

/*
 * The whole message msg (len bytes) compressed with id for the upstream
 * (bson_free), counted in upstream_compressed_requests_<name>; NULL when
 * compressing failed (counted in compression_failures): it goes plain.
 */
uint8_t *proxy_compress_upstream_request(struct proxy_server *server, int id, const uint8_t *msg,
                                         size_t len, size_t *out_len)
    __attribute__((warn_unused_result));

/*
 * The upstream's OP_COMPRESSED reply (data, len bytes) decoded into the
 * message it wraps (bson_free), bounded by max_message_size, counted in
 * upstream_compressed_replies_<name>; NULL with error set when it is
 * invalid (a protocol error of the upstream's).
 */
uint8_t *proxy_compress_upstream_reply(struct proxy_server *server, const uint8_t *data, size_t len,
                                       size_t *out_len, bson_error_t *error)
    __attribute__((warn_unused_result));

#endif
