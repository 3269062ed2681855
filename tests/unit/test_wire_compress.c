/*
 * tests/unit/test_wire_compress.c: owns the tests of wire/compress.c:
 * names and ids, a round trip through every compressor this build has,
 * streams written by the libraries themselves (a zstd frame without its
 * size), the hostile cases one by one (each with the check that refuses
 * it), and a seeded loop of truncated and garbled messages that must be
 * refused or decoded to exactly the size they claim, never crash (run it
 * under ASan). It does not test who may send compressed messages
 * (the proxy's integration tests).
 */
#include "config.h"

#include "tests/unit/tap.h"
#include "wire/compress.h"
#include "wire/frame.h"

#include <stdint.h>
#include <stdlib.h>
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

/* The library state the decode calls use: NULL (one-shot calls) in the first pass, a kept
 * context in the second (main). */
static struct wire_compress_ctx *ctx;
static const char *pass = "one-shot";

static const int all_ids[] = {WIRE_COMPRESSOR_NOOP, WIRE_COMPRESSOR_SNAPPY, WIRE_COMPRESSOR_ZLIB,
                              WIRE_COMPRESSOR_ZSTD};

/* A body of n bytes: repetitive (compressible) text with a counter in it. */
static uint8_t *
make_body(size_t n)
{
    uint8_t *b = malloc(n ? n : 1);

    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)("{find: 'items', filter: {qty: {$gt: 25}}} "[i % 43] + (i / 4096) % 3);
    return b;
}

/* Builds a whole OP_COMPRESSED by hand: header, prefix, payload. Caller frees. */
static uint8_t *
hand_made(int32_t original, int32_t claimed, uint8_t id, const uint8_t *payload, size_t n,
          size_t *len)
{
    struct wire_header h = {(int32_t)(WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN + n), 7, 0,
                            WIRE_OP_COMPRESSED};
    uint8_t *m = malloc(WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN + n);

    wire_frame_put_header(m, &h);
    wire_frame_write_i32(m + 16, original);
    wire_frame_write_i32(m + 20, claimed);
    m[24] = id;
    if (n)
        memcpy(m + 25, payload, n);
    *len = WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN + n;
    return m;
}

/* Parses and decodes; true and the decoded message in *out (caller frees) when both pass. */
static bool
decode_all(const uint8_t *m, size_t len, int32_t max_len, uint8_t **out, size_t *out_len,
           bson_error_t *error)
{
    struct wire_compressed c;

    *out = NULL;
    if (!wire_compress_parse(m, len, max_len, &c, error))
        return false;
    *out = wire_compress_decode(ctx, &c, out_len, error);
    return *out != NULL;
}

static void
test_names(void)
{
    is_str(wire_compress_name(WIRE_COMPRESSOR_ZSTD), "zstd", "id 3 is zstd");
    is_str(wire_compress_name(WIRE_COMPRESSOR_SNAPPY), "snappy", "id 1 is snappy");
    ok(wire_compress_name(4) == NULL && wire_compress_name(-1) == NULL, "ids 4 and -1 name none");
    is_int(wire_compress_lookup("zlib", 4), WIRE_COMPRESSOR_ZLIB, "zlib is id 2");
    is_int(wire_compress_lookup("noop", 4), WIRE_COMPRESSOR_NOOP, "noop is id 0");
    is_int(wire_compress_lookup("zlibx", 5), -1, "an unknown name is -1");
    is_int(wire_compress_lookup("zli", 3), -1, "a prefix is not a name");
    ok(wire_compress_built(WIRE_COMPRESSOR_NOOP), "noop is always built");
    ok(!wire_compress_built(4), "id 4 is never built");
}

