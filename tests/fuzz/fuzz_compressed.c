/*
 * tests/fuzz/fuzz_compressed.c: fuzz target for wire/compress.c, the
 * decoding of an OP_COMPRESSED from a client or the upstream. The input is
 * the whole message (its header's length is set to the input's, so that
 * the payload itself is what varies). It is parsed (with a limit of 1 MiB,
 * so that a claimed size costs the fuzzer little memory), then decoded
 * twice, by one-shot library calls and with a kept context (the context
 * lives only for the input: no state across inputs). Properties:
 *  - both decodes agree: both refuse, or both give the same bytes;
 *  - a decoded message is exactly 16 + uncompressedSize bytes, with the
 *    requestID and responseTo of the input and originalOpcode as its
 *    opcode (so no claimed size can make it allocate more than that);
 *  - encoding the decoded message again with the same compressor, and
 *    decoding that, gives it back byte for byte.
 */
#include "config.h"

#include "tests/fuzz/fuzz.h"

#include "wire/compress.h"
#include "wire/frame.h"

#include <string.h>

#define FUZZ_MAX_LEN (1 << 20)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_compress_ctx *ctx;
    struct wire_compressed msg, again;
    struct wire_header h;
    uint8_t *copy, *one, *kept, *enc, *back;
    size_t one_len = 0, kept_len = 0, enc_len = 0, back_len = 0;
    bson_error_t error;

    if (size < WIRE_HEADER_LEN || size > FUZZ_MAX_LEN)
        return 0;
    copy = malloc(size);
    memcpy(copy, data, size);
    wire_frame_write_i32(copy, (int32_t)size);
    wire_frame_write_i32(copy + 12, WIRE_OP_COMPRESSED);
    if (!wire_compress_parse(copy, size, FUZZ_MAX_LEN, &msg, &error)) {
        free(copy);
        return 0;
    }
    FUZZ_CHECK(msg.uncompressed_size >= 0 &&
               (size_t)msg.uncompressed_size <= FUZZ_MAX_LEN - WIRE_HEADER_LEN);
    FUZZ_CHECK(msg.payload == copy + WIRE_HEADER_LEN + WIRE_COMPRESS_PREFIX_LEN &&
               msg.payload_len == size - WIRE_HEADER_LEN - WIRE_COMPRESS_PREFIX_LEN);

    ctx = wire_compress_ctx_new();
    one = wire_compress_decode(NULL, &msg, &one_len, &error);
    kept = wire_compress_decode(ctx, &msg, &kept_len, &error);
    FUZZ_CHECK((one == NULL) == (kept == NULL));
    if (one) {
        FUZZ_CHECK(one_len == kept_len && memcmp(one, kept, one_len) == 0);
        FUZZ_CHECK(one_len == WIRE_HEADER_LEN + (size_t)msg.uncompressed_size);
        FUZZ_CHECK(wire_frame_header(one, one_len, FUZZ_MAX_LEN, &h, &error) == WIRE_OK);
        FUZZ_CHECK((size_t)h.length == one_len && h.request_id == msg.header.request_id &&
                   h.response_to == msg.header.response_to && h.opcode == msg.original_opcode);
        enc = wire_compress_encode(ctx, &h, one + WIRE_HEADER_LEN, one_len - WIRE_HEADER_LEN,
                                   msg.compressor, 1, &enc_len, &error);
        FUZZ_CHECK(enc != NULL);
        FUZZ_CHECK(wire_compress_parse(enc, enc_len, WIRE_MAX_MESSAGE_LEN, &again, &error));
        back = wire_compress_decode(ctx, &again, &back_len, &error);
        FUZZ_CHECK(back && back_len == one_len && memcmp(back, one, one_len) == 0);
        bson_free(back);
        bson_free(enc);
    }
    bson_free(one);
    bson_free(kept);
    wire_compress_ctx_destroy(ctx);
    free(copy);
    return 0;
}
