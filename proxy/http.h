/*
 * proxy/http.h: what every route of the HTTP endpoint shares: the token
 * check and the JSON replies. Below admin.c and the files that serve its
 * routes (action.c, ready.c, shapes.c), which all call it, so none of them
 * calls admin.c.
 */
#ifndef MONGOCACHE_PROXY_HTTP_H
#define MONGOCACHE_PROXY_HTTP_H

#include <bson/bson.h>
#include <stdbool.h>

struct evbuffer;
struct evhttp_request;
struct proxy_server;

/* Whether req carries "Authorization: Bearer <http_token>" (true when no token is set). */
bool proxy_http_authorized(struct proxy_server *server, struct evhttp_request *req);

/* Sets the headers of a JSON reply (application/json, no-store). */
void proxy_http_json_headers(struct evhttp_request *req);

/* Answers req with body (borrowed, drained) as JSON. */
void proxy_http_reply_json(struct evhttp_request *req, int code, const char *reason,
                           struct evbuffer *body);

/*
 * Answers req with doc as relaxed extended JSON (no-store): every JSON
 * route's reply. A document that cannot be written gives a 500.
 */
void proxy_http_send_bson(struct evhttp_request *req, int code, const char *reason,
                          const bson_t *doc);

#endif
