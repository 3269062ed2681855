/*
 * wire/compress.c: owns OP_COMPRESSED's prefix and the four compressors
 * behind it: reading a compressed message (its claims checked before any
 * allocation, then decompressed into exactly the size it claimed) and
 * writing one. It does not decide who may send or receive compressed
 * messages, nor which compressor a reply gets (proxy/compress.c), nor
 * parse the wrapped message (wire/msg.c, once decoded).
 *
 * The libraries' state lives in a struct wire_compress_ctx the caller
 * keeps (one per thread), or, given none, is made and freed by each
 * library's one-shot call (uncompress2, compress2, ZSTD_decompress,
 * ZSTD_compress). snappy keeps no state. The module has no globals.
 */
#include "config.h"

#include "wire/compress.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#ifdef MONGOCACHE_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef MONGOCACHE_HAVE_ZSTD
#include <zstd.h>
#endif
#ifdef MONGOCACHE_HAVE_SNAPPY
#include <snappy-c.h>
#endif

/* deflate's largest ratio is 1032:1 (RFC 1951: 258 bytes per 2-bit code at best); the slack
 * covers zlib's header and a tiny payload. */
#define ZLIB_MAX_RATIO 1032u
#define ZLIB_SLACK 1024u
/* zstd's level for replies: the library's default. */
#define ZSTD_LEVEL 3

static const char *const names[WIRE_COMPRESSOR_COUNT] = {"noop", "snappy", "zlib", "zstd"};

/*
 * The libraries' state kept between messages: zstd's contexts and zlib's
 * two streams, each made on first use and reset for every message. A
 * one-shot call makes and frees them every time (zlib's deflate state is
 * about 256 KiB, which malloc maps and unmaps, page faults included; zstd's
 * contexts likewise): measured in docs/configuration.md ("Wire
 * compression"), 10 to 100 times the cost of the work itself on small
 * replies.
 */
struct wire_compress_ctx {
#ifdef MONGOCACHE_HAVE_ZSTD
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
#endif
#ifdef MONGOCACHE_HAVE_ZLIB
    z_stream def;
    z_stream inf;
    bool def_ready;
    bool inf_ready;
    int def_level;
#endif
    int unused; /* a struct needs a member whatever is built */
};

struct wire_compress_ctx *
wire_compress_ctx_new(void)
{
    return bson_malloc0(sizeof(struct wire_compress_ctx));
}

void
wire_compress_ctx_destroy(struct wire_compress_ctx *ctx)
{
    if (!ctx)
        return;
#ifdef MONGOCACHE_HAVE_ZSTD
    ZSTD_freeCCtx(ctx->zc);
    ZSTD_freeDCtx(ctx->zd);
#endif
#ifdef MONGOCACHE_HAVE_ZLIB
    if (ctx->def_ready)
        deflateEnd(&ctx->def);
    if (ctx->inf_ready)
        inflateEnd(&ctx->inf);
#endif
    bson_free(ctx);
}

bool
wire_compress_built(int id)
{
    switch (id) {
    case WIRE_COMPRESSOR_NOOP:
        return true;
#ifdef MONGOCACHE_HAVE_SNAPPY
    case WIRE_COMPRESSOR_SNAPPY:
        return true;
#endif
#ifdef MONGOCACHE_HAVE_ZLIB
    case WIRE_COMPRESSOR_ZLIB:
        return true;
#endif
#ifdef MONGOCACHE_HAVE_ZSTD
    case WIRE_COMPRESSOR_ZSTD:
        return true;
#endif
    default:
        return false;
    }
}

const char *
wire_compress_name(int id)
{
    return id >= 0 && id < WIRE_COMPRESSOR_COUNT ? names[id] : NULL;
}

int
wire_compress_lookup(const char *name, size_t len)
{
    for (int id = 0; id < WIRE_COMPRESSOR_COUNT; id++) {
        if (strlen(names[id]) == len && memcmp(names[id], name, len) == 0)
            return id;
    }
    return -1;
}

