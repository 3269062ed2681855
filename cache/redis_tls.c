/*
 * cache/redis_tls.c: the shared tier's TLS context and sessions (see
 * redis_tls.h). It owns the OpenSSL context made from the redis_tls_*
 * options and the settings of each new session: SNI, the name or address
 * the certificate must carry, peer verification. It does not own the
 * handshake or the bytes (libevent's bufferevent_openssl in redis_conn.c),
 * nor the logs (redis_link.c, redis.c).
 */
#include "config.h"

#include "cache/redis_tls.h"

#include "cache/redis.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>

struct cache_redis_tls {
    SSL_CTX *ctx;
    bool allow_invalid_hostnames;
};

/* Sets error from what, file and OpenSSL's first queued error (the queue is emptied). */
static void
tls_error(bson_error_t *error, const char *what, const char *file)
{
    unsigned long err = ERR_get_error();
    char reason[160] = "";

    if (err)
        ERR_error_string_n(err, reason, sizeof reason);
    ERR_clear_error();
    bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_TLS, "%s%s%s%s%s", what,
                   file ? " " : "", file ? file : "", reason[0] ? ": " : "", reason);
}

static bool
set(const char *s)
{
    return s && s[0];
}

/* OpenSSL's pass phrase callback: none (0 bytes), so an encrypted key fails to load. */
static int
no_password(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return 0;
}

struct cache_redis_tls *
cache_redis_tls_new(const struct cache_redis_tls_conf *conf, bson_error_t *error)
{
    struct cache_redis_tls *tls = bson_malloc0(sizeof *tls);

    tls->allow_invalid_hostnames = conf->allow_invalid_hostnames;
    if (set(conf->cert_file) != set(conf->key_file)) {
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_CONFIG,
                       "redis_tls_cert_file and redis_tls_key_file go together");
        goto fail;
    }
    if (!(tls->ctx = SSL_CTX_new(TLS_client_method()))) {
        tls_error(error, "cannot make a TLS context", NULL);
        goto fail;
    }
    if (!SSL_CTX_set_min_proto_version(tls->ctx, TLS1_2_VERSION)) {
        tls_error(error, "cannot require TLS 1.2", NULL);
        goto fail;
    }
    SSL_CTX_set_options(tls->ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, NULL);
    if (set(conf->ca_file) ? !SSL_CTX_load_verify_locations(tls->ctx, conf->ca_file, NULL)
                           : !SSL_CTX_set_default_verify_paths(tls->ctx)) {
        tls_error(error, "cannot read the CA file", set(conf->ca_file) ? conf->ca_file : "(system)");
        goto fail;
    }
    if (set(conf->cert_file)) {
        /* An encrypted key is refused, never a pass phrase asked on the terminal. */
        SSL_CTX_set_default_passwd_cb(tls->ctx, no_password);
        if (!SSL_CTX_use_certificate_chain_file(tls->ctx, conf->cert_file)) {
            tls_error(error, "cannot read the certificate file", conf->cert_file);
            goto fail;
        }
        if (!SSL_CTX_use_PrivateKey_file(tls->ctx, conf->key_file, SSL_FILETYPE_PEM)) {
            tls_error(error, "cannot read the key file", conf->key_file);
            goto fail;
        }
        if (!SSL_CTX_check_private_key(tls->ctx)) {
            tls_error(error, "the key does not match the certificate in", conf->cert_file);
            goto fail;
        }
    }
    /* bufferevent_openssl may hand SSL_write a moved buffer after a partial write. */
    SSL_CTX_set_mode(tls->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return tls;
fail:
    cache_redis_tls_destroy(tls);
    return NULL;
}

void
cache_redis_tls_destroy(struct cache_redis_tls *tls)
{
    if (!tls)
        return;
    SSL_CTX_free(tls->ctx);
    bson_free(tls);
}

bool
cache_redis_tls_hostnames_unchecked(const struct cache_redis_tls *tls)
{
    return tls && tls->allow_invalid_hostnames;
}

struct ssl_st *
cache_redis_tls_session(const struct cache_redis_tls *tls, const char *host, bson_error_t *error)
{
    SSL *ssl = SSL_new(tls->ctx);
    unsigned char addr[sizeof(struct in6_addr)];
    bool numeric = host && (inet_pton(AF_INET, host, addr) == 1 ||
                            inet_pton(AF_INET6, host, addr) == 1);

    if (!ssl) {
        tls_error(error, "cannot make a TLS session", NULL);
        return NULL;
    }
    if (host && !numeric && !SSL_set_tlsext_host_name(ssl, host)) {
        tls_error(error, "cannot set the TLS server name", NULL);
        SSL_free(ssl);
        return NULL;
    }
    if (host && !tls->allow_invalid_hostnames) {
        /* The certificate must name the host we connected to: a DNS name or an IP address. */
        int ok = numeric ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                         : SSL_set1_host(ssl, host);

        if (!ok) {
            tls_error(error, "cannot set the name to check", NULL);
            SSL_free(ssl);
            return NULL;
        }
        if (!numeric)
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    return ssl;
}

void
cache_redis_tls_why(struct ssl_st *ssl, unsigned long err, bool handshake, char *buf,
                    size_t len)
{
    long verdict = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char reason[160] = "";

    if (verdict != X509_V_OK) {
        bson_snprintf(buf, len, "certificate verify failed: %s",
                      X509_verify_cert_error_string(verdict));
        return;
    }
    if (err)
        ERR_error_string_n(err, reason, sizeof reason);
    /* A plaintext server answers the ClientHello with text: "wrong version number". */
    bson_snprintf(buf, len, "%s%s%s%s", handshake ? "TLS handshake failed" : "TLS error",
                  reason[0] ? ": " : "", reason,
                  handshake && ERR_GET_REASON(err) == SSL_R_WRONG_VERSION_NUMBER
                      ? " (is the server's port plaintext? then redis://)"
                      : "");
}
