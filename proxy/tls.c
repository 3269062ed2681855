/*
 * proxy/tls.c: everything that calls OpenSSL's libssl (see tls.h): the
 * contexts made from the configuration, and one connection's TLS link
 * (struct proxy_tls_link, tls_link.h): the handshake, SSL_read and
 * SSL_write shaped as recv and send (a TLS record that needs the socket the
 * other way is said by proxy_tls_link_wants), the bytes OpenSSL holds
 * decrypted or read ahead (proxy_tls_link_pending), and the reason a
 * handshake or a record failed, in words a user can act on. Which events
 * a connection registers, and when its callbacks run, is proxy/conn.c's:
 * this file knows nothing of libevent but the EV_READ and EV_WRITE values.
 *
 * Contexts: TLS 1.2 or later; no renegotiation; a peer closing without
 * close_notify reads as an end of stream (the wire protocol frames every
 * message by its length, so a cut is seen as a message cut short); partial
 * writes on and a write retried from a moved buffer allowed (the output is
 * an evbuffer: proxy/conn.c retries with at least the first 16 KiB of it,
 * never fewer bytes than the record pending); read-ahead on (one recv
 * takes as much as the socket holds, not a record header then its body);
 * buffers released while idle (an idle TLS connection holds no record
 * buffer). A key file with a passphrase is refused, never prompted for.
 */
#include "proxy/tls.h"

#include "conf/conf.h"
#include "conf/error.h"
#include "proxy/tls_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct proxy_tls {
    SSL_CTX *ctx;
    bool server;        /* accepts clients */
    bool check_host;    /* upstream: the certificate must name the host */
    const char *relaxed;
};

struct proxy_tls_link {
    SSL *ssl;
    bool server;
    bool peeked;  /* server: the client's first bytes were looked at */
    bool open;    /* the handshake ended well: a close_notify may be sent */
    bool failed;  /* a fatal error: no close_notify */
    bool eof;     /* the end of stream was seen behind bytes returned */
    int err_pending; /* errno of a record that failed behind bytes returned (why set):
                      * the next recv reports it; 0 when none */
    bool full;    /* the last recv filled its buffer: whole records may wait inside */
    bool got_data; /* application bytes were read */
    bool refused;  /* connecting: an alert came before any application byte */
    short wants;  /* EV_READ: a write waits for the socket to be readable; EV_WRITE: a read
                   * waits for it to be writable */
    char why[400];
};

/* OpenSSL's first queued error in words ("" when none), the queue emptied. */
static void
ssl_reason(char *out, size_t len)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    if (r)
        snprintf(out, len, "%s", r);
    else if (e)
        snprintf(out, len, "OpenSSL error %lx", e);
    else
        out[0] = '\0';
    ERR_clear_error();
}

static void
set_error(bson_error_t *error, const char *what, const char *file)
{
    char reason[200];

    ssl_reason(reason, sizeof reason);
    bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_TLS, "%s %s: %s", what, file,
                   reason[0] ? reason : "rejected");
}

/* No passphrase prompt on the terminal: an encrypted key is refused (a passphrase
 * would be a secret in the URI or the configuration, shown where they are). */
static int
password_cb(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return 0;
}

static SSL_CTX *
new_ctx(bool server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* TLS 1.2 with AEAD suites only (TLS 1.3 has no other): no CBC, whose
     * multi-record writes a retry with less data would break. */
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM");
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_passwd_cb(ctx, password_cb);
    return ctx;
}

/* A certificate chain and its key (key_file may be the same PEM file). */
static bool
use_cert(SSL_CTX *ctx, const char *cert_file, const char *key_file, bson_error_t *error)
{
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        set_error(error, "cannot use the certificate file", cert_file);
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_TLS,
                           "the private key in %s does not match the certificate in %s",
                           key_file, cert_file);
            return false;
        }
        set_error(error, "cannot use the private key file", key_file);
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        set_error(error, "the private key does not match the certificate of", cert_file);
        return false;
    }
    return true;
}

