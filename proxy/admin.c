/*
 * proxy/admin.c: the HTTP endpoint (see admin.h), on libevent's evhttp with
 * its limits set (timeouts, header and body sizes, GET only but for the
 * admin actions' POST routes) so the admin port cannot be used to starve
 * the data port; /stats is bounded and sent in chunks; /metrics is the same
 * values for Prometheus (both rendered by proxy/metrics.c); /readyz is
 * proxy/ready.c's; /advice shows the index advice. Reads the counters;
 * never shows a secret, a query or a principal. The routes that change
 * something (POST /cache/flush and /cache/invalidate) and GET /shapes are
 * proxy/action.c's and proxy/shapes.c's; GET / is the dashboard
 * (proxy/dashboard.c).
 */
#include "config.h"

#include "proxy/admin.h"

#include "cache/cache.h"
#include "conf/error.h"
#include "conf/log.h"
#include "proxy/action.h"
#include "proxy/advice.h"
#include "proxy/dashboard.h"
#include "proxy/http.h"
#include "proxy/metrics.h"
#include "proxy/ready.h"
#include "proxy/server.h"
#include "proxy/shapes.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct proxy_admin {
    struct proxy_server *server;
    struct evhttp *http;
    struct proxy_ready *ready; /* /readyz, owned */
    struct proxy_dashboard *dashboard; /* GET / */
};

/*
 * POST is allowed on the endpoint for the admin actions (proxy/action.c)
 * alone: a GET route refuses it as evhttp did before (501). False when req
 * was answered.
 */
static bool
get_only(struct evhttp_request *req)
{
    struct evbuffer *body;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
        return true;
    body = evbuffer_new();
    evbuffer_add_printf(body, "{\"error\": \"this route takes GET only\"}\n");
    proxy_http_reply_json(req, 501, "Not Implemented", body);
    evbuffer_free(body);
    return false;
}

/* Most bytes of /stats sent in one chunk. */
#define ADMIN_STATS_CHUNK (16 * 1024)

static void
unauthorized(struct evhttp_request *req)
{
    struct evbuffer *body = evbuffer_new();

    evbuffer_add_printf(body, "{\"error\": \"unauthorized\"}\n");
    proxy_http_reply_json(req, 401, "Unauthorized", body);
    evbuffer_free(body);
}

/*
 * GET /stats: the document proxy/metrics.c builds (BSON), written as
 * relaxed extended JSON and sent in chunks. Its size is bounded: at most
 * PROXY_METRICS_JSON_NAMESPACES namespaces by name, fixed histograms.
 */
static void
stats_cb(struct evhttp_request *req, void *arg)
{
    struct proxy_admin *admin = arg;
    struct evbuffer *body;
    bson_t doc = BSON_INITIALIZER;
    size_t len = 0;
    char *json;

    if (!get_only(req))
        return;
    if (!proxy_http_authorized(admin->server, req)) {
        unauthorized(req);
        return;
    }
    proxy_metrics_stats_bson(admin->server, admin->server->started, &doc);
    json = bson_as_relaxed_extended_json(&doc, &len);
    bson_destroy(&doc);
    body = evbuffer_new();
    if (!json) {
        evbuffer_add_printf(body, "{\"error\": \"the statistics could not be written\"}\n");
        proxy_http_reply_json(req, 500, "Internal Server Error", body);
        evbuffer_free(body);
        return;
    }
    proxy_http_json_headers(req);
    evhttp_send_reply_start(req, 200, "OK");
    for (size_t off = 0; off < len; off += ADMIN_STATS_CHUNK) {
        evbuffer_add(body, json + off, len - off < ADMIN_STATS_CHUNK ? len - off : ADMIN_STATS_CHUNK);
        evhttp_send_reply_chunk(req, body);
    }
    evbuffer_add(body, "\n", 1);
    evhttp_send_reply_chunk(req, body);
    evhttp_send_reply_end(req);
    evbuffer_free(body);
    bson_free(json);
}

/* GET /metrics: the Prometheus text exposition (proxy/metrics.c). */
static void
metrics_cb(struct evhttp_request *req, void *arg)
{
    struct proxy_admin *admin = arg;
    struct evbuffer *body;

    if (!get_only(req))
        return;
    if (!proxy_http_authorized(admin->server, req)) {
        unauthorized(req);
        return;
    }
    body = evbuffer_new();
    proxy_metrics_prometheus(admin->server, admin->server->started, body);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      PROXY_METRICS_CONTENT_TYPE);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

/*
 * GET /readyz: proxy/ready.c. Open like /healthz (an orchestrator's probe
 * may have no token); without the token the reason is only its category,
 * so addresses and error texts are not shown to anyone.
 */
static void
readyz_cb(struct evhttp_request *req, void *arg)
{
    struct proxy_admin *admin = arg;

    if (!get_only(req))
        return;
    proxy_ready_handle(admin->ready, req, proxy_http_authorized(admin->server, req));
}

/* GET /advice: the index advice (proxy/advice.h), the advisor's state. */
static void
advice_cb(struct evhttp_request *req, void *arg)
{
    struct proxy_admin *admin = arg;
    struct evbuffer *body;

    if (!get_only(req))
        return;
    body = evbuffer_new();
    if (!proxy_http_authorized(admin->server, req)) {
        evbuffer_add_printf(body, "{\"error\": \"unauthorized\"}\n");
        proxy_http_reply_json(req, 401, "Unauthorized", body);
        evbuffer_free(body);
        return;
    }
    proxy_advice_json(admin->server->advice, body);
    proxy_http_reply_json(req, 200, "OK", body);
    evbuffer_free(body);
}

