/*
 * cache/redis_mac.c: the value MAC (see redis_mac.h): deriving its key from
 * cache_key_secret, and HMAC-SHA-256 with OpenSSL's EVP_MAC. The key is set
 * once; each MAC re-initialises the context with it (EVP_MAC_init with a
 * NULL key reuses the key's precomputed state), so a MAC costs the hashing
 * of its input and little else. It does not own the value's layout
 * (redis_blob.c) nor the secret's origin (conf, cache.c): the same secret
 * also keys the cache hash (key.c), but never as the same key, since the
 * MAC key is derived from it with its own label.
 */
#include "config.h"

#include "cache/redis_mac.h"

#include "cache/redis.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>

struct cache_redis_mac {
    EVP_MAC *alg;
    EVP_MAC_CTX *ctx; /* keyed with the value key */
};

static struct cache_redis_mac *
mac_fail(struct cache_redis_mac *mac, bson_error_t *error, const char *what)
{
    char detail[128];

    ERR_error_string_n(ERR_get_error(), detail, sizeof detail);
    bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_MAC, "value MAC: %s (%s)", what,
                   detail);
    cache_redis_mac_destroy(mac);
    return NULL;
}

struct cache_redis_mac *
cache_redis_mac_new(const void *secret, size_t len, bson_error_t *error)
{
    struct cache_redis_mac *mac;
    uint8_t key[CACHE_REDIS_MAC_LEN];
    size_t key_len = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    bool ok;

    if (!secret || len == 0) {
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_MAC_SECRET,
                       "value MAC: no secret");
        return NULL;
    }
    mac = bson_malloc0(sizeof *mac);
    if (!(mac->alg = EVP_MAC_fetch(NULL, "HMAC", NULL)) || !(mac->ctx = EVP_MAC_CTX_new(mac->alg)))
        return mac_fail(mac, error, "HMAC unavailable");
    /* The value key: HMAC-SHA-256(secret, label), never the secret itself. */
    ok = EVP_MAC_init(mac->ctx, secret, len, params) &&
         EVP_MAC_update(mac->ctx, (const unsigned char *)CACHE_REDIS_MAC_LABEL,
                        strlen(CACHE_REDIS_MAC_LABEL)) &&
         EVP_MAC_final(mac->ctx, key, &key_len, sizeof key) && key_len == sizeof key &&
         EVP_MAC_init(mac->ctx, key, sizeof key, params);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok)
        return mac_fail(mac, error, "cannot derive the key");
    return mac;
}

void
cache_redis_mac_destroy(struct cache_redis_mac *mac)
{
    if (!mac)
        return;
    EVP_MAC_CTX_free(mac->ctx); /* cleanses the key */
    EVP_MAC_free(mac->alg);
    bson_free(mac);
}

bool
cache_redis_mac_compute(struct cache_redis_mac *mac, const void *name, size_t name_len,
                        const void *data, size_t len, uint8_t tag[CACHE_REDIS_MAC_LEN])
{
    uint8_t prefix[4] = {(uint8_t)name_len, (uint8_t)(name_len >> 8), (uint8_t)(name_len >> 16),
                         (uint8_t)(name_len >> 24)};
    size_t out = 0;

    if (name_len <= UINT32_MAX && EVP_MAC_init(mac->ctx, NULL, 0, NULL) &&
        EVP_MAC_update(mac->ctx, prefix, sizeof prefix) &&
        EVP_MAC_update(mac->ctx, name, name_len) && EVP_MAC_update(mac->ctx, data, len) &&
        EVP_MAC_final(mac->ctx, tag, &out, CACHE_REDIS_MAC_LEN) && out == CACHE_REDIS_MAC_LEN)
        return true;
    ERR_clear_error();
    memset(tag, 0, CACHE_REDIS_MAC_LEN);
    return false;
}

bool
cache_redis_mac_verify(struct cache_redis_mac *mac, const void *name, size_t name_len,
                       const void *data, size_t len, const uint8_t tag[CACHE_REDIS_MAC_LEN])
{
    uint8_t want[CACHE_REDIS_MAC_LEN];
    bool ok = cache_redis_mac_compute(mac, name, name_len, data, len, want) &&
              CRYPTO_memcmp(want, tag, CACHE_REDIS_MAC_LEN) == 0;

    OPENSSL_cleanse(want, sizeof want);
    return ok;
}
