/*
 * cache/redis_conn.c: one connection to Redis (see redis_conn.h). It owns
 * the socket (a libevent bufferevent), resolving the host name (evdns: the
 * event loop never blocks on DNS), the commands not yet written (before the
 * socket is connected, and during a loop turn), the read buffer, the reader
 * of what comes back (redis_resp.c, redis_push.c) and the FIFO that pairs
 * each reply with the command it answers. It does not own what a reply must
 * look like (each command's callback says), reconnection or logs
 * (redis_link.c), timeouts (redis.c).
 *
 * A connection's life:
 *
 *   new ──> resolving ──> connecting ──> connected ──> dead ──> freed
 *            (names only)   (bufferevent)  (replies)    (lost)
 *
 * Commands queue from the start; they are written once connected.
 * "Dead" is one-way: a loss (I/O or protocol) or the owner's free. A dead
 * connection sends and dispatches nothing more; the owner hears of a loss
 * once (lost). Every command waiting is called back exactly once: with its
 * reply, or with NULL when the connection is freed. The struct is freed
 * only by teardown(), and never while one of its own callbacks is on the
 * stack (busy): a free asked for then is done when the outermost one
 * returns.
 *
 * The socket (conf/sock.h), written first and read as the proxy's own
 * (proxy/conn.c): a command is appended to `pending` and a flush event is
 * made active; the flush runs once the loop has run every callback of its
 * turn, so the lookups of all the clients
 * read in one turn go out in one write, written first (no write event
 * armed unless the socket does not take it all). Replies are read without
 * libevent's reader (no ioctl(FIONREAD)): one read() of up to READ_CHUNK
 * bytes into the connection's buffer (64 KB, in the struct: a tier keeps
 * two connections) per readable event, fed straight to the reader. At one
 * client a hit costs a write and a read here, no epoll_ctl.
 *
 * Over TLS (rediss://) the bufferevent is libevent's bufferevent_openssl,
 * made with no socket and connected by bufferevent_socket_connect; it
 * reports "connected" once the handshake, with the certificate and name
 * checks (redis_tls.c), is done, and only then are commands written. Its
 * own read path decrypts into its input buffer, which tls_read_cb drains
 * into the reader; pending is handed to its output (bufferevent_write_buffer).
 * These are the only places the two paths differ; the plaintext path pays
 * one test of conn->tls per flush.
 */
#include "config.h"

#include "cache/redis_conn.h"

#include "cache/redis.h"
#include "cache/redis_tls.h"
#include "conf/sock.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Most bytes one read takes (the replies of many lookups at once). */
#define READ_CHUNK 65536
/*
 * Bytes fed to the reader at a time, its replies handed on before the next:
 * hiredis's reader moves what is left of its buffer down after each reply
 * once 1 KB is consumed, so feeding a whole 64 KB read of many small
 * replies would copy it again for each (at 50 clients, 7,500 more
 * instructions per hit in memcpy, callgrind).
 */
#define FEED_CHUNK 4096

/* A command waiting for its reply. */
struct waiter {
    cache_redis_conn_reply_cb cb;
    void *arg;
    uint32_t spill; /* elements of its reply that may spill (cache_redis_resp_spill) */
};

struct cache_redis_conn {
    struct event_base *base;
    struct cache_redis_conn_handlers handlers;
    void *arg;
    struct bufferevent *bev; /* NULL until the address is known */
    struct evbuffer *pending; /* commands not yet written (not connected, or this turn's) */
    struct event *flush;      /* active when pending is to be written at the turn's end */
    struct evdns_getaddrinfo_request *dns_req; /* a resolution in flight, or NULL */
    struct cache_redis_resp *resp;
    const struct cache_redis_tls *tls; /* TLS (borrowed), or NULL: plaintext */
    char *host;                        /* TLS: the name the certificate must carry */
    struct waiter *fifo; /* a ring: count waiters from head */
    size_t head;
    size_t count;
    size_t cap;
    char *channel; /* subscribed to it; NULL before */
    size_t channel_len;
    bool tcp;
    bool connected;
    bool got_bytes;    /* the server sent something (a loss before that says so) */
    bool flush_queued; /* flush is active */
    bool dead;         /* lost or freed: nothing more sent or dispatched */
    bool detached;     /* freed by the owner: no handler called any more */
    bool free_pending; /* freed while busy: teardown when the stack unwinds */
    bool tearing;
    int busy; /* our callbacks on the stack */
    /* a resolution answered during cache_redis_conn_new */
    bool in_setup;
    bool setup_resolved;
    int setup_result;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint8_t buf[READ_CHUNK]; /* what one read took, until fed to resp */
};

