/*
 * proxy/upstream.c: a client's upstream socket (see upstream.h). Owns the
 * connection (proxy/conn.h), the connect timer and reply framing: it waits
 * for a whole reply, checks its header against max_message_size, and hands
 * it to its owner (client.c) through the callbacks it was given (it never
 * calls client.c). What a reply means, and whether it is valid beyond its header,
 * is client.c's business.
 */
#include "proxy/upstream.h"

#include "conf/clock.h"
#include "conf/log.h"
#include "proxy/conn.h"
#include "proxy/io.h"
#include "proxy/server.h"
#include "proxy/stats.h"
#include "proxy/topology.h"
#include "wire/frame.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

struct proxy_upstream {
    struct proxy_server *server;
    const struct proxy_upstream_cbs *cbs; /* the owner's (client.c) */
    void *arg;
    struct proxy_conn *conn;
    struct event *connect_timer; /* until connected */
    bool connected;
    bool connect_failed; /* the connect call itself failed: reported by the timer */
    int connect_errno;
    bool paused;
    bool tracked; /* its buffers count toward max_memory */
    char *address; /* the server it connects to ("host:port"; proxy_server_connect_upstream),
                    * owned */
    bool tcp;      /* not a unix socket */
    bool waiting;  /* for a primary (an election): not connecting yet, the timer running */
};

static void
fail(struct proxy_upstream *up, const char *why)
{
    /* The client destroys us from inside this call. A TLS handshake the server
     * refused after it seemed done took none of what was sent: not connected. */
    up->cbs->on_down(up->arg, why, up->connected && !proxy_conn_tls_refused(up->conn));
}

static void
read_cb(struct proxy_conn *conn, void *arg)
{
    (void)conn;
    proxy_upstream_process(arg);
}

/* Connected: the socket is read from now on, unless paused. */
static void
start_reading(struct proxy_upstream *up)
{
    proxy_conn_read_enable(up->conn, !up->paused);
}

/* Most replies handled in a row before the loop serves other connections
 * (as PROXY_CLIENT_BATCH, proxy/client.c). */
#define PROXY_UPSTREAM_BATCH 8

void
proxy_upstream_process(struct proxy_upstream *up)
{
    uint8_t head[WIRE_HEADER_LEN];
    struct wire_header header;
    bson_error_t error;
    char why[640];
    int handled = 0;

    while (!up->paused) {
        size_t avail = proxy_conn_input_length(up->conn), contig;
        const uint8_t *front;

        if (avail < WIRE_HEADER_LEN)
            return;
        if (handled++ == PROXY_UPSTREAM_BATCH) {
            /* Fairness: the read callback runs again after the loop's next poll. */
            proxy_conn_read_again(up->conn);
            return;
        }
        /* The header, and usually the whole reply, is in the input's first piece. */
        front = proxy_conn_peek(up->conn, &contig);
        if (contig < WIRE_HEADER_LEN) {
            proxy_conn_copyout(up->conn, head, sizeof head);
            front = head;
        }
        if (wire_frame_header(front, WIRE_HEADER_LEN, (int32_t)up->server->conf->max_message_size,
                              &header, &error) != WIRE_OK) {
            snprintf(why, sizeof why, "%s", error.message);
            /* The client answers its oldest request with an error and destroys us. */
            up->cbs->on_invalid(up->arg, why);
            return;
        }
        if (avail < (size_t)header.length)
            return;
        proxy_stats_add(&up->server->stats, PROXY_STAT_bytes_from_upstream, header.length);
        if (contig < (size_t)header.length)
            front = proxy_conn_pullup(up->conn, (size_t)header.length);
        if (!up->cbs->on_reply(up->arg, front, &header))
            return;
    }
}

static void
write_cb(struct proxy_conn *conn, void *arg)
{
    struct proxy_upstream *up = arg;

    (void)conn;
    up->cbs->on_drained(up->arg);
}

static void
event_cb(struct proxy_conn *conn, short what, void *arg)
{
    struct proxy_upstream *up = arg;
    char why[640];
    int err = EVUTIL_SOCKET_ERROR();

    if (what & PROXY_CONN_CONNECTED) {
        evutil_socket_t fd = proxy_conn_fd(conn);
        int one = 1;

        up->connected = true;
        /* Not needed again: an idle connection holds no timer. */
        if (up->connect_timer)
            event_free(up->connect_timer);
        up->connect_timer = NULL;
        start_reading(up);
        if (up->tcp) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        }
        return;
    }
    if (proxy_conn_tls_error(conn))
        snprintf(why, sizeof why, "upstream %s: %s", up->address, proxy_conn_tls_error(conn));
    else if (what & PROXY_CONN_EOF)
        snprintf(why, sizeof why, "upstream %s closed the connection", up->address);
    else if ((what & PROXY_CONN_ERROR) && proxy_conn_dns_error(conn))
        snprintf(why, sizeof why, "cannot resolve upstream %s: %s", up->address,
                 evutil_gai_strerror(proxy_conn_dns_error(conn)));
    else
        snprintf(why, sizeof why, "upstream %s %s: %s", up->address,
                 up->connected ? "connection failed" : "unreachable",
                 evutil_socket_error_to_string(err));
    fail(up, why);
}

static void
connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_upstream *up = arg;
    char why[640];

    (void)fd;
    (void)what;
    /* No request was written before CONNECTED was reported (proxy/conn.c
     * writes what is queued only after it): none reached the server. */
    if (up->waiting) {
        proxy_stats_add(&up->server->stats, PROXY_STAT_upstream_no_primary, 1);
        snprintf(why, sizeof why,
                 "no primary: the replica set elected none within %lld ms (connect_timeout); "
                 "nothing was sent",
                 (long long)up->server->conf->connect_timeout);
        fail(up, why);
        return;
    }
    if (up->connect_failed) {
        snprintf(why, sizeof why, "upstream %s unreachable: %s", up->address,
                 evutil_socket_error_to_string(up->connect_errno));
        fail(up, why);
        return;
    }
    snprintf(why, sizeof why, "upstream %s unreachable: no connection within %lld ms",
             up->address, (long long)up->server->conf->connect_timeout);
    fail(up, why);
}

