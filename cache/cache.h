/*
 * cache/cache.h: the one door the proxy uses to the query cache.
 *
 *   read:   cache_lookup  -> HIT (a stored reply) | MISS (remember, forward,
 *           then cache_store with the reply) | WAIT (the callback decides)
 *           | BYPASS (forward, not cached: no cache work beyond the decision)
 *   write:  cache_write_begin before forwarding (bump), cache_write_end(_async)
 *           when the ack arrives, cache_write_lost when it is lost (bump again)
 *
 * Keys come from cache/key.c, the allowlist from cache/policy.c, validity
 * from the generation counters of cache/gen.c and the snapshots of
 * cache/deps.c, storage from cache/lru.c and cache/value.c, coalescing from
 * cache/coalesce.c, invalidation from cache/inval.c. Everything runs on the
 * event-loop thread.
 */
#ifndef MONGOCACHE_CACHE_CACHE_H
#define MONGOCACHE_CACHE_CACHE_H

#include "cache/gen.h"
#include "cache/inval.h"
#include "cache/key.h"
#include "cache/policy.h"
#include "cache/redis.h"
#include "cache/value.h"
#include "conf/conf.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct event_base;
struct cache;
struct cache_pending;
struct cache_wait;
struct cache_write_wait;

/*
 * Counters, declared once with every other in conf/counters.def (the
 * STAT_CACHE rows). The last ones (entries, bytes, records,
 * records_forgotten) are gauges read when asked for (cache_counter).
 */
enum cache_counter {
#define STAT_CACHE(name, kind, unit, prom, help) CACHE_CTR_##name,
#include "conf/counters.def"
    CACHE_CTR_COUNT
};

/* Why a read bypassed the cache, beyond the policy's reasons. */
enum cache_bypass {
    CACHE_BYPASS_OFF = CACHE_POLICY_REASON_COUNT, /* cache = off */
    CACHE_BYPASS_EXCLUDED,                        /* cache_include / cache_exclude / ttl 0 */
    CACHE_BYPASS_AUTH,                            /* auth state unknown, in progress or failed */
    CACHE_BYPASS_REDIS,                           /* the Redis tier is configured but unusable */
    CACHE_BYPASS_COUNT
};

/* A stored reply: immutable, reference-counted (cache/value.h). */
struct cache_value;

/* Most generation records one read depends on. */
#define CACHE_MAX_DEPS (2 * CACHE_POLICY_MAX_NAMESPACES + 2)

/*
 * A read looked up and not over yet (a miss waiting for its reply, or a
 * read waiting for the callback): opaque, made by cache_lookup, freed by
 * cache_pending_free. struct cache_inval (a write in flight) is in
 * cache/inval.h.
 */
struct cache_pending;

/* What the proxy knows about one read. */
struct cache_request {
    const bson_t *body;     /* checked command body */
    const struct wire_cmd *cmd; /* body read by wire_cmd_parse, or NULL (read again) */
    const char *db;         /* its $db */
    uint32_t n_sequences;   /* OP_MSG kind-1 sections */
    const char *principal;  /* "user@db", "" when unauthenticated, NULL: auth state unusable */
    int bypass_reason;      /* out: after CACHE_BYPASS, why (cache_bypass_name) */
    int64_t now_ms;         /* when the request was read, on the cache's monotonic clock
                             * (CLOCK_MONOTONIC, ms): the lookup's time for expiry and the
                             * write grace (cache_lookup then reads no clock); 0: read it */
};

enum cache_outcome {
    CACHE_BYPASS, /* forward; store nothing */
    CACHE_MISS,   /* forward; store the reply with cache_store */
    CACHE_HIT,    /* answer with the stored reply */
    CACHE_WAIT,   /* decided later, by the callback */
};

/*
 * The decision on a read that had to wait (an identical read was in flight).
 * Called once, never from inside cache_lookup, unless cancelled: HIT with a
 * reference to the stored reply, or BYPASS (go upstream, store nothing).
 */
typedef void (*cache_wait_cb)(void *arg, enum cache_outcome outcome, struct cache_value *hit);

/*
 * A cache configured from conf (cache, cache_memory, cache_max_entry_bytes,
 * cache_ttl, cache_ttl_overrides, cache_include, cache_exclude,
 * cache_key_secret, cache_write_grace). Returns NULL with error set when a
 * namespace list or override is malformed. Free with cache_destroy.
 */
struct cache *cache_new(const struct conf *conf, struct event_base *base, bson_error_t *error);
void cache_destroy(struct cache *cache);

