/*
 * tests/unit/test_cache_siphash.c: owns the tests of cache/siphash.c: the
 * reference implementation's vectors (key 00..0f, messages 00..n-1) for
 * every length from 0 to 16, through each tail length and the first full
 * word twice; the same input absorbed in two parts, split anywhere, gives
 * the one-call result, and in three parts, for both variants (the 128-bit
 * variant's vectors are test_cache_redis's, through the value MAC); and
 * cache/key.c's key and digest: keyed by the secret (the same material
 * under two secrets gives two digests, under one secret one), the key
 * hashed from the body as read (a hit's way) equal to the key of the
 * material built and hashed at once (a miss's way), the material laid out
 * as key.h says, and commands the key must separate kept apart.
 */
#include "config.h"

#include "cache/key.h"
#include "cache/siphash.h"
#include "tests/unit/tap.h"
#include "tests/unit/json.h" /* after tap.h: it reports with diag */
#include "wire/cmd.h"

#include <bson/bson.h>
#include <inttypes.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

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

/* Three parts, cut anywhere, give the one-call result, in both variants. */
static void
test_three_parts(void)
{
    struct cache_siphash_key key = {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)};
    uint8_t msg[40];
    bool all = true;

    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 31 + 7);
    for (size_t len = 0; len <= sizeof msg; len++) {
        struct cache_siphash one;
        uint8_t want[16], got[16];

        cache_siphash_init(&one, &key, true);
        cache_siphash_absorb(&one, msg, len);
        cache_siphash_final128(&one, want);
        for (size_t a = 0; a <= len; a++) {
            for (size_t b = a; b <= len; b++) {
                struct cache_siphash s, n;

                cache_siphash_init(&s, &key, true);
                cache_siphash_absorb(&s, msg, a);
                cache_siphash_absorb(&s, msg + a, b - a);
                cache_siphash_absorb(&s, msg + b, len - b);
                cache_siphash_final128(&s, got);
                all = all && memcmp(got, want, sizeof got) == 0;
                cache_siphash_init(&n, &key, false);
                cache_siphash_absorb(&n, msg, a);
                cache_siphash_absorb(&n, msg + a, b - a);
                cache_siphash_absorb(&n, msg + b, len - b);
                all = all && cache_siphash_final64(&n) == cache_siphash_24(&key, msg, len);
            }
        }
    }
    ok(all, "siphash: three parts, cut anywhere, give the one-call result (64 and 128 bits)");
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

/* 4-byte little-endian length, then the bytes, appended at *p. */
static void
put_part(uint8_t **p, const void *data, size_t len)
{
    (*p)[0] = (uint8_t)len;
    (*p)[1] = (uint8_t)(len >> 8);
    (*p)[2] = (uint8_t)(len >> 16);
    (*p)[3] = (uint8_t)(len >> 24);
    memcpy(*p + 4, data, len);
    *p += 4 + len;
}

/* 100 bytes of a string. */
#define X100                                                                                       \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    "xxxxxxxx"

/*
 * Commands with the volatile fields (left out of the key) first, between
 * others, last, next to each other, alone, and with values that keep them
 * in the key; each with the elements kept, by name, in order ("" after the
 * last).
 */
