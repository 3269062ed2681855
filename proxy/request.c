/*
 * proxy/request.c: the life of one client request, and the one function
 * that moves it (proxy_request_set_state) along the table below.
 *
 * The life of a request, each step with the function that takes it (the
 * state on the right is the request's after the step):
 *
 *  client socket
 *   client.c read_cb -> process_input: frame (wire_frame_header), admit a
 *   message still arriving against max_memory (an OP_COMPRESSED from a
 *   client that negotiated compression: handle_compressed decodes it,
 *   proxy/compress.c, and its OP_MSG goes on), then handle_op_msg: check
 *   (wire_msg_parse), parse (wire_cmd_parse), route (proxy_router_route),
 *   push_request -> proxy_request_new ........................... PARSED
 *    |
 *    +- ADMIN route, or a message refused (refuse): a reply of the proxy's
 *    |  own in req->canned (proxy_action_answer, proxy_request_make_error) .. READY
 *    |  a flush or invalidation with the Redis tier: its ok reply waits for
 *    |  Redis to confirm (req->write_wait) ................. WAITING_WRITE_ACK
 *    |  then action.c inband_confirmed, client.c request_acked .......... READY
 *    +- HELLO / SASL routes: handshake.c prepares, auth.c observes; sent below
 *    +- FORWARD route, cache present and the command has a $db:
 *    |   getMore/killCursors of a proxy cursor: proxy_lookup_answer_cursor
 *    |     (proxy_cursor_get_more / _kill) -> req->canned ................ READY
 *    |   proxy_lookup_consult:
 *    |     cache off, no Redis tier: no cache function, no allocation; the
 *    |            request is counted untracked until it ends; sent below
 *    |     write: cache_write_begin bumps the generations it may change;
 *    |            req->inval remembers them (bumped again at its end); sent below
 *    |     cache off (Redis tier), or back on while untracked ones run:
 *    |            a read is not looked up; sent below
 *    |     read: cache_lookup(req->miss: a cache_pending)
 *    |       hit    -> req->hit (a stored reply, one reference) ............. READY
 *    |       miss   -> req->miss kept, to store the reply; sent below
 *    |       bypass -> nothing kept; sent below
 *    |       wait   -> an identical read is in flight (coalescing), or the
 *    |                 Redis tier is asked (cache/redis.c): the message is
 *    |                 copied to req->held and the client reads no further
 *    |                 (set_blocked) ................................ WAITING_CACHE
 *    |                 the cache calls lookup.c cache_resolved, which tells
 *    |                 client.c request_resolved (req->ops->resolved):
 *    |                   hit          -> req->hit, the held copy freed ..... READY
 *    |                   miss, bypass -> proxy_request_take_held, forward .. UPSTREAM
 *    |                 either way the client reads on (unblock)
 *    +- sent: forward -> upstream.c proxy_upstream_send (compressed when
 *       the upstream agreed on a compressor: proxy/compress.c) .......... UPSTREAM
 *
 *  upstream socket
 *   upstream.c proxy_upstream_process frames a reply and hands it to
 *   client.c on_reply (struct proxy_upstream_cbs): its responseTo must be
 *   the oldest request awaiting the upstream (proxy_request_awaits_upstream);
 *   an OP_COMPRESSED reply is decoded, and handle_reply takes it from there:
 *   the reply is checked, timed and advised, then by route:
 *    +- HELLO: proxy_handshake_rewrite_hello (persona); SASL: observed
 *    +- a miss whose reply is an open cursor, the only request in flight:
 *    |    proxy_drain_step keeps the batch and sends a getMore; the client
 *    |    reads no further .......................................... DRAINING
 *    |    each getMore's reply: proxy_drain_step again, until the cursor
 *    |    ends or a bound cuts it: cache_store_docs -> req->hit (served by
 *    |    a proxy cursor), or an error in req->canned; unblock ........... READY
 *    |    (a checksummed reply, which is never stored, is relayed as it is: DONE)
 *    +- a miss: cache_store keeps the reply (cache/cache.h); relayed below
 *    +- a write with the Redis tier: cache_write_end_async bumps again;
 *    |    the reply is held at the head of the upstream's input
 *    |    (req->ack_in_upstream; the upstream is not read behind it) WAITING_WRITE_ACK
 *    |    until Redis confirms: lookup.c proxy_lookup_write_bumped, then
 *    |    client.c request_acked (req->ops->acked) ....................... READY
 *    +- otherwise relayed to the client now (proxy_conn_send; compressed
 *       when its request came compressed: relay_compressed); a write's
 *       generations are bumped again as the request is destroyed ........ DONE
 *
 *  READY at the head of the pending list (replies go strictly in request
 *  order): flush_canned writes req->canned (write_reply: compressed for a
 *  compressed request), the held ack from the upstream's input (never held
 *  there for a compressed request: copied to canned), or the hit
 *  (proxy_lookup_write_hit: a fresh header and the stored bytes, in one
 *  sendmsg or by reference, or compressed from them; a drained result's
 *  first batch from proxy_cursor_first). While other callbacks of the
 *  loop's turn are still to run, what would be written at once waits for
 *  the turn's end, where conn.c's write batch writes every client's
 *  replies together (a hit held with no buffer until then);
 *  times it (proxy_client_observe) ...................................... DONE
 *
 *  DONE, or the client closing with the request in any state: client.c
 *  pop_request -> proxy_request_destroy, the one place a request is freed (or
 *  kept in the server's spares, a later request's memory).
 *
 * Layering of the proxy's files, highest first. A file calls only files
 * below it; a lower file reports up through a callback it was given, never
 * by calling up (tests/check_calls.sh checks, on the built objects, that
 * no files call each other round a circle):
 *
 *   main.c            start-up, ordered shutdown, reload; sets server.c's hooks
 *   listener.c        accept -> proxy_client_new
 *   admin.c           the HTTP endpoint and its routes
 *   client.c          a client connection and its pending list
 *   handshake.c lookup.c drain.c action.c slow.c      one request's steps
 *   compress.c        a compressed request decoded, a reply compressed
 *   ready.c shapes.c dashboard.c                      HTTP routes
 *   request.c         a request's state and its one destroy
 *   upstream.c        a client's upstream socket (struct proxy_upstream_cbs up)
 *   http.c metrics.c  the HTTP replies; /stats and /metrics rendering
 *   server.c          the process context, memory accounting, the SIGTERM
 *                     drain (struct proxy_server_hooks up)
 *   cursor.c io.c router.c hello.c auth.c advice.c stats.c check.c notify.c
 *                     leaves: they call no proxy file but these
 *
 * and below proxy/: cache/, advice/, conf/, wire/.
 *
 * Owns: struct proxy_request, its state and every payload it holds. Does
 * not own the pending list it is on (client.c) nor what a state means for
 * the client (blocked reading, the order of replies): client.c.
 */