/* Applies a reloaded configuration (memory, TTLs, lists). False: nothing changed. */
bool cache_reconfigure(struct cache *cache, const struct conf *conf, bson_error_t *error);

/*
 * Looks a read up.
 *  - HIT: *hit holds a reference (cache_value_unref); *pending is NULL.
 *  - MISS: *pending is a new pending read, the caller's: pass it to
 *    cache_store (or cache_store_docs) with the reply, then free it with
 *    cache_pending_free; identical reads arriving meanwhile wait for it
 *    (coalescing) until then.
 *  - WAIT: cb(arg, ...) will decide, *wait is the handle for
 *    cache_wait_cancel; *pending is the caller's as for MISS (a wait for
 *    Redis may end in a miss whose reply is stored).
 *  - BYPASS: forward; *pending is NULL and req->bypass_reason says why.
 * A bypass, and every read with the cache off, allocates nothing: the
 * pending (a few hundred bytes) is only made for a read that is looked up.
 * cb NULL: no waiting (no coalescing, no Redis tier), never WAIT.
 */
enum cache_outcome cache_lookup(struct cache *cache, struct cache_request *req,
                                struct cache_pending **pending, struct cache_value **hit,
                                cache_wait_cb cb, void *arg, struct cache_wait **wait);

/* The caller's tag for the value a miss will store (cache_value_tag); the proxy's query shape. */
void cache_pending_set_tag(struct cache_pending *pending, uint64_t tag);

/*
 * The waiting read went away: its callback will not be called, and the wait
 * is freed. The handle's holder is the wait's only owner until the callback
 * runs (the cache frees it just before): cancel it exactly once, in either
 * order with cache_pending_free of the same read. NULL is accepted.
 */
void cache_wait_cancel(struct cache_wait *wait);

/*
 * Stores reply (the whole reply message, len bytes, whose body is reply_body)
 * for the miss, if the policy allows it and no generation it depends on has
 * moved since the lookup.
 */
void cache_store(struct cache *cache, struct cache_pending *pending, const uint8_t *reply,
                 size_t len, const bson_t *reply_body);

/*
 * The read is over (stored or not): frees pending (NULL is accepted). Reads
 * waiting for it are released: with the stored reply if cache_store kept
 * it, otherwise to go upstream. A Redis wait of this read is stopped (no
 * callback) but not freed: that is cache_wait_cancel's, by the handle's
 * holder.
 */
void cache_pending_free(struct cache *cache, struct cache_pending *pending);

/*
 * A cursor result the proxy drained itself: n documents back to back (docs,
 * docs_len, each already checked) from namespace ns. Stored like cache_store
 * when complete (the server's cursor is exhausted), small enough, and no
 * generation moved; a reference to the value is returned either way,
 * because the proxy serves the client from it. NULL only when the
 * documents do not add up (the caller's bug).
 */
struct cache_value *cache_store_docs(struct cache *cache, struct cache_pending *pending,
                                     const uint8_t *docs, size_t docs_len, uint32_t n_docs,
                                     const char *ns, bool complete);

/* A stored value's accessors (data, tag, documents, references) are in cache/value.h. */

/*
 * A command is on its way up: bumps what it may change. Returns true (and
 * fills inv) when it is a write whose end must be reported with
 * cache_write_end; a oneway (moreToCome) write is not: fills of what it
 * touches are refused for cache_write_grace instead. seqs are the OP_MSG
 * kind-1 sections (ids, first documents, byte lengths). principal as in
 * cache_request (NULL allowed).
 */
bool cache_write_begin(struct cache *cache, const bson_t *body, const struct wire_cmd *cmd,
                       const char *db,
                       const char *const *seq_ids, const uint8_t *const *seq_docs,
                       const uint32_t *seq_lens, uint32_t n_seqs, bool oneway,
                       struct cache_inval *inv);

/* The write needs no confirmation: bumps again. */
void cache_write_end(struct cache *cache, struct cache_inval *inv);

/*
 * The write's reply was lost (its connection failed or closed, as at a
 * failover): it may or may not have been applied, and may still be applied
 * later by a server that ran it to its end. Bumps again, and refuses fills
 * of what it touches for cache_write_grace, as after a w:0 write (in this
 * process; other proxies sharing the Redis tier see the bump only).
 */
void cache_write_lost(struct cache *cache, struct cache_inval *inv);

/*
 * The write's reply arrived: bumps again. With the Redis tier, the bump
 * must reach Redis before the client may see the acknowledgement (or a read
 * through another proxy could still find the old value): returns true and
 * calls cb(arg) once Redis confirmed or gave up (redis_timeout; the tier
 * then stays dirty until an epoch bump); *wait is the handle for
 * cache_write_cancel. Returns false when there is nothing to wait for.
 */
