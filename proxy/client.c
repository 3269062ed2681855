/*
 * proxy/client.c: one client connection, and the request pipeline.
 *
 *   client socket
 *     -> frame: 16-byte header, 16 <= length <= max_message_size, then wait
 *        for the whole message (message_timeout from its first byte)
 *     -> check: OP_MSG sections, flags, checksum, BSON structure and depth
 *        (wire/msg.c); OP_QUERY only for the legacy handshake; anything else
 *        closes the connection (OP_COMPRESSED after an error reply)
 *     -> route (router.c): hello -> strip compression/loadBalanced;
 *        saslStart/saslContinue -> observe; everything else untouched
 *        [the query cache will look up here, before forwarding]
 *     -> forward on this client's own upstream connection (upstream.c), in
 *        order; remember the request unless it is moreToCome (no reply)
 *   upstream socket
 *     -> frame and check the reply (responseTo must be the oldest request in
 *        flight, same rules as requests)
 *     -> hello: persona rewrite (hello.c); sasl: note the verdict (auth.c)
 *        [the query cache will store here]
 *     -> relay to the client, strictly in request order; as each reply is
 *        queued (relayed, or canned/hit in proxy_client_flush_canned),
 *        proxy_client_observe times it (latency histograms, the slow-request line)
 *
 * Owns: the client bufferevent, its upstream, the list of requests in
 * flight, timers (message deadline, idle, drain) and the auth state. Does
 * not own sockets' accept (listener.c) or the upstream's framing (upstream.c),
 * nor the query cache's part of a request (lookup.c), the reading of an
 * open cursor to its end (drain.c) or a hello's and authentication's
 * preparation and observation (handshake.c); the structures they share
 * with this file are in client_internal.h.
 *
 * Lifetime: nothing frees a client inside one of its own callbacks. Closing
 * marks it dead and activates resume_ev; its callback (wake_cb) frees it.
 */
#include "proxy/client.h"

#include "cache/cache.h"
#include "conf/log.h"
#include "proxy/action.h"
#include "proxy/auth.h"
#include "proxy/client_internal.h"
#include "proxy/drain.h"
#include "proxy/handshake.h"
#include "proxy/io.h"
#include "proxy/hello.h"
#include "proxy/lookup.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "proxy/slow.h"
#include "proxy/upstream.h"
#include "wire/cmd.h"
#include "wire/msg.h"
#include "wire/names.h"
#include "wire/reply.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>


/* Most messages of one client handled in a row before the loop serves others. */
#define PROXY_CLIENT_BATCH 16

static void close_now(struct proxy_client *c, const char *reason);
static struct event *wake_event(struct proxy_client *c);
static void start_linger(struct proxy_client *c);
static void pop_request(struct proxy_client *c, struct proxy_request *req);

static struct timeval
ms_to_tv(int64_t ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static struct evbuffer *
client_output(struct proxy_client *c)
{
    return bufferevent_get_output(c->bev);
}

/* ---- when the client is read ---------------------------------------------- */

/* True when nothing stops the client's buffered messages being handled. */
static bool
can_take_input(const struct proxy_client *c)
{
    return !c->dead && !c->finishing && !c->reading_paused && !c->output_full &&
           !c->memory_paused && !c->barrier && !c->blocked;
}

/*
 * Turns the socket's read event on or off to match the client's state. A
 * change costs an epoll_ctl, so it is made only when the answer changes.
 */
static void
update_reading(struct proxy_client *c)
{
    bool want = can_take_input(c) && !c->peer_eof && !c->peer_gone;

    if (c->dead || c->lingering || want == c->reading)
        return;
    c->reading = want;
    proxy_io_read_enable(c->bev, want);
}

/* The socket is neither read nor written any more. */
static void
stop_io(struct proxy_client *c)
{
    c->reading = false;
    proxy_io_read_enable(c->bev, false);
    bufferevent_disable(c->bev, EV_WRITE);
}

/* The upstream is read unless our output or the memory budget is full. */
static void
sync_upstream(struct proxy_client *c)
{
    if (c->up)
        proxy_upstream_pause(c->up, c->output_full || c->memory_paused);
}

void
proxy_client_set_blocked(struct proxy_client *c, bool blocked)
{
    (void)wake_event(c); /* whoever ends the wait activates resume_ev */
    c->blocked = blocked;
    update_reading(c);
}

/*
 * Our output passed buffer_limit (hits, proxy cursors and errors count like
 * relayed replies): read neither the client nor its upstream until the
 * client has taken half of it (write_cb). True while it stays full.
 */
static bool
check_output(struct proxy_client *c)
{
    size_t limit = (size_t)c->server->conf->buffer_limit;

    if (c->output_full)
        return true;
    if (c->peer_gone || evbuffer_get_length(client_output(c)) <= limit)
        return false;
    c->output_full = true;
    sync_upstream(c);
    bufferevent_setwatermark(c->bev, EV_WRITE, limit / 2, 0);
    return true;
}

/* Bytes this client holds: its buffers, its upstream's, and what its arriving message announced. */
static size_t
client_share(struct proxy_client *c)
{
    size_t n = evbuffer_get_length(bufferevent_get_input(c->bev)) +
               evbuffer_get_length(client_output(c)) + c->promised;

    return c->up ? n + proxy_upstream_buffered(c->up) : n;
}

/*
 * Over max_memory, a client holding more than PROXY_MEMORY_SMALL is read no
 * further (nor its upstream) until the total falls back (memory_resume_all).
 * True while it stays paused.
 */
static bool
check_memory(struct proxy_client *c)
{
    if (c->memory_paused)
        return true;
    /* A message admitted under max_memory is read to its end and handled:
     * its bytes are counted already (promised), and pausing the client would
     * hold them, and the total over the resume mark, for good (and with no
     * message_timeout while paused). */
    if (c->promised > 0)
        return false;
    if (!proxy_server_memory_over(c->server, 0) || client_share(c) <= PROXY_MEMORY_SMALL)
        return false;
    c->memory_paused = true;
    c->server->n_memory_paused++;
    sync_upstream(c);
    proxy_stats_add(&c->server->stats, PROXY_STAT_memory_pauses, 1);
    conf_log(CONF_LOG_DEBUG, c->id, "memory_pause", "holds=%zu total=%zu max_memory=%lld",
             client_share(c), proxy_server_memory_used(c->server),
             (long long)c->server->conf->max_memory);
    return true;
}

/* The message arriving now is whole (or the client is gone): its promise is kept. */
static void
release_promise(struct proxy_client *c)
{
    c->server->mem_promised -= c->promised;
    c->promised = 0;
    c->admitted_len = 0;
    proxy_server_memory_check(c->server);
}

/* ---- timers ------------------------------------------------------------- */

static void timer_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Arms the client's timer for ms. The timer exists only while armed: an idle
 * client without idle_timeout holds none (freed by disarm_timer).
 */
static void
arm_timer(struct proxy_client *c, int64_t ms)
{
    struct timeval tv = ms_to_tv(ms);

    if (!c->timer)
        c->timer = evtimer_new(c->server->base, timer_cb, c);
    if (!c->timer) {
        close_now(c, "out_of_memory");
        return;
    }
    evtimer_add(c->timer, &tv);
}

static void
disarm_timer(struct proxy_client *c)
{
    if (c->timer) {
        event_free(c->timer);
        c->timer = NULL;
    }
}

void
proxy_client_update_timer(struct proxy_client *c, bool progressed)
{
    const struct conf *conf = c->server->conf;

    if (c->dead)
        return;
    if (can_take_input(c) && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        /* A message has started: it must be whole by the deadline. */
        if (!c->deadline_armed || progressed) {
            c->deadline_armed = true;
            arm_timer(c, conf->message_timeout);
        }
        return;
    }
    c->deadline_armed = false;
    if (c->finishing || c->peer_gone || c->peer_eof) {
        arm_timer(c, conf->drain_timeout);
    } else if (c->n_pending == 0 && conf->idle_timeout > 0 && can_take_input(c) &&
               evbuffer_get_length(client_output(c)) == 0) {
        arm_timer(c, conf->idle_timeout);
    } else {
        disarm_timer(c);
    }
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_client *c = arg;
    struct proxy_stats *stats = &c->server->stats;

    (void)fd;
    (void)what;
    if (c->deadline_armed) {
        proxy_stats_add(stats, PROXY_STAT_message_timeouts, 1);
        conf_log(CONF_LOG_WARN, c->id, "message_timeout",
                 "peer=%s timeout_ms=%lld msg=\"a message did not arrive whole in time; "
                 "closing\"",
                 c->peer, (long long)c->server->conf->message_timeout);
        close_now(c, "message_timeout");
    } else if (c->finishing || c->peer_gone || c->peer_eof) {
        close_now(c, "drain_timeout");
    } else if (c->n_pending == 0 && can_take_input(c) &&
               evbuffer_get_length(client_output(c)) == 0) {
        proxy_stats_add(stats, PROXY_STAT_idle_timeouts, 1);
        close_now(c, "idle_timeout");
    }
}

/* ---- closing -------------------------------------------------------------- */

/*
 * The client's one deferred event (resume_ev): frees a dead client (closing
 * activates it), or handles what is buffered once a wait is over. Created
 * on first need: a client that never waited nor closed holds none.
 */
static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_client *c = arg;

    if (c->dead)
        proxy_client_free(c);
    else
        proxy_lookup_resume_cb(fd, what, c);
}

