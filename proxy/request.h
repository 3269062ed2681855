/*
 * proxy/request.h: one client request from the moment it is taken from the
 * client's buffer until its reply is queued: its state (one enum, moved
 * only by proxy_request_set_state along the transitions of the table in
 * request.c), what it holds in each state, and the one function that frees
 * it. The life of a request is drawn at the top of proxy/request.c.
 */
#ifndef MONGOCACHE_PROXY_REQUEST_H
#define MONGOCACHE_PROXY_REQUEST_H

#include "proxy/advice.h"
#include "proxy/drain.h"
#include "proxy/hello.h"
#include "proxy/router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct cache;
struct cache_inval;
struct cache_pending;
struct cache_value;
struct cache_wait;
struct cache_write_wait;
struct proxy_client;
struct proxy_server;

/*
 * Where a request is in its life (see the diagram in request.c). Each state
 * says which of the request's payload pointers may be set; leaving a state
 * releases the payload that belongs to it.
 */
enum proxy_request_state {
    PROXY_REQUEST_PARSED,            /* taken from the client's buffer; route and cache
                                      * being decided (never across a loop turn) */
    PROXY_REQUEST_WAITING_CACHE,     /* the message is held (held) while an identical read
                                      * in flight or the Redis tier answers (wait) */
    PROXY_REQUEST_UPSTREAM,          /* sent on the client's upstream connection; its reply
                                      * is awaited (miss: a read to store; inval: a write) */
    PROXY_REQUEST_DRAINING,          /* a miss answered with an open cursor: the proxy reads
                                      * it to its end with getMores (drain) */
    PROXY_REQUEST_WAITING_WRITE_ACK, /* a write's reply (canned) waits until Redis has seen
                                      * its bump (write_wait) */
    PROXY_REQUEST_READY,             /* its reply is the proxy's (canned) or stored (hit):
                                      * written when the request reaches the list's head */
    PROXY_REQUEST_DONE,              /* its reply is queued or dropped: only destroy follows */
    PROXY_REQUEST_STATE_COUNT
};

struct proxy_request;

/*
 * What a request's waits report to its owner (client.c), which the files
 * that end them (lookup.c) never call: given at proxy_request_new.
 */
struct proxy_request_ops {
    /* WAITING_CACHE is over: req is READY (a hit), or still WAITING_CACHE
     * with its held message to send (proxy_request_take_held). */
    void (*resolved)(struct proxy_request *req);
    /* WAITING_WRITE_ACK is over: req is READY. */
    void (*acked)(struct proxy_request *req);
};

/*
 * A cacheable read answered with an open cursor: the proxy reads it to the
 * end itself with getMore on the same connection (the client's later
 * requests wait), then serves the whole result from a cursor of its own.
 * Filled by drain.c; freed by the request (leaving DRAINING).
 */
struct proxy_drain {
    struct proxy_drain_docs docs; /* the documents so far */
    int64_t upstream_id;
    char *ns;              /* "db.coll" from the reply */
    int32_t expect;        /* requestID of the getMore in flight */
    uint32_t rounds;       /* getMores answered */
    uint32_t empty_rounds; /* ... in a row with an empty batch */
    int64_t started_ms;    /* monotonic, when the first batch came */
};

/*
 * One request waiting for its reply. Its one owner is the client's pending
 * list (client.c); the cache reaches it only through the callbacks it was
 * given (a wait's, a write ack's), which request.c cancels on destroy.
 * Every pointer below is freed by proxy_request_destroy or by leaving the
 * state it belongs to, nowhere else.
 */