#include "proxy/request.h"

#include "cache/cache.h"
#include "proxy/server.h"
#include "proxy/stats.h"
#include "wire/reply.h"

#include <bson/bson.h>
#include <string.h>

/*
 * The allowed transitions. A request is born PARSED; every later state is
 * reached only from the states marked here; DONE only leads to destroy
 * (which accepts any state: a closing client drops its requests as they
 * are).
 */
#define P PROXY_REQUEST_PARSED
#define WC PROXY_REQUEST_WAITING_CACHE
#define U PROXY_REQUEST_UPSTREAM
#define DR PROXY_REQUEST_DRAINING
#define WA PROXY_REQUEST_WAITING_WRITE_ACK
#define R PROXY_REQUEST_READY
#define D PROXY_REQUEST_DONE
static const bool transitions[PROXY_REQUEST_STATE_COUNT][PROXY_REQUEST_STATE_COUNT] = {
    /* answered by the proxy (READY), held for the cache, or sent; an
     * in-band flush's or invalidation's ok reply waits for Redis (WA) */
    [P] = {[WC] = true, [U] = true, [WA] = true, [R] = true},
    /* the wait ends in a hit (READY) or the held message is sent */
    [WC] = {[U] = true, [R] = true},
    /* the reply: relayed (DONE), a cursor to drain, a write ack held back */
    [U] = {[DR] = true, [WA] = true, [D] = true},
    /* drained: served from the stored result or an error (READY); a reply
     * the drain cannot take (checksummed) is relayed as it is (DONE) */
    [DR] = {[R] = true, [D] = true},
    /* Redis saw the bump: the held-back reply goes out in turn */
    [WA] = {[R] = true},
    /* written at the head of the list */
    [R] = {[D] = true},
    [D] = {false},
};
#undef P
#undef WC
#undef U
#undef DR
#undef WA
#undef R
#undef D

