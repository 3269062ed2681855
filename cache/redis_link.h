/*
 * cache/redis_link.h: one kept connection of the Redis tier (cache/redis.h):
 * either the command connection (AUTH, SELECT, SCRIPT LOAD, then commands)
 * or the subscription to the invalidation channel (AUTH, SUBSCRIBE, then
 * messages). A link makes its connection (cache/redis_conn.h), runs the
 * handshake, logs what happens to it, and re-makes it with backoff when it
 * is lost. It reports up by callback only: ready, lost, and each message;
 * it never calls the tier.
 */
#ifndef MONGOCACHE_CACHE_REDIS_LINK_H
#define MONGOCACHE_CACHE_REDIS_LINK_H

#include "cache/redis_conn.h"
#include "cache/redis_url.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evdns_base;
struct cache_redis_link;

/* The owner's callbacks, on the loop thread; arg is cache_redis_link_new's. */
struct cache_redis_link_handlers {
    /* The handshake is done (a subscription: the channel confirmed); again: not the first time. */
    void (*ready)(void *arg, bool again);
    /*
     * The connection is gone (already forgotten: commands waiting on it are
     * called back with NULL right after this returns). was_ready: it had
     * finished its handshake; protocol: dropped because Redis sent what it
     * should not have. A new attempt is already planned.
     */
    void (*lost)(void *arg, bool was_ready, bool protocol);
    /* A subscription's message (binary, valid during the call). NULL for a command link. */
    void (*message)(void *arg, const char *payload, size_t len);
};

/* What a link connects to; every pointer is borrowed for the link's life. */
struct cache_redis_link_conf {
    struct event_base *base;
    struct evdns_base *dns; /* for a host name, else NULL */
    const struct cache_redis_url *url;
    const struct cache_redis_tls *tls; /* rediss://: the TLS context; NULL: plaintext */
    const char *password; /* or NULL */
    const char *redacted; /* the URL for logs */
    const char *name;     /* "commands" or "pubsub", for logs */
    /* A subscription: the channel (binary); NULL for a command link. */
    const char *channel;
    size_t channel_len;
    /* A command link: the scripts to load (SCRIPT LOAD), in order (the array is copied). */
    const char *const *scripts;
    int n_scripts;
    size_t max_reply;    /* see cache_redis_conn_new */
    size_t max_elements; /* see cache_redis_conn_new */
    int64_t timeout_ms;  /* the tier's redis_timeout: a handshake gets max(4 x it, 1 s) */
    /*
     * Sentinel: url's host is the master a Sentinel named (NULL while none
     * is known: the link waits, cache_redis_link_kick starts it), and the
     * handshake ends with ROLE: a node that is not a master is dropped
     * (never ready, nothing written to it) and the owner told (lost).
     */
    bool sentinel;
};

#define CACHE_REDIS_LINK_MAX_SCRIPTS 8

/*
 * Starts connecting at once (an unreachable Redis is not an error: the link
 * retries). handlers and conf are copied, what conf points to is borrowed.
 * Free with cache_redis_link_destroy (not from inside its callbacks).
 */
struct cache_redis_link *cache_redis_link_new(const struct cache_redis_link_conf *conf,
                                              const struct cache_redis_link_handlers *handlers,
                                              void *arg);

/*
 * Sentinel: url's host and port may have changed. A link connected (or
 * connecting) elsewhere drops that connection; a link that is down
 * connects now (its backoff is cut short). Not from inside the link's own
 * callbacks.
 */
void cache_redis_link_kick(struct cache_redis_link *link);

/*
 * Drops the connection (why: for the log), as if it were lost: the owner's
 * lost is called, and a new attempt follows with backoff. Nothing when
 * down.
 */
void cache_redis_link_drop(struct cache_redis_link *link, const char *why);

/* Frees link: commands waiting on its connection are called back with NULL first. */
void cache_redis_link_destroy(struct cache_redis_link *link);

/* A new redis_timeout (a reload), for the next handshake. */
void cache_redis_link_set_timeout(struct cache_redis_link *link, int64_t timeout_ms);

/* True once the handshake is done, until the connection is lost. */
bool cache_redis_link_ready(const struct cache_redis_link *link);

/* The ready command connection to send on, or NULL. */
struct cache_redis_conn *cache_redis_link_conn(const struct cache_redis_link *link);

/*
 * Copies text (NUL-terminated, from Redis) for a log value into buf (len
 * bytes): printable ASCII only, at most 120 bytes. Returns buf.
 */
const char *cache_redis_link_log_text(const char *text, char *buf, size_t len);

/* Script i's SHA-1 (40 hex digits) as SCRIPT LOAD answered, or NULL before. */
const char *cache_redis_link_sha(const struct cache_redis_link *link, int i);

#endif
