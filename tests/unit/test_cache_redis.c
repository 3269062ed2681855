/*
 * tests/unit/test_cache_redis.c: the parts of the Redis tier that need no
 * Redis: the stored value format of cache/redis_blob.c (encode, decode,
 * hostile inputs: every truncation and random byte flips) and its MAC
 * (cache/redis_mac.c: forgeries, every single-bit flip, a value moved to
 * another key, another secret, the old version), the Redis URL
 * of cache/redis_url.c (parsing, redaction, and no password in any error
 * message), and reading what Redis sends (cache/redis_resp.c and
 * redis_push.c: replies cut anywhere, budgets, the subscription's pushes,
 * random streams). The live
 * tier (cache/redis.c and redis_conn.c: connections, timeouts, breaker,
 * dirty flag) is tests/integration/test_redis_tier.sh, and a hostile Redis
 * tests/integration/test_redis_hostile.sh.
 */
#include "config.h"

#include "cache/redis.h"
#include "cache/redis_blob.h"
#include "cache/redis_cmd.h"
#include "cache/redis_mac.h"
#include "cache/siphash.h"
#include "cache/redis_push.h"
#include "cache/redis_resp.h"
#include "cache/redis_tls.h"
#include "cache/redis_url.h"
#include "tests/unit/tap.h"
#include "wire/frame.h"

#include <bson/bson.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdlib.h>
#include <string.h>

/* A whole OP_MSG (header, flags, one kind-0 section) around body. bson_free. */
static uint8_t *
make_msg(const uint8_t *body, size_t body_len, size_t *len)
{
    struct wire_header h = {(int32_t)(WIRE_HEADER_LEN + 5 + body_len), 7, 3, WIRE_OP_MSG};
    uint8_t *buf = bson_malloc0(WIRE_HEADER_LEN + 5 + body_len);

    wire_frame_put_header(buf, &h);
    buf[WIRE_HEADER_LEN + 4] = 0; /* kind 0 */
    memcpy(buf + WIRE_HEADER_LEN + 5, body, body_len);
    *len = WIRE_HEADER_LEN + 5 + body_len;
    return buf;
}

/* An OP_MSG reply {ok: 1, n: 42}. */
static uint8_t *
make_reply(size_t *len)
{
    bson_t *doc = BCON_NEW("ok", BCON_DOUBLE(1), "n", BCON_INT32(42));
    uint8_t *msg = make_msg(bson_get_data(doc), doc->len, len);

    bson_destroy(doc);
    return msg;
}

/* An OP_MSG whose body nests depth documents: {a: {a: ... {}}}. */
static uint8_t *
make_deep_reply(int depth, size_t *len)
{
    size_t cap = 5 + (size_t)depth * 8;
    uint8_t *doc = bson_malloc0(cap);
    size_t n = 5;
    uint8_t *msg;

    doc[0] = 5; /* the innermost {} */
    for (int i = 0; i < depth; i++) {
        memmove(doc + 7, doc, n);
        n += 8;
        doc[0] = (uint8_t)n;
        doc[1] = (uint8_t)(n >> 8);
        doc[2] = (uint8_t)(n >> 16);
        doc[3] = 0;
        doc[4] = 0x03;
        doc[5] = 'a';
        doc[6] = 0;
        doc[n - 1] = 0;
    }
    msg = make_msg(doc, n, len);
    bson_free(doc);
    return msg;
}

static const char material[] = "principal\0db\0coll\0{find: 'coll'}";

/* The Redis key values are sealed for, and another one. */
#define RKEY "mc:v:0123456789abcdef0123456789abcdef"
#define RKEY2 "mc:v:0123456789abcdef0123456789abcdee"

/* The MAC of a proxy with the test's cache_key_secret; destroyed at the end of main. */
static struct cache_redis_mac *
mac_new(const char *secret)
{
    bson_error_t error;
    struct cache_redis_mac *mac = cache_redis_mac_new(secret, strlen(secret), &error);

    if (!mac)
        diag("cache_redis_mac_new: %s", error.message);
    return mac;
}

/* A value with two generations around reply, sealed for RKEY. bson_free. */
static uint8_t *
make_blob_with(struct cache_redis_mac *mac, const uint8_t *reply, size_t reply_len, size_t *len)
{
    struct cache_redis_blob b = {0};

    b.epoch = UINT64_C(0x1234567890abcdef);
    b.expires_ms = UINT64_C(1900000000123);
    b.n_gens = 2;
    b.gens[0] = (struct cache_redis_gen){"n:db.coll", 9, 17};
    b.gens[1] = (struct cache_redis_gen){"d:db", 4, UINT64_MAX};
    b.material = (const uint8_t *)material;
    b.material_len = sizeof material;
    b.reply = reply;
    b.reply_len = reply_len;
    return cache_redis_blob_encode(&b, mac, RKEY, strlen(RKEY), len);
}

/* A valid value around {ok: 1, n: 42}; *reply is the reply (bson_free both). */
static uint8_t *
make_blob(struct cache_redis_mac *mac, size_t *len, uint8_t **reply, size_t *reply_len)
{
    *reply = make_reply(reply_len);
    return make_blob_with(mac, *reply, *reply_len, len);
}

/* Recomputes the MAC of a value changed in place: what a writer knowing the secret could do. */
static void
reseal(struct cache_redis_mac *mac, uint8_t *blob, size_t len)
{
    cache_redis_mac_compute(mac, RKEY, strlen(RKEY), blob, len - CACHE_REDIS_MAC_LEN,
                            blob + len - CACHE_REDIS_MAC_LEN);
}

static void
test_round_trip(struct cache_redis_mac *mac)
{
    struct cache_redis_blob d;
    bson_error_t error;
    uint8_t *reply;
    size_t reply_len;
    size_t len;
    uint8_t *blob = make_blob(mac, &len, &reply, &reply_len);

    ok(blob != NULL, "a value encodes");
    ok(len > 4 && memcmp(blob, "MCV4", 4) == 0, "it starts with the MCV4 magic");
    ok(cache_redis_blob_decode(blob, len, mac, RKEY, strlen(RKEY), &d, &error), "and decodes");
    is_int((long long)(d.epoch == UINT64_C(0x1234567890abcdef)), 1, "epoch kept");
    is_int((long long)d.expires_ms, 1900000000123LL, "expiry kept");
    is_int(d.n_gens, 2, "two generations");
    ok(d.gens[0].name_len == 9 && memcmp(d.gens[0].name, "n:db.coll", 9) == 0 &&
           d.gens[0].value == 17,
       "first generation: name and value");
    ok(d.gens[1].name_len == 4 && memcmp(d.gens[1].name, "d:db", 4) == 0 &&
           d.gens[1].value == UINT64_MAX,
       "second generation: name and a value of all ones");
    ok(d.material_len == sizeof material && memcmp(d.material, material, sizeof material) == 0,
       "key material kept, NULs included");
    ok(d.reply_len == reply_len && memcmp(d.reply, reply, reply_len) == 0, "reply kept");
    ok(d.reply >= blob && d.reply + d.reply_len + CACHE_REDIS_MAC_LEN == blob + len,
       "decoded fields point into the bytes, the MAC last");
    bson_free(blob);
    bson_free(reply);
}

static void
test_encode_limits(struct cache_redis_mac *mac)
{
    struct cache_redis_blob b = {0};
    size_t len = 0;
    uint8_t *p;

    b.n_gens = CACHE_REDIS_MAX_GENS + 1;
    for (int i = 0; i < CACHE_REDIS_MAX_GENS; i++)
        b.gens[i] = (struct cache_redis_gen){"n:a.b", 5, 1};
    ok(cache_redis_blob_encode(&b, mac, RKEY, 4, &len) == NULL,
       "encode refuses too many generations");
    b.n_gens = 1;
    b.gens[0].name_len = 0;
    ok(cache_redis_blob_encode(&b, mac, RKEY, 4, &len) == NULL,
       "encode refuses an empty generation name");
    b.gens[0].name_len = CACHE_REDIS_MAX_NAME + 1;
    ok(cache_redis_blob_encode(&b, mac, RKEY, 4, &len) == NULL, "encode refuses an over-long name");
    b.gens[0].name_len = 5;
    b.reply_len = CACHE_REDIS_MAX_REPLY + 1;
    ok(cache_redis_blob_encode(&b, mac, RKEY, 4, &len) == NULL,
       "encode refuses a reply over 48000000 bytes");
    b.reply_len = 0;
    p = cache_redis_blob_encode(&b, mac, RKEY, 4, &len);
    ok(p != NULL, "encode takes an empty reply (decode refuses it)");
    bson_free(p);
}

/* Decodes a copy of data for RKEY (so ASan sees reads past len). */
static bool
decode_copy(struct cache_redis_mac *mac, const uint8_t *data, size_t len, bson_error_t *error)
{
    uint8_t *copy = bson_malloc(len ? len : 1);
    struct cache_redis_blob d;
    bool ok;

    memcpy(copy, data, len);
    ok = cache_redis_blob_decode(copy, len, mac, RKEY, strlen(RKEY), &d, error);
    bson_free(copy);
    return ok;
}

