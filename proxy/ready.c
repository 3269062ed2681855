/*
 * proxy/ready.c: GET /readyz (see ready.h). Owns the upstream probe: a
 * connection of its own (never a client's), a hello sent on it, and the
 * reply read whole and checked (OP_MSG answering our requestID, ok: 1).
 *
 * A probe's life: started by a /readyz request when no result younger than
 * PROXY_READY_CACHE_MS exists and none is in flight; settled once, by its
 * reply, a connection error or its timer (PROXY_READY_TIMEOUT_MS); finished
 * (connection freed, waiting requests answered) only from the timer's
 * callback, activated at once when the reply or the error settles it, so
 * nothing is freed inside the connection's own callbacks. One probe at a
 * time and one per PROXY_READY_CACHE_MS: a flood of /readyz costs the
 * upstream nothing more.
 *
 * Waiting requests: evhttp keeps a request whose reply is deferred even if
 * its client goes away (it detaches it, and our reply frees it), so the
 * pointers stay valid until answered; proxy_ready_destroy answers them
 * before the evhttp is freed. Redis and draining are read live, at the
 * answer. Does not own the HTTP server (admin.c) nor the Redis tier.
 */
#include "config.h"

#include "proxy/ready.h"

#include "cache/cache.h"
#include "cache/redis.h"
#include "conf/clock.h"
#include "conf/log.h"
#include "proxy/conn.h"
#include "proxy/http.h"
#include "proxy/io.h"
#include "proxy/server.h"
#include "wire/frame.h"
#include "wire/msg.h"
#include "wire/reply.h"

#include <bson/bson.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

/* Largest hello reply the probe reads (a real one is well under 1 KiB). */
#define READY_MAX_REPLY (1024 * 1024)

struct waiter {
    TAILQ_ENTRY(waiter) link;
    struct evhttp_request *req; /* deferred: ours to answer, exactly once */
    bool detailed;
};

TAILQ_HEAD(waiter_list, waiter);

struct proxy_ready {
    struct proxy_server *server;
    struct proxy_conn *conn; /* the probe in flight, or NULL */
    struct event *timer;     /* the probe's deadline, activated at once to finish it */
    int32_t request_id;      /* of the probe's hello */
    bool settled;            /* the probe in flight has its result */
    bool ok;                 /* the latest result */
    int64_t checked_ms;      /* monotonic ms when it was settled; 0: never */
    char reason[256];        /* why the latest result is not ok */
    char address[280];       /* the server the latest probe went to (host:port) */
    struct waiter_list waiters;
    unsigned n_waiters;
};

/* The answer to one request: the probe's result plus Redis and draining, read now. */
static void
answer(struct proxy_ready *ready, struct evhttp_request *req, bool detailed)
{
    struct proxy_server *server = ready->server;
    const struct cache_redis *redis = server->cache ? cache_redis_tier(server->cache) : NULL;
    const char *redis_state = "not_configured";
    char reason[320] = "";
    bson_t doc = BSON_INITIALIZER;
    int code;

    if (redis && !cache_enabled(server->cache))
        redis_state = "bypassed"; /* cache = off: the tier is deliberately unused */
    else if (redis)
        redis_state =
            cache_redis_usable(redis) ? "usable" : cache_redis_state_name(cache_redis_state(redis));
    if (server->draining)
        snprintf(reason, sizeof reason, "draining: the proxy is shutting down");
    else if (!ready->ok)
        snprintf(reason, sizeof reason, "upstream: %s", detailed ? ready->reason : "unreachable");
    else if (redis && cache_enabled(server->cache) && !cache_redis_usable(redis))
        snprintf(reason, sizeof reason, "redis: the shared tier is %s", redis_state);
    code = reason[0] ? 503 : 200;
    BSON_APPEND_UTF8(&doc, "status", code == 200 ? "ready" : "not_ready");
    if (reason[0])
        BSON_APPEND_UTF8(&doc, "reason", reason);
    BSON_APPEND_UTF8(&doc, "upstream", ready->ok ? "reachable" : "unreachable");
    BSON_APPEND_UTF8(&doc, "redis", redis_state);
    BSON_APPEND_INT64(&doc, "checked_ms_ago", conf_clock_ms() - ready->checked_ms);
    proxy_http_send_bson(req, code, code == 200 ? "OK" : "Service Unavailable", &doc);
    bson_destroy(&doc);
}

