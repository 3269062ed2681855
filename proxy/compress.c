/*
 * proxy/compress.c: the proxy's side of wire compression with clients
 * (see compress.h): which compressors it offers, the limits a compressed
 * request is held to before it is decoded (max_message_size, max_memory),
 * and the counters of what was decoded and compressed per algorithm.
 *
 * Owns nothing between calls (the libraries' state is the loop's, in
 * proxy/io.h, made here on first use). Does not own the negotiation in the
 * handshake (hello.c builds the reply's list, handshake.c records what a
 * client agreed to), which requests may be compressed or which reply
 * carries which compressor (client.c, lookup.c), nor the codec
 * (wire/compress.c). Plain connections never reach this file.
 */
#include "proxy/compress.h"

#include "conf/parse.h"
#include "proxy/hello.h"
#include "proxy/io.h"
#include "proxy/server.h"
#include "proxy/stats.h"
#include "wire/cmd.h"
#include "wire/compress.h"
#include "wire/names.h"

#include <string.h>
#include <strings.h>

/* Counters by compressor id. */
static const enum proxy_stat_id request_stat[WIRE_COMPRESSOR_COUNT] = {
    PROXY_STAT_compressed_requests_noop,
    PROXY_STAT_compressed_requests_snappy,
    PROXY_STAT_compressed_requests_zlib,
    PROXY_STAT_compressed_requests_zstd,
};
static const enum proxy_stat_id reply_stat[WIRE_COMPRESSOR_COUNT] = {
    PROXY_STAT_compressed_replies_noop,
    PROXY_STAT_compressed_replies_snappy,
    PROXY_STAT_compressed_replies_zlib,
    PROXY_STAT_compressed_replies_zstd,
};

static const enum proxy_stat_id upstream_request_stat[WIRE_COMPRESSOR_COUNT] = {
    PROXY_STAT_upstream_compressed_requests_noop,
    PROXY_STAT_upstream_compressed_requests_snappy,
    PROXY_STAT_upstream_compressed_requests_zlib,
    PROXY_STAT_upstream_compressed_requests_zstd,
};
static const enum proxy_stat_id upstream_reply_stat[WIRE_COMPRESSOR_COUNT] = {
    PROXY_STAT_upstream_compressed_replies_noop,
    PROXY_STAT_upstream_compressed_replies_snappy,
    PROXY_STAT_upstream_compressed_replies_zlib,
    PROXY_STAT_upstream_compressed_replies_zstd,
};

/* zlib's level for replies: its fastest (measured in docs/configuration.md, "Wire
 * compression": level 1 keeps the default level's saving on BSON replies at a quarter of
 * its time on 64 KB). */
#define REPLY_ZLIB_LEVEL 1

/* The loop's compression state (proxy/io.h), made on first use; NULL (one-shot library
 * calls) when out of memory. */
static struct wire_compress_ctx *
proxy_compress_ctx(struct proxy_server *server)
{
    struct proxy_io_loop *loop = proxy_io_loop_get(server);

    if (!loop)
        return NULL;
    if (!loop->compress)
        loop->compress = wire_compress_ctx_new();
    return loop->compress;
}

bool
proxy_compress_never(const struct wire_cmd *cmd)
{
    static const char *const unnamed[] = {"getnonce", "copydbSaslStart", "copydbgetnonce",
                                          "copydb"};

    if (!cmd->name)
        return false;
    switch (cmd->name_id) {
    case WIRE_NAME_HELLO:
    case WIRE_NAME_IS_MASTER:
    case WIRE_NAME_ISMASTER:
    case WIRE_NAME_SASL_START:
    case WIRE_NAME_SASL_CONTINUE:
    case WIRE_NAME_AUTHENTICATE:
    case WIRE_NAME_CREATE_USER:
    case WIRE_NAME_UPDATE_USER:
        return true;
    default:
        if (cmd->name_id != WIRE_NAME_UNKNOWN)
            return false; /* find, insert, ...: a name of the table, not one of the above */
        break;
    }
    /* Names the wire/names.h table does not classify (mongod's are case-sensitive; these
     * are compared without case, as the spec lists them in two spellings). */
    for (size_t i = 0; i < sizeof unnamed / sizeof unnamed[0]; i++)
        if (strcasecmp(cmd->name, unnamed[i]) == 0)
            return true;
    return false;
}

uint32_t
proxy_compress_offer(const char *list)
{
    uint32_t mask = 0;
    const char *p = list, *start;
    size_t len;

    while (conf_parse_list_next(&p, &start, &len)) {
        int id = wire_compress_lookup(start, len);

        if (id >= 0 && wire_compress_built(id))
            mask |= 1u << id;
    }
    return mask;
}

