/*
 * proxy/router.h: which path one client command takes, from its name alone.
 * Handshakes are rewritten (persona, proxy/handshake.c), authentication is
 * observed (the principal, proxy/auth.c), the proxy's admin commands are
 * answered by the proxy (proxy/action.c); everything else is FORWARD: the
 * cache's part of it (lookup, store, invalidation) is proxy/lookup.c's, and
 * it goes upstream unless the cache answers it (see proxy/request.c).
 */
#ifndef MONGOCACHE_PROXY_ROUTER_H
#define MONGOCACHE_PROXY_ROUTER_H

#include "wire/cmd.h"

enum proxy_route {
    PROXY_ROUTE_FORWARD,       /* pass through unchanged */
    PROXY_ROUTE_HELLO,         /* hello / isMaster: rewrite both ways */
    PROXY_ROUTE_SASL_START,    /* observe the user name */
    PROXY_ROUTE_SASL_CONTINUE, /* observe the verdict */
    PROXY_ROUTE_AUTH_OTHER,    /* authenticate / logout: auth state becomes unknown */
    PROXY_ROUTE_ADMIN,         /* mongocacheStats/Flush/Invalidate: answered by the proxy
                                * (proxy/action.h), never forwarded */
};

enum proxy_route proxy_router_route(const struct wire_cmd *cmd);

const char *proxy_router_route_name(enum proxy_route route);

#endif