static const struct {
    const char *json;
    const char *kept[8];
} key_cases[] = {
    {"{'find': 'c', 'filter': {'a': 1}, '$db': 'd'}", {"find", "filter"}},
    {"{'find': 'c', 'lsid': {'id': {'$binary': {'base64': 'AAAAAAAAAAAAAAAAAAAAAQ==', "
     "'subType': '04'}}}, 'filter': {'a': 1}, 'limit': 1, '$clusterTime': {'t': 1}, "
     "'$readPreference': {'mode': 'primaryPreferred'}, '$db': 'd'}",
     {"find", "filter", "limit", "$readPreference"}},
    {"{'find': 'c', 'comment': 'x', 'maxTimeMS': 5, 'filter': {'a': 1}, '$db': 'd'}",
     {"find", "filter"}},
    {"{'$db': 'd', 'find': 'c', 'filter': {'a': 1}}", {"find", "filter"}},
    {"{'find': 'c', 'comment': 5, 'maxTimeMS': -1, 'lsid': {'id': 7}, '$db': 'd'}",
     {"find", "comment", "maxTimeMS", "lsid"}},
    {"{'count': 'c', '$db': 'd', 'comment': 'only volatile after the name'}", {"count"}},
    /* lsid: its id first (read in place), after another field (read by the reader), or
     * not a binary (kept, so the server sees and refuses it). */
    {"{'find': 'c', 'lsid': {'id': {'$binary': {'base64': 'AAAAAAAAAAAAAAAAAAAAAQ==', "
     "'subType': '04'}}, 'x': 1}, 'limit': 1}",
     {"find", "limit"}},
    {"{'find': 'c', 'lsid': {'x': 1, 'id': {'$binary': {'base64': 'AAAAAAAAAAAAAAAAAAAAAQ==', "
     "'subType': '04'}}}, 'limit': 1}",
     {"find", "limit"}},
    {"{'find': 'c', 'lsid': {'id': 'abc'}, 'limit': 1}", {"find", "lsid", "limit"}},
    {"{'find': 'c', 'lsid': {'id': {'$numberLong': '0'}}}", {"find", "lsid"}},
    {"{'find': 'c', 'lsid': {'id': {'$binary': {'base64': '', 'subType': '00'}}}}", {"find"}},
    /* Runs longer than the hash's gathering buffer (512 bytes), either side of a volatile one. */
    {"{'find': 'c', 'filter': {'s': '" X100 X100 X100 X100 X100 X100 "'}, 'comment': 'v', "
     "'projection': {'t': '" X100 X100 X100 X100 X100 X100 "'}}",
     {"find", "filter", "projection"}},
};

/*
 * The key from the body as read (material NULL: a hit) is the key of the
 * material built (a miss), which is XXH3-128 of the material under the
 * secret's XXH3 secret (the digest: its SipHash-2-4 under the digest key), laid out as key.h says: the head's three parts, each
 * length-prefixed, then the kept elements as sent. With the parse's
 * records and without (walked), and with a head too long for the hash's
 * gathering buffer (absorbed in six pieces).
 * Fails if the two ways of hashing part, or if a volatile field is kept or
 * another one dropped.
 */
static void
test_key_ways(void)
{
    struct cache_key_secret secret;
    char long_principal[700];
    bool all = true;

    cache_key_secret_init(&secret, "key ways");
    memset(long_principal, 'p', sizeof long_principal - 1);
    long_principal[sizeof long_principal - 1] = '\0';
    for (size_t i = 0; i < sizeof key_cases / sizeof key_cases[0]; i++) {
        bson_t *body = json(key_cases[i].json);
        struct wire_cmd cmd;
        bson_error_t error;
        bool parsed = wire_cmd_parse(bson_get_data(body), body->len, &cmd, &error);

        ok(parsed, "key ways %zu: parsed%s%s", i, parsed ? "" : ": ", parsed ? "" : error.message);
        for (int way = 0; way < 4; way++) {
            const char *principal = way >= 2 ? long_principal : "3:bob@admin";
            const struct wire_cmd *c = way % 2 == 0 ? &cmd : NULL;
            struct cache_key_material m = {0};
            struct cache_key k_read, k_built, k_want;
            uint64_t d_read, d_built;
            XXH128_hash_t h;
            uint64_t d_want;
            uint8_t want[4096], *p = want;
            bson_iter_t it;
            size_t n = 0;

            cache_key_build(&secret, principal, "d", "c", 1, body, c, NULL, &k_read, &d_read);
            cache_key_build(&secret, principal, "d", "c", 1, body, c, &m, &k_built, &d_built);
            put_part(&p, principal, strlen(principal));
            put_part(&p, "d", 1);
            put_part(&p, "c", 1);
            bson_iter_init(&it, body);
            while (bson_iter_next(&it)) {
                const char *name = key_cases[i].kept[n];

                if (name && strcmp(bson_iter_key(&it), name) == 0) {
                    memcpy(p, bson_get_data(body) + it.off, it.next_off - it.off);
                    p += it.next_off - it.off;
                    n++;
                }
            }
            h = XXH3_128bits_withSecret(want, (size_t)(p - want), secret.bytes,
                                        sizeof secret.bytes);
            k_want.lo = h.low64;
            k_want.hi = h.high64;
            d_want = cache_siphash_24(&secret.digest_key, want, (size_t)(p - want));
#ifdef MONGOCACHE_TINY_KEYS
            k_want.hi = 0;
            k_want.lo &= 0xff;
#endif
            all = all && m.len == (size_t)(p - want) && memcmp(m.data, want, m.len) == 0;
            all = all && cache_key_equal(&k_read, &k_built) && d_read == d_built;
            all = all && cache_key_equal(&k_built, &k_want) && d_read == d_want;
            if (!all)
                diag("case %zu way %d: material %zu bytes (want %zu)", i, way, m.len,
                     (size_t)(p - want));
            cache_key_material_cleanup(&m);
        }
        bson_destroy(body);
    }
    ok(all, "key: read from the body or built first, the same key and digest, of the material "
            "key.h describes (%zu commands, 4 ways each)",
       sizeof key_cases / sizeof key_cases[0]);
}

