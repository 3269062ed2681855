/*
 * proxy/router.c: the command classifier (see router.h). A table of command
 * names; anything not named is forwarded untouched, which is what keeps the
 * proxy transparent for commands it has never heard of.
 */
#include "proxy/router.h"

#include <string.h>

static const struct {
    const char *name;
    enum proxy_route route;
} routes[] = {
    {"hello", PROXY_ROUTE_HELLO},
    {"isMaster", PROXY_ROUTE_HELLO},
    {"ismaster", PROXY_ROUTE_HELLO},
    {"saslStart", PROXY_ROUTE_SASL_START},
    {"saslContinue", PROXY_ROUTE_SASL_CONTINUE},
    {"authenticate", PROXY_ROUTE_AUTH_OTHER},
    {"logout", PROXY_ROUTE_AUTH_OTHER},
    {"mongocacheStats", PROXY_ROUTE_ADMIN},
    {"mongocacheFlush", PROXY_ROUTE_ADMIN},
    {"mongocacheInvalidate", PROXY_ROUTE_ADMIN},
};

static const char *const route_names[] = {"forward",       "hello",      "sasl_start",
                                          "sasl_continue", "auth_other", "admin"};

enum proxy_route
proxy_router_route(const struct wire_cmd *cmd)
{
    if (!cmd->name)
        return PROXY_ROUTE_FORWARD;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(cmd->name, routes[i].name) == 0)
            return routes[i].route;
    return PROXY_ROUTE_FORWARD;
}

const char *
proxy_router_route_name(enum proxy_route route)
{
    return route_names[route];
}
