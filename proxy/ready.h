/*
 * proxy/ready.h: GET /readyz, whether the proxy can serve now: the upstream
 * answers a hello (checked by a probe of its own, never by client traffic)
 * and, with Redis configured and the cache on, the Redis tier is usable.
 * 200 {"status": "ready"} or 503 {"status": "not_ready", "reason": "..."}.
 */
#ifndef MONGOCACHE_PROXY_READY_H
#define MONGOCACHE_PROXY_READY_H

#include <stdbool.h>

struct evhttp_request;
struct proxy_server;
struct proxy_ready;

/* How long a probe's result answers /readyz before another probe is made. */
#define PROXY_READY_CACHE_MS 1000
/* How long a probe may take (connect, hello, reply), at most. */
#define PROXY_READY_TIMEOUT_MS 2000
/* Most /readyz requests waiting for one probe; more are answered from the last result. */
#define PROXY_READY_MAX_WAITING 64

/* A readiness checker for server (borrowed, outlives it). Free with proxy_ready_destroy. */
struct proxy_ready *proxy_ready_new(struct proxy_server *server);

/*
 * Frees the checker and any probe in flight. Call after the evhttp that
 * served /readyz is freed (its waiting requests are dropped by then).
 */
void proxy_ready_destroy(struct proxy_ready *ready);

/*
 * Answers req now, from a result younger than PROXY_READY_CACHE_MS, or
 * when the probe it starts (or the one in flight) ends: at most one probe
 * at a time and one per PROXY_READY_CACHE_MS, however many requests come.
 * Never blocks the loop. detailed: the reason's text (addresses, errors),
 * not only its category (the caller had the token).
 */
void proxy_ready_handle(struct proxy_ready *ready, struct evhttp_request *req, bool detailed);

#endif
