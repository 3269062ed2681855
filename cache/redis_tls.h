/*
 * cache/redis_tls.h: the TLS settings of the shared tier's connections
 * (rediss://): one OpenSSL context made from the configuration, and a new
 * TLS session from it for each connection (cache/redis_conn.c), set to
 * check the server's certificate against the CA file (else the system's
 * CAs) and its name against the host the connection was made to (a name or
 * an IP address), unless hostname checks were turned off.
 * hiredis 0.14 has no TLS: the transport is ours (libevent's
 * bufferevent_openssl, in redis_conn.c).
 */
#ifndef MONGOCACHE_CACHE_REDIS_TLS_H
#define MONGOCACHE_CACHE_REDIS_TLS_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

struct cache_redis_tls;
struct ssl_st;

/* What a context is made from; every string may be NULL or empty. */
struct cache_redis_tls_conf {
    const char *ca_file;   /* PEM CAs the server's certificate must chain to; empty: system CAs */
    const char *cert_file; /* our certificate chain (PEM), for a Redis that asks for one */
    const char *key_file;  /* its private key (PEM); needed with cert_file */
    bool allow_invalid_hostnames; /* the certificate's name is not checked (logged loudly) */
};

/*
 * Makes the context (TLS 1.2 or later, peer verification on). NULL with
 * error set (naming the file and what OpenSSL said) when a file cannot be
 * read or the key does not match the certificate. Free with
 * cache_redis_tls_destroy.
 */
struct cache_redis_tls *cache_redis_tls_new(const struct cache_redis_tls_conf *conf,
                                            bson_error_t *error)
    __attribute__((warn_unused_result));

/* Frees tls (accepts NULL); sessions made from it keep the context alive (OpenSSL counts). */
void cache_redis_tls_destroy(struct cache_redis_tls *tls);

/*
 * A new client session for a connection to host (a name: sent as SNI and
 * checked against the certificate; a numeric address: checked against its
 * IP addresses). The caller owns it (SSL_free, or the bufferevent it is
 * given to with BEV_OPT_CLOSE_ON_FREE). NULL with error set.
 */
struct ssl_st *cache_redis_tls_session(const struct cache_redis_tls *tls, const char *host,
                                       bson_error_t *error) __attribute__((warn_unused_result));

/*
 * Why a handshake (handshake true) or a TLS read or write failed, for a log
 * line: the certificate check's verdict when it failed ("certificate verify
 * failed: hostname mismatch"), else OpenSSL's error err (0: none). Written
 * into buf (len bytes).
 */
void cache_redis_tls_why(struct ssl_st *ssl, unsigned long err, bool handshake, char *buf,
                         size_t len);

/* True when hostname checks are off (for the start-up warning). */
bool cache_redis_tls_hostnames_unchecked(const struct cache_redis_tls *tls);

#endif