/* resume_ev, created when first needed (out of memory aborts, as bson_malloc does). */
static struct event *
wake_event(struct proxy_client *c)
{
    if (!c->resume_ev) {
        c->resume_ev = event_new(c->server->base, -1, 0, wake_cb, c);
        if (!c->resume_ev) {
            fprintf(stderr, "mongocache: out of memory for an event\n");
            abort();
        }
    }
    return c->resume_ev;
}

static void
close_now(struct proxy_client *c, const char *reason)
{
    if (c->dead)
        return;
    c->dead = true;
    c->close_reason = reason;
    stop_io(c);
    if (c->up)
        proxy_upstream_pause(c->up, true);
    event_active(wake_event(c), 0, 0);
}

/* True when a whole message waits in the client's input. */
static bool
message_buffered(struct proxy_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in);
    uint8_t head[4];
    int32_t len;

    if (avail < WIRE_HEADER_LEN)
        return false;
    evbuffer_copyout(in, head, sizeof head);
    len = wire_frame_read_i32(head);
    return len >= WIRE_HEADER_LEN && (size_t)len <= avail;
}

/*
 * Closes a client that is finishing (drain, EOF, a fatal error) once nothing
 * is owed either way: no reply awaited, every reply flushed to the client,
 * and every request (moreToCome writes included) flushed to the upstream.
 * Until then the write callbacks call it again; drain_timeout bounds it.
 */
void
proxy_client_maybe_finish(struct proxy_client *c)
{
    if (c->dead || !(c->finishing || c->peer_eof || c->peer_gone) || c->n_pending > 0)
        return;
    /* Messages sent before an EOF that wait for their turn (the fairness
     * yield, a pause) are answered first: process_input calls this again
     * after them; drain_timeout bounds the wait. */
    if (!c->finishing && !c->peer_gone && message_buffered(c))
        return;
    if (c->up && proxy_upstream_queued(c->up) > 0) {
        proxy_upstream_set_low_watermark(c->up, 0);
        return;
    }
    if (c->peer_gone || evbuffer_get_length(client_output(c)) == 0) {
        if (c->linger && !c->peer_gone && !c->peer_eof)
            start_linger(c);
        else
            close_now(c, c->peer_gone ? "client_gone" : c->finishing ? "finished" : "client_eof");
    } else {
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    }
}

/*
 * A lingering close, after refusing a message that had not arrived whole:
 * closing with the rest of it unread would make the kernel answer with a
 * reset, which can destroy the error reply before the client reads it. So
 * the write side is shut (the reply, then FIN, go out), what the client
 * still sends is read and dropped, and the connection closes at its EOF or
 * at drain_timeout.
 */
static void
start_linger(struct proxy_client *c)
{
    if (c->lingering)
        return;
    c->lingering = true;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    c->reading = true;
    proxy_io_read_enable(c->bev, true);
    proxy_client_update_timer(c, false);
}

static void
finish(struct proxy_client *c)
{
    c->finishing = true;
    update_reading(c);
    proxy_client_maybe_finish(c);
    proxy_client_update_timer(c, false);
}

/*
 * Output still queued can no longer be sent: dropped now, not when libevent
 * finalizes the freed bufferevent (at shutdown that is in event_base_free,
 * after the cache is gone), so that stored values queued by reference (hits,
 * proxy cursors' first batches) are released while the cache exists. The
 * bufferevent froze the buffer's front for itself; it is being freed.
 */
static void
drop_output(struct proxy_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    evbuffer_unfreeze(out, 1);
    evbuffer_drain(out, evbuffer_get_length(out));
}

/* Frees what a client holds of its own (not its requests or upstream), and the client. */
static void
free_parts(struct proxy_client *c)
{
    if (c->bev) {
        if (c->tracked) {
            proxy_server_memory_untrack(c->server, bufferevent_get_input(c->bev));
            proxy_server_memory_untrack(c->server, bufferevent_get_output(c->bev));
        }
        drop_output(c);
        bufferevent_free(c->bev);
    }
    if (c->timer)
        event_free(c->timer);
    if (c->resume_ev)
        event_free(c->resume_ev);
    proxy_auth_cleanup(&c->auth);
    bson_free(c->oneway_ring);
    bson_free(c);
}

void
proxy_client_free(struct proxy_client *c)
{
    struct proxy_request *req;

    if (!c)
        return;
    conf_log(CONF_LOG_INFO, c->id, "client_close", "peer=%s reason=%s requests=%llu", c->peer,
             c->close_reason ? c->close_reason : "shutdown", (unsigned long long)c->n_requests);
    /* A write whose reply never came ends here: its generations are bumped. */
    while ((req = TAILQ_FIRST(&c->pending)))
        pop_request(c, req);
    proxy_upstream_destroy(c->up);
    release_promise(c);
    if (c->memory_paused)
        c->server->n_memory_paused--;
    TAILQ_REMOVE(&c->server->clients, c, link);
    proxy_server_client_closed(c->server);
    free_parts(c);
}

