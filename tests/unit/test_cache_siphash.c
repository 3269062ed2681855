/*
 * tests/unit/test_cache_siphash.c: owns the tests of cache/siphash.c: the
 * reference implementation's vectors (key 00..0f, messages 00..n-1) for
 * every length from 0 to 16, through each tail length and the first full
 * word twice; the same input absorbed in two parts, split anywhere, gives
 * the one-call result (the 128-bit variant's vectors are test_cache_redis's,
 * through the value MAC); and that the key digest of cache/key.c depends on the secret
 * (the same material under two secrets gives two digests, under one secret
 * one).
 */
#include "config.h"

#include "cache/key.h"
#include "cache/siphash.h"
#include "tests/unit/tap.h"

#include <bson/bson.h>
#include <inttypes.h>

static void
test_vectors(void)
{
    /* SipHash-2-4 of 00 01 .. (n-1) under key 00 01 .. 0f, n = 0..16 (the
     * reference implementation's vectors.h, read as little-endian words). */
    static const uint64_t expect[] = {
        UINT64_C(0x726fdb47dd0e0e31), UINT64_C(0x74f839c593dc67fd), UINT64_C(0x0d6c8009d9a94f5a),
        UINT64_C(0x85676696d7fb7e2d), UINT64_C(0xcf2794e0277187b7), UINT64_C(0x18765564cd99a68d),
        UINT64_C(0xcbc9466e58fee3ce), UINT64_C(0xab0200f58b01d137), UINT64_C(0x93f5f5799a932462),
        UINT64_C(0x9e0082df0ba9e4b0), UINT64_C(0x7a5dbbc594ddb9f3), UINT64_C(0xf4b32f46226bada7),
        UINT64_C(0x751e8fbc860ee5fb), UINT64_C(0x14ea5627c0843d90), UINT64_C(0xf723ca908e7af2ee),
        UINT64_C(0xa129ca6149be45e5), UINT64_C(0x3f2acc7f57c29bdb),
    };
    struct cache_siphash_key key = {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)};
    uint8_t msg[16];

    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)i;
    for (size_t n = 0; n < sizeof expect / sizeof expect[0]; n++) {
        uint64_t got = cache_siphash_24(&key, msg, n);

        ok(got == expect[n], "siphash: %zu bytes: %016" PRIx64 " (want %016" PRIx64 ")", n, got,
           expect[n]);
    }
}

static void
test_parts(void)
{
    struct cache_siphash_key key = {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)};
    uint8_t msg[40];
    bool all = true;

    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 29 + 3);
    for (size_t len = 0; len <= sizeof msg; len++) {
        uint64_t one = cache_siphash_24(&key, msg, len);

        for (size_t cut = 0; cut <= len; cut++) {
            struct cache_siphash s;

            cache_siphash_init(&s, &key, false);
            cache_siphash_absorb(&s, msg, cut);
            cache_siphash_absorb(&s, msg + cut, len - cut);
            all = all && cache_siphash_final64(&s) == one;
        }
    }
    ok(all, "siphash: two parts, split anywhere, give the one-call result (lengths 0 to 40)");
}

/* The digest of one find under secret text. */
static uint64_t
digest_under(const char *text)
{
    struct cache_key_secret secret;
    struct cache_key_material material = {0};
    struct cache_key key;
    uint64_t digest;
    bson_t *body = BCON_NEW("find", "c", "filter", "{", "a", BCON_INT32(1), "}", "$db", "d");

    cache_key_secret_init(&secret, text);
    cache_key_build(&secret, "", "d", "c", 1, body, NULL, &material, &key, &digest);
    cache_key_material_cleanup(&material);
    bson_destroy(body);
    return digest;
}

static void
test_digest_keyed(void)
{
    ok(digest_under("secret one") == digest_under("secret one"), "digest: one secret, one digest");
    ok(digest_under("secret one") != digest_under("secret two"),
       "digest: another secret, another digest (it is keyed by the secret)");
}

int
main(void)
{
    test_vectors();
    test_parts();
    test_digest_keyed();
    return done_testing();
}
