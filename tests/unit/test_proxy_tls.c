/*
 * tests/unit/test_proxy_tls.c: proxy/conn.c's TLS transport (proxy/tls.c)
 * over socketpairs, against an OpenSSL client driven by hand: the
 * handshake, then records that OpenSSL read ahead and holds while the
 * socket has nothing more (no socket event will announce them), read with
 * reading on and after reading was paused and resumed; a large send that
 * the socket takes in part (OpenSSL's retries of a pending record, from an
 * evbuffer whose pieces move), arriving whole and in order; and the
 * handshake refused for a plaintext client, with the reason. The
 * certificate is made here (an EC key, self-signed) in a temporary
 * directory. Owns nothing beyond the test.
 */
#include "proxy/conn.h"
#include "proxy/io.h"
#include "proxy/tls.h"
#include "tap.h"

#include <bson/bson.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct seen {
    uint8_t *got;
    size_t len, cap;
    int reads;
    int events;
    short what;
    bool pause_after_first;
};

static void
on_read(struct proxy_conn *conn, void *arg)
{
    struct seen *s = arg;
    size_t n = proxy_conn_input_length(conn);

    s->reads++;
    if (s->len + n > s->cap)
        n = s->cap - s->len;
    proxy_conn_remove(conn, s->got + s->len, n);
    s->len += n;
    if (s->pause_after_first && s->reads == 1)
        proxy_conn_read_enable(conn, false);
}

static void
on_event(struct proxy_conn *conn, short what, void *arg)
{
    struct seen *s = arg;

    (void)conn;
    s->events++;
    s->what = what;
}

#define RUN_UNTIL(base, cond)                                                                      \
    do {                                                                                           \
        struct timeval tenms_ = {0, 10000};                                                        \
        for (int turn_ = 0; turn_ < 300 && !(cond); turn_++) {                                     \
            event_base_loopexit(base, &tenms_);                                                    \
            event_base_loop(base, EVLOOP_ONCE);                                                    \
        }                                                                                          \
    } while (0)

/* A self-signed certificate and its key in dir: cert.pem, key.pem. */
static void
make_cert(const char *dir)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    char path[512];
    FILE *f;

    if (!key || !x)
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if (!X509_sign(x, key, EVP_sha256()))
        abort();
    snprintf(path, sizeof path, "%s/cert.pem", dir);
    f = fopen(path, "w");
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof path, "%s/key.pem", dir);
    f = fopen(path, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

struct rig {
    int sv[2];
    struct proxy_conn *conn;
    SSL *client;
    struct seen s;
};

/* The proxy's side accepts on sv[0] (reading off); the client handshakes on sv[1]. */
static bool
rig_up(struct rig *r, struct event_base *base, struct proxy_io_loop *loop,
       const struct proxy_tls *tls, SSL_CTX *cctx, size_t cap)
{
    bool done = false;

    memset(r, 0, sizeof *r);
    r->s.got = bson_malloc(cap);
    r->s.cap = cap;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, r->sv) != 0)
        abort();
    evutil_make_socket_nonblocking(r->sv[0]);
    evutil_make_socket_nonblocking(r->sv[1]);
    r->conn = proxy_conn_new(base, loop, r->sv[0]);
    proxy_conn_setcb(r->conn, on_read, NULL, on_event, &r->s);
    if (!proxy_conn_tls_accept(r->conn, tls, 0))
        abort();
    proxy_conn_write_enable(r->conn, true);
    r->client = SSL_new(cctx);
    SSL_set_fd(r->client, r->sv[1]);
    SSL_set_connect_state(r->client);
    for (int i = 0; i < 300 && !done; i++) {
        done = SSL_do_handshake(r->client) == 1;
        RUN_UNTIL(base, true);
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    /* The server's side is done once it has read the client's last flight: no interest
     * left (reading is off, nothing queued). */
    RUN_UNTIL(base, proxy_conn_interest(r->conn) == 0);
    return done && proxy_conn_interest(r->conn) == 0;
}

static void
rig_down(struct rig *r)
{
    proxy_conn_free(r->conn);
    SSL_free(r->client);
    close(r->sv[1]);
    bson_free(r->s.got);
}

static void
pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + seed + (i >> 9));
}

/* The client writes all n bytes (the socket's buffers hold them). */
static bool
client_write(SSL *c, const uint8_t *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        int w = SSL_write(c, p + off, (int)(n - off));

        if (w <= 0)
            return false;
        off += (size_t)w;
    }
    return true;
}

/*
 * 100,000 bytes (seven records) sent before the proxy reads, read with
 * reading on, or paused after the first read and resumed. The proxy's
 * context reads ahead into a 256 KiB buffer here (main() sets it), so the
 * first recv takes every record: a read then fills the loop's 64 KiB buffer
 * and leaves whole records inside OpenSSL with the socket empty. No socket
 * event will announce them; conn.c's tls_kick reads them (after a read that
 * filled the buffer, and when reading is turned back on).
 */