/* Builds a value around reply_bytes and says whether it decodes. */
static bool
decodes_with_reply(struct cache_redis_mac *mac, const uint8_t *reply, size_t reply_len,
                   bson_error_t *error)
{
    size_t len;
    uint8_t *blob = make_blob_with(mac, reply, reply_len, &len);
    bool ok = decode_copy(mac, blob, len, error);

    bson_free(blob);
    return ok;
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Decodes bad (len bytes) after resealing it: the structural checks behind the MAC. */
static bool
decode_resealed(struct cache_redis_mac *mac, uint8_t *bad, size_t len, bson_error_t *error)
{
    reseal(mac, bad, len);
    return decode_copy(mac, bad, len, error);
}

/* Malformed values, sealed with the right key: the decoder behind the MAC refuses them. */
static void
test_hostile(struct cache_redis_mac *mac)
{
    bson_error_t error;
    uint8_t *reply;
    size_t reply_len;
    size_t len;
    uint8_t *blob = make_blob(mac, &len, &reply, &reply_len);
    uint8_t *bad = bson_malloc(len + 8);
    size_t n_gens_at = 4 + 8 + 8; /* magic, epoch, expires */
    size_t gen0 = n_gens_at + 4;    /* offset of the first name_len */
    size_t mat = gen0 + (4 + 9 + 8) + (4 + 4 + 8);
    uint8_t *deep;
    size_t deep_len;

    ok(!decode_copy(mac, (const uint8_t *)"", 0, &error), "empty input refused");

    memcpy(bad, blob, len);
    put32(bad + n_gens_at, CACHE_REDIS_MAX_GENS + 1);
    ok(!decode_resealed(mac, bad, len, &error) && error.code == CACHE_REDIS_BLOB_MALFORMED,
       "too many generations refused");
    memcpy(bad, blob, len);
    put32(bad + n_gens_at, 0xffffffffu);
    ok(!decode_resealed(mac, bad, len, &error), "generation count 2^32-1 refused");

    memcpy(bad, blob, len);
    put32(bad + gen0, 0);
    ok(!decode_resealed(mac, bad, len, &error), "empty generation name refused");
    memcpy(bad, blob, len);
    put32(bad + gen0, 0xfffffff0u);
    ok(!decode_resealed(mac, bad, len, &error), "huge name length refused");

    memcpy(bad, blob, len);
    put32(bad + mat, 0xffffffffu);
    ok(!decode_resealed(mac, bad, len, &error), "material length past the end refused");
    memcpy(bad, blob, len);
    put32(bad + mat + 4 + sizeof material, (uint32_t)reply_len + 1);
    ok(!decode_resealed(mac, bad, len, &error), "reply length one past the end refused");

    /* a byte between the reply and the MAC */
    memcpy(bad, blob, len - CACHE_REDIS_MAC_LEN);
    bad[len - CACHE_REDIS_MAC_LEN] = 0;
    ok(!decode_resealed(mac, bad, len + 1, &error) && error.code == CACHE_REDIS_BLOB_MALFORMED,
       "a trailing byte refused: %s", error.message);

    /* The reply must be a whole, valid OP_MSG. */
    ok(decodes_with_reply(mac, reply, reply_len, &error), "the plain reply is accepted");
    ok(!decodes_with_reply(mac, reply, 0, &error), "an empty reply refused");
    memcpy(bad, reply, reply_len);
    put32(bad + 12, WIRE_OP_QUERY);
    ok(!decodes_with_reply(mac, bad, reply_len, &error), "a reply that is not OP_MSG refused");
    memcpy(bad, reply, reply_len);
    put32(bad, (uint32_t)reply_len + 4);
    ok(!decodes_with_reply(mac, bad, reply_len, &error),
       "a reply whose header length lies refused");
    memcpy(bad, reply, reply_len);
    bad[reply_len - 1] = 1; /* the body's terminating NUL */
    ok(!decodes_with_reply(mac, bad, reply_len, &error),
       "a reply with a malformed document refused");
    memcpy(bad, reply, reply_len);
    bad[WIRE_HEADER_LEN] = 0x04; /* an unknown required flag bit */
    ok(!decodes_with_reply(mac, bad, reply_len, &error),
       "a reply with unknown required flags refused");

    deep = make_deep_reply(50, &deep_len);
    ok(decodes_with_reply(mac, deep, deep_len, &error), "a reply nested 50 deep is accepted");
    bson_free(deep);
    deep = make_deep_reply(260, &deep_len);
    ok(!decodes_with_reply(mac, deep, deep_len, &error), "a reply nested 260 deep refused: %s",
       error.message);
    bson_free(deep);

    bson_free(bad);
    bson_free(blob);
    bson_free(reply);
}

/* Writes the MCV1 layout (the format before the MAC) of the value make_blob builds. bson_free. */
static uint8_t *
make_v1(const uint8_t *reply, size_t reply_len, size_t *len)
{
    size_t n = 4 + 8 + 4 + (4 + 9 + 8) + (4 + 4 + 8) + 4 + sizeof material + 4 + reply_len;
    uint8_t *b = bson_malloc(n);
    uint8_t *p = b;

    memcpy(p, "MCV1", 4);
    p += 4;
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(UINT64_C(0x1234567890abcdef) >> (8 * i));
    put32(p, 2);
    p += 4;
    put32(p, 9);
    memcpy(p + 4, "n:db.coll", 9);
    memset(p + 13, 0, 8);
    p[13] = 17;
    p += 21;
    put32(p, 4);
    memcpy(p + 4, "d:db", 4);
    memset(p + 8, 0xff, 8);
    p += 16;
    put32(p, sizeof material);
    memcpy(p + 4, material, sizeof material);
    p += 4 + sizeof material;
    put32(p, (uint32_t)reply_len);
    memcpy(p + 4, reply, reply_len);
    *len = n;
    return b;
}

/*
 * Issue 6 item 5: values must be authentic. A forged value with a valid
 * structure, every single-bit flip, a value moved to another key, one
 * sealed with another secret, and the old unsealed version: all refused.
 */
static void
test_mac(struct cache_redis_mac *mac)
{
    struct cache_redis_mac *other = mac_new("another deployment's secret");
    bson_t *forged_doc = BCON_NEW("ok", BCON_DOUBLE(0), "errmsg", BCON_UTF8("forged"), "code",
                                  BCON_INT32(13));
    uint8_t *reply;
    uint8_t *forged_reply;
    size_t reply_len;
    size_t forged_len;
    size_t len;
    size_t flen;
    uint8_t *blob = make_blob(mac, &len, &reply, &reply_len);
    uint8_t *bad = bson_malloc(len);
    uint8_t *forged;
    uint8_t *v1;
    size_t v1_len;
    bson_error_t error;
    size_t bits = 0;
    size_t refused = 0;
    size_t by_mac = 0;
    uint8_t tag[CACHE_REDIS_MAC_LEN];
    uint8_t tag2[CACHE_REDIS_MAC_LEN];

    /* The MAC itself: keyed, bound to the name, deterministic. */
    cache_redis_mac_compute(mac, "k", 1, "data", 4, tag);
    ok(cache_redis_mac_verify(mac, "k", 1, "data", 4, tag), "a MAC verifies");
    cache_redis_mac_compute(mac, "k", 1, "data", 4, tag2);
    ok(memcmp(tag, tag2, CACHE_REDIS_MAC_LEN) == 0, "the same input gives the same MAC");
    ok(!cache_redis_mac_verify(mac, "kd", 2, "ata", 3, tag),
       "moving bytes between the name and the data changes the MAC");
    ok(!cache_redis_mac_verify(other, "k", 1, "data", 4, tag),
       "another secret gives another MAC");
    {
        bson_error_t e;

        ok(cache_redis_mac_new("", 0, &e) == NULL && e.message[0], "an empty secret is refused");
    }

    /* A forged value with a valid structure: a forged error reply, sealed with another key. */
    forged_reply = make_msg(bson_get_data(forged_doc), forged_doc->len, &forged_len);
    forged = make_blob_with(other, forged_reply, forged_len, &flen);
    ok(decode_copy(other, forged, flen, &error), "the forgery is well formed (its maker reads it)");
    ok(!decode_copy(mac, forged, flen, &error) && error.code == CACHE_REDIS_BLOB_BAD_MAC,
       "a forged error reply with a valid structure is refused: %s", error.message);
    bson_free(forged);
    /* the same, with our valid value's MAC copied over it */
    forged = make_blob_with(mac, forged_reply, forged_len, &flen);
    memcpy(forged + flen - CACHE_REDIS_MAC_LEN, blob + len - CACHE_REDIS_MAC_LEN,
           CACHE_REDIS_MAC_LEN);
    ok(!decode_copy(mac, forged, flen, &error) && error.code == CACHE_REDIS_BLOB_BAD_MAC,
       "a forged value carrying a genuine value's MAC is refused");
    bson_free(forged);

    /* Every single-bit flip. */
    for (size_t i = 0; i < len; i++) {
        for (int b = 0; b < 8; b++) {
            memcpy(bad, blob, len);
            bad[i] ^= (uint8_t)(1u << b);
            bits++;
            if (!decode_copy(mac, bad, len, &error)) {
                refused++;
                by_mac += error.code == CACHE_REDIS_BLOB_BAD_MAC;
            }
        }
    }
    ok(refused == bits, "every one of the %zu single-bit flips of a %zu-byte value is refused "
       "(%zu by the MAC, the rest by the version)", bits, len, by_mac);
    ok(by_mac == bits - 32, "all but the magic's 32 bits are refused by the MAC");

    /* Moved to another key. */
    {
        uint8_t *copy = bson_malloc(len);
        struct cache_redis_blob d;

        memcpy(copy, blob, len);
        ok(!cache_redis_blob_decode(copy, len, mac, RKEY2, strlen(RKEY2), &d, &error) &&
               error.code == CACHE_REDIS_BLOB_BAD_MAC,
           "a valid value copied to another key is refused");
        ok(cache_redis_blob_decode(copy, len, mac, RKEY, strlen(RKEY), &d, &error),
           "and still read under its own");
        bson_free(copy);
    }

    /* Truncated: the MAC cut off, or only part of it left. */
    ok(!decode_copy(mac, blob, len - CACHE_REDIS_MAC_LEN, &error),
       "a value without its MAC is refused");
    ok(!decode_copy(mac, blob, len - 1, &error), "a value one byte short is refused");

    /* The old, unsealed version. */
    v1 = make_v1(reply, reply_len, &v1_len);
    ok(!decode_copy(mac, v1, v1_len, &error) && error.code == CACHE_REDIS_BLOB_MALFORMED &&
           strstr(error.message, "MCV4"),
       "an MCV1 value (before the MAC) is refused: %s", error.message);
    memcpy(v1, "MCV4", 4);
    ok(!decode_copy(mac, v1, v1_len, &error), "and so is one relabelled MCV4");
    {
        /* The previous version (MCV3: no expiry) is refused for its version. */
        uint8_t *old = bson_malloc(len);

        memcpy(old, blob, len);
        memcpy(old, "MCV3", 4);
        ok(!decode_copy(mac, old, len, &error) && error.code == CACHE_REDIS_BLOB_MALFORMED,
           "an MCV3 value (before the sealed expiry) is refused: %s", error.message);
        bson_free(old);
    }
    bson_free(v1);

    bson_free(forged_reply);
    bson_destroy(forged_doc);
    bson_free(bad);
    bson_free(blob);
    bson_free(reply);
    cache_redis_mac_destroy(other);
}

/* OpenSSL's SipHash (EVP_MAC "SIPHASH", 2-4, 16-byte output): the reference ours must equal. */
static bool
openssl_siphash(const uint8_t key[16], const uint8_t *data, size_t len, uint8_t out[16])
{
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    size_t size = 16;
    size_t got = 0;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t("size", &size), OSSL_PARAM_construct_end()};
    bool ok = ctx && EVP_MAC_init(ctx, key, 16, params) && EVP_MAC_update(ctx, data, len) &&
              EVP_MAC_final(ctx, out, &got, 16) && got == 16;

    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    return ok;
}

