/*
 * proxy/client.h: one client connection and its requests in flight.
 * Each client message is framed, checked, routed and forwarded on the
 * client's own upstream connection, and the replies are relayed strictly in
 * request order (the life of a request: proxy/request.c).
 */
#ifndef MONGOCACHE_PROXY_CLIENT_H
#define MONGOCACHE_PROXY_CLIENT_H

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

/*
 * The topology monitor moved new connections elsewhere (a failover): every
 * client whose upstream goes to a server that no longer takes them
 * finishes its requests in flight, then closes.
 */
void proxy_client_retire_moved(struct proxy_server *server);

/* Frees every client at once (process exit). */
void proxy_client_free_all(struct proxy_server *server);

/* The buffered total fell back under max_memory: clients paused for it read again. */
void proxy_client_memory_resume_all(struct proxy_server *server);

/* Frees one client at once. */
void proxy_client_free(struct proxy_client *client);

#endif
