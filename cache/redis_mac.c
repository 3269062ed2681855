/*
 * cache/redis_mac.c: the value MAC (see redis_mac.h): deriving its key from
 * cache_key_secret (HMAC-SHA-256 with OpenSSL, once, at start-up) and
 * SipHash-2-4 with a 128-bit output (cache/siphash.c, the tree's one
 * SipHash): a MAC is a few instructions per byte and no call into a
 * library, no context to reset.
 * The input (the name's length, the name, the value) is absorbed in three
 * parts without being copied together. It does not own the value's layout
 * (redis_blob.c) nor the secret's origin (conf, cache.c): the same secret
 * also keys the cache hash (key.c), but never as the same key, since the
 * MAC key is derived from it with its own label.
 */
#include "config.h"

#include "cache/redis_mac.h"

#include "cache/redis.h"
#include "cache/siphash.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

struct cache_redis_mac {
    struct cache_siphash_key key;
};

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
    mac->key.k0 = cache_siphash_le64(key);
    mac->key.k1 = cache_siphash_le64(key + 8);
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
    struct cache_siphash s;

    BSON_ASSERT(name_len <= UINT32_MAX);
    cache_siphash_init(&s, &mac->key, true);
    cache_siphash_absorb(&s, prefix, sizeof prefix);
    cache_siphash_absorb(&s, name, name_len);
    cache_siphash_absorb(&s, data, len);
    cache_siphash_final128(&s, tag);
}

bool
cache_redis_mac_verify(const struct cache_redis_mac *mac, const void *name, size_t name_len,
                       const void *data, size_t len, const uint8_t tag[CACHE_REDIS_MAC_LEN])
{
    uint8_t want[CACHE_REDIS_MAC_LEN];

    cache_redis_mac_compute(mac, name, name_len, data, len, want);
    return CRYPTO_memcmp(want, tag, CACHE_REDIS_MAC_LEN) == 0;
}
