/*
 * cache/redis_mac.c: the value MAC (see redis_mac.h): deriving its key from
 * cache_key_secret (HMAC-SHA-256 with OpenSSL, once, at start-up) and
 * SipHash-2-4 with a 128-bit output, written here: a MAC is a few
 * instructions per byte and no call into a library, no context to reset.
 * The input (the name's length, the name, the value) is absorbed in three
 * parts without being copied together. It does not own the value's layout
 * (redis_blob.c) nor the secret's origin (conf, cache.c): the same secret
 * also keys the cache hash (key.c), but never as the same key, since the
 * MAC key is derived from it with its own label.
 */
#include "config.h"

#include "cache/redis_mac.h"

#include "cache/redis.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

struct cache_redis_mac {
    uint64_t k0;
    uint64_t k1;
};

/* ---- SipHash-2-4, 128-bit output ------------------------------------------------------- */

struct sip {
    uint64_t v0, v1, v2, v3;
    uint64_t tail;  /* the last 0..7 bytes not yet absorbed, little-endian */
    size_t n_tail;  /* how many */
    uint64_t total; /* bytes absorbed so far (mod 2^64; only its low byte is used) */
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* One SipRound on four local words (locals: the input bytes cannot alias them). */
#define SIPROUND(v0, v1, v2, v3)                                                                \
    do {                                                                                        \
        v0 += v1;                                                                               \
        v1 = ROTL(v1, 13);                                                                      \
        v1 ^= v0;                                                                               \
        v0 = ROTL(v0, 32);                                                                      \
        v2 += v3;                                                                               \
        v3 = ROTL(v3, 16);                                                                      \
        v3 ^= v2;                                                                               \
        v0 += v3;                                                                               \
        v3 = ROTL(v3, 21);                                                                      \
        v3 ^= v0;                                                                               \
        v2 += v1;                                                                               \
        v1 = ROTL(v1, 17);                                                                      \
        v1 ^= v2;                                                                               \
        v2 = ROTL(v2, 32);                                                                      \
    } while (0)

static inline void
sip_round(struct sip *s)
{
    SIPROUND(s->v0, s->v1, s->v2, s->v3);
}

static inline void
sip_block(struct sip *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

static inline uint64_t
load_le64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
#endif
}

static void
sip_init(struct sip *s, uint64_t k0, uint64_t k1)
{
    s->v0 = k0 ^ UINT64_C(0x736f6d6570736575);
    s->v1 = k1 ^ UINT64_C(0x646f72616e646f6d) ^ 0xee; /* 0xee: the 128-bit output */
    s->v2 = k0 ^ UINT64_C(0x6c7967656e657261);
    s->v3 = k1 ^ UINT64_C(0x7465646279746573);
    s->tail = 0;
    s->n_tail = 0;
    s->total = 0;
}

static void
sip_absorb(struct sip *s, const uint8_t *p, size_t len)
{
    s->total += len;
    /* Fill a pending partial word first. */
    while (s->n_tail > 0 && len > 0) {
        s->tail |= (uint64_t)*p++ << (8 * s->n_tail);
        len--;
        if (++s->n_tail == 8) {
            sip_block(s, s->tail);
            s->tail = 0;
            s->n_tail = 0;
        }
    }
    if (s->n_tail > 0) /* len ran out first */
        return;
    if (len >= 8) {
        uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;

        for (; len >= 8; p += 8, len -= 8) {
            uint64_t m = load_le64(p);

            v3 ^= m;
            SIPROUND(v0, v1, v2, v3);
            SIPROUND(v0, v1, v2, v3);
            v0 ^= m;
        }
        s->v0 = v0;
        s->v1 = v1;
        s->v2 = v2;
        s->v3 = v3;
    }
    for (size_t i = 0; i < len; i++)
        s->tail |= (uint64_t)p[i] << (8 * i);
    s->n_tail = len;
}

static void
put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
sip_final(struct sip *s, uint8_t out[16])
{
    uint64_t b = s->total << 56 | s->tail;

    sip_block(s, b);
    s->v2 ^= 0xee;
    for (int i = 0; i < 4; i++)
        sip_round(s);
    put_le64(out, s->v0 ^ s->v1 ^ s->v2 ^ s->v3);
    s->v1 ^= 0xdd;
    for (int i = 0; i < 4; i++)
        sip_round(s);
    put_le64(out + 8, s->v0 ^ s->v1 ^ s->v2 ^ s->v3);
}

void
cache_redis_mac_siphash(const uint8_t key[CACHE_REDIS_MAC_KEY_LEN], const void *data, size_t len,
                        uint8_t out[CACHE_REDIS_MAC_LEN])
{
    struct sip s;

    sip_init(&s, load_le64(key), load_le64(key + 8));
    sip_absorb(&s, data, len);
    sip_final(&s, out);
}

/* ---- the value MAC ------------------------------------------------------------------------ */

struct cache_redis_mac *
cache_redis_mac_new(const void *secret, size_t len, bson_error_t *error)
{
    struct cache_redis_mac *mac;
    uint8_t key[32];
    size_t key_len = 0;
    char detail[128];

    if (!secret || len == 0) {
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_MAC_SECRET,
                       "value MAC: no secret");
        return NULL;
    }
    /* The value key: HMAC-SHA-256(secret, label), its first 16 bytes. */
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, len,
                   (const unsigned char *)CACHE_REDIS_MAC_LABEL, strlen(CACHE_REDIS_MAC_LABEL),
                   key, sizeof key, &key_len) ||
        key_len != sizeof key) {
        ERR_error_string_n(ERR_get_error(), detail, sizeof detail);
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_MAC,
                       "value MAC: cannot derive the key (%s)", detail);
        OPENSSL_cleanse(key, sizeof key);
        return NULL;
    }
    mac = bson_malloc(sizeof *mac);
    mac->k0 = load_le64(key);
    mac->k1 = load_le64(key + 8);
    OPENSSL_cleanse(key, sizeof key);
    return mac;
}

void
cache_redis_mac_destroy(struct cache_redis_mac *mac)
{
    if (!mac)
        return;
    OPENSSL_cleanse(mac, sizeof *mac);
    bson_free(mac);
}

void
cache_redis_mac_compute(const struct cache_redis_mac *mac, const void *name, size_t name_len,
                        const void *data, size_t len, uint8_t tag[CACHE_REDIS_MAC_LEN])
{
    uint8_t prefix[4] = {(uint8_t)name_len, (uint8_t)(name_len >> 8), (uint8_t)(name_len >> 16),
                         (uint8_t)(name_len >> 24)};
    struct sip s;

    BSON_ASSERT(name_len <= UINT32_MAX);
    sip_init(&s, mac->k0, mac->k1);
    sip_absorb(&s, prefix, sizeof prefix);
    sip_absorb(&s, name, name_len);
    sip_absorb(&s, data, len);
    sip_final(&s, tag);
}

bool
cache_redis_mac_verify(const struct cache_redis_mac *mac, const void *name, size_t name_len,
                       const void *data, size_t len, const uint8_t tag[CACHE_REDIS_MAC_LEN])
{
    uint8_t want[CACHE_REDIS_MAC_LEN];

    cache_redis_mac_compute(mac, name, name_len, data, len, want);
    return CRYPTO_memcmp(want, tag, CACHE_REDIS_MAC_LEN) == 0;
}
