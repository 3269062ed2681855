/*
 * cache/redis.h: the shared tier. Several proxies keep one cache in Redis:
 * stored replies, and the generation counters that invalidate them, so a
 * write through any proxy invalidates what every proxy serves.
 *
 * Two connections of our own on the proxy's event loop (cache/redis_link.h,
 * cache/redis_conn.h: hiredis only parses replies); every command has its
 * own deadline (redis_timeout), kept by one timer. Redis failing is
 * never a client's problem: an error or a timeout is a miss, after repeated
 * failures a circuit breaker skips Redis for a while (cache/redis_breaker.h:
 * the commands of one failed pipelined batch are one failure), and a bump that could
 * not be delivered makes the tier "dirty": it is not trusted again until an
 * epoch bump (which invalidates every stored value) has succeeded.
 *
 * Keys, under the configured prefix P:
 *   P v:<32 hex digits of the cache key>  a stored value (redis_blob.h), with a TTL
 *   P g:<generation name>                 a generation counter (no TTL); created at a random
 *                                         64-bit base so an evicted counter never lines up
 *                                         with old values
 *   P epoch                               the epoch (no TTL)
 *   P inval                               the pub/sub channel carrying bumped generation names
 * Values are read like any untrusted input: versioned, sealed by a
 * SipHash-2-4-128 MAC keyed from cache_key_secret over the key and every
 * byte (redis_mac.h; checked first), sizes checked, the reply re-checked as a
 * wire message (structure and BSON depth); junk or a forgery is a miss and
 * a counter.
 */
#ifndef MONGOCACHE_CACHE_REDIS_H
#define MONGOCACHE_CACHE_REDIS_H

#include "cache/key.h"
#include "conf/conf.h"
#include "conf/error.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf_hist;

struct event_base;
struct cache_redis;
struct cache_redis_op;

/* Counters of the Redis tier: the STAT_REDIS rows of conf/counters.def. */
enum cache_redis_counter {
#define STAT_REDIS(name, kind, unit, prom, help) CACHE_REDIS_CTR_##name,
#include "conf/counters.def"
    CACHE_REDIS_CTR_COUNT
};

enum cache_redis_state {
    CACHE_REDIS_DISCONNECTED,
    CACHE_REDIS_CONNECTED,
    CACHE_REDIS_BREAKER_OPEN,
    CACHE_REDIS_DIRTY, /* connected, waiting for the epoch bump to succeed */
};

/* A generation the caller depends on: its name ("n:db.coll") and, on return, its value. */
struct cache_redis_gen {
    const char *name;
    size_t name_len;
    uint64_t value;
};

/*
 * Callbacks and destruction. Every callback (lookup, bump, invalidation) runs
 * on the loop thread, never before the call that asked for it returns, and
 * at most once. Inside any of them the caller may look up, fill, bump or
 * cancel, but must NOT call cache_redis_destroy (it asserts): destroy from
 * outside the tier's callbacks (e.g. at shutdown, after the loop stopped).
 * An op handle is valid until its callback has been called or it has been
 * cancelled, whichever comes first.
 *
 * Connects to conf->redis ("redis://[[user]:password@]host:port[/db]",
 * "rediss://" over TLS with the redis_tls_* options, "unix:///path[?db=N]",
 * or "redis-sentinel://sentinels/master[/db]": the master a Sentinel names,
 * followed across failovers; a password may also come from
 * conf->redis_password) and subscribes to the invalidation channel. Reconnects with backoff on
 * its own. Returns NULL with error set when the URL is malformed, a TLS
 * file cannot be used, a redis_tls_* option is set without rediss://, or
 * conf->cache_key_secret is empty (values are sealed with a key derived from
 * it; an unreachable Redis is not an error: the tier starts disconnected).
 * Free with cache_redis_destroy (pending callbacks are called with
 * CACHE_REDIS_FAILED first).
 */
struct cache_redis *cache_redis_new(struct event_base *base, const struct conf *conf,
                                    bson_error_t *error);
void cache_redis_destroy(struct cache_redis *redis);

/* Applies reloadable settings (timeout, breaker, TTLs). */
void cache_redis_reconfigure(struct cache_redis *redis, const struct conf *conf);

enum cache_redis_state cache_redis_state(const struct cache_redis *redis);

/* True when lookups and fills may use Redis now (connected, breaker closed, not dirty). */
bool cache_redis_usable(const struct cache_redis *redis);

enum cache_redis_status {
    CACHE_REDIS_HIT,    /* value and gens filled */
    CACHE_REDIS_MISS,   /* no (valid) value; gens filled: the snapshot for a fill */
    CACHE_REDIS_FAILED, /* error, timeout, cancelled by destroy: treat as a miss, fill nothing */
};

/*
 * Called once per lookup. On HIT, reply (a whole reply message, checked)
 * and material are valid only during the call: copy what you keep, for no
 * longer than ttl_left_ms (what is left of the value's sealed lifetime; 0
 * otherwise). gens[] (the array passed to cache_redis_lookup) holds the
 * current values on HIT and MISS; epoch is the current epoch.
 */
typedef void (*cache_redis_lookup_cb)(void *arg, enum cache_redis_status status,
                                      const uint8_t *reply, size_t reply_len,
                                      const uint8_t *material, size_t material_len,
                                      uint64_t epoch, int64_t ttl_left_ms);