void
proxy_client_drain_all(struct proxy_server *server)
{
    struct proxy_client *c;

    TAILQ_FOREACH(c, &server->clients, link)
        finish(c);
}

void
proxy_client_memory_resume_all(struct proxy_server *server)
{
    struct proxy_client *c;

    /* Clients are freed only by their resume_ev, so the list holds still. */
    TAILQ_FOREACH(c, &server->clients, link) {
        if (!c->memory_paused)
            continue;
        c->memory_paused = false;
        server->n_memory_paused--;
        if (c->dead)
            continue;
        sync_upstream(c);
        if (c->up && !c->output_full)
            proxy_upstream_process(c->up);
        if (!c->dead)
            proxy_client_process_input(c);
    }
}

void
proxy_client_free_all(struct proxy_server *server)
{
    struct proxy_client *c;

    while ((c = TAILQ_FIRST(&server->clients)))
        proxy_client_free(c);
}

/* ---- replies written by the proxy itself ----------------------------------- */

void
proxy_client_write_owned(struct proxy_client *c, uint8_t *bytes, size_t len)
{
    if (!c->peer_gone) {
        evbuffer_add(c->scratch, bytes, len);
        proxy_io_send(c->bev, c->scratch);
    }
    bson_free(bytes);
}

/* An error reply to request response_to; freed with bson_free. */
uint8_t *
proxy_client_make_error(struct proxy_client *c, int32_t response_to, bool legacy, int32_t code,
                        const char *code_name, const char *errmsg, size_t *len)
{
    bson_t body = BSON_INITIALIZER;
    uint8_t *bytes;

    wire_reply_error_body(&body, code, code_name, errmsg);
    if (legacy)
        bytes = wire_reply_op_reply(proxy_client_reply_id(c), response_to, 0, &body, len);
    else
        bytes = wire_reply_msg(proxy_client_reply_id(c), response_to, &body, len);
    bson_destroy(&body);
    proxy_stats_add(&c->server->stats, PROXY_STAT_error_replies, 1);
    return bytes;
}

/* Writes an error reply now: only for the request at the head of the list. */
static void
send_error(struct proxy_client *c, int32_t response_to, bool legacy, int32_t code,
           const char *code_name, const char *errmsg)
{
    size_t len;
    uint8_t *bytes = proxy_client_make_error(c, response_to, legacy, code, code_name, errmsg, &len);

    proxy_client_write_owned(c, bytes, len);
}

/* ---- requests --------------------------------------------------------------- */

static void
decoding_error(struct proxy_client *c, const struct wire_header *h, const bson_error_t *error)
{
    proxy_stats_add(&c->server->stats, PROXY_STAT_decoding_errors, 1);
    conf_log(CONF_LOG_WARN, c->id, "decoding_error",
             "peer=%s opcode=%d length=%d code=%u error=\"%s\" msg=\"the client broke the wire "
             "protocol; closing its connection\"",
             c->peer, h ? h->opcode : 0, h ? h->length : 0, error->code, error->message);
    close_now(c, "decoding_error");
}

/*
 * The requestIDs of moreToCome requests are kept (a server that answers one
 * anyway has its reply dropped) in a ring of ONEWAY_RING. A spec-following
 * server never answers them, so the proxy cannot wait for replies to make
 * room: when the ring is full it sends a barrier of its own (a ping) and
 * reads the client no further until its reply, before which every earlier
 * request has been answered or never will be. Nothing is dropped.
 */
#define ONEWAY_RING 4096

static void
remember_oneway(struct proxy_client *c, int32_t request_id)
{
    if (!c->oneway_ring)
        c->oneway_ring = bson_malloc(ONEWAY_RING * sizeof *c->oneway_ring);
    BSON_ASSERT(c->oneway_count < ONEWAY_RING); /* the barrier keeps room */
    c->oneway_ring[(c->oneway_head + c->oneway_count) % ONEWAY_RING] = request_id;
    c->oneway_count++;
}

static bool
in_oneway_ring(const struct proxy_client *c, int32_t id)
{
    for (uint32_t i = 0; i < c->oneway_count; i++)
        if (c->oneway_ring[(c->oneway_head + i) % ONEWAY_RING] == id)
            return true;
    return false;
}

static struct proxy_request *
push_request(struct proxy_client *c, int32_t request_id, enum proxy_route route, bool legacy)
{
    struct proxy_request *req = bson_malloc0(sizeof *req);

    req->request_id = request_id;
    req->route = route;
    req->legacy = legacy;
    req->batch_size = -1;
    req->client = c;
    if (c->server->conf->latency_histograms || c->server->conf->slow_request_ms > 0)
        req->started_us = conf_clock_us();
    TAILQ_INSERT_TAIL(&c->pending, req, link);
    c->n_pending++;
    return req;
}

/* Sends the oneway barrier (see ONEWAY_RING): a ping whose reply only the proxy reads. */
static void
send_barrier(struct proxy_client *c)
{
    bson_t body = BSON_INITIALIZER;
    struct proxy_request *req;
    uint8_t *bytes;
    size_t len;
    int32_t id;

    do
        id = proxy_client_reply_id(c); /* never one a remembered request has */
    while (in_oneway_ring(c, id));
    BSON_APPEND_INT32(&body, "ping", 1);
    BSON_APPEND_UTF8(&body, "$db", "admin");
    bytes = wire_reply_msg(id, 0, &body, &len);
    bson_destroy(&body);
    req = push_request(c, id, PROXY_ROUTE_FORWARD, false);
    req->internal = true;
    c->barrier = true;
    proxy_stats_add(&c->server->stats, PROXY_STAT_oneway_barriers, 1);
    proxy_client_forward(c, NULL, 0, bytes, len, false);
}

/* Ends a request: its write, if any, is over (acknowledged or lost). */
static void
pop_request(struct proxy_client *c, struct proxy_request *req)
{
    TAILQ_REMOVE(&c->pending, req, link);
    c->n_pending--;
    if (req->held || req->drain)
        c->blocked = false; /* the request the client waited on is gone */
    /* The wait first: it may still point at req->miss (a Redis lookup). */
    cache_wait_cancel(req->wait);
    req->wait = NULL;
    if (req->inval) {
        cache_write_end(c->server->cache, req->inval);
        bson_free(req->inval);
    }
    if (req->miss) {
        cache_pending_free(c->server->cache, req->miss);
    }
    cache_write_cancel(req->write_wait);
    bson_free(req->held);
    bson_free(req->lsid);
    bson_free(req->index_db);
    bson_free(req->index_coll);
    if (req->drain) {
        bson_free(req->drain->docs.data);
        bson_free(req->drain->ns);
        bson_free(req->drain);
    }
    cache_value_unref(req->hit);
    bson_free(req->canned);
    bson_free(req);
}