/* The size the compressed stream declares, where it declares one, against the claimed one. */
static bool
stream_size_ok(const struct wire_compressed *msg, bson_error_t *error)
{
    size_t claimed = (size_t)msg->uncompressed_size;

    switch (msg->compressor) {
    case WIRE_COMPRESSOR_NOOP:
        if (msg->payload_len != claimed)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED noop payload is %lld bytes, uncompressedSize %lld",
                             (long long)msg->payload_len, (long long)claimed);
        return true;
#ifdef MONGOCACHE_HAVE_SNAPPY
    case WIRE_COMPRESSOR_SNAPPY: {
        size_t declared = 0;

        if (snappy_uncompressed_length((const char *)msg->payload, msg->payload_len, &declared) !=
            SNAPPY_OK)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED snappy payload of %lld bytes has no valid "
                             "length",
                             (long long)msg->payload_len);
        if (declared != claimed)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED snappy payload declares %lld bytes, "
                             "uncompressedSize %lld",
                             (long long)declared, (long long)claimed);
        return true;
    }
#endif
#ifdef MONGOCACHE_HAVE_ZLIB
    case WIRE_COMPRESSOR_ZLIB:
        if (claimed > msg->payload_len * ZLIB_MAX_RATIO + ZLIB_SLACK)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED zlib payload of %lld bytes cannot hold "
                             "uncompressedSize %lld",
                             (long long)msg->payload_len, (long long)claimed);
        return true;
#endif
#ifdef MONGOCACHE_HAVE_ZSTD
    case WIRE_COMPRESSOR_ZSTD: {
        unsigned long long declared = ZSTD_getFrameContentSize(msg->payload, msg->payload_len);

        if (declared == ZSTD_CONTENTSIZE_ERROR)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED zstd payload of %lld bytes is not a zstd "
                             "frame",
                             (long long)msg->payload_len);
        /* A frame written by streaming may not say; the decode still holds it to the claim. */
        if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != claimed)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED zstd frame declares %lld bytes, "
                             "uncompressedSize %lld",
                             (long long)declared, (long long)claimed);
        return true;
    }
#endif
    default:
        return wire_fail(error, WIRE_ERR_PROTOCOL,
                         "OP_COMPRESSED compressorId %lld is not supported",
                         (long long)msg->compressor);
    }
}

bool
wire_compress_parse(const uint8_t *data, size_t len, int32_t max_len, struct wire_compressed *msg,
                    bson_error_t *error)
{
    memset(msg, 0, sizeof *msg);
    if (wire_frame_header(data, len, max_len, &msg->header, error) != WIRE_OK) {
        if (len < WIRE_HEADER_LEN)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED of %lld bytes is shorter than a header",
                             (long long)len);
        return false;
    }
    if ((size_t)msg->header.length != len)
        return wire_fail(error, WIRE_ERR_PROTOCOL, "header length %lld but message is %lld bytes",
                         (long long)msg->header.length, (long long)len);
    if (msg->header.opcode != WIRE_OP_COMPRESSED)
        return wire_fail(error, WIRE_ERR_PROTOCOL,
                         "opcode %lld where OP_COMPRESSED (%d) was expected",
                         (long long)msg->header.opcode, WIRE_OP_COMPRESSED);
    if (len < WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN)
        return wire_fail(error, WIRE_ERR_PROTOCOL,
                         "OP_COMPRESSED of %lld bytes is shorter than its %d-byte prefix",
                         (long long)len, WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN);
    if (max_len < WIRE_HEADER_LEN || max_len > WIRE_MAX_MESSAGE_LEN)
        max_len = WIRE_MAX_MESSAGE_LEN;
    msg->original_opcode = wire_frame_read_i32(data + WIRE_HEADER_LEN);
    msg->uncompressed_size = wire_frame_read_i32(data + WIRE_HEADER_LEN + 4);
    msg->compressor = data[WIRE_HEADER_LEN + 8];
    msg->payload = data + WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN;
    msg->payload_len = len - WIRE_HEADER_LEN - WIRE_COMPRESS_PREFIX_LEN;
    if (msg->original_opcode == WIRE_OP_COMPRESSED)
        return wire_fail(error, WIRE_ERR_PROTOCOL,
                         "OP_COMPRESSED wraps an OP_COMPRESSED (%lld bytes)", (long long)len);
    if (msg->uncompressed_size < 0 ||
        (int64_t)msg->uncompressed_size > (int64_t)max_len - WIRE_HEADER_LEN)
        return wire_fail(error, WIRE_ERR_PROTOCOL,
                         "OP_COMPRESSED uncompressedSize %lld is invalid: max %lld",
                         (long long)msg->uncompressed_size, (long long)max_len - WIRE_HEADER_LEN);
    if (!wire_compress_built(msg->compressor))
        return wire_fail(error, WIRE_ERR_PROTOCOL,
                         "OP_COMPRESSED compressorId %lld is not supported by this "
                         "build",
                         (long long)msg->compressor);
    return stream_size_ok(msg, error);
}