bool
proxy_request_transition_allowed(enum proxy_request_state from, enum proxy_request_state to)
{
    return from < PROXY_REQUEST_STATE_COUNT && to < PROXY_REQUEST_STATE_COUNT &&
           transitions[from][to];
}

const char *
proxy_request_state_name(enum proxy_request_state state)
{
    static const char *const names[PROXY_REQUEST_STATE_COUNT] = {
        "parsed", "waiting_cache", "upstream", "draining", "waiting_write_ack", "ready", "done",
    };

    return state < PROXY_REQUEST_STATE_COUNT ? names[state] : "?";
}

/* Whether a destroyed request is kept for reuse: not under ASan, which must see a late use. */
#if defined(__SANITIZE_ADDRESS__)
#define KEEP_SPARE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEP_SPARE 0
#endif
#endif
#ifndef KEEP_SPARE
#define KEEP_SPARE 1
#endif

struct proxy_request *
proxy_request_new(struct proxy_client *client, const struct proxy_request_ops *ops,
                  int32_t request_id, enum proxy_route route, bool legacy,
                  struct proxy_request_spares *spares)
{
    struct proxy_request *req;

    if (spares && spares->head) {
        req = spares->head;
        spares->head = TAILQ_NEXT(req, link);
        spares->n--;
        /* The log texts last, cleared as strings: 160 bytes less to zero per request. */
        memset(req, 0, offsetof(struct proxy_request, log_cmd));
        req->log_cmd[0] = '\0';
        req->log_ns[0] = '\0';
    } else {
        req = bson_malloc0(sizeof *req);
    }

    req->state = PROXY_REQUEST_PARSED;
    req->request_id = request_id;
    req->route = route;
    req->legacy = legacy;
    req->reply_compressor = -1;
    req->batch_size = -1;
    req->client = client;
    req->ops = ops;
    return req;
}

/* bson_free for what is usually NULL (a hit's payloads): no call then. */
static inline void
free_set(void *p)
{
    if (p)
        bson_free(p);
}

static void
free_drain(struct proxy_drain *d)
{
    if (!d)
        return;
    bson_free(d->docs.data);
    bson_free(d->ns);
    bson_free(d);
}

/* Releases what belongs to state `from` and is still set: req is leaving it. */
static void
release_state(struct proxy_request *req, enum proxy_request_state from)
{
    switch (from) {
    case PROXY_REQUEST_WAITING_CACHE:
        cache_wait_cancel(req->wait); /* before the cache_pending it may point at */
        req->wait = NULL;
        bson_free(req->held);
        req->held = NULL;
        req->held_len = 0;
        break;
    case PROXY_REQUEST_DRAINING:
        free_drain(req->drain);
        req->drain = NULL;
        break;
    case PROXY_REQUEST_WAITING_WRITE_ACK:
        cache_write_cancel(req->write_wait);
        req->write_wait = NULL;
        /* canned (the held-back reply) goes on to READY */
        break;
    case PROXY_REQUEST_READY:
    case PROXY_REQUEST_DONE:
        if (req->hit) { /* a pass-through has none: it calls nothing of cache/ */
            cache_value_unref(req->hit);
            req->hit = NULL;
        }
        free_set(req->canned);
        req->canned = NULL;
        req->ack_in_upstream = 0; /* the bytes are the upstream's (client.c) */
        break;
    case PROXY_REQUEST_PARSED:
    case PROXY_REQUEST_UPSTREAM:
    case PROXY_REQUEST_STATE_COUNT:
        break;
    }
}

void
proxy_request_set_state(struct proxy_request *req, enum proxy_request_state to)
{
    enum proxy_request_state from = req->state;

    BSON_ASSERT(proxy_request_transition_allowed(from, to));
    release_state(req, from);
    req->state = to;
}