struct proxy_tls *
proxy_tls_clients_new(const char *cert_file, const char *key_file, const char *ca_file,
                      bson_error_t *error)
{
    static const unsigned char sid[] = "mongocache";
    struct proxy_tls *tls = bson_malloc0(sizeof *tls);

    tls->server = true;
    tls->relaxed = "";
    tls->ctx = new_ctx(true);
    if (!tls->ctx) {
        set_error(error, "cannot make a TLS context for", "clients");
        goto fail;
    }
    if (!use_cert(tls->ctx, cert_file, key_file, error))
        goto fail;
    SSL_CTX_set_session_id_context(tls->ctx, sid, sizeof sid - 1);
    if (ca_file && ca_file[0]) {
        STACK_OF(X509_NAME) *names;

        if (SSL_CTX_load_verify_locations(tls->ctx, ca_file, NULL) != 1) {
            set_error(error, "cannot read the CA file", ca_file);
            goto fail;
        }
        names = SSL_load_client_CA_file(ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(tls->ctx, names);
        SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return tls;
fail:
    proxy_tls_destroy(tls);
    return NULL;
}

bool
proxy_tls_clients_load(const struct conf *conf, struct proxy_tls **out, bson_error_t *error)
{
    bool cert = conf->tls_cert_file[0] != '\0', key = conf->tls_key_file[0] != '\0';

    *out = NULL;
    if (!cert && !key && !conf->tls_ca_file[0])
        return true;
    if (!cert || !key) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_TLS,
                       "tls_cert_file and tls_key_file go together: set both for TLS with "
                       "clients (tls_ca_file needs them too)");
        return false;
    }
    *out = proxy_tls_clients_new(conf->tls_cert_file, conf->tls_key_file, conf->tls_ca_file,
                                 error);
    return *out != NULL;
}