/* Sends the proxy-made replies that have reached the head of the list. */
void
proxy_client_flush_canned(struct proxy_client *c)
{
    struct proxy_request *req;

    while ((req = TAILQ_FIRST(&c->pending)) && (req->canned || req->hit) && !req->write_wait) {
        if (req->hit) {
            proxy_lookup_write_hit(c, req);
            /* a drained miss is served like a hit of its stored result */
            proxy_client_observe(c, req, req->miss ? PROXY_OUTCOME_MISS : PROXY_OUTCOME_HIT);
        } else {
            proxy_client_write_owned(c, req->canned, req->canned_len);
            req->canned = NULL;
            proxy_client_observe(c, req, (enum proxy_outcome)req->outcome);
        }
        pop_request(c, req);
    }
}

/*
 * Answers request h with an error of the proxy's own, after the replies
 * still owed to earlier requests, and then closes the connection. Drops the
 * message from in: all of it, or what has arrived of it.
 */
static void
refuse(struct proxy_client *c, struct evbuffer *in, const struct wire_header *h, bool legacy,
       int32_t code, const char *code_name, const char *errmsg)
{
    struct proxy_request *req = push_request(c, h->request_id, PROXY_ROUTE_FORWARD, legacy);
    size_t avail = evbuffer_get_length(in);

    req->canned = proxy_client_make_error(c, h->request_id, legacy, code, code_name, errmsg,
                                          &req->canned_len);
    req->outcome = PROXY_OUTCOME_ERROR;
    c->linger = avail < (size_t)h->length; /* the rest is still coming: see start_linger */
    evbuffer_drain(in, avail < (size_t)h->length ? avail : (size_t)h->length);
    release_promise(c);
    proxy_client_flush_canned(c);
    finish(c);
}

/*
 * A message has begun to arrive whole-less: its remaining bytes are promised
 * against max_memory. A new one larger than PROXY_MEMORY_SMALL that would
 * take the total past max_memory is refused (an error, then the connection
 * closes). False when it was.
 */
static bool
admit(struct proxy_client *c, struct evbuffer *in, const struct wire_header *h, size_t avail)
{
    struct proxy_server *s = c->server;
    size_t need = (size_t)h->length - avail;
    char errmsg[256];

    if (c->admitted_len != (size_t)h->length) {
        if ((size_t)h->length > PROXY_MEMORY_SMALL && proxy_server_memory_over(s, need)) {
            proxy_stats_add(&s->stats, PROXY_STAT_memory_refusals, 1);
            conf_log(CONF_LOG_WARN, c->id, "memory_refused",
                     "peer=%s length=%d total=%zu max_memory=%lld msg=\"a large message "
                     "would take the proxy past max_memory; refused\"",
                     c->peer, h->length, proxy_server_memory_used(s),
                     (long long)s->conf->max_memory);
            snprintf(errmsg, sizeof errmsg,
                     "mongocache: a message of %d bytes was refused: the proxy's buffers are at "
                     "max_memory (%lld bytes); retry later",
                     h->length, (long long)s->conf->max_memory);
            refuse(c, in, h, h->opcode == WIRE_OP_QUERY, WIRE_CODE_EXCEEDED_MEMORY,
                   "ExceededMemoryLimit", errmsg);
            return false;
        }
        c->admitted_len = (size_t)h->length;
    }
    s->mem_promised = s->mem_promised - c->promised + need;
    c->promised = need;
    return true;
}

/*
 * Moves the message of len bytes at the front of in to the upstream, or
 * replaces it with `replacement` (taken) when the proxy rewrote it.
 */
void
proxy_client_forward(struct proxy_client *c, struct evbuffer *in, size_t len,
                     uint8_t *replacement, size_t replacement_len, bool oneway)
{
    struct evbuffer *out;
    size_t limit = (size_t)c->server->conf->buffer_limit;

    if (!c->up) {
        c->up = proxy_upstream_new(c->server, c);
        if (!c->up) {
            conf_log(CONF_LOG_ERROR, c->id, "upstream_alloc_failed",
                     "msg=\"out of memory; closing the client\"");
            bson_free(replacement);
            close_now(c, "out_of_memory");
            return;
        }
        c->oneway_sent = false;
        proxy_upstream_set_low_watermark(c->up, limit / 2);
    }
    out = c->scratch;
    if (replacement) {
        evbuffer_add(out, replacement, replacement_len);
        bson_free(replacement);
        if (in)
            evbuffer_drain(in, len);
    } else {
        evbuffer_remove_buffer(in, out, len);
    }
    proxy_upstream_send(c->up, out);
    if (oneway)
        c->oneway_sent = true;
    if (proxy_upstream_queued(c->up) > limit && !c->reading_paused) {
        c->reading_paused = true;
        update_reading(c);
    }
}

/* Commands that change a namespace's indexes: the advisor re-reads them when one succeeds. */
static bool
changes_indexes(enum wire_name name)
{
    switch (name) {
    case WIRE_NAME_CREATE_INDEXES:
    case WIRE_NAME_DROP_INDEXES:
    case WIRE_NAME_DELETE_INDEXES:
    case WIRE_NAME_DROP:
    case WIRE_NAME_DROP_DATABASE:
        return true;
    default:
        return false;
    }
}

/*
 * Index advice (proxy/advice.h) for a command on its way to the server:
 * its shapes are counted, and req (NULL for moreToCome) remembers them and
 * when it left, to count the round trip at the reply; a miss's stored
 * entry keeps its shape, so hits are counted too.
 */
static void
advise(struct proxy_client *c, struct proxy_request *req, const struct wire_msg *msg,
       const struct wire_cmd *cmd, const bson_t *body)
{
    uint64_t scratch[PROXY_ADVICE_SHAPES];
    int64_t sent_us = 0;
    uint32_t n, weight = 1;

    if (!c->server->advice || !cmd->name)
        return;
    /* A miss is never passed over: its stored entry carries its shape. */
    n = proxy_advice_record(c->server->advice, msg, cmd, body, !req || !req->miss,
                            req ? req->shapes : scratch, PROXY_ADVICE_SHAPES, &sent_us, &weight);
    if (!req)
        return;
    if (n > 0) {
        req->n_shapes = n;
        req->sent_us = sent_us;
        req->shape_weight = weight;
        if (req->miss)
            cache_pending_set_tag(req->miss, req->shapes[0]);
    } else if (cmd->db && changes_indexes(cmd->name_id)) {
        req->index_db = bson_strndup(cmd->db, cmd->db_len);
        if (cmd->coll && cmd->name_id != WIRE_NAME_DROP_DATABASE)
            req->index_coll = bson_strndup(cmd->coll, cmd->coll_len);
    }
}

void
proxy_client_advise_held(struct proxy_client *c, struct proxy_request *req)
{
    struct wire_msg msg;
    struct wire_cmd cmd;
    bson_error_t error;
    bson_t body;

    if (!c->server->advice || !req->held ||
        !wire_msg_parse(req->held, req->held_len, (uint32_t)c->server->conf->max_bson_depth,
                        &msg, &error) ||
        !wire_cmd_parse(msg.body, msg.body_len, &cmd, &error) ||
        !bson_init_static(&body, msg.body, msg.body_len))
        return;
    advise(c, req, &msg, &cmd, &body);
}

/*
 * The reply to an advised request, read at now_us, ok whether its "ok" is
 * true: its round trip, and the documents of its first batch.
 */