bool cache_write_end_async(struct cache *cache, struct cache_inval *inv, cache_write_done_cb cb,
                           void *arg, struct cache_write_wait **wait);

/*
 * The write's client (or the operator waiting for a cache_admin_drop) went
 * away: its callback will not be called (the bump still counts).
 */
void cache_write_cancel(struct cache_write_wait *wait);

/*
 * An operator's flush (ns NULL: everything) or invalidation of one
 * namespace ("db.coll", ns_len bytes, checked by the caller): the same
 * generation bump as a write to it ("*" for a flush, which every entry
 * depends on), and the in-process entries it made invalid are removed at
 * once; *dropped says how many (entries in Redis are not counted: they are
 * invalid by the generation). With the Redis tier the bump is sent there
 * too, and as a write's ack, the operator's answer must wait for Redis to
 * confirm it (or a read through another proxy could still find the old
 * value): CACHE_DROP_WAITING, and cb(arg, ok) is called once Redis
 * confirmed (ok) or gave up (redis_timeout; the tier then stays dirty until
 * an epoch bump); *wait is the handle for cache_write_cancel (the answerer
 * went away). CACHE_DROP_NOT_SENT when the tier cannot take the bump now
 * (disconnected, breaker open): other proxies may still serve the entries.
 * CACHE_DROP_DONE without the tier. cb is never called before this returns.
 */
enum cache_drop_state cache_admin_drop(struct cache *cache, const char *ns, size_t ns_len,
                                       cache_drop_done_cb cb, void *arg,
                                       struct cache_write_wait **wait, size_t *dropped);

/* Whether the cache is on (cache = true), and whether it has the Redis tier. */
bool cache_enabled(const struct cache *cache);
/* The Redis tier, or NULL without one: its state, counters and latency (cache/redis.h). */
const struct cache_redis *cache_redis_tier(const struct cache *cache);

/*
 * Reads not cached for reason (a cache_policy_reason or a cache_bypass),
 * since the start. CACHE_BYPASS_OFF is always 0: a cache that is off is not
 * asked, and its caller counts the reads it forwards (proxy/lookup.c:
 * cache_off_passes).
 */
uint64_t cache_bypass_count(const struct cache *cache, int reason);

/* One namespace's statistics: the STAT_NAMESPACE rows of conf/counters.def. */
struct cache_ns_stats {
#define STAT_NAMESPACE(name, kind, unit, prom, help) uint64_t name;
#include "conf/counters.def"
};

/* Called for each namespace shown; name ("db.coll", name_len bytes) is valid during the call. */
typedef void (*cache_ns_cb)(const char *name, size_t name_len, const struct cache_ns_stats *stats,
                            void *arg);

/*
 * The top namespaces, most read (hits + misses) first: calls cb for the
 * at most top (>= 1) most read namespaces with any traffic, in one pass
 * over the records with a bounded heap, and sums every other namespace
 * with traffic into *other (*n_other of them). Bounded however many
 * namespaces clients name.
 */
void cache_namespaces_top(struct cache *cache, size_t top, cache_ns_cb cb, void *arg,
                          struct cache_ns_stats *other, uint64_t *n_other);

/* The most namespace labels cache_namespaces_labelled gives (metrics_namespaces' bound). */
#define CACHE_NS_LABELS_MAX 1000

/*
 * The namespaces of the Prometheus exposition, every value a counter that
 * never steps down while the process lives. Labels are sticky: a namespace
 * given one keeps it (its record is held, never forgotten); new ones go to
 * the most read namespaces while fewer than max_labels (1..1000) are
 * given. cb is called for each labelled namespace with its counts since it
 * got its label (all of them when "other" could give them up); *other is
 * everything else: the grand total of each counter (freed records
 * included) less the labelled values. Labelled plus other equal the grand
 * totals. Memory: at most CACHE_NS_LABELS_MAX label slots.
 */
void cache_namespaces_labelled(struct cache *cache, size_t max_labels, cache_ns_cb cb, void *arg,
                               struct cache_ns_stats *other);

/* The name of a bypass reason (a cache_policy_reason or a cache_bypass). */
const char *cache_bypass_name(int reason);

/* Generation records held now (namespaces, databases, principals) and idle ones forgotten. */
size_t cache_records(const struct cache *cache);
uint64_t cache_records_forgotten(const struct cache *cache);

/* A counter's value (tests and logs). */
uint64_t cache_counter(const struct cache *cache, enum cache_counter counter);

#endif