#ifdef MONGOCACHE_HAVE_ZLIB
/*
 * uncompress2 on ctx's kept stream: Z_OK when the stream ended within
 * *got bytes of output (*got: what it wrote, *used: what it read);
 * otherwise zlib's error (Z_BUF_ERROR: more output than *got, or the
 * stream cut short).
 */
static int
ctx_inflate(struct wire_compress_ctx *ctx, const struct wire_compressed *msg, uint8_t *out,
            uLongf *got, uLong *used)
{
    z_stream *z = &ctx->inf;
    int rc;

    if (!ctx->inf_ready) {
        memset(z, 0, sizeof *z);
        if (inflateInit(z) != Z_OK)
            return Z_MEM_ERROR;
        ctx->inf_ready = true;
    } else if (inflateReset(z) != Z_OK) {
        return Z_STREAM_ERROR;
    }
    z->next_in = (Bytef *)msg->payload;
    z->avail_in = (uInt)msg->payload_len;
    z->next_out = out;
    z->avail_out = (uInt)*got;
    rc = inflate(z, Z_FINISH);
    *got = (uLongf)z->total_out;
    *used = (uLong)z->total_in;
    return rc == Z_STREAM_END ? Z_OK : rc == Z_OK ? Z_BUF_ERROR : rc;
}
#endif

/* Decompresses msg's payload into out (exactly uncompressed_size bytes); ctx may be NULL. */
static bool
inflate_into(struct wire_compress_ctx *ctx, const struct wire_compressed *msg, uint8_t *out,
             bson_error_t *error)
{
    size_t want = (size_t)msg->uncompressed_size;

    (void)ctx; /* unused when neither zlib nor zstd is built */
    switch (msg->compressor) {
    case WIRE_COMPRESSOR_NOOP:
        memcpy(out, msg->payload, want);
        return true;
#ifdef MONGOCACHE_HAVE_SNAPPY
    case WIRE_COMPRESSOR_SNAPPY: {
        size_t got = want;

        if (snappy_uncompress((const char *)msg->payload, msg->payload_len, (char *)out, &got) !=
                SNAPPY_OK ||
            got != want)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED snappy payload of %lld bytes is corrupt "
                             "(uncompressedSize %lld)",
                             (long long)msg->payload_len, (long long)want);
        return true;
    }
#endif
#ifdef MONGOCACHE_HAVE_ZLIB
    case WIRE_COMPRESSOR_ZLIB: {
        uLongf got = (uLongf)want;
        uLong used = (uLong)msg->payload_len;
        int rc;

        if (msg->payload_len > ULONG_MAX)
            return wire_fail(error, WIRE_ERR_PROTOCOL, "OP_COMPRESSED zlib payload of %lld bytes",
                             (long long)msg->payload_len);
        if (ctx) {
            rc = ctx_inflate(ctx, msg, out, &got, &used);
        } else {
            /* uncompress2 stops at the stream's end and says how much it read. An empty
             * output buffer still has a valid pointer (out is past the header's 16 bytes). */
            rc = uncompress2(out, &got, msg->payload, &used);
        }
        if (rc != Z_OK || got != want || used != (uLong)msg->payload_len)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED zlib payload is corrupt or not exactly "
                             "uncompressedSize %lld (zlib %lld)",
                             (long long)want, (long long)rc);
        return true;
    }
