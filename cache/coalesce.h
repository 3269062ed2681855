/*
 * cache/coalesce.h: identical reads in flight share one upstream round
 * trip. The first miss of a query leads (cache_coalesce_lead); identical
 * reads that arrive while it is in flight follow it (cache_coalesce_follow)
 * and wait, each with a timer (cache_coalesce_wait); when the leader's miss
 * is over (cache_coalesce_finish) every follower is answered with the value
 * it stored, or sent upstream itself.
 *
 * The waits are also the handles of reads waiting for the Redis tier
 * (cache.c makes them with cache_coalesce_wait_new): one struct, one way
 * to stop it (cache_coalesce_wait_stop) and one to free it, so the proxy
 * holds one kind of handle (cache_wait_cancel).
 */
#ifndef MONGOCACHE_CACHE_COALESCE_H
#define MONGOCACHE_CACHE_COALESCE_H

#include "cache/cache.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_coalesce;
struct cache_inflight;
struct cache_redis_op;

/*
 * A read waiting for an identical one in flight (its leader), or for the
 * Redis tier. Owned by exactly one holder: the handle's holder (the
 * proxy's request), until the callback runs; the cache frees it just
 * before calling the callback, or cache_wait_cancel does.
 */
struct cache_wait {
    struct cache_wait *next;      /* on the leader's list */
    struct cache_wait **prev;     /* NULL when not on a leader's list (a Redis wait) */
    struct cache_coalesce *table; /* a follower's table (its timeout is counted there) */
    struct cache_redis_op *op;    /* a Redis lookup in flight, cancelled when stopped */
    struct cache_wait **backref;  /* cleared when stopped (the pending's pointer to it) */
    struct cache_value *value;    /* an in-process copy being checked with Redis; one reference */
    void *ctx;                    /* the Redis answer's context (cache.c's) */
    void *pending;                /* the read the Redis answer is for (cache.c's) */
    struct event *timer;
    cache_wait_cb cb;
    void *arg;
};

/* An empty table whose waits time out on base. Free with cache_coalesce_destroy. */
struct cache_coalesce *cache_coalesce_new(struct event_base *base);
/* Frees the table: every leader has finished (clients go before the cache). */
void cache_coalesce_destroy(struct cache_coalesce *table);

/*
 * The read in flight with this key and material (len bytes), or NULL. Both
 * are compared: identical reads only.
 */
struct cache_inflight *cache_coalesce_find(struct cache_coalesce *table,
                                           const struct cache_key *key, const uint8_t *material,
                                           size_t len);

/*
 * Registers a miss others may wait for. key and material are borrowed
 * until cache_coalesce_finish (the leader's pending keeps them).
 */
struct cache_inflight *cache_coalesce_lead(struct cache_coalesce *table,
                                           const struct cache_key *key, const uint8_t *material,
                                           size_t len);

/*
 * A read waits for leader f, at most wait_ms: cb(arg, HIT, value) when the
 * leader stored a value, cb(arg, BYPASS, NULL) when it did not or the wait
 * timed out. Returns the handle (cache_wait_cancel).
 */
struct cache_wait *cache_coalesce_follow(struct cache_coalesce *table, struct cache_inflight *f,
                                         int64_t wait_ms, cache_wait_cb cb, void *arg);

/* What the leader's reply became: its followers will get it (one reference taken, once). */
void cache_coalesce_stored(struct cache_inflight *f, struct cache_value *value);

/*
 * The leader's miss is over: f leaves the table, then every follower is
 * answered (HIT with a reference to the stored value, or BYPASS) and
 * freed. The callbacks may start new lookups. Returns how many were
 * answered with a hit, for the cache's counters.
 */
uint64_t cache_coalesce_finish(struct cache_coalesce *table, struct cache_inflight *f);

/*
 * cache_coalesce_finish in two steps, for a leader whose followers are
 * answered later (cache.c checks the value with the Redis tier first):
 * detach takes f out of the table (no read follows it any more; its key
 * and material, the leader's, are no longer read), answer then answers
 * every follower still waiting, HIT with a reference to value or BYPASS
 * (value NULL), and frees f. answer returns the hits. waited: whether
 * reads wait for f; value: what its leader stored, or NULL.
 */
void cache_coalesce_detach(struct cache_coalesce *table, struct cache_inflight *f);
uint64_t cache_coalesce_answer(struct cache_inflight *f, struct cache_value *value);
bool cache_coalesce_waited(const struct cache_inflight *f);
struct cache_value *cache_coalesce_value(const struct cache_inflight *f);

/* A wait not on any leader's list (a Redis wait): cb and arg as for follow. */
struct cache_wait *cache_coalesce_wait_new(cache_wait_cb cb, void *arg);

/*
 * Stops a wait: off its leader's list, timer and Redis op gone, backref
 * cleared, value released. Idempotent: a stopped wait stays allocated until
 * its one owner frees it (cache_coalesce_wait_free).
 */
void cache_coalesce_wait_stop(struct cache_wait *wait);
/* Stops and frees. NULL is accepted. */
void cache_coalesce_wait_free(struct cache_wait *wait);

/* Reads that waited for a leader, and waits that timed out, since the start. */
uint64_t cache_coalesce_count(const struct cache_coalesce *table);
uint64_t cache_coalesce_timeouts(const struct cache_coalesce *table);

#endif