/* Connects to the server new connections go to now; the connect timer is already running. */
static void
start_connect(struct proxy_upstream *up)
{
    int rc = proxy_server_connect_upstream(up->server, up->conn, &up->address);

    up->tcp = up->address[0] != '/';
    if (rc != 0) {
        /* The connect call failed at once (no descriptor, no such unix
         * socket): report it on the next loop turn, not at connect_timeout. */
        struct timeval now = {0, 0};

        up->connect_failed = true;
        up->connect_errno = EVUTIL_SOCKET_ERROR();
        evtimer_del(up->connect_timer);
        evtimer_add(up->connect_timer, &now);
    }
}

struct proxy_upstream *
proxy_upstream_new(struct proxy_server *server, const struct proxy_upstream_cbs *cbs, void *arg)
{
    struct proxy_upstream *up = bson_malloc0(sizeof *up);
    struct timeval tv = conf_clock_tv(server->conf->connect_timeout);

    up->server = server;
    up->cbs = cbs;
    up->arg = arg;
    /* A connect's outcome is reported from the loop (proxy/conn.h): never
     * into the client before this constructor has returned. */
    up->conn = proxy_conn_new(server->base, proxy_io_loop_get(server), -1);
    up->connect_timer = evtimer_new(server->base, connect_timeout_cb, up);
    if (!up->conn || !up->connect_timer) {
        proxy_upstream_destroy(up);
        return NULL;
    }
    /* Read once connected (start_reading). */
    proxy_conn_setcb(up->conn, read_cb, write_cb, event_cb, up);
    proxy_conn_read_in_place(up->conn); /* the input is read only through proxy_conn_* calls */
    proxy_conn_write_enable(up->conn, true);
    proxy_server_memory_track(server, up->conn);
    up->tracked = true;

    evtimer_add(up->connect_timer, &tv);

    if (proxy_topology_electing(server->topology)) {
        /* No member is primary: not one known to have stepped down, nor the
         * URI's first host; the connection waits for the monitor to find the
         * new primary (proxy_upstream_connect_waiting), within the same
         * connect_timeout. What the client sends meanwhile is queued. */
        up->waiting = true;
        proxy_stats_add(&server->stats, PROXY_STAT_upstream_waited, 1);
        return up;
    }
    start_connect(up);
    return up;
}

bool
proxy_upstream_waiting(const struct proxy_upstream *up)
{
    return up->waiting;
}

void
proxy_upstream_connect_waiting(struct proxy_upstream *up)
{
    struct timeval tv = conf_clock_tv(up->server->conf->connect_timeout);

    if (!up->waiting || proxy_topology_electing(up->server->topology))
        return;
    up->waiting = false;
    /* The connection itself gets a whole connect_timeout, as any other. */
    evtimer_add(up->connect_timer, &tv);
    start_connect(up);
}

void
proxy_upstream_destroy(struct proxy_upstream *up)
{
    if (!up)
        return;
    if (up->tracked) {
        proxy_server_memory_untrack(up->server, up->conn);
    }
    proxy_conn_free(up->conn); /* inside its own callback: freed once that returns */
    if (up->connect_timer)
        event_free(up->connect_timer);
    bson_free(up->address);
    bson_free(up);
}

const char *
proxy_upstream_address(const struct proxy_upstream *up)
{
    return up->address ? up->address : "";
}

void
proxy_upstream_send(struct proxy_upstream *up, struct evbuffer *data)
{
    proxy_conn_send(up->conn, data); /* queued while connecting */
}

void
proxy_upstream_send_from(struct proxy_upstream *up, struct proxy_conn *src, const uint8_t *data,
                         size_t len)
{
    proxy_conn_send_from(up->conn, src, data, len); /* queued while connecting */
}

void
proxy_upstream_send_to(struct proxy_upstream *up, struct proxy_conn *dst, const uint8_t *data,
                       size_t len)
{
    if (!data)
        data = proxy_conn_pullup(up->conn, len); /* NULL (no memory): queued as it is */
    proxy_conn_send_from(dst, up->conn, data, len);
}

void
proxy_upstream_drain(struct proxy_upstream *up, size_t len)
{
    proxy_conn_drain(up->conn, len);
}

void
proxy_upstream_remove(struct proxy_upstream *up, void *dst, size_t len)
{
    proxy_conn_remove(up->conn, dst, len);
}

size_t
proxy_upstream_buffered(const struct proxy_upstream *up)
{
    return proxy_conn_input_length(up->conn) + evbuffer_get_length(proxy_conn_output(up->conn));
}

size_t
proxy_upstream_input_length(const struct proxy_upstream *up)
{
    return proxy_conn_input_length(up->conn);
}

size_t
proxy_upstream_queued(const struct proxy_upstream *up)
{
    return evbuffer_get_length(proxy_conn_output(up->conn));
}

bool
proxy_upstream_connected(const struct proxy_upstream *up)
{
    return up->connected;
}

void
proxy_upstream_pause(struct proxy_upstream *up, bool paused)
{
    up->paused = paused;
    if (up->connected)
        proxy_conn_read_enable(up->conn, !paused);
}

void
proxy_upstream_set_low_watermark(struct proxy_upstream *up, size_t low)
{
    proxy_conn_set_write_low(up->conn, low);
}