#endif
#ifdef MONGOCACHE_HAVE_ZSTD
    case WIRE_COMPRESSOR_ZSTD: {
        size_t got;

        if (ctx && !ctx->zd)
            ctx->zd = ZSTD_createDCtx();
        got = ctx && ctx->zd
                  ? ZSTD_decompressDCtx(ctx->zd, out, want, msg->payload, msg->payload_len)
                  : ZSTD_decompress(out, want, msg->payload, msg->payload_len);

        if (ZSTD_isError(got) || got != want)
            return wire_fail(error, WIRE_ERR_PROTOCOL,
                             "OP_COMPRESSED zstd payload is corrupt or not exactly "
                             "uncompressedSize %lld (%lld)",
                             (long long)want, ZSTD_isError(got) ? -1LL : (long long)got);
        return true;
    }
#endif
    default:
        return wire_fail(error, WIRE_ERR_PROTOCOL,
                         "OP_COMPRESSED compressorId %lld is not supported",
                         (long long)msg->compressor);
    }
}

uint8_t *
wire_compress_decode(struct wire_compress_ctx *ctx, const struct wire_compressed *msg,
                     size_t *out_len, bson_error_t *error)
{
    size_t total = WIRE_HEADER_LEN + (size_t)msg->uncompressed_size;
    struct wire_header h = msg->header;
    uint8_t *out;

    if (msg->uncompressed_size < 0 || !wire_compress_built(msg->compressor)) {
        wire_fail(error, WIRE_ERR_PROTOCOL,
                  "OP_COMPRESSED was not parsed (uncompressedSize %lld, compressor %lld)",
                  (long long)msg->uncompressed_size, (long long)msg->compressor);
        return NULL;
    }
    out = bson_malloc(total);
    if (!inflate_into(ctx, msg, out + WIRE_HEADER_LEN, error)) {
        bson_free(out);
        return NULL;
    }
    h.length = (int32_t)total;
    h.opcode = msg->original_opcode;
    wire_frame_put_header(out, &h);
    *out_len = total;
    return out;
}

/* The most bytes compressor id may write for n input bytes (0: not built). */
static size_t
bound(int id, size_t n)
{
    switch (id) {
    case WIRE_COMPRESSOR_NOOP:
        return n;
#ifdef MONGOCACHE_HAVE_SNAPPY
    case WIRE_COMPRESSOR_SNAPPY:
        return snappy_max_compressed_length(n);
#endif
#ifdef MONGOCACHE_HAVE_ZLIB
    case WIRE_COMPRESSOR_ZLIB:
        return n > ULONG_MAX / 2 ? 0 : (size_t)compressBound((uLong)n);
#endif
#ifdef MONGOCACHE_HAVE_ZSTD
    case WIRE_COMPRESSOR_ZSTD:
        return ZSTD_compressBound(n);
#endif
    default:
        return 0;
    }
}

#ifdef MONGOCACHE_HAVE_ZLIB
/* compress2 on ctx's kept stream: the bytes written, or 0 on failure. */
static size_t
ctx_deflate(struct wire_compress_ctx *ctx, const uint8_t *body, size_t body_len, int level,
            uint8_t *out, size_t room)
{
    z_stream *z = &ctx->def;

    if (!ctx->def_ready) {
        memset(z, 0, sizeof *z);
        if (deflateInit(z, level) != Z_OK)
            return 0;
        ctx->def_ready = true;
        ctx->def_level = level;
    } else if (deflateReset(z) != Z_OK) {
        return 0;
    }
    if (level != ctx->def_level) {
        /* On a stream just reset (nothing in it yet) the new level applies at once. */
        if (deflateParams(z, level, Z_DEFAULT_STRATEGY) != Z_OK)
            return 0;
        ctx->def_level = level;
    }
    z->next_in = (Bytef *)body;
    z->avail_in = (uInt)body_len;
    z->next_out = out;
    z->avail_out = (uInt)room;
    if (deflate(z, Z_FINISH) != Z_STREAM_END)
        return 0;
    return (size_t)z->total_out;
}
#endif