static void
test_read_ahead(struct event_base *base, struct proxy_io_loop *loop, const struct proxy_tls *tls,
                SSL_CTX *cctx, bool pause)
{
    const size_t n = 100000;
    uint8_t *want = bson_malloc(n);
    struct rig r;
    const char *label = pause ? "paused after the first read, then resumed" : "reading on";

    pattern(want, n, pause ? 3 : 1);
    ok(rig_up(&r, base, loop, tls, cctx, n), "handshake (%s)", label);
    ok(client_write(r.client, want, n), "the client wrote %zu bytes (%s)", n, label);
    r.s.pause_after_first = pause;
    proxy_conn_read_enable(r.conn, true);
    if (pause) {
        RUN_UNTIL(base, r.s.reads >= 1);
        RUN_UNTIL(base, false); /* a while: nothing more may be read while paused */
        ok(r.s.reads == 1 && r.s.len < n, "paused: one read (%zu bytes), nothing after",
           r.s.len);
        proxy_conn_read_enable(r.conn, true);
    }
    RUN_UNTIL(base, r.s.len == n);
    ok(r.s.len == n && memcmp(r.s.got, want, n) == 0,
       "every byte read, though OpenSSL held the last records with the socket empty (%s: "
       "%zu of %zu, %d reads)",
       label, r.s.len, n, r.s.reads);
    is_int(r.s.events, 0, "no event (%s)", label);
    rig_down(&r);
    bson_free(want);
}

/*
 * A good record and a forged one (an application-data record whose tag
 * cannot verify) arrive together: OpenSSL reads both ahead, the first
 * recv returns the good record's bytes and meets the error behind them.
 * No socket event will come (the socket is empty, the peer silent): the
 * error must still be reported at once, not left until a timeout.
 */
static void
test_corrupt_tail(struct event_base *base, struct proxy_io_loop *loop,
                  const struct proxy_tls *tls, SSL_CTX *cctx)
{
    const size_t n = 1000;
    uint8_t want[1000], forged[5 + 64];
    struct rig r;

    pattern(want, n, 9);
    memset(forged, 0xA5, sizeof forged);
    forged[0] = 0x17; /* application data */
    forged[1] = 0x03;
    forged[2] = 0x03;
    forged[3] = 0;
    forged[4] = 64;
    ok(rig_up(&r, base, loop, tls, cctx, n), "handshake (a forged record behind a good one)");
    ok(client_write(r.client, want, n) && write(r.sv[1], forged, sizeof forged) ==
                                              (ssize_t)sizeof forged,
       "the client wrote a good record, then a forged one");
    proxy_conn_read_enable(r.conn, true);
    RUN_UNTIL(base, r.s.events > 0);
    ok(r.s.len == n && memcmp(r.s.got, want, n) == 0, "the good record's bytes were read (%zu)",
       r.s.len);
    ok(r.s.events == 1 && (r.s.what & PROXY_CONN_ERROR) && proxy_conn_tls_error(r.conn),
       "the forged record ends the connection at once, as an error with its reason (events %d, "
       "what 0x%x: %s)",
       r.s.events, (unsigned)r.s.what,
       proxy_conn_tls_error(r.conn) ? proxy_conn_tls_error(r.conn) : "no reason");
    rig_down(&r);
}

/*
 * A hit's two pieces (a 16-byte header, then the stored value) written at
 * once go as one record: the client's first SSL_read returns both (one
 * record per read), not the header alone.
 */
static void
test_joined_record(struct event_base *base, struct proxy_io_loop *loop,
                   const struct proxy_tls *tls, SSL_CTX *cctx)
{
    uint8_t head[16], body[300], got[400];
    struct iovec iov[2] = {{head, sizeof head}, {body, sizeof body}};
    struct rig r;
    size_t taken;
    int m = -1;

    pattern(head, sizeof head, 4);
    pattern(body, sizeof body, 5);
    ok(rig_up(&r, base, loop, tls, cctx, 16), "handshake (two pieces written at once)");
    taken = proxy_conn_write_now(r.conn, iov, 2);
    for (int i = 0; i < 200 && m <= 0; i++) {
        m = SSL_read(r.client, got, (int)sizeof got);
        if (m <= 0)
            RUN_UNTIL(base, true);
    }
    ok(taken == sizeof head + sizeof body && m == (int)(sizeof head + sizeof body) &&
           memcmp(got, head, sizeof head) == 0 && memcmp(got + sizeof head, body, sizeof body) == 0,
       "a header and its value go as one record (taken %zu, the first read %d bytes)", taken, m);
    rig_down(&r);
}