/* ---- the FIFO --------------------------------------------------------------------- */

static void
fifo_push(struct cache_redis_conn *conn, cache_redis_conn_reply_cb cb, void *arg, uint32_t spill)
{
    if (conn->count == conn->cap) {
        size_t cap = conn->cap ? 2 * conn->cap : 16;
        struct waiter *ring = bson_malloc(cap * sizeof *ring);

        for (size_t i = 0; i < conn->count; i++)
            ring[i] = conn->fifo[(conn->head + i) % conn->cap];
        bson_free(conn->fifo);
        conn->fifo = ring;
        conn->head = 0;
        conn->cap = cap;
    }
    conn->fifo[(conn->head + conn->count) % conn->cap] = (struct waiter){cb, arg, spill};
    conn->count++;
}

static struct waiter
fifo_pop(struct cache_redis_conn *conn)
{
    struct waiter w = conn->fifo[conn->head];

    conn->head = (conn->head + 1) % conn->cap;
    conn->count--;
    return w;
}

/* ---- life ---------------------------------------------------------------------------- */

/* The only place conn is freed: its waiters are called back with NULL first. */
static void
teardown(struct cache_redis_conn *conn)
{
    conn->tearing = true;
    if (conn->dns_req) {
        /* evdns calls resolved() later with EVUTIL_EAI_CANCEL, which never touches conn. */
        evdns_getaddrinfo_cancel(conn->dns_req);
        conn->dns_req = NULL;
    }
    if (conn->bev)
        bufferevent_free(conn->bev); /* closes the socket */
    conn->bev = NULL;
    while (conn->count > 0) {
        struct waiter w = fifo_pop(conn);

        (void)w.cb(w.arg, NULL);
    }
    cache_redis_resp_destroy(conn->resp);
    if (conn->flush)
        event_free(conn->flush);
    evbuffer_free(conn->pending);
    bson_free(conn->fifo);
    bson_free(conn->channel);
    bson_free(conn->host);
    bson_free(conn);
}

static void
busy_begin(struct cache_redis_conn *conn)
{
    conn->busy++;
}

/* Ends one of our callbacks; conn may be gone when it returns. */
static void
busy_end(struct cache_redis_conn *conn)
{
    if (--conn->busy == 0 && conn->free_pending)
        teardown(conn);
}

/* The connection is dead: tell the owner once (unless it freed it). */
static void
lose(struct cache_redis_conn *conn, enum cache_redis_conn_loss kind, const char *why)
{
    if (conn->dead)
        return;
    conn->dead = true;
    if (conn->bev)
        bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
    if (!conn->detached && conn->handlers.lost)
        conn->handlers.lost(conn->arg, kind, why);
}

bool
cache_redis_conn_tls_pending(const struct cache_redis_conn *conn)
{
    return conn && conn->tls && !conn->connected;
}

void
cache_redis_conn_free(struct cache_redis_conn *conn)
{
    if (!conn || conn->tearing || conn->free_pending)
        return;
    conn->detached = true;
    conn->dead = true;
    if (conn->busy > 0) {
        conn->free_pending = true;
        if (conn->bev)
            bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
        return;
    }
    teardown(conn);
}

/* ---- replies ---------------------------------------------------------------------------- */

static bool
on_push(void *arg, const struct cache_redis_push *push)
{
    struct cache_redis_conn *conn = arg;

    if (conn->dead) /* freed by an earlier push's handler: read no further */
        return false;
    return conn->handlers.push ? conn->handlers.push(conn->arg, push) : false;
}

/* Reads pushes from what is buffered plus data; a fault loses the connection. */
static void
read_pushes(struct cache_redis_conn *conn, const void *data, size_t len)
{
    bson_error_t error;

    if (!cache_redis_push_feed(conn->resp, conn->channel, conn->channel_len, data, len, on_push,
                               conn, &error))
        lose(conn, CACHE_REDIS_CONN_PROTOCOL, error.message);
}

