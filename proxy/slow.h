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

#include "proxy/stats.h"

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
 * The reply to req was queued for the client elapsed_us after req was
 * taken from its buffer: logs the slow_request line when that is longer
 * than slow_request_ms. Called by proxy_client_observe alone, with the
 * outcome the latency histograms count.
 */
void proxy_slow_log(struct proxy_client *c, const struct proxy_request *req,
                    enum proxy_outcome outcome, int64_t elapsed_us);

#endif
