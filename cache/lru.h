/*
 * cache/lru.h: the in-process tier's index: a hash map from cache_key to an
 * opaque value, with an LRU list, a byte budget and per-entry expiry. Every
 * operation is O(1); the table grows by incremental rehashing (a few
 * buckets moved per operation), so there is never a pause to rehash
 * everything at once. The values are the caller's: the map holds one
 * reference to each and gives it back through the release callback when an
 * entry is evicted, expires, is replaced or removed, or the map is destroyed.
 */
#ifndef MONGOCACHE_CACHE_LRU_H
#define MONGOCACHE_CACHE_LRU_H

#include "cache/key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_lru;

/* Gives back the map's reference to value. */
typedef void (*cache_lru_release_fn)(void *value);

/* A map holding at most budget bytes (as charged by put). Free with cache_lru_destroy. */
struct cache_lru *cache_lru_new(size_t budget, cache_lru_release_fn release);
void cache_lru_destroy(struct cache_lru *lru);

/*
 * Stores value under key, charged `bytes` (the caller counts its own value
 * plus whatever overhead it wants charged), expiring at expires_ms (on the
 * caller's monotonic millisecond clock). Takes the caller's reference to
 * value. Replaces (and releases) an existing entry with that key. Evicts
 * least recently used entries until the total fits the budget, counting
 * them in *evicted (may be NULL). A value larger than the whole budget is
 * not stored: it is released at once and false is returned.
 */
bool cache_lru_put(struct cache_lru *lru, const struct cache_key *key, void *value, size_t bytes,
                   uint64_t expires_ms, uint32_t *evicted);

/*
 * Returns the value under key, or NULL. A hit moves the entry to the most
 * recently used end. An entry whose expiry is <= now_ms is removed (and
 * released) and NULL returned. The value is borrowed: valid until the next
 * call that may release it (put, remove, expire, set_budget, destroy).
 */
void *cache_lru_get(struct cache_lru *lru, const struct cache_key *key, uint64_t now_ms);

/* Removes and releases the entry under key. Returns false if there was none. */
bool cache_lru_remove(struct cache_lru *lru, const struct cache_key *key);

/*
 * Removes (and releases) every entry whose value match(value, arg) says
 * true, walking the whole list once (an operator's action, not the hit
 * path: O(entries)). match must not touch the map. Returns how many.
 */
size_t cache_lru_remove_if(struct cache_lru *lru, bool (*match)(const void *value, void *arg),
                           void *arg);

/*
 * Removes up to max_checks expired entries, oldest-used first scanning from
 * the LRU end (cheap periodic cleanup). Returns how many were removed.
 */
uint32_t cache_lru_expire(struct cache_lru *lru, uint64_t now_ms, uint32_t max_checks);

/* Changes the budget, evicting as needed; returns how many were evicted. */
uint32_t cache_lru_set_budget(struct cache_lru *lru, size_t budget);

size_t cache_lru_bytes(const struct cache_lru *lru);
size_t cache_lru_count(const struct cache_lru *lru);

/* Bytes the map itself uses per entry (node and bucket share), for charging. */
size_t cache_lru_overhead(void);

#endif
