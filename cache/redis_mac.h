/*
 * cache/redis_mac.h: the MAC that makes a value stored in Redis (cache/
 * redis_blob.h) authentic: HMAC-SHA-256 (OpenSSL), keyed by a key derived
 * from cache_key_secret, over the Redis key the value is stored under and
 * every byte of the value. Whoever can write to Redis but does not know the
 * secret can delete values, never forge one, alter one, or move one to
 * another key. Every proxy sharing a Redis must have the same secret.
 */
#ifndef MONGOCACHE_CACHE_REDIS_MAC_H
#define MONGOCACHE_CACHE_REDIS_MAC_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_REDIS_MAC_LEN 32

/* What the MAC key is derived with: HMAC-SHA-256(secret, label). */
#define CACHE_REDIS_MAC_LABEL "mongocache value MAC v2"

struct cache_redis_mac;

/*
 * Derives the value key from secret (len bytes, not empty; only read during
 * the call) and keeps an HMAC-SHA-256 context keyed with it. Returns NULL
 * with error set when secret is empty or OpenSSL fails. Free with
 * cache_redis_mac_destroy. One thread at a time.
 */
struct cache_redis_mac *cache_redis_mac_new(const void *secret, size_t len, bson_error_t *error);
void cache_redis_mac_destroy(struct cache_redis_mac *mac);

/*
 * tag = HMAC-SHA-256(key, name_len (u32, little-endian) || name || data):
 * name is the Redis key the value is stored under. False when OpenSSL fails
 * (tag is then zeroed).
 */
bool cache_redis_mac_compute(struct cache_redis_mac *mac, const void *name, size_t name_len,
                             const void *data, size_t len, uint8_t tag[CACHE_REDIS_MAC_LEN])
    __attribute__((warn_unused_result));

/* True when tag is data's MAC under name; compared in constant time. */
bool cache_redis_mac_verify(struct cache_redis_mac *mac, const void *name, size_t name_len,
                            const void *data, size_t len, const uint8_t tag[CACHE_REDIS_MAC_LEN])
    __attribute__((warn_unused_result));

#endif