/* Hands every whole reply buffered to the command it answers. */
static void
dispatch(struct cache_redis_conn *conn)
{
    while (!conn->dead) {
        redisReply *reply;
        struct waiter w;
        bson_error_t error;
        char why[64];
        bool ok;
        int type;

        if (conn->channel) { /* subscribed by the callback of the last reply */
            cache_redis_resp_spill(conn->resp, 0); /* pushes never spill */
            read_pushes(conn, NULL, 0);
            return;
        }
        /* The reply being read is the oldest waiter's (none: nothing may spill). */
        cache_redis_resp_spill(conn->resp, conn->count ? conn->fifo[conn->head].spill : 0);
        switch (cache_redis_resp_next(conn->resp, &reply, &error)) {
        case CACHE_REDIS_RESP_NEED_MORE:
            return;
        case CACHE_REDIS_RESP_ERROR:
            lose(conn, CACHE_REDIS_CONN_PROTOCOL, error.message);
            return;
        case CACHE_REDIS_RESP_REPLY:
            break;
        }
        if (conn->count == 0) {
            bson_snprintf(why, sizeof why, "a reply nobody asked for (type %d)", reply->type);
            lose(conn, CACHE_REDIS_CONN_PROTOCOL, why);
            return;
        }
        w = fifo_pop(conn);
        type = reply->type;
        ok = w.cb(w.arg, reply); /* the reply is the reader's (redis_resp.h) */
        if (!ok) { /* formatted only then: a reply that is fine costs no printf */
            bson_snprintf(why, sizeof why, "a reply of an unexpected shape (type %d)", type);
            lose(conn, CACHE_REDIS_CONN_PROTOCOL, why);
        }
    }
}

/* Feeds n bytes just read to the reader and hands on what they complete. */
static void
take_bytes(struct cache_redis_conn *conn, const uint8_t *data, size_t n)
{
    bson_error_t error;

    for (size_t at = 0; at < n && !conn->dead; at += FEED_CHUNK) {
        size_t len = n - at < FEED_CHUNK ? n - at : FEED_CHUNK;

        if (conn->channel)
            read_pushes(conn, data + at, len);
        else if (!cache_redis_resp_feed(conn->resp, data + at, len, &error))
            lose(conn, CACHE_REDIS_CONN_PROTOCOL, error.message);
        else
            dispatch(conn);
    }
}

/* Writes what is pending, first to the socket, the rest through the bufferevent's queue. */
static void
flush_now(struct cache_redis_conn *conn)
{
    if (conn->dead || !conn->connected || evbuffer_get_length(conn->pending) == 0)
        return;
    if (conn->tls)
        (void)bufferevent_write_buffer(conn->bev, conn->pending); /* encrypted as it goes */
    else
        conf_sock_send(conn->bev, conn->pending);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_redis_conn *conn = arg;

    (void)fd;
    (void)what;
    conn->flush_queued = false;
    flush_now(conn);
}

/* pending is written once the callbacks of this loop turn have run (flush_cb). */
static void
schedule_flush(struct cache_redis_conn *conn)
{
    if (conn->flush_queued || !conn->connected)
        return;
    conn->flush_queued = true;
    event_active(conn->flush, EV_WRITE, 0);
}

/*
 * Why the server closed: before it sent anything, the likely reason is
 * given (a TLS port reached in plaintext closes or resets at once; a
 * server over its maxclients sends an error first, so it is not that).
 */
static const char *
closed_why(const struct cache_redis_conn *conn)
{
    if (conn->got_bytes)
        return "closed by the server";
    return conn->tls ? "closed by the server during or right after the TLS handshake"
                     : "closed by the server before any reply (a TLS port? then rediss://)";
}

/* A socket error: errno's text, with the same hint as closed_why for a reset before any reply. */
static void
error_why(const struct cache_redis_conn *conn, int err, char *why, size_t len)
{
    bson_snprintf(why, len, "%s%s%s", conn->connected ? "" : "connect: ",
                  err ? evutil_socket_error_to_string(err) : "socket error",
                  err == ECONNRESET && !conn->got_bytes && !conn->tls
                      ? " before any reply (a TLS port? then rediss://)"
                      : "");
}

/* TLS: what the bufferevent decrypted, fed to the reader in READ_CHUNK pieces. */
static void
tls_read_cb(struct bufferevent *bev, void *arg)
{
    struct cache_redis_conn *conn = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    busy_begin(conn);
    while (!conn->dead) {
        int n = evbuffer_remove(in, conn->buf, sizeof conn->buf);

        if (n <= 0)
            break;
        conn->got_bytes = true;
        take_bytes(conn, conn->buf, (size_t)n);
    }
    busy_end(conn);
}

