/*
 * proxy/client.c: one client connection and its requests in flight, in
 * order. The life of a request (frame, check, route, the cache's part,
 * forward, reply, relay) is drawn at the top of proxy/request.c; this file
 * takes the steps that touch the connection: reading and framing client
 * messages (process_input), forwarding them on the client's own upstream
 * (forward), checking each reply against the oldest request awaiting the
 * upstream and relaying it (on_reply), writing the proxy's own replies and
 * hits when their request reaches the head of the list (flush_canned), and
 * timing each reply as it is queued (proxy_client_observe).
 *
 * Owns: the client connection (proxy/conn.h), its upstream, the list of
 * requests in flight (the one owner of each request: pop_request is the
 * only caller of proxy_request_destroy), timers (message deadline, idle, drain) and the
 * auth state. Does not own accepting sockets (listener.c), the upstream's
 * framing (upstream.c), a request's state and payloads (request.c), the
 * query cache's part of a request (lookup.c), the reading of an open
 * cursor to its end (drain.c) or a hello's and authentication's
 * preparation and observation (handshake.c). Those files never call this
 * one: upstream.c reports through struct proxy_upstream_cbs, a request's
 * cache waits through struct proxy_request_ops, drain.c by its return.
 *
 * Lifetime: nothing frees a client inside one of its own callbacks. Closing
 * marks it dead and activates resume_ev; its callback (wake_cb) frees it.
 */
#include "proxy/client.h"

#include "cache/cache.h"
#include "conf/clock.h"
#include "conf/log.h"
#include "proxy/action.h"
#include "proxy/auth.h"
#include "proxy/client_internal.h"
#include "proxy/compress.h"
#include "proxy/conn.h"
#include "proxy/cursor.h"
#include "proxy/drain.h"
#include "proxy/handshake.h"
#include "proxy/io.h"
#include "proxy/hello.h"
#include "proxy/lookup.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "proxy/slow.h"
#include "proxy/topology.h"
#include "proxy/upstream.h"
#include "wire/cmd.h"
#include "wire/msg.h"
#include "wire/names.h"
#include "wire/reply.h"
#include "wire/sdam.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>


/*
 * Most messages of one client handled in a row before the loop serves
 * others. A new connection's first request waits a few loop turns, each as
 * long as every busy connection's batch: 8 (was 16) halves that wait under
 * pipelined floods (tests/integration/resources.py's namespaces phase: 16
 * connections' batches of misses), for an extra loop turn per 8 pipelined
 * messages.
 */
#define PROXY_CLIENT_BATCH 8

static void close_now(struct proxy_client *c, const char *reason);
static void process_input(struct proxy_client *c);
static void set_blocked(struct proxy_client *c, bool blocked);
static void update_timer(struct proxy_client *c, bool progressed);
static void maybe_finish(struct proxy_client *c);
static void flush_canned(struct proxy_client *c);
static void forward(struct proxy_client *c, const uint8_t *data, size_t len, uint8_t *replacement,
                    size_t replacement_len, bool oneway, bool may_compress);
static bool on_reply(void *arg, const uint8_t *data, const struct wire_header *h);
static bool handle_reply(struct proxy_client *c, struct proxy_request *req, const uint8_t *data,
                         const struct wire_header *h, size_t in_len, uint8_t **owned,
                         int up_compressor);
static void on_upstream_down(void *arg, const char *why, bool connected);
static void on_upstream_invalid(void *arg, const char *why);
static void on_upstream_drained(void *arg);

/* How a client's upstream connection (upstream.c) reports to it. */
static const struct proxy_upstream_cbs upstream_cbs = {
    on_reply,
    on_upstream_down,
    on_upstream_invalid,
    on_upstream_drained,
};
static struct event *wake_event(struct proxy_client *c);
static void start_linger(struct proxy_client *c);
static void pop_request(struct proxy_client *c, struct proxy_request *req);

/*
 * Moves the client along its phases (struct proxy_client): only forward,
 * from open to gone; a move back is our own bug.
 */
static void
set_phase(struct proxy_client *c, enum proxy_client_phase to)
{
    BSON_ASSERT(to > c->phase);
    c->phase = to;
}

/* ---- when the client is read ---------------------------------------------- */

/* True when nothing stops the client's buffered messages being handled. */
static bool
can_take_input(const struct proxy_client *c)
{
    return c->phase < PROXY_CLIENT_FINISHING && !c->reading_paused && !c->output_full &&
           !c->memory_paused && !c->barrier && !c->blocked;
}

/*
 * Turns the socket's reading on or off to match the client's state (the
 * connection owns whether it reads, and costs an epoll_ctl only when its
 * interest must change: proxy/conn.h).
 */
static void
update_reading(struct proxy_client *c)
{
    bool want = c->phase == PROXY_CLIENT_OPEN && can_take_input(c);

    if (c->phase >= PROXY_CLIENT_LINGERING || want == proxy_conn_reading(c->conn))
        return;
    proxy_conn_read_enable(c->conn, want);
}

/* The socket is neither read nor written any more. */
static void
stop_io(struct proxy_client *c)
{
    proxy_conn_read_enable(c->conn, false);
    proxy_conn_write_enable(c->conn, false);
}

/*
 * Whether the oldest request's reply is held back (a write's ack waiting for
 * Redis, an in-band flush's or invalidation's ok): the replies of the
 * requests after it must not overtake it, so they stay in the upstream's
 * buffer (and socket) until it is sent.
 */
static bool
head_held(struct proxy_client *c)
{
    struct proxy_request *first = TAILQ_FIRST(&c->pending);

    return first && first->state == PROXY_REQUEST_WAITING_WRITE_ACK;
}

/* The upstream is read unless our output or the memory budget is full, or a reply is held. */
static void
sync_upstream(struct proxy_client *c)
{
    if (c->up)
        proxy_upstream_pause(c->up, c->output_full || c->memory_paused || head_held(c));
}

static void
set_blocked(struct proxy_client *c, bool blocked)
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
    if (c->phase == PROXY_CLIENT_GONE || proxy_conn_output_length(c->conn) <= limit)
        return false;
    c->output_full = true;
    sync_upstream(c);
    proxy_conn_set_write_low(c->conn, limit / 2);
    return true;
}