/* SipHash-2-4 with a 128-bit output of data under key (the known answers' form). */
static void
mac_siphash(const uint8_t key[CACHE_REDIS_MAC_KEY_LEN], const void *data, size_t len,
            uint8_t out[CACHE_REDIS_MAC_LEN])
{
    struct cache_siphash_key k = {cache_siphash_le64(key), cache_siphash_le64(key + 8)};
    struct cache_siphash s;

    cache_siphash_init(&s, &k, true);
    cache_siphash_absorb(&s, data, len);
    cache_siphash_final128(&s, out);
}

/*
 * The MAC is SipHash-2-4-128 (the published first vector; OpenSSL's for
 * every length up to 200 bytes), over u32 name length || name || data under
 * the first 16 bytes of HMAC-SHA-256(secret, label), whatever the split of
 * the input between name and data.
 */
static void
test_siphash(void)
{
    /* SipHash-2-4-128, key 00..0f, empty input (the reference's vectors_sip128[0]) */
    static const uint8_t vector0[16] = {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                        0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93};
    static const char secret[] = "a secret for the known answers";
    uint8_t key[16];
    uint8_t data[200];
    uint8_t ours[16];
    uint8_t theirs[16];
    uint8_t derived[32];
    uint8_t input[4 + 200];
    size_t derived_len = 0;
    size_t same = 0;
    size_t splits = 0;
    size_t splits_same = 0;
    bson_error_t error;
    struct cache_redis_mac *mac = cache_redis_mac_new(secret, strlen(secret), &error);

    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    mac_siphash(key, NULL, 0, ours);
    ok(memcmp(ours, vector0, 16) == 0, "SipHash-2-4-128 of the empty input: the published vector");
    for (size_t len = 0; len <= sizeof data; len++) {
        mac_siphash(key, data, len, ours);
        same += openssl_siphash(key, data, len, theirs) && memcmp(ours, theirs, 16) == 0;
    }
    ok(same == sizeof data + 1, "equal to OpenSSL's SipHash-2-4-128 for %zu of the %zu lengths",
       same, sizeof data + 1);

    /* The construction: key derivation, length prefix, name, data; any split. */
    ok(mac != NULL && EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
                                (const unsigned char *)CACHE_REDIS_MAC_LABEL,
                                strlen(CACHE_REDIS_MAC_LABEL), derived, sizeof derived,
                                &derived_len) != NULL,
       "the value key is derived with HMAC-SHA-256 and the label");
    for (size_t name_len = 0; mac && name_len <= 40; name_len++) {
        for (size_t len = 0; name_len + len <= 60; len++) {
            input[0] = (uint8_t)name_len;
            input[1] = input[2] = input[3] = 0;
            memcpy(input + 4, data, name_len + len);
            mac_siphash(derived, input, 4 + name_len + len, theirs);
            cache_redis_mac_compute(mac, data, name_len, data + name_len, len, ours);
            splits++;
            splits_same += memcmp(ours, theirs, 16) == 0;
        }
    }
    ok(splits > 0 && splits_same == splits,
       "the MAC is SipHash(first 16 bytes of the derived key, u32 len || name || data): %zu of "
       "%zu splits",
       splits_same, splits);
    cache_redis_mac_destroy(mac);
}

/*
 * A value written by a proxy of the previous version: "MCV2", the same
 * layout, sealed with HMAC-SHA-256 (32 bytes) under the key derived with
 * that version's label, for the right Redis key and the same secret. It is
 * refused for its version (a miss counted as redis_corrupt), not read, and
 * never mistaken for a forgery.
 */
static void
test_old_format(const char *secret, struct cache_redis_mac *mac)
{
    uint8_t *reply;
    size_t reply_len;
    size_t len;
    uint8_t *blob = make_blob(mac, &len, &reply, &reply_len);
    size_t body = len - CACHE_REDIS_MAC_LEN;
    size_t old_len = body + 32;
    uint8_t *old = bson_malloc(old_len);
    uint8_t old_key[32];
    uint8_t prefix[4] = {(uint8_t)strlen(RKEY), 0, 0, 0};
    size_t got = 0;
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    bson_error_t error;
    bool sealed;

    memcpy(old, blob, body);
    memcpy(old, "MCV2", 4);
    sealed = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
                       (const unsigned char *)"mongocache value MAC v2", 23, old_key,
                       sizeof old_key, &got) != NULL &&
             ctx && EVP_MAC_init(ctx, old_key, sizeof old_key, params) &&
             EVP_MAC_update(ctx, prefix, 4) &&
             EVP_MAC_update(ctx, (const unsigned char *)RKEY, strlen(RKEY)) &&
             EVP_MAC_update(ctx, old, body) && EVP_MAC_final(ctx, old + body, &got, 32) &&
             got == 32;
    ok(sealed, "an MCV2 value sealed as the previous version did");
    ok(!decode_copy(mac, old, old_len, &error) && error.code == CACHE_REDIS_BLOB_MALFORMED &&
           strstr(error.message, "MCV4"),
       "a previous version's value is refused for its version, not by the MAC: %s",
       error.message);
    ok(len > 4 && memcmp(blob, "MCV4", 4) == 0 && memcmp(blob, "MCV2", 4) != 0,
       "ours start with MCV4, which an MCV2 proxy refuses as not MCV2");
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    bson_free(old);
    bson_free(blob);
    bson_free(reply);
}

/*
 * Every prefix of a valid value and thousands of random corruptions: none
 * verifies; resealed (a writer with the secret), each is refused by the
 * structure checks or decodes to exactly its bytes.
 */
static void
test_fuzz(struct cache_redis_mac *mac)
{
    bson_error_t error;
    uint8_t *reply;
    size_t reply_len;
    size_t len;
    uint8_t *blob = make_blob(mac, &len, &reply, &reply_len);
    uint8_t *bad = bson_malloc(len);
    bool truncations_refused = true;
    bool consistent = true;
    int forged_accepted = 0;
    int accepted = 0;
    unsigned seed = 12345;

    for (size_t n = 0; n < len; n++)
        if (decode_copy(mac, blob, n, &error))
            truncations_refused = false;
    ok(truncations_refused, "each of the %zu truncations is refused", len);

    for (int round = 0; round < 20000; round++) {
        struct cache_redis_blob d;
        int flips = 1 + (int)(rand_r(&seed) % 4);
        uint8_t *again;
        size_t again_len;

        memcpy(bad, blob, len);
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)rand_r(&seed) % (len - CACHE_REDIS_MAC_LEN);

            if (rand_r(&seed) % 2)
                bad[at] = (uint8_t)rand_r(&seed);
            else
                bad[at] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
        }
        if (memcmp(bad, blob, len) != 0 && decode_copy(mac, bad, len, &error))
            forged_accepted++;
        reseal(mac, bad, len);
        if (!cache_redis_blob_decode(bad, len, mac, RKEY, strlen(RKEY), &d, &error))
            continue;
        /* Accepted: it must mean exactly these bytes (re-encoding gives them back). */
        accepted++;
        again = cache_redis_blob_encode(&d, mac, RKEY, strlen(RKEY), &again_len);
        if (!again || again_len != len || memcmp(again, bad, len) != 0)
            consistent = false;
        if (d.reply + d.reply_len > bad + len || d.material + d.material_len > bad + len)
            consistent = false;
        bson_free(again);
    }
    ok(forged_accepted == 0, "none of 20000 random corruptions is accepted (%d were)",
       forged_accepted);
    ok(consistent,
       "resealed, each is refused or decoded consistently (%d accepted, all re-encode)",
       accepted);
    bson_free(bad);
    bson_free(blob);
    bson_free(reply);
}

