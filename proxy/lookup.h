/*
 * proxy/lookup.h: the query cache's part of a client's request pipeline
 * (see the diagram in request.c): look a read up, bump for a write, answer
 * from a stored reply or from a cursor of the proxy's own.
 */
#ifndef MONGOCACHE_PROXY_LOOKUP_H
#define MONGOCACHE_PROXY_LOOKUP_H

#include <bson/bson.h>
#include <event2/util.h>
#include <stdbool.h>

struct proxy_client;
struct proxy_request;
struct wire_cmd;
struct wire_msg;

/* What the cache made of a forwarded command. */
enum proxy_lookup_verdict {
    PROXY_LOOKUP_FORWARD, /* send it upstream */
    PROXY_LOOKUP_ANSWERED, /* req->hit holds the reply */
    PROXY_LOOKUP_WAITING, /* an identical read is in flight: hold the message */
};

/* The principal cache entries are keyed by; NULL when the cache must not be used. */
const char *proxy_lookup_principal(const struct proxy_client *c);

/*
 * The cache's part of a forwarded command: a write bumps the generations
 * it may change (req remembers it, to bump again at the end); a read is
 * looked up: a hit makes req READY, a wait WAITING_CACHE (its end is told
 * to req->ops->resolved).
 */
enum proxy_lookup_verdict proxy_lookup_consult(struct proxy_client *c, const struct wire_msg *msg,
                                               const struct wire_cmd *cmd, const bson_t *body,
                                               struct proxy_request *req, bool oneway);

/*
 * getMore and killCursors on the proxy's own cursors are answered here;
 * true when req got its reply (req->canned).
 */
bool proxy_lookup_answer_cursor(struct proxy_client *c, const struct wire_cmd *cmd,
                                const bson_t *body, struct proxy_request *req);

/* Writes the stored reply req->hit for req. */
void proxy_lookup_write_hit(struct proxy_client *c, struct proxy_request *req);

/*
 * For cache_write_end_async, arg the request: an acknowledged write's bump
 * reached Redis (or gave up): req is READY, and its owner is told (ops->acked).
 */
void proxy_lookup_write_bumped(void *arg);

#endif