struct proxy_tls *
proxy_tls_upstream_new(const char *uri_text, bson_error_t *error)
{
    struct proxy_tls *tls = NULL;
    mongoc_uri_t *uri;
    const char *ca, *certkey;
    bool any_cert, any_host;

    memset(error, 0, sizeof *error);
    uri = mongoc_uri_new_with_error(uri_text, error);
    if (!uri)
        return NULL;
    if (!mongoc_uri_get_tls(uri)) {
        mongoc_uri_destroy(uri);
        return NULL;
    }
    ca = mongoc_uri_get_option_as_utf8(uri, MONGOC_URI_TLSCAFILE, NULL);
    certkey = mongoc_uri_get_option_as_utf8(uri, MONGOC_URI_TLSCERTIFICATEKEYFILE, NULL);
    any_cert = mongoc_uri_get_option_as_bool(uri, MONGOC_URI_TLSALLOWINVALIDCERTIFICATES, false) ||
               mongoc_uri_get_option_as_bool(uri, MONGOC_URI_TLSINSECURE, false);
    any_host = any_cert ||
               mongoc_uri_get_option_as_bool(uri, MONGOC_URI_TLSALLOWINVALIDHOSTNAMES, false);

    tls = bson_malloc0(sizeof *tls);
    tls->check_host = !any_host;
    tls->relaxed = any_cert ? "certificate" : any_host ? "hostname" : "";
    tls->ctx = new_ctx(false);
    if (!tls->ctx) {
        set_error(error, "cannot make a TLS context for", "the upstream");
        goto fail;
    }
    if (ca && SSL_CTX_load_verify_locations(tls->ctx, ca, NULL) != 1) {
        set_error(error, "tlsCAFile: cannot read", ca);
        goto fail;
    }
    if (!ca && SSL_CTX_set_default_verify_paths(tls->ctx) != 1) {
        set_error(error, "cannot load the system's CA certificates for", "the upstream");
        goto fail;
    }
    if (certkey && !use_cert(tls->ctx, certkey, certkey, error))
        goto fail;
    SSL_CTX_set_verify(tls->ctx, any_cert ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    mongoc_uri_destroy(uri);
    return tls;
fail:
    mongoc_uri_destroy(uri);
    proxy_tls_destroy(tls);
    return NULL;
}

void
proxy_tls_destroy(struct proxy_tls *tls)
{
    if (!tls)
        return;
    SSL_CTX_free(tls->ctx); /* accepts NULL; live connections hold their own reference */
    bson_free(tls);
}

struct ssl_ctx_st *
proxy_tls_ctx(const struct proxy_tls *tls)
{
    return tls->ctx;
}

const char *
proxy_tls_relaxed(const struct proxy_tls *tls)
{
    return tls->relaxed;
}

void
proxy_tls_describe(const struct proxy_tls *tls, char *subject, char *not_after, char *serial)
{
    X509 *cert = SSL_CTX_get0_certificate(tls->ctx);
    char *hex = NULL;
    BIGNUM *bn;
    BIO *bio;

    subject[0] = not_after[0] = serial[0] = '\0';
    if (!cert)
        return;
    X509_NAME_oneline(X509_get_subject_name(cert), subject, PROXY_TLS_FIELD);
    bio = BIO_new(BIO_s_mem());
    if (bio && ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
        int n = BIO_read(bio, not_after, PROXY_TLS_FIELD - 1);

        not_after[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    if (bn)
        hex = BN_bn2hex(bn);
    BN_free(bn);
    snprintf(serial, PROXY_TLS_FIELD, "%s", hex ? hex : "");
    OPENSSL_free(hex);
}

bool
proxy_tls_check_file(enum proxy_tls_file kind, const char *path, char *why, size_t why_len)
{
    static const char *const what[] = {"a PEM certificate", "a PEM private key (not encrypted)",
                                       "PEM CA certificates"};
    BIO *bio;
    bool good = false;

    if (!path[0])
        return true;
    ERR_clear_error();
    bio = BIO_new_file(path, "r");
    if (!bio) {
        snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
        ERR_clear_error();
        return false;
    }
    if (kind == PROXY_TLS_FILE_KEY) {
        EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, password_cb, NULL);

        good = key != NULL;
        EVP_PKEY_free(key);
    } else {
        X509 *cert = PEM_read_bio_X509(bio, NULL, password_cb, NULL);

        good = cert != NULL;
        X509_free(cert);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (!good)
        snprintf(why, why_len, "%s does not hold %s", path, what[kind]);
    return good;
}

bool
proxy_tls_uri_key_supported(const char *key, size_t len)
{
    static const char *const keys[] = {
        MONGOC_URI_TLS,
        MONGOC_URI_SSL,
        MONGOC_URI_TLSCAFILE,
        MONGOC_URI_TLSCERTIFICATEKEYFILE,
        MONGOC_URI_TLSALLOWINVALIDHOSTNAMES,
        MONGOC_URI_TLSALLOWINVALIDCERTIFICATES,
        MONGOC_URI_TLSINSECURE,
        MONGOC_URI_SSLCERTIFICATEAUTHORITYFILE,
        MONGOC_URI_SSLCLIENTCERTIFICATEKEYFILE,
        MONGOC_URI_SSLALLOWINVALIDCERTIFICATES,
        MONGOC_URI_SSLALLOWINVALIDHOSTNAMES,
    };

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i]) == len && strncasecmp(keys[i], key, len) == 0)
            return true;
    return false;
}

/* ---- one connection's link ------------------------------------------------ */

struct proxy_tls_link *
proxy_tls_link_new(const struct proxy_tls *tls, const char *host)
{
    struct proxy_tls_link *link;
    SSL *ssl = SSL_new(tls->ctx);

    if (!ssl)
        return NULL;
    link = bson_malloc0(sizeof *link);
    link->ssl = ssl;
    link->server = tls->server;
    if (tls->server) {
        SSL_set_accept_state(ssl);
        return link;
    }
    SSL_set_connect_state(ssl);
    if (host && host[0]) {
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;

        if (!is_ip)
            SSL_set_tlsext_host_name(ssl, host); /* SNI names a host, never an address */
        if (tls->check_host) {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
                      : SSL_set1_host(ssl, host) != 1) {
                proxy_tls_link_free(link);
                return NULL;
            }
        }
    }
    return link;
}

void
proxy_tls_link_free(struct proxy_tls_link *link)
{
    if (!link)
        return;
    if (link->open && !link->failed)
        (void)SSL_shutdown(link->ssl); /* one try at close_notify: the socket closes next */
    SSL_free(link->ssl);
    ERR_clear_error();
    bson_free(link);
}

bool
proxy_tls_link_set_fd(struct proxy_tls_link *link, int fd)
{
    return SSL_set_fd(link->ssl, fd) == 1;
}