uint8_t *
proxy_compress_request(struct proxy_server *server, uint32_t agreed, const uint8_t *data,
                       size_t len, int *id, size_t *out_len, bool *over_memory, bson_error_t *error)
{
    struct wire_compressed msg;
    uint8_t *out;

    *over_memory = false;
    /* The compressor first: a stream of one the client did not agree on is not looked at. */
    if (len > WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN - 1) {
        uint8_t cid = data[WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN - 1];

        if (cid >= 32 || !(agreed & (1u << cid))) {
            const char *name = wire_compress_name(cid);

            bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_PROTOCOL,
                           "OP_COMPRESSED with compressorId %u (%s), which this connection did "
                           "not negotiate",
                           (unsigned)cid, name ? name : "unknown");
            return NULL;
        }
    }
    if (!wire_compress_parse(data, len, (int32_t)server->conf->max_message_size, &msg, error))
        return NULL;
    if ((size_t)msg.uncompressed_size > PROXY_MEMORY_SMALL &&
        proxy_server_memory_over(server, (size_t)msg.uncompressed_size)) {
        *over_memory = true;
        bson_set_error(error, WIRE_ERROR_DOMAIN, WIRE_ERR_PROTOCOL,
                       "a compressed message of %d bytes uncompressed would take the proxy past "
                       "max_memory",
                       (int)msg.uncompressed_size);
        return NULL;
    }
    out = wire_compress_decode(proxy_compress_ctx(server), &msg, out_len, error);
    if (!out)
        return NULL;
    *id = msg.compressor;
    proxy_stats_add(&server->stats, request_stat[msg.compressor], 1);
    return out;
}

uint8_t *
proxy_compress_reply(struct proxy_server *server, int id, const uint8_t *header,
                     const uint8_t *body, size_t body_len, size_t *out_len)
{
    struct wire_header h;
    bson_error_t error;
    uint8_t *out;

    if (id < 0 || id >= WIRE_COMPRESSOR_COUNT)
        return NULL;
    h.length = wire_frame_read_i32(header);
    h.request_id = wire_frame_read_i32(header + 4);
    h.response_to = wire_frame_read_i32(header + 8);
    h.opcode = wire_frame_read_i32(header + 12);
    out = wire_compress_encode(proxy_compress_ctx(server), &h, body, body_len, id, REPLY_ZLIB_LEVEL,
                               out_len, &error);
    proxy_stats_add(&server->stats, out ? reply_stat[id] : PROXY_STAT_compression_failures, 1);
    return out;
}

void
proxy_compress_count_reply(struct proxy_server *server, int id)
{
    if (id >= 0 && id < WIRE_COMPRESSOR_COUNT)
        proxy_stats_add(&server->stats, reply_stat[id], 1);
}

/* ---- the upstream link ------------------------------------------------------ */

void
proxy_compress_upstream_offer(const struct proxy_server *server, bson_t *hello)
{
    bson_t list;

    if (server->upstream_n_compressors == 0)
        return;
    BSON_APPEND_ARRAY_BEGIN(hello, "compression", &list);
    for (uint8_t i = 0; i < server->upstream_n_compressors; i++) {
        char index[16];
        const char *key;

        bson_uint32_to_string(i, &key, index, sizeof index);
        BSON_APPEND_UTF8(&list, key, wire_compress_name(server->upstream_compressors[i]));
    }
    bson_append_array_end(hello, &list);
}

int
proxy_compress_upstream_pick(const struct proxy_server *server, const bson_t *reply)
{
    struct proxy_hello_request listed;
    bson_iter_t it;

    memset(&listed, 0, sizeof listed);
    if (server->upstream_n_compressors == 0 || !bson_iter_init_find(&it, reply, "compression"))
        return -1;
    proxy_hello_read_compressors(&it, &listed);
    /* OP_COMPRESSED.md: "clients MUST use the first compressor in the client's configured
     * compressors list that is also in the servers list". */
    for (uint8_t i = 0; i < server->upstream_n_compressors; i++)
        if (proxy_hello_agreed(&listed, 1u << server->upstream_compressors[i]))
            return server->upstream_compressors[i];
    return -1;
}

uint8_t *
proxy_compress_upstream_request(struct proxy_server *server, int id, const uint8_t *msg, size_t len,
                                size_t *out_len)
{
    struct wire_header h;
    bson_error_t error;
    uint8_t *out;

    if (id < 0 || id >= WIRE_COMPRESSOR_COUNT || len < WIRE_HEADER_LEN)
        return NULL;
    h.length = wire_frame_read_i32(msg);
    h.request_id = wire_frame_read_i32(msg + 4);
    h.response_to = wire_frame_read_i32(msg + 8);
    h.opcode = wire_frame_read_i32(msg + 12);
    out = wire_compress_encode(proxy_compress_ctx(server), &h, msg + WIRE_HEADER_LEN,
                               len - WIRE_HEADER_LEN, id, server->upstream_zlib_level, out_len,
                               &error);
    proxy_stats_add(&server->stats,
                    out ? upstream_request_stat[id] : PROXY_STAT_compression_failures, 1);
    return out;
}

uint8_t *
proxy_compress_upstream_reply(struct proxy_server *server, const uint8_t *data, size_t len,
                              size_t *out_len, bson_error_t *error)
{
    struct wire_compressed msg;
    uint8_t *out;

    if (!wire_compress_parse(data, len, (int32_t)server->conf->max_message_size, &msg, error))
        return NULL;
    out = wire_compress_decode(proxy_compress_ctx(server), &msg, out_len, error);
    if (out)
        proxy_stats_add(&server->stats, upstream_reply_stat[msg.compressor], 1);
    return out;
}