/* GET /: the dashboard page. It holds no data, so it needs no token. */
static void
dashboard_cb(struct evhttp_request *req, void *arg)
{
    struct proxy_admin *admin = arg;

    if (!get_only(req))
        return;
    proxy_dashboard_serve(admin->dashboard, req);
}

static void
healthz_cb(struct evhttp_request *req, void *arg)
{
    struct proxy_admin *admin = arg;
    struct evbuffer *body;

    if (!get_only(req))
        return;
    body = evbuffer_new();
    if (admin->server->draining) {
        evbuffer_add_printf(body, "{\"status\": \"draining\"}\n");
        proxy_http_reply_json(req, 503, "Service Unavailable", body);
    } else {
        evbuffer_add_printf(body, "{\"status\": \"ok\"}\n");
        proxy_http_reply_json(req, 200, "OK", body);
    }
    evbuffer_free(body);
}

static void
not_found_cb(struct evhttp_request *req, void *arg)
{
    struct evbuffer *body = evbuffer_new();

    (void)arg;
    evbuffer_add_printf(body,
                        "{\"error\": \"not found\", \"paths\": [\"/\", \"/stats\", \"/metrics\", \"/healthz\", "
                        "\"/readyz\", \"/advice\", \"/shapes\", \"/cache/flush\", \"/cache/invalidate\"]}\n");
    proxy_http_reply_json(req, 404, "Not Found", body);
    evbuffer_free(body);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

/*
 * accept() failed on the HTTP port. Without this callback libevent logs and
 * returns, the socket stays readable and the loop spins: pause for a second
 * instead, as the client listener does. (The callback's argument is evhttp's,
 * so the timer is a one-shot on the listener itself; the listener lives until
 * the event base is freed, after which no timer runs.)
 */
static void
accept_error_cb(struct evconnlistener *listener, void *arg)
{
    struct timeval one_second = {1, 0};
    int err = EVUTIL_SOCKET_ERROR();

    (void)arg;
    evconnlistener_disable(listener);
    event_base_once(evconnlistener_get_base(listener), -1, EV_TIMEOUT, resume_cb, listener,
                    &one_second);
    conf_log(CONF_LOG_WARN, 0, "http_accept_paused", "error=\"%s\"",
             evutil_socket_error_to_string(err));
}

static bool
is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return strcmp(host, "localhost") == 0;
}

struct proxy_admin *
proxy_admin_new(struct proxy_server *server, bson_error_t *error)
{
    const struct conf *conf = server->conf;
    struct proxy_admin *admin;
    char *host = NULL;
    uint16_t port = 0;
    struct evhttp_bound_socket *handle;

    if (!conf->http_listen || !conf->http_listen[0])
        return NULL;
    if (!conf_split_addr(conf->http_listen, &host, &port)) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_ADDRESS,
                       "http_listen: \"%s\" is not HOST:PORT", conf->http_listen);
        return NULL;
    }
    if (!is_loopback(host) && (!conf->http_token || !conf->http_token[0])) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_UNSAFE,
                       "http_listen %s is not a loopback address: set http_token so the "
                       "endpoint is not open to anyone",
                       conf->http_listen);
        bson_free(host);
        return NULL;
    }
    admin = bson_malloc0(sizeof *admin);
    admin->server = server;
    admin->dashboard = proxy_dashboard_new(error);
    if (!admin->dashboard) {
        bson_free(host);
        proxy_admin_destroy(admin);
        return NULL;
    }
    admin->ready = proxy_ready_new(server);
    admin->http = evhttp_new(server->base);
    evhttp_set_timeout(admin->http, 10);
    evhttp_set_max_headers_size(admin->http, 8192);
    evhttp_set_max_body_size(admin->http, 1024);
    evhttp_set_allowed_methods(admin->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_cb(admin->http, "/stats", stats_cb, admin);
    evhttp_set_cb(admin->http, "/healthz", healthz_cb, admin);
    evhttp_set_cb(admin->http, "/advice", advice_cb, admin);
    evhttp_set_cb(admin->http, "/shapes", proxy_shapes_http, server);
    evhttp_set_cb(admin->http, "/cache/flush", proxy_action_http_flush, server);
    evhttp_set_cb(admin->http, "/cache/invalidate", proxy_action_http_invalidate, server);
    evhttp_set_cb(admin->http, "/", dashboard_cb, admin);
    evhttp_set_cb(admin->http, "/metrics", metrics_cb, admin);
    evhttp_set_cb(admin->http, "/readyz", readyz_cb, admin);
    evhttp_set_gencb(admin->http, not_found_cb, admin);
    handle = evhttp_bind_socket_with_handle(admin->http, host, port);
    bson_free(host);
    if (!handle) {
        bson_set_error(error, CONF_ERROR_DOMAIN_PROXY, CONF_ERROR_PROXY_SYSTEM,
                       "cannot listen for HTTP on %s (address in use?)", conf->http_listen);
        proxy_admin_destroy(admin);
        return NULL;
    }
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(handle), accept_error_cb);
    return admin;
}

void
proxy_admin_destroy(struct proxy_admin *admin)
{
    if (!admin)
        return;
    proxy_ready_destroy(admin->ready); /* answers /readyz requests still waiting first */
    if (admin->http)
        evhttp_free(admin->http);
    proxy_dashboard_destroy(admin->dashboard);
    bson_free(admin);
}