static void
advise_reply(struct proxy_client *c, struct proxy_request *req, const bson_t *reply, bool ok,
             int64_t now_us)
{
    if (req->n_shapes > 0) {
        proxy_advice_reply(c->server->advice, req->shapes, req->n_shapes,
                           (double)(now_us - req->sent_us) / 1000.0,
                           proxy_advice_batch_documents(bson_get_data(reply), reply->len),
                           req->shape_weight);
        req->n_shapes = 0; /* a drain's getMores are not the query again */
    }
    if (req->index_db) {
        if (ok)
            proxy_advice_indexes_changed(c->server->advice, req->index_db, req->index_coll);
        bson_free(req->index_db);
        bson_free(req->index_coll);
        req->index_db = req->index_coll = NULL;
    }
}

static bool
handle_op_msg(struct proxy_client *c, struct evbuffer *in, const uint8_t *data,
              const struct wire_header *h)
{
    const struct conf *conf = c->server->conf;
    struct wire_msg msg;
    struct wire_cmd cmd;
    bson_error_t error;
    enum proxy_route route = PROXY_ROUTE_FORWARD;
    struct proxy_request *req = NULL;
    uint8_t *replacement = NULL;
    size_t replacement_len = 0;
    bool oneway;
    bson_t body;

    if (!wire_msg_parse(data, (size_t)h->length, (uint32_t)conf->max_bson_depth, &msg, &error)) {
        decoding_error(c, h, &error);
        return false;
    }
    oneway = (msg.flags & WIRE_MSG_MORE_TO_COME) != 0;
    if (wire_cmd_parse(msg.body, msg.body_len, &cmd, &error))
        route = proxy_router_route(&cmd);
    else
        memset(&cmd, 0, sizeof cmd);
    if (conf_log_enabled(CONF_LOG_DEBUG))
        conf_log(CONF_LOG_DEBUG, c->id, "request",
                 "request_id=%d cmd=%.64s db=%.64s route=%s bytes=%d oneway=%d", h->request_id,
                 cmd.name ? cmd.name : "?", cmd.db ? cmd.db : "?",
                 proxy_router_route_name(route), h->length, oneway);

    if (!oneway) {
        req = push_request(c, h->request_id, route, false);
        proxy_slow_note(c, req, cmd.name ? &cmd : NULL);
    } else
        remember_oneway(c, h->request_id);
    (void)bson_init_static(&body, msg.body, msg.body_len);
    switch (route) {
    case PROXY_ROUTE_HELLO:
        if (req) {
            bson_t stripped;

            if (proxy_handshake_prepare_hello(c, &body, req, &stripped))
                replacement = wire_msg_rebuild(&msg, &stripped, &replacement_len);
            bson_destroy(&stripped);
        }
        break;
    case PROXY_ROUTE_SASL_START:
        c->server->auth_seen = true;
        proxy_auth_start(&c->auth, &body, cmd.db);
        break;
    case PROXY_ROUTE_AUTH_OTHER:
        c->server->auth_seen = true;
        proxy_auth_unknown(&c->auth);
        break;
    case PROXY_ROUTE_SASL_CONTINUE:
        proxy_auth_continue(&c->auth, &body);
        break;
    case PROXY_ROUTE_ADMIN:
        /* Answered here, in order with the other replies; never forwarded. A
         * moreToCome one (no reply wanted) is not taken: nobody would know. */
        if (req)
            proxy_action_answer(c, req, &body, cmd.db); /* may hold it: see write_wait */
        else
            conf_log(CONF_LOG_INFO, c->id, "admin_action",
                     "via=wire action=%s result=refused_oneway", cmd.name);
        evbuffer_drain(in, (size_t)h->length);
        proxy_client_flush_canned(c);
        return true;
    case PROXY_ROUTE_FORWARD:
        if (!c->server->cache || !cmd.db)
            break;
        if (req && proxy_lookup_answer_cursor(c, &cmd, &body, req)) {
            evbuffer_drain(in, (size_t)h->length);
            proxy_client_flush_canned(c);
            return true;
        }
        switch (proxy_lookup_consult(c, &msg, &cmd, &body, req, oneway)) {
        case PROXY_LOOKUP_FORWARD:
            break;
        case PROXY_LOOKUP_ANSWERED:
            evbuffer_drain(in, (size_t)h->length);
            proxy_client_flush_canned(c);
            return true;
        case PROXY_LOOKUP_WAITING:
            /* Read nothing more until the wait is over: replies stay in order. */
            req->held = bson_malloc((size_t)h->length);
            memcpy(req->held, data, (size_t)h->length);
            req->held_len = (size_t)h->length;
            if (msg.flags & WIRE_MSG_EXHAUST_ALLOWED)
                wire_msg_clear_flags(req->held, req->held_len, WIRE_MSG_EXHAUST_ALLOWED);
            evbuffer_drain(in, (size_t)h->length);
            proxy_client_set_blocked(c, true);
            return false;
        }
        break;
    }
    if (route == PROXY_ROUTE_FORWARD)
        advise(c, req, &msg, &cmd, &body);
    /* Exhaust is never negotiated: every request gets one reply. The
     * OP_MSG spec lets a server ignore exhaustAllowed; so may we. */
    if (msg.flags & WIRE_MSG_EXHAUST_ALLOWED) {
        if (!replacement) {
            replacement = bson_malloc((size_t)h->length);
            memcpy(replacement, data, (size_t)h->length);
            replacement_len = (size_t)h->length;
        }
        wire_msg_clear_flags(replacement, replacement_len, WIRE_MSG_EXHAUST_ALLOWED);
    }
    if (req)
        req->upstream_us = req->started_us; /* sent now: the round trip starts */
    proxy_client_forward(c, in, (size_t)h->length, replacement, replacement_len, oneway);
    if (oneway && c->oneway_count == ONEWAY_RING && !c->dead)
        send_barrier(c);
    return true;
}

static bool
handle_op_query(struct proxy_client *c, struct evbuffer *in, const uint8_t *data,
                const struct wire_header *h)
{
    const struct conf *conf = c->server->conf;
    struct wire_query query;
    struct wire_cmd cmd;
    bson_error_t error;
    size_t coll_len;
    struct proxy_request *req;
    uint8_t *replacement = NULL;
    size_t replacement_len = 0;
    bson_t doc, stripped;

    if (!wire_msg_parse_query(data, (size_t)h->length, (uint32_t)conf->max_bson_depth, &query,
                              &error)) {
        decoding_error(c, h, &error);
        return false;
    }
    coll_len = strlen(query.full_collection);
    if (coll_len < 5 || strcmp(query.full_collection + coll_len - 5, ".$cmd") != 0 ||
        !wire_cmd_parse(query.query, query.query_len, &cmd, &error) ||
        !wire_cmd_is_hello(cmd.name)) {
        /* Since MongoDB 5.1 OP_QUERY carries only the legacy handshake. */
        proxy_stats_add(&c->server->stats, PROXY_STAT_decoding_errors, 1);
        conf_log(CONF_LOG_WARN, c->id, "unsupported_op_query",
                 "peer=%s msg=\"OP_QUERY is accepted only for hello/isMaster on a $cmd "
                 "collection; closing\"",
                 c->peer);
        refuse(c, in, h, true, WIRE_CODE_UNSUPPORTED_OP_QUERY, "UnsupportedOpQueryCommand",
               "mongocache: OP_QUERY is supported only for hello and isMaster");
        return false;
    }
    if (conf_log_enabled(CONF_LOG_DEBUG))
        conf_log(CONF_LOG_DEBUG, c->id, "request",
                 "request_id=%d cmd=%.64s op=OP_QUERY route=hello bytes=%d", h->request_id,
                 cmd.name, h->length);
    req = push_request(c, h->request_id, PROXY_ROUTE_HELLO, true);
    proxy_slow_note(c, req, &cmd);
    (void)bson_init_static(&doc, query.query, query.query_len);
    if (proxy_handshake_prepare_hello(c, &doc, req, &stripped))
        replacement = wire_msg_rebuild_query(&query, &stripped, &replacement_len);
    bson_destroy(&stripped);
    req->upstream_us = req->started_us;
    proxy_client_forward(c, in, (size_t)h->length, replacement, replacement_len, false);
    return true;
}

