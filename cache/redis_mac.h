/*
 * cache/redis_mac.h: the MAC that makes a value stored in Redis (cache/
 * redis_blob.h) authentic: SipHash-2-4 with a 128-bit tag, keyed by a
 * 128-bit key derived from cache_key_secret, over the Redis key the value
 * is stored under and every byte of the value. Whoever can write to Redis
 * but does not know the secret can delete values, never forge one, alter
 * one, or move one to another key. Every proxy sharing a Redis must have
 * the same secret.
 *
 * Why SipHash is enough. The MAC only has to stop forgery by someone who
 * can write to Redis and read what the proxies store there, but does not
 * know the key: no secrecy, no collision resistance against the key's
 * holder. SipHash is a keyed pseudo-random function designed for this
 * (fast MACs of short inputs under a 128-bit key; its 128-bit-output
 * variant, used here, is the less studied one). If it behaves as designed,
 * a forged, altered or moved value passes only if its
 * 128-bit tag is guessed: probability 2^-128 per try, and each try costs the
 * forger one read by a proxy, refused and counted (redis_values_refused_mac).
 * Recovering the key is a search of 2^128. HMAC-SHA-256, used before, gave
 * the same guarantee with a fixed cost per value (OpenSSL's EVP calls, ~0.2
 * us) and, without SHA extensions, several times the cost per byte; with
 * them the two are close per byte (bench/README.md, "The value MAC").
 */
#ifndef MONGOCACHE_CACHE_REDIS_MAC_H
#define MONGOCACHE_CACHE_REDIS_MAC_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_REDIS_MAC_LEN 16
#define CACHE_REDIS_MAC_KEY_LEN 16

/*
 * What the MAC key is derived with: the first 16 bytes of
 * HMAC-SHA-256(secret, label), never the secret itself (which also keys the
 * cache hash, cache/key.c). A new label for a new MAC: no key is shared
 * between the old HMAC and SipHash.
 */
#define CACHE_REDIS_MAC_LABEL "mongocache value MAC v3 SipHash-2-4-128"

struct cache_redis_mac;

/*
 * Derives the value key from secret (len bytes, not empty; only read during
 * the call). Returns NULL with error set when secret is empty or OpenSSL
 * cannot derive the key. Free with cache_redis_mac_destroy.
 */
struct cache_redis_mac *cache_redis_mac_new(const void *secret, size_t len, bson_error_t *error);
void cache_redis_mac_destroy(struct cache_redis_mac *mac);

/*
 * tag = SipHash-2-4-128(key, name_len (u32, little-endian) || name || data):
 * name is the Redis key the value is stored under (name_len < 2^32).
 */
void cache_redis_mac_compute(const struct cache_redis_mac *mac, const void *name,
                             size_t name_len, const void *data, size_t len,
                             uint8_t tag[CACHE_REDIS_MAC_LEN]);

/* True when tag is data's MAC under name; compared in constant time. */
bool cache_redis_mac_verify(const struct cache_redis_mac *mac, const void *name, size_t name_len,
                            const void *data, size_t len, const uint8_t tag[CACHE_REDIS_MAC_LEN])
    __attribute__((warn_unused_result));

#endif