static void
settle(struct proxy_ready *ready, bool ok, const char *reason)
{
    static const struct timeval now = {0, 0};

    if (ready->settled)
        return;
    ready->settled = true;
    ready->ok = ok;
    ready->checked_ms = conf_clock_ms();
    bson_strncpy(ready->reason, ok ? "" : reason, sizeof ready->reason);
    if (!ok)
        proxy_stats_add(&ready->server->stats, PROXY_STAT_readyz_probe_failures, 1);
    if (!ok)
        conf_log(CONF_LOG_DEBUG, 0, "readyz_probe_failed", "upstream=%s reason=\"%s\"",
                 ready->address, ready->reason);
    evtimer_add(ready->timer, &now); /* finish from the timer, outside conn's callbacks */
}

/* Reads the probe's reply once it is whole. */
static void
probe_read_cb(struct proxy_conn *conn, void *arg)
{
    struct proxy_ready *ready = arg;
    struct evbuffer *in = proxy_conn_input(conn);
    uint8_t head[WIRE_HEADER_LEN];
    struct wire_header h;
    struct wire_msg msg;
    bson_error_t error;
    const uint8_t *data;
    bson_iter_t it;
    bson_t body;

    if (evbuffer_get_length(in) >= READY_MAX_REPLY + WIRE_HEADER_LEN)
        proxy_conn_read_enable(conn, false); /* a reply is never longer */
    if (ready->settled || evbuffer_get_length(in) < WIRE_HEADER_LEN)
        return;
    evbuffer_copyout(in, head, sizeof head);
    if (wire_frame_header(head, sizeof head, READY_MAX_REPLY, &h, &error) == WIRE_ERROR) {
        settle(ready, false, "the hello reply broke the wire rules");
        return;
    }
    if (evbuffer_get_length(in) < (size_t)h.length)
        return;
    data = evbuffer_pullup(in, h.length);
    if (!data || h.opcode != WIRE_OP_MSG || h.response_to != ready->request_id ||
        !wire_msg_parse(data, (size_t)h.length, 100, &msg, &error) ||
        !bson_init_static(&body, msg.body, msg.body_len)) {
        settle(ready, false, "the hello reply is not an OP_MSG answering the probe");
        return;
    }
    if (!bson_iter_init_find(&it, &body, "ok") || !bson_iter_as_bool(&it)) {
        settle(ready, false, "the upstream answered hello with an error");
        return;
    }
    settle(ready, true, "");
}

static void
probe_event_cb(struct proxy_conn *conn, short what, void *arg)
{
    struct proxy_ready *ready = arg;
    char why[640];

    if (what & PROXY_CONN_CONNECTED)
        return;
    if (proxy_conn_tls_error(conn))
        snprintf(why, sizeof why, "%s: %s", ready->address, proxy_conn_tls_error(conn));
    else if ((what & PROXY_CONN_ERROR) && proxy_conn_dns_error(conn))
        snprintf(why, sizeof why, "cannot resolve %s: %s", ready->address,
                 evutil_gai_strerror(proxy_conn_dns_error(conn)));
    else if (what & PROXY_CONN_EOF)
        snprintf(why, sizeof why, "%s closed the connection", ready->address);
    else
        snprintf(why, sizeof why, "cannot connect to %s: %s", ready->address,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    settle(ready, false, why);
}

/* The probe is over (or timed out): frees its connection and answers every waiting request. */
static void
finish_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_ready *ready = arg;
    struct waiter *w;

    (void)fd;
    (void)what;
    if (!ready->settled) {
        char why[640];

        snprintf(why, sizeof why, "no hello reply from %s within %d ms",
                 ready->address, PROXY_READY_TIMEOUT_MS);
        settle(ready, false, why);
        evtimer_del(ready->timer);
    }
    proxy_conn_free(ready->conn);
    ready->conn = NULL;
    while ((w = TAILQ_FIRST(&ready->waiters))) {
        TAILQ_REMOVE(&ready->waiters, w, link);
        ready->n_waiters--;
        answer(ready, w->req, w->detailed);
        bson_free(w);
    }
}

