/*
 * cache/value.h: a stored value: one reply message (or a drained cursor's
 * documents) with what the cache keeps to serve it safely, in one
 * allocation: the in-process tier's node (links, key, expiry), a reference
 * count, the key material's digest and the shared dependency snapshot
 * (cache/deps.h, which also carries the caller's tag). Immutable once made; reference
 * counted: every holder (the in-process tier, a request serving it, a
 * coalesced wait) owns one reference, and the last cache_value_unref frees it.
 *
 * What an entry costs beyond its payload is cache_value_overhead(): the
 * struct (72 bytes on LP64) plus the in-process tier's bucket share. The
 * key material itself is not kept: see key.h for why the 128-bit key and
 * the 64-bit digest are what stands between two queries.
 */
#ifndef MONGOCACHE_CACHE_VALUE_H
#define MONGOCACHE_CACHE_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_deps;
struct cache_lru_node;
struct cache_value;

/* ---- for the proxy (through cache.h) ---- */

/* The stored reply message (its 16-byte header included) and its length. */
const uint8_t *cache_value_data(const struct cache_value *value, size_t *len);
void cache_value_ref(struct cache_value *value);
/* Releases a reference; the last frees the value. NULL is accepted. */
void cache_value_unref(struct cache_value *value);

/* The tag of the miss that stored value (cache_pending_set_tag), or 0. */
uint64_t cache_value_tag(const struct cache_value *value);

/* A drained cursor's documents (cache_store_docs), instead of a reply message. */
bool cache_value_is_docs(const struct cache_value *value);
uint32_t cache_value_n_docs(const struct cache_value *value);
/* The i-th document (i < n_docs) and its length. */
const uint8_t *cache_value_doc(const struct cache_value *value, uint32_t i, uint32_t *len);
/*
 * The first k documents (k <= n_docs) as the elements of an array that
 * starts with them ("0": doc 0, "1": doc 1, ...): a first batch's bytes,
 * served by reference. Sets *len to their length.
 */
const uint8_t *cache_value_elements(const struct cache_value *value, uint32_t k, size_t *len);
/* The namespace the cursor was on ("db.coll"). */
const char *cache_value_ns(const struct cache_value *value);

/* ---- for cache/ ---- */

/*
 * A reply value: copies len bytes of reply. Takes the caller's reference to
 * deps. Returns one reference.
 */
struct cache_value *cache_value_new(const uint8_t *reply, size_t len, uint64_t digest,
                                    struct cache_deps *deps);

/*
 * A drained cursor's value: n documents back to back (docs, docs_len) from
 * namespace ns, laid out as array elements "0", "1", ... Takes deps (also
 * on failure). NULL when the documents do not add up (the caller's bug) or
 * are too many bytes for one value.
 */
struct cache_value *cache_value_new_docs(const uint8_t *docs, size_t docs_len, uint32_t n_docs,
                                         const char *ns, uint64_t digest,
                                         struct cache_deps *deps);

/* The value's payload bytes: the reply, or the drained cursor's layout. */
size_t cache_value_payload_len(const struct cache_value *value);
uint64_t cache_value_digest(const struct cache_value *value);
const struct cache_deps *cache_value_deps(const struct cache_value *value);

/* The in-process tier's node inside value, and the value around a node. */
struct cache_lru_node *cache_value_node(struct cache_value *value);
struct cache_value *cache_value_of_node(const struct cache_lru_node *node);

/* For cache_lru_new: the map's reference goes; what a value is charged. */
void cache_value_lru_release(struct cache_lru_node *node);
size_t cache_value_lru_charge(const struct cache_lru_node *node);

/* Bytes an entry costs beyond its payload: the struct and the tier's bucket share. */
size_t cache_value_overhead(void);

#endif
