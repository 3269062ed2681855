/*
 * proxy/client_internal.h: what client.c shares with lookup.c and drain.c,
 * the files the request pipeline is split into: the client and request
 * structures, and the client.c functions the other two call. Not for use
 * outside proxy/client.c, proxy/lookup.c, proxy/drain.c and proxy/slow.c
 * (which reads a request as its reply is queued).
 */
#ifndef MONGOCACHE_PROXY_CLIENT_INTERNAL_H
#define MONGOCACHE_PROXY_CLIENT_INTERNAL_H

#include "conf/clock.h"
#include "proxy/advice.h"
#include "proxy/auth.h"
#include "proxy/client.h"
#include "proxy/drain.h"
#include "proxy/hello.h"
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

/* One request waiting for its reply. Its state is the list it is on. */
struct proxy_request {
    TAILQ_ENTRY(proxy_request) link;
    int32_t request_id;
    enum proxy_route route;
    bool legacy; /* OP_QUERY: the reply is an OP_REPLY */
    struct proxy_hello_request hello;
    uint8_t *canned; /* a reply the proxy made itself, sent when this request reaches
                      * the head of the list; owned */
    size_t canned_len;
    struct cache_value *hit;      /* a stored reply, sent like canned; one reference */
    struct cache_pending *miss;   /* a cacheable read in flight: store its reply; owned */
    struct cache_inval *inval;    /* a write in flight: bump again when it ends; owned */
    struct cache_wait *wait;      /* waiting for an identical read in flight */
    uint8_t *held;                /* the message itself while waiting; owned */
    size_t held_len;
    int64_t batch_size;           /* a cacheable read's batchSize, or -1 */
    uint8_t *lsid;                /* a cacheable read's lsid document: the session its
                                   * drain and its proxy cursor belong to; owned */
    uint32_t lsid_len;
    int64_t cursor_upstream_id;   /* a drained result (hit): the server's cursor it goes on to */
    struct proxy_drain *drain;    /* the proxy is reading this miss's cursor to its end */
    struct cache_write_wait *write_wait; /* the ack (canned) waits for Redis to see the bump */
    bool internal;                /* the proxy's own request (a oneway barrier): its reply
                                   * is read by the proxy, never relayed */
    uint64_t shapes[PROXY_ADVICE_SHAPES]; /* query shapes recorded for index advice */
    uint32_t n_shapes;            /* ... whose round trip is counted at the reply */
    uint32_t shape_weight;        /* ... as many times (one in k sampled: k) */
    int64_t sent_us;              /* monotonic, when it went to the server (advice) */
    int64_t started_us;           /* monotonic microseconds when the request was taken from
                                   * the client's buffer (latency_histograms; the slow-request
                                   * log); 0: not timed */
    int64_t upstream_us;          /* monotonic, when it went upstream; 0: not timed or its
                                   * round trip already counted */
    uint8_t outcome;              /* enum proxy_outcome of a reply the proxy made itself
                                   * (canned): pass-through unless set */
    char *index_db;               /* an index change (createIndexes, dropIndexes, drop,
                                   * dropDatabase): its db and collection (NULL: whole db),
                                   * owned; the advisor re-reads them when it succeeds */
    char *index_coll;
    struct proxy_client *client;
    char log_cmd[32];             /* command name and namespace for the slow-request line
                                   * (proxy/slow.c), cut to fit; "" when slow logging is off */
    char log_ns[128];
};

/*
 * A cacheable read answered with an open cursor: the proxy reads it to the
 * end itself with getMore on the same connection (the client's later
 * requests wait), then serves the whole result from a cursor of its own.
 */
struct proxy_drain {
    struct proxy_drain_docs docs; /* the documents so far */
    int64_t upstream_id;
    char *ns;       /* "db.coll" from the reply */
    int32_t expect; /* requestID of the getMore in flight */
    uint32_t rounds;       /* getMores answered */
    uint32_t empty_rounds; /* ... in a row with an empty batch */
    int64_t started_ms;    /* monotonic, when the first batch came */
};

TAILQ_HEAD(proxy_request_list, proxy_request);

struct proxy_client {
    TAILQ_ENTRY(proxy_client) link;
    struct proxy_server *server;
    uint64_t id;
    char peer[INET6_ADDRSTRLEN + 16];
    struct bufferevent *bev;
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
    struct event *timer;          /* message deadline, idle or drain; exists only while armed */
    bool deadline_armed;
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
    bool dead;                    /* resume_ev is active to free it */
    bool blocked;                 /* a request waits on the cache or a drain: read no further */
    bool reading;                 /* the socket's read event is enabled */
    bool linger;                  /* close by start_linger: a refused message is still arriving */
    bool lingering;               /* write side shut; input read and dropped until EOF */
    bool tracked;                 /* its buffers count toward max_memory */
    size_t admitted_len;          /* the message arriving now was admitted at this length */
    size_t promised;              /* its bytes not yet arrived (in server->mem_promised) */
    struct event *resume_ev;      /* runs proxy_client_process_input once a wait is over;
                                   * frees the client once dead; created on first need
                                   * (proxy_client_set_blocked creates it) */
    const char *close_reason;
    uint64_t n_requests;
    struct proxy_auth auth;
};

/* A fresh requestID for a reply the proxy makes itself (one counter per process). */
static inline int32_t
proxy_client_reply_id(struct proxy_client *c)
{
    /* Positive and wrapping: a requestID is an int32. */
    return (int32_t)(c->server->next_reply_id++ & 0x7fffffffu);
}

/* Index advice for a held read sent upstream after its wait (see lookup.c). */
void proxy_client_advise_held(struct proxy_client *c, struct proxy_request *req);

/* Handles the whole messages buffered from the client, until one blocks it. */
void proxy_client_process_input(struct proxy_client *c);

/*
 * Sets or clears c->blocked (a request waits on the cache or a drain), and
 * turns reading off or back on. Clearing does not handle what is buffered:
 * the caller schedules resume_ev for that.
 */
void proxy_client_set_blocked(struct proxy_client *c, bool blocked);

/* Re-arms the client's timer: message deadline, idle or drain. */
void proxy_client_update_timer(struct proxy_client *c, bool progressed);

/* Closes a finishing client once nothing is owed either way. */
void proxy_client_maybe_finish(struct proxy_client *c);

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
        proxy_client_observe_at(c, req, outcome, conf_clock_us());
}

/* Writes bytes (taken, bson_free) to the client unless it is gone. */
void proxy_client_write_owned(struct proxy_client *c, uint8_t *bytes, size_t len);

/* An error reply to request response_to; freed with bson_free. */
uint8_t *proxy_client_make_error(struct proxy_client *c, int32_t response_to, bool legacy,
                                 int32_t code, const char *code_name, const char *errmsg,
                                 size_t *len);

/* Sends the proxy-made replies that have reached the head of the list. */
void proxy_client_flush_canned(struct proxy_client *c);

/*
 * Moves the message of len bytes at the front of in to the upstream, or
 * replaces it with `replacement` (taken) when the proxy rewrote it.
 */
void proxy_client_forward(struct proxy_client *c, struct evbuffer *in, size_t len,
                          uint8_t *replacement, size_t replacement_len, bool oneway);

#endif
