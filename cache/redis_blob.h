/*
 * cache/redis_blob.h: the value the Redis tier (cache/redis.h) stores under
 * P v:<key>: the reply, the key material it answers, and the generations
 * and epoch it was filled under, sealed by a MAC (cache/redis_mac.h) over
 * all of it and the Redis key. Exposed on its own for the unit tests.
 */
#ifndef MONGOCACHE_CACHE_REDIS_BLOB_H
#define MONGOCACHE_CACHE_REDIS_BLOB_H

#include "cache/redis.h"
#include "cache/redis_mac.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest reply (WIRE_MAX_MESSAGE_LEN) and key material in a value. */
#define CACHE_REDIS_MAX_REPLY 48000000
#define CACHE_REDIS_MAX_MATERIAL 48000000
/* Largest encoded value: header, generations, material, reply, MAC. */
#define CACHE_REDIS_MAX_BLOB                                                                    \
    ((size_t)32 + (size_t)CACHE_REDIS_MAX_GENS * (12 + CACHE_REDIS_MAX_NAME) +                  \
     (size_t)CACHE_REDIS_MAX_MATERIAL + (size_t)CACHE_REDIS_MAX_REPLY + CACHE_REDIS_MAC_LEN)
/* BSON depth the reply in a value is re-checked with. */
#define CACHE_REDIS_MAX_DEPTH 200

/*
 * A stored value. Encoded little-endian, exactly this and nothing after:
 *   "MCV4"  epoch:u64  expires:u64  n_gens:u32 (<= CACHE_REDIS_MAX_GENS)
 *   n_gens x { name_len:u32 (1..CACHE_REDIS_MAX_NAME)  name  value:u64 }
 *   material_len:u32  material  reply_len:u32  reply (a whole OP_MSG)
 *   mac: 16 bytes, cache_redis_mac_compute(Redis key, every byte before it)
 * expires is when the value stops being served, in milliseconds since the
 * Unix epoch by the filling proxy's clock (its fill time plus its TTL):
 * sealed, so that a value kept past its TTL in Redis (PERSIST, or set
 * again) is refused, and a copy kept in process lives no longer.
 * A decoded blob points into the bytes it was decoded from. Every other
 * version is refused (CACHE_REDIS_BLOB_MALFORMED: a miss, counted as
 * redis_corrupt): "MCV1" (no MAC), "MCV2" (sealed with a 32-byte
 * HMAC-SHA-256), "MCV3" (no expiry), so proxies of different versions
 * sharing a Redis never accept each other's values, whatever their MACs.
 */
struct cache_redis_blob {
    uint64_t epoch;
    uint64_t expires_ms;
    uint32_t n_gens;
    struct cache_redis_gen gens[CACHE_REDIS_MAX_GENS];
    const uint8_t *material;
    size_t material_len;
    const uint8_t *reply;
    size_t reply_len;
};

/* bson_error_t codes of a refused value (domain CACHE_REDIS_ERROR_DOMAIN). */
enum cache_redis_blob_error {
    CACHE_REDIS_BLOB_MALFORMED = 1, /* another version, or not a value at all */
    CACHE_REDIS_BLOB_BAD_MAC = 2,   /* forged, altered, moved, or another secret's */
};

/* The encoded size of blob, or 0 when a count or size is beyond the limits above. */
size_t cache_redis_blob_size(const struct cache_redis_blob *blob);

/*
 * Writes blob, sealed with its MAC for the Redis key rkey (rkey_len bytes),
 * into out: exactly size bytes, size from cache_redis_blob_size (blob is not
 * checked as a wire message here).
 */
void cache_redis_blob_write(const struct cache_redis_blob *blob, const struct cache_redis_mac *mac,
                            const char *rkey, size_t rkey_len, uint8_t *out, size_t size);

/*
 * cache_redis_blob_write into a new buffer, freed with bson_free, its length
 * in *len; NULL when cache_redis_blob_size refuses blob.
 */
uint8_t *cache_redis_blob_encode(const struct cache_redis_blob *blob,
                                 const struct cache_redis_mac *mac, const char *rkey,
                                 size_t rkey_len, size_t *len);

/*
 * Decodes data (untrusted) read from the Redis key rkey: the version, then
 * the MAC (before anything else is read), then every length bounds-checked,
 * nothing left over, the reply checked with wire_msg_parse (OP_MSG, depth
 * CACHE_REDIS_MAX_DEPTH). blob points into data. Returns false with error
 * set on any fault; error->code is a cache_redis_blob_error.
 */
bool cache_redis_blob_decode(const uint8_t *data, size_t len, const struct cache_redis_mac *mac,
                             const char *rkey, size_t rkey_len, struct cache_redis_blob *blob,
                             bson_error_t *error) __attribute__((warn_unused_result));

#endif
