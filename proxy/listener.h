/*
 * proxy/listener.h: accepting client connections on TCP and, optionally, a
 * unix socket; enforcing max_clients; pausing accept when file descriptors
 * run out (EMFILE) instead of spinning.
 */
#ifndef MONGOCACHE_PROXY_LISTENER_H
#define MONGOCACHE_PROXY_LISTENER_H

#include <bson/bson.h>

struct proxy_server;
struct proxy_listener;

/* Binds conf->listen and conf->listen_unix. Free with proxy_listener_destroy. */
struct proxy_listener *proxy_listener_new(struct proxy_server *server, bson_error_t *error)
    __attribute__((warn_unused_result));
void proxy_listener_destroy(struct proxy_listener *listener);

/* A descriptor was released: resume accepting if it was paused for EMFILE. */
void proxy_listener_fd_freed(struct proxy_listener *listener);

#endif