/* A large send the socket takes in part: records retried from the evbuffer as it moves. */
static void
test_large_send(struct event_base *base, struct proxy_io_loop *loop, const struct proxy_tls *tls,
                SSL_CTX *cctx)
{
    const size_t n = 3 * 1024 * 1024 + 12345;
    static const size_t pieces[] = {100, 20000, 7, 70000, 16384, 1, 300000};
    uint8_t *want = bson_malloc(n), *got = bson_malloc(n);
    struct evbuffer *data = evbuffer_new();
    struct iovec iov[2];
    size_t off = 0, len = 0, first;
    struct rig r;
    int rounds = 0;

    pattern(want, n, 9);
    ok(rig_up(&r, base, loop, tls, cctx, 16), "handshake (large send)");
    /* Write now: two pieces, as a hit's header and stored reply go. */
    iov[0].iov_base = want;
    iov[0].iov_len = 16;
    iov[1].iov_base = want + 16;
    iov[1].iov_len = 100000;
    first = proxy_conn_write_now(r.conn, iov, 2);
    off = first;
    if (off < 16 + 100000) {
        evbuffer_add(data, want + off, 16 + 100000 - off);
        proxy_conn_send(r.conn, data);
    }
    off = 16 + 100000;
    for (size_t i = 0; off < n; i = (i + 1) % (sizeof pieces / sizeof pieces[0])) {
        size_t k = pieces[i] < n - off ? pieces[i] : n - off;

        evbuffer_add(data, want + off, k);
        proxy_conn_send(r.conn, data);
        off += k;
    }
    ok(evbuffer_get_length(proxy_conn_output(r.conn)) > 0,
       "the socket took part (%zu by write now), the rest is queued (%zu)", first,
       evbuffer_get_length(proxy_conn_output(r.conn)));
    while (len < n && rounds++ < 20000) {
        int m = SSL_read(r.client, got + len, (int)(n - len));

        if (m > 0)
            len += (size_t)m;
        else
            event_base_loop(base, EVLOOP_NONBLOCK);
    }
    ok(len == n && memcmp(got, want, n) == 0, "every byte arrived, in order (%zu of %zu)", len,
       n);
    is_int(r.s.events, 0, "no error while the writes were retried");
    is_int((long long)evbuffer_get_length(proxy_conn_output(r.conn)), 0, "nothing left queued");
    rig_down(&r);
    evbuffer_free(data);
    bson_free(want);
    bson_free(got);
}

/* A plaintext MongoDB client on the TLS side: READING|ERROR, and why. */
static void
test_plaintext_client(struct event_base *base, struct proxy_io_loop *loop,
                      const struct proxy_tls *tls, uint8_t len_low)
{
    /* The message's length's low byte: 0x16 (a message of 278 bytes) begins like a TLS
     * record, whose second byte (0x03) a MongoDB length's does not match. */
    uint8_t hello[] = {len_low, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0,
                       0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    struct seen s = {0};
    struct proxy_conn *conn;
    int sv[2];
    const char *why;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    evutil_make_socket_nonblocking(sv[0]);
    conn = proxy_conn_new(base, loop, sv[0]);
    proxy_conn_setcb(conn, on_read, NULL, on_event, &s);
    if (!proxy_conn_tls_accept(conn, tls, 0))
        abort();
    proxy_conn_read_enable(conn, true);
    if (write(sv[1], hello, sizeof hello) != (ssize_t)sizeof hello)
        abort();
    RUN_UNTIL(base, s.events > 0);
    why = proxy_conn_tls_error(conn);
    ok(s.events == 1 && s.what == (PROXY_CONN_READING | PROXY_CONN_ERROR),
       "plaintext client (first byte 0x%02x): READING|ERROR (%d events, what 0x%x)", len_low,
       s.events, s.what);
    ok(why && strstr(why, "plaintext on the TLS port") && strstr(why, "opcode 2013"),
       "... saying so: %s", why ? why : "(none)");
    proxy_conn_free(conn);
    close(sv[1]);
}

int
main(void)
{
    struct event_base *base = event_base_new();
    /* Zeroed: proxy_io_loop_free frees every field that is set (the compressors' too). */
    struct proxy_io_loop *loop = bson_malloc0(sizeof *loop);
    char dir[] = "/tmp/test_proxy_tls.XXXXXX", cert[600], key[600];
    struct proxy_tls *tls;
    bson_error_t error;
    SSL_CTX *cctx;

    signal(SIGPIPE, SIG_IGN);
    loop->scratch = evbuffer_new();
    if (!mkdtemp(dir))
        abort();
    make_cert(dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    tls = proxy_tls_clients_new(cert, key, "", &error);
    ok(tls != NULL, "the clients' context: %s", tls ? "made" : error.message);
    if (!tls)
        return done_testing();
    /* Read-ahead takes everything the socket holds at once (see test_read_ahead). */
    SSL_CTX_set_default_read_buffer_len(proxy_tls_ctx(tls), 256 * 1024);
    cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(cctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    test_read_ahead(base, loop, tls, cctx, false);
    test_read_ahead(base, loop, tls, cctx, true);
    test_large_send(base, loop, tls, cctx);
    test_plaintext_client(base, loop, tls, 0x3a);
    test_plaintext_client(base, loop, tls, 0x16);
    test_corrupt_tail(base, loop, tls, cctx);
    test_joined_record(base, loop, tls, cctx);

    SSL_CTX_free(cctx);
    proxy_tls_destroy(tls);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    proxy_io_loop_free(loop);
    event_base_free(base);
    return done_testing();
}
