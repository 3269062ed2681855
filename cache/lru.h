/*
 * cache/lru.h: the in-process tier's index: a hash map from cache_key to a
 * caller's value, with an LRU list, a byte budget and per-entry expiry. Every
 * operation is O(1); the table grows by incremental rehashing (a few
 * buckets moved per operation), so there is never a pause to rehash
 * everything at once. The map is intrusive: a value embeds a struct
 * cache_lru_node (links, key, expiry), so an entry costs no allocation of
 * the map's own and no pointer to its value. The values are the caller's:
 * the map holds one reference to each and gives it back through the release
 * callback when an entry is evicted, expires, is replaced or removed, or the
 * map is destroyed.
 */
#ifndef MONGOCACHE_CACHE_LRU_H
#define MONGOCACHE_CACHE_LRU_H

#include "cache/key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_lru;

/*
 * The map's part of a value, embedded in it (48 bytes). Every field is the
 * map's while the value is stored: the caller only reads key.
 */
struct cache_lru_node {
    struct cache_lru_node *chain; /* next in the hash bucket */
    struct cache_lru_node *prev;  /* towards the most recently used end */
    struct cache_lru_node *next;  /* towards the least recently used end */
    struct cache_key key;
    uint64_t expires_ms;
};

/* Gives back the map's reference to the value that embeds node. */
typedef void (*cache_lru_release_fn)(struct cache_lru_node *node);

/*
 * The bytes the value that embeds node is charged (its own size plus
 * whatever overhead the caller wants charged). The same for the whole time
 * the value is stored: the map asks when it stores and when it drops it.
 */
typedef size_t (*cache_lru_charge_fn)(const struct cache_lru_node *node);

/* A map holding at most budget bytes (as charged, plus the shared bytes below). Free with cache_lru_destroy. */
struct cache_lru *cache_lru_new(size_t budget, cache_lru_release_fn release,
                                cache_lru_charge_fn charge);
void cache_lru_destroy(struct cache_lru *lru);

/*
 * Bytes the stored values hold in common, outside their own charge (the
 * dependency snapshots they share and the records those hold): counted
 * against the budget beside the charges, so that values which share little
 * are evicted for what they really hold. Read on every eviction step: must
 * be cheap. NULL (the default): nothing shared.
 */
typedef size_t (*cache_lru_shared_fn)(void *arg);
void cache_lru_set_shared(struct cache_lru *lru, cache_lru_shared_fn shared, void *arg);

/*
 * Stores the value embedding node under key, expiring at expires_ms (on the
 * caller's monotonic millisecond clock). Takes the caller's reference to
 * the value; node must not be stored already. Replaces (and releases) an
 * existing entry with that key. Evicts least recently used entries until
 * the total fits the budget, counting them in *evicted (may be NULL). A
 * value charged more than the whole budget is not stored: it is released
 * at once (and the key's old entry with it) and false is returned.
 */
bool cache_lru_put(struct cache_lru *lru, const struct cache_key *key,
                   struct cache_lru_node *node, uint64_t expires_ms, uint32_t *evicted);

/*
 * Returns the node under key, or NULL. A hit moves the entry to the most
 * recently used end. An entry whose expiry is <= now_ms is removed (and
 * released) and NULL returned. The value is borrowed: valid until the next
 * call that may release it (put, remove, expire, set_budget, destroy).
 */
struct cache_lru_node *cache_lru_get(struct cache_lru *lru, const struct cache_key *key,
                                     uint64_t now_ms);

/* Removes and releases the entry under key. Returns false if there was none. */
bool cache_lru_remove(struct cache_lru *lru, const struct cache_key *key);

/*
 * Removes (and releases) every entry whose node match(node, arg) says
 * true, walking the whole list once (an operator's action, not the hit
 * path: O(entries)). match must not touch the map. Returns how many.
 */
size_t cache_lru_remove_if(struct cache_lru *lru,
                           bool (*match)(const struct cache_lru_node *node, void *arg), void *arg);

/*
 * Removes up to max_checks expired entries, oldest-used first scanning from
 * the LRU end (cheap periodic cleanup). Returns how many were removed.
 */
uint32_t cache_lru_expire(struct cache_lru *lru, uint64_t now_ms, uint32_t max_checks);

/* Changes the budget, evicting as needed; returns how many were evicted. */
uint32_t cache_lru_set_budget(struct cache_lru *lru, size_t budget);

size_t cache_lru_bytes(const struct cache_lru *lru);
size_t cache_lru_count(const struct cache_lru *lru);

/*
 * Bytes the map itself uses per entry beyond the embedded node: its share
 * of the bucket array (one pointer; the table grows when the entries
 * outnumber the buckets), for charging.
 */
size_t cache_lru_overhead(void);

#endif
