/*
 * proxy/admin.h: the HTTP endpoint for the people who run the proxy:
 * GET /stats (JSON counters), GET /metrics (the same for Prometheus), GET
 * /healthz (alive), GET /readyz (upstream and Redis usable), GET /advice.
 * Bound to loopback by default;
 * binding elsewhere requires http_token, sent as "Authorization: Bearer T".
 */
#ifndef MONGOCACHE_PROXY_ADMIN_H
#define MONGOCACHE_PROXY_ADMIN_H

#include <bson/bson.h>

struct proxy_server;
struct proxy_admin;

/* Binds conf->http_listen (NULL without error when it is empty). Free with proxy_admin_destroy. */
struct proxy_admin *proxy_admin_new(struct proxy_server *server, bson_error_t *error);
void proxy_admin_destroy(struct proxy_admin *admin);

#endif