/* Starts a probe; one that cannot even start is settled as a failure at once. */
static void
probe_start(struct proxy_ready *ready)
{
    struct proxy_server *server = ready->server;
    struct timeval tv = {PROXY_READY_TIMEOUT_MS / 1000, (PROXY_READY_TIMEOUT_MS % 1000) * 1000};
    bson_t hello = BSON_INITIALIZER;
    struct evbuffer *out;
    uint8_t *bytes;
    size_t len;
    char *address = NULL;
    int rc;

    ready->settled = false;
    proxy_stats_add(&server->stats, PROXY_STAT_readyz_probes, 1);
    ready->request_id = (int32_t)(server->next_reply_id++ & 0x7fffffffu);
    ready->conn = proxy_conn_new(server->base, proxy_io_loop_get(server), -1);
    out = evbuffer_new();
    evtimer_add(ready->timer, &tv);
    if (!ready->conn || !out) {
        if (out)
            evbuffer_free(out);
        settle(ready, false, "out of memory");
        return;
    }
    proxy_conn_setcb(ready->conn, probe_read_cb, NULL, probe_event_cb, ready);
    proxy_conn_read_enable(ready->conn, true); /* once connected */
    proxy_conn_write_enable(ready->conn, true);
    BSON_APPEND_INT32(&hello, "hello", 1);
    if (proxy_server_upstream_load_balanced(server))
        BSON_APPEND_BOOL(&hello, "loadBalanced", true); /* as every upstream hello (handshake.c) */
    BSON_APPEND_UTF8(&hello, "$db", "admin");
    bytes = wire_reply_msg(ready->request_id, 0, &hello, &len);
    bson_destroy(&hello);
    evbuffer_add(out, bytes, len);
    proxy_conn_send(ready->conn, out); /* queued until connected */
    evbuffer_free(out);
    bson_free(bytes);
    rc = proxy_server_connect_upstream(server, ready->conn, &address);
    bson_strncpy(ready->address, address, sizeof ready->address);
    bson_free(address);
    if (rc != 0) {
        char why[640];

        snprintf(why, sizeof why, "cannot connect to %s: %s", ready->address,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        settle(ready, false, why);
    }
}

struct proxy_ready *
proxy_ready_new(struct proxy_server *server)
{
    struct proxy_ready *ready = bson_malloc0(sizeof *ready);

    ready->server = server;
    ready->settled = true;
    TAILQ_INIT(&ready->waiters);
    ready->timer = evtimer_new(server->base, finish_cb, ready);
    bson_strncpy(ready->reason, "not checked yet", sizeof ready->reason);
    return ready;
}

void
proxy_ready_destroy(struct proxy_ready *ready)
{
    struct waiter *w;

    if (!ready)
        return;
    if (!ready->settled)
        settle(ready, false, "the proxy is shutting down");
    while ((w = TAILQ_FIRST(&ready->waiters))) {
        TAILQ_REMOVE(&ready->waiters, w, link);
        answer(ready, w->req, w->detailed);
        bson_free(w);
    }
    proxy_conn_free(ready->conn);
    if (ready->timer)
        event_free(ready->timer);
    bson_free(ready);
}

void
proxy_ready_handle(struct proxy_ready *ready, struct evhttp_request *req, bool detailed)
{
    struct waiter *w;
    bool in_flight = ready->conn != NULL || evtimer_pending(ready->timer, NULL);

    if (!in_flight && ready->checked_ms &&
        conf_clock_ms() - ready->checked_ms < PROXY_READY_CACHE_MS) {
        answer(ready, req, detailed);
        return;
    }
    if (ready->n_waiters >= PROXY_READY_MAX_WAITING) {
        answer(ready, req, detailed); /* the latest result: the flood waits for nothing */
        return;
    }
    w = bson_malloc0(sizeof *w);
    w->req = req;
    w->detailed = detailed;
    TAILQ_INSERT_TAIL(&ready->waiters, w, link);
    ready->n_waiters++;
    if (!in_flight)
        probe_start(ready);
}