/* The key of one body (JSON) for principal on d.c, read from the body. */
static struct cache_key
key_of(const struct cache_key_secret *secret, const char *principal, const char *db,
       const char *text)
{
    bson_t *body = json(text);
    struct cache_key k;
    uint64_t d;

    cache_key_build(secret, principal, db, "c", 1, body, NULL, NULL, &k, &d);
    bson_destroy(body);
    return k;
}

/*
 * Pairs the key must separate: a value's BSON type, the field order, a
 * projection, sort, limit, skip, collation, readConcern, read preference,
 * the user, the database. (Each pair differs by that alone; a tiny-key
 * build may make any two keys meet, so it skips this.)
 */
static void
test_key_separates(void)
{
    static const struct {
        const char *what, *a, *b;
    } pairs[] = {
        {"int32 and int64", "{'find': 'c', 'filter': {'a': 1}}",
         "{'find': 'c', 'filter': {'a': {'$numberLong': '1'}}}"},
        {"int32 and double", "{'find': 'c', 'filter': {'a': 1}}",
         "{'find': 'c', 'filter': {'a': 1.0}}"},
        {"field order", "{'find': 'c', 'sort': {'a': 1, 'b': 1}}",
         "{'find': 'c', 'sort': {'b': 1, 'a': 1}}"},
        {"projection", "{'find': 'c', 'filter': {}}",
         "{'find': 'c', 'filter': {}, 'projection': {'a': 1}}"},
        {"limit", "{'find': 'c', 'limit': 1}", "{'find': 'c', 'limit': 2}"},
        {"skip", "{'find': 'c', 'skip': 1}", "{'find': 'c', 'skip': 2}"},
        {"collation", "{'find': 'c', 'collation': {'locale': 'en'}}",
         "{'find': 'c', 'collation': {'locale': 'fr'}}"},
        {"readConcern", "{'find': 'c', 'readConcern': {'level': 'local'}}",
         "{'find': 'c', 'readConcern': {'level': 'majority'}}"},
        {"read preference", "{'find': 'c', '$readPreference': {'mode': 'primary'}}",
         "{'find': 'c', '$readPreference': {'mode': 'secondary'}}"},
        {"a kept field moved across a volatile one",
         "{'find': 'c', 'limit': 1, 'comment': 'x', 'skip': 1}",
         "{'find': 'c', 'skip': 1, 'comment': 'x', 'limit': 1}"},
    };
    struct cache_key_secret secret;

    if (cache_key_bits() < 128)
        return;
    cache_key_secret_init(&secret, "separates");
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct cache_key a = key_of(&secret, "", "d", pairs[i].a);
        struct cache_key b = key_of(&secret, "", "d", pairs[i].b);

        ok(!cache_key_equal(&a, &b), "key: %s differ", pairs[i].what);
    }
    {
        const char *q = "{'find': 'c', 'filter': {'a': 1}}";
        struct cache_key u1 = key_of(&secret, "5:alice@admin", "d", q);
        struct cache_key u2 = key_of(&secret, "3:bob@admin", "d", q);
        struct cache_key d1 = key_of(&secret, "", "d", q);
        struct cache_key d2 = key_of(&secret, "", "e", q);

        ok(!cache_key_equal(&u1, &u2), "key: two users differ");
        ok(!cache_key_equal(&d1, &d2), "key: two databases differ");
    }
}

int
main(void)
{
    test_vectors();
    test_parts();
    test_three_parts();
    test_digest_keyed();
    test_key_ways();
    test_key_separates();
    return done_testing();
}