/* The handshake failed: why, in words. */
static void
handshake_failed(struct proxy_tls_link *link, int err)
{
    long verify = SSL_get_verify_result(link->ssl);
    char reason[160];

    link->failed = true;
    ssl_reason(reason, sizeof reason);
    if (err == SSL_ERROR_SYSCALL && !reason[0])
        snprintf(reason, sizeof reason, "%s", errno ? strerror(errno) : "connection closed");
    if (verify != X509_V_OK && !link->server)
        snprintf(link->why, sizeof link->why,
                 "the server's certificate was refused: %s (%s)",
                 X509_verify_cert_error_string(verify), reason);
    else if (verify != X509_V_OK)
        snprintf(link->why, sizeof link->why, "the client's certificate was refused: %s (%s)",
                 X509_verify_cert_error_string(verify), reason);
    else if (link->server && strstr(reason, "peer did not return a certificate"))
        snprintf(link->why, sizeof link->why,
                 "the client sent no certificate, and tls_ca_file requires one (%s)", reason);
    else if (strstr(reason, "alert"))
        snprintf(link->why, sizeof link->why, "the %s refused the handshake: %s",
                 link->server ? "client" : "server", reason);
    else
        snprintf(link->why, sizeof link->why, "TLS handshake failed: %s", reason);
}

/*
 * A client's first bytes on a TLS port: a TLS handshake record starts with
 * 22 (0x16); a MongoDB message with its length, little-endian. DONE when it
 * is TLS; else WANT_READ, EOF or FAILED (why says what came instead).
 */
static enum proxy_tls_step
peek_client(struct proxy_tls_link *link, int fd)
{
    uint8_t b[16];
    ssize_t n;

    do
        n = recv(fd, b, sizeof b, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return PROXY_TLS_WANT_READ;
    if (n == 0)
        return PROXY_TLS_EOF;
    if (n < 0) {
        link->failed = true;
        snprintf(link->why, sizeof link->why, "TLS handshake failed: %s", strerror(errno));
        return PROXY_TLS_FAILED;
    }
    if (b[0] == 0x16 && (n < 2 || b[1] == 0x03)) /* a handshake record, version 3.x */
        return PROXY_TLS_DONE;
    link->failed = true;
    if (n == (ssize_t)sizeof b) {
        int32_t opcode = (int32_t)((uint32_t)b[12] | (uint32_t)b[13] << 8 |
                                   (uint32_t)b[14] << 16 | (uint32_t)b[15] << 24);

        if (opcode == 2013 || opcode == 2004 || opcode == 2012) {
            snprintf(link->why, sizeof link->why,
                     "plaintext on the TLS port: the client sent a MongoDB message (opcode %d) "
                     "without TLS; it must connect with tls=true",
                     (int)opcode);
            return PROXY_TLS_FAILED;
        }
    }
    snprintf(link->why, sizeof link->why,
             "plaintext on the TLS port: the client's first byte is 0x%02x, not a TLS "
             "handshake; it must connect with tls=true",
             b[0]);
    return PROXY_TLS_FAILED;
}

enum proxy_tls_step
proxy_tls_link_handshake(struct proxy_tls_link *link, int fd)
{
    int r, err;

    if (link->server && !link->peeked) {
        enum proxy_tls_step st = peek_client(link, fd);

        if (st != PROXY_TLS_DONE)
            return st;
        link->peeked = true;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(link->ssl);
    if (r == 1) {
        link->open = true;
        return PROXY_TLS_DONE;
    }
    err = SSL_get_error(link->ssl, r);
    if (err == SSL_ERROR_WANT_READ)
        return PROXY_TLS_WANT_READ;
    if (err == SSL_ERROR_WANT_WRITE)
        return PROXY_TLS_WANT_WRITE;
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0 &&
                                         ERR_peek_error() == 0 && !link->server)) {
        snprintf(link->why, sizeof link->why,
                 "TLS handshake failed: the %s closed the connection (does it speak TLS?)",
                 link->server ? "client" : "server");
        link->failed = true;
        return PROXY_TLS_FAILED;
    }
    if (err == SSL_ERROR_SYSCALL && errno == 0 && ERR_peek_error() == 0)
        return PROXY_TLS_EOF; /* a client gone mid-handshake */
    handshake_failed(link, err);
    return PROXY_TLS_FAILED;
}

