/*
 * cache/redis_sentinel.h: where the shared tier's master is, as Redis
 * Sentinel says (redis-sentinel:// URLs, cache/redis_url.h). It asks the
 * Sentinels in turn (SENTINEL get-master-addr-by-name) until one names the
 * master, and stays subscribed to +switch-master on a Sentinel that
 * answered, so a failover is heard as it happens. It reports up by
 * callback only; the links (cache/redis_link.h) then connect there and
 * check with ROLE that the node is the master before using it.
 */
#ifndef MONGOCACHE_CACHE_REDIS_SENTINEL_H
#define MONGOCACHE_CACHE_REDIS_SENTINEL_H

#include "cache/redis_url.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct evdns_base;
struct cache_redis_tls;
struct cache_redis_sentinel;

/* What it asks; every pointer is borrowed for the object's life. */
struct cache_redis_sentinel_conf {
    struct event_base *base;
    struct evdns_base *dns;            /* for Sentinels named by host name; else NULL */
    const struct cache_redis_url *url; /* the Sentinels and the master's name */
    const struct cache_redis_tls *tls; /* rediss-sentinel://: TLS to the Sentinels too */
    const char *password;              /* the Sentinels' own (AUTH), or NULL */
    const char *redacted;              /* the URL for logs */
    int64_t timeout_ms;                /* one Sentinel gets max(4 x it, 1 s) to answer */
};

/*
 * master: a Sentinel named the master host:port (host NUL-terminated, valid
 * during the call): after a question (again when unchanged) or a
 * +switch-master message. Called on the loop, never from inside
 * cache_redis_sentinel_new or _ask.
 */
struct cache_redis_sentinel_handlers {
    void (*master)(void *arg, const char *host, uint16_t port);
};

/*
 * Starts asking at once. conf and handlers are copied. Free with
 * cache_redis_sentinel_destroy (not from inside its callback).
 */
struct cache_redis_sentinel *
cache_redis_sentinel_new(const struct cache_redis_sentinel_conf *conf,
                         const struct cache_redis_sentinel_handlers *handlers, void *arg);

void cache_redis_sentinel_destroy(struct cache_redis_sentinel *s);

/*
 * Asks the Sentinels again (a link was lost, or reached a node that is not
 * the master). Nothing more when a question is already under way; after
 * an answer, asks once more at most every 100 ms (a flapping link does
 * not flood the Sentinels).
 */
void cache_redis_sentinel_ask(struct cache_redis_sentinel *s);

/* A new redis_timeout (a reload). */
void cache_redis_sentinel_set_timeout(struct cache_redis_sentinel *s, int64_t timeout_ms);

#endif
