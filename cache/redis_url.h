/*
 * cache/redis_url.h: the Redis URL the shared tier (cache/redis.h) connects
 * to: parsing, and redaction for logs and error messages. Exposed on its
 * own for the unit tests.
 */
#ifndef MONGOCACHE_CACHE_REDIS_URL_H
#define MONGOCACHE_CACHE_REDIS_URL_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

/* One Sentinel's address (host owned by the URL). */
struct cache_redis_url_node {
    char *host; /* brackets removed */
    uint16_t port;
};

#define CACHE_REDIS_URL_MAX_SENTINELS 16

/* A parsed Redis URL. Strings are owned; free with cache_redis_url_cleanup. */
struct cache_redis_url {
    /*
     * TCP host (brackets removed), or NULL for a unix socket. Sentinel: the
     * current master's, NULL until a Sentinel names it (its owner, redis.c,
     * replaces host and port; the links read them at each connection).
     */
    char *host;
    uint16_t port;  /* 6379 when the URL names none */
    char *path;     /* unix socket path, or NULL */
    char *user;     /* ACL user, or NULL */
    char *password; /* or NULL; wiped on cleanup */
    int db;
    bool tls; /* rediss://, rediss-sentinel:// */
    /* Sentinel (redis-sentinel://, rediss-sentinel://): the master's name and the Sentinels. */
    char *master;
    struct cache_redis_url_node sentinels[CACHE_REDIS_URL_MAX_SENTINELS];
    size_t n_sentinels; /* 0: not a Sentinel URL */
};

/*
 * Parses "redis://[[user]:password@]host[:port][/db]" (user and password
 * may be %-escaped; an IPv6 host is written in brackets), the same with
 * "rediss://" (TLS), "unix:///path[?db=N]", or a Sentinel URL:
 * "redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]"
 * (each host a Sentinel, port 26379 when omitted; the user info is for the
 * master, as with redis://), "rediss-sentinel://" the same over TLS. Returns false with error set when malformed; the
 * message shows the URL with its password redacted.
 */
bool cache_redis_url_parse(const char *text, struct cache_redis_url *url, bson_error_t *error)
    __attribute__((warn_unused_result));
void cache_redis_url_cleanup(struct cache_redis_url *url);

/* Copies a Redis URL with its user info's password replaced by "<redacted>" (bson_free). */
char *cache_redis_url_redact(const char *text);

#endif