/* TLS: the bufferevent reports an error: the certificate check, OpenSSL's reason, or errno. */
static void
tls_lose(struct cache_redis_conn *conn, struct bufferevent *bev)
{
    unsigned long err = bufferevent_get_openssl_error(bev);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    int sock_err = EVUTIL_SOCKET_ERROR();
    char why[200];

    while (bufferevent_get_openssl_error(bev)) /* only the first is told */
        ;
    if (err || (ssl && SSL_get_verify_result(ssl) != X509_V_OK)) {
        cache_redis_tls_why(ssl, err, !conn->connected, why, sizeof why);
        lose(conn, CACHE_REDIS_CONN_TLS, why);
        return;
    }
    if (!conn->connected && sock_err == 0) { /* closed without a word during the handshake */
        lose(conn, CACHE_REDIS_CONN_TLS, closed_why(conn));
        return;
    }
    error_why(conn, sock_err, why, sizeof why);
    lose(conn, CACHE_REDIS_CONN_IO, why);
}

/* The socket is readable (conf_sock_read_take): one read, fed to the reader. */
static void
readable_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_redis_conn *conn = conf_sock_owner(arg);
    ssize_t n;
    char why[160];

    (void)what;
    if (conn->dead) {
        conf_sock_read_enable(conn->bev, false);
        return;
    }
    n = read(fd, conn->buf, sizeof conn->buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    busy_begin(conn);
    if (n > 0) {
        conn->got_bytes = true;
        take_bytes(conn, conn->buf, (size_t)n);
    } else if (n == 0) {
        lose(conn, CACHE_REDIS_CONN_IO, closed_why(conn));
    } else {
        error_why(conn, errno, why, sizeof why);
        lose(conn, CACHE_REDIS_CONN_IO, why);
    }
    busy_end(conn);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct cache_redis_conn *conn = arg;
    char why[160];

    busy_begin(conn);
    if (what & BEV_EVENT_CONNECTED) {
        conn->connected = true;
        if (conn->dead) {
            /* nothing: lost or freed meanwhile */
        } else if (conn->tls) { /* the handshake is done: the bufferevent reads and writes */
            int one = 1;

            (void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            flush_now(conn);
        } else { /* bufferevent_socket_connect assigned the read event: take it now */
            conf_sock_read_take(bev, readable_cb);
            conf_sock_read_enable(bev, true);
            flush_now(conn);
        }
    } else if (what & BEV_EVENT_EOF) {
        if (conn->tls && !conn->connected)
            tls_lose(conn, bev);
        else
            lose(conn, CACHE_REDIS_CONN_IO, closed_why(conn));
    } else if (conn->tls && (what & BEV_EVENT_ERROR)) {
        tls_lose(conn, bev);
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        error_why(conn, EVUTIL_SOCKET_ERROR(), why, sizeof why);
        lose(conn, CACHE_REDIS_CONN_IO, why);
    }
    busy_end(conn);
}

/* ---- connecting ------------------------------------------------------------------------- */

static bool
conn_fail(bson_error_t *error, const char *what, int err)
{
    bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_CONNECT, "%s%s%s", what,
                   err ? ": " : "", err ? strerror(err) : "");
    return false;
}

/* TLS: a bufferevent_openssl, its socket made by bufferevent_socket_connect, and connecting. */
static bool
connect_tls(struct cache_redis_conn *conn, bson_error_t *error)
{
    SSL *ssl = cache_redis_tls_session(conn->tls, conn->host, error);

    if (!ssl)
        return false;
    conn->bev = bufferevent_openssl_socket_new(conn->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                               BEV_OPT_CLOSE_ON_FREE);
    if (!conn->bev) {
        SSL_free(ssl);
        return conn_fail(error, "cannot create a TLS bufferevent", 0);
    }
    /* A server closing without close_notify is an end of stream, not an attack on it. */
    bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
    bufferevent_setcb(conn->bev, tls_read_cb, NULL, event_cb, conn);
    if (bufferevent_socket_connect(conn->bev, (struct sockaddr *)&conn->addr,
                                   (int)conn->addr_len) < 0)
        return conn_fail(error, "connect", errno);
    if (bufferevent_enable(conn->bev, EV_READ | EV_WRITE) != 0)
        return conn_fail(error, "cannot start the TLS handshake", 0);
    return true;
}

