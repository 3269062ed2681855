/*
 * proxy/client.h: one client connection and its requests in flight.
 * The request pipeline (see the diagram in client.c) lives here: frame and
 * check each client message, route it, forward it on the client's own
 * upstream connection, and relay the replies strictly in request order.
 */
#ifndef MONGOCACHE_PROXY_CLIENT_H
#define MONGOCACHE_PROXY_CLIENT_H

#include "wire/frame.h"

#include <event2/util.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct proxy_server;
struct proxy_client;
struct sockaddr;
struct evbuffer;

/*
 * Takes the accepted socket fd (closed by the client from then on) and
 * registers the client with the server. Returns NULL on allocation or
 * socket failure; the caller then closes fd.
 */
struct proxy_client *proxy_client_new(struct proxy_server *server, evutil_socket_t fd,
                                      const struct sockaddr *addr, int addrlen);

/* SIGTERM: every client stops reading, finishes its requests in flight, then closes. */
void proxy_client_drain_all(struct proxy_server *server);

/* Frees every client at once (process exit). */
void proxy_client_free_all(struct proxy_server *server);

/* The buffered total fell back under max_memory: clients paused for it read again. */
void proxy_client_memory_resume_all(struct proxy_server *server);

/* Frees one client at once. */
void proxy_client_free(struct proxy_client *client);

/* ---- called by upstream.c ------------------------------------------------ */

/*
 * A whole reply of header->length bytes is at the front of in: check it,
 * relay it (or rewrite it), and remove it from in. Returns false when the
 * client was closed and the caller must stop delivering.
 */
bool proxy_client_on_reply(struct proxy_client *client, struct evbuffer *in,
                           const struct wire_header *header);

/*
 * The upstream connection failed. connected tells whether it had been
 * established (requests may have reached the server) or the connect itself
 * failed (nothing was sent). why is for the log and the error reply.
 */
void proxy_client_on_upstream_down(struct proxy_client *client, const char *why, bool connected);

/*
 * The upstream broke the wire protocol (an impossible header): the client's
 * oldest request gets an error naming the upstream, then the client closes.
 */
void proxy_client_on_upstream_invalid(struct proxy_client *client, const char *why);

/* The upstream's output queue drained below the low watermark. */
void proxy_client_on_upstream_drained(struct proxy_client *client);

#endif