struct proxy_request {
    TAILQ_ENTRY(proxy_request) link;
    enum proxy_request_state state; /* moved only by proxy_request_set_state */
    int32_t request_id;
    enum proxy_route route;
    bool legacy; /* OP_QUERY: the reply is an OP_REPLY */
    int8_t reply_compressor; /* the compressor of the request (OP_COMPRESSED), its reply's;
                              * -1: a plain request, a plain reply */
    bool untracked; /* forwarded with cache = off and no Redis tier, unclassified: counted
                     * in server->untracked until it ends */
    bool internal; /* the proxy's own request (a oneway barrier): its reply is read by the
                    * proxy, never relayed */
    uint32_t held_bytes; /* answered here and held (an in-band admin command, a hit
                          * behind an earlier request): what it counts in its
                          * client's held_bytes (client.c) until it ends */
    uint8_t outcome; /* enum proxy_outcome of a reply the proxy made itself (canned):
                      * pass-through unless set */
    struct proxy_hello_request hello;
    /* State payloads: set only in the state named. */
    uint8_t *canned;              /* READY, WAITING_WRITE_ACK: a reply the proxy made (or
                                   * a write's reply held back); owned */
    size_t canned_len;
    size_t ack_in_upstream;       /* WAITING_WRITE_ACK, READY: instead of canned, the held
                                   * write reply's length, left at the head of the
                                   * upstream's input (client.c) */
    struct cache_value *hit;      /* READY: a stored reply, sent like canned; one reference */
    struct cache_wait *wait;      /* WAITING_CACHE: the cache's wait, until it calls back */
    uint8_t *held;                /* WAITING_CACHE: the message itself; owned */
    size_t held_len;
    struct proxy_drain *drain;    /* DRAINING: the cursor being read; owned */
    struct cache_write_wait *write_wait; /* WAITING_WRITE_ACK: until Redis saw the bump */
    /* Attributes that outlive a state: owned, freed by destroy. */
    struct cache_pending *miss;   /* a cacheable read in flight: store its reply */
    struct cache_inval *inval;    /* a write in flight: bump again when it ends */
    int64_t batch_size;           /* a cacheable read's batchSize, or -1 */
    uint8_t *lsid;                /* a cacheable read's lsid document: the session its
                                   * drain and its proxy cursor belong to */
    uint32_t lsid_len;
    int64_t cursor_upstream_id;   /* a drained result (hit): the server's cursor it goes on to */
    uint64_t shapes[PROXY_ADVICE_SHAPES]; /* query shapes recorded for index advice */
    uint32_t n_shapes;            /* ... whose round trip is counted at the reply */
    uint32_t shape_weight;        /* ... as many times (one in k sampled: k) */
    int64_t sent_us;              /* monotonic, when it went to the server (advice) */
    int64_t started_us;           /* monotonic microseconds when the request was taken from
                                   * the client's buffer (latency_histograms; the slow-request
                                   * log); 0: not timed */
    int64_t upstream_us;          /* monotonic, when it went upstream; 0: not timed or its
                                   * round trip already counted */
    char *index_db;               /* an index change (createIndexes, dropIndexes, drop,
                                   * dropDatabase): its db and collection (NULL: whole db);
                                   * the advisor re-reads them when it succeeds */
    char *index_coll;
    struct proxy_client *client;  /* the owner, borrowed; opaque here */
    const struct proxy_request_ops *ops; /* the owner's, static */
    /* Last, and read only as strings: a spare taken again clears their first
     * byte, not all of them (proxy_request_new). */
    char log_cmd[32];             /* command name and namespace for the slow-request line
                                   * (proxy/slow.c), cut to fit; "" when slow logging is off */
    char log_ns[128];
};
_Static_assert(sizeof(struct proxy_request) - (offsetof(struct proxy_request, log_ns) + 128) <
                   sizeof(void *),
               "the log texts end the request (proxy_request_new clears them as strings)");

TAILQ_HEAD(proxy_request_list, proxy_request);

/* Destroyed requests kept for reuse (proxy_request_new), linked through
 * their `link`; at most PROXY_REQUEST_SPARES_MAX (416 bytes each). */
#define PROXY_REQUEST_SPARES_MAX 64
struct proxy_request_spares {
    struct proxy_request *head;
    uint32_t n;
};

