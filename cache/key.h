/*
 * cache/key.h: a read's cache key. The key material is the principal, the
 * database, the collection, and the command document exactly as sent, in
 * its field order (sort order matters), minus the per-request fields that
 * do not change the answer (lsid, $clusterTime, txnNumber, $db, comment,
 * maxTimeMS) when their values are ones a server accepts. The key is XXH3-128 of that material, keyed by a per-
 * deployment secret so that keys cannot be predicted from outside. Entries
 * keep the whole material and compare it on every hit, so two commands whose
 * hashes collide never share an answer.
 */
#ifndef MONGOCACHE_CACHE_KEY_H
#define MONGOCACHE_CACHE_KEY_H

#include "wire/cmd.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_key {
    uint64_t hi;
    uint64_t lo;
};

/* XXH3 secret derived from the configured cache_key_secret. */
#define CACHE_KEY_SECRET_SIZE 192
struct cache_key_secret {
    uint8_t bytes[CACHE_KEY_SECRET_SIZE];
};

/* Derives the hashing secret from text (any length, may be empty). */
void cache_key_secret_init(struct cache_key_secret *secret, const char *text);

/*
 * The principal as the cache names it: one string per (user, database)
 * pair that no other pair gives, for the key material, the "u:" generation
 * record and the owner of a proxy cursor. The user's length comes first
 * ("5:alice@admin"), so an '@' in either part cannot make two pairs meet:
 * user "a@b" on "c" is "3:a@b@c", user "a" on "b@c" is "1:a@b@c".
 * Returns a string freed with bson_free.
 */
char *cache_key_principal(const char *user, size_t user_len, const char *db, size_t db_len);

/* Key material under construction: a growable byte string. */
struct cache_key_material {
    uint8_t *data; /* bson_malloc'd; freed with cache_key_material_cleanup */
    size_t len;
    size_t cap;
};

void cache_key_material_cleanup(struct cache_key_material *material);

/*
 * Builds the material for a read by principal ("" when unauthenticated) on
 * db.coll with the checked command body, into material (reset first), and
 * hashes it into key. cmd is body as wire_cmd_parse read it (its located
 * elements spare a walk), or NULL. Each part is length-prefixed, so no two different
 * inputs give the same material.
 */
void cache_key_build(const struct cache_key_secret *secret, const char *principal, const char *db,
                     const char *coll, uint32_t coll_len, const bson_t *body,
                     const struct wire_cmd *cmd, struct cache_key_material *material,
                     struct cache_key *key);

/* True when a and b are the same key. */
static inline bool
cache_key_equal(const struct cache_key *a, const struct cache_key *b)
{
    return a->hi == b->hi && a->lo == b->lo;
}

/* Number of significant bits: 128, or 8 in a --enable-tiny-keys test build. */
unsigned cache_key_bits(void);

#endif