/* Handles the whole message at the front of in. Returns false to stop reading. */
static bool
handle_message(struct proxy_client *c, struct evbuffer *in, const struct wire_header *h)
{
    const uint8_t *data = evbuffer_pullup(in, h->length);
    bson_error_t error;

    if (!data) {
        close_now(c, "out_of_memory");
        return false;
    }
    c->n_requests++;
    proxy_stats_add(&c->server->stats, PROXY_STAT_requests, 1);
    proxy_stats_add(&c->server->stats, PROXY_STAT_bytes_from_clients, h->length);
    switch (h->opcode) {
    case WIRE_OP_MSG:
        return handle_op_msg(c, in, data, h);
    case WIRE_OP_QUERY:
        return handle_op_query(c, in, data, h);
    case WIRE_OP_COMPRESSED:
        proxy_stats_add(&c->server->stats, PROXY_STAT_decoding_errors, 1);
        conf_log(CONF_LOG_WARN, c->id, "compression_refused",
                 "peer=%s msg=\"OP_COMPRESSED received but compression was never negotiated; "
                 "closing\"",
                 c->peer);
        refuse(c, in, h, false, WIRE_CODE_PROTOCOL_ERROR, "ProtocolError",
               "mongocache: compression was not negotiated; OP_COMPRESSED is not accepted");
        return false;
    default:
        bson_set_error(&error, WIRE_ERROR_DOMAIN, WIRE_CODE_PROTOCOL_ERROR,
                       "unsupported opcode %d", h->opcode);
        decoding_error(c, h, &error);
        return false;
    }
}

void
proxy_client_process_input(struct proxy_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    const int32_t max = (int32_t)c->server->conf->max_message_size;
    uint8_t head[WIRE_HEADER_LEN];
    struct wire_header h;
    bson_error_t error;
    bool progressed = false;
    int handled = 0;

    while (can_take_input(c) && !check_output(c) && !check_memory(c)) {
        size_t avail = evbuffer_get_length(in);
        enum wire_status st;

        if (handled == PROXY_CLIENT_BATCH && avail > 0) {
            /* Fairness: the rest waits until the loop has polled every
             * other connection (a zero timer runs after the next poll). */
            static const struct timeval now = {0, 0};

            event_add(wake_event(c), &now);
            break;
        }

        if (avail < WIRE_HEADER_LEN)
            break;
        evbuffer_copyout(in, head, sizeof head);
        st = wire_frame_header(head, sizeof head, max, &h, &error);
        if (st == WIRE_ERROR) {
            decoding_error(c, NULL, &error);
            return;
        }
        if (avail < (size_t)h.length) {
            if (!admit(c, in, &h, avail))
                return;
            break;
        }
        release_promise(c);
        handled++;
        if (!handle_message(c, in, &h))
            break;
        progressed = true;
    }
    update_reading(c);
    proxy_client_update_timer(c, progressed);
    if (c->peer_eof)
        proxy_client_maybe_finish(c); /* were those the last before its EOF? */
}

/* Ends backpressure from the upstream side and handles what is buffered. */
static void
resume_reading(struct proxy_client *c)
{
    if (!c->reading_paused || c->dead)
        return;
    c->reading_paused = false;
    proxy_client_process_input(c);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_client *c = arg;

    if (c->lingering) {
        struct evbuffer *in = bufferevent_get_input(bev);

        evbuffer_drain(in, evbuffer_get_length(in)); /* see start_linger */
        return;
    }
    proxy_client_process_input(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    struct proxy_client *c = arg;

    (void)bev;
    if (c->output_full &&
        evbuffer_get_length(client_output(c)) <= (size_t)c->server->conf->buffer_limit / 2) {
        c->output_full = false;
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        sync_upstream(c);
        if (c->up && !c->memory_paused) {
            proxy_upstream_process(c->up);
            if (c->dead)
                return;
        }
        proxy_client_process_input(c);
        if (c->dead)
            return;
    }
    proxy_client_maybe_finish(c);
    proxy_client_update_timer(c, false);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct proxy_client *c = arg;

    (void)bev;
    if (c->lingering) {
        close_now(c, "refused");
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        proxy_stats_add(&c->server->stats, PROXY_STAT_write_timeouts, 1);
        conf_log(CONF_LOG_WARN, c->id, "write_timeout",
                 "peer=%s queued=%zu timeout_ms=%lld msg=\"the client took none of its replies "
                 "in time; closing\"",
                 c->peer, evbuffer_get_length(client_output(c)),
                 (long long)c->server->conf->message_timeout);
        c->peer_gone = true;
        stop_io(c);
        close_now(c, "write_timeout");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        c->peer_eof = true;
        update_reading(c);
    } else {
        c->peer_gone = true;
        stop_io(c);
    }
    if (c->peer_gone) {
        /* Nothing can reach the client any more. Its upstream connection
         * is its own and goes with it: the server finishes writes it has
         * started and stops reads when it sees the close. */
        close_now(c, "client_error");
        return;
    }
    /* EOF: replies still owed are sent (the client may have shut down only
     * its side), bounded by drain_timeout. */
    proxy_client_maybe_finish(c);
    proxy_client_update_timer(c, false);
}

/* The socket is readable: proxy_io_readable reads it, then calls read_cb or event_cb. */
static void
readable_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_client *c = proxy_io_owner(arg);

    (void)fd;
    (void)what;
    proxy_io_readable(proxy_io_loop_get(c->server), arg);
}

/* ---- replies ---------------------------------------------------------------- */