/*
 * Looks key up: one MGET reading the value, every generation in gens[0..n)
 * and the epoch (shared with the other lookups and checks started in the
 * same loop turn: the read batch, redis.c); when a counter does not exist, a second
 * round trip (the lookup script) creates it at a random base and reads
 * everything again. A value is a HIT only if its stored generations and
 * epoch equal the current ones and its sealed expiry has not passed (this
 * proxy's clock). gens (names and the array itself) must stay valid until
 * the callback, which is never called before this function returns.
 * Returns a handle for cache_redis_cancel, or NULL when Redis is not usable
 * (then the callback is not called).
 * A HIT hands back the stored key material: the caller compares it with its
 * own (a 128-bit key collision is a miss). On MISS, gens[] and epoch are the
 * snapshot to pass to cache_redis_fill. While the breaker is half-open one
 * lookup goes out as the probe and the others return NULL.
 */
struct cache_redis_op *cache_redis_lookup(struct cache_redis *redis, const struct cache_key *key,
                                          struct cache_redis_gen *gens, uint32_t n,
                                          cache_redis_lookup_cb cb, void *arg);

/*
 * Reads only the generations in gens[0..n) and the epoch, in one MGET
 * (for an in-process copy, which must not be served if another proxy has
 * moved them). The callback gets MISS with gens[] and epoch filled, or
 * FAILED. Otherwise as cache_redis_lookup.
 */
struct cache_redis_op *cache_redis_check(struct cache_redis *redis, struct cache_redis_gen *gens,
                                         uint32_t n, cache_redis_lookup_cb cb, void *arg);

/* The caller no longer wants the callback (its request went away). */
void cache_redis_cancel(struct cache_redis_op *op);

/*
 * Stores reply under key with ttl_ms, if every generation still has the
 * value in gens[] and the epoch is unchanged (compare-and-set, a Lua
 * script). Fire and forget: never delays anything; a failure is counted.
 */
void cache_redis_fill(struct cache_redis *redis, const struct cache_key *key,
                      const uint8_t *material, size_t material_len, const uint8_t *reply,
                      size_t reply_len, const struct cache_redis_gen *gens, uint32_t n,
                      uint64_t epoch, int64_t ttl_ms);

/* Called once per bump with whether Redis confirmed it. */
typedef void (*cache_redis_done_cb)(void *arg, bool ok);

/*
 * Increments the named generations and publishes their names to the other
 * proxies. When Redis does not confirm within redis_timeout the tier is
 * marked dirty (and the callback says false). cb may be NULL. Returns a
 * handle for cache_redis_cancel (NULL when Redis is not connected: then
 * the tier is marked dirty at once and cb is not called).
 * The same NULL + dirty when the breaker is not closed (Redis is failing: a
 * bump would only wait for its timeout) or n > CACHE_REDIS_MAX_GENS. n == 0
 * is a no-op (NULL, not dirty). Cancelling only silences cb: a bump that
 * then fails still marks the tier dirty. All names go out in one PUBLISH.
 */
struct cache_redis_op *cache_redis_bump(struct cache_redis *redis,
                                        const struct cache_redis_gen *gens, uint32_t n,
                                        cache_redis_done_cb cb, void *arg);

/*
 * fn is called with the name of every generation another proxy bumped (from
 * the pub/sub channel), so the in-process tier can drop what it holds. name
 * is NUL-terminated and valid only during the call. "*" means everything:
 * sent after an epoch bump, on every (re)subscription, and for a name that
 * cannot travel in a message. A proxy does not hear its own bumps.
 */
void cache_redis_on_invalidation(struct cache_redis *redis,
                                 void (*fn)(void *arg, const char *name, size_t len), void *arg);

uint64_t cache_redis_counter(const struct cache_redis *redis, enum cache_redis_counter counter);

/* "disconnected", "connected", "breaker_open" or "dirty": the state's name in /stats. */
const char *cache_redis_state_name(enum cache_redis_state state);

/* Round-trip times of the commands answered (connection loss and timeouts not counted). */
const struct conf_hist *cache_redis_latency(const struct cache_redis *redis);

/*
 * True while the invalidation channel is subscribed. While it is not, bumps
 * made by other proxies are not heard: the in-process tier should not serve
 * (or should drop what it holds). Each time the subscription is (re)made,
 * the invalidation callback receives the name "*": anything may have
 * changed while nobody listened.
 */
bool cache_redis_subscribed(const struct cache_redis *redis);

/* ---- Limits and errors (the value blob: redis_blob.h; the URL: redis_url.h) ---- */

/* bson_error_t domain of the tier, the value blob and the URL (conf/error.h). */
#define CACHE_REDIS_ERROR_DOMAIN CONF_ERROR_DOMAIN_REDIS

/* Its codes (a refused value's are in redis_blob.h: 1 and 2). */
enum cache_redis_error {
    CACHE_REDIS_ERR_URL = 2,              /* redis_url: not a Redis URL we take */
    CACHE_REDIS_ERR_CONFIG = 3,           /* no URL, or options that cannot work together */
    CACHE_REDIS_ERR_PROTOCOL = 20,        /* redis_resp: a reply that breaks RESP or our limits */
    CACHE_REDIS_ERR_PUSH = 21,            /* redis_push: a malformed push */
    CACHE_REDIS_ERR_SUBSCRIBE = 22,       /* redis_push: the subscription was refused */
    CACHE_REDIS_ERR_PUSH_UNEXPECTED = 23, /* redis_push: a push of a kind we did not ask for */
    CACHE_REDIS_ERR_CONNECT = 24,         /* redis_conn: resolving or connecting failed */
    CACHE_REDIS_ERR_TLS = 25,             /* redis_tls: a TLS context or session cannot be made */
    CACHE_REDIS_ERR_MAC = 30,             /* redis_mac: the MAC cannot be computed */
    CACHE_REDIS_ERR_MAC_SECRET = 31,      /* redis_mac: no secret */
};

/* Most generations one value depends on; longest generation name. */
#define CACHE_REDIS_MAX_GENS 64
#define CACHE_REDIS_MAX_NAME 1024

#endif