/* Bytes this client holds: its buffers, its upstream's, and what its arriving message announced. */
static size_t
client_share(struct proxy_client *c)
{
    size_t n = proxy_conn_input_length(c->conn) +
               proxy_conn_output_length(c->conn) + c->promised + c->held_bytes;

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

/*
 * Whether what this client has asked of the proxy and not had answered
 * passes limit: the requests queued toward its upstream, and those
 * answered here but held (held_bytes: in-band admin commands until they
 * end, hits behind earlier requests). Over buffer_limit, the client is
 * read no further (reading_paused) until it is back under half of it.
 */
static bool
queue_over(const struct proxy_client *c, size_t limit)
{
    return (c->up ? proxy_upstream_queued(c->up) : 0) + c->held_bytes > limit;
}

/*
 * Counts bytes that req, answered here, holds until it ends (its message
 * and its answer) in the client's held_bytes, with its relayed requests
 * (queue_over): past buffer_limit the client is read no further until
 * they are back under half of it. pop_request gives them back.
 */
static void
hold_answer(struct proxy_client *c, struct proxy_request *req, size_t bytes)
{
    req->held_bytes = (uint32_t)bytes;
    c->held_bytes += req->held_bytes;
    if (queue_over(c, (size_t)c->server->conf->buffer_limit) && !c->reading_paused)
        c->reading_paused = true; /* process_input stops; update_reading follows */
}

/*
 * A request answered here (a hit, a proxy cursor's batch) that waits
 * behind an earlier one for its turn: it holds its request, its stored
 * value or answer, until then; counted (hold_answer), or a client could
 * pipeline hits behind one slow read without end.
 */
static void
hold_if_queued(struct proxy_client *c, struct proxy_request *req, size_t msg_len)
{
    size_t answer;

    if (TAILQ_FIRST(&c->pending) == req)
        return; /* flush_canned writes it now */
    answer = req->hit ? cache_value_payload_len(req->hit) + WIRE_HEADER_LEN : req->canned_len;
    hold_answer(c, req, msg_len + answer + sizeof *req);
}

/* ---- timers ------------------------------------------------------------- */

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void drop_all(struct proxy_client *c);

/*
 * Arms the client's timer for ms. The timer is made the first time it is
 * armed (a client that never needed one, such as an idle client without
 * idle_timeout whose messages all came whole, holds none) and kept until
 * the client is freed: disarm_timer only deletes it, so a message deadline
 * per request costs no allocation.
 */
static void
arm_timer(struct proxy_client *c, int64_t ms)
{
    struct timeval tv = conf_clock_tv(ms);

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
    if (c->timer)
        evtimer_del(c->timer);
}

static void
update_timer(struct proxy_client *c, bool progressed)
{
    const struct conf *conf = c->server->conf;

    if (c->phase >= PROXY_CLIENT_DEAD)
        return;
    if (can_take_input(c) && proxy_conn_input_length(c->conn) > 0) {
        /* A message has started: it must be whole by the deadline. */
        if (!c->deadline_armed || progressed) {
            c->deadline_armed = true;
            arm_timer(c, conf->message_timeout);
        }
        return;
    }
    c->deadline_armed = false;
    if (c->phase >= PROXY_CLIENT_PEER_EOF) {
        arm_timer(c, conf->drain_timeout);
    } else if (c->n_pending == 0 && conf->idle_timeout > 0 && can_take_input(c) &&
               proxy_conn_output_length(c->conn) == 0) {
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
    } else if (c->phase >= PROXY_CLIENT_PEER_EOF) {
        close_now(c, "drain_timeout");
    } else if (c->n_pending == 0 && can_take_input(c) &&
               proxy_conn_output_length(c->conn) == 0) {
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

    (void)fd;
    (void)what;
    if (c->phase >= PROXY_CLIENT_DEAD)
        proxy_client_free(c);
    else if (!c->blocked)
        process_input(c); /* a wait is over: what is buffered is handled */
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
    if (c->phase >= PROXY_CLIENT_DEAD)
        return;
    set_phase(c, PROXY_CLIENT_DEAD);
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
    size_t avail = proxy_conn_input_length(c->conn);
    uint8_t head[4];
    int32_t len;

    if (avail < WIRE_HEADER_LEN)
        return false;
    proxy_conn_copyout(c->conn, head, sizeof head);
    len = wire_frame_read_i32(head);
    return len >= WIRE_HEADER_LEN && (size_t)len <= avail;
}

/*
 * Closes a client that is finishing (drain, EOF, a fatal error) once nothing
 * is owed either way: no reply awaited, every reply flushed to the client,
 * and every request (moreToCome writes included) flushed to the upstream.
 * Until then the write callbacks call it again; drain_timeout bounds it.
 */
static void
maybe_finish(struct proxy_client *c)
{
    if (c->phase >= PROXY_CLIENT_DEAD || c->phase < PROXY_CLIENT_PEER_EOF || c->n_pending > 0)
        return;
    /* Messages sent before an EOF that wait for their turn (the fairness
     * yield, a pause) are answered first: process_input calls this again
     * after them; drain_timeout bounds the wait. */
    if (c->phase == PROXY_CLIENT_PEER_EOF && message_buffered(c))
        return;
    if (c->up && proxy_upstream_queued(c->up) > 0) {
        proxy_upstream_set_low_watermark(c->up, 0);
        return;
    }
    if (proxy_conn_output_length(c->conn) == 0) {
        if (c->linger)
            start_linger(c);
        else
            close_now(c, c->phase >= PROXY_CLIENT_FINISHING ? "finished" : "client_eof");
    } else {
        proxy_conn_set_write_low(c->conn, 0);
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
    if (c->phase == PROXY_CLIENT_LINGERING)
        return;
    set_phase(c, PROXY_CLIENT_LINGERING);
    shutdown(proxy_conn_fd(c->conn), SHUT_WR);
    proxy_conn_drain(c->conn, SIZE_MAX);
    proxy_conn_read_enable(c->conn, true);
    update_timer(c, false);
}

/* The socket failed (or took nothing in time): replies are discarded, and it closes now. */
static void
lose_peer(struct proxy_client *c, const char *reason)
{
    stop_io(c);
    close_now(c, reason);
    if (c->phase < PROXY_CLIENT_GONE)
        set_phase(c, PROXY_CLIENT_GONE);
}

static void
finish(struct proxy_client *c)
{
    if (c->phase < PROXY_CLIENT_FINISHING)
        set_phase(c, PROXY_CLIENT_FINISHING);
    update_reading(c);
    maybe_finish(c);
    update_timer(c, false);
}

/*
 * Output still queued can no longer be sent: dropped now, not when the
 * connection's memory goes (inside its own callback that is once the
 * callback returns), so that stored values queued by reference (hits, proxy
 * cursors' first batches) are released while the client's accounting and
 * the cache exist.
 */
static void
drop_output(struct proxy_client *c)
{
    struct evbuffer *out = proxy_conn_output(c->conn);

    evbuffer_drain(out, evbuffer_get_length(out));
}

/* Frees what a client holds of its own (not its requests or upstream), and the client. */
static void
free_parts(struct proxy_client *c)
{
    if (c->conn) {
        /* A client with a connection has its buffers tracked (proxy_client_new). */
        proxy_server_memory_untrack(c->server, c->conn);
        drop_output(c);
        proxy_conn_free(c->conn);
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
    if (!c)
        return;
    conf_log(CONF_LOG_INFO, c->id, "client_close", "peer=%s reason=%s requests=%llu", c->peer,
             c->close_reason ? c->close_reason : "shutdown", (unsigned long long)c->n_requests);
    /* A write whose reply never came ends here: its generations are bumped. */
    drop_all(c);
    proxy_upstream_destroy(c->up);
    release_promise(c);
    if (c->memory_paused)
        c->server->n_memory_paused--;
    TAILQ_REMOVE(&c->server->clients, c, link);
    proxy_server_client_closed(c->server);
    free_parts(c);
}

/*
 * Whether the client's upstream connection holds nothing of the client's
 * own, so that its next request may go on a new one (to whichever server
 * takes new connections then), as a mongos's connections survive a
 * shard's failover: nothing in flight, no moreToCome write whose fate is
 * unknown, no authentication attempted on it (a login is bound to the
 * connection: a replaced one would refuse what the client may do). Open
 * server cursors and transactions are lost as in any failover: their next
 * command gets the server's error (CursorNotFound, NoSuchTransaction).
 */
static bool
upstream_replaceable(const struct proxy_client *c)
{
    return c->phase == PROXY_CLIENT_OPEN && c->n_pending == 0 && !c->oneway_sent &&
           c->auth.state == PROXY_AUTH_NONE;
}

/*
 * The servers new connections go to changed (a failover: proxy/topology.h).
 * A client whose upstream connection goes to a server that is no longer
 * among them: when nothing of its own is on that connection
 * (upstream_replaceable), the connection is dropped and the client's next
 * request goes on a new one, to the new server. Otherwise it ends the way
 * a failover ends it: what it has in flight is answered by that server
 * (which, stepped down, refuses writes with a retryable error), nothing
 * more is read from it, and it closes; its driver reconnects, and the new
 * connection goes to the new server. Requests it sent and that were not
 * read yet were never forwarded: the driver sees a closed connection,
 * which is safe to retry. A write whose reply is lost bumps its
 * generations as always (pop_request).
 */
void
proxy_client_retire_moved(struct proxy_server *server)
{
    struct proxy_client *c;

    /* Clients are freed only by their resume_ev, so the list holds still. */
    TAILQ_FOREACH(c, &server->clients, link) {
        bool replace;

        if (c->phase >= PROXY_CLIENT_FINISHING || !c->up)
            continue;
        if (proxy_upstream_waiting(c->up)) {
            proxy_upstream_connect_waiting(c->up); /* a primary is known now (else it waits on) */
            continue;
        }
        if (proxy_topology_is_target(server->topology, proxy_upstream_address(c->up)))
            continue;
        replace = upstream_replaceable(c);
        proxy_stats_add(&server->stats, PROXY_STAT_upstream_moved, 1);
        conf_log(CONF_LOG_INFO, c->id, "upstream_moved",
                 "upstream=%s in_flight=%u action=%s msg=\"the server no longer takes new "
                 "connections\"",
                 proxy_upstream_address(c->up), c->n_pending,
                 replace ? "next_request_reconnects" : "close_after_in_flight");
        if (replace) {
            proxy_upstream_destroy(c->up);
            c->up = NULL;
        } else {
            finish(c);
        }
    }
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
        if (c->phase >= PROXY_CLIENT_DEAD)
            continue;
        sync_upstream(c);
        if (c->up && !c->output_full)
            proxy_upstream_process(c->up);
        if (c->phase < PROXY_CLIENT_DEAD)
            process_input(c);
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

static void
write_owned(struct proxy_client *c, uint8_t *bytes, size_t len)
{
    if (c->phase != PROXY_CLIENT_GONE) {
        evbuffer_add(c->scratch, bytes, len);
        proxy_conn_send(c->conn, c->scratch);
    }
    bson_free(bytes);
}

/*
 * Writes a reply to req (bytes: a whole message, taken): compressed with
 * the compressor of its request when it came compressed, else as it is
 * (also when compressing fails: a reply need not be compressed).
 */
static void
write_reply(struct proxy_client *c, const struct proxy_request *req, uint8_t *bytes, size_t len)
{
    if (req->reply_compressor >= 0 && len >= WIRE_HEADER_LEN && c->phase != PROXY_CLIENT_GONE) {
        size_t n;
        uint8_t *packed = proxy_compress_reply(c->server, req->reply_compressor, bytes,
                                               bytes + WIRE_HEADER_LEN, len - WIRE_HEADER_LEN, &n);

        if (packed) {
            bson_free(bytes);
            bytes = packed;
            len = n;
        }
    }
    write_owned(c, bytes, len);
}

/* Writes an error reply to req now (compressed as its other replies would be): only for the
 * request at the head of the list. */
static void
send_error(struct proxy_client *c, const struct proxy_request *req, int32_t code,
           const char *code_name, const char *errmsg)
{
    size_t len;
    uint8_t *bytes = proxy_request_make_error(c->server, req->request_id, req->legacy, code,
                                              code_name, errmsg, &len);

    write_reply(c, req, bytes, len);
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

static void request_resolved(struct proxy_request *req);
static void request_acked(struct proxy_request *req);

/* How a request's waits (lookup.c) report to its client. */
static const struct proxy_request_ops request_ops = {
    request_resolved,
    request_acked,
};

static struct proxy_request *
push_request(struct proxy_client *c, int32_t request_id, enum proxy_route route, bool legacy)
{
    struct proxy_request *req = proxy_request_new(c, &request_ops, request_id, route, legacy,
                                                  &c->server->spares);

    if (c->server->conf->latency_histograms || c->server->conf->slow_request_ms > 0)
        req->started_us = conf_clock_us();
    /* A compressed request's reply goes back compressed alike; never a handshake's or an
     * authentication's (OP_COMPRESSED.md "Messages not allowed to be compressed"). */
    if (c->in_compressor >= 0 && route != PROXY_ROUTE_HELLO && route != PROXY_ROUTE_SASL_START &&
        route != PROXY_ROUTE_SASL_CONTINUE && route != PROXY_ROUTE_AUTH_OTHER)
        req->reply_compressor = (int8_t)c->in_compressor;
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
        id = proxy_server_reply_id(c->server); /* never one a remembered request has */
    while (in_oneway_ring(c, id));
    BSON_APPEND_INT32(&body, "ping", 1);
    BSON_APPEND_UTF8(&body, "$db", "admin");
    bytes = wire_reply_msg(id, 0, &body, &len);
    bson_destroy(&body);
    req = push_request(c, id, PROXY_ROUTE_FORWARD, false);
    req->internal = true;
    proxy_request_set_state(req, PROXY_REQUEST_UPSTREAM);
    c->barrier = true;
    proxy_stats_add(&c->server->stats, PROXY_STAT_oneway_barriers, 1);
    forward(c, NULL, 0, bytes, len, false, false);
}

/*
 * Ends a request: its write, if any, is over (acknowledged or lost). The
 * pending list is a request's one owner: this is the only caller of
 * proxy_request_destroy.
 */
static void
pop_request(struct proxy_client *c, struct proxy_request *req)
{
    TAILQ_REMOVE(&c->pending, req, link);
    c->n_pending--;
    if (req->inval)
        c->writes_open--; /* its end: lost (proxy_request_destroy) */
    if (req->state == PROXY_REQUEST_WAITING_CACHE || req->state == PROXY_REQUEST_DRAINING)
        c->blocked = false; /* the request the client waited on is gone */
    if (req->untracked)
        c->server->untracked--;
    if (req->held_bytes) {
        c->held_bytes -= req->held_bytes;
        if (c->reading_paused && !queue_over(c, (size_t)c->server->conf->buffer_limit / 2)) {
            c->reading_paused = false; /* read on from the loop (never from in here) */
            if (c->phase < PROXY_CLIENT_DEAD)
                event_active(wake_event(c), 0, 0);
        }
    }
    proxy_request_destroy(req, c->server->cache, &c->server->spares);
}

/*
 * Ends every request with no reply (the client is closed next). A cache
 * wait that ends as the request it followed goes (coalescing hands it
 * over) sends nothing on: it is ended in its turn (ending_all).
 */
static void
drop_all(struct proxy_client *c)
{
    struct proxy_request *req;

    c->ending_all = true;
    while ((req = TAILQ_FIRST(&c->pending)))
        pop_request(c, req);
    c->ending_all = false;
}

/*
 * Sends a write's ack held at the head of the upstream's input (on_reply):
 * it stayed there, counted with the upstream's buffers, while the upstream
 * was not read behind it (head_held).
 */
static void
send_held_ack(struct proxy_client *c, struct proxy_request *req)
{
    if (!c->up) { /* not reached: a lost upstream takes every request with it */
        req->ack_in_upstream = 0;
        return;
    }
    BSON_ASSERT(proxy_upstream_input_length(c->up) >= req->ack_in_upstream);
    if (c->phase == PROXY_CLIENT_GONE)
        proxy_upstream_drain(c->up, req->ack_in_upstream);
    else
        proxy_upstream_send_to(c->up, c->conn, NULL, req->ack_in_upstream);
    req->ack_in_upstream = 0;
}

/* Sends the proxy-made replies that have reached the head of the list. */
static void
flush_canned(struct proxy_client *c)
{
    struct proxy_request *req;

    while ((req = TAILQ_FIRST(&c->pending)) && req->state == PROXY_REQUEST_READY) {
        if (req->hit) {
            proxy_lookup_write_hit(c, req);
            /* a drained miss is served like a hit of its stored result */
            proxy_client_observe(c, req, req->miss ? PROXY_OUTCOME_MISS : PROXY_OUTCOME_HIT);
        } else if (req->ack_in_upstream) {
            send_held_ack(c, req);
            proxy_client_observe(c, req, (enum proxy_outcome)req->outcome);
        } else {
            write_reply(c, req, req->canned, req->canned_len);
            req->canned = NULL;
            proxy_client_observe(c, req, (enum proxy_outcome)req->outcome);
        }
        proxy_request_set_state(req, PROXY_REQUEST_DONE);
        pop_request(c, req);
    }
    if (head_held(c))
        sync_upstream(c); /* a held reply reached the head: later ones wait behind it */
}

/*
 * Answers request h with an error of the proxy's own, after the replies
 * still owed to earlier requests, and then closes the connection. Drops the
 * message from the input: all of it, or what has arrived of it.
 */
static void
refuse(struct proxy_client *c, const struct wire_header *h, bool legacy, int32_t code,
       const char *code_name, const char *errmsg)
{
    struct proxy_request *req = push_request(c, h->request_id, PROXY_ROUTE_FORWARD, legacy);
    size_t avail = proxy_conn_input_length(c->conn);

    req->canned = proxy_request_make_error(c->server, h->request_id, legacy, code, code_name,
                                           errmsg, &req->canned_len);
    req->outcome = PROXY_OUTCOME_ERROR;
    proxy_request_set_state(req, PROXY_REQUEST_READY);
    /* The rest is still coming (unless the client has shut down): see start_linger. */
    c->linger = c->phase == PROXY_CLIENT_OPEN && avail < (size_t)h->length;
    proxy_conn_drain(c->conn, avail < (size_t)h->length ? avail : (size_t)h->length);
    release_promise(c);
    flush_canned(c);
    finish(c);
}

/*
 * A message has begun to arrive whole-less: its remaining bytes are promised
 * against max_memory. A new one larger than PROXY_MEMORY_SMALL that would
 * take the total past max_memory is refused (an error, then the connection
 * closes). False when it was.
 */
static bool
admit(struct proxy_client *c, const struct wire_header *h, size_t avail)
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
            refuse(c, h, h->opcode == WIRE_OP_QUERY, WIRE_CODE_EXCEEDED_MEMORY,
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
 * Moves the message of len bytes at the front of the input (contiguous at
 * data) to the upstream, or replaces it with `replacement` (taken) when the
 * proxy rewrote it (len 0: a message of the proxy's own, nothing to drop).
 * may_compress: it may go compressed when the upstream agreed on a
 * compressor (never the handshake or authentication: OP_COMPRESSED.md).
 */
static void
forward(struct proxy_client *c, const uint8_t *data, size_t len, uint8_t *replacement,
        size_t replacement_len, bool oneway, bool may_compress)
{
    struct evbuffer *out;
    size_t limit = (size_t)c->server->conf->buffer_limit;

    if (!c->up) {
        c->up = proxy_upstream_new(c->server, &upstream_cbs, c);
        if (!c->up) {
            conf_log(CONF_LOG_ERROR, c->id, "upstream_alloc_failed",
                     "msg=\"out of memory; closing the client\"");
            bson_free(replacement);
            close_now(c, "out_of_memory");
            return;
        }
        c->oneway_sent = false;
        c->up_compressor = -1; /* a new connection: plain until its hello agrees otherwise */
        proxy_upstream_set_low_watermark(c->up, limit / 2);
    }
    if (may_compress && c->up_compressor >= 0 && (replacement || data)) {
        size_t n;
        uint8_t *packed = proxy_compress_upstream_request(
            c->server, c->up_compressor, replacement ? replacement : data,
            replacement ? replacement_len : len, &n);

        if (packed) {
            bson_free(replacement);
            replacement = packed;
            replacement_len = n;
        }
    }
    if (replacement) {
        out = c->scratch;
        evbuffer_add(out, replacement, replacement_len);
        bson_free(replacement);
        proxy_conn_drain(c->conn, len);
        proxy_upstream_send(c->up, out);
    } else {
        proxy_upstream_send_from(c->up, c->conn, data, len);
    }
    if (oneway)
        c->oneway_sent = true;
    if (queue_over(c, limit) && !c->reading_paused) {
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

static void
advise_held(struct proxy_client *c, struct proxy_request *req)
{
    struct wire_msg msg;
    struct wire_cmd cmd;
    bson_error_t error;
    bson_t body;

    if (!c->server->advice || !req->held ||
        !wire_msg_parse(req->held, req->held_len, (uint32_t)c->server->conf->max_bson_depth,
                        &msg, &error) ||
        !wire_cmd_parse_top(msg.body, msg.body_len, &msg.top, &cmd, &error) ||
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
        proxy_request_drop_index(req);
    }
}

/*
 * Handles the OP_MSG at data (h: its header). It takes in_len bytes at the
 * front of the input: h->length, or for a compressed one the OP_COMPRESSED
 * that carried it, decoded into *owned (forwarded without another copy:
 * taken from *owned; owned NULL for a plain message).
 */
static bool
handle_op_msg(struct proxy_client *c, const uint8_t *data, const struct wire_header *h,
              size_t in_len, uint8_t **owned)
{
    const struct conf *conf = c->server->conf;
    struct wire_msg msg;
    struct wire_cmd cmd;
    bson_error_t error;
    enum proxy_route route = PROXY_ROUTE_FORWARD;
    struct proxy_request *req = NULL;
    uint8_t *replacement = NULL;
    size_t replacement_len = 0;
    bool oneway, never;
    bson_t body;

    if (!wire_msg_parse(data, (size_t)h->length, (uint32_t)conf->max_bson_depth, &msg, &error)) {
        decoding_error(c, h, &error);
        return false;
    }
    oneway = (msg.flags & WIRE_MSG_MORE_TO_COME) != 0;
    if (wire_cmd_parse_top(msg.body, msg.body_len, &msg.top, &cmd, &error))
        route = proxy_router_route(&cmd);
    else
        memset(&cmd, 0, sizeof cmd);
    if (conf_log_enabled(CONF_LOG_DEBUG))
        conf_log(CONF_LOG_DEBUG, c->id, "request",
                 "request_id=%d cmd=%.64s db=%.64s route=%s bytes=%d oneway=%d", h->request_id,
                 cmd.name ? cmd.name : "?", cmd.db ? cmd.db : "?",
                 proxy_router_route_name(route), h->length, oneway);

    /* Compression at all on this connection, either side: then a command that is never
     * compressed (createUser, ...) is neither sent compressed nor answered so. */
    never = (c->in_compressor >= 0 || c->up_compressor >= 0) && proxy_compress_never(&cmd);
    if (!oneway) {
        req = push_request(c, h->request_id, route, false);
        proxy_slow_note(c, req, cmd.name ? &cmd : NULL);
        if (never)
            req->reply_compressor = -1;
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
        } else if (bson_has_field(&body, "speculativeAuthenticate")) {
            /* A moreToCome hello (no driver sends one): a login in it could
             * succeed upstream with no reply to follow (X.509 needs none). */
            c->server->auth_seen = true;
            proxy_auth_unknown(&c->auth);
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
        if (req) {
            proxy_action_answer(c, req, &body, cmd.db); /* may hold it: see write_wait */
            proxy_request_set_state(req, req->write_wait ? PROXY_REQUEST_WAITING_WRITE_ACK
                                                         : PROXY_REQUEST_READY);
            sync_upstream(c); /* a held answer at the head: later replies wait */
            /* Until it ends it holds its answer (and a Redis bump): bounded
             * with the client's relayed requests (queue_over). */
            hold_answer(c, req, (size_t)h->length + req->canned_len);
        } else
            conf_log(CONF_LOG_INFO, c->id, "admin_action",
                     "via=wire action=%s result=refused_oneway", cmd.name);
        proxy_conn_drain(c->conn, in_len);
        flush_canned(c);
        return true;
    case PROXY_ROUTE_FORWARD:
        if (!c->server->cache || !cmd.db)
            break;
        if (req && proxy_lookup_answer_cursor(c, &cmd, &body, req)) {
            hold_if_queued(c, req, (size_t)h->length);
            proxy_conn_drain(c->conn, in_len);
            flush_canned(c);
            return true;
        }
        switch (proxy_lookup_consult(c, &msg, &cmd, &body, req, oneway)) {
        case PROXY_LOOKUP_FORWARD:
            break;
        case PROXY_LOOKUP_ANSWERED:
            hold_if_queued(c, req, (size_t)h->length);
            proxy_conn_drain(c->conn, in_len);
            flush_canned(c);
            return true;
        case PROXY_LOOKUP_WAITING:
            /* Read nothing more until the wait is over: replies stay in order. A decoded
             * message is held as it is (taken from *owned), any other copied. */
            if (owned && *owned) {
                req->held = *owned;
                *owned = NULL;
            } else {
                req->held = bson_malloc((size_t)h->length);
                memcpy(req->held, data, (size_t)h->length);
            }
            req->held_len = (size_t)h->length;
            if (msg.flags & WIRE_MSG_EXHAUST_ALLOWED)
                wire_msg_clear_flags(req->held, req->held_len, WIRE_MSG_EXHAUST_ALLOWED);
            proxy_conn_drain(c->conn, in_len);
            set_blocked(c, true);
            return false;
        }
        break;
    }
    if (route == PROXY_ROUTE_FORWARD)
        advise(c, req, &msg, &cmd, &body);
    if (owned && *owned && !replacement) {
        /* A decoded message: sent as the replacement of the compressed one. */
        replacement = *owned;
        replacement_len = (size_t)h->length;
        *owned = NULL;
    }
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
    if (req) {
        req->upstream_us = req->started_us; /* sent now: the round trip starts */
        proxy_request_set_state(req, PROXY_REQUEST_UPSTREAM);
    }
    forward(c, data, in_len, replacement, replacement_len, oneway,
            route == PROXY_ROUTE_FORWARD && !never);
    if (oneway && c->oneway_count == ONEWAY_RING && c->phase < PROXY_CLIENT_DEAD)
        send_barrier(c);
    return true;
}

static bool
handle_op_query(struct proxy_client *c, const uint8_t *data,
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
        refuse(c, h, true, WIRE_CODE_UNSUPPORTED_OP_QUERY, "UnsupportedOpQueryCommand",
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
    proxy_request_set_state(req, PROXY_REQUEST_UPSTREAM);
    forward(c, data, (size_t)h->length, replacement, replacement_len, false, false);
    return true;
}

/*
 * An OP_COMPRESSED from a client that negotiated compression: decoded
 * (bounded by max_message_size and max_memory before any allocation), and
 * the OP_MSG inside handled as if it had come plain; its reply goes back
 * with the same compressor. A message that does not decode closes the
 * connection as any broken framing does; one too large for max_memory is
 * refused like admit's.
 */
static bool
handle_compressed(struct proxy_client *c, const uint8_t *data, const struct wire_header *h)
{
    struct wire_header inner;
    bson_error_t error;
    bool over_memory, go_on;
    uint8_t *owned;
    size_t len;
    int id;

    owned = proxy_compress_request(c->server, c->compressors, data, (size_t)h->length, &id, &len,
                                   &over_memory, &error);
    if (!owned && over_memory) {
        proxy_stats_add(&c->server->stats, PROXY_STAT_memory_refusals, 1);
        conf_log(CONF_LOG_WARN, c->id, "memory_refused",
                 "peer=%s length=%d error=\"%s\" msg=\"a large message would take the proxy "
                 "past max_memory; refused\"",
                 c->peer, h->length, error.message);
        refuse(c, h, false, WIRE_CODE_EXCEEDED_MEMORY, "ExceededMemoryLimit", error.message);
        return false;
    }
    if (!owned) {
        decoding_error(c, h, &error);
        return false;
    }
    (void)wire_frame_header(owned, len, WIRE_MAX_MESSAGE_LEN, &inner, &error);
    if (inner.opcode != WIRE_OP_MSG) {
        /* OP_QUERY carries only the handshake, which is never compressed. */
        bson_set_error(&error, WIRE_ERROR_DOMAIN, WIRE_CODE_PROTOCOL_ERROR,
                       "OP_COMPRESSED wraps opcode %d; only OP_MSG is accepted compressed",
                       inner.opcode);
        bson_free(owned);
        decoding_error(c, h, &error);
        return false;
    }
    c->in_compressor = id;
    go_on = handle_op_msg(c, owned, &inner, (size_t)h->length, &owned);
    c->in_compressor = -1;
    bson_free(owned);
    return go_on;
}

/* Handles the whole message at the front of the input (contiguous at data, or data NULL).
 * Returns false to stop reading. */
static bool
handle_message(struct proxy_client *c, const uint8_t *data,
               const struct wire_header *h)
{
    bson_error_t error;

    if (!data)
        data = proxy_conn_pullup(c->conn, (size_t)h->length);
    if (!data) {
        close_now(c, "out_of_memory");
        return false;
    }
    c->n_requests++;
    proxy_stats_add(&c->server->stats, PROXY_STAT_requests, 1);
    proxy_stats_add(&c->server->stats, PROXY_STAT_bytes_from_clients, h->length);
    switch (h->opcode) {
    case WIRE_OP_MSG:
        return handle_op_msg(c, data, h, (size_t)h->length, NULL);
    case WIRE_OP_QUERY:
        return handle_op_query(c, data, h);
    case WIRE_OP_COMPRESSED:
        if (c->compressors)
            return handle_compressed(c, data, h);
        proxy_stats_add(&c->server->stats, PROXY_STAT_decoding_errors, 1);
        conf_log(CONF_LOG_WARN, c->id, "compression_refused",
                 "peer=%s msg=\"OP_COMPRESSED received but compression was never negotiated; "
                 "closing\"",
                 c->peer);
        refuse(c, h, false, WIRE_CODE_PROTOCOL_ERROR, "ProtocolError",
               "mongocache: compression was not negotiated; OP_COMPRESSED is not accepted");
        return false;
    default:
        bson_set_error(&error, WIRE_ERROR_DOMAIN, WIRE_CODE_PROTOCOL_ERROR,
                       "unsupported opcode %d", h->opcode);
        decoding_error(c, h, &error);
        return false;
    }
}

/*
 * A TLS ClientHello where a MongoDB message was expected (a client with
 * tls=true on a plaintext port): a handshake record (22, version 3.x)
 * holding a ClientHello (1), whose random bytes stand where a message's
 * opcode would. Read as a message it announces tens of kilobytes or
 * megabytes and would be waited for until message_timeout.
 */
static bool
looks_like_tls(const uint8_t *h)
{
    int32_t opcode = wire_frame_read_i32(h + 12);

    return h[0] == 0x16 && h[1] == 0x03 && h[2] <= 0x04 && h[5] == 0x01 &&
           opcode != WIRE_OP_MSG && opcode != WIRE_OP_QUERY && opcode != WIRE_OP_COMPRESSED;
}

static void
process_input(struct proxy_client *c)
{
    const int32_t max = (int32_t)c->server->conf->max_message_size;
    uint8_t head[WIRE_HEADER_LEN];
    struct wire_header h;
    bson_error_t error;
    bool progressed = false;
    int handled = 0;

    while (can_take_input(c) && !check_output(c) && !check_memory(c)) {
        size_t avail = proxy_conn_input_length(c->conn), contig;
        const uint8_t *front;
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
        /* The header, and usually the whole message, is in the input's first piece. */
        front = proxy_conn_peek(c->conn, &contig);
        if (contig < WIRE_HEADER_LEN) {
            proxy_conn_copyout(c->conn, head, sizeof head);
            front = head;
        }
        st = wire_frame_header(front, WIRE_HEADER_LEN, max, &h, &error);
        if (st == WIRE_ERROR) {
            decoding_error(c, NULL, &error);
            return;
        }
        if (avail < (size_t)h.length) {
            /* Only a message that has not arrived whole can be a handshake taken for one. */
            if (c->n_requests == 0 && looks_like_tls(front)) {
                conf_log(CONF_LOG_WARN, c->id, "tls_on_plaintext_port",
                         "peer=%s msg=\"the client began a TLS handshake on a port without TLS; "
                         "closing (connect without tls=true, or set tls_cert_file)\"",
                         c->peer);
                close_now(c, "tls_on_plaintext_port");
                return;
            }
            if (!admit(c, &h, avail))
                return;
            break;
        }
        release_promise(c);
        handled++;
        if (!handle_message(c, contig >= (size_t)h.length ? front : NULL, &h))
            break;
        progressed = true;
    }
    update_reading(c);
    update_timer(c, progressed);
    if (c->phase >= PROXY_CLIENT_PEER_EOF)
        maybe_finish(c); /* were those the last before its EOF? */
}

/* The request the client waited on (a cache wait, a drain) is settled: read on. */
static void
unblock(struct proxy_client *c)
{
    set_blocked(c, false);
    flush_canned(c);
    if (c->phase < PROXY_CLIENT_DEAD)
        event_active(wake_event(c), 0, 0);
}

/*
 * A cache wait is over (lookup.c, through request_ops): req is READY (a
 * hit), or its held message goes upstream after all.
 */
static void
request_resolved(struct proxy_request *req)
{
    struct proxy_client *c = req->client;

    if (req->state == PROXY_REQUEST_WAITING_CACHE && c->phase < PROXY_CLIENT_DEAD &&
        !c->ending_all) {
        uint8_t *held;
        size_t len;

        advise_held(c, req);
        if (req->started_us)
            req->upstream_us = conf_clock_us();
        held = proxy_request_take_held(req, &len);
        proxy_request_set_state(req, PROXY_REQUEST_UPSTREAM);
        forward(c, NULL, 0, held, len, false, true);
    } else if (req->state == PROXY_REQUEST_READY && c->phase < PROXY_CLIENT_DEAD) {
        hold_if_queued(c, req, 0); /* a hit after the wait: its message is gone already */
    }
    unblock(c);
}

/* A write's ack may go out (lookup.c, through request_ops): req is READY. */
static void
request_acked(struct proxy_request *req)
{
    struct proxy_client *c = req->client;

    flush_canned(c);
    /* The replies that waited behind it, in the upstream's buffer. */
    sync_upstream(c);
    if (c->up && c->phase < PROXY_CLIENT_DEAD && !c->output_full && !c->memory_paused &&
        !head_held(c))
        proxy_upstream_process(c->up);
    maybe_finish(c);
    if (c->phase < PROXY_CLIENT_DEAD)
        update_timer(c, false);
}

/* Ends backpressure from the upstream side and handles what is buffered. */
static void
resume_reading(struct proxy_client *c)
{
    if (!c->reading_paused || c->phase >= PROXY_CLIENT_DEAD ||
        queue_over(c, (size_t)c->server->conf->buffer_limit / 2))
        return;
    c->reading_paused = false;
    process_input(c);
}

static void
read_cb(struct proxy_conn *conn, void *arg)
{
    struct proxy_client *c = arg;

    if (c->phase == PROXY_CLIENT_LINGERING) {
        proxy_conn_drain(conn, SIZE_MAX); /* see start_linger */
        return;
    }
    process_input(c);
}

static void
write_cb(struct proxy_conn *conn, void *arg)
{
    struct proxy_client *c = arg;

    (void)conn;
    if (c->output_full &&
        proxy_conn_output_length(c->conn) <= (size_t)c->server->conf->buffer_limit / 2) {
        c->output_full = false;
        proxy_conn_set_write_low(c->conn, 0);
        sync_upstream(c);
        if (c->up && !c->memory_paused) {
            proxy_upstream_process(c->up);
            if (c->phase >= PROXY_CLIENT_DEAD)
                return;
        }
        process_input(c);
        if (c->phase >= PROXY_CLIENT_DEAD)
            return;
    }
    maybe_finish(c);
    update_timer(c, false);
}

static void
event_cb(struct proxy_conn *conn, short what, void *arg)
{
    struct proxy_client *c = arg;

    if (c->phase == PROXY_CLIENT_LINGERING) {
        close_now(c, "refused");
        return;
    }
    if (what & PROXY_CONN_TIMEOUT) {
        proxy_stats_add(&c->server->stats, PROXY_STAT_write_timeouts, 1);
        conf_log(CONF_LOG_WARN, c->id, "write_timeout",
                 "peer=%s queued=%zu timeout_ms=%lld msg=\"the client took none of its replies "
                 "in time; closing\"",
                 c->peer, proxy_conn_output_length(c->conn),
                 (long long)c->server->conf->message_timeout);
        lose_peer(c, "write_timeout");
        return;
    }
    if (!(what & PROXY_CONN_EOF) && proxy_conn_tls_error(conn)) {
        /* A refused handshake, or a stream broken after it (a forged record, ...). */
        conf_log(CONF_LOG_WARN, c->id, proxy_conn_tls_open(conn) ? "tls_error" : "tls_refused",
                 "peer=%s error=\"%s\" msg=\"closing\"",
                 c->peer, proxy_conn_tls_error(conn));
        lose_peer(c, "tls_error");
        return;
    }
    if (!(what & PROXY_CONN_EOF)) {
        /* Nothing can reach the client any more. Its upstream connection
         * is its own and goes with it: the server finishes writes it has
         * started and stops reads when it sees the close. */
        lose_peer(c, "client_error");
        return;
    }
    if (c->phase == PROXY_CLIENT_OPEN)
        set_phase(c, PROXY_CLIENT_PEER_EOF);
    c->linger = false; /* the refused message's rest will not come: nothing to drain */
    update_reading(c);
    /* EOF: replies still owed are sent (the client may have shut down only
     * its side), bounded by drain_timeout. */
    maybe_finish(c);
    update_timer(c, false);
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
             c->up ? proxy_upstream_address(c->up) : c->server->upstream_label, what);
    if (req) {
        snprintf(errmsg, sizeof errmsg, "mongocache: invalid reply from upstream %s: %s",
                 c->up ? proxy_upstream_address(c->up) : c->server->upstream_label, what);
        send_error(c, req, WIRE_CODE_PROTOCOL_ERROR, "ProtocolError", errmsg);
        proxy_client_observe(c, req, PROXY_OUTCOME_ERROR);
    }
    proxy_upstream_destroy(c->up);
    c->up = NULL;
    drop_all(c);
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
        if (proxy_request_awaits_upstream(req))
            return req;
    return NULL;
}

/* The oldest of the client's own requests still waiting for a reply, or NULL. */
static struct proxy_request *
client_head(struct proxy_client *c)
{
    struct proxy_request *req;

    TAILQ_FOREACH(req, &c->pending, link)
        if (proxy_request_awaits_upstream(req) && !req->internal)
            return req;
    return NULL;
}

static void
on_upstream_invalid(void *arg, const char *why)
{
    struct proxy_client *c = arg;

    upstream_protocol_error(c, client_head(c), why);
}

/* A reply's "ok": 1 true, 0 false, -1 absent. Read once per reply, for whoever needs it:
 * from the elements the check recorded (top, an OP_MSG's) or else by a walk. */
static int
reply_ok(const bson_t *reply, const struct wire_doc_top *top)
{
    return top ? wire_msg_ok_top(bson_get_data(reply), reply->len, top)
               : wire_msg_ok(bson_get_data(reply), reply->len);
}

/*
 * A reply (ok: its "ok" as reply_ok gives it, -1 not read yet) from the
 * client's upstream: when it says its server is not primary, recovering or
 * shutting down (wire/sdam.h: an error, or a write's writeConcernError),
 * the topology monitor checks again at once (proxy_topology_recheck), so
 * that new connections follow a failover before the next heartbeat.
 */
static void
note_state_change(struct proxy_client *c, const bson_t *reply,
                  const struct wire_doc_top *top, int ok)
{
    enum wire_sdam_error e;
    int32_t code;
    char why[64];

    if (!c->server->topology || !c->up)
        return;
    if (ok < 0)
        ok = reply_ok(reply, top);
    if (ok != 0 && !wire_msg_top_has(bson_get_data(reply), reply->len, top, "writeConcernError",
                                     sizeof "writeConcernError" - 1))
        return; /* a success without a writeConcernError (a write's may carry one) */
    e = wire_sdam_classify(reply, &code);
    if (e == WIRE_SDAM_NONE)
        return;
    snprintf(why, sizeof why, "%s (code %d)", wire_sdam_name(e), (int)code);
    proxy_topology_recheck(c->server->topology, proxy_upstream_address(c->up), why);
}

/* Queues the upstream's reply (len bytes at data) compressed for req's client; false when
 * compressing failed (the caller relays it as it is). */
static bool
relay_compressed(struct proxy_client *c, const struct proxy_request *req, const uint8_t *data,
                 size_t len)
{
    size_t n;
    uint8_t *packed = proxy_compress_reply(c->server, req->reply_compressor, data,
                                           data + WIRE_HEADER_LEN, len - WIRE_HEADER_LEN, &n);

    if (!packed)
        return false;
    write_owned(c, packed, n);
    return true;
}

/* The upstream's on_reply: a whole reply of h->length bytes is at the front of its input,
 * contiguous at data (NULL: out of memory). */
static bool
on_reply(void *arg, const uint8_t *data, const struct wire_header *h)
{
    struct proxy_client *c = arg;
    struct proxy_request *req = in_flight_head(c);
    bson_error_t error;
    char what[320];

    if ((!req || h->response_to != proxy_drain_expected_id(req)) &&
        answers_oneway(c, h->response_to)) {
        proxy_stats_add(&c->server->stats, PROXY_STAT_oneway_replies_dropped, 1);
        conf_log(CONF_LOG_DEBUG, c->id, "oneway_reply_dropped", "response_to=%d",
                 h->response_to);
        proxy_upstream_drain(c->up, (size_t)h->length);
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
        proxy_upstream_drain(c->up, (size_t)h->length);
        proxy_request_set_state(req, PROXY_REQUEST_DONE);
        pop_request(c, req);
        c->oneway_head = 0;
        c->oneway_count = 0;
        c->barrier = false;
        flush_canned(c);
        process_input(c);
        maybe_finish(c);
        return c->phase < PROXY_CLIENT_DEAD && !c->output_full && !c->memory_paused;
    }
    if (!data) {
        upstream_protocol_error(c, req, "out of memory");
        return false;
    }
    if (h->opcode == WIRE_OP_COMPRESSED) {
        /* Decoded before anything reads it; the input's h->length bytes are dropped as the
         * decoded reply goes on in their place. */
        struct wire_header inner;
        uint8_t *owned;
        size_t len;
        bool go_on;

        owned = proxy_compress_upstream_reply(c->server, data, (size_t)h->length, &len, &error);
        if (!owned) {
            upstream_protocol_error(c, req, error.message);
            return false;
        }
        (void)wire_frame_header(owned, len, WIRE_MAX_MESSAGE_LEN, &inner, &error);
        /* compressorId: byte 24 of the OP_COMPRESSED just decoded */
        go_on = handle_reply(c, req, owned, &inner, (size_t)h->length, &owned, data[24]);
        bson_free(owned);
        return go_on;
    }
    return handle_reply(c, req, data, h, (size_t)h->length, NULL, -1);
}

/*
 * The reply to req at data (h: its header), in the upstream's input as
 * in_len bytes: h->length, or an OP_COMPRESSED with up_compressor decoded
 * into *owned (which a reply kept for later takes; owned NULL and
 * up_compressor -1 for a plain reply).
 */
static bool
handle_reply(struct proxy_client *c, struct proxy_request *req, const uint8_t *data,
             const struct wire_header *h, size_t in_len, uint8_t **owned, int up_compressor)
{
    const struct conf *conf = c->server->conf;
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
    struct wire_msg m;                     /* an OP_MSG reply's parse */
    const struct wire_doc_top *top = NULL; /* ... its top-level elements, as checked */

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
        top = &m.top;
    }
    (void)bson_init_static(&reply, body, body_len);
    /* One clock read and one look for "ok" serve the round trip, the
     * advice, the outcome and the request's latency. */
    if (req->upstream_us || req->n_shapes > 0 || req->started_us)
        now_us = conf_clock_us();
    if (req->started_us || req->index_db)
        ok = reply_ok(&reply, top);
    if (req->upstream_us) {
        if (conf->latency_histograms)
            conf_hist_observe(&c->server->stats.upstream, now_us - req->upstream_us);
        req->upstream_us = 0; /* a drain's getMores are timed by drain.c */
    }
    if (req->n_shapes > 0 || req->index_db)
        advise_reply(c, req, &reply, ok == 1, now_us);
    note_state_change(c, &reply, top, ok);
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
        if (!req->miss)
            break;
        /* A drain keeps the documents, not the reply: a checksum (checked
         * when the reply was read) does not stop it. With the proxy's
         * cursor table full, a reply with an open cursor goes to the client
         * as it came, the server's cursor in it. */
        if (req->state == PROXY_REQUEST_DRAINING ||
            (c->n_pending == 1 && !proxy_cursor_full(c->server->cursors) &&
             proxy_drain_open_cursor(&reply, NULL, NULL, NULL))) {
            /* The reply (a batch) stays with the proxy; the client gets the
             * whole result once the cursor is drained (req READY). */
            bool over = proxy_drain_step(c, req, &reply);

            proxy_upstream_drain(c->up, in_len);
            if (over)
                unblock(c);
            else
                set_blocked(c, true);
            return c->phase < PROXY_CLIENT_DEAD;
        }
        /* A stored reply is replayed with a new header, which a checksum
         * would cover: checksummed replies are not stored. */
        if (!(reply_flags & WIRE_MSG_CHECKSUM_PRESENT))
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
         * serve what this write changed. At the head of the list (always,
         * as far as the order of states goes: what was ahead of it was
         * answered or blocked the client before it was sent) it stays in
         * the upstream's input, which is not read behind it (head_held)
         * and is gone with the upstream if that is lost (so are all the
         * requests: on_upstream_down); otherwise it is copied out. */
        proxy_request_forget_inval(req);
        c->writes_open--;
        if (TAILQ_FIRST(&c->pending) == req && req->reply_compressor < 0 && !owned) {
            req->ack_in_upstream = (size_t)h->length;
        } else if (owned) {
            /* A decoded reply: kept as it is, its compressed bytes dropped. */
            req->canned = *owned;
            *owned = NULL;
            req->canned_len = (size_t)h->length;
            proxy_upstream_drain(c->up, in_len);
        } else {
            req->canned = bson_malloc((size_t)h->length);
            proxy_upstream_remove(c->up, req->canned, (size_t)h->length);
            req->canned_len = (size_t)h->length;
        }
        req->outcome = (uint8_t)outcome;
        proxy_request_set_state(req, PROXY_REQUEST_WAITING_WRITE_ACK);
        sync_upstream(c); /* later replies wait behind it (head_held) */
        return c->phase < PROXY_CLIENT_DEAD;
    }
    if (rewritten) {
        proxy_upstream_drain(c->up, in_len);
        write_owned(c, rewritten, rewritten_len);
    } else if (c->phase == PROXY_CLIENT_GONE) {
        proxy_upstream_drain(c->up, in_len);
    } else if (owned && up_compressor == req->reply_compressor) {
        /* The server compressed it as the client's request was: its bytes as they came
         * (the requestIDs are the client's), not decoded and compressed again. */
        proxy_upstream_send_to(c->up, c->conn, NULL, in_len);
        proxy_compress_count_reply(c->server, up_compressor);
    } else if (req->reply_compressor >= 0 && relay_compressed(c, req, data, (size_t)h->length)) {
        proxy_upstream_drain(c->up, in_len);
    } else if (owned) {
        /* A decoded reply for a plain request: its plain bytes, not the upstream's. */
        proxy_upstream_drain(c->up, in_len);
        write_owned(c, *owned, (size_t)h->length);
        *owned = NULL;
    } else {
        proxy_upstream_send_to(c->up, c->conn, data, (size_t)h->length);
    }
    proxy_client_observe_at(c, req, outcome, now_us);
    if (req->state == PROXY_REQUEST_DRAINING)
        c->blocked = false; /* a drain ended by a reply it cannot take: read on */
    proxy_request_set_state(req, PROXY_REQUEST_DONE);
    pop_request(c, req);
    flush_canned(c);

    check_output(c);
    check_memory(c);
    update_reading(c);
    maybe_finish(c);
    if (c->phase < PROXY_CLIENT_DEAD)
        update_timer(c, false);
    return c->phase < PROXY_CLIENT_DEAD && !c->output_full && !c->memory_paused;
}

static void
on_upstream_down(void *arg, const char *why, bool connected)
{
    struct proxy_client *c = arg;
    struct proxy_request *req;
    bool oneway_lost = c->oneway_sent;
    bool waited = proxy_upstream_waiting(c->up); /* for a primary, none elected in time */
    char address[280];

    bson_strncpy(address, proxy_upstream_address(c->up), sizeof address);
    proxy_upstream_destroy(c->up);
    c->up = NULL;
    if (!connected) {
        if (waited) {
            /* Counted as upstream_no_primary; the upstream itself is not down. */
            conf_log(CONF_LOG_WARN, c->id, "upstream_no_primary", "error=\"%s\"", why);
        } else {
            proxy_stats_add(&c->server->stats, PROXY_STAT_upstream_connect_failures, 1);
            conf_log(CONF_LOG_WARN, c->id, "upstream_unreachable",
                     "upstream=%s error=\"%s\" msg=\"check that the upstream is running and "
                     "that the upstream option names it\"",
                     address, why);
        }
        if (!oneway_lost) {
            /* Nothing reached the server: an error reply is the truth. */
            char errmsg[512];

            snprintf(errmsg, sizeof errmsg, "mongocache: %s", why);
            c->ending_all = true; /* a wait ended by a pop below is answered here too */
            while ((req = TAILQ_FIRST(&c->pending))) {
                size_t len;
                uint8_t *bytes = proxy_request_make_labeled_error(
                    c->server, req->request_id, req->legacy, WIRE_CODE_HOST_UNREACHABLE,
                    "HostUnreachable", errmsg, "RetryableWriteError", &len);

                write_reply(c, req, bytes, len);
                proxy_client_observe(c, req, PROXY_OUTCOME_ERROR);
                pop_request(c, req);
            }
            c->ending_all = false;
            maybe_finish(c);
            /* Requests buffered behind the failure are tried on a new
             * connection (the old one's queue is gone, and so is any wait). */
            c->reading_paused = false;
            if (c->phase < PROXY_CLIENT_DEAD)
                process_input(c);
            return;
        }
        close_now(c, "upstream_unreachable");
        return;
    }
    /* An established connection lost: its server may have stepped down (a
     * stepdown before 4.2 closes every connection) or gone. */
    proxy_topology_recheck(c->server->topology, address, "connection lost");
    if (!oneway_lost && upstream_replaceable(c)) {
        /* Nothing of the client's own was on it: its next request goes on a
         * new connection (to the server that takes new ones then). */
        conf_log(CONF_LOG_INFO, c->id, "upstream_dropped",
                 "upstream=%s error=\"%s\" msg=\"no request in flight; the next one reconnects\"",
                 address, why);
        if (c->phase < PROXY_CLIENT_DEAD)
            process_input(c); /* what the client sent meanwhile goes on a new connection */
        return;
    }
    /* The connection held this client's authentication (or requests in
     * flight that may have reached the server), so it is not silently
     * replaced: never invent an answer. Replies already relayed are
     * flushed, then the client is closed; its driver sees a network error,
     * reconnects, and retries what is safe to retry. */
    proxy_stats_add(&c->server->stats, PROXY_STAT_upstream_lost, 1);
    conf_log(c->n_pending ? CONF_LOG_WARN : CONF_LOG_INFO, c->id, "upstream_lost",
             "upstream=%s error=\"%s\" in_flight=%u msg=\"closing the client so its driver "
             "reconnects\"",
             address, why, c->n_pending);
    drop_all(c);
    finish(c);
}

static void
on_upstream_drained(void *arg)
{
    struct proxy_client *c = arg;

    if (c->phase >= PROXY_CLIENT_DEAD)
        return;
    resume_reading(c);
    maybe_finish(c);
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
    bool tls_failed;
    int one = 1;

    (void)addrlen;
    c->server = server;
    c->id = ++server->next_conn_id;
    c->in_compressor = -1;
    c->up_compressor = -1;
    TAILQ_INIT(&c->pending);
    proxy_auth_init(&c->auth);
    format_peer(c->peer, sizeof c->peer, addr);
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    evutil_make_socket_nonblocking(fd);
    loop = proxy_io_loop_get(server);
    c->scratch = loop ? loop->scratch : NULL;
    /* On failure fd stays the caller's to close. */
    c->conn = loop ? proxy_conn_new(server->base, loop, fd) : NULL;
    if (!c->conn) {
        free_parts(c);
        return NULL;
    }
    proxy_conn_setcb(c->conn, read_cb, write_cb, event_cb, c);
    proxy_conn_read_in_place(c->conn); /* the input is read only through proxy_conn_* calls */
    proxy_conn_batch_writes(c->conn);  /* replies leave together at the end of a loop turn */
    /* TLS on the TCP port (a unix socket stays plaintext): the handshake must end within
     * message_timeout, as a message must. */
    tls_failed = server->tls_clients && addr->sa_family != AF_UNIX &&
                 !proxy_conn_tls_accept(c->conn, server->tls_clients,
                                        server->conf->message_timeout);
    /* A client that takes none of its replies for message_timeout is
     * closed: what it leaves queued cannot hold the proxy's memory. */
    proxy_conn_set_write_timeout(c->conn, server->conf->message_timeout);
    proxy_conn_write_enable(c->conn, true);
    proxy_conn_read_enable(c->conn, true);
    proxy_server_memory_track(server, c->conn);
    TAILQ_INSERT_TAIL(&server->clients, c, link);
    server->n_clients++;
    proxy_stats_add(&server->stats, PROXY_STAT_clients_accepted, 1);
    proxy_stats_add(&server->stats, PROXY_STAT_clients_active, 1);
    conf_log(CONF_LOG_INFO, c->id, "client_accept", "peer=%s tls=%s", c->peer,
             proxy_conn_tls(c->conn) ? "yes" : "no");
    update_timer(c, false);
    if (tls_failed)
        close_now(c, "out_of_memory");
    return c;
}