static void
upstream_protocol_error(struct proxy_client *c, struct proxy_request *req, const char *what)
{
    char errmsg[512];

    proxy_stats_add(&c->server->stats, PROXY_STAT_upstream_protocol_errors, 1);
    if (req && req->internal)
        req = NULL; /* the proxy's own request: nobody to tell but the log */
    conf_log(CONF_LOG_WARN, c->id, "upstream_protocol_error",
             "upstream=%s error=\"%s\" msg=\"the upstream sent an invalid reply; closing both "
             "connections\"",
             c->server->upstream_label, what);
    if (req) {
        snprintf(errmsg, sizeof errmsg, "mongocache: invalid reply from upstream %s: %s",
                 c->server->upstream_label, what);
        send_error(c, req->request_id, req->legacy, WIRE_CODE_PROTOCOL_ERROR, "ProtocolError",
                   errmsg);
        proxy_client_observe(c, req, PROXY_OUTCOME_ERROR);
    }
    proxy_upstream_destroy(c->up);
    c->up = NULL;
    while ((req = TAILQ_FIRST(&c->pending)))
        pop_request(c, req);
    finish(c);
}

/*
 * True (and forgotten) when response_to names a recent moreToCome request:
 * the OP_MSG spec says such a request gets no reply, but some servers send
 * one. The client is not expecting it, so it is dropped.
 */
static bool
answers_oneway(struct proxy_client *c, int32_t response_to)
{
    /* Replies come in request order: older entries went unanswered. */
    while (c->oneway_count > 0) {
        int32_t id = c->oneway_ring[c->oneway_head];

        c->oneway_head = (c->oneway_head + 1) % ONEWAY_RING;
        c->oneway_count--;
        if (id == response_to)
            return true;
    }
    return false;
}

/* The oldest request still waiting for the upstream's reply (earlier ones are answered). */
static struct proxy_request *
in_flight_head(struct proxy_client *c)
{
    struct proxy_request *req;

    TAILQ_FOREACH(req, &c->pending, link)
        if (!req->canned && !req->hit)
            return req;
    return NULL;
}

/* The oldest of the client's own requests still waiting for a reply, or NULL. */
static struct proxy_request *
client_head(struct proxy_client *c)
{
    struct proxy_request *req;

    TAILQ_FOREACH(req, &c->pending, link)
        if (!req->canned && !req->hit && !req->internal)
            return req;
    return NULL;
}

void
proxy_client_on_upstream_invalid(struct proxy_client *c, const char *why)
{
    upstream_protocol_error(c, client_head(c), why);
}

/* A reply's "ok": 1 true, 0 false, -1 absent. Read once per reply, for whoever needs it. */
static int
reply_ok(const bson_t *reply)
{
    return wire_msg_ok(bson_get_data(reply), reply->len);
}

bool
proxy_client_on_reply(struct proxy_client *c, struct evbuffer *in, const struct wire_header *h)
{
    const struct conf *conf = c->server->conf;
    struct proxy_request *req = in_flight_head(c);
    const uint8_t *data;
    const uint8_t *body = NULL;
    uint32_t body_len = 0;
    int32_t reply_flags = 0;
    bson_error_t error;
    char what[320];
    uint8_t *rewritten = NULL;
    size_t rewritten_len = 0;
    enum proxy_outcome outcome;
    int64_t now_us = 0;
    int ok = -1;
    bson_t reply;

    if ((!req || h->response_to != proxy_drain_expected_id(req)) &&
        answers_oneway(c, h->response_to)) {
        proxy_stats_add(&c->server->stats, PROXY_STAT_oneway_replies_dropped, 1);
        conf_log(CONF_LOG_DEBUG, c->id, "oneway_reply_dropped", "response_to=%d",
                 h->response_to);
        evbuffer_drain(in, (size_t)h->length);
        return true;
    }
    if (!req) {
        upstream_protocol_error(c, NULL, "a reply arrived with no request in flight");
        return false;
    }
    if (h->response_to != proxy_drain_expected_id(req)) {
        snprintf(what, sizeof what, "responseTo %d does not match the request in flight (%d)",
                 h->response_to, proxy_drain_expected_id(req));
        upstream_protocol_error(c, req, what);
        return false;
    }
    if (req->internal) {
        /* The oneway barrier's reply: every moreToCome request before it has
         * been answered or never will be. The client is read again. */
        evbuffer_drain(in, (size_t)h->length);
        pop_request(c, req);
        c->oneway_head = 0;
        c->oneway_count = 0;
        c->barrier = false;
        proxy_client_flush_canned(c);
        proxy_client_process_input(c);
        proxy_client_maybe_finish(c);
        return !c->dead && !c->output_full && !c->memory_paused;
    }
    data = evbuffer_pullup(in, h->length);
    if (!data) {
        upstream_protocol_error(c, req, "out of memory");
        return false;
    }
    if (req->legacy) {
        struct wire_reply r;

        if (h->opcode != WIRE_OP_REPLY) {
            snprintf(what, sizeof what, "opcode %d answers an OP_QUERY", h->opcode);
            upstream_protocol_error(c, req, what);
            return false;
        }
        if (!wire_msg_parse_reply(data, (size_t)h->length, (uint32_t)conf->max_bson_depth, &r,
                                  &error) ||
            r.n_returned < 1) {
            upstream_protocol_error(c, req, r.n_returned < 1 ? "empty OP_REPLY" : error.message);
            return false;
        }
        body = r.docs;
        body_len = (uint32_t)wire_frame_read_i32(r.docs);
        reply_flags = r.flags;
    } else {
        struct wire_msg m;

        if (h->opcode != WIRE_OP_MSG) {
            snprintf(what, sizeof what, "opcode %d answers an OP_MSG", h->opcode);
            upstream_protocol_error(c, req, what);
            return false;
        }
        if (!wire_msg_parse(data, (size_t)h->length, (uint32_t)conf->max_bson_depth, &m,
                            &error)) {
            upstream_protocol_error(c, req, error.message);
            return false;
        }
        if (m.flags & WIRE_MSG_MORE_TO_COME) {
            upstream_protocol_error(c, req, "moreToCome reply although exhaust was not allowed");
            return false;
        }
        body = m.body;
        body_len = m.body_len;
        reply_flags = (int32_t)m.flags;
    }
    (void)bson_init_static(&reply, body, body_len);
    /* One clock read and one look for "ok" serve the round trip, the
     * advice, the outcome and the request's latency. */
    if (req->upstream_us || req->n_shapes > 0 || req->started_us)
        now_us = conf_clock_us();
    if (req->started_us || req->index_db)
        ok = reply_ok(&reply);
    if (req->upstream_us) {
        if (conf->latency_histograms)
            cache_hist_observe(&c->server->stats.upstream, now_us - req->upstream_us);
        req->upstream_us = 0; /* a drain's getMores are timed by drain.c */
    }
    if (req->n_shapes > 0 || req->index_db)
        advise_reply(c, req, &reply, ok == 1, now_us);
    switch (req->route) {
    case PROXY_ROUTE_HELLO:
        rewritten =
            proxy_handshake_rewrite_hello(c, req, h, &reply, reply_flags, &rewritten_len);
        break;
    case PROXY_ROUTE_SASL_START:
        proxy_handshake_observe_auth(c, PROXY_AUTH_STEP_START, &reply);
        break;
    case PROXY_ROUTE_SASL_CONTINUE:
        proxy_handshake_observe_auth(c, PROXY_AUTH_STEP_CONTINUE, &reply);
        break;
    case PROXY_ROUTE_AUTH_OTHER:
    case PROXY_ROUTE_ADMIN: /* answered by the proxy: never upstream */
        break;
    case PROXY_ROUTE_FORWARD:
        /* A stored reply is replayed with a new header, which a checksum
         * would cover: checksummed replies are not stored. */
        if (!req->miss || (reply_flags & WIRE_MSG_CHECKSUM_PRESENT))
            break;
        if (req->drain ||
            (c->n_pending == 1 && proxy_drain_open_cursor(&reply, NULL, NULL, NULL))) {
            /* The reply (a batch) stays with the proxy; the client gets the
             * whole result once the cursor is drained. */
            proxy_drain_step(c, req, &reply);
            evbuffer_drain(in, (size_t)h->length);
            return !c->dead;
        }
        cache_store(c->server->cache, req->miss, data, (size_t)h->length, &reply);
        break;
    }
    proxy_stats_add(&c->server->stats, PROXY_STAT_replies, 1);
    outcome = req->miss ? PROXY_OUTCOME_MISS : PROXY_OUTCOME_PASS;
    if (ok == 0)
        outcome = PROXY_OUTCOME_ERROR;
    if (req->inval && !rewritten &&
        cache_write_end_async(c->server->cache, req->inval, proxy_lookup_write_bumped, req,
                              &req->write_wait)) {
        /* The ack waits (in order) until the other proxies can no longer
         * serve what this write changed. */
        bson_free(req->inval);
        req->inval = NULL;
        req->canned = bson_malloc((size_t)h->length);
        evbuffer_remove(in, req->canned, (size_t)h->length);
        req->canned_len = (size_t)h->length;
        req->outcome = (uint8_t)outcome;
        return !c->dead;
    }
    if (rewritten) {
        evbuffer_drain(in, (size_t)h->length);
        proxy_client_write_owned(c, rewritten, rewritten_len);
    } else if (c->peer_gone) {
        evbuffer_drain(in, (size_t)h->length);
    } else {
        evbuffer_remove_buffer(in, c->scratch, (size_t)h->length);
        proxy_io_send(c->bev, c->scratch);
    }
    proxy_client_observe_at(c, req, outcome, now_us);
    pop_request(c, req);
    proxy_client_flush_canned(c);

    check_output(c);
    check_memory(c);
    update_reading(c);
    proxy_client_maybe_finish(c);
    if (!c->dead)
        proxy_client_update_timer(c, false);
    return !c->dead && !c->output_full && !c->memory_paused;
}

