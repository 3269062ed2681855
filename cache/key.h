/*
 * cache/key.h: a read's cache key. The key material is the principal, the
 * database, the collection, and the command document exactly as sent, in
 * its field order (sort order matters), minus the per-request fields that
 * do not change the answer (lsid, $clusterTime, txnNumber, $db, comment,
 * maxTimeMS) when their values are ones a server accepts.
 *
 * Two numbers stand for the material: the key, XXH3-128 of it with an
 * XXH3 secret made from cache_key_secret (configured per deployment, else
 * random per process), which indexes the cache; and the digest,
 * SipHash-2-4 of it (cache/siphash.h) under a 128-bit key derived from the
 * same secret text by another function. An in-process entry keeps both,
 * not the material, and a hit needs both to be equal. XXH3 is fast but not
 * a keyed pseudorandom function (its secret is no proof against someone
 * who studies its structure); SipHash is one. So two different commands
 * share an answer only if:
 *  - by chance: their keys meet (one pair in 2^128; among 10^9 live
 *    entries the chance that any two keys meet is below 10^-20) and their
 *    digests meet too (another 2^-64);
 *  - on purpose: whoever chose the commands must also make their SipHash
 *    digests meet without knowing the key, which is no easier than chance:
 *    about one pair in 2^64 per attempt, and an attempt is one command sent
 *    and one reply looked at. Knowing the secret text (or the process's
 *    memory) gives both keys away, and with them this argument.
 * Not "never", then, but a probability that an attacker without the secret
 * cannot raise.
 * A key collision whose digest differs is counted (collisions) and served
 * from upstream; a tiny-key test build (cache_key_bits) makes key
 * collisions happen all the time to show exactly that. A hit feeds both
 * hashes as it reads the body (gathered on the stack, no material on the
 * heap); a miss builds the material. The Redis tier keeps the whole
 * material with each value and compares it (cache/redis.c); reads
 * coalescing in flight compare their whole materials too.
 */
#ifndef MONGOCACHE_CACHE_KEY_H
#define MONGOCACHE_CACHE_KEY_H

#include "cache/siphash.h"
#include "wire/cmd.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_key {
    uint64_t hi;
    uint64_t lo;
};

/* The XXH3 secret and the digest's key, both derived from the configured cache_key_secret. */
#define CACHE_KEY_SECRET_SIZE 192
struct cache_key_secret {
    uint8_t bytes[CACHE_KEY_SECRET_SIZE];
    struct cache_siphash_key digest_key; /* the digest's SipHash-2-4 key */
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
 * db.coll with the checked command body into material (reset first): the
 * principal, db and coll, each length-prefixed, then the body's top-level
 * elements as sent minus the volatile ones (key.c: why no two different
 * inputs give the same material). cmd is body as wire_cmd_parse read it
 * (its located elements spare a walk), or NULL.
 */
void cache_key_material_build(const char *principal, const char *db, const char *coll,
                              uint32_t coll_len, const bson_t *body, const struct wire_cmd *cmd,
                              struct cache_key_material *material);

/*
 * The key and *digest of that material: with material non-NULL, built
 * there (as cache_key_material_build) and hashed; with material NULL, hashed
 * as it is read from the body, gathered on the stack (a hit builds no
 * material). Both give the same key and digest.
 */
void cache_key_build(const struct cache_key_secret *secret, const char *principal, const char *db,
                     const char *coll, uint32_t coll_len, const bson_t *body,
                     const struct wire_cmd *cmd, struct cache_key_material *material,
                     struct cache_key *key, uint64_t *digest);

/* True when a and b are the same key. */
static inline bool
cache_key_equal(const struct cache_key *a, const struct cache_key *b)
{
    return a->hi == b->hi && a->lo == b->lo;
}

/* Number of significant bits: 128, or 8 in a --enable-tiny-keys test build. */
unsigned cache_key_bits(void);

#endif
