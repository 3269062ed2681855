/*
 * proxy/tls.h: TLS contexts (OpenSSL's SSL_CTX) made from the
 * configuration: one to accept clients with (tls_cert_file, tls_key_file,
 * tls_ca_file), one to reach the upstream with (the tls* options of the
 * upstream URI). What a connection does with one (the handshake, reads and
 * writes on the socket) is proxy/conn.c's, through proxy_conn_tls_accept
 * and proxy_conn_tls_connect.
 *
 * A context is replaced whole on SIGHUP (proxy_tls_clients_new again, the
 * files read anew); connections made with the old one keep it alive
 * (OpenSSL counts the references), new ones get the new one.
 */
#ifndef MONGOCACHE_PROXY_TLS_H
#define MONGOCACHE_PROXY_TLS_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

struct proxy_tls;
struct ssl_ctx_st;

/*
 * The context clients are accepted with: certificate chain from cert_file
 * (PEM), its private key from key_file (PEM), and when ca_file is not
 * empty, a client certificate signed by one of its CAs required of every
 * client. TLS 1.2 or later. NULL with error set (naming the file and what
 * OpenSSL said) when a file cannot be read or the key does not match.
 * Free with proxy_tls_destroy.
 */
struct proxy_tls *proxy_tls_clients_new(const char *cert_file, const char *key_file,
                                        const char *ca_file, bson_error_t *error)
    __attribute__((warn_unused_result));

/*
 * The context the upstream is reached with, from the URI's TLS options
 * (tls / ssl, tlsCAFile, tlsCertificateKeyFile (not encrypted),
 * tlsAllowInvalidHostnames, tlsAllowInvalidCertificates, tlsInsecure): the
 * server's certificate is verified against tlsCAFile (else the system's
 * CAs) and its name against the host, unless the URI turns that off.
 * NULL with error->code 0 when the URI asks for no TLS; NULL with error set
 * when a file cannot be used. Free with proxy_tls_destroy.
 */
struct proxy_tls *proxy_tls_upstream_new(const char *uri, bson_error_t *error)
    __attribute__((warn_unused_result));

/*
 * The clients' context as conf says (tls_cert_file, tls_key_file,
 * tls_ca_file), the files read now: true with *out NULL when TLS is off,
 * true with *out set (free with proxy_tls_destroy), or false with error
 * set (a file that cannot be used, a certificate without its key).
 */
struct conf;
bool proxy_tls_clients_load(const struct conf *conf, struct proxy_tls **out, bson_error_t *error)
    __attribute__((warn_unused_result));

/* Drops the context (connections using it keep it until they close). NULL: nothing. */
void proxy_tls_destroy(struct proxy_tls *tls);

/* The OpenSSL context (borrowed: valid while tls lives). */
struct ssl_ctx_st *proxy_tls_ctx(const struct proxy_tls *tls);

/* What is turned off of the upstream's checks: "" (nothing), "hostname" or "certificate". */
const char *proxy_tls_relaxed(const struct proxy_tls *tls);

/* The context's own certificate, for the log: subject, expiry and serial (hex), each
 * NUL-terminated in a buffer of PROXY_TLS_FIELD bytes ("" when unknown). */
#define PROXY_TLS_FIELD 160
void proxy_tls_describe(const struct proxy_tls *tls, char *subject, char *not_after,
                        char *serial);

/* What a file given to tls_cert_file, tls_key_file or tls_ca_file must hold. */
enum proxy_tls_file {
    PROXY_TLS_FILE_CERT, /* a PEM certificate (chain) */
    PROXY_TLS_FILE_KEY,  /* a PEM private key, not encrypted */
    PROXY_TLS_FILE_CA,   /* PEM CA certificates */
};

/*
 * For the configuration check (proxy/check.c): true when path ("" passes)
 * can be read and holds what kind needs; false with why (why_len bytes)
 * saying what is wrong. Whether a key matches its certificate is checked at
 * start-up (proxy_tls_clients_load).
 */
bool proxy_tls_check_file(enum proxy_tls_file kind, const char *path, char *why, size_t why_len);

/*
 * The upstream URI's TLS option key (len bytes, as written), when it is one
 * the proxy supports: true. Used by proxy/check.c to refuse the others.
 */
bool proxy_tls_uri_key_supported(const char *key, size_t len);

#endif
