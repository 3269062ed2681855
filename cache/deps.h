/*
 * cache/deps.h: what a stored value depends on, shared. A value is valid
 * while every generation record it was filled under (its namespaces, their
 * databases, its principal, the whole cache: cache/gen.h) still has the
 * generation it had then. Every value filled under the same records at the
 * same generations (and, with the Redis tier, the same shared generations
 * and epoch) shares one interned snapshot, so a value pays one pointer for
 * its dependencies, however many it has: thousands of entries of one
 * namespace read by one principal between two writes share one snapshot.
 * The snapshot also carries the caller's tag (the proxy's query shape),
 * which entries of one shape share the same way.
 * A write makes a new snapshot for the fills after it; the old one goes
 * with the last value that holds it.
 */
#ifndef MONGOCACHE_CACHE_DEPS_H
#define MONGOCACHE_CACHE_DEPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_gen_rec;
struct cache_deps_table;

/* An interned snapshot: read with the functions below; held by cache_deps_intern's caller. */
struct cache_deps;

/* An empty table. Free with cache_deps_table_destroy, after every snapshot is released. */
struct cache_deps_table *cache_deps_table_new(void);
void cache_deps_table_destroy(struct cache_deps_table *table);

/*
 * The snapshot of n (>= 1) records recs with generations gens (and, when
 * rgens is not NULL, the shared generations rgens and epoch under which a
 * Redis-tier copy was vouched for) and tag, made on first use: a reference the
 * caller releases with cache_deps_unref. Each record is held (cache_gen_ref)
 * while the snapshot lives. recs[0] is the read's own namespace.
 */
struct cache_deps *cache_deps_intern(struct cache_deps_table *table,
                                     struct cache_gen_rec *const *recs, const uint64_t *gens,
                                     const uint64_t *rgens, uint32_t n, uint64_t epoch,
                                     uint64_t tag);

void cache_deps_ref(struct cache_deps *deps);
/* Releases deps; the last reference frees it (and releases its records). NULL is accepted. */
void cache_deps_unref(struct cache_deps *deps);

/* True when no record's generation moved since the snapshot. */
bool cache_deps_current(const struct cache_deps *deps);

/* True when deps includes rec. */
bool cache_deps_has(const struct cache_deps *deps, const struct cache_gen_rec *rec);

/* The tag it was interned with. */
uint64_t cache_deps_tag(const struct cache_deps *deps);

/* The read's own namespace record ("n:db.coll"), for its statistics. */
struct cache_gen_rec *cache_deps_ns(const struct cache_deps *deps);

/*
 * With the Redis tier: true when the snapshot was vouched for by Redis and
 * Redis's generations rgens (n of them, in the snapshot's order) and epoch
 * are still the ones it was vouched for under.
 */
bool cache_deps_redis_same(const struct cache_deps *deps, const uint64_t *rgens, uint32_t n,
                           uint64_t epoch);
/* Whether Redis vouched for the snapshot (cache_deps_intern had rgens). */
bool cache_deps_redis_vouched(const struct cache_deps *deps);

/* Snapshots alive, and the bytes they use (with their share of the table). */
size_t cache_deps_count(const struct cache_deps_table *table);
size_t cache_deps_bytes(const struct cache_deps_table *table);

#endif
