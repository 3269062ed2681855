/*
 * proxy/router.h: deciding what happens to one client command. Today every
 * command is forwarded on the client's own upstream connection; the router
 * only tells apart the ones the proxy must watch or rewrite on the way:
 * handshakes (persona) and authentication (principal). The query cache adds
 * its "lookup before forwarding" and "store after the reply" steps here.
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