/* Creates the socket and the bufferevent and starts connecting to conn->addr. */
static bool
connect_addr(struct cache_redis_conn *conn, bson_error_t *error)
{
    const struct sockaddr *sa = (const struct sockaddr *)&conn->addr;
    int fd;
    int one = 1;

    if (conn->tls)
        return connect_tls(conn, error);
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return conn_fail(error, "socket", errno);
    /* Lookups are small requests pipelined on one connection: no Nagle delay. */
    if (conn->tcp)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn->bev = bufferevent_socket_new(conn->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!conn->bev) {
        close(fd);
        return conn_fail(error, "cannot create a bufferevent", 0);
    }
    /* Reading is taken once connected (event_cb); writing is enabled for what
     * the socket does not take at once (conf_sock_send). */
    bufferevent_setcb(conn->bev, NULL, NULL, event_cb, conn);
    if (bufferevent_socket_connect(conn->bev, (struct sockaddr *)&conn->addr,
                                   (int)conn->addr_len) < 0)
        return conn_fail(error, "connect", errno);
    if (bufferevent_enable(conn->bev, EV_WRITE) != 0)
        return conn_fail(error, "cannot queue output", 0);
    return true;
}

/* Keeps the first IPv4 address of res, else its first IPv6 one (as hiredis 0.14 preferred). */
static bool
pick_addr(struct cache_redis_conn *conn, const struct evutil_addrinfo *res)
{
    const struct evutil_addrinfo *best = NULL;

    for (const struct evutil_addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof conn->addr)
            continue;
        if (!best || (best->ai_family != AF_INET && ai->ai_family == AF_INET))
            best = ai;
    }
    if (!best)
        return false;
    memcpy(&conn->addr, best->ai_addr, best->ai_addrlen);
    conn->addr_len = (socklen_t)best->ai_addrlen;
    return true;
}

static void
resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct cache_redis_conn *conn = arg;
    bson_error_t error;
    char why[160];

    if (result == EVUTIL_EAI_CANCEL) { /* conn was freed: arg is not to be touched */
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    if (result == 0 && !pick_addr(conn, res))
        result = EVUTIL_EAI_NODATA;
    if (res)
        evutil_freeaddrinfo(res);
    if (conn->in_setup) { /* answered at once: cache_redis_conn_new goes on */
        conn->setup_resolved = true;
        conn->setup_result = result;
        return;
    }
    conn->dns_req = NULL;
    busy_begin(conn);
    if (result != 0) {
        bson_snprintf(why, sizeof why, "cannot resolve the host: %s",
                      evutil_gai_strerror(result));
        lose(conn, CACHE_REDIS_CONN_IO, why);
    } else if (!connect_addr(conn, &error)) {
        lose(conn, CACHE_REDIS_CONN_IO, error.message);
    }
    busy_end(conn);
}