/* Every built compressor: encode, then decode back to the same message. */
static void
test_round_trip(struct wire_compress_ctx *keep)
{
    static const size_t sizes[] = {0, 1, 37, 4096, 200000};

    for (size_t k = 0; k < sizeof all_ids / sizeof all_ids[0]; k++) {
        int id = all_ids[k];

        if (!wire_compress_built(id)) {
            diag("%s is not built: round trip skipped", wire_compress_name(id));
            continue;
        }
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            struct wire_header h = {0, 1234, 99, WIRE_OP_MSG};
            uint8_t *body = make_body(sizes[s]), *enc, *dec = NULL;
            size_t enc_len = 0, dec_len = 0;
            bson_error_t error;
            struct wire_header got;

            /* Encoded the other way than decoded: kept state and one-shot calls agree. */
            enc = wire_compress_encode(ctx ? NULL : keep, &h, body, sizes[s], id, -1, &enc_len,
                                       &error);
            if (!ok(enc != NULL, "%s encodes %zu bytes (%s)", wire_compress_name(id), sizes[s],
                    pass)) {
                diag("%s", error.message);
                free(body);
                continue;
            }
            ok(decode_all(enc, enc_len, WIRE_MAX_MESSAGE_LEN, &dec, &dec_len, &error),
               "%s decodes its %zu bytes back", wire_compress_name(id), sizes[s]);
            if (dec) {
                (void)wire_frame_header(dec, dec_len, WIRE_MAX_MESSAGE_LEN, &got, &error);
                ok(dec_len == WIRE_HEADER_LEN + sizes[s] && got.length == (int32_t)dec_len &&
                       got.opcode == WIRE_OP_MSG && got.request_id == 1234 &&
                       got.response_to == 99 && memcmp(dec + WIRE_HEADER_LEN, body, sizes[s]) == 0,
                   "%s: the same header fields and bytes", wire_compress_name(id));
            }
            if (sizes[s] == 200000 && id != WIRE_COMPRESSOR_NOOP)
                ok(enc_len < sizes[s] / 4, "%s shrinks 200000 repetitive bytes to %zu",
                   wire_compress_name(id), enc_len);
            free(body);
            bson_free(enc);
            bson_free(dec);
        }
    }
}

struct hostile {
    const char *name;
    int32_t original;
    int32_t claimed;
    uint8_t id;
    const char *payload; /* raw bytes */
    size_t payload_len;
    int32_t max_len;
    const char *errmsg; /* the start of the expected error */
};