struct url_case {
    const char *text;
    const char *host;
    int port;
    const char *path;
    const char *user;
    const char *password;
    int db;
};

static const char *
or_null(const char *s)
{
    return s ? s : "(null)";
}

static void
test_url_good(void)
{
    static const struct url_case cases[] = {
        {"redis://127.0.0.1:6379", "127.0.0.1", 6379, NULL, NULL, NULL, 0},
        {"redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0},
        {"redis://cache.example.com:7000/3", "cache.example.com", 7000, NULL, NULL, NULL, 3},
        {"redis://:hunter2@10.0.0.1:6380", "10.0.0.1", 6380, NULL, NULL, "hunter2", 0},
        {"redis://proxy:hunter2@h:1/15", "h", 1, NULL, "proxy", "hunter2", 15},
        {"redis://u:p%40ss%3Aw@h:2", "h", 2, NULL, "u", "p@ss:w", 0},
        {"redis://u:p@ss@h:3", "h", 3, NULL, "u", "p@ss", 0},
        {"redis://[::1]:6379/2", "::1", 6379, NULL, NULL, NULL, 2},
        {"redis://h:6379/", "h", 6379, NULL, NULL, NULL, 0},
        {"unix:///run/redis/redis.sock", NULL, 6379, "/run/redis/redis.sock", NULL, NULL, 0},
        {"unix:///tmp/r.sock?db=4", NULL, 6379, "/tmp/r.sock", NULL, NULL, 4},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct url_case *c = &cases[i];
        struct cache_redis_url u;
        bson_error_t error;
        bool parsed = cache_redis_url_parse(c->text, &u, &error);
        bool same = parsed && strcmp(or_null(u.host), or_null(c->host)) == 0 &&
                    u.port == c->port && strcmp(or_null(u.path), or_null(c->path)) == 0 &&
                    strcmp(or_null(u.user), or_null(c->user)) == 0 &&
                    strcmp(or_null(u.password), or_null(c->password)) == 0 && u.db == c->db;

        ok(same, "URL %s", c->text);
        if (!parsed)
            diag("error: %s", error.message);
        else if (!same)
            diag("host=%s port=%d path=%s user=%s db=%d", or_null(u.host), u.port,
                 or_null(u.path), or_null(u.user), u.db);
        if (parsed)
            cache_redis_url_cleanup(&u);
    }
}

/* rediss:// is redis:// over TLS: the same parts, and tls set (never for the others). */
static void
test_url_tls(void)
{
    static const struct {
        const char *text;
        const char *host;
        int port;
        int db;
        bool tls;
    } cases[] = {
        {"rediss://cache.example.com:6380/2", "cache.example.com", 6380, 2, true},
        {"rediss://u:pw@127.0.0.1", "127.0.0.1", 6379, 0, true},
        {"rediss://[::1]:7000", "::1", 7000, 0, true},
        {"redis://cache.example.com:6380/2", "cache.example.com", 6380, 2, false},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cache_redis_url u;
        bson_error_t error;
        bool parsed = cache_redis_url_parse(cases[i].text, &u, &error);

        ok(parsed && strcmp(or_null(u.host), cases[i].host) == 0 && u.port == cases[i].port &&
               u.db == cases[i].db && u.tls == cases[i].tls,
           "URL %s: tls=%d", cases[i].text, cases[i].tls);
        if (parsed)
            cache_redis_url_cleanup(&u);
        else
            diag("error: %s", error.message);
    }
}

/* redis-sentinel://: the Sentinels (26379 by default), the master's name, the master's db. */
static void
test_url_sentinel(void)
{
    struct cache_redis_url u;
    bson_error_t error;
    bool parsed;

    parsed = cache_redis_url_parse("redis-sentinel://u:p%40w@s1.example,10.0.0.2:26380,[::1]/"
                                   "my-master.1/3",
                                   &u, &error);
    ok(parsed && u.n_sentinels == 3 && strcmp(u.sentinels[0].host, "s1.example") == 0 &&
           u.sentinels[0].port == 26379 && strcmp(u.sentinels[1].host, "10.0.0.2") == 0 &&
           u.sentinels[1].port == 26380 && strcmp(u.sentinels[2].host, "::1") == 0 &&
           u.sentinels[2].port == 26379 && strcmp(or_null(u.master), "my-master.1") == 0 &&
           u.db == 3 && !u.tls && u.host == NULL && strcmp(or_null(u.user), "u") == 0 &&
           strcmp(or_null(u.password), "p@w") == 0,
       "a Sentinel URL: three Sentinels, the master's name, db, the master's password");
    if (parsed)
        cache_redis_url_cleanup(&u);
    else
        diag("error: %s", error.message);
    parsed = cache_redis_url_parse("rediss-sentinel://h/m", &u, &error);
    ok(parsed && u.n_sentinels == 1 && u.tls && strcmp(or_null(u.master), "m") == 0 && u.db == 0,
       "rediss-sentinel://: TLS");
    if (parsed)
        cache_redis_url_cleanup(&u);
    parsed = cache_redis_url_parse("redis://h:1", &u, &error);
    ok(parsed && u.n_sentinels == 0 && u.master == NULL, "redis:// is not a Sentinel URL");
    if (parsed)
        cache_redis_url_cleanup(&u);
}

/* The TLS context: files that cannot be used are refused by name; sessions check the host. */
static void
test_tls(void)
{
    struct cache_redis_tls_conf tc = {0};
    struct cache_redis_tls *tls;
    bson_error_t error;
    SSL *ssl;

    tc.cert_file = "/nonexistent/client.crt";
    ok(!(tls = cache_redis_tls_new(&tc, &error)) && strstr(error.message, "go together"),
       "a certificate without its key is refused: %s", error.message);
    cache_redis_tls_destroy(tls);
    tc.cert_file = NULL;
    tc.ca_file = "/nonexistent/ca.pem";
    ok(!(tls = cache_redis_tls_new(&tc, &error)) && strstr(error.message, "/nonexistent/ca.pem") &&
           error.code == CACHE_REDIS_ERR_TLS,
       "a CA file that cannot be read is refused, named: %s", error.message);
    cache_redis_tls_destroy(tls);
    tc.ca_file = NULL;
    tls = cache_redis_tls_new(&tc, &error);
    ok(tls && !cache_redis_tls_hostnames_unchecked(tls), "the system's CAs, names checked");
    if (!tls)
        return;
    ssl = cache_redis_tls_session(tls, "cache.example.com", &error);
    ok(ssl && SSL_get_verify_mode(ssl) == SSL_VERIFY_PEER &&
           strcmp(or_null(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)),
                  "cache.example.com") == 0 &&
           strcmp(or_null(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0)),
                  "cache.example.com") == 0,
       "a session for a name: peer verified, SNI and the name to check set");
    SSL_free(ssl);
    ssl = cache_redis_tls_session(tls, "127.0.0.1", &error);
    {
        char *ip = ssl ? X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param(ssl)) : NULL;

        ok(ssl && SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) == NULL &&
               strcmp(or_null(ip), "127.0.0.1") == 0,
           "a session for an IP address: no SNI, the address is what is checked");
        OPENSSL_free(ip);
    }
    SSL_free(ssl);
    cache_redis_tls_destroy(tls);
    tc.allow_invalid_hostnames = true;
    tls = cache_redis_tls_new(&tc, &error);
    ssl = tls ? cache_redis_tls_session(tls, "cache.example.com", &error) : NULL;
    ok(ssl && cache_redis_tls_hostnames_unchecked(tls) &&
           X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0) == NULL &&
           SSL_get_verify_mode(ssl) == SSL_VERIFY_PEER,
       "allow_invalid_hostnames: no name checked, the chain still verified");
    SSL_free(ssl);
    cache_redis_tls_destroy(tls);
}

static void
test_url_bad(void)
{
    static const char *const cases[] = {
        "",
        "http://h:6379",
        "rediss://",
        "rediss://:hunter2@/1",
        "rediss:/h:6379",
        "redis-sentinel://h:26379",
        "redis-sentinel://h:26379/",
        "redis-sentinel://h,/m",
        "redis-sentinel://h:0/m",
        "redis-sentinel://h/m/x",
        "redis-sentinel://h/m?x",
        "redis-sentinel://:hunter2@h1,h2:99999/m",
        "redis-sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:12ab",
        "redis://h:",
        "redis://h/x",
        "redis://h/1/2",
        "redis://h:1?db=2",
        "redis://h h:1",
        "redis://[::1:6379",
        "redis://hunter2@h:1",
        "redis://u:hunter2%zz@h:1",
        "redis://u:hunter2%00@h:1",
        "redis://u:hunter2@h:99999",
        "redis://:hunter2@/1",
        "unix://relative/path",
        "unix:///",
        "unix:///tmp/r.sock?db=x",
        "unix:///tmp/r.sock?password=hunter2",
        "unix://:hunter2@/tmp/r.sock",
    };
    bool no_secret = true;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cache_redis_url u;
        bson_error_t error;

        memset(&error, 0, sizeof error);
        ok(!cache_redis_url_parse(cases[i], &u, &error) && error.message[0] != '\0',
           "refused: \"%s\"", strstr(cases[i], "hunter2") ? "(a URL with a password)" : cases[i]);
        if (strstr(error.message, "hunter2")) {
            no_secret = false;
            diag("leaks in error %zu", i);
        }
    }
    ok(no_secret, "no error message holds the password");
}