bool
proxy_request_awaits_upstream(const struct proxy_request *req)
{
    switch (req->state) {
    case PROXY_REQUEST_UPSTREAM:
    case PROXY_REQUEST_DRAINING:
        return true;
    case PROXY_REQUEST_PARSED:
    case PROXY_REQUEST_WAITING_CACHE: /* held: not sent, so no reply can be its */
    case PROXY_REQUEST_WAITING_WRITE_ACK:
    case PROXY_REQUEST_READY:
    case PROXY_REQUEST_DONE:
    case PROXY_REQUEST_STATE_COUNT:
        break;
    }
    return false;
}

uint8_t *
proxy_request_take_held(struct proxy_request *req, size_t *len)
{
    uint8_t *held = req->held;

    BSON_ASSERT(req->state == PROXY_REQUEST_WAITING_CACHE);
    *len = req->held_len;
    req->held = NULL;
    req->held_len = 0;
    return held;
}

void
proxy_request_set_reply(struct proxy_request *req, uint8_t *bytes, size_t len)
{
    bson_free(req->canned);
    req->canned = bytes;
    req->canned_len = len;
}

void
proxy_request_drop_index(struct proxy_request *req)
{
    bson_free(req->index_db);
    bson_free(req->index_coll);
    req->index_db = req->index_coll = NULL;
}

void
proxy_request_forget_inval(struct proxy_request *req)
{
    bson_free(req->inval);
    req->inval = NULL;
}

void
proxy_request_drop_miss(struct proxy_request *req, struct cache *cache)
{
    if (!req->miss)
        return;
    cache_pending_free(cache, req->miss);
    req->miss = NULL;
}

void
proxy_request_free_spares(struct proxy_request_spares *spares)
{
    while (spares->head) {
        struct proxy_request *req = spares->head;

        spares->head = TAILQ_NEXT(req, link);
        bson_free(req);
    }
    spares->n = 0;
}

void
proxy_request_destroy(struct proxy_request *req, struct cache *cache,
                      struct proxy_request_spares *spares)
{
    if (!req)
        return;
    release_state(req, req->state);
    /* Payloads of other states cannot be set: leaving a state released its own. */
    BSON_ASSERT(!req->wait && !req->held && !req->drain && !req->write_wait);
    if (req->inval) {
        /* A write whose reply never came (its connection lost, the client
         * gone): applied or not, or applied later; bumped, fills refused for
         * a grace period. */
        cache_write_lost(cache, req->inval);
        bson_free(req->inval);
    }
    proxy_request_drop_miss(req, cache);
    /* A request that never reached READY may still hold a reply made for it. */
    if (req->hit)
        cache_value_unref(req->hit);
    free_set(req->canned);
    free_set(req->lsid);
    free_set(req->index_db);
    free_set(req->index_coll);
    if (KEEP_SPARE && spares && spares->n < PROXY_REQUEST_SPARES_MAX) {
        TAILQ_NEXT(req, link) = spares->head;
        spares->head = req;
        spares->n++;
    } else {
        bson_free(req);
    }
}

uint8_t *
proxy_request_make_error(struct proxy_server *server, int32_t response_to, bool legacy,
                         int32_t code, const char *code_name, const char *errmsg, size_t *len)
{
    return proxy_request_make_labeled_error(server, response_to, legacy, code, code_name, errmsg,
                                            NULL, len);
}

uint8_t *
proxy_request_make_labeled_error(struct proxy_server *server, int32_t response_to, bool legacy,
                                 int32_t code, const char *code_name, const char *errmsg,
                                 const char *label, size_t *len)
{
    bson_t body = BSON_INITIALIZER;
    uint8_t *bytes;

    wire_reply_error_body(&body, code, code_name, errmsg);
    if (label) {
        bson_t labels;

        BSON_APPEND_ARRAY_BEGIN(&body, "errorLabels", &labels);
        BSON_APPEND_UTF8(&labels, "0", label);
        bson_append_array_end(&body, &labels);
    }
    if (legacy)
        bytes = wire_reply_op_reply(proxy_server_reply_id(server), response_to, 0, &body, len);
    else
        bytes = wire_reply_msg(proxy_server_reply_id(server), response_to, &body, len);
    bson_destroy(&body);
    proxy_stats_add(&server->stats, PROXY_STAT_error_replies, 1);
    return bytes;
}
