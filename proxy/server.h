/*
 * proxy/server.h: the context every part of the proxy hangs off: the event
 * base, the configuration in force, the counters, the upstream's address,
 * and the list of client connections. One per process; passed explicitly,
 * never global.
 */
#ifndef MONGOCACHE_PROXY_SERVER_H
#define MONGOCACHE_PROXY_SERVER_H

#include "conf/conf.h"
#include "proxy/conn.h"
#include "proxy/request.h"
#include "proxy/stats.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

struct event_base;
struct evdns_base;
struct event;
struct evbuffer;
struct proxy_client;
struct proxy_request;
struct proxy_listener;
struct proxy_tls;
struct proxy_admin;
struct cache;
struct proxy_server;

/*
 * What server.c reports to the files above it, which it never calls: set by
 * main.c at start-up; a hook left NULL is skipped (unit tests).
 */
struct proxy_server_hooks {
    void (*memory_low)(struct proxy_server *server);     /* paused clients may read again */
    void (*fd_freed)(struct proxy_server *server);       /* a client closed: accept again */
    void (*stop_accepting)(struct proxy_server *server); /* SIGTERM: close the listeners */
    void (*drain_clients)(struct proxy_server *server);  /* SIGTERM: every client finishes */
    void (*upstream_moved)(struct proxy_server *server); /* new connections go elsewhere now
                                                          * (proxy/topology.h) */
    /* A replica set's primary is another member than the last one seen (proxy/topology.h). */
    void (*primary_changed)(struct proxy_server *server, const char *from, const char *to);
};
struct proxy_cursors;
struct proxy_advice;
struct proxy_io_loop;
struct proxy_topology;

TAILQ_HEAD(proxy_client_list, proxy_client);

struct proxy_conn;

struct proxy_server {
    struct event_base *base;
    struct evdns_base *dns;
    struct conf *conf;          /* owned; replaced on SIGHUP */
    time_t started;             /* when the process started (uptime, start time) */
    bool auth_seen;             /* a client began authenticating (admin_commands closes) */
    /* cache = off without a Redis tier classifies no command (proxy/lookup.c):
     * the requests so forwarded and not yet ended, and until when (monotonic
     * ms) a moreToCome one sent so may still be applied. Until both are past,
     * a cache turned back on stores nothing. */
    uint64_t untracked;
    int64_t untracked_oneway_until_ms;
    int64_t held_logged_ms;     /* last lookups_held line (lookup.c; one per 10 s at most) */
    bool lookups_held;          /* a read went unlooked-up for them: lookups_resumed is owed */
    struct proxy_stats stats;
    char *upstream_host;        /* from conf->upstream's first host, owned; NULL for
                                 * mongodb+srv:// (the monitor finds the servers) */
    uint16_t upstream_port;     /* 0 for a unix socket path */
    char *upstream_label;       /* "host:port" for messages, owned */
    struct proxy_topology *topology; /* where new upstream connections go (the monitor's
                                      * view), owned by main.c; NULL: always the host above */
    /* The upstream URI's compressors= (those built, in its order) and zlibCompressionLevel:
     * offered in each client connection's hello to the upstream (proxy/compress.h). */
    uint8_t upstream_compressors[4];
    uint8_t upstream_n_compressors;
    int upstream_zlib_level;
    bool upstream_load_balanced; /* loadBalanced=true in the URI: each hello sent upstream
                                  * says loadBalanced: true (handshake.c) */
    bson_oid_t service_id;      /* given to loadBalanced clients */
    int hello_upstream;         /* enum proxy_hello_upstream of the latest hello reply, so
                                 * that handshake.c logs a change once */
    bool hello_warned_lb_standalone; /* handshake.c warned of loadBalanced + standalone */
    bool hello_warned_lb_needed;     /* handshake.c warned of a load balancer upstream
                                      * that the URI does not name as one */
    struct proxy_listener *listener;
    struct proxy_tls *tls_clients;  /* the TCP listener's TLS (tls_cert_file), owned; NULL:
                                     * plaintext; replaced on SIGHUP */
    struct proxy_tls *tls_upstream; /* TLS to the upstream (tls=true in its URI), owned */
    struct proxy_admin *admin;
    struct cache *cache;        /* the query cache, owned */
    struct proxy_cursors *cursors; /* cursors the proxy serves itself, owned */
    struct proxy_advice *advice;   /* index advice, owned; NULL when advice is off */
    struct proxy_client_list clients;
    uint64_t n_clients;
    uint64_t next_conn_id;
    uint32_t next_reply_id;     /* requestID of the next reply the proxy makes itself */
    /* max_memory: bytes in every client's and upstream's buffers (counted by
     * their connections through memory_meter), bytes announced by client
     * messages still arriving, and the clients paused until the total falls
     * back (proxy_server_memory_*) */
    size_t mem_buffered;
    struct proxy_conn_meter memory_meter; /* set up on the first track */
    size_t mem_promised;
    size_t mem_referenced;      /* of mem_buffered (or on its way there): stored replies
                                 * queued by reference, the cache's memory (left out) */
    uint32_t n_memory_paused;
    struct event *memory_ev;    /* resumes the paused clients; created on first use */
    struct proxy_request_spares spares; /* destroyed requests kept as the next ones' memory
                                         * (proxy_request_new): the server's, so that an idle
                                         * connection holds none; freed by main.c */
    struct proxy_io_loop *io;   /* the sockets' read buffer and scratch (proxy/io.h); created
                                 * on first use */
    bool draining;              /* SIGTERM received */
    struct proxy_server_hooks hooks; /* what this file reports up (set by main.c) */
    struct event *drain_timer;
};

