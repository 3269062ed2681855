/*
 * proxy/router.c: the command classifier (see router.h). A switch on the
 * command's name as the parse classified it (wire/names.h); anything not
 * named is forwarded untouched, which is what keeps the proxy transparent
 * for commands it has never heard of.
 */
#include "proxy/router.h"

#include "wire/names.h"

static const char *const route_names[] = {"forward",       "hello",      "sasl_start",
                                          "sasl_continue", "auth_other", "admin"};

enum proxy_route
proxy_router_route(const struct wire_cmd *cmd)
{
    if (!cmd->name)
        return PROXY_ROUTE_FORWARD;
    switch (cmd->name_id) {
    case WIRE_NAME_HELLO:
    case WIRE_NAME_IS_MASTER:
    case WIRE_NAME_ISMASTER:
        return PROXY_ROUTE_HELLO;
    case WIRE_NAME_SASL_START:
        return PROXY_ROUTE_SASL_START;
    case WIRE_NAME_SASL_CONTINUE:
        return PROXY_ROUTE_SASL_CONTINUE;
    case WIRE_NAME_AUTHENTICATE:
    case WIRE_NAME_LOGOUT:
        return PROXY_ROUTE_AUTH_OTHER;
    case WIRE_NAME_MONGOCACHE_STATS:
    case WIRE_NAME_MONGOCACHE_FLUSH:
    case WIRE_NAME_MONGOCACHE_INVALIDATE:
        return PROXY_ROUTE_ADMIN;
    default:
        return PROXY_ROUTE_FORWARD;
    }
}

const char *
proxy_router_route_name(enum proxy_route route)
{
    return route_names[route];
}
