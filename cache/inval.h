/*
 * cache/inval.h: invalidation. What a write invalidates (the generation
 * records of what it may change: namespaces, databases, a principal, or
 * everything; a transaction's writes again at its end), the bump before
 * it is forwarded, the second bump when it ends (acknowledged, lost, or
 * never reported for a oneway write, whose fills are refused for
 * cache_write_grace instead), an operator's drop, a bump heard from
 * another proxy through the Redis tier, and the check that a fill's
 * generations did not move while its read was in flight.
 *
 * Generations (cache/gen.h) make every older entry invalid at once without
 * finding it; only an operator's drop also removes entries, so that their
 * memory comes back at once. The door (cache/cache.h) forwards the
 * proxy's calls here.
 */
#ifndef MONGOCACHE_CACHE_INVAL_H
#define MONGOCACHE_CACHE_INVAL_H

#include "cache/inval_scope.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_gen;
struct cache_gen_rec;
struct event_base;
struct cache_lru;
struct cache_redis;
struct cache_write_wait;
struct wire_cmd;

/* The invalidation room: the records it bumps, the transaction write sets it keeps. */
struct cache_inval_ctx;

/* A write in flight: the records to bump again when it ends. */
#define CACHE_MAX_INVAL (CACHE_INVAL_SCOPE_MAX_NS + 1)
struct cache_inval {
    struct cache_gen_rec *recs[CACHE_MAX_INVAL]; /* held until cache_write_end* (or _lost) */
    uint32_t n;
    bool write; /* the command is a write (even a oneway one, whose recs are released) */
};

/* Called once when the second bump of an acknowledged write is as far as it will get. */
typedef void (*cache_write_done_cb)(void *arg);

/* Called once when an operator's drop is as far as it will get: ok when Redis confirmed it. */
typedef void (*cache_drop_done_cb)(void *arg, bool ok);

/* Where an operator's drop stands when cache_admin_drop returns. */
enum cache_drop_state {
    CACHE_DROP_DONE,     /* no shared tier: taken, nothing to wait for */
    CACHE_DROP_WAITING,  /* sent to Redis: the callback says whether Redis confirmed it */
    CACHE_DROP_NOT_SENT, /* the shared tier is unusable (disconnected, breaker open): other
                          * proxies are not told; the tier is marked dirty here */
};

/*
 * Invalidation over gen's records, dropping from lru, and with redis (NULL
 * without the shared tier) sending bumps to other proxies, on base's loop
 * (the late bumps' timer). All four are borrowed for the room's life. Free with cache_inval_destroy (before gen).
 */
struct cache_inval_ctx *cache_inval_new(struct cache_gen *gen, struct cache_lru *lru,
                                        struct cache_redis *redis, struct event_base *base);
void cache_inval_destroy(struct cache_inval_ctx *ctx);

/* How long a oneway write's fills are refused (cache_write_grace, ms). */
void cache_inval_set_grace(struct cache_inval_ctx *ctx, int64_t write_grace_ms);

/* See cache_write_begin (cache.h). The cache's monotonic clock is read
 * only for a command that writes: a read costs no clock call here. */
bool cache_inval_write_begin(struct cache_inval_ctx *ctx, const bson_t *body,
                             const struct wire_cmd *cmd, const char *db,
                             const char *const *seq_ids, const uint8_t *const *seq_docs,
                             const uint32_t *seq_lens, uint32_t n_seqs, bool oneway,
                             struct cache_inval *inv);

/* See cache_write_end. */
void cache_inval_write_end(struct cache_inval_ctx *ctx, struct cache_inval *inv);

/* See cache_write_lost; now_ms on the cache's monotonic clock. */
void cache_inval_write_lost(struct cache_inval_ctx *ctx, struct cache_inval *inv,
                            uint64_t now_ms);

/* See cache_write_end_async. */
bool cache_inval_write_end_async(struct cache_inval_ctx *ctx, struct cache_inval *inv,
                                 cache_write_done_cb cb, void *arg,
                                 struct cache_write_wait **wait);

/* See cache_write_cancel. */
void cache_inval_write_cancel(struct cache_write_wait *wait);

/* See cache_admin_drop. */
enum cache_drop_state cache_inval_drop(struct cache_inval_ctx *ctx, const char *ns, size_t ns_len,
                                       uint64_t now_ms, cache_drop_done_cb cb, void *arg,
                                       struct cache_write_wait **wait, size_t *dropped);

/*
 * Another proxy bumped a generation ("n:db.coll", "d:db", "u:user@db"; "*"
 * or anything else: everything), heard through the Redis tier: the same
 * bump here. Shaped as cache_redis_on_invalidation's callback (arg: ctx).
 */
void cache_inval_remote(void *arg, const char *name, size_t len);

/*
 * The shared tier is back after being unusable: other proxies' bumps may
 * have been missed, so everything in process is invalid.
 */
void cache_inval_everything(struct cache_inval_ctx *ctx);

/*
 * True when a fill may be stored: none of its n records moved from the
 * generations read at its lookup (snapshot) and none was within a grace
 * period (a oneway write's, a lost write's) at the lookup, looked_up_ms: a
 * read begun then may have run before the server applied that write, even
 * if its reply comes after the grace.
 */
bool cache_inval_fill_allowed(struct cache_gen_rec *const *recs, const uint64_t *snapshot,
                              uint32_t n, uint64_t looked_up_ms);

/* Writes and drops that bumped something, since the start. */
uint64_t cache_inval_count(const struct cache_inval_ctx *ctx);

#endif