/* A fresh requestID for a reply the proxy makes itself (one counter per process). */
static inline int32_t
proxy_server_reply_id(struct proxy_server *server)
{
    /* Positive and wrapping: a requestID is an int32. */
    return (int32_t)(server->next_reply_id++ & 0x7fffffffu);
}

/*
 * Sets the upstream address from conf->upstream (parsed with libmongoc).
 * Returns false with error set when it names no usable host.
 */
bool proxy_server_set_upstream(struct proxy_server *server, bson_error_t *error)
    __attribute__((warn_unused_result));

/*
 * The memory budget (max_memory). Messages up to PROXY_MEMORY_SMALL bytes
 * are always admitted and a connection holding no more than that is never
 * paused, so control traffic (hello, ping, small reads) flows while large
 * clients wait: the bound is max_memory plus PROXY_MEMORY_SMALL per
 * connection, plus one socket read per connection.
 */
#define PROXY_MEMORY_SMALL (64 * 1024)

/* Counts conn's buffered bytes in server->mem_buffered from now on (its bytes so far
 * included; proxy_conn_count_memory keeps the count, with no evbuffer callback). */
void proxy_server_memory_track(struct proxy_server *server, struct proxy_conn *conn);

/* Stops counting conn (before it is freed): its bytes leave the total. */
void proxy_server_memory_untrack(struct proxy_server *server, struct proxy_conn *conn);

/*
 * The total fell, or max_memory changed (a tracked connection's bytes left
 * it, a connection untracked, a promise released, a reload): paused
 * clients resume on the next loop turn if the total is now low enough.
 */
void proxy_server_memory_check(struct proxy_server *server);

/*
 * Bytes buffered plus bytes announced by messages still arriving, less the
 * stored replies queued by reference (the cache's memory, shared by every
 * connection that reads them; a piece of one partly sent may hide up to
 * PROXY_IO_PIECE per connection).
 */
static inline size_t
proxy_server_memory_used(const struct proxy_server *server)
{
    size_t shared = server->mem_referenced < server->mem_buffered ? server->mem_referenced
                                                                   : server->mem_buffered;

    return server->mem_buffered - shared + server->mem_promised;
}

/*
 * Whether the upstream is a load balancer (loadBalanced=true in the URI, or
 * in a mongodb+srv:// name's TXT record: the monitor's view): every hello
 * the proxy sends upstream, a client's (handshake.c) or its own (ready.c),
 * then says loadBalanced: true.
 */
bool proxy_server_upstream_load_balanced(const struct proxy_server *server);

/* True when max_memory is set and extra more bytes would take the total past it. */
bool proxy_server_memory_over(const struct proxy_server *server, size_t extra);

/* Called by client.c when a client connection has been freed. */
void proxy_server_client_closed(struct proxy_server *server);

/*
 * Starts connecting conn (made with no socket) to the upstream: the server
 * the topology monitor names (proxy/topology.h), else the URI's first
 * host; its unix socket, or its host and port (resolved by server->dns),
 * with TLS when server->tls_upstream is set (the certificate checked
 * against that server's host). *address (when not NULL) gets the server's
 * "host:port" (bson_free), whatever the outcome. 0 when the connection is
 * under way (its outcome comes as conn's event); -1 when it failed at once
 * (errno), with nothing to come.
 */
int proxy_server_connect_upstream(struct proxy_server *server, struct proxy_conn *conn,
                                  char **address);

/* Starts the SIGTERM drain: stop accepting, let in-flight requests finish. */
void proxy_server_drain(struct proxy_server *server);

#endif
