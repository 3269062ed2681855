/*
 * proxy/client_internal.h: the client structure, which the files a
 * request's steps are split into (lookup.c, drain.c, handshake.c, action.c,
 * slow.c) read, and the timing of a reply as it is queued. Those files
 * never call client.c: what they end late reaches it through the request's
 * ops (proxy/request.h) or a return value. Not for use outside proxy/.
 */
#ifndef MONGOCACHE_PROXY_CLIENT_INTERNAL_H
#define MONGOCACHE_PROXY_CLIENT_INTERNAL_H

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

struct bufferevent;
struct cache_inval;
struct cache_pending;
struct cache_value;
struct cache_wait;
struct cache_write_wait;
struct event;
struct evbuffer;
struct proxy_upstream;

struct proxy_client {
    TAILQ_ENTRY(proxy_client) link;
    struct proxy_server *server;
    uint64_t id;
    char peer[INET6_ADDRSTRLEN + 16];
    struct bufferevent *bev;
    struct evbuffer *scratch;     /* one message on its way out, either direction; empty between */
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
    struct event *timer;          /* message deadline, idle or drain */
    bool deadline_armed;
    struct event *close_ev;
    /* Why the client is not read: any of these stops both reading its
     * socket and handling what is buffered (proxy_client_update_reading). */
    bool reading_paused;          /* the upstream's queue is full */
    bool output_full;             /* our own output is over buffer_limit: the upstream is
                                   * not read either */
    bool memory_paused;           /* over max_memory with more than PROXY_MEMORY_SMALL
                                   * buffered: neither it nor its upstream is read */
    bool barrier;                 /* 4,096 moreToCome requests outstanding: waiting for the
                                   * barrier's reply */
    bool finishing;               /* close when nothing is in flight and output is flushed */
    bool peer_eof;                /* the client shut down its side; replies still go out */
    bool peer_gone;               /* the socket failed; replies are discarded */
    bool dead;                    /* close_ev is scheduled */
    bool blocked;                 /* a request waits on the cache or a drain: read no further */
    bool reading;                 /* the socket's read event is enabled */
    bool linger;                  /* close by start_linger: a refused message is still arriving */
    bool lingering;               /* write side shut; input read and dropped until EOF */
    bool tracked;                 /* its buffers count toward max_memory */
    size_t admitted_len;          /* the message arriving now was admitted at this length */
    size_t promised;              /* its bytes not yet arrived (in server->mem_promised) */
    struct event *resume_ev;      /* runs process_input once a wait is over */
    const char *close_reason;
    uint64_t n_requests;
    struct proxy_auth auth;
};

/* Monotonic microseconds (CLOCK_MONOTONIC). */
int64_t proxy_client_now_us(void);

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
        cache_hist_observe(&c->server->stats.request[outcome], elapsed_us);
    if (c->server->conf->slow_request_ms > 0)
        proxy_slow_log(c, req, outcome, elapsed_us);
}

/* As proxy_client_observe_at, the clock read here (only when req is timed). */
static inline void
proxy_client_observe(struct proxy_client *c, const struct proxy_request *req,
                     enum proxy_outcome outcome)
{
    if (req->started_us)
        proxy_client_observe_at(c, req, outcome, proxy_client_now_us());
}

#endif