/*
 * A new request in state PARSED for client (borrowed: the request is put
 * on its pending list by the caller), which hears of the ends of its waits
 * through ops (static). Free with proxy_request_destroy.
 *
 * spares (NULL: none) is where its owner keeps destroyed requests for the
 * next ones: one taken here instead of an allocation, and up to
 * PROXY_REQUEST_SPARES_MAX put back by proxy_request_destroy. The server
 * keeps the list (proxy_server's spares), so that requests in flight at
 * once on many connections reuse their memory and an idle connection holds
 * none. What is kept holds nothing but its own memory:
 * proxy_request_free_spares frees it. (Under AddressSanitizer nothing is
 * kept, so that a use after destroy is still seen.)
 */
struct proxy_request *proxy_request_new(struct proxy_client *client,
                                        const struct proxy_request_ops *ops, int32_t request_id,
                                        enum proxy_route route, bool legacy,
                                        struct proxy_request_spares *spares);

/* Frees the requests kept in spares, if any, and empties the list. */
void proxy_request_free_spares(struct proxy_request_spares *spares);

/*
 * Moves req to state to. Aborts (our own bug) on a transition the table in
 * request.c does not allow. Leaving a state releases the payload of that
 * state still set (a wait is cancelled, a held message, a drain or a
 * reply is freed); a caller that wants to keep one takes it first.
 */
void proxy_request_set_state(struct proxy_request *req, enum proxy_request_state to);

/* True when from -> to is in the table (tests). */
bool proxy_request_transition_allowed(enum proxy_request_state from, enum proxy_request_state to);

/* The state's name, for logs and tests. */
const char *proxy_request_state_name(enum proxy_request_state state);

/*
 * True while the upstream's next reply may be req's: it was sent and not
 * yet answered (UPSTREAM, DRAINING). A held request (WAITING_CACHE) was not
 * sent: a reply naming it is the upstream's error.
 */
bool proxy_request_awaits_upstream(const struct proxy_request *req);

/* Takes the held message (WAITING_CACHE) from req: the caller frees it (bson_free). */
uint8_t *proxy_request_take_held(struct proxy_request *req, size_t *len);

/* Replaces req's reply of the proxy's own (canned) with bytes (taken), freeing the old. */
void proxy_request_set_reply(struct proxy_request *req, uint8_t *bytes, size_t len);

/* Drops req's index change (index_db, index_coll): the advisor has been told. */
void proxy_request_drop_index(struct proxy_request *req);

/*
 * Frees req->inval without bumping: its end was handed to
 * cache_write_end_async, which released its records.
 */
void proxy_request_forget_inval(struct proxy_request *req);

/* Drops req's cache_pending (a read that will not be stored after all). */
void proxy_request_drop_miss(struct proxy_request *req, struct cache *cache);

/*
 * The one function that frees a request and all it holds, whatever its
 * state: the state's payload first (a wait is cancelled before the
 * cache_pending it may point at), then a write's generations are bumped
 * (its reply never came, or came), then the rest. cache is the server's,
 * borrowed. Accepts NULL. Its memory goes to spares when spares is not
 * NULL and not full (see proxy_request_new), else back to the allocator.
 */
void proxy_request_destroy(struct proxy_request *req, struct cache *cache,
                           struct proxy_request_spares *spares);

/*
 * An error reply of the proxy's own to request response_to, with a fresh
 * requestID from server; counted in error_replies. Free with bson_free.
 */
uint8_t *proxy_request_make_error(struct proxy_server *server, int32_t response_to, bool legacy,
                                  int32_t code, const char *code_name, const char *errmsg,
                                  size_t *len);

/*
 * The same with errorLabels [label] (label non-NULL): "RetryableWriteError"
 * when nothing of the request reached a server, so a driver may retry a
 * write (drivers of 4.4+ servers decide by that label alone).
 */
uint8_t *proxy_request_make_labeled_error(struct proxy_server *server, int32_t response_to,
                                          bool legacy, int32_t code, const char *code_name,
                                          const char *errmsg, const char *label, size_t *len);

#endif