static void
test_redact(void)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"redis://h:1", "redis://h:1"},
        {"redis://:hunter2@h:1/2", "redis://:<redacted>@h:1/2"},
        {"redis://user:hunter2@h:1", "redis://user:<redacted>@h:1"},
        {"redis://user:pa:ss@w@h:1", "redis://user:<redacted>@h:1"},
        {"redis://hunter2@h:1", "redis://<redacted>@h:1"},
        {"unix:///tmp/r.sock?db=1", "unix:///tmp/r.sock?db=1"},
        {"unix:///tmp/r.sock?password=hunter2", "unix:///tmp/r.sock?<redacted>"},
        {"redis://h:1/0?x=hunter2", "redis://h:1/0?<redacted>"},
        {"rediss://user:hunter2@h:1", "rediss://user:<redacted>@h:1"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = cache_redis_url_redact(cases[i].in);

        is_str(got, cases[i].want, "redact %s", cases[i].want);
        bson_free(got);
    }
}


/* ---- reading what Redis sends (redis_resp.c, redis_push.c) ---------------------------- */

/*
 * Feeds text in slices of step bytes, the first `spill` elements of every
 * reply allowed to spill; returns the replies' types joined (a spilled
 * value with its length), or "ERR:why".
 */
static void
read_spill(const char *data, size_t len, size_t step, size_t max_bytes, size_t max_elements,
           size_t spill, char *out, size_t cap)
{
    struct cache_redis_resp *resp = cache_redis_resp_new(max_bytes, max_elements);
    bson_error_t error;
    size_t at = 0;

    out[0] = '\0';
    while (at < len) {
        size_t n = len - at < step ? len - at : step;
        redisReply *r;
        enum cache_redis_resp_status st;

        if (!cache_redis_resp_feed(resp, data + at, n, &error)) {
            snprintf(out, cap, "ERR:%.200s", error.message);
            break;
        }
        at += n;
        while ((cache_redis_resp_spill(resp, spill),
                st = cache_redis_resp_next(resp, &r, &error)) == CACHE_REDIS_RESP_REPLY) {
            size_t used = strlen(out);

            snprintf(out + used, cap - used, "%d%s", r->type,
                     r->type == REDIS_REPLY_ARRAY ? "[" : ",");
            for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
                const redisReply *e = r->element[i];

                used = strlen(out);
                if (e->type == CACHE_REDIS_REPLY_SPILLED)
                    snprintf(out + used, cap - used, "%d:%zu%s,", e->type, e->len,
                             e->str ? "+str" : "");
                else
                    snprintf(out + used, cap - used, "%d,", e->type);
            }
            if (r->type == REDIS_REPLY_ARRAY) {
                used = strlen(out);
                snprintf(out + used, cap - used, "],");
            }
        }
        if (st == CACHE_REDIS_RESP_ERROR) {
            snprintf(out, cap, "ERR:%.200s", error.message);
            break;
        }
    }
    cache_redis_resp_destroy(resp);
}

/* As read_spill, nothing allowed to spill. */
static void
read_all(const char *data, size_t len, size_t step, size_t max_bytes, size_t max_elements,
         char *out, size_t cap)
{
    read_spill(data, len, step, max_bytes, max_elements, 0, out, cap);
}

/* Appends a bulk string of n bytes of c to buf at *len. */
static void
put_bulk(char *buf, size_t *len, size_t n, char c)
{
    *len += (size_t)sprintf(buf + *len, "$%zu\r\n", n);
    memset(buf + *len, c, n);
    *len += n;
    memcpy(buf + *len, "\r\n", 2);
    *len += 2;
}

/*
 * A read batch's reply over the budget: the values that do not fit spill
 * (consumed, not kept), the rest of the reply is read, and the next reply
 * is whole again; only the top array's first values spill.
 */
static void
test_resp_spill(void)
{
    /* Room for 5 small elements (121 bytes each on 64 bits) leaves 3491 bytes for the values. */
    char *buf = bson_malloc(16384);
    char want[256];
    char got[256];
    size_t len = 0;
    bool same = true;

    {
        struct cache_redis_resp *r = cache_redis_resp_new(97000000, 1024);

        ok(cache_redis_resp_spill_budget(r) >= 97000000 - 1048576 &&
               cache_redis_resp_spill_budget(r) < 97000000,
           "the values' budget leaves room for 1024 small elements, less than 1 MiB");
        cache_redis_resp_destroy(r);
    }
    len += (size_t)sprintf(buf, "*5\r\n");
    put_bulk(buf, &len, 1500, 'a');
    put_bulk(buf, &len, 1500, 'b');
    put_bulk(buf, &len, 1500, 'c');
    put_bulk(buf, &len, 2, '7');
    len += (size_t)sprintf(buf + len, "$-1\r\n+OK\r\n");
    read_all(buf, len, len, 4096, 5, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0 && strstr(got, "budget"),
       "three 1500-byte values are over a 4096-byte budget when nothing may spill: %s", got);
    read_spill(buf, len, len, 4096, 5, 3, want, sizeof want);
    is_str(want, "2[1,1,64:1500,1,4,],5,",
           "the third value spills (its length kept, no bytes), the counters and the next "
           "reply are read");
    for (size_t step = 1; step < len; step += step < 64 ? 1 : 97) {
        read_spill(buf, len, step, 4096, 5, 3, got, sizeof got);
        if (strcmp(got, want) != 0) {
            same = false;
            diag("slices of %zu: %s", step, got);
        }
    }
    ok(same, "the same whatever the slices");
    read_spill(buf, len, len, 4096, 5, 2, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0 && strstr(got, "budget"),
       "an element past the values does not spill: over the budget, refused: %s", got);

    len = (size_t)sprintf(buf, "*2\r\n");
    put_bulk(buf, &len, 4000, 'a');
    put_bulk(buf, &len, 100, 'b');
    read_spill(buf, len, 512, 4096, 5, 2, got, sizeof got);
    is_str(got, "2[64:4000,1,],", "a value over the values' budget alone spills; a small one after it is kept");

    len = (size_t)sprintf(buf, "*1\r\n*3\r\n");
    put_bulk(buf, &len, 1500, 'a');
    put_bulk(buf, &len, 1500, 'b');
    put_bulk(buf, &len, 1500, 'c');
    read_spill(buf, len, len, 4096, 5, 1, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0, "strings of a nested array never spill: %s", got);
    bson_free(buf);
}

static void
test_resp(void)
{
    static const char stream[] = "+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n-ERR no\r\n"
                                 "*3\r\n$-1\r\n$2\r\n17\r\n:1\r\n*0\r\n*-1\r\n";
    char want[256];
    char got[256];
    bool same = true;

    read_all(stream, sizeof stream - 1, sizeof stream, 1 << 20, 8, want, sizeof want);
    is_str(want, "5,3,1,4,6,2[4,1,3,],2[],4,", "a stream of replies, read at once");
    for (size_t step = 1; step < sizeof stream; step++) {
        read_all(stream, sizeof stream - 1, step, 1 << 20, 8, got, sizeof got);
        if (strcmp(got, want) != 0) {
            same = false;
            diag("slices of %zu: %s", step, got);
        }
    }
    ok(same, "the same replies whatever the slices (1 to %zu bytes)", sizeof stream - 1);

    read_all("*3\r\n:1\r\n:2\r\n:3\r\n", 16, 16, 1 << 20, 2, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0 && strstr(got, "element limit"),
       "an array over the element limit is refused: %s", got);
    read_all("$2000\r\n", 7, 7, 1000, 8, got, sizeof got);
    ok(strcmp(got, "") == 0, "a bulk header alone is not a reply yet");
    {
        size_t n = 7 + 70000;
        char *big = bson_malloc(n);

        memcpy(big, "$900000\r\n", 9);
        memset(big + 9, 'x', n - 9);
        read_all(big, n, 4096, 1000, 8, got, sizeof got);
        ok(strncmp(got, "ERR:", 4) == 0 && strstr(got, "budget"),
           "a bulk string growing past the byte budget is refused while it arrives: %s", got);
        bson_free(big);
    }
    read_all("$5\r\nhello\r\n", 11, 11, 20, 8, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0, "a whole reply over the byte budget is refused: %s", got);
    read_all("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 40, 40, 1 << 20, 8,
             got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0, "nesting 9 deep is refused: %s", got);
    read_all("%3\r\n", 4, 4, 1 << 20, 8, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0 && strstr(got, "Protocol error"),
       "an unknown type byte is refused: %s", got);
    read_all(":12a\r\n", 6, 6, 1 << 20, 8, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0, "a bad integer is refused: %s", got);
    read_all("$-2\r\n", 5, 5, 1 << 20, 8, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0, "a negative bulk length is refused: %s", got);
    read_all("*99999999999\r\n", 14, 14, 1 << 20, 8, got, sizeof got);
    ok(strncmp(got, "ERR:", 4) == 0, "a huge array length is refused: %s", got);
}

#define CH "mc:inval"

/* What push_cb saw. */
struct pushes {
    int subscribed;
    int messages;
    char last[64];
    int refuse_after; /* refuse the push after this many (-1: never) */
};

