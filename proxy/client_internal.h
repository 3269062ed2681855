/*
 * proxy/client_internal.h: the client structure, which the files a
 * request's steps are split into (lookup.c, drain.c, handshake.c, action.c,
 * slow.c) read, and the timing of a reply as it is queued. Those files
 * never call client.c: what they end late reaches it through the request's
 * ops (proxy/request.h) or a return value. Not for use outside proxy/.
 */
#ifndef MONGOCACHE_PROXY_CLIENT_INTERNAL_H
#define MONGOCACHE_PROXY_CLIENT_INTERNAL_H

#include "conf/clock.h"
#include "proxy/advice.h"
#include "proxy/auth.h"
#include "proxy/client.h"
#include "proxy/drain.h"
#include "proxy/hello.h"
#include "proxy/request.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "proxy/slow.h"

#include <arpa/inet.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct cache_inval;
struct cache_pending;
struct cache_value;
struct cache_wait;
struct cache_write_wait;
struct event;
struct evbuffer;
struct proxy_conn;
struct proxy_upstream;

/*
 * How far a client is on its way to closing; it only moves forward
 * (set_phase in client.c). Each phase implies the ones before it: a
 * finishing client reads nothing new, whatever its peer did.
 */
enum proxy_client_phase {
    PROXY_CLIENT_OPEN,      /* reading and answering */
    PROXY_CLIENT_PEER_EOF,  /* the client shut down its side: what it sent before is
                             * answered, replies still go out, then it closes */
    PROXY_CLIENT_FINISHING, /* SIGTERM, a refused message, a lost upstream: nothing new
                             * is read; close when nothing is owed either way */
    PROXY_CLIENT_LINGERING, /* after a refusal: write side shut, input read and dropped
                             * until EOF (start_linger) */
    PROXY_CLIENT_DEAD,      /* resume_ev is active to free it */
    PROXY_CLIENT_GONE,      /* ... and the socket failed: replies are discarded */
};

struct proxy_client {
    TAILQ_ENTRY(proxy_client) link;
    struct proxy_server *server;
    uint64_t id;
    char peer[INET6_ADDRSTRLEN + 16];
    struct proxy_conn *conn;
    struct evbuffer *scratch;     /* one message on its way out, either direction; empty between:
                                   * the loop's (proxy_io_loop), shared by every client */
    struct proxy_upstream *up;    /* NULL until the first request, and after it is lost */
    bool oneway_sent;             /* a moreToCome request went to the current upstream */
    /* requestIDs of the latest moreToCome requests, oldest first, in a ring
     * allocated on first use: a server that answers one anyway (FerretDB
     * does) has its reply dropped, not relayed. */
    int32_t *oneway_ring;
    uint32_t oneway_head;
    uint32_t oneway_count;
    struct proxy_request_list pending;
    uint32_t n_pending;
    struct event *timer;          /* message deadline, idle or drain; made when first armed */
    bool deadline_armed;
    enum proxy_client_phase phase; /* moved only by set_phase (client.c) */
    /* Why the client is not read: any of these stops both reading its
     * socket and handling what is buffered (update_reading in client.c).
     * They stay flags, not states: they are independent reasons that hold
     * at once and clear each on its own event (the upstream drains, the
     * client takes its output, memory falls, a barrier or a wait ends). */
    bool reading_paused;          /* the upstream's queue is full (its queue and held_bytes
                                   * together passed buffer_limit) */
    bool output_full;             /* our own output is over buffer_limit: the upstream is
                                   * not read either */
    bool memory_paused;           /* over max_memory with more than PROXY_MEMORY_SMALL
                                   * buffered: neither it nor its upstream is read */
    bool barrier;                 /* 4,096 moreToCome requests outstanding: waiting for the
                                   * barrier's reply */
    bool blocked;                 /* a request waits on the cache or a drain: read no further */
    /* Facts, not states: */
    bool linger;                  /* close by start_linger: a refused message is still arriving */
    size_t admitted_len;          /* the message arriving now was admitted at this length */
    size_t promised;              /* its bytes not yet arrived (in server->mem_promised) */
    size_t held_bytes;            /* requests answered here but not sent (an admin command
                                   * until it ends, a hit behind an earlier request): their
                                   * messages and answers, counted with the upstream's
                                   * queue, as relayed requests are */
    uint32_t writes_open;         /* requests whose write's end is not bumped yet (req->inval):
                                   * a read behind one is not answered from the cache */
    bool ending_all;              /* every request is being ended (its upstream is lost): a
                                   * cache wait that ends meanwhile sends nothing on */
    struct event *resume_ev;      /* runs process_input once a wait is over; frees the
                                   * client once dead; created on first need (set_blocked
                                   * creates it) */
    const char *close_reason;
    uint64_t n_requests;
    struct proxy_auth auth;
    /* Wire compression (proxy/compress.h): the compressors the client's handshake agreed
     * (bit (1 << id); 0: it may not send OP_COMPRESSED), and while a compressed request is
     * handled, its compressor (else -1), which its request keeps for the reply. */
    uint32_t compressors;
    int in_compressor;
    int up_compressor; /* the compressor the upstream agreed on c->up, or -1 (a new upstream
                        * connection starts plain until its own hello) */
};


/*
 * The reply to req has just been queued for the client (or dropped, the
 * client being gone): when req is timed, counts its latency under outcome
 * (latency_histograms) and logs it if it was slow (slow_request_ms,
 * proxy/slow.h). The one place a request's outcome and time are taken.
 */
static inline void
proxy_client_observe_at(struct proxy_client *c, const struct proxy_request *req,
                        enum proxy_outcome outcome, int64_t now_us)
{
    int64_t elapsed_us;

    if (!req->started_us)
        return;
    elapsed_us = now_us - req->started_us;
    if (c->server->conf->latency_histograms)
        conf_hist_observe(&c->server->stats.request[outcome], elapsed_us);
    if (c->server->conf->slow_request_ms > 0)
        proxy_slow_log(c, req, outcome, elapsed_us);
}

/* As proxy_client_observe_at, the clock read here (only when req is timed). */
static inline void
proxy_client_observe(struct proxy_client *c, const struct proxy_request *req,
                     enum proxy_outcome outcome)
{
    if (req->started_us)
        proxy_client_observe_at(c, req, outcome, conf_clock_us());
}

#endif
