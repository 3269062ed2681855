/*
 * wire/compress.h: OP_COMPRESSED (opcode 2012): its 9-byte prefix, and
 * the compressors that wrap a message in it (noop, snappy, zlib, zstd,
 * whichever this build has: configure's --without-X).
 * Spec: mongodb/specifications source/compression/OP_COMPRESSED.md.
 *
 *   header (16)  length, requestID, responseTo, opcode = 2012
 *   int32        originalOpcode    the wrapped message's opcode
 *   int32        uncompressedSize  the wrapped message's length minus its header
 *   uint8        compressorId      0 noop, 1 snappy, 2 zlib, 3 zstd
 *   bytes        compressedMessage the wrapped message without its header
 *
 * Decoding is in two steps so that a caller can weigh the size a message
 * claims (wire_compress_parse) before anything is allocated for it
 * (wire_compress_decode). Every byte is the peer's: no length is trusted.
 */
#ifndef MONGOCACHE_WIRE_COMPRESS_H
#define MONGOCACHE_WIRE_COMPRESS_H

#include "wire/frame.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* compressorId values (OP_COMPRESSED.md "Compressor IDs"). */
enum wire_compressor {
    WIRE_COMPRESSOR_NOOP = 0,
    WIRE_COMPRESSOR_SNAPPY = 1,
    WIRE_COMPRESSOR_ZLIB = 2,
    WIRE_COMPRESSOR_ZSTD = 3,
    WIRE_COMPRESSOR_COUNT = 4,
};

/* originalOpcode, uncompressedSize, compressorId. */
#define WIRE_COMPRESS_PREFIX_LEN 9

/* The zlib level when the caller has no preference (zlib's own default, 6). */
#define WIRE_COMPRESS_ZLIB_DEFAULT_LEVEL (-1)

/* One OP_COMPRESSED, parsed; it points into the message it was parsed from. */
struct wire_compressed {
    struct wire_header header;
    int32_t original_opcode;
    int32_t uncompressed_size; /* >= 0, checked against the caller's limit */
    uint8_t compressor;        /* enum wire_compressor, built in this binary */
    const uint8_t *payload;    /* compressedMessage */
    size_t payload_len;
};

/*
 * The compression libraries' state, kept from one message to the next (one
 * per thread: it is not shared). Made by wire_compress_ctx_new (never NULL),
 * freed by wire_compress_ctx_destroy (NULL: nothing). The decode and
 * encode calls take one, or NULL for one-shot library calls (much slower:
 * each call then makes and frees the libraries' state).
 */
struct wire_compress_ctx;
struct wire_compress_ctx *wire_compress_ctx_new(void);
void wire_compress_ctx_destroy(struct wire_compress_ctx *ctx);

/* Whether this build can decode and encode with compressor id (noop: always). */
bool wire_compress_built(int id);

/* The handshake name of id ("noop", "snappy", "zlib", "zstd"), or NULL for another id. */
const char *wire_compress_name(int id);

/* The id of the handshake name name[0..len), or -1 when it names none. */
int wire_compress_lookup(const char *name, size_t len);

/*
 * Parses the whole OP_COMPRESSED at data (exactly len bytes, header
 * included) and checks what can be checked without decompressing: the
 * header's length and opcode, the prefix, a compressor this build has, an
 * originalOpcode that is not OP_COMPRESSED, 16 + uncompressedSize <=
 * max_len (max_len as in wire_frame_header), and the size the compressed
 * stream itself declares where it declares one (snappy always; zstd when
 * its frame carries it; zlib: not more than deflate's largest ratio;
 * noop: the payload's own length). error->code WIRE_ERR_PROTOCOL.
 */
bool wire_compress_parse(const uint8_t *data, size_t len, int32_t max_len,
                         struct wire_compressed *msg, bson_error_t *error)
    __attribute__((warn_unused_result));

/*
 * Decompresses msg (from wire_compress_parse; ctx: see above) into the message it wraps:
 * a header (length 16 + uncompressedSize, msg's requestID and responseTo,
 * originalOpcode) and the decompressed bytes, which must be exactly
 * uncompressedSize and the whole payload. Returns a buffer of *out_len
 * bytes the caller frees with bson_free; NULL with error set
 * (WIRE_ERR_PROTOCOL) when the payload is not a valid stream of that size.
 * Allocates 16 + uncompressedSize bytes and no more.
 */
uint8_t *wire_compress_decode(struct wire_compress_ctx *ctx, const struct wire_compressed *msg,
                              size_t *out_len, bson_error_t *error)
    __attribute__((warn_unused_result));

/*
 * Wraps a message in OP_COMPRESSED with compressor id (built; ctx: see above): h gives the
 * requestID and responseTo of the new header and the originalOpcode; body
 * (body_len bytes) is the message after its header. zlib_level applies to
 * zlib only (-1..9). Returns a buffer of *out_len bytes the caller frees
 * with bson_free; NULL with error set when the id is not built, the result
 * would pass INT32_MAX bytes or the library fails.
 */
uint8_t *wire_compress_encode(struct wire_compress_ctx *ctx, const struct wire_header *h,
                              const uint8_t *body, size_t body_len, int id, int zlib_level,
                              size_t *out_len, bson_error_t *error)
    __attribute__((warn_unused_result));

#endif
