/*
 * proxy/upstream.h: one client's own connection to the upstream server.
 * Owns the socket, the connect timeout and reply framing (header and size
 * limit); hands every whole reply to its client (client.c), which checks
 * and relays it. Never shared between clients: an authenticated upstream
 * connection belongs to the client that authenticated it.
 */
#ifndef MONGOCACHE_PROXY_UPSTREAM_H
#define MONGOCACHE_PROXY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy_server;
struct evbuffer;
struct wire_header;

struct proxy_conn;
struct proxy_upstream;

/*
 * What the upstream reports to its owner (client.c), which it never calls
 * directly: given at creation, each called with the owner's arg.
 */
struct proxy_upstream_cbs {
    /* A whole reply of header->length bytes is at the front of the input,
     * contiguous at data (NULL: no memory to make it so): the owner checks
     * it, relays it and removes it (proxy_upstream_send_to, _drain,
     * _remove). False: stop delivering (the owner closed or paused). */
    bool (*on_reply)(void *arg, const uint8_t *data, const struct wire_header *header);
    /* The connection failed; connected tells whether it had been established
     * (requests may have reached the server). The owner destroys the
     * upstream from inside this call. */
    void (*on_down)(void *arg, const char *why, bool connected);
    /* The upstream broke the wire protocol (an impossible header). */
    void (*on_invalid)(void *arg, const char *why);
    /* The output queue drained below the low watermark. */
    void (*on_drained)(void *arg);
};

/*
 * Starts connecting to the server's upstream for an owner that will hear of
 * it through cbs (borrowed, static) with arg, or waits for a primary first
 * (proxy_upstream_waiting); the owner frees the result with
 * proxy_upstream_destroy. Bytes written before the connection is up are
 * queued.
 */
struct proxy_upstream *proxy_upstream_new(struct proxy_server *server,
                                          const struct proxy_upstream_cbs *cbs, void *arg);
void proxy_upstream_destroy(struct proxy_upstream *up);

/* Sends (and empties) data: written at once when the connection is up and idle. */
void proxy_upstream_send(struct proxy_upstream *up, struct evbuffer *data);
/* Sends the len bytes at the front of src's input (contiguous at data) and drains them
 * from it (proxy_conn_send_from). */
void proxy_upstream_send_from(struct proxy_upstream *up, struct proxy_conn *src,
                              const uint8_t *data, size_t len);
/* Sends the len bytes at the front of the input (contiguous at data; NULL: made so here) on
 * dst, draining them. */
void proxy_upstream_send_to(struct proxy_upstream *up, struct proxy_conn *dst,
                            const uint8_t *data, size_t len);
/* Drops the first len bytes of the input; copies them to dst first (remove). */
void proxy_upstream_drain(struct proxy_upstream *up, size_t len);
void proxy_upstream_remove(struct proxy_upstream *up, void *dst, size_t len);

/*
 * Whether it waits for a replica set to elect a primary (created while the
 * topology had none: proxy_topology_electing); it then connects when
 * proxy_upstream_connect_waiting is called with a primary known, or fails
 * (on_down, not connected: nothing was sent) at connect_timeout.
 */
bool proxy_upstream_waiting(const struct proxy_upstream *up);
/* A waiting upstream connects now (within a new connect_timeout), unless the topology still has
 * no primary. */
void proxy_upstream_connect_waiting(struct proxy_upstream *up);

/* The server it connects to ("host:port", or a socket path; "" while waiting): valid while up
 * lives. */
const char *proxy_upstream_address(const struct proxy_upstream *up);

/* Bytes in the upstream connection's buffers, both ways (max_memory). */
size_t proxy_upstream_buffered(const struct proxy_upstream *up);

/* Bytes queued and not yet written. */
size_t proxy_upstream_queued(const struct proxy_upstream *up);
/* True once the TCP (or unix) connection is established. */
bool proxy_upstream_connected(const struct proxy_upstream *up);
/* Stops or resumes reading replies (backpressure from a slow client). */
void proxy_upstream_pause(struct proxy_upstream *up, bool paused);
/* Bytes of replies read and not yet taken (a held write ack stays at their head: client.c). */
size_t proxy_upstream_input_length(const struct proxy_upstream *up);
/* Frames and delivers replies already buffered (after a pause ends). */
void proxy_upstream_process(struct proxy_upstream *up);
/* Sets the output size below which the client is told it may send again. */
void proxy_upstream_set_low_watermark(struct proxy_upstream *up, size_t low);

#endif