void
proxy_client_on_upstream_down(struct proxy_client *c, const char *why, bool connected)
{
    struct proxy_request *req;
    bool oneway_lost = c->oneway_sent;

    proxy_upstream_destroy(c->up);
    c->up = NULL;
    if (!connected) {
        proxy_stats_add(&c->server->stats, PROXY_STAT_upstream_connect_failures, 1);
        conf_log(CONF_LOG_WARN, c->id, "upstream_unreachable",
                 "upstream=%s error=\"%s\" msg=\"check that the upstream is running and that "
                 "the upstream option names it\"",
                 c->server->upstream_label, why);
        if (!oneway_lost) {
            /* Nothing reached the server: an error reply is the truth. */
            char errmsg[512];

            snprintf(errmsg, sizeof errmsg, "mongocache: %s", why);
            while ((req = TAILQ_FIRST(&c->pending))) {
                send_error(c, req->request_id, req->legacy, WIRE_CODE_HOST_UNREACHABLE,
                           "HostUnreachable", errmsg);
                proxy_client_observe(c, req, PROXY_OUTCOME_ERROR);
                pop_request(c, req);
            }
            proxy_client_maybe_finish(c);
            /* Requests buffered behind the failure are tried on a new
             * connection (the old one's queue is gone, and so is any wait). */
            c->reading_paused = false;
            if (!c->dead)
                proxy_client_process_input(c);
            return;
        }
        close_now(c, "upstream_unreachable");
        return;
    }
    /* The connection held this client's authentication, cursors and
     * transactions, so it is not silently replaced, and requests in flight
     * may have reached the server: never invent an answer. Replies already
     * relayed are flushed, then the client is closed; its driver sees a
     * network error, reconnects, and retries what is safe to retry. */
    proxy_stats_add(&c->server->stats, PROXY_STAT_upstream_lost, 1);
    conf_log(c->n_pending ? CONF_LOG_WARN : CONF_LOG_INFO, c->id, "upstream_lost",
             "upstream=%s error=\"%s\" in_flight=%u msg=\"closing the client so its driver "
             "reconnects\"",
             c->server->upstream_label, why, c->n_pending);
    while ((req = TAILQ_FIRST(&c->pending)))
        pop_request(c, req);
    finish(c);
}

void
proxy_client_on_upstream_drained(struct proxy_client *c)
{
    if (c->dead)
        return;
    resume_reading(c);
    proxy_client_maybe_finish(c);
}

/* ---- construction ------------------------------------------------------------ */

static void
format_peer(char *out, size_t size, const struct sockaddr *addr)
{
    char host[INET6_ADDRSTRLEN];

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;

        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
        snprintf(out, size, "%s:%u", host, ntohs(in4->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(out, size, "unix");
    }
}

struct proxy_client *
proxy_client_new(struct proxy_server *server, evutil_socket_t fd, const struct sockaddr *addr,
                 int addrlen)
{
    struct proxy_client *c = bson_malloc0(sizeof *c);
    struct proxy_io_loop *loop;
    int one = 1;

    (void)addrlen;
    c->server = server;
    c->id = ++server->next_conn_id;
    TAILQ_INIT(&c->pending);
    proxy_auth_init(&c->auth);
    format_peer(c->peer, sizeof c->peer, addr);
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    evutil_make_socket_nonblocking(fd);
    c->bev = bufferevent_socket_new(server->base, fd, BEV_OPT_CLOSE_ON_FREE);
    loop = proxy_io_loop_get(server);
    c->scratch = loop ? loop->scratch : NULL;
    if (!c->bev || !c->scratch) {
        /* The bufferevent owns fd now; keep the caller from closing it twice. */
        if (c->bev)
            bufferevent_setfd(c->bev, -1);
        free_parts(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    {
        /* A client that takes none of its replies for message_timeout is
         * closed: what it leaves queued cannot hold the proxy's memory. */
        struct timeval write_tv = ms_to_tv(server->conf->message_timeout);

        bufferevent_set_timeouts(c->bev, NULL, &write_tv);
    }
    bufferevent_enable(c->bev, EV_WRITE);
    proxy_io_read_take(c->bev, readable_cb);
    proxy_io_read_enable(c->bev, true);
    c->reading = true;
    proxy_server_memory_track(server, bufferevent_get_input(c->bev));
    proxy_server_memory_track(server, bufferevent_get_output(c->bev));
    c->tracked = true;
    TAILQ_INSERT_TAIL(&server->clients, c, link);
    server->n_clients++;
    proxy_stats_add(&server->stats, PROXY_STAT_clients_accepted, 1);
    proxy_stats_add(&server->stats, PROXY_STAT_clients_active, 1);
    conf_log(CONF_LOG_INFO, c->id, "client_accept", "peer=%s", c->peer);
    proxy_client_update_timer(c, false);
    return c;
}