/* A record failed after the handshake: errno and why set. */
static void
io_failed(struct proxy_tls_link *link, int err)
{
    char reason[160];
    int saved = errno;

    link->failed = true;
    ssl_reason(reason, sizeof reason);
    if (!link->server && !link->got_data && strstr(reason, "alert")) {
        /* TLS 1.3: the server judges the client's certificate after the client's last
         * flight, so its refusal comes as the first record read; it read nothing of ours. */
        link->refused = true;
        snprintf(link->why, sizeof link->why, "the server refused the TLS handshake: %s%s",
                 reason,
                 strstr(reason, "certificate required")
                     ? " (it requires a client certificate: set tlsCertificateKeyFile in the "
                       "upstream URI)"
                     : "");
        errno = EPROTO;
        return;
    }
    if (err == SSL_ERROR_SYSCALL && saved) {
        /* The socket's own error (a reset, ...): reported by errno as on plaintext, with no
         * TLS reason, so that it is no TLS refusal in the logs. */
        errno = saved;
        return;
    }
    snprintf(link->why, sizeof link->why, "TLS: %s", reason[0] ? reason : "connection broken");
    errno = EPROTO;
}

ssize_t
proxy_tls_link_recv(struct proxy_tls_link *link, void *buf, size_t len)
{
    size_t total = 0;

    link->full = false;
    if (link->err_pending) {
        errno = link->err_pending; /* OpenSSL would not say it again: its queue is spent */
        link->err_pending = 0;
        return -1;
    }
    if (link->eof)
        return 0;
    if (link->wants == EV_WRITE)
        link->wants = 0; /* the read is retried now */
    while (total < len) {
        size_t room = len - total;
        int n, err;

        ERR_clear_error();
        errno = 0;
        n = SSL_read(link->ssl, (uint8_t *)buf + total, room > INT_MAX ? INT_MAX : (int)room);
        if (n > 0) {
            link->got_data = true;
            total += (size_t)n;
            if (!SSL_has_pending(link->ssl))
                break; /* the rest is in the socket: the next poll says when */
            continue;
        }
        err = SSL_get_error(link->ssl, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (err == SSL_ERROR_WANT_WRITE)
                link->wants = EV_WRITE;
            if (total > 0)
                break;
            errno = EAGAIN;
            return -1;
        }
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
            if (total > 0) {
                link->eof = true; /* returned by the next call */
                break;
            }
            return 0;
        }
        io_failed(link, err);
        if (total > 0) {
            link->err_pending = errno; /* reported by the next call, made at once */
            break;
        }
        return -1;
    }
    link->full = total == len;
    return (ssize_t)total;
}

ssize_t
proxy_tls_link_send(struct proxy_tls_link *link, const void *buf, size_t len)
{
    int n, err;

    if (len == 0)
        return 0;
    if (link->wants == EV_READ)
        link->wants = 0; /* the write is retried now */
    ERR_clear_error();
    errno = 0;
    n = SSL_write(link->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0)
        return n;
    err = SSL_get_error(link->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        if (err == SSL_ERROR_WANT_READ)
            link->wants = EV_READ;
        errno = EAGAIN;
        return -1;
    }
    io_failed(link, err);
    if (errno == 0)
        errno = EPIPE;
    return -1;
}

bool
proxy_tls_link_pending(const struct proxy_tls_link *link)
{
    /* After a recv that stopped short of its buffer, OpenSSL holds at most
     * part of a record, whose rest the socket will signal. */
    return link->eof || link->err_pending != 0 || (link->full && SSL_has_pending(link->ssl));
}

void
proxy_tls_link_fail(struct proxy_tls_link *link, const char *why)
{
    link->failed = true;
    snprintf(link->why, sizeof link->why, "%s", why);
}

short
proxy_tls_link_wants(const struct proxy_tls_link *link)
{
    return link->wants;
}

bool
proxy_tls_link_open(const struct proxy_tls_link *link)
{
    return link->open;
}

bool
proxy_tls_link_refused(const struct proxy_tls_link *link)
{
    return link->refused;
}

const char *
proxy_tls_link_error(const struct proxy_tls_link *link)
{
    return link->why[0] ? link->why : NULL;
}
