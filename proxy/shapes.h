/*
 * proxy/shapes.h: GET /shapes, the top query shapes of the shape table
 * (advice/table.h) with their figures: ProxySQL's query digest for
 * MongoDB. Values are never shown, only shapes (advice_shape_display).
 * Query parameters: sort=count|server_time|hit_ratio (default count) and
 * limit=1..PROXY_SHAPES_LIMIT_MAX (default PROXY_SHAPES_LIMIT_DEFAULT).
 * With advice = off there is no shape table: 404 with a JSON reason.
 */
#ifndef MONGOCACHE_PROXY_SHAPES_H
#define MONGOCACHE_PROXY_SHAPES_H

#include <stdbool.h>
#include <stdint.h>

struct evhttp_request;

#define PROXY_SHAPES_LIMIT_DEFAULT 20
#define PROXY_SHAPES_LIMIT_MAX 100
/* Longest shape text shown (bytes); a longer one is cut and ends with " (cut)". */
#define PROXY_SHAPES_TEXT_MAX 2048

/* The evhttp callback of GET /shapes; arg is the proxy_server. */
void proxy_shapes_http(struct evhttp_request *req, void *arg);

#endif
