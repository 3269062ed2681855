/*
 * proxy/slow.h: the slow-request log line. A request whose reply is queued
 * for the client more than slow_request_ms after the request was taken
 * from the client's buffer (proxy_request.started_us) is logged once:
 *   ts=... level=info conn=7 event=slow_request duration_ms=412.3 threshold_ms=100
 *     outcome=miss cmd=find ns=app.books shape="find app.books {author: ?}" request_id=5
 * The shape is index advice's display of the query shape (values shown as
 * "?", never the query's own values); shape=- when index advice is off or
 * the request has no shape (a write, a command without one, a shape
 * evicted since).
 */
#ifndef MONGOCACHE_PROXY_SLOW_H
#define MONGOCACHE_PROXY_SLOW_H

#include <bson/bson.h>

struct proxy_client;
struct proxy_request;
struct wire_cmd;

/*
 * Remembers cmd's name and namespace in req (copied, cut at the sizes of
 * its fields) when slow_request_ms is on; cmd may be NULL (no command
 * parsed). Call when req is created for a parsed command.
 */
void proxy_slow_note(struct proxy_client *c, struct proxy_request *req, const struct wire_cmd *cmd);

/*
 * The reply to req is being queued for the client: logs the slow_request
 * line when it took longer than slow_request_ms. reply is the relayed
 * reply's body when there is one (borrowed for the call); NULL when the
 * reply is req->hit or req->canned, which are read instead. Cheap when the
 * request was fast: one clock read.
 */
void proxy_slow_reply(struct proxy_client *c, const struct proxy_request *req, const bson_t *reply);

/* As proxy_slow_reply for a request answered with an error of the proxy's own instead. */
void proxy_slow_error(struct proxy_client *c, const struct proxy_request *req);

#endif