static bool
push_cb(void *arg, const struct cache_redis_push *push)
{
    struct pushes *p = arg;

    if (p->refuse_after >= 0 && p->subscribed + p->messages >= p->refuse_after)
        return false;
    if (push->kind == CACHE_REDIS_PUSH_SUBSCRIBED) {
        p->subscribed++;
    } else {
        p->messages++;
        snprintf(p->last, sizeof p->last, "%.*s", (int)push->payload_len, push->payload);
    }
    return true;
}

/* Feeds text (in slices of step) as a subscription's stream; true when every push was fine. */
static bool
feed_pushes(const char *data, size_t len, size_t step, struct pushes *p, bson_error_t *error)
{
    struct cache_redis_resp *resp = cache_redis_resp_new(1 << 20, 3);
    bool ok = true;

    for (size_t at = 0; ok && at < len; at += step)
        ok = cache_redis_push_feed(resp, CH, strlen(CH), data + at,
                                   len - at < step ? len - at : step, push_cb, p, error);
    cache_redis_resp_destroy(resp);
    return ok;
}

static void
test_pushes(void)
{
    static const char good[] = "*3\r\n$9\r\nsubscribe\r\n$8\r\n" CH "\r\n:1\r\n"
                               "*3\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n$7\r\nn:a.b\nc\r\n"
                               "*3\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n$0\r\n\r\n";
    static const struct {
        const char *bytes;
        const char *what;
    } bad[] = {
        {"*3\r\n:1\r\n$8\r\n" CH "\r\n:1\r\n", "kind is an integer"},
        {"*1\r\n$9\r\nsubscribe\r\n", "one element"},
        {"*0\r\n", "an empty array"},
        {"*2\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n", "two elements"},
        {"*4\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n$1\r\nx\r\n$1\r\ny\r\n", "four elements"},
        {"*3\r\n$9\r\nsubscribe\r\n:5\r\n:1\r\n", "channel is an integer"},
        {"*3\r\n$9\r\nsubscribe\r\n$8\r\n" CH "\r\n$1\r\n1\r\n", "count is a bulk string"},
        {"*3\r\n$9\r\nsubscribe\r\n$8\r\n" CH "\r\n:0\r\n", "count 0"},
        {"*3\r\n$11\r\nunsubscribe\r\n$8\r\n" CH "\r\n$1\r\nx\r\n", "unsubscribe"},
        {"*3\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n:7\r\n", "an integer payload"},
        {"*3\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n*1\r\n$1\r\nx\r\n", "an array payload"},
        {"*3\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n$-1\r\n", "a nil payload"},
        {"*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$1\r\nx\r\n", "another channel"},
        {"*3\r\n$7\r\nmessage\r\n$8\r\nmc:invaL\r\n$1\r\nx\r\n", "a channel one byte off"},
        {"*3\r\n+message\r\n$8\r\n" CH "\r\n$1\r\nx\r\n", "kind is a status"},
        {"*3\r\n$7\r\nMESSAGE\r\n$8\r\n" CH "\r\n$1\r\nx\r\n", "kind in capitals"},
        {"*3\r\n$8\r\npmessage\r\n$8\r\n" CH "\r\n$1\r\nx\r\n", "a pattern message"},
        {"+OK\r\n", "a status"},
        {":1\r\n", "an integer"},
        {"$-1\r\n", "a nil"},
        {"-ERR \"quoted\"\r\n", "an error"},
        {"\x01garbage\r\n", "garbage"},
    };
    struct pushes p = {0, 0, "", -1};
    bson_error_t error;
    bool all = true;

    ok(feed_pushes(good, sizeof good - 1, sizeof good, &p, &error) && p.subscribed == 1 &&
           p.messages == 2 && p.last[0] == '\0',
       "a confirmation and two messages are read");
    for (size_t step = 1; step < sizeof good; step++) {
        struct pushes q = {0, 0, "", -1};

        if (!feed_pushes(good, sizeof good - 1, step, &q, &error) || q.subscribed != 1 ||
            q.messages != 2)
            all = false;
    }
    ok(all, "the same whatever the slices");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pushes q = {0, 0, "", -1};
        bool refused = !feed_pushes(bad[i].bytes, strlen(bad[i].bytes), 1, &q, &error);

        ok(refused && q.subscribed + q.messages == 0 && error.message[0],
           "a push refused: %s (%s)", bad[i].what, error.message);
        if (strstr(error.message, "\"quoted\""))
            diag("the error text was not sanitized");
    }
    p = (struct pushes){0, 0, "", 1};
    ok(!feed_pushes(good, sizeof good - 1, 7, &p, &error) && p.subscribed == 1 &&
           p.messages == 0 && strstr(error.message, "unexpected push"),
       "a push its reader refuses stops the stream: %s", error.message);
}

/*
 * Random streams (RESP atoms, or a valid stream with bytes changed), cut
 * anywhere: each is read to its end or to an error, never a crash (run it
 * under ASan: --enable-asan).
 */
static void
test_resp_random(void)
{
    static const char *const atoms[] = {
        "*", "$", ":", "+", "-", "\r\n", "0", "1", "3", "9", "-1", "subscribe", "message",
        CH, "x", "\r", "\n", "*3\r\n", "$7\r\nmessage\r\n", "$8\r\n" CH "\r\n", "$1\r\nx\r\n",
        ":1\r\n", "$-1\r\n", "*-1\r\n", "\x00", "\xff",
    };
    static const char valid[] = "*3\r\n$9\r\nsubscribe\r\n$8\r\n" CH "\r\n:1\r\n"
                                "*3\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n$5\r\nn:a.b\r\n"
                                "*3\r\n$7\r\nmessage\r\n$8\r\n" CH "\r\n$3\r\nd:a\r\n";
    unsigned seed = 4242;
    int errors = 0;
    int pushes = 0;

    for (int round = 0; round < 20000; round++) {
        char buf[256];
        size_t len = 0;
        struct cache_redis_resp *resp = cache_redis_resp_new(512, 3);
        struct pushes p = {0, 0, "", -1};
        bson_error_t error;
        bool ok = true;

        if (round % 2) { /* atoms */
            while (len < sizeof buf - 32) {
                const char *a = atoms[rand_r(&seed) % (sizeof atoms / sizeof atoms[0])];
                size_t n = a[0] ? strlen(a) : 1;

                memcpy(buf + len, a, n);
                len += n;
                if (rand_r(&seed) % 16 == 0)
                    break;
            }
        } else { /* a valid stream with one to three bytes changed */
            len = sizeof valid - 1;
            memcpy(buf, valid, len);
            for (int f = 1 + rand_r(&seed) % 3; f > 0; f--)
                buf[(size_t)rand_r(&seed) % len] = (char)rand_r(&seed);
        }
        for (size_t at = 0; ok && at < len;) {
            size_t n = 1 + (size_t)rand_r(&seed) % 17;

            n = n < len - at ? n : len - at;
            ok = cache_redis_push_feed(resp, CH, strlen(CH), buf + at, n, push_cb, &p, &error);
            at += n;
        }
        errors += !ok;
        pushes += p.subscribed + p.messages;
        cache_redis_resp_destroy(resp);
    }
    ok(errors > 0 && pushes > 0,
       "20000 random streams read without a crash (%d refused, %d pushes accepted)", errors,
       pushes);
}

struct names_seen {
    int n;
    char all[256];
};

static void
name_seen(void *arg, const char *name, size_t len)
{
    struct names_seen *seen = arg;
    size_t at = strlen(seen->all);

    seen->n++;
    if (at + len + 2 < sizeof seen->all)
        snprintf(seen->all + at, sizeof seen->all - at, "%s%s", at ? "|" : "", name);
}

/* The names a bump's message carries (cache_redis_push_names). */
static void
test_push_names(void)
{
    static const char me[17] = "0123456789abcdef";
    static const struct {
        const char *payload;
        int n;
        const char *want;
    } rows[] = {
        {"n:db.coll", 1, "n:db.coll"},
        {"n:db.a\nd:db\n*", 3, "n:db.a|d:db|*"},
        {"@0123456789abcdef", 0, ""},
        {"@0123456789abcdef\nn:db.x", 0, ""},
        {"@fedcba9876543210\nn:db.x", 1, "n:db.x"},
        {"\n\n\nn:x\n\n", 1, "n:x"},
        {"", 0, ""},
    };
    char *huge = bson_malloc(3000);
    struct names_seen seen;

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        memset(&seen, 0, sizeof seen);
        cache_redis_push_names(rows[i].payload, strlen(rows[i].payload), me, name_seen, &seen);
        ok(seen.n == rows[i].n && strcmp(seen.all, rows[i].want) == 0,
           "push names, row %zu: %d names [%s]", i, seen.n, seen.all);
    }
    /* A line too long to be a name names everything once (it named "*" once per byte). */
    memset(huge, 'a', 2999);
    huge[2999] = '\n';
    memset(&seen, 0, sizeof seen);
    cache_redis_push_names(huge, 3000, me, name_seen, &seen);
    ok(seen.n == 1 && strcmp(seen.all, "*") == 0,
       "a 2,999-byte line names everything once (%d names)", seen.n);
    memset(&seen, 0, sizeof seen);
    huge[10] = '\0';
    cache_redis_push_names(huge, 20, me, name_seen, &seen);
    ok(seen.n == 1 && strcmp(seen.all, "*") == 0, "a line holding a NUL names everything once");
    bson_free(huge);
}

/* ---- commands (cache/redis_cmd.c) ---------------------------------------------------- */

static uint64_t
counting_base(void *arg)
{
    return ++*(uint64_t *)arg;
}

