/*
 * proxy/server.c: the process-wide context's behaviour: resolving the
 * upstream address from the configuration and where each upstream
 * connection goes (the monitor's pick, proxy/topology.h, at the address its
 * thread resolved; else the URI's first host, by evdns; a mongodb+srv URI
 * has none, so its connections fail until the monitor finds a server),
 * counting clients in and out, the SIGTERM drain (stop accepting, let every
 * client finish what it has in flight, exit when the last one closes or
 * drain_timeout passes), and the count of buffered bytes that max_memory
 * bounds (which clients pause for it, and when they resume, is client.c's).
 * Start-up order and signals are main.c's.
 */
#include "proxy/server.h"

#include "conf/error.h"
#include "conf/log.h"
#include "proxy/conn.h"
#include "proxy/topology.h"
#include "wire/compress.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <errno.h>
#include <event2/event.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

bool
proxy_server_set_upstream(struct proxy_server *server, bson_error_t *error)
{
    mongoc_uri_t *uri;
    const mongoc_host_list_t *host;

    uri = mongoc_uri_new_with_error(server->conf->upstream, error);
    if (!uri)
        return false;
    host = mongoc_uri_get_hosts(uri);
    if (!host && !mongoc_uri_get_srv_hostname(uri)) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_ADDRESS,
                       "upstream connection string names no host");
        mongoc_uri_destroy(uri);
        return false;
    }
    bson_free(server->upstream_host);
    bson_free(server->upstream_label);
    if (host) {
        server->upstream_host = bson_strdup(host->host);
        server->upstream_port = host->family == AF_UNIX ? 0 : host->port;
        server->upstream_label = bson_strdup(host->host_and_port);
    } else {
        /* mongodb+srv://: only the monitor's lookups name servers (proxy/topology.h) */
        server->upstream_host = NULL;
        server->upstream_port = 0;
        server->upstream_label =
            bson_strdup_printf("mongodb+srv://%s", mongoc_uri_get_srv_hostname(uri));
    }
    server->upstream_n_compressors = 0;
    {
        /* compressors=: in its order; libmongoc has dropped names it does not know, and
         * those this build lacks are dropped here (check.c warns of both). */
        const bson_t *list = mongoc_uri_get_compressors(uri);
        uint32_t seen = 0;
        bson_iter_t it;

        if (list && bson_iter_init(&it, list)) {
            while (bson_iter_next(&it) &&
                   server->upstream_n_compressors < sizeof server->upstream_compressors) {
                int id = wire_compress_lookup(bson_iter_key(&it), bson_iter_key_len(&it));

                if (id < 0 || !wire_compress_built(id) || (seen & (1u << id)))
                    continue;
                seen |= 1u << id;
                server->upstream_compressors[server->upstream_n_compressors++] = (uint8_t)id;
            }
        }
        server->upstream_zlib_level =
            mongoc_uri_get_option_as_int32(uri, MONGOC_URI_ZLIBCOMPRESSIONLEVEL, -1);
    }
    /* (A mongodb+srv:// name's TXT record may set it too: the monitor's view says so.) */
    server->upstream_load_balanced =
        mongoc_uri_get_option_as_bool(uri, MONGOC_URI_LOADBALANCED, false);
    mongoc_uri_destroy(uri);
    return true;
}

bool
proxy_server_upstream_load_balanced(const struct proxy_server *server)
{
    return server->upstream_load_balanced || proxy_topology_load_balanced(server->topology);
}

/* ---- the memory budget ----------------------------------------------------- */

bool
proxy_server_memory_over(const struct proxy_server *server, size_t extra)
{
    size_t max = (size_t)server->conf->max_memory;

    return max > 0 && proxy_server_memory_used(server) + extra > max;
}

/* Paused clients resume once the total is back under seven eighths of max_memory. */
static bool
memory_low(const struct proxy_server *server)
{
    size_t max = (size_t)server->conf->max_memory;

    return max == 0 || proxy_server_memory_used(server) <= max - max / 8;
}

static void
memory_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_server *server = arg;

    (void)fd;
    (void)what;
    if (server->n_memory_paused > 0 && memory_low(server) && server->hooks.memory_low)
        server->hooks.memory_low(server);
}

/* A tracked connection's bytes fell (proxy/conn.c): paused clients may resume. */
static void
memory_fell(void *arg)
{
    proxy_server_memory_check(arg); /* never resumes inside: from the loop */
}

void
proxy_server_memory_track(struct proxy_server *server, struct proxy_conn *conn)
{
    if (!server->memory_ev) {
        server->memory_ev = event_new(server->base, -1, 0, memory_cb, server);
        server->memory_meter.total = &server->mem_buffered;
        server->memory_meter.fell = memory_fell;
        server->memory_meter.arg = server;
    }
    proxy_conn_count_memory(conn, &server->memory_meter);
}

void
proxy_server_memory_untrack(struct proxy_server *server, struct proxy_conn *conn)
{
    proxy_conn_count_memory(conn, NULL);
    proxy_server_memory_check(server);
}

void
proxy_server_memory_check(struct proxy_server *server)
{
    if (server->n_memory_paused > 0 && memory_low(server))
        event_active(server->memory_ev, 0, 0);
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
    if (server->hooks.fd_freed)
        server->hooks.fd_freed(server);
}

static void
drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_server *server = arg;

    (void)fd;
    (void)what;
    conf_log(CONF_LOG_WARN, 0, "drain_timeout",
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
    if (server->hooks.stop_accepting)
        server->hooks.stop_accepting(server);
    conf_log(CONF_LOG_INFO, 0, "drain_start", "clients=%llu drain_timeout_ms=%lld",
             (unsigned long long)server->n_clients, (long long)server->conf->drain_timeout);
    if (server->n_clients == 0) {
        event_base_loopexit(server->base, NULL);
        return;
    }
    if (server->hooks.drain_clients)
        server->hooks.drain_clients(server);
    tv.tv_sec = server->conf->drain_timeout / 1000;
    tv.tv_usec = (server->conf->drain_timeout % 1000) * 1000;
    server->drain_timer = evtimer_new(server->base, drain_timeout_cb, server);
    evtimer_add(server->drain_timer, &tv);
}

int
proxy_server_connect_upstream(struct proxy_server *server, struct proxy_conn *conn,
                              char **address)
{
    const char *host = server->upstream_host, *label = server->upstream_label;
    uint16_t port = server->upstream_port;
    const struct sockaddr *sa = NULL;
    socklen_t sa_len = 0;

    if (!proxy_topology_pick(server->topology, &host, &port, &label, &sa, &sa_len) && !host) {
        /* mongodb+srv:// and no server found yet: the monitor's reason goes with the address */
        const char *why = proxy_topology_error(server->topology);

        if (address)
            *address = bson_strdup_printf("%s (%s)", label, why ? why : "no server found yet");
        errno = EHOSTUNREACH;
        return -1;
    }
    if (address)
        *address = bson_strdup(label);
    /* TLS (tls=true in the URI): CONNECTED comes once the handshake is done, the
     * server's certificate checked against the host it is reached by. */
    if (server->tls_upstream && !proxy_conn_tls_connect(conn, server->tls_upstream, host)) {
        errno = ENOMEM;
        return -1;
    }
    if (port == 0) {
        struct sockaddr_un sun;

        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", host);
        return proxy_conn_connect(conn, (struct sockaddr *)&sun, sizeof sun);
    }
    if (sa != NULL) /* resolved by the monitor's thread */
        return proxy_conn_connect(conn, sa, (int)sa_len);
    return proxy_conn_connect_hostname(conn, server->dns, host, port);
}