/* Compresses body into out (room bytes): the bytes written, or 0 on failure. ctx may be
 * NULL. */
static size_t
deflate_into(struct wire_compress_ctx *ctx, int id, const uint8_t *body, size_t body_len,
             int zlib_level, uint8_t *out, size_t room)
{
    switch (id) {
    case WIRE_COMPRESSOR_NOOP:
        memcpy(out, body, body_len);
        return body_len;
#ifdef MONGOCACHE_HAVE_SNAPPY
    case WIRE_COMPRESSOR_SNAPPY: {
        size_t n = room;

        return snappy_compress((const char *)body, body_len, (char *)out, &n) == SNAPPY_OK ? n : 0;
    }
#endif
#ifdef MONGOCACHE_HAVE_ZLIB
    case WIRE_COMPRESSOR_ZLIB: {
        uLongf n = (uLongf)room;

        if (zlib_level < -1 || zlib_level > 9)
            zlib_level = WIRE_COMPRESS_ZLIB_DEFAULT_LEVEL;
        if (ctx)
            return body_len > UINT_MAX || room > UINT_MAX
                       ? 0
                       : ctx_deflate(ctx, body, body_len, zlib_level, out, room);
        return compress2(out, &n, body, (uLong)body_len, zlib_level) == Z_OK ? (size_t)n : 0;
    }
#endif
#ifdef MONGOCACHE_HAVE_ZSTD
    case WIRE_COMPRESSOR_ZSTD: {
        size_t n;

        if (ctx && !ctx->zc)
            ctx->zc = ZSTD_createCCtx();
        n = ctx && ctx->zc ? ZSTD_compressCCtx(ctx->zc, out, room, body, body_len, ZSTD_LEVEL)
                           : ZSTD_compress(out, room, body, body_len, ZSTD_LEVEL);

        return ZSTD_isError(n) ? 0 : n;
    }
#endif
    default:
        (void)ctx;
        (void)body;
        (void)body_len;
        (void)zlib_level;
        (void)out;
        (void)room;
        return 0;
    }
}

uint8_t *
wire_compress_encode(struct wire_compress_ctx *ctx, const struct wire_header *h,
                     const uint8_t *body, size_t body_len, int id, int zlib_level, size_t *out_len,
                     bson_error_t *error)
{
    const size_t at = WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN;
    size_t room, n;
    struct wire_header out_h;
    uint8_t *out;

    if (!wire_compress_built(id)) {
        wire_fail(error, WIRE_ERR_PROTOCOL, "compressor %lld is not built in", (long long)id);
        return NULL;
    }
    if (body_len > (size_t)INT32_MAX - WIRE_HEADER_LEN) {
        wire_fail(error, WIRE_ERR_PROTOCOL, "a message of %lld bytes is too large to compress",
                  (long long)body_len);
        return NULL;
    }
    room = bound(id, body_len);
    if (room == 0 && body_len > 0) {
        wire_fail(error, WIRE_ERR_PROTOCOL, "compressor %lld cannot take %lld bytes", (long long)id,
                  (long long)body_len);
        return NULL;
    }
    out = bson_malloc(at + room + 1);
    n = deflate_into(ctx, id, body, body_len, zlib_level, out + at, room + 1);
    if ((n == 0 && body_len > 0) || at + n > (size_t)INT32_MAX) {
        bson_free(out);
        wire_fail(error, WIRE_ERR_PROTOCOL, "compressor %lld failed on %lld bytes", (long long)id,
                  (long long)body_len);
        return NULL;
    }
    out_h.length = (int32_t)(at + n);
    out_h.request_id = h->request_id;
    out_h.response_to = h->response_to;
    out_h.opcode = WIRE_OP_COMPRESSED;
    wire_frame_put_header(out, &out_h);
    wire_frame_write_i32(out + WIRE_HEADER_LEN, h->opcode);
    wire_frame_write_i32(out + WIRE_HEADER_LEN + 4, (int32_t)body_len);
    out[WIRE_HEADER_LEN + 8] = (uint8_t)id;
    *out_len = at + n;
    return out;
}