/*
 * A reply built by hand: an array of one element per letter: 's' the string
 * "7", 'x' the string "7x", 'z' the string "007", 'n' nil, 'a' an empty array, else the integer 7.
 */
static redisReply *
reply_of(const char *types)
{
    size_t n = strlen(types);
    redisReply *r = calloc(1, sizeof *r);

    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof *r->element);
    for (size_t i = 0; i < n; i++) {
        redisReply *e = calloc(1, sizeof *e);

        e->type = types[i] == 's' || types[i] == 'x' || types[i] == 'z' ? REDIS_REPLY_STRING
                  : types[i] == 'n'                  ? REDIS_REPLY_NIL
                  : types[i] == 'a'                  ? REDIS_REPLY_ARRAY
                  : types[i] == 'p'                  ? CACHE_REDIS_REPLY_SPILLED
                                                     : REDIS_REPLY_INTEGER;
        if (e->type == REDIS_REPLY_STRING) {
            e->str = strdup(types[i] == 'x' ? "7x" : types[i] == 'z' ? "007" : "7");
            e->len = strlen(e->str);
        }
        e->integer = 7;
        r->element[i] = e;
    }
    return r;
}

/* What cache_redis_cmd_read says of reply_of(types) over n generations. */
static enum cache_redis_cmd_read
read_of(const char *types, struct cache_redis_gen *gens, uint32_t n)
{
    redisReply *r = reply_of(types);
    uint64_t epoch = 0;
    enum cache_redis_cmd_read res = cache_redis_cmd_read(r, gens, n, &epoch);

    freeReplyObject(r);
    return res;
}

/* Counters are read only as INCR writes them. */
static void
test_parse_int(void)
{
    static const char *const good[] = {"0", "7", "-1", "9223372036854775807",
                                       "-9223372036854775808", "1000000000000000000",
                                       "12345678", "-87654321", "1234567890123456",
                                       "99999999", "4611686018427387904"};
    static const char *const bad[] = {"", "-", "007", "00", "-0", "-07", "+7", " 7", "7 ",
                                      "9223372036854775808", "-9223372036854775809",
                                      "99999999999999999999", "1e3", "1234567:", "1234/678",
                                      "12345678901234a6", "123456789012345678x",
                                      "1234567\xb0", "-1234567\xb9"};
    size_t n_good = 0;
    size_t n_bad = 0;
    size_t n_random = 0;
    uint64_t v = 0;
    uint64_t x = UINT64_C(0x9e3779b97f4a7c15);

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        n_good += cache_redis_cmd_parse_int(good[i], strlen(good[i]), &v) &&
                  (int64_t)v == strtoll(good[i], NULL, 10);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cache_redis_cmd_parse_int(bad[i], strlen(bad[i]), &v))
            diag("accepted \"%s\"", bad[i]);
        else
            n_bad++;
    }
    for (int i = 0; i < 10000; i++) {
        char text[24];

        x ^= x << 13; /* xorshift64: every length from 1 to 20 characters comes up */
        x ^= x >> 7;
        x ^= x << 17;
        snprintf(text, sizeof text, "%lld", (long long)((int64_t)x >> (i % 64)));
        n_random += cache_redis_cmd_parse_int(text, strlen(text), &v) &&
                    (int64_t)v == (int64_t)x >> (i % 64);
    }
    ok(n_random == 10000, "10,000 random integers of every length read back (%zu)", n_random);
    ok(n_good == sizeof good / sizeof good[0], "canonical integers are read exactly");
    ok(n_bad == sizeof bad / sizeof bad[0],
       "\"007\", \"-0\", \"+7\", spaces, overflow: refused (%zu of %zu)", n_bad,
       sizeof bad / sizeof bad[0]);
}

/* A value's sealed generations against the ones read: same set of names and values, any order. */
/* A value key's 32 digits are its key's halves in lowercase hex (each nibble, every value). */
static void
test_value_key_hex(void)
{
    struct cache_redis_keys keys;
    uint64_t x = UINT64_C(0x9e3779b97f4a7c15);
    int good = 0;
    int runs = 20000;

    cache_redis_keys_init(&keys, "P:");
    for (int i = 0; i < runs; i++) {
        struct cache_key key;
        char want[33];

        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        key.hi = x ^ (x >> 29);
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        key.lo = i < 16 ? UINT64_C(0x1111111111111111) * (uint64_t)i : x ^ (x >> 31);
        if (i == 16)
            key.hi = 0;
        bson_snprintf(want, sizeof want, "%016" PRIx64 "%016" PRIx64, key.hi, key.lo);
        cache_redis_keys_set_value(&keys, &key);
        good += keys.value_len == 4 + 32 && memcmp(keys.value, "P:v:", 4) == 0 &&
                memcmp(keys.value + 4, want, 32) == 0;
    }
    ok(good == runs, "a value key holds its key in lowercase hex (%d of %d keys)", good, runs);
    cache_redis_keys_cleanup(&keys);
}

static void
test_gens_match(void)
{
    struct cache_redis_blob b = {0};
    struct cache_redis_gen g[3] = {{"n:db.c", 6, 5}, {"d:db", 4, 9}, {"u:x", 3, 1}};
    struct cache_redis_gen swapped[3] = {{"d:db", 4, 9}, {"u:x", 3, 1}, {"n:db.c", 6, 5}};
    struct cache_redis_gen moved[3] = {{"n:db.c", 6, 5}, {"d:db", 4, 10}, {"u:x", 3, 1}};
    struct cache_redis_gen other[3] = {{"n:db.c", 6, 5}, {"d:dc", 4, 9}, {"u:x", 3, 1}};
    struct cache_redis_gen twice[3] = {{"n:db.c", 6, 5}, {"n:db.c", 6, 5}, {"u:x", 3, 1}};

    b.n_gens = 3;
    memcpy(b.gens, g, sizeof g);
    ok(cache_redis_cmd_gens_match(&b, g, 3), "generations in the same order match");
    ok(cache_redis_cmd_gens_match(&b, swapped, 3), "and in another order");
    ok(!cache_redis_cmd_gens_match(&b, moved, 3), "a generation that moved does not");
    ok(!cache_redis_cmd_gens_match(&b, other, 3), "nor another name");
    ok(!cache_redis_cmd_gens_match(&b, g, 2), "nor another count");
    ok(!cache_redis_cmd_gens_match(&b, twice, 3) && (memcpy(b.gens, twice, sizeof twice), 1) &&
           !cache_redis_cmd_gens_match(&b, g, 3),
       "a name twice on either side does not match three distinct names");
}

/* The fill: the value last, written in place into the command; EVAL keeps it whole. */
static void
test_fill_command(struct cache_redis_keys *keys, const struct cache_redis_gen *gens,
                  const char *sha) /* gens' values: 7, 0 */
{
    struct cache_redis_cmd cmd = {0};
    struct cache_redis_cmd eval = {0};
    struct cache_key key = {1, 2};
    static const char want_head[] = "*12\r\n$7\r\nEVALSHA\r\n$40\r\n";
    static const char want_tail[] =
        "$1\r\n4\r\n$36\r\nP:v:00000000000000010000000000000002\r\n$7\r\nP:epoch\r\n"
        "$10\r\nP:g:n:db.c\r\n$8\r\nP:g:d:db\r\n$4\r\n5000\r\n$2\r\n99\r\n$1\r\n7\r\n$1\r\n0\r\n"
        "$5\r\nVALUE\r\n";
    uint8_t *at;
    size_t head = sizeof want_head - 1 + 42;

    cache_redis_keys_set_value(keys, &key);
    at = cache_redis_cmd_fill(&cmd, keys, sha, 5, 5000, 99, gens, 2);
    memcpy(at, "VALUE", 5);
    ok(cmd.len == head + sizeof want_tail - 1 &&
           memcmp(cmd.buf, want_head, sizeof want_head - 1) == 0 &&
           memcmp(cmd.buf + head, want_tail, sizeof want_tail - 1) == 0 &&
           at == (uint8_t *)cmd.buf + cmd.len - 7 && cmd.tail == head && cmd.argc == 12,
       "a fill: keys, ttl, epoch, generations, then the value, written in place at the end");
    cache_redis_cmd_as_eval(&eval, CACHE_REDIS_SCRIPT_FILL, cmd.buf, cmd.len, cmd.tail, cmd.argc);
    ok(eval.len > sizeof want_tail &&
           memcmp(eval.buf + eval.len - (sizeof want_tail - 1), want_tail,
                  sizeof want_tail - 1) == 0,
       "NOSCRIPT: the fill as EVAL carries the same arguments");
    ok(strstr(cache_redis_cmd_script_text(CACHE_REDIS_SCRIPT_FILL), "ARGV[#ARGV]") != NULL,
       "the fill script stores its last argument");
    cache_redis_cmd_cleanup(&cmd);
    cache_redis_cmd_cleanup(&eval);
}