/* Fills conn->addr from a unix path or a numeric host; false when host is a name. */
static bool
direct_addr(struct cache_redis_conn *conn, const struct cache_redis_url *url, bool *bad)
{
    *bad = false;
    memset(&conn->addr, 0, sizeof conn->addr);
    if (url->path) {
        struct sockaddr_un *un = (struct sockaddr_un *)&conn->addr;

        if (strlen(url->path) >= sizeof un->sun_path) {
            *bad = true;
            return false;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, url->path, strlen(url->path) + 1);
        conn->addr_len = (socklen_t)sizeof *un;
        return true;
    }
    conn->tcp = true;
    {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&conn->addr;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&conn->addr;

        if (inet_pton(AF_INET, url->host, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons(url->port);
            conn->addr_len = (socklen_t)sizeof *in4;
            return true;
        }
        memset(&conn->addr, 0, sizeof conn->addr);
        if (inet_pton(AF_INET6, url->host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(url->port);
            conn->addr_len = (socklen_t)sizeof *in6;
            return true;
        }
    }
    return false;
}

/* Starts resolving url->host; false with error set when it failed at once. */
static bool
start_resolve(struct cache_redis_conn *conn, struct evdns_base *dns,
              const struct cache_redis_url *url, bson_error_t *error)
{
    struct evutil_addrinfo hints;
    char port[8];

    if (!dns)
        return conn_fail(error, "no DNS resolver for a host name", 0);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    bson_snprintf(port, sizeof port, "%u", (unsigned)url->port);
    conn->in_setup = true;
    conn->dns_req = evdns_getaddrinfo(dns, url->host, port, &hints, resolved, conn);
    conn->in_setup = false;
    if (conn->dns_req)
        return true;
    if (!conn->setup_resolved || conn->setup_result != 0) {
        bson_set_error(error, CACHE_REDIS_ERROR_DOMAIN, CACHE_REDIS_ERR_CONNECT,
                       "cannot resolve the host: %s",
                       evutil_gai_strerror(conn->setup_resolved ? conn->setup_result
                                                                : EVUTIL_EAI_FAIL));
        return false;
    }
    return connect_addr(conn, error);
}

struct cache_redis_conn *
cache_redis_conn_new(struct event_base *base, struct evdns_base *dns,
                     const struct cache_redis_url *url, const struct cache_redis_tls *tls,
                     size_t max_reply, size_t max_elements,
                     const struct cache_redis_conn_handlers *handlers, void *arg,
                     bson_error_t *error)
{
    struct cache_redis_conn *conn = bson_malloc0(sizeof *conn);
    bool bad;
    bool ok;

    conn->base = base;
    conn->handlers = *handlers;
    conn->arg = arg;
    conn->pending = evbuffer_new();
    conn->flush = event_new(base, -1, 0, flush_cb, conn);
    conn->resp = cache_redis_resp_new(max_reply, max_elements);
    conn->tls = tls;
    conn->host = url->host ? bson_strdup(url->host) : NULL;
    if (!conn->pending || !conn->flush || !conn->resp) {
        ok = conn_fail(error, "out of memory", 0);
    } else if (tls && url->path) {
        ok = conn_fail(error, "TLS over a unix socket is not supported", 0);
    } else if (direct_addr(conn, url, &bad)) {
        ok = connect_addr(conn, error);
    } else if (bad) {
        ok = conn_fail(error, "unix socket path too long", 0);
    } else {
        ok = start_resolve(conn, dns, url, error);
    }
    if (!ok) {
        conn->detached = true;
        conn->dead = true;
        teardown(conn);
        return NULL;
    }
    return conn;
}

/* ---- commands ------------------------------------------------------------------------------ */

/* Appends an encoded command to what is pending; false when it cannot be encoded or queued. */
static bool
queue(struct cache_redis_conn *conn, int argc, const char **argv, const size_t *argvlen,
      bool secret)
{
    struct evbuffer *out = conn->pending;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    int rc;

    if (len < 0 || !cmd)
        return false;
    rc = evbuffer_add(out, cmd, (size_t)len);
    if (secret)
        explicit_bzero(cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rc != 0)
        return false;
    schedule_flush(conn);
    return true;
}

bool
cache_redis_conn_send(struct cache_redis_conn *conn, int argc, const char **argv,
                      const size_t *argvlen, bool secret, cache_redis_conn_reply_cb cb, void *arg)
{
    if (!conn || conn->dead || conn->channel || !queue(conn, argc, argv, argvlen, secret))
        return false;
    fifo_push(conn, cb, arg, 0);
    return true;
}

bool
cache_redis_conn_send_raw(struct cache_redis_conn *conn, const void *data, size_t len,
                          cache_redis_conn_reply_cb cb, void *arg)
{
    return cache_redis_conn_send_values(conn, data, len, 0, cb, arg);
}

bool
cache_redis_conn_send_values(struct cache_redis_conn *conn, const void *data, size_t len,
                             uint32_t values, cache_redis_conn_reply_cb cb, void *arg)
{
    if (!conn || conn->dead || conn->channel || evbuffer_add(conn->pending, data, len) != 0)
        return false;
    schedule_flush(conn);
    fifo_push(conn, cb, arg, values);
    return true;
}

bool
cache_redis_conn_send_buffer(struct cache_redis_conn *conn, struct evbuffer *cmd,
                             cache_redis_conn_reply_cb cb, void *arg)
{
    if (!conn || conn->dead || conn->channel || evbuffer_get_length(cmd) == 0 ||
        evbuffer_add_buffer_reference(conn->pending, cmd) != 0)
        return false;
    schedule_flush(conn);
    fifo_push(conn, cb, arg, 0);
    return true;
}

bool
cache_redis_conn_subscribe(struct cache_redis_conn *conn, const char *channel, size_t len)
{
    const char *argv[2] = {"SUBSCRIBE", channel};
    size_t argvlen[2] = {9, len};

    if (!conn || conn->dead || conn->channel || conn->count > 0 ||
        !queue(conn, 2, argv, argvlen, false))
        return false;
    conn->channel = bson_malloc(len + 1);
    memcpy(conn->channel, channel, len);
    conn->channel[len] = '\0';
    conn->channel_len = len;
    return true;
}
