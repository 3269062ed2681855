/*
 * tests/fuzz/fuzz_redis_blob.c: the Redis tier's fuzz target: the
 * Redis value decoder. Whatever Redis hands back (a planted, truncated or
 * bit-flipped value) goes through cache_redis_blob_decode before anything
 * trusts it. The input is the value's bytes.
 * Properties: a decoded value points only inside the input and within the
 * format's limits; the format is exact, so encoding what was decoded gives
 * the input back byte for byte; the reply it carries is served as a hit
 * (restamped on a copy) and still parses. When the input is not a value
 * but a wire reply, it is stored the way cache_redis_fill stores one, and
 * what was stored must decode to the same parts.
 *
 * Values are sealed by a MAC (cache/redis_mac.h) checked before anything
 * else is read: the input is decoded as it is (it must be refused: nobody
 * without the secret can forge a seal), then sealed with the harness's own
 * key and decoded again, which reaches the structure behind the MAC. So the
 * corpus holds values without their last 32 bytes.
 */
#include "config.h"

#include "tests/fuzz/fuzz.h"

#include "cache/redis_blob.h"
#include "cache/redis_mac.h"
#include "wire/doc.h"
#include "wire/frame.h"
#include "wire/msg.h"
#include "wire/reply.h"

#include <string.h>

/* The Redis key every value here is stored under, and the harness's MAC key. */
static const char rkey[] = "mongocache:v:00112233445566778899aabbccddeeff";

static struct cache_redis_mac *
mac_key(void)
{
    static struct cache_redis_mac *mac;
    bson_error_t error;

    if (!mac)
        mac = cache_redis_mac_new("fuzz secret", 11, &error);
    FUZZ_CHECK(mac != NULL);
    return mac;
}

static bool
decode(const uint8_t *data, size_t len, struct cache_redis_blob *blob, bson_error_t *error)
{
    return cache_redis_blob_decode(data, len, mac_key(), rkey, sizeof rkey - 1, blob, error);
}

static uint8_t *
encode(const struct cache_redis_blob *blob, size_t *len)
{
    return cache_redis_blob_encode(blob, mac_key(), rkey, sizeof rkey - 1, len);
}

/* body followed by its seal, in an exact-size buffer (bson_free). */
static uint8_t *
seal(const uint8_t *body, size_t len, size_t *sealed_len)
{
    uint8_t *out = bson_malloc(len + CACHE_REDIS_MAC_LEN);

    memcpy(out, body, len);
    cache_redis_mac_compute(mac_key(), rkey, sizeof rkey - 1, body, len, out + len);
    *sealed_len = len + CACHE_REDIS_MAC_LEN;
    return out;
}

static bool
inside(const void *p, size_t n, const uint8_t *base, size_t len)
{
    const uint8_t *q = p;

    return q >= base && q <= base + len && n <= (size_t)(base + len - q);
}

/* A hit from Redis: the reply with a fresh header goes to the client. */
static void
serve(const struct cache_redis_blob *blob)
{
    uint8_t *copy = bson_malloc(blob->reply_len);
    struct wire_msg m;
    bson_error_t error;

    memcpy(copy, blob->reply, blob->reply_len);
    wire_reply_restamp(copy, 99, 42);
    FUZZ_CHECK(wire_msg_parse(copy, blob->reply_len, CACHE_REDIS_MAX_DEPTH, &m, &error));
    FUZZ_CHECK(m.header.response_to == 42);
    bson_free(copy);
}

/* Stores reply (a wire message the proxy accepted) as a fill does, and reads it back. */
static void
store_and_load(const uint8_t *reply, size_t reply_len)
{
    static const char *const names[] = {"ndb.coll", "ddb", "uuser@db", "g"};
    struct cache_redis_blob in, out;
    bson_error_t error;
    uint8_t *bytes;
    size_t len;

    memset(&in, 0, sizeof in);
    in.epoch = (uint64_t)reply_len * 0x9e3779b97f4a7c15ull;
    in.expires_ms = in.epoch ^ 0x5555555555555555ull;
    in.n_gens = 4;
    for (uint32_t i = 0; i < in.n_gens; i++) {
        in.gens[i].name = names[i];
        in.gens[i].name_len = strlen(names[i]);
        in.gens[i].value = i + reply_len;
    }
    in.material = reply + WIRE_HEADER_LEN; /* any bytes will do */
    in.material_len = reply_len - WIRE_HEADER_LEN;
    in.reply = reply;
    in.reply_len = reply_len;
    bytes = encode(&in, &len);
    FUZZ_CHECK(bytes != NULL);
    FUZZ_CHECK(decode(bytes, len, &out, &error));
    FUZZ_CHECK(out.epoch == in.epoch && out.expires_ms == in.expires_ms &&
               out.n_gens == in.n_gens);
    for (uint32_t i = 0; i < in.n_gens; i++) {
        FUZZ_CHECK(out.gens[i].name_len == in.gens[i].name_len &&
                   memcmp(out.gens[i].name, in.gens[i].name, in.gens[i].name_len) == 0);
        FUZZ_CHECK(out.gens[i].value == in.gens[i].value);
    }
    FUZZ_CHECK(out.material_len == in.material_len &&
               memcmp(out.material, in.material, in.material_len) == 0);
    FUZZ_CHECK(out.reply_len == reply_len && memcmp(out.reply, reply, reply_len) == 0);
    bson_free(bytes);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copies, so that ASan sees any read past the value. */
    uint8_t *raw = bson_malloc(size ? size : 1);
    uint8_t *value;
    struct cache_redis_blob blob;
    bson_error_t error;

    memcpy(raw, data, size);
    FUZZ_CHECK(!decode(raw, size, &blob, &error)); /* unsealed: never accepted */
    bson_free(raw);
    value = seal(data, size, &size);
    if (decode(value, size, &blob, &error)) {
        uint8_t *again;
        size_t again_len;

        FUZZ_CHECK(blob.n_gens <= CACHE_REDIS_MAX_GENS);
        for (uint32_t i = 0; i < blob.n_gens; i++) {
            FUZZ_CHECK(blob.gens[i].name_len >= 1 &&
                       blob.gens[i].name_len <= CACHE_REDIS_MAX_NAME);
            FUZZ_CHECK(inside(blob.gens[i].name, blob.gens[i].name_len, value, size));
        }
        FUZZ_CHECK(blob.material_len <= CACHE_REDIS_MAX_MATERIAL);
        FUZZ_CHECK(inside(blob.material, blob.material_len, value, size));
        FUZZ_CHECK(blob.reply_len >= WIRE_HEADER_LEN && blob.reply_len <= CACHE_REDIS_MAX_REPLY);
        FUZZ_CHECK(inside(blob.reply, blob.reply_len, value, size));
        again = encode(&blob, &again_len);
        FUZZ_CHECK(again != NULL && again_len == size && memcmp(again, value, size) == 0);
        bson_free(again);
        serve(&blob);
    } else {
        struct wire_msg m;

        FUZZ_CHECK(error.message[0] != '\0');
        if (wire_msg_parse(data, size - CACHE_REDIS_MAC_LEN, CACHE_REDIS_MAX_DEPTH, &m, &error))
            store_and_load(data, size - CACHE_REDIS_MAC_LEN);
    }
    bson_free(value);
    return 0;
}
