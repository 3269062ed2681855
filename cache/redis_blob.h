/*
 * cache/redis_blob.h: the value the Redis tier (cache/redis.h) stores under
 * P v:<key>: the reply, the key material it answers, and the generations
 * and epoch it was filled under. Exposed on its own for the unit tests.
 */
#ifndef MONGOCACHE_CACHE_REDIS_BLOB_H
#define MONGOCACHE_CACHE_REDIS_BLOB_H

#include "cache/redis.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest reply (WIRE_MAX_MESSAGE_LEN) and key material in a value. */
#define CACHE_REDIS_MAX_REPLY 48000000
#define CACHE_REDIS_MAX_MATERIAL 48000000
/* Largest encoded value: header, generations, material, reply. */
#define CACHE_REDIS_MAX_BLOB                                                                    \
    ((size_t)24 + (size_t)CACHE_REDIS_MAX_GENS * (12 + CACHE_REDIS_MAX_NAME) +                  \
     (size_t)CACHE_REDIS_MAX_MATERIAL + (size_t)CACHE_REDIS_MAX_REPLY)
/* BSON depth the reply in a value is re-checked with. */
#define CACHE_REDIS_MAX_DEPTH 200

/*
 * A stored value. Encoded little-endian, exactly this and nothing after:
 *   "MCV1"  epoch:u64  n_gens:u32 (<= CACHE_REDIS_MAX_GENS)
 *   n_gens x { name_len:u32 (1..CACHE_REDIS_MAX_NAME)  name  value:u64 }
 *   material_len:u32  material  reply_len:u32  reply (a whole OP_MSG)
 * A decoded blob points into the bytes it was decoded from.
 */
struct cache_redis_blob {
    uint64_t epoch;
    uint32_t n_gens;
    struct cache_redis_gen gens[CACHE_REDIS_MAX_GENS];
    const uint8_t *material;
    size_t material_len;
    const uint8_t *reply;
    size_t reply_len;
};

/*
 * Encodes blob (it is not checked as a wire message here). Returns a buffer
 * freed with bson_free and its length in *len, or NULL when a count or size
 * is beyond the limits above.
 */
uint8_t *cache_redis_blob_encode(const struct cache_redis_blob *blob, size_t *len);

/*
 * Decodes data (untrusted): every length bounds-checked, nothing left over,
 * the reply checked with wire_msg_parse (OP_MSG, depth CACHE_REDIS_MAX_DEPTH).
 * blob points into data. Returns false with error set on any fault.
 */
bool cache_redis_blob_decode(const uint8_t *data, size_t len, struct cache_redis_blob *blob,
                             bson_error_t *error) __attribute__((warn_unused_result));

#endif