static void
test_commands(void)
{
    struct cache_redis_keys keys;
    struct cache_redis_cmd cmd = {0};
    struct cache_redis_cmd eval = {0};
    struct cache_redis_gen gens[2] = {{"n:db.c", 6, 0}, {"d:db", 4, 0}};
    struct cache_key key = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    static const char mget[] =
        "*5\r\n$4\r\nMGET\r\n$36\r\nP:v:0123456789abcdeffedcba9876543210\r\n$7\r\nP:epoch\r\n"
        "$10\r\nP:g:n:db.c\r\n$8\r\nP:g:d:db\r\n";
    static const char sha[41] = "0123456789012345678901234567890123456789";
    static const char *tail =
        "$1\r\n4\r\n$36\r\nP:v:0123456789abcdeffedcba9876543210\r\n$7\r\nP:epoch\r\n"
        "$10\r\nP:g:n:db.c\r\n$8\r\nP:g:d:db\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n";
    const char *text = cache_redis_cmd_script_text(CACHE_REDIS_SCRIPT_LOOKUP);
    uint64_t base = 0;
    uint64_t epoch = 0;
    char want[1024];
    redisReply *r;

    cache_redis_keys_init(&keys, "P:");
    cache_redis_cmd_mget(&cmd, &keys, &key, gens, 2);
    ok(cmd.len == sizeof mget - 1 && memcmp(cmd.buf, mget, cmd.len) == 0,
       "a read is one MGET of value, epoch and generations, encoded exactly");
    cache_redis_cmd_mget(&cmd, &keys, NULL, gens, 2);
    ok(cmd.len == sizeof mget - 1 && memmem(cmd.buf, cmd.len, "P:v:check", 9) != NULL,
       "a check reads a value key no value can have, in the same buffer");
    cache_redis_cmd_lookup(&cmd, &keys, sha, &key, gens, 2, counting_base, &base);
    bson_snprintf(want, sizeof want, "*10\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n%s", sha, tail);
    ok(cmd.len == strlen(want) && memcmp(cmd.buf, want, cmd.len) == 0 && base == 3,
       "the slow path: EVALSHA with the same keys and one base per counter");
    cache_redis_cmd_as_eval(&eval, CACHE_REDIS_SCRIPT_LOOKUP, cmd.buf, cmd.len, cmd.tail,
                            cmd.argc);
    bson_snprintf(want, sizeof want, "*10\r\n$4\r\nEVAL\r\n$%zu\r\n%s\r\n", strlen(text), text);
    ok(eval.len == strlen(want) + strlen(tail) && memcmp(eval.buf, want, strlen(want)) == 0 &&
           memcmp(eval.buf + strlen(want), tail, strlen(tail)) == 0,
       "NOSCRIPT: the same command as EVAL with the script's text");
    base = UINT64_C(0xffffffffffffffff) - 1; /* the next one is -1 as Redis writes it */
    cache_redis_cmd_epoch(&cmd, &keys, sha, "0123456789abcdef", counting_base(&base));
    ok(memmem(cmd.buf, cmd.len, "$2\r\n-1\r\n", 8) != NULL &&
           memmem(cmd.buf, cmd.len, "$19\r\n@0123456789abcdef\n*\r\n", 26) != NULL,
       "numbers are written as signed 64-bit decimals; the epoch bump publishes '*'");
    gens[1].name = "d:\nx";
    cache_redis_cmd_bump(&cmd, &keys, NULL, "0123456789abcdef", gens, 2, counting_base, &base);
    ok(memmem(cmd.buf, cmd.len, "$26\r\n@0123456789abcdef\nn:db.c\n*\r\n", 33) != NULL,
       "a bump publishes its names; one holding a newline travels as '*'");
    gens[1].name = "d:db";

    r = reply_of("nss");
    ok(cache_redis_cmd_shape_ok(CACHE_REDIS_CMD_MGET, 1, r) &&
           !cache_redis_cmd_shape_ok(CACHE_REDIS_CMD_MGET, 2, r),
       "MGET: an array of exactly 2 + n elements");
    ok(cache_redis_cmd_read(r, gens, 1, &epoch) == CACHE_REDIS_CMD_READ_OK && epoch == 7 &&
           gens[0].value == 7,
       "MGET: the epoch and the generations read");
    freeReplyObject(r);
    r = reply_of("nns");
    ok(cache_redis_cmd_shape_ok(CACHE_REDIS_CMD_MGET, 1, r) &&
           !cache_redis_cmd_shape_ok(CACHE_REDIS_CMD_LOOKUP, 1, r) &&
           cache_redis_cmd_read(r, gens, 1, &epoch) == CACHE_REDIS_CMD_READ_MISSING,
       "a nil counter: MGET may, the script may not; it takes the slow path");
    freeReplyObject(r);
    ok(read_of("nsx", gens, 1) == CACHE_REDIS_CMD_READ_MALFORMED,
       "a counter that is not an integer is malformed");
    ok(read_of("nsz", gens, 1) == CACHE_REDIS_CMD_READ_MALFORMED,
       "a counter stored as \"007\" is malformed (the fill script compares strings)");
    ok(read_of("nzsn", gens, 2) == CACHE_REDIS_CMD_READ_MISSING,
       "a missing counter after a malformed one still takes the slow path");
    r = reply_of("nsi");
    ok(!cache_redis_cmd_shape_ok(CACHE_REDIS_CMD_MGET, 1, r), "MGET: an integer element is refused");
    freeReplyObject(r);
    r = reply_of("ass");
    ok(!cache_redis_cmd_shape_ok(CACHE_REDIS_CMD_MGET, 1, r),
       "MGET: an array in place of the value is refused");
    freeReplyObject(r);
    test_fill_command(&keys, gens, sha);
    cache_redis_cmd_cleanup(&cmd);
    cache_redis_cmd_cleanup(&eval);
    cache_redis_keys_cleanup(&keys);
}

/* The read batch's MGET (cache/redis.c): values first, then the epoch and each name once. */
static void
test_read_batch(void)
{
    struct cache_redis_keys keys;
    struct cache_redis_cmd one = {0};
    struct cache_redis_cmd many = {0};
    struct cache_redis_gen gens[2] = {{"n:db.c", 6, 0}, {"d:db", 4, 0}};
    struct cache_key k1 = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    struct cache_key k2 = {1, 2};
    char h1[32], h2[32], hc[32];
    const char *hex[3] = {h1, h2, hc};
    static const char want[] =
        "*7\r\n$4\r\nMGET\r\n$36\r\nP:v:0123456789abcdeffedcba9876543210\r\n"
        "$36\r\nP:v:00000000000000010000000000000002\r\n$36\r\nP:v:check---------------------------"
        "\r\n$7\r\nP:epoch\r\n$10\r\nP:g:n:db.c\r\n$8\r\nP:g:d:db\r\n";
    redisReply error = {.type = REDIS_REPLY_ERROR};
    redisReply *r;

    cache_redis_keys_init(&keys, "P:");
    cache_redis_keys_hex(h1, &k1);
    cache_redis_keys_hex(h2, &k2);
    cache_redis_keys_hex(hc, NULL);
    cache_redis_cmd_mget_batch(&many, &keys, hex, 3, gens, 2);
    ok(many.len == sizeof want - 1 && memcmp(many.buf, want, many.len) == 0,
       "a batch of three reads (one a check) is one MGET: the values, the epoch, each name "
       "once, encoded exactly");
    cache_redis_cmd_mget(&one, &keys, &k1, gens, 2);
    cache_redis_cmd_mget_batch(&many, &keys, hex, 1, gens, 2);
    ok(many.len == one.len && memcmp(many.buf, one.buf, one.len) == 0,
       "a batch of one is the read's own MGET, byte for byte");
    r = reply_of("snssn");
    ok(cache_redis_cmd_batch_shape_ok(2, 2, r), "batch: values, epoch and counters, nil or not");
    ok(!cache_redis_cmd_batch_shape_ok(2, 1, r) && !cache_redis_cmd_batch_shape_ok(3, 2, r),
       "batch: one element more or fewer than keys asked is refused");
    freeReplyObject(r);
    r = reply_of("ssiss");
    ok(!cache_redis_cmd_batch_shape_ok(2, 2, r), "batch: an integer element is refused");
    freeReplyObject(r);
    r = reply_of("sasss");
    ok(!cache_redis_cmd_batch_shape_ok(2, 2, r), "batch: an array element is refused");
    freeReplyObject(r);
    r = reply_of("pps");
    ok(cache_redis_cmd_batch_shape_ok(2, 0, r), "batch: a spilled value is one the reader let go");
    freeReplyObject(r);
    r = reply_of("spsp");
    ok(!cache_redis_cmd_batch_shape_ok(1, 2, r) && !cache_redis_cmd_batch_shape_ok(3, 0, r),
       "batch: a spilled epoch or counter is refused");
    freeReplyObject(r);
    r = reply_of("pss");
    ok(!cache_redis_cmd_shape_ok(CACHE_REDIS_CMD_MGET, 1, r),
       "a read's own MGET never has a spilled value");
    freeReplyObject(r);
    ok(cache_redis_cmd_batch_shape_ok(2, 2, &error),
       "batch: an error answers it (each read gets the error)");
    cache_redis_cmd_cleanup(&one);
    cache_redis_cmd_cleanup(&many);
    cache_redis_keys_cleanup(&keys);
}

int
main(void)
{
    struct cache_redis_mac *mac = mac_new("the cache_key_secret of the unit tests");

    if (!mac)
        return 1;
    test_round_trip(mac);
    test_encode_limits(mac);
    test_hostile(mac);
    test_mac(mac);
    test_siphash();
    test_old_format("the cache_key_secret of the unit tests", mac);
    test_fuzz(mac);
    test_url_good();
    test_url_tls();
    test_url_sentinel();
    test_tls();
    test_url_bad();
    test_redact();
    test_resp();
    test_resp_spill();
    test_pushes();
    test_push_names();
    test_resp_random();
    test_commands();
    test_read_batch();
    test_parse_int();
    test_gens_match();
    test_value_key_hex();
    cache_redis_mac_destroy(mac);
    return done_testing();
}