static const struct hostile hostile_cases[] = {
    {"uncompressedSize negative", WIRE_OP_MSG, -1, 0, "", 0, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED uncompressedSize -1 is invalid"},
    {"uncompressedSize INT32_MIN", WIRE_OP_MSG, INT32_MIN, 0, "", 0, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED uncompressedSize -2147483648 is invalid"},
    {"uncompressedSize past the limit", WIRE_OP_MSG, 1000 - 15, 0, "", 0, 1000,
     "OP_COMPRESSED uncompressedSize 985 is invalid: max 984"},
    {"uncompressedSize past 48000000", WIRE_OP_MSG, INT32_MAX, 2, "x", 1, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED uncompressedSize 2147483647 is invalid"},
    {"a compressor id that does not exist", WIRE_OP_MSG, 4, 4, "abcd", 4, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED compressorId 4 is not supported"},
    {"compressor id 255", WIRE_OP_MSG, 4, 255, "abcd", 4, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED compressorId 255 is not supported"},
    {"OP_COMPRESSED inside OP_COMPRESSED", WIRE_OP_COMPRESSED, 4, 0, "abcd", 4,
     WIRE_MAX_MESSAGE_LEN, "OP_COMPRESSED wraps an OP_COMPRESSED"},
    {"noop payload shorter than claimed", WIRE_OP_MSG, 5, 0, "abcd", 4, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED noop payload is 4 bytes, uncompressedSize 5"},
#ifdef MONGOCACHE_HAVE_ZLIB
    {"zlib claiming more than deflate can hold", WIRE_OP_MSG, 10 * 1032 + 1025, 2, "0123456789", 10,
     WIRE_MAX_MESSAGE_LEN, "OP_COMPRESSED zlib payload of 10 bytes cannot hold"},
    {"zlib garbage", WIRE_OP_MSG, 100, 2, "not a zlib stream", 17, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED zlib payload is corrupt"},
    {"zlib empty payload", WIRE_OP_MSG, 10, 2, "", 0, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED zlib payload is corrupt"},
#endif
#ifdef MONGOCACHE_HAVE_ZSTD
    {"zstd garbage", WIRE_OP_MSG, 100, 3, "not a zstd frame", 16, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED zstd payload of 16 bytes is not a zstd frame"},
    {"zstd empty payload", WIRE_OP_MSG, 0, 3, "", 0, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED zstd payload of 0 bytes is not a zstd frame"},
#endif
#ifdef MONGOCACHE_HAVE_SNAPPY
    /* varint 0x80 0x80 0x80 0x80 0x80: longer than five bytes allows */
    {"snappy length varint overlong", WIRE_OP_MSG, 4, 1, "\x80\x80\x80\x80\x80\x01", 6,
     WIRE_MAX_MESSAGE_LEN, "OP_COMPRESSED snappy payload of 6 bytes has no valid length"},
    {"snappy declares another length", WIRE_OP_MSG, 4, 1, "\x05\x10hello", 7, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED snappy payload declares 5 bytes, uncompressedSize 4"},
    /* declares 5 bytes, then a literal of 5 whose bytes are missing */
    {"snappy literal past the payload", WIRE_OP_MSG, 5, 1, "\x05\x10he", 4, WIRE_MAX_MESSAGE_LEN,
     "OP_COMPRESSED snappy payload of 4 bytes is corrupt"},
    /* declares 8 bytes: literal "ab", then a copy with offset 9 (before the start) */
    {"snappy copy before the start", WIRE_OP_MSG, 8, 1,
     "\x08\x04"
     "ab"
     "\x09\x09",
     6, WIRE_MAX_MESSAGE_LEN, "OP_COMPRESSED snappy payload of 6 bytes is corrupt"},
#endif
};

static void
test_hostile(void)
{
    for (size_t i = 0; i < sizeof hostile_cases / sizeof hostile_cases[0]; i++) {
        const struct hostile *t = &hostile_cases[i];
        size_t len, out_len = 0;
        uint8_t *m = hand_made(t->original, t->claimed, t->id, (const uint8_t *)t->payload,
                               t->payload_len, &len),
                *out;
        bson_error_t error;
        bool decoded;

        memset(&error, 0, sizeof error);
        decoded = decode_all(m, len, t->max_len, &out, &out_len, &error);
        ok(!decoded && strncmp(error.message, t->errmsg, strlen(t->errmsg)) == 0 &&
               error.domain == WIRE_ERROR_DOMAIN && error.code == WIRE_ERR_PROTOCOL,
           "%s is refused (%s)", t->name, pass);
        if (decoded || strncmp(error.message, t->errmsg, strlen(t->errmsg)) != 0)
            diag("got \"%s\"", decoded ? "(decoded)" : error.message);
        bson_free(out);
        free(m);
    }
}

/* Framing faults: the header itself. */
static void
test_framing(void)
{
    size_t len;
    uint8_t *m = hand_made(WIRE_OP_MSG, 4, 0, (const uint8_t *)"abcd", 4, &len), *out;
    struct wire_compressed c;
    bson_error_t error;
    size_t out_len;

    ok(!wire_compress_parse(m, 10, WIRE_MAX_MESSAGE_LEN, &c, &error) &&
           strstr(error.message, "shorter than a header"),
       "10 bytes: shorter than a header");
    ok(!wire_compress_parse(m, len - 1, WIRE_MAX_MESSAGE_LEN, &c, &error) &&
           strstr(error.message, "header length 29 but message is 28 bytes"),
       "a length that is not the message's");
    wire_frame_write_i32(m, 20);
    ok(!wire_compress_parse(m, 20, WIRE_MAX_MESSAGE_LEN, &c, &error) &&
           strstr(error.message, "shorter than its 25-byte prefix"),
       "20 bytes: no room for the prefix");
    wire_frame_write_i32(m, (int32_t)len);
    wire_frame_write_i32(m + 12, WIRE_OP_MSG);
    ok(!wire_compress_parse(m, len, WIRE_MAX_MESSAGE_LEN, &c, &error) &&
           strstr(error.message, "opcode 2013 where OP_COMPRESSED (2012) was expected"),
       "another opcode is refused");
    wire_frame_write_i32(m + 12, WIRE_OP_COMPRESSED);
    ok(decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) && out_len == 20 &&
           memcmp(out + 16, "abcd", 4) == 0,
       "the same message mended decodes (noop)");
    bson_free(out);
    free(m);
}

/* Streams the libraries write themselves, and lies inside valid streams. */
static void
test_library_streams(void)
{
    uint8_t *body = make_body(5000);

#ifdef MONGOCACHE_HAVE_ZLIB
    {
        uLongf n = compressBound(5000);
        uint8_t *z = malloc(n + 8), *m, *out;
        size_t len, out_len;
        bson_error_t error;

        compress2(z, &n, body, 5000, 9);
        m = hand_made(WIRE_OP_MSG, 5000, 2, z, n, &len);
        ok(decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) &&
               memcmp(out + 16, body, 5000) == 0,
           "zlib: a level-9 stream from zlib itself decodes");
        bson_free(out);
        free(m);
        m = hand_made(WIRE_OP_MSG, 4999, 2, z, n, &len);
        ok(!decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) &&
               strstr(error.message, "not exactly uncompressedSize 4999"),
           "zlib: a stream longer than claimed is refused");
        free(m);
        m = hand_made(WIRE_OP_MSG, 5001, 2, z, n, &len);
        ok(!decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) &&
               strstr(error.message, "not exactly uncompressedSize 5001"),
           "zlib: a stream shorter than claimed is refused");
        free(m);
        memcpy(z + n, "tail", 4);
        m = hand_made(WIRE_OP_MSG, 5000, 2, z, n + 4, &len);
        ok(!decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) &&
               strstr(error.message, "zlib payload is corrupt or not exactly"),
           "zlib: bytes after the stream are refused");
        free(m);
        free(z);
    }
#endif
#ifdef MONGOCACHE_HAVE_ZSTD
    {
        size_t cap = ZSTD_compressBound(5000), n;
        uint8_t *z = malloc(cap), *m, *out;
        size_t len, out_len;
        bson_error_t error;
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        ZSTD_outBuffer ob = {z, cap, 0};
        ZSTD_inBuffer ib = {body, 5000, 0};

        /* A streamed frame: it does not carry its size. */
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
        (void)ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_end);
        n = ob.pos;
        ZSTD_freeCCtx(cctx);
        ok(ZSTD_getFrameContentSize(z, n) == ZSTD_CONTENTSIZE_UNKNOWN,
           "zstd: the streamed frame has no size");
        m = hand_made(WIRE_OP_MSG, 5000, 3, z, n, &len);
        ok(decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) &&
               memcmp(out + 16, body, 5000) == 0,
           "zstd: a frame without its size decodes");
        bson_free(out);
        free(m);
        m = hand_made(WIRE_OP_MSG, 4000, 3, z, n, &len);
        ok(!decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) &&
               strstr(error.message, "not exactly uncompressedSize 4000"),
           "zstd: a sizeless frame longer than claimed is refused (no overrun)");
        free(m);
        n = ZSTD_compress(z, cap, body, 5000, 1);
        m = hand_made(WIRE_OP_MSG, 4999, 3, z, n, &len);
        ok(!decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) &&
               strstr(error.message, "zstd frame declares 5000 bytes, uncompressedSize 4999"),
           "zstd: a frame declaring another size is refused before any allocation");
        free(m);
        free(z);
    }
#endif
#ifdef MONGOCACHE_HAVE_SNAPPY
    {
        size_t n = snappy_max_compressed_length(5000);
        uint8_t *z = malloc(n), *m, *out;
        size_t len, out_len;
        bson_error_t error;

        snappy_compress((const char *)body, 5000, (char *)z, &n);
        m = hand_made(WIRE_OP_MSG, 5000, 1, z, n, &len);
        ok(decode_all(m, len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error) &&
               memcmp(out + 16, body, 5000) == 0,
           "snappy: a block from snappy itself decodes");
        bson_free(out);
        free(m);
        free(z);
    }
#endif
    free(body);
}

/* xorshift64*: a fixed seed, so a failure repeats. */
static uint64_t
next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/*
 * Truncated and garbled messages: each is refused, or decodes to exactly
 * the size it claims (a flipped byte in the payload can still be a valid
 * stream); none crashes or reads out of bounds (ASan).
 */
static void
test_garbled(void)
{
    uint64_t seed = 0x6d6f6e676f636163ULL;

    for (size_t k = 0; k < sizeof all_ids / sizeof all_ids[0]; k++) {
        int id = all_ids[k];
        struct wire_header h = {0, 5, 0, WIRE_OP_MSG};
        uint8_t *body = make_body(3000), *enc, *copy;
        size_t enc_len, truncated_ok = 0, garbled = 0, garbled_bad = 0;
        bson_error_t error;

        if (!wire_compress_built(id))
            continue;
        enc = wire_compress_encode(ctx, &h, body, 3000, id, 1, &enc_len, &error);
        copy = malloc(enc_len);
        for (size_t cut = 0; cut < enc_len; cut++) {
            uint8_t *out;
            size_t out_len;

            /* The header says the truncated length, so the payload itself is short. */
            memcpy(copy, enc, cut);
            if (cut >= 4)
                wire_frame_write_i32(copy, (int32_t)cut);
            if (decode_all(copy, cut, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error))
                truncated_ok++;
            bson_free(out);
        }
        is_int((long long)truncated_ok, 0, "%s: none of %zu truncations decodes (%s)",
               wire_compress_name(id), enc_len, pass);
        for (int round = 0; round < 3000; round++) {
            uint8_t *out;
            size_t out_len;
            int flips = 1 + (int)(next_rand(&seed) % 4);

            memcpy(copy, enc, enc_len);
            for (int f = 0; f < flips; f++) {
                /* Mostly the payload; sometimes the prefix (size, id, opcode). */
                size_t at = next_rand(&seed) % 8 == 0
                                ? WIRE_HEADER_LEN + next_rand(&seed) % WIRE_COMPRESS_PREFIX_LEN
                                : WIRE_HEADER_LEN + next_rand(&seed) % (enc_len - WIRE_HEADER_LEN);

                copy[at] ^= (uint8_t)(1 + next_rand(&seed) % 255);
            }
            if (decode_all(copy, enc_len, WIRE_MAX_MESSAGE_LEN, &out, &out_len, &error)) {
                garbled++;
                if (out_len != WIRE_HEADER_LEN + (size_t)wire_frame_read_i32(copy + 20))
                    garbled_bad++;
            }
            bson_free(out);
        }
        is_int((long long)garbled_bad, 0,
               "%s: 3000 garbled messages: refused, or exactly their claimed size (%zu decoded)",
               wire_compress_name(id), garbled);
        free(copy);
        free(body);
        bson_free(enc);
    }
}

int
main(void)
{
    struct wire_compress_ctx *keep = wire_compress_ctx_new();

    test_names();
    for (int round = 0; round < 2; round++) {
        /* One-shot calls, then a kept context (reused across every case: a failed message
         * must leave it fit for the next). */
        ctx = round == 0 ? NULL : keep;
        pass = round == 0 ? "one-shot" : "kept state";
        diag("pass: %s", pass);
        test_round_trip(keep);
        test_hostile();
        test_framing();
        test_library_streams();
        test_garbled();
    }
    wire_compress_ctx_destroy(keep);
    wire_compress_ctx_destroy(NULL);
    return done_testing();
}
