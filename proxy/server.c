/*
 * proxy/server.c: the process-wide context's behaviour: resolving the
 * upstream address from the configuration, counting clients in and out, and
 * the SIGTERM drain (stop accepting, let every client finish what it has in
 * flight, exit when the last one closes or drain_timeout passes). Start-up
 * order and signals are main.c's.
 */
#include "proxy/server.h"

#include "proxy/client.h"
#include "proxy/listener.h"
#include "proxy/log.h"

#include <event2/event.h>
#include <mongoc/mongoc.h>
#include <string.h>

bool
proxy_server_set_upstream(struct proxy_server *server, bson_error_t *error)
{
    mongoc_uri_t *uri;
    const mongoc_host_list_t *host;

    uri = mongoc_uri_new_with_error(server->conf->upstream, error);
    if (!uri)
        return false;
    host = mongoc_uri_get_hosts(uri);
    if (!host) {
        bson_set_error(error, 1, 1, "upstream connection string names no host");
        mongoc_uri_destroy(uri);
        return false;
    }
    bson_free(server->upstream_host);
    bson_free(server->upstream_label);
    server->upstream_host = bson_strdup(host->host);
    server->upstream_port = host->family == AF_UNIX ? 0 : host->port;
    server->upstream_label = bson_strdup(host->host_and_port);
    mongoc_uri_destroy(uri);
    return true;
}

void
proxy_server_client_closed(struct proxy_server *server)
{
    server->n_clients--;
    proxy_stats_add(&server->stats, PROXY_STAT_clients_active, -1);
    if (server->draining) {
        if (server->n_clients == 0)
            event_base_loopexit(server->base, NULL);
        return;
    }
    if (server->listener)
        proxy_listener_fd_freed(server->listener);
}

static void
drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_server *server = arg;

    (void)fd;
    (void)what;
    proxy_log(PROXY_LOG_WARN, 0, "drain_timeout",
              "clients=%llu msg=\"in-flight requests did not finish within drain_timeout; "
              "exiting anyway\"",
              (unsigned long long)server->n_clients);
    event_base_loopexit(server->base, NULL);
}

void
proxy_server_drain(struct proxy_server *server)
{
    struct timeval tv;

    if (server->draining)
        return;
    server->draining = true;
    proxy_listener_destroy(server->listener);
    server->listener = NULL;
    proxy_log(PROXY_LOG_INFO, 0, "drain_start", "clients=%llu drain_timeout_ms=%lld",
              (unsigned long long)server->n_clients, (long long)server->conf->drain_timeout);
    if (server->n_clients == 0) {
        event_base_loopexit(server->base, NULL);
        return;
    }
    proxy_client_drain_all(server);
    tv.tv_sec = server->conf->drain_timeout / 1000;
    tv.tv_usec = (server->conf->drain_timeout % 1000) * 1000;
    server->drain_timer = evtimer_new(server->base, drain_timeout_cb, server);
    evtimer_add(server->drain_timer, &tv);
}
